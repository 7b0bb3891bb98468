"""Budget requests in the ledger (R-BUDGET): the approved amount, spending records, closing, the
idea a request came from, and each request as a row (for ``charterflow budget list`` and the
Board's quarterly report). Every writer adds its audit entry in the caller's transaction; audit
payloads hold ids, amounts, currency codes and salted digests, never a reference's or a
reason's text. The rules (which state, which move, which spending) are in ``rules.budget``.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledger import audit, repo
from ledger.errors import Conflict, NotFound
from ledger.models import AuditEntry, Ballot, BallotOutcome, BallotStatus, Idea, Person, Proposal, ProposalStatus
from ledger.models_budget import BudgetSpending
from rules.budget import BudgetState, state_of, totals

__all__ = [
    "KIND",
    "add_spending",
    "close_request",
    "find_spending",
    "get_request",
    "link_idea",
    "record_refused",
    "request_row",
    "request_rows",
    "requests",
    "set_approved_amount",
    "spending_of",
    "spent",
    "state",
    "summary",
    "reference_key",
    "withdrawn_at",
]

KIND = "budget"
ZERO = Decimal("0.00")


def _log(session: Session, *, actor: str, action: str, subject: str, at: datetime, **payload: object) -> None:
    audit.append(session, actor=actor, action=action, subject=subject, payload=repo.jsonable(payload), at=at)


def _digest(person: Person, value: str | None) -> str | None:
    return None if value is None else audit.content_digest(value, salt=person.salt)


def reference_key(reference: str) -> str:
    """A spending reference as compared: spaces collapsed, case folded."""
    return " ".join(reference.split()).casefold()


def requests(session: Session) -> list[Proposal]:
    """Every budget request, oldest first."""
    return list(session.scalars(select(Proposal).where(Proposal.kind == KIND).order_by(Proposal.id)))


def get_request(session: Session, proposal_id: int) -> Proposal:
    """The budget request ``proposal_id``; ``NotFound`` when there is none of that kind."""
    proposal = session.get(Proposal, int(proposal_id))
    if proposal is None or proposal.kind != KIND:
        raise NotFound(f"proposal {proposal_id} is not a budget request")
    return proposal


def _endorsed(session: Session, proposal: Proposal, until: datetime | None) -> bool:
    ballot = (
        session.get(Ballot, proposal.endorsement_ballot_id)
        if proposal.endorsement_ballot_id
        else repo.endorsement_ballot_of(session, proposal)
    )
    return (
        ballot is not None
        and ballot.status == BallotStatus.CLOSED
        and ballot.outcome == BallotOutcome.PASSED
        and (until is None or (ballot.closed_at is not None and ballot.closed_at < until))
    )


def withdrawn_at(session: Session, proposal: Proposal) -> datetime | None:
    """When a withdrawn request was withdrawn (its audit entry; the proposal has no column for
    it), else None."""
    if proposal.status != ProposalStatus.WITHDRAWN:
        return None
    return session.scalar(
        select(AuditEntry.at)
        .where(AuditEntry.action == "proposal.withdrawn", AuditEntry.subject == repo.ref(proposal))
        .order_by(AuditEntry.seq.desc())
        .limit(1)
    )


def state(session: Session, proposal: Proposal, *, until: datetime | None = None) -> BudgetState:
    """The request's state now, or as it was just before ``until`` (from the times recorded)."""

    def before(at: datetime | None) -> bool:
        return at is not None and (until is None or at < until)

    status = proposal.status.value
    # A request withdrawn after ``until`` was still waiting for its endorsement then (R-BUDGET).
    withdrawn = status == "withdrawn" and before(withdrawn_at(session, proposal) or proposal.created_at)
    if until is not None and not withdrawn:
        status = (
            "decided"
            if before(proposal.decided_at) and status == "decided"
            else "escalated"
            if before(proposal.escalated_at)
            else "endorsing"
        )
    return state_of(
        status=status,
        decision=proposal.decision.value if proposal.decision else None,
        closed=before(proposal.closed_at),
        endorsement_passed=_endorsed(session, proposal, until),
    )


