"""The Board escalation (R-BOARD, R-DIRECT): a proposal to trial, migrate or retire a platform,
or a budget request, goes to the DSF Board's Slack channel with decision buttons, after the WG
endorsed it when the charter asks for it (``ballots.endorsement.required``).

Steps, each recorded in the ledger before it is announced and each done once (effect keys):

1. **file**: the input is checked (:func:`flows.board.common.validate_proposal`); a kind the WG
   decides itself (R-DIRECT) is not recorded nor escalated, and the run says why; otherwise the
   proposal is recorded (``proposal.created``), once per content (or per Discord command);
2. **endorse** (when required): the endorsement ballot opens on the Forum and Discord
   (``flows.board.endorsement``); the run ends there, nothing waits. The ballot is closed by the
   vote that decides it or by a scheduled closer, and its passing escalates the proposal;
3. **escalate**: ``proposal.escalated`` in the ledger, then the Block Kit message to the Board
   channel (keyed: a re-run finds it and posts nothing), then where it is (``channel:ts``), then
   the WG is told on the Forum and Discord.

Running the flow again with ``proposal_id`` continues a proposal from where it is: it re-shows a
ballot a platform missed, closes a decided endorsement ballot, or repairs a missing post.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from prefect import flow
from prefect.runtime import flow_run

from flows.board import budget, endorsement
from flows.board.common import (
    BoardCtx,
    InvalidProposal,
    ProposalInput,
    board_context,
    compose_body,
    escalation_of,
    post_wg,
    validate_proposal,
)
from flows.kit import answer_interaction, artifact, log, once
from flows.platforms_state import check_proposal
from ledger import repo
from ledger.models import Idea, InboxEvent, Person, Platform, Proposal, ProposalStatus
from rules import Decision
from rules.board import escalated

ACTOR = "flow:board-escalation"
__all__ = ["board_escalation", "continue_step", "escalate", "file_step", "handle_board_proposal"]


def file_step(
    ctx: BoardCtx, *, proposal: ProposalInput, proposer_id: int | None, key: str, idea_id: int | None = None
) -> tuple[int, bool]:
    """Record the proposal once per ``key``: (proposal id, created now). ``idea_id``: the
    backlog item it is filed from, linked to it in the same transaction (R-BUDGET)."""
    with ctx.ledger.transaction() as session:
        found = repo.effect_get(session, key=key)
        if found is not None:
            return int(found["ref"]["proposal_id"]), False
        person = session.get(Person, proposer_id) if proposer_id else None
        row = repo.create_proposal(
            session,
            kind=proposal.kind,
            title=proposal.title,
            actor=ACTOR,
            body=compose_body(proposal.summary, proposal.links),
            amount=proposal.amount,
            currency=proposal.currency,
            purpose=proposal.purpose,
            proposed_by=person,
            at=ctx.now,
            platform=proposal.platform,
            replaces_platform=proposal.replaces,
            trial_ends_at=proposal.trial_ends_at,
        )
        if idea_id is not None:
            budget.link_idea_in(session, idea_id=idea_id, proposal=row, actor=ACTOR, at=ctx.now)
        # In the same transaction: a crash cannot leave a proposal whose key is unrecorded.
        repo.effect_record(
            session,
            key=key,
            platform="ledger",
            actor=ACTOR,
            ref={"proposal_id": row.id},
            about=repo.ref(row),
            at=ctx.now,
        )
        return row.id, True


def check_platforms(ctx: BoardCtx, proposal: ProposalInput) -> None:
    """R-PLATFORM: a platform proposal must be one the platform list allows today (an unknown
    platform, the last approved one, a trial of a platform in use are refused before anything
    is recorded); the Board's approval is judged again when it comes."""
    decision = check_proposal(
        ctx, kind=proposal.kind, platform=proposal.platform, replaces=proposal.replaces, ends_at=proposal.trial_ends_at
    )
    if decision is not None and not decision.allowed:
        raise InvalidProposal(str(decision.evidence.get("field", "platform")), f"{decision.reason} ({decision.ruling})")


