"""What goes to the DSF Board (R-BOARD) and what the WG does directly (R-DIRECT)."""

from __future__ import annotations

from dataclasses import dataclass

from rules.charter import Charter
from rules.decision import CodedDecision, Decision


def needs_board(kind: str, *, charter: Charter) -> Decision:
    """Does a proposal of this kind need the Board's decision? ``allowed`` means the WG may
    decide it directly. Unknown kinds raise ``ValueError`` listing the known ones."""
    if kind in charter.board.needs_board:
        return Decision(
            allowed=False,
            ruling="R-BOARD",
            evidence={"kind": kind, "needs_board": True},
            reason=f"a {kind} proposal is decided by the DSF Board: the WG may endorse it, then it is escalated",
        )
    if kind in charter.board.direct:
        return Decision(
            allowed=True,
            ruling="R-DIRECT",
            evidence={"kind": kind, "needs_board": False},
            reason=f"the WG decides a {kind} proposal directly; it is not escalated",
        )
    known = ", ".join([*charter.board.needs_board, *charter.board.direct])
    raise ValueError(f"unknown proposal kind {kind!r} (known: {known})")


# Proposal states (the ledger's) in which the Board's decision is awaited or already taken.
_WAITING, _DECIDED = "escalated", "decided"


@dataclass(frozen=True, kw_only=True)
class BoardAttempt:
    """A Board decision arriving (a Slack button, an operator): the proposal's status (None: no
    such proposal), whether the decider is on the Board list, and the code for why not."""

    proposal_status: str | None
    on_board: bool
    refused_code: str = "not-on-board-list"


def check_board_decision(attempt: BoardAttempt) -> CodedDecision:
    """R-BOARD: only a Board member decides, only a proposal escalated to the Board, once.
    Code ``allowed``, or why not: ``unknown-proposal``, the attempt's refused code (not on the
    Board list, another workspace), ``already-decided``, ``not-escalated``."""
    if attempt.proposal_status is None:
        return CodedDecision(allowed=False, ruling="R-BOARD", code="unknown-proposal", reason="no such proposal")
    if not attempt.on_board:
        return not_on_board(attempt.refused_code)
    if attempt.proposal_status == _DECIDED:
        return CodedDecision(
            allowed=False, ruling="R-BOARD", code="already-decided", reason="the Board decided this proposal already"
        )
    if attempt.proposal_status != _WAITING:
        return CodedDecision(
            allowed=False,
            ruling="R-BOARD",
            code="not-escalated",
            reason="the proposal is not waiting for a Board decision",
        )
    return CodedDecision(
        allowed=True, ruling="R-BOARD", code="allowed", reason="a Board member decides an escalated proposal"
    )


def not_on_board(code: str = "not-on-board-list") -> CodedDecision:
    """R-BOARD: a decider not on the Board list (``code`` says how it was found out)."""
    return CodedDecision(allowed=False, ruling="R-BOARD", code=code, reason="the clicker is not on the Board list")


def board_decided(word: str) -> Decision:
    """R-BOARD: what a recorded Board decision says (``word``: approved, rejected…)."""
    return Decision(allowed=True, ruling="R-BOARD", reason=f"the Board {word} the proposal")


def escalated(kind: str) -> Decision:
    """R-BOARD: what an escalation records (the WG does not decide it)."""
    return Decision(
        allowed=False,
        ruling="R-BOARD",
        reason=f"a {kind} proposal is decided by the DSF Board; sent to the Board channel with decision buttons",
    )


def endorsement_opened(proposal_id: int) -> Decision:
    """R-BOARD: the WG votes on endorsing a proposal before it goes to the Board."""
    return Decision(
        allowed=True,
        ruling="R-BOARD",
        reason=f"the WG votes on endorsing proposal {proposal_id} before it goes to "
        "the Board (charter ballots.endorsement)",
    )
