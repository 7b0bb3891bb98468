"""The removal ballot (R-REMOVE): any voting member may open one about another member; the
electorate is every voting member except the subject, snapshotted at opening; it passes with
``floor(E/2)+1`` yes (a majority of the whole electorate). The subject is told that a vote was
opened and its result; the ballot itself is shown in the WG's private spaces only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import flow

from connectors.errors import PolicyViolation
from flows.ballots import ballot_charter, electorate_ids, open_ledger_ballot, record_applied
from flows.kit import Ctx, artifact, context, message_person, person_run_name, post_wg
from flows.membership import ballot as ballots
from flows.membership.intake import GROUP
from flows.membership.leave import end_membership, person_id_of
from ledger import repo
from ledger.models import Ballot, BallotKind, BallotOutcome, BallotStatus, MembershipStatus, Person
from rules import majority
from rules.leaving import RemovalProposal, check_removal_proposal, removal_opened

ACTOR = "flow:removal"


def open_step(ctx: Ctx, *, subject_id: int, proposer_id: int) -> dict[str, Any]:
    """Open (once) a removal ballot about ``subject_id`` proposed by ``proposer_id``."""
    with ctx.ledger.transaction() as session:
        subject = session.get_one(Person, subject_id)
        proposer = session.get_one(Person, proposer_id)
        voters = electorate_ids(session, kind="removal", subject_person_id=None, charter=ctx.charter)
        membership = repo.open_membership(session, subject)
        decision = check_removal_proposal(
            RemovalProposal(
                proposer_votes=proposer_id in voters,
                own_removal=proposer_id == subject_id,
                subject_active=membership is not None and membership.status == MembershipStatus.ACTIVE,
            )
        )
        if not decision.allowed:
            raise PolicyViolation(decision.reason, ruling=decision.ruling)
        existing = [
            b for b in repo.open_ballots(session) if b.kind == BallotKind.REMOVAL and b.subject_person_id == subject_id
        ]
        if existing:
            ballot = existing[0]
        else:
            ballot = open_ledger_ballot(
                ctx,
                session,
                kind="removal",
                subject_ref=f"person:{subject_id}",
                actor=ACTOR,
                subject_person=subject,
                params={"proposed_by": f"person:{proposer.id}"},
            )
        ballot_id, size, handle, closes = ballot.id, len(ballot.electors), subject.handle, ballot.closes_at
        needed = majority(size, charter=ballot_charter(ctx.charter, ballot))
    # R-VOTE-SECRET: no platform shows who voted how; counts only once closed.
    posted = ballots.post(
        ctx,
        ballot_id=ballot_id,
        template="removal_question",
        actor=ACTOR,
        secret=True,
        handle=handle,
        needed=needed,
        electorate=size,
    )
    message_person(
        ctx,
        subject_id,
        template="removal_opened_dm",
        key=f"removal-opened:{ballot_id}",
        actor=ACTOR,
        about=f"ballot:{ballot_id}",
        group=GROUP,
        ballot_id=ballot_id,
        closes_at=closes.strftime("%Y-%m-%d %H:%M UTC"),
    )
    artifact(
        key=f"removal-ballot-{ballot_id}",
        title=f"Removal ballot {ballot_id} about {handle}",
        decision=removal_opened(needed=needed, electorate=size),
        rows={"electorate": size, "needed": needed, "shown on": ", ".join(posted)},
    )
    return {"ballot": ballot_id, "electorate": size, "needed": needed, "platforms": sorted(posted)}


def apply_outcome(ctx: Ctx, *, ballot_id: int) -> str:
    """Passed: the membership ends as removed, roles revoked, group told. Either way the subject
    is told the result. Idempotent (``ballot:<id>:applied``)."""
    with ctx.ledger.read() as session:
        ballot = session.get_one(Ballot, ballot_id)
        subject_id, outcome = ballot.subject_person_id, ballot.outcome
        if subject_id is None:
            raise LookupError(f"ballot:{ballot_id} is not a removal ballot")
        handle = session.get_one(Person, subject_id).handle
    if ballot.status == BallotStatus.CLOSED and outcome == BallotOutcome.PASSED:
        try:
            end_membership(ctx, person_id=subject_id, status=MembershipStatus.REMOVED, actor=ACTOR, ballot_id=ballot_id)
        except PolicyViolation:
            pass  # they left meanwhile: nothing to remove
        post_wg(
            ctx,
            template="removed_wg",
            key=f"removed:{ballot_id}",
            actor=ACTOR,
            about=f"ballot:{ballot_id}",
            handle=handle,
            ballot_id=ballot_id,
        )
    message_person(
        ctx,
        subject_id,
        template="removal_result_dm",
        key=f"removal-result:{ballot_id}",
        actor=ACTOR,
        about=f"ballot:{ballot_id}",
        group=GROUP,
        ballot_id=ballot_id,
        outcome=outcome.value if outcome else "cancelled",
    )
    record_applied(ctx, ballot_id=ballot_id, actor=ACTOR)
    return outcome.value if outcome else "cancelled"


@flow(name="membership-removal-ballot", flow_run_name=person_run_name("removal-ballot", "member"), log_prints=True)
def open_removal_ballot(member: str, proposed_by: str, now: datetime | None = None) -> dict[str, Any]:
    """Open a removal ballot (R-REMOVE) about ``member`` (WG handle or id), proposed by the voting
    member ``proposed_by``. Running it again while that ballot is open shows the same ballot."""
    ctx = context(now)
    return open_step(ctx, subject_id=person_id_of(ctx, member), proposer_id=person_id_of(ctx, proposed_by))