def escalate(ctx: BoardCtx, *, proposal_id: int) -> dict[str, Any]:
    """Send the proposal to the Board: ledger, then Slack, then the WG. Idempotent; a decided
    proposal is only repaired (a missing post), never sent again."""
    with ctx.ledger.transaction() as session:
        proposal = session.get_one(Proposal, proposal_id)
        if proposal.status == ProposalStatus.WITHDRAWN:
            return {"proposal": proposal_id, "status": "withdrawn"}
        if proposal.status in (ProposalStatus.DRAFT, ProposalStatus.ENDORSING):
            ballot = repo.endorsement_ballot_of(session, proposal)
            repo.escalate_proposal(
                session,
                proposal,
                actor=ACTOR,
                endorsement_ballot_id=ballot.id if ballot else None,
                escalation_ref=f"board-escalation:{repo.ref(proposal)}",
                at=ctx.now,
            )
        status, escalated_at = proposal.status.value, proposal.escalated_at
        title, kind, amount = proposal.title, proposal.kind, endorsement.amount_text(proposal)
    message = escalation_of(ctx, proposal_id)
    posted = once(
        ctx,
        key=f"board:escalation:{proposal_id}",
        platform="slack",
        actor=ACTOR,
        about=f"proposal:{proposal_id}",
        act=lambda: ctx.slack.escalate(message, key=f"board-escalation:proposal:{proposal_id}"),
    )
    slack_ref = str(posted["ref"]["id"])
    with ctx.ledger.transaction() as session:
        repo.set_escalation_ref(
            session, session.get_one(Proposal, proposal_id), escalation_ref=slack_ref, actor=ACTOR, at=ctx.now
        )
    endorsement_text = (
        message.endorsement.render().replace("*", "")
        if not isinstance(message.endorsement, str)
        else message.endorsement
    )
    told = post_wg(
        ctx,
        template="escalated_wg",
        key=f"board:escalated-wg:{proposal_id}",
        actor=ACTOR,
        about=f"proposal:{proposal_id}",
        proposal_id=proposal_id,
        title=title,
        kind=kind,
        amount_text=amount,
        endorsement=endorsement_text,
        reminder_after_days=ctx.charter.board.reminder_after_days,
    )
    artifact(
        key=f"proposal-{proposal_id}-escalation",
        title=f"Proposal {proposal_id} escalated",
        decision=escalated(kind),
        rows={
            "status": status,
            "escalated": escalated_at.strftime("%Y-%m-%d %H:%M UTC") if escalated_at else "-",
            "slack message": slack_ref,
            "WG told on": ", ".join(sorted(told)) or "-",
            "endorsement": endorsement_text,
        },
    )
    return {"proposal": proposal_id, "status": status, "slack": slack_ref, "wg": sorted(told)}


def continue_step(ctx: BoardCtx, *, proposal_id: int) -> dict[str, Any]:
    """Move a recorded proposal on from where it is (see the module docstring)."""
    with ctx.ledger.read() as session:
        proposal = session.get(Proposal, proposal_id)
        if proposal is None:
            raise LookupError(f"proposal:{proposal_id} does not exist")
        status = proposal.status
        ballot = repo.endorsement_ballot_of(session, proposal)
        ballot_id = ballot.id if ballot else None
    if status == ProposalStatus.WITHDRAWN:
        return {"proposal": proposal_id, "status": "withdrawn", "ballot": ballot_id}
    if status in (ProposalStatus.ESCALATED, ProposalStatus.DECIDED):
        return escalate(ctx, proposal_id=proposal_id)
    if ballot is None and not ctx.charter.ballots.endorsement.required:
        return escalate(ctx, proposal_id=proposal_id)
    opened = endorsement.open_step(ctx, proposal_id=proposal_id)
    ballot_id = opened["ballot"]
    if ballot is not None:
        # A ballot opened by an earlier run: it may be decided by now (R-VOTE-EARLY, deadline).
        settled = endorsement.settle(ctx, ballot_id=ballot_id)
        if settled["outcome"] != "open":
            with ctx.ledger.read() as session:
                now_status = session.get_one(Proposal, proposal_id).status.value
            return {
                "proposal": proposal_id,
                "status": now_status,
                "ballot": ballot_id,
                "endorsement": settled["outcome"],
            }
    return {
        "proposal": proposal_id,
        "status": "endorsing",
        "ballot": ballot_id,
        "electorate": opened["electorate"],
        "quorum": opened["quorum"],
        "platforms": opened["platforms"],
    }


