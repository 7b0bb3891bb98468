"""What goes to the DSF Board (R-BOARD) and what the WG does directly (R-DIRECT)."""

from __future__ import annotations

from rules.charter import Charter
from rules.decision import Decision


def needs_board(kind: str, *, charter: Charter) -> Decision:
    """Does a proposal of this kind need the Board's decision? ``allowed`` means the WG may
    decide it directly. Unknown kinds raise ``ValueError`` listing the known ones."""
    if kind in charter.board.needs_board:
        return Decision(
            allowed=False, ruling="R-BOARD", evidence={"kind": kind, "needs_board": True},
            reason=f"a {kind} proposal is decided by the DSF Board: the WG may endorse it, then "
                   "it is escalated")
    if kind in charter.board.direct:
        return Decision(
            allowed=True, ruling="R-DIRECT", evidence={"kind": kind, "needs_board": False},
            reason=f"the WG decides a {kind} proposal directly; it is not escalated")
    known = ", ".join([*charter.board.needs_board, *charter.board.direct])
    raise ValueError(f"unknown proposal kind {kind!r} (known: {known})")