def spending_of(session: Session, proposal_id: int, *, until: datetime | None = None) -> list[BudgetSpending]:
    """The request's spending records, oldest first (recorded before ``until``)."""
    query = select(BudgetSpending).where(BudgetSpending.proposal_id == proposal_id)
    if until is not None:
        query = query.where(BudgetSpending.recorded_at < until)
    return list(session.scalars(query.order_by(BudgetSpending.recorded_at, BudgetSpending.id)))


def spent(session: Session, proposal_id: int, *, until: datetime | None = None) -> Decimal:
    """The total recorded as spent (``Decimal``; summed here, not by the database, so SQLite's
    floating point never touches it)."""
    return sum((Decimal(r.amount) for r in spending_of(session, proposal_id, until=until)), ZERO)


def find_spending(session: Session, proposal_id: int, reference: str) -> BudgetSpending | None:
    """The record of ``reference`` on the request, if any."""
    return session.scalar(
        select(BudgetSpending).where(
            BudgetSpending.proposal_id == proposal_id, BudgetSpending.reference_key == reference_key(reference)
        )
    )


def set_approved_amount(session: Session, proposal: Proposal, *, amount: Decimal, actor: str, at: datetime) -> Proposal:
    """Record the amount the Board approved (with its decision, same transaction)."""
    proposal.approved_amount = amount
    session.flush()
    _log(
        session,
        actor=actor,
        action="budget.approved-amount",
        subject=repo.ref(proposal),
        at=at,
        amount=amount,
        currency=proposal.currency,
        asked=proposal.amount,
        ruling="R-BUDGET",
    )
    return proposal


def add_spending(
    session: Session,
    proposal: Proposal,
    *,
    amount: Decimal,
    currency: str,
    reference: str,
    person: Person,
    reason: str | None,
    flagged: bool,
    actor: str,
    at: datetime,
) -> tuple[BudgetSpending, bool]:
    """Record spending once per reference: (the record, recorded now). The same reference with
    another amount is a ``Conflict`` (a typo or a second invoice under one number)."""
    found = find_spending(session, proposal.id, reference)
    if found is not None:
        if Decimal(found.amount) != amount or found.currency != currency:
            raise Conflict(
                f"reference {reference[:80]!r} is already recorded on proposal "
                f"{proposal.id} as {found.amount} {found.currency}"
            )
        return found, False
    row = BudgetSpending(
        proposal_id=proposal.id,
        amount=amount,
        currency=currency,
        reference=reference,
        reference_key=reference_key(reference),
        recorded_by_person_id=person.id,
        recorded_at=at,
        reason=reason,
        flagged=flagged,
    )
    session.add(row)
    session.flush()
    _log(
        session,
        actor=actor,
        action="budget.spending-recorded",
        subject=repo.ref(proposal),
        at=at,
        spending=row.id,
        amount=amount,
        currency=currency,
        flagged=flagged,
        by=f"person:{person.id}",
        reference=_digest(person, reference),
        reason=_digest(person, reason),
        ruling="R-BUDGET",
    )
    return row, True


def record_refused(
    session: Session,
    *,
    proposal_id: int | None,
    attempted: str,
    reason_code: str,
    ruling: str,
    person_id: int | None,
    actor: str,
    at: datetime,
) -> None:
    """Audit a refused budget action (spending, closing, linking): codes and ids only."""
    _log(
        session,
        actor=actor,
        action="budget.refused",
        subject=f"proposal:{proposal_id}" if proposal_id else "proposal:unknown",
        at=at,
        attempted=attempted,
        reason=reason_code,
        ruling=ruling,
        person=person_id,
    )


def close_request(session: Session, proposal: Proposal, *, actor: str, person_id: int | None, at: datetime) -> Proposal:
    """Close the request (already checked with ``rules.budget.check_close``)."""
    proposal.closed_at = at
    session.flush()
    _log(
        session,
        actor=actor,
        action="budget.closed",
        subject=repo.ref(proposal),
        at=at,
        spent=spent(session, proposal.id),
        approved=proposal.approved_amount,
        currency=proposal.currency,
        by=f"person:{person_id}" if person_id else None,
        ruling="R-BUDGET",
    )
    return proposal


