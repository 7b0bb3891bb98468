"""Budget requests (R-BUDGET, R-BOARD): the states a request goes through, which moves are
allowed, the checks on a spending record and the totals per currency. Pure: the caller reads the
ledger and passes plain values; money is ``Decimal`` (never float).

A budget request is a Board proposal of kind ``budget``. Its state is read from the proposal's
life (:func:`state_of`)::

    requested -> endorsed -> with-board -> approved | rejected -> closed
    requested -> withdrawn                   (the WG did not endorse it)

Spending is recorded only on an approved, not closed request, in the request's currency; a
record that takes the total spent over the approved amount is accepted only with a reason, and
is then flagged (shown in the Board's quarterly report).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from rules.decision import CodedDecision, Decision

__all__ = [
    "CHARTER_IDEAS",
    "MAX_AMOUNT",
    "BudgetState",
    "check_close",
    "check_spending",
    "check_transition",
    "parse_amount",
    "state_of",
    "totals",
]

MAX_AMOUNT = Decimal("1e10")
# A comma only groups thousands ("1,200.50"): "12,50" is a decimal comma, not 1250.
_GROUPED = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d*)?")

# The charter's "Budget ideas" (charter section "Budget"), filed in the backlog once with
# source "charter" (R-BUDGET: "the charter's own budget ideas start in the backlog").
CHARTER_IDEAS: tuple[tuple[str, str], ...] = (
    (
        "Budget: training for moderators and admins",
        "From the charter's budget ideas: paid training for the platforms' moderators and admins.",
    ),
    (
        "Budget: hosting and subscription fees for bots",
        "From the charter's budget ideas: hosting fees and subscription fees for the community's bots.",
    ),
    (
        "Budget: tools for community management and growth",
        "From the charter's budget ideas: tools for community management and growth (for example https://orbit.love).",
    ),
    ("Budget: hosting for the Forum", "From the charter's budget ideas: paying for the Forum's hosting."),
    ("Budget: Discord Nitro", "From the charter's budget ideas: Discord Nitro (server boosts) for the Django Discord."),
)


class BudgetState(enum.StrEnum):
    """Where a budget request is (R-BUDGET)."""

    REQUESTED = "requested"  # filed; the WG's endorsement vote is open
    ENDORSED = "endorsed"  # the WG endorsed it; not sent to the Board yet
    WITH_BOARD = "with-board"  # escalated, waiting for (or asked more information by) the Board
    APPROVED = "approved"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"  # not endorsed by the WG
    CLOSED = "closed"  # nothing more will be spent (or rejected and filed away)


# Each move and the ruling that allows it.
_MOVES: dict[BudgetState, dict[BudgetState, str]] = {
    BudgetState.REQUESTED: {
        BudgetState.ENDORSED: "R-BOARD",
        BudgetState.WITH_BOARD: "R-BOARD",
        BudgetState.WITHDRAWN: "R-BOARD",
    },
    BudgetState.ENDORSED: {BudgetState.WITH_BOARD: "R-BOARD"},
    BudgetState.WITH_BOARD: {BudgetState.APPROVED: "R-BOARD", BudgetState.REJECTED: "R-BOARD"},
    BudgetState.APPROVED: {BudgetState.CLOSED: "R-BUDGET"},
    BudgetState.REJECTED: {BudgetState.CLOSED: "R-BUDGET"},
    BudgetState.WITHDRAWN: {},
    BudgetState.CLOSED: {},
}


def state_of(*, status: str, decision: str | None, closed: bool, endorsement_passed: bool = False) -> BudgetState:
    """The budget state of a proposal: its ``status`` (draft, endorsing, escalated, decided,
    withdrawn), the Board's ``decision`` (approved, rejected, needs-info or None), whether it was
    ``closed``, and whether its endorsement ballot passed (before the escalation is recorded)."""
    if closed:
        return BudgetState.CLOSED
    if status == "withdrawn":
        return BudgetState.WITHDRAWN
    if status == "decided":
        if decision == "approved":
            return BudgetState.APPROVED
        if decision == "rejected":
            return BudgetState.REJECTED
    if status in ("escalated", "decided"):
        return BudgetState.WITH_BOARD
    if status in ("draft", "endorsing"):
        return BudgetState.ENDORSED if endorsement_passed else BudgetState.REQUESTED
    raise ValueError(f"status: unknown proposal status {status!r}")


def check_transition(current: BudgetState | str, target: BudgetState | str) -> Decision:
    """May a request move from ``current`` to ``target``? Cites R-BOARD (the Board decides)
    or R-BUDGET (the WG closes)."""
    current, target = BudgetState(current), BudgetState(target)
    ruling = _MOVES[current].get(target)
    evidence = {"from": current.value, "to": target.value}
    if ruling is None:
        allowed = ", ".join(s.value for s in _MOVES[current]) or "nothing (it is final)"
        return Decision(
            allowed=False,
            ruling="R-BUDGET",
            evidence=evidence,
            reason=f"a {current.value} budget request cannot become {target.value} (it can become: {allowed})",
        )
    return Decision(
        allowed=True,
        ruling=ruling,
        evidence=evidence,
        reason=f"a {current.value} budget request may become {target.value}",
    )


def check_close(current: BudgetState | str) -> Decision:
    """Closing a request: only once the Board decided (approved or rejected)."""
    decision = check_transition(current, BudgetState.CLOSED)
    if decision.allowed:
        return Decision(
            allowed=True,
            ruling="R-BUDGET",
            evidence=decision.evidence,
            reason="the Board decided the request; closing it ends its spending",
        )
    return decision


def parse_amount(value: Any, *, field: str = "amount") -> Decimal:
    """A positive amount of money with at most two decimals, under 10,000,000,000.
    ``ValueError`` naming ``field`` otherwise (never a float: a float is refused as imprecise)."""
    if isinstance(value, float):
        raise ValueError(f"{field}: give money as text or Decimal, not a float")
    text = str(value if value is not None else "").strip()
    if not text:
        raise ValueError(f"{field}: is required")
    if "," in text:
        if not _GROUPED.fullmatch(text):
            raise ValueError(
                f"{field}: {text[:40]!r}: a comma only separates thousands (1,200.50); decimals take a point"
            )
        text = text.replace(",", "")
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"{field}: {text[:40]!r} is not a number") from None
    if not amount.is_finite() or amount <= 0:
        raise ValueError(f"{field}: must be more than zero")
    exponent = amount.as_tuple().exponent  # an int once the amount is finite
    if not isinstance(exponent, int) or exponent < -2 or amount >= MAX_AMOUNT:
        raise ValueError(f"{field}: at most two decimals and under 10,000,000,000")
    return amount


def check_spending(
    *,
    state: BudgetState | str,
    approved: Decimal | None,
    request_currency: str | None,
    spent: Decimal,
    amount: Decimal,
    currency: str,
    reason: str | None,
) -> Decision:
    """May a member record spending ``amount`` ``currency`` on a request? ``spent`` is what was
    recorded before. Over the approved amount: allowed only with a ``reason``, and flagged
    (``evidence["flagged"]``). ``evidence`` holds ``left`` before and after."""
    state = BudgetState(state)
    reason = (reason or "").strip() or None
    evidence: dict[str, Any] = {
        "state": state.value,
        "approved": approved,
        "spent": spent,
        "amount": amount,
        "currency": currency,
        "flagged": False,
    }
    if state != BudgetState.APPROVED:
        why = "it was closed" if state == BudgetState.CLOSED else f"it is {state.value}, not approved by the Board"
        return Decision(
            allowed=False,
            ruling="R-BUDGET",
            evidence=evidence,
            reason=f"spending is recorded only on an approved request: {why}",
        )
    if approved is None:
        return Decision(
            allowed=False, ruling="R-BUDGET", evidence=evidence, reason="the request has no approved amount"
        )
    if currency != request_currency:
        return Decision(
            allowed=False,
            ruling="R-BUDGET",
            evidence=evidence,
            reason=f"the request is in {request_currency}; record {currency} spending converted to it",
        )
    left_before, total = approved - spent, spent + amount
    evidence |= {"left_before": left_before, "left_after": approved - total}
    if total > approved:
        over = total - approved
        evidence["over_by"] = over
        if reason is None:
            return Decision(
                allowed=False,
                ruling="R-BUDGET",
                evidence=evidence,
                reason=f"this takes spending {over} {currency} over the approved "
                f"{approved} {currency}; give a reason to record it anyway",
            )
        evidence["flagged"] = True
        return Decision(
            allowed=True,
            ruling="R-BUDGET",
            evidence=evidence,
            reason=f"over the approved amount by {over} {currency}; recorded with the "
            "reason given and flagged for the Board's report",
        )
    return Decision(
        allowed=True,
        ruling="R-BUDGET",
        evidence=evidence,
        reason=f"within the approved amount: {approved - total} {currency} left",
    )


def totals(requests: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Decimal]]:
    """Per currency: ``requested`` (every request), ``approved`` (approved or closed after an
    approval), ``spent`` and ``left`` (approved - spent). Each request is a mapping with
    ``currency``, ``amount``, ``approved`` (or None) and ``spent`` (Decimal)."""
    out: dict[str, dict[str, Decimal]] = {}
    zero = Decimal("0.00")
    for r in requests:
        cur = str(r.get("currency") or "")
        item = out.setdefault(cur, {"requested": zero, "approved": zero, "spent": zero, "left": zero})
        item["requested"] += Decimal(r.get("amount") or 0)
        approved = r.get("approved")
        item["approved"] += Decimal(approved) if approved is not None else zero
        item["spent"] += Decimal(r.get("spent") or 0)
    for item in out.values():
        item["left"] = item["approved"] - item["spent"]
    return dict(sorted(out.items()))


def check_actor(*, member: bool, budget_request: bool, proposal_id: int, doing: str) -> CodedDecision:
    """R-BUDGET: only an active WG member records spending on or closes (``doing``) a request,
    and only a budget request. Codes: ``member``, or ``not-a-member``, ``unknown-proposal``."""
    if not member:
        return CodedDecision(
            allowed=False, ruling="R-BUDGET", code="not-a-member", reason=f"only active working group members {doing}"
        )
    if not budget_request:
        return CodedDecision(
            allowed=False,
            ruling="R-BUDGET",
            code="unknown-proposal",
            reason=f"proposal {proposal_id} is not a budget request",
        )
    return CodedDecision(
        allowed=True,
        ruling="R-BUDGET",
        code="member",
        reason=f"an active working group member acts on proposal {proposal_id}",
    )
