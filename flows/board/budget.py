"""Budget requests after the Board's decision (R-BUDGET): the approved amount, spending recorded
by a WG member, closing, the idea a request came from, and the charter's own budget ideas in the
backlog. A budget request is a Board proposal of kind ``budget`` (``flows.board.escalation``);
the states and checks are ``rules.budget``, the records ``ledger.budget``.

These act on the ledger only (nothing is posted), so ``charterflow budget …`` works without
platform credentials. Each refusal is audited (``budget.refused``, with its ruling) before it
is raised as ``PolicyViolation``; bad input raises ``ValueError`` naming the field before
anything is recorded.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from connectors.errors import PolicyViolation
from flows.board.common import CURRENCIES
from ledger import budget as store
from ledger import ideas as backlog
from ledger import repo
from ledger.errors import Conflict, NotFound
from ledger.models import BoardDecision, MembershipStatus, Person, Proposal
from rules.budget import BudgetState, check_actor, check_close, check_spending, parse_amount

ACTOR = "flow:budget"
MAX_REFERENCE = 500
MAX_REASON = 2000
__all__ = [
    "approved_amount_of",
    "approved_text",
    "close_request",
    "link_idea",
    "link_idea_in",
    "list_requests",
    "on_decision",
    "record_spending",
]


# --------------------------------------------------------------------------------------------
# The Board's decision


def approved_amount_of(proposal: Proposal, value: Any) -> Decimal | None:
    """The approved amount an operator gave with an approval: checked like an amount asked.
    ``ValueError`` when given for anything but a budget request."""
    if value in (None, ""):
        return None
    if proposal.kind != store.KIND:
        raise ValueError(f"approved_amount: proposal {proposal.id} is a {proposal.kind} proposal, not a budget request")
    return parse_amount(value, field="approved_amount")


def on_decision(
    session: Any,
    proposal: Proposal,
    *,
    decision: BoardDecision,
    approved_amount: Decimal | None,
    actor: str,
    at: datetime,
) -> None:
    """Called with the Board's decision, in its transaction: an approved budget request records
    the amount approved (the amount asked unless the decision gave another)."""
    if proposal.kind != store.KIND or decision != BoardDecision.APPROVED:
        return
    amount = approved_amount if approved_amount is not None else proposal.amount
    if amount is not None:  # a budget request always asks an amount (R-BUDGET)
        store.set_approved_amount(session, proposal, amount=amount, actor=actor, at=at)


def approved_text(proposal: Proposal) -> str | None:
    """``300 USD (asked 500 USD)``: the amount the Board approved, for the WG's message."""
    approved = proposal.approved_amount if proposal.approved_amount is not None else proposal.amount
    if approved is None:
        return None
    cur = f" {proposal.currency}" if proposal.currency else ""
    text = f"{Decimal(approved):,.2f}{cur}"
    if proposal.amount is not None and Decimal(proposal.amount) != Decimal(approved):
        text += f" (asked {Decimal(proposal.amount):,.2f}{cur})"
    return text


# --------------------------------------------------------------------------------------------
# Members act on a request


def _member(session: Any, handle: str) -> Person | None:
    """The active WG member with this handle, else None."""
    try:
        person = repo.get_person(session, handle)
    except NotFound:
        return None
    membership = repo.open_membership(session, person)
    return person if membership is not None and membership.status == MembershipStatus.ACTIVE else None


def _who_and_what(
    session: Any, by: str, proposal_id: int, *, doing: str
) -> tuple[Any, Any, tuple[str, str, int | None] | None]:
    """(the active member ``by``, the budget request, None) or a refusal (code, why, person)."""
    person = _member(session, (by or "").strip())
    proposal = session.get(Proposal, int(proposal_id))
    decision = check_actor(
        member=person is not None,
        doing=doing,
        proposal_id=proposal_id,
        budget_request=proposal is not None and proposal.kind == store.KIND,
    )
    if not decision.allowed:
        return (
            person,
            proposal if person is None else None,
            (decision.code, decision.reason, person.id if person is not None else None),
        )
    return person, proposal, None


def _refuse(
    ledger: Any,
    *,
    proposal_id: int | None,
    attempted: str,
    code: str,
    person_id: int | None,
    message: str,
    now: datetime,
    ruling: str = "R-BUDGET",
) -> PolicyViolation:
    with ledger.transaction() as session:
        store.record_refused(
            session,
            proposal_id=proposal_id,
            attempted=attempted,
            reason_code=code,
            ruling=ruling,
            person_id=person_id,
            actor=ACTOR,
            at=now,
        )
    return PolicyViolation(message, ruling=ruling)  # str(): "R-BUDGET: <message>"


def _one_line(value: str | None, name: str, *, limit: int, required: bool) -> str | None:
    text = " ".join(str(value or "").split())
    if not text:
        if required:
            raise ValueError(f"{name}: is required")
        return None
    if len(text) > limit:
        raise ValueError(f"{name}: at most {limit} characters")
    return text


