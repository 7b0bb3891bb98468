"""The WG's endorsement ballot before a Board escalation (charter ``ballots.endorsement``).

It is the membership ballot machinery (``flows.membership.ballot``) with a proposal as its
subject: a ledger ballot of kind ``endorsement`` with its electorate snapshot (R-ELECTORATE),
shown as a Forum poll and Discord buttons in the WG's private spaces under the same effect keys
(``ballot:<id>:post:<platform>``), so the vote handler, the Forum poll reader and the scheduled
closer find it like any other ballot. It passes as an approval does (R-VOTE-APPROVE quorum,
R-VOTE-EARLY), and :func:`apply_outcome` escalates the proposal when it passed.

:func:`settle` is ``flows.membership.ballot.settle`` for this kind, with the same effect keys
(closing on the platforms, announcing, ``ballot:<id>:applied``), so whichever closer runs first
does the work once; it is called when the escalation flow is run again and by the daily
``board-reminders`` run.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from flows.ballots import (
    applied_result,
    open_ledger_ballot,
    posted_ref,
    record_applied,
    result_fields,
    settled,
    show_result,
)
from flows.board.common import BoardCtx, current_slack, post_wg, render, split_body
from flows.kit import artifact, log, once
from flows.membership import ballot as ballots
from ledger import repo
from ledger.models import Ballot, BallotKind, BallotOutcome, BallotStatus, Person, Proposal, ProposalStatus
from rules import quorum
from rules.board import endorsement_opened

ACTOR = "flow:board-endorsement"


def amount_text(proposal: Proposal) -> str | None:
    """``1,200 EUR`` for a budget request, else None."""
    if proposal.amount is None:
        return None
    return f"{proposal.amount:,.2f}".removesuffix(".00") + f" {proposal.currency or ''}".rstrip()


def open_step(ctx: BoardCtx, *, proposal_id: int) -> dict[str, Any]:
    """Open (once) the endorsement ballot of a proposal and show it on every WG platform."""
    with ctx.ledger.transaction() as session:
        proposal = session.get_one(Proposal, proposal_id)
        ballot = repo.endorsement_ballot_of(session, proposal)
        if ballot is None:
            ballot = open_ledger_ballot(
                ctx,
                session,
                kind="endorsement",
                subject_ref=repo.ref(proposal),
                actor=ACTOR,
                params={"proposal": proposal.id},
            )
        if proposal.status == ProposalStatus.DRAFT:
            repo.mark_proposal_endorsing(session, proposal, ballot_id=ballot.id, actor=ACTOR, at=ctx.now)
        ballot_id, size, closes = ballot.id, len(ballot.electors), ballot.closes_at
        proposer = session.get(Person, proposal.proposed_by_person_id) if proposal.proposed_by_person_id else None
        summary, links = split_body(proposal.body)
        values = {
            "proposal_id": proposal.id,
            "title": proposal.title,
            "kind": proposal.kind,
            "summary": summary,
            "amount_text": amount_text(proposal),
            "purpose": proposal.purpose,
            "links": list(links),
            "proposer": proposer.handle if proposer else "an operator",
        }
    needed = quorum(size, kind="endorsement", charter=ctx.charter)
    posted = post_ballot(ctx, ballot_id=ballot_id, closes=closes, electorate=size, quorum=needed, values=values)
    artifact(
        key=f"proposal-{proposal_id}-endorsement",
        title=f"Endorsement ballot {ballot_id}",
        decision=endorsement_opened(proposal_id),
        rows={
            "electorate": size,
            "quorum": needed,
            "closes": closes.strftime("%Y-%m-%d %H:%M UTC"),
            "shown on": ", ".join(sorted(posted)) or "no platform yet (run again)",
        },
    )
    return {"ballot": ballot_id, "electorate": size, "quorum": needed, "platforms": sorted(posted)}


def post_ballot(
    ctx: BoardCtx, *, ballot_id: int, closes: Any, electorate: int, quorum: int, values: dict[str, Any]
) -> dict[str, Any]:
    """``flows.membership.ballot.post`` with this package's question template: the same effect
    keys and recorded ids, so the membership vote handler and closer know the ballot."""
    posted = {}
    failed: list[Exception] = []
    for space in ctx.platforms.spaces.values():
        if space.ballots is None:
            continue
        question, _text = render(
            "endorsement_question",
            platform=space.platform,
            ballot_id=ballot_id,
            electorate=electorate,
            quorum=quorum,
            closes_at=closes.strftime("%Y-%m-%d %H:%M UTC"),
            **values,
        )
        key = f"ballot:{ballot_id}:post:{space.platform}"

        def act(s=space, q=question, k=key) -> dict[str, Any]:
            b = s.ballots.open_ballot(
                channel=s.wg_channel,
                question=q,
                options=list(ballots.OPTIONS),
                voters_group=s.wg_role.name,
                closes_at=closes,
                key=k,
            )
            return posted_ref(b)

        try:
            posted[space.platform] = once(
                ctx, key=key, platform=space.platform, actor=ACTOR, about=f"ballot:{ballot_id}", act=act
            )["ref"]
        except Exception as exc:  # noqa: BLE001 - post on the others first, then fail the run
            log.warning("board: ballot:%s not posted on %s: %s", ballot_id, space.platform, type(exc).__name__)
            failed.append(exc)
    if failed:
        raise failed[0]  # the rerun posts what is missing; the rest is keyed
    return posted


def settle(ctx: BoardCtx, *, ballot_id: int) -> dict[str, Any]:
    """Read the Forum poll's votes, tally (R-VOTE-APPROVE, R-VOTE-EARLY); when decided close it
    in the ledger, then on the platforms, announce it and apply it. Safe to call again."""
    try:
        ballots.sync_platform_votes(ctx, ballot_id=ballot_id)
    except Exception as exc:  # noqa: BLE001 - a platform down: tally what the ledger has
        log.warning("board: votes of ballot:%s not read: %s", ballot_id, type(exc).__name__)
    with ctx.ledger.transaction() as session:
        ballot = session.get(Ballot, ballot_id)
        if ballot is None or ballot.kind != BallotKind.ENDORSEMENT:
            raise LookupError(f"ballot:{ballot_id} is not an endorsement ballot")
        closed = ballots.closed_result(ctx, session, ballot, ballot_id, actor=ACTOR)
        if isinstance(closed, dict):
            return closed
        outcome, ruling, figures = closed
        proposal_id = int(ballot.subject_ref.split(":")[1])
        line = ballots.result_line(
            outcome=outcome, figures=figures, per_platform=ballots.votes_by_platform(session, ballot)
        )
    where = ballots.close_on_platforms(ctx, ballot_id=ballot_id, figures=figures, line=line, actor=ACTOR)
    post_wg(
        ctx,
        template="endorsement_result",
        actor=ACTOR,
        proposal_id=proposal_id,
        **result_fields(ballot_id=ballot_id, where=where, outcome=outcome, ruling=ruling, figures=figures),
    )
    show_result(
        ballot_id=ballot_id,
        title=f"Endorsement ballot {ballot_id} {outcome}",
        outcome=outcome,
        ruling=ruling,
        figures=figures,
    )
    applied = apply_outcome(ctx, ballot_id=ballot_id)
    return settled(ballot_id=ballot_id, outcome=outcome, ruling=ruling, figures=figures, applied=applied)


def apply_outcome(ctx: Any, *, ballot_id: int) -> str:
    """Passed: the proposal goes to the Board (``escalate``). Failed or cancelled: the proposal
    is withdrawn as not endorsed and the WG is told. Idempotent (``ballot:<id>:applied``).

    ``ctx`` may be a membership ``Ctx`` (``flows.membership.ballot.settle`` calls this for
    endorsement ballots); the Slack connector is then the process's."""
    from flows.board.escalation import escalate  # lazy: cycle: flows.board.endorsement <-> flows.board.escalation

    if not isinstance(ctx, BoardCtx):
        ctx = BoardCtx(ledger=ctx.ledger, platforms=ctx.platforms, now=ctx.now, slack=current_slack())
    with ctx.ledger.read() as session:
        ballot = session.get(Ballot, ballot_id)
        proposal = session.get(Proposal, int(ballot.subject_ref.split(":")[1]))
        outcome = ballot.outcome if ballot.status == BallotStatus.CLOSED else None
        proposal_id = proposal.id
        title, kind = proposal.title, proposal.kind
        reason = (ballot.tally or {}).get("reason", "the ballot was cancelled")
        applied = applied_result(session, ballot_id)
    if applied is not None:
        return applied
    if outcome == BallotOutcome.PASSED:
        result = escalate(ctx, proposal_id=proposal_id)["status"]
    else:
        with ctx.ledger.transaction() as session:
            proposal = session.get(Proposal, proposal_id)
            if proposal.status in (ProposalStatus.DRAFT, ProposalStatus.ENDORSING):
                repo.withdraw_proposal(session, proposal, reason_code="not-endorsed", actor=ACTOR, at=ctx.now)
        post_wg(
            ctx,
            template="not_endorsed_wg",
            key=f"board:not-endorsed:{proposal_id}",
            actor=ACTOR,
            about=f"proposal:{proposal_id}",
            proposal_id=proposal_id,
            title=title,
            kind=kind,
            ballot_id=ballot_id,
            outcome=outcome.value if outcome else "cancelled",
            reason=reason,
        )
        result = "not-endorsed"
    record_applied(ctx, ballot_id=ballot_id, actor=ACTOR, result=result)
    return result


def open_endorsements(ctx: BoardCtx) -> list[int]:
    """Ids of the endorsement ballots still open, and of closed ones whose outcome was not
    applied yet (a crash between closing and escalating)."""
    with ctx.ledger.read() as session:
        rows = list(
            session.scalars(
                select(Ballot)
                .where(
                    Ballot.kind == BallotKind.ENDORSEMENT, Ballot.status.in_([BallotStatus.OPEN, BallotStatus.CLOSED])
                )
                .order_by(Ballot.id)
            )
        )
        return [
            b.id
            for b in rows
            if b.status == BallotStatus.OPEN or repo.effect_get(session, key=f"ballot:{b.id}:applied") is None
        ]