def link_idea(session: Session, idea: Idea, proposal: Proposal, *, actor: str, at: datetime) -> bool:
    """Link an idea to the budget request it led to: True when linked now. An idea linked to
    another request is a ``Conflict``."""
    if idea.proposal_id == proposal.id:
        return False
    if idea.proposal_id is not None:
        raise Conflict(f"idea {idea.id} is already linked to proposal {idea.proposal_id}")
    idea.proposal_id = proposal.id
    session.flush()
    _log(
        session,
        actor=actor,
        action="budget.idea-linked",
        subject=repo.ref(proposal),
        at=at,
        idea=idea.id,
        ruling="R-BUDGET",
    )
    return True


def _money(value: Decimal | None) -> str | None:
    return None if value is None else str(Decimal(value).quantize(Decimal("0.01")))


def request_row(session: Session, proposal: Proposal, *, until: datetime | None = None) -> dict[str, Any]:
    """One request as JSON-ready figures (money as strings with two decimals), as it is now or
    just before ``until``: state, asked, approved, spent, left, flagged records, linked ideas."""
    now_state = state(session, proposal, until=until)
    approved = None
    if (
        now_state in (BudgetState.APPROVED, BudgetState.CLOSED)
        and proposal.decision is not None
        and proposal.decision.value == "approved"
    ):
        # A request approved before migration 0018 has no approved amount: the amount asked.
        approved = proposal.approved_amount if proposal.approved_amount is not None else proposal.amount
    records = spending_of(session, proposal.id, until=until)
    total = sum((Decimal(r.amount) for r in records), ZERO)
    ideas = list(session.scalars(select(Idea.id).where(Idea.proposal_id == proposal.id).order_by(Idea.id)))
    return {
        "id": proposal.id,
        "title": proposal.title,
        "state": now_state.value,
        "currency": proposal.currency,
        "asked": _money(proposal.amount),
        "approved": _money(approved),
        "spent": _money(total),
        "left": _money(Decimal(approved) - total) if approved is not None else None,
        "records": len(records),
        "ideas": ideas,
        "flagged": [
            {
                "id": r.id,
                "on": r.recorded_at.strftime("%Y-%m-%d"),
                "amount": _money(r.amount),
                "reference": r.reference,
                "reason": r.reason or "",
            }
            for r in records
            if r.flagged
        ],
    }


def request_rows(
    session: Session, *, until: datetime | None = None, since: datetime | None = None
) -> list[dict[str, Any]]:
    """Every budget request as :func:`request_row`; with ``until``, those filed before it,
    and with ``since``, not those closed, rejected or withdrawn (filed) before it: the
    requests of a quarter."""
    out = []
    for proposal in requests(session):
        if until is not None and proposal.created_at >= until:
            continue
        row = request_row(session, proposal, until=until)
        # R-BUDGET: a request withdrawn during the quarter shows in it (not only in the one it was filed in).
        withdrawn = (withdrawn_at(session, proposal) or proposal.created_at) if row["state"] == "withdrawn" else None
        ended = {"closed": proposal.closed_at, "withdrawn": withdrawn, "rejected": proposal.decided_at}
        end = ended.get(row["state"])
        if since is not None and end is not None and end < since:
            continue
        out.append(row)
    return out


def summary(rows: list[dict[str, Any]]) -> dict[str, dict[str, str | None]]:
    """Totals per currency of :func:`request_rows` (``rules.budget.totals``), as strings."""
    # A request without an amount (filed before amounts were checked) has nothing to add up.
    figures = totals(
        [
            {
                "currency": r["currency"],
                "amount": Decimal(r["asked"] or 0),
                "approved": Decimal(r["approved"]) if r["approved"] else None,
                "spent": Decimal(r["spent"] or 0),
            }
            for r in rows
            if r["currency"]
        ]
    )
    return {cur: {k: _money(v) for k, v in item.items()} for cur, item in figures.items()}