def record_spending(
    ledger: Any,
    *,
    proposal_id: int,
    amount: Any,
    reference: str,
    by: str,
    currency: str | None = None,
    reason: str | None = None,
    now: datetime,
) -> dict[str, Any]:
    """A WG member (``by``: their handle) records spending on an approved request (R-BUDGET).

    ``reference``: the invoice, receipt or link; the same reference again records nothing new
    (``recorded: False``). ``currency``: default the request's; another is refused. Over the
    approved amount: refused without a ``reason``, recorded and flagged with one. Returns the
    record's figures and the ruling's reason."""
    value = parse_amount(amount)
    ref_text = _one_line(reference, "reference", limit=MAX_REFERENCE, required=True) or ""
    why = _one_line(reason, "reason", limit=MAX_REASON, required=False)
    code = (currency or "").strip().upper() or None
    if code is not None and code not in CURRENCIES:
        raise ValueError(f"currency: {code[:10]!r} is not a known ISO 4217 currency")
    refusal: tuple[str, str, int | None] | None = None
    with ledger.transaction() as session:
        person, proposal, refusal = _who_and_what(session, by, proposal_id, doing="record spending")
        if refusal is None:
            code = code or proposal.currency
            found = store.find_spending(session, proposal.id, ref_text)
            if _is_repeat(found, proposal, ref_text, value, code):
                return _result(
                    session,
                    proposal,
                    found,
                    recorded=False,
                    reason="this reference was recorded before; nothing was added",
                )
            spent = store.spent(session, proposal.id)
            state = store.state(session, proposal)
            approved = proposal.approved_amount if proposal.approved_amount is not None else proposal.amount
            decision = check_spending(
                state=state,
                approved=approved,
                request_currency=proposal.currency,
                spent=spent,
                amount=value,
                currency=code or "",
                reason=why,
            )
            if not decision.allowed:
                refusal = (_spending_refusal_code(state, code, proposal.currency), decision.reason, person.id)
            else:
                row, created = store.add_spending(
                    session,
                    proposal,
                    amount=value,
                    currency=code,
                    reference=ref_text,
                    person=person,
                    reason=why,
                    flagged=bool(decision.evidence["flagged"]),
                    actor=ACTOR,
                    at=now,
                )
                return _result(session, proposal, row, recorded=created, reason=decision.reason)
    code_, message, person_id = refusal
    raise _refuse(
        ledger,
        proposal_id=int(proposal_id) if code_ != "unknown-proposal" else None,
        attempted="spend",
        code=code_,
        person_id=person_id,
        message=f"not recorded: {message}",
        now=now,
    )


def _spending_refusal_code(state: BudgetState, code: str | None, request_currency: str) -> str:
    """The refusal's code, once check_spending said no."""
    if state == BudgetState.CLOSED:
        return "closed"
    if state != BudgetState.APPROVED:
        return "not-approved"
    if code != request_currency:
        return "wrong-currency"
    return "over-without-reason"


def _is_repeat(found: Any, proposal: Proposal, ref_text: str, value: Decimal, code: str | None) -> bool:
    """True when ``found`` is this very spending again; Conflict when the reference holds another."""
    if found is None:
        return False
    if Decimal(found.amount) == value and found.currency == code:
        return True
    # a typo, or two invoices under one number: a person decides
    raise Conflict(
        f"reference {ref_text[:80]!r} is already recorded on proposal {proposal.id} as {found.amount} {found.currency}"
    )


def _result(session: Any, proposal: Proposal, row: Any, *, recorded: bool, reason: str) -> dict[str, Any]:
    figures = store.request_row(session, proposal)
    return {
        "proposal": proposal.id,
        "spending": row.id,
        "recorded": recorded,
        "amount": f"{Decimal(row.amount):.2f}",
        "currency": row.currency,
        "flagged": bool(row.flagged),
        "approved": figures["approved"],
        "spent": figures["spent"],
        "left": figures["left"],
        "ruling": "R-BUDGET",
        "reason": reason,
    }


def close_request(ledger: Any, *, proposal_id: int, by: str, now: datetime) -> dict[str, Any]:
    """A WG member closes a decided request: no more spending is recorded on it. Closing a
    closed request again changes nothing."""
    refusal = None
    with ledger.transaction() as session:
        person, proposal, refusal = _who_and_what(session, by, proposal_id, doing="close a request")
        if refusal is None:
            state = store.state(session, proposal)
            if state == BudgetState.CLOSED:
                return {"proposal": proposal.id, "closed": False, **store.request_row(session, proposal)}
            decision = check_close(state)
            if not decision.allowed:
                refusal = ("not-decided", decision.reason, person.id)
            else:
                store.close_request(session, proposal, actor=ACTOR, person_id=person.id, at=now)
                return {"proposal": proposal.id, "closed": True, **store.request_row(session, proposal)}
    code, message, person_id = refusal
    raise _refuse(
        ledger,
        proposal_id=int(proposal_id) if code != "unknown-proposal" else None,
        attempted="close",
        code=code,
        person_id=person_id,
        message=f"not closed: {message}",
        now=now,
    )


def link_idea_in(session: Any, *, idea_id: int, proposal: Proposal, actor: str, at: datetime) -> bool:
    """Link idea ``idea_id`` to ``proposal`` inside the caller's transaction (a proposal filed
    from an idea)."""
    return store.link_idea(session, backlog.get_idea(session, int(idea_id)), proposal, actor=actor, at=at)


def link_idea(ledger: Any, *, idea_id: int, proposal_id: int, now: datetime, actor: str = ACTOR) -> dict[str, Any]:
    """Link a backlog item about money to its budget request (R-BUDGET). ``NotFound`` for an
    unknown idea or request, ``Conflict`` when the idea is linked to another request."""
    with ledger.transaction() as session:
        idea = backlog.get_idea(session, int(idea_id))
        proposal = store.get_request(session, int(proposal_id))
        linked = store.link_idea(session, idea, proposal, actor=actor, at=now)  # once
        money = idea.board_kind == "budget"
    return {"idea": int(idea_id), "proposal": int(proposal_id), "linked": linked, "classified_as_money": money}


def list_requests(ledger: Any) -> dict[str, Any]:
    """Every budget request as ``ledger.budget.request_row`` and the totals per currency."""
    with ledger.read() as session:
        rows = store.request_rows(session)
    return {"requests": rows, "totals": store.summary(rows)}


# --------------------------------------------------------------------------------------------
# The charter's own budget ideas