def not_escalated(decision: Decision, *, kind: str, title: str) -> dict[str, Any]:
    """The answer for a proposal the WG decides itself (R-DIRECT): an artifact and the value."""
    artifact(
        key="proposal-not-escalated",
        title=f"Not escalated: {title[:150]}",
        decision=decision,
        rows={"kind": kind},
        note="Nothing was recorded or sent: the WG decides this itself (R-DIRECT).",
    )
    return {
        "proposal": None,
        "status": "not-escalated",
        "escalated": False,
        "ruling": decision.ruling,
        "reason": decision.reason,
    }


def _person_id(ctx: BoardCtx, handle: str | None) -> int | None:
    if not handle:
        return None
    with ctx.ledger.read() as session:
        return repo.get_person(session, handle).id


def _run_name() -> str:
    params = flow_run.parameters or {}
    if params.get("proposal_id"):
        return f"board-escalation-proposal-{params['proposal_id']}"
    return f"board-escalation-{params.get('kind') or 'proposal'}"


@flow(name="board-escalation", flow_run_name=_run_name, log_prints=True)
def board_escalation(
    kind: str = "",
    title: str = "",
    summary: str = "",
    amount: Decimal | None = None,
    currency: str | None = None,
    purpose: str | None = None,
    links: list[str] | None = None,
    proposed_by: str | None = None,
    proposal_id: int | None = None,
    from_idea: int | None = None,
    platform: str | None = None,
    replaces: str | None = None,
    trial_ends: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """File a proposal for the DSF Board (R-BOARD) and move it on; or, with ``proposal_id``,
    continue a recorded one.

    ``kind``: ``trial-platform``, ``migrate-platform``, ``retire-platform`` or ``budget``
    (with ``amount``, ``currency`` (ISO 4217) and ``purpose``); a kind the WG decides itself
    (R-DIRECT, e.g. ``moderator-change``) is not escalated and the run says why.
    ``proposed_by``: the WG handle of the member proposing it (empty: the operator).
    ``links``: http(s) URLs (discussion topic, quotes). ``from_idea``: the backlog item the
    proposal comes from (linked to it, R-BUDGET). ``platform``: the platform a
    trial/migrate/retire proposal is about (``matrix``); ``replaces``: the approved platform a
    migration replaces; ``trial_ends``: a trial's end date, YYYY-MM-DD (empty: the charter's
    ``trials.default_days``) (R-PLATFORM). ``now``: empty = the real clock.
    A bad field fails the run with the field named, before anything is recorded."""
    ctx = board_context(now)
    if proposal_id is not None:
        return continue_step(ctx, proposal_id=int(proposal_id))
    checked = validate_proposal(
        kind=kind,
        title=title,
        summary=summary,
        amount=amount,
        currency=currency,
        purpose=purpose,
        links=links,
        platform=platform,
        replaces=replaces,
        trial_ends=trial_ends,
        charter=ctx.charter,
    )
    if checked.decision is not None and checked.decision.allowed:
        return not_escalated(checked.decision, kind=checked.kind, title=checked.title)
    check_platforms(ctx, checked)
    proposer = _person_id(ctx, proposed_by)
    if from_idea is not None:
        with ctx.ledger.read() as session:
            if session.get(Idea, int(from_idea)) is None:
                raise InvalidProposal("from_idea", f"idea {from_idea} does not exist")
    new_id, created = file_step(
        ctx, proposal=checked, idea_id=from_idea, proposer_id=proposer, key=checked.key(proposed_by or "operator")
    )
    if not created:
        log.info("board: the same proposal was filed before: proposal:%s", new_id)
    return {**continue_step(ctx, proposal_id=new_id), "filed": created}


# --------------------------------------------------------------------------------------------
# A member files a proposal from Discord


def _answer(ctx: BoardCtx, event_id: int, attributes: dict[str, str], text: str) -> None:
    answer_interaction(
        ctx,
        key=f"board:answer:inbox:{event_id}",
        actor=ACTOR,
        about=f"inbox:{event_id}",
        attributes=attributes,
        text=text,
    )


def handle_board_proposal(*, ledger: Any, event: InboxEvent, now: datetime | None = None) -> str:
    """Inbox handler for the Discord ``/propose`` command (see flows/README.md, "Board
    escalation"): options ``kind``, ``title``, ``summary``, ``amount``, ``currency``,
    ``purpose``, ``links``, ``platform``, ``replaces``, ``trial_ends``. Only an active WG
    member may file (the WG endorses, R-BOARD). Returns ``proposal:<id>``,
    ``not-escalated:R-DIRECT`` or ``refused:<code>``."""
    ctx = board_context(now, ledger=ledger)
    with ctx.ledger.read() as session:
        row = session.get_one(InboxEvent, event.id)
        payload = dict(row.payload or {})
        attrs = {str(k): str(v) for k, v in (payload.get("attributes") or {}).items()}
        filed = repo.effect_get(session, key=f"board:file:inbox:{row.id}")
        person = repo.find_person_by_identity(session, platform=Platform.DISCORD, external_id=attrs.get("user_id", ""))
        membership = repo.open_membership(session, person) if person else None
        person_id = person.id if person else None
    if filed is not None:
        proposal_id = int(filed["ref"]["proposal_id"])
        continue_step(ctx, proposal_id=proposal_id)
        return f"proposal:{proposal_id}"
    if membership is None or membership.status.value != "active":
        _answer(
            ctx, event.id, attrs, "Only members of the working group can send a proposal to the DSF Board (R-BOARD)."
        )
        return "refused:R-BOARD:not-a-member"
    option = {k.removeprefix("option."): v for k, v in attrs.items() if k.startswith("option.")}
    try:
        checked = validate_proposal(
            kind=option.get("kind", ""),
            title=option.get("title", ""),
            summary=option.get("summary", ""),
            amount=option.get("amount"),
            currency=option.get("currency"),
            purpose=option.get("purpose"),
            links=option.get("links"),
            platform=option.get("platform"),
            replaces=option.get("replaces"),
            trial_ends=option.get("trial_ends"),
            charter=ctx.charter,
        )
        if not checked.decision or not checked.decision.allowed:
            check_platforms(ctx, checked)
    except InvalidProposal as exc:
        _answer(ctx, event.id, attrs, f"Your proposal was not filed: {exc}.")
        return f"refused:invalid:{exc.field}"
    if checked.decision is not None and checked.decision.allowed:
        _answer(
            ctx,
            event.id,
            attrs,
            f"Not sent to the Board: {checked.decision.reason} (R-DIRECT). Bring it to the working group directly.",
        )
        return "not-escalated:R-DIRECT"
    proposal_id, _ = file_step(ctx, proposal=checked, proposer_id=person_id, key=f"board:file:inbox:{event.id}")
    result = continue_step(ctx, proposal_id=proposal_id)
    if result["status"] == "endorsing":
        text = (
            f"Proposal {proposal_id} is filed. The working group now votes on endorsing it "
            f"(ballot {result['ballot']}); if endorsed it goes to the DSF Board."
        )
    else:
        text = f"Proposal {proposal_id} is filed and was sent to the DSF Board."
    _answer(ctx, event.id, attrs, text)
    return f"proposal:{proposal_id}"
