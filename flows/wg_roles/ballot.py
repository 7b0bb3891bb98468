"""Chair and Co-Chair by a WG ballot (R-ROLE-APPOINT, "as R-VOTE-APPROVE").

The membership ballot machinery with an appointment as its subject: a ledger ballot of kind
``appointment`` (the charter's ``ballots.approval`` numbers, R-ELECTORATE snapshot), shown on
every platform under the usual effect keys, so the vote handler, the Forum poll reader and the
scheduled closer (``membership-close-due-ballots``) settle it like any other; the closer calls
:func:`apply_outcome`. R-ROLE-* is checked when asked (a hard rule refuses before any ballot or
announcement; a warning is shown to the proposer and on the ballot) and again when it passed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from prefect import flow

from connectors.errors import PolicyViolation
from flows.ballots import applied_result, electorate_ids, open_ledger_ballot, record_applied
from flows.kit import context, run_name
from flows.membership import ballot as ballots
from flows.wg_roles.common import appoint, nominee_of, post_wg, render, request_or_refuse, result, show
from ledger import appointments
from ledger.models import Ballot, BallotOutcome, BallotStatus, Person
from ledger.models_appointments import WgAppointment
from rules import quorum
from rules.appointments import LABELS, check_ballot_proposer

ACTOR = "flow:wg-roles-ballot"


def open_step(ctx: Any, *, role: str, nominee: str, proposed_by: str) -> dict[str, Any]:
    """Check, record, open (once) and show the ballot; a refusal opens nothing."""
    with ctx.ledger.read() as session:
        proposer = nominee_of(session, proposed_by)
        voters = electorate_ids(session, kind="appointment", subject_person_id=None, charter=ctx.charter)
        decision = check_ballot_proposer(proposer.handle, voting=proposer.id in voters)
        if not decision.allowed:
            raise PolicyViolation(decision.reason, ruling=decision.ruling)
    row, checked, _ = request_or_refuse(
        ctx, role=role, nominee=nominee, via="ballot", requested_by=f"person:{proposer.id}", actor=ACTOR
    )
    if not checked.allowed:
        show(f"wg-appointment-{row.id}", checked, via="ballot", status="refused")
        return result(row, checked)
    with ctx.ledger.transaction() as session:
        row = session.get_one(WgAppointment, row.id)
        if row.ballot_id is None:
            ballot = open_ledger_ballot(
                ctx,
                session,
                kind="appointment",
                subject_ref=f"wg-appointment:{row.id}",
                actor=ACTOR,
                subject_person=session.get_one(Person, row.nominee_person_id),
                params={"role": row.role},
            )
            appointments.mark_voting(session, row, ballot_id=ballot.id, actor=ACTOR, at=ctx.now)
        ballot = session.get(Ballot, row.ballot_id)
        ballot_id, size = ballot.id, len(ballot.electors)
        session.expunge(row)
    needed = quorum(size, kind="appointment", charter=ctx.charter)
    posted = ballots.post(
        ctx,
        ballot_id=ballot_id,
        template="appointment_question",
        actor=ACTOR,
        label=LABELS[role],
        nominee=checked.nominee,
        quorum=needed,
        electorate=size,
        warnings=[f"{f.ruling}: {f.reason}" for f in checked.warnings],
    )
    show(
        f"wg-appointment-{row.id}",
        checked,
        via="ballot",
        status=row.status,
        ballot=ballot_id,
        electorate=size,
        quorum=needed,
        shown_on=", ".join(sorted(posted)),
    )
    return result(row, checked, ballot=ballot_id, electorate=size, quorum=needed, platforms=sorted(posted))


def apply_outcome(ctx: Any, *, ballot_id: int) -> str:
    """Called by ``flows.membership.ballot.settle`` once the ballot closed: passed → appointed
    (checked again, recorded, announced); failed or cancelled → rejected, and the WG is told.
    Idempotent (``ballot:<id>:applied``)."""
    with ctx.ledger.read() as session:
        applied = applied_result(session, ballot_id)
        ballot = session.get_one(Ballot, ballot_id)
        row = appointments.by_ballot(session, ballot_id)
        if row is None:
            raise LookupError(f"ballot:{ballot_id} is not an appointment ballot")
        passed = ballot.status == BallotStatus.CLOSED and ballot.outcome == BallotOutcome.PASSED
        appointment_id, role = row.id, row.role
        nominee = session.get_one(Person, row.nominee_person_id).handle
    if applied is not None:
        return applied
    if passed:
        outcome = appoint(ctx, appointment_id=appointment_id, decided_by=f"ballot:{ballot_id}", actor=ACTOR)["status"]
    else:
        with ctx.ledger.transaction() as session:
            row = session.get(WgAppointment, appointment_id)
            if row.status in appointments.OPEN:
                appointments.decide(
                    session, row, status="rejected", decided_by=f"ballot:{ballot_id}", actor=ACTOR, at=ctx.now
                )
        post_wg(
            ctx,
            template="not_appointed_wg",
            key=f"wg-role:rejected:{appointment_id}",
            actor=ACTOR,
            about=f"wg-appointment:{appointment_id}",
            renderer=render,
            label=LABELS[role],
            nominee=nominee,
            ballot_id=ballot_id,
        )
        outcome = "rejected"
    record_applied(ctx, ballot_id=ballot_id, actor=ACTOR, result=outcome)
    return outcome


@flow(name="wg-roles-appoint-by-ballot", flow_run_name=run_name("wg-appoint", "role"), log_prints=True)
def appoint_by_ballot(
    role: Literal["chair", "co_chair"], nominee: str, proposed_by: str, now: datetime | None = None
) -> dict[str, Any]:
    """Propose ``nominee`` (WG handle or id) as Chair or Co-Chair; ``proposed_by`` is a voting
    member. Refused at once when a hard R-ROLE rule forbids it (nothing is announced); else a
    WG ballot opens on every platform, with any R-ROLE-CHAIR warning shown. Running it again
    while the ballot is open shows the same ballot."""
    return open_step(context(now), role=role, nominee=nominee, proposed_by=proposed_by)
