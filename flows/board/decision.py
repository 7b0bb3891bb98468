"""The Board's decision on an escalated proposal (R-BOARD), from a Slack button or an operator.

A Slack click arrives at the gateway (``POST /hooks/slack``), is verified and stored in the inbox
with the route ``board-decision``; :func:`handle_board_decision` handles it:

1. parse the stored ``block_actions`` payload (``parse_board_actions``);
2. check the clicker against the Board list (the ledger's stored ``board_members``, each
   resolved to a Slack user id through the ledger's Slack identity or their e-mail,
   ``users.lookupByEmail``; and the click must come from our workspace);
3. in one ledger transaction: audit the attempt, allowed or refused
   (``proposal.decision-attempt``: codes and ledger ids only, no personal data) and, when
   allowed, record the decision (``record_board_decision``);
4. then announce: refused → the ephemeral "not allowed" reply (``deny``); already decided → an
   ephemeral "already decided by X"; allowed → the Board message is updated to show who decided
   and when (``record_decision``), the thread gets the history, and the WG is told on the Forum
   and Discord;
5. an approved platform proposal changes the platform list (R-PLATFORM,
   ``flows.platforms_state``): the transitions are recorded before step 4, the WG is told after
   it, and a platform made ``retiring`` has its managed roles revoked, then is retired.

Each step is keyed by the inbox event (``board:attempt:<event>:<n>`` …), so a redelivery or a
re-run after a crash does nothing twice. "Needs more information" keeps the proposal open (the
buttons stay); approve and reject are final, and a later click is refused kindly.

An operator records a decision with the ``board-record-decision`` flow: the typed input is
stored as an inbox event (source ``operator``) and handled by the same function.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from prefect import flow
from prefect.runtime import flow_run
from sqlalchemy import select

from connectors.base import InboundEvent
from connectors.errors import FatalError, InvalidSignature
from connectors.slack.blocks import escape
from connectors.slack.inbound import BoardAction, BoardCheck, check_board_member, parse_board_actions
from flows.board import budget
from flows.board.common import (
    TO_LEDGER,
    TO_SLACK,
    WORDS,
    BoardCtx,
    board_context,
    board_list,
    escalation_of,
    person_of_slack,
    post_wg,
    proposal_id_from,
    render,
    thread_reply,
    wg_threads,
    when,
    who,
)
from flows.kit import artifact, log, once

# R-PLATFORM: an approved platform proposal changes the platform list (recorded before the
# decision is announced), then the WG is told and a retiring platform's roles are revoked.
from flows.platforms_state import follow_up, record_board_outcome
from flows.wg_roles.board import board_click
from ledger import repo
from ledger.models import BoardDecision, InboxEvent, Person, Proposal
from rules.board import BoardAttempt, board_decided, check_board_decision, not_on_board

ACTOR = "flow:board-decision"
ROUTE = "board-decision"
__all__ = ["handle_board_decision", "record_decision"]

_EMOJI = {BoardDecision.APPROVED: "✅", BoardDecision.REJECTED: "❌", BoardDecision.NEEDS_INFO: "❓"}
_TITLE = {
    BoardDecision.APPROVED: "Approved",
    BoardDecision.REJECTED: "Rejected",
    BoardDecision.NEEDS_INFO: "More information requested",
}


def handle_board_decision(*, ledger: Any, event: InboxEvent, now: datetime | None = None) -> str:
    """Inbox handler of the ``board-decision`` route (a Slack Board button, or an operator's
    typed decision). Returns ``proposal:<id>:<decision>`` or ``refused:<code>:…`` (one per
    action, comma-separated). Raises only when a platform is unreachable (the event stays
    unprocessed and is handled again)."""
    ctx = board_context(now, ledger=ledger)
    with ctx.ledger.read() as session:
        row = session.get(InboxEvent, event.id)
        if row is None:
            return "missing"
        event_id, source, kind, dedupe = row.id, row.source, row.kind, row.dedupe_key
        payload = dict(row.payload or {})
    if source == "operator":
        return _operator(ctx, event_id, dict(payload.get("data") or {}))
    inbound = InboundEvent(
        platform="slack",
        dedupe_key=dedupe,
        kind=kind,
        actor=payload.get("actor"),
        attributes={str(k): str(v) for k, v in (payload.get("attributes") or {}).items()},
        data=dict(payload.get("data") or {}),
    )
    try:
        actions = parse_board_actions(inbound)
    except InvalidSignature:
        return "refused:malformed"
    if not actions:
        return "no-board-action"
    return ",".join(_click(ctx, event_id, index, action) for index, action in enumerate(actions))


def _workspace(ctx: BoardCtx) -> str | None:
    try:
        return str(ctx.slack.auth_test().get("team_id") or "") or None
    except Exception:  # noqa: BLE001 - without it the Board list check alone decides
        return None


def _attempt(
    ctx: BoardCtx,
    *,
    key: str,
    proposal_id: int | None,
    decision: BoardDecision,
    board_ok: bool,
    refused_code: str,
    source: str,
    person_id: int | None,
    decided_by: str,
    event_id: int,
    approved_amount: Decimal | None = None,
) -> dict[str, Any]:
    """Audit the attempt and, when allowed, record the decision, in one transaction; once per
    ``key`` (checked inside the transaction: writers serialize, so two workers agree)."""
    with ctx.ledger.transaction() as session:
        found = repo.effect_get(session, key=key)
        if found is not None:
            return dict(found["ref"])
        proposal = session.get(Proposal, proposal_id) if proposal_id else None
        ruled = check_board_decision(
            BoardAttempt(
                proposal_status=proposal.status.value if proposal is not None else None,
                on_board=board_ok,
                refused_code=refused_code,
            )
        )
        code, allowed = ruled.code, ruled.allowed
        repo.record_board_attempt(
            session,
            proposal_ref=f"proposal:{proposal_id}" if proposal else f"inbox:{event_id}",
            decision=decision,
            allowed=allowed,
            reason_code=code,
            source=source,
            actor=ACTOR,
            person_id=person_id,
            event_ref=f"inbox:{event_id}",
            at=ctx.now,
        )
        if allowed and proposal is not None:  # allowed: the proposal exists (R-BOARD)
            repo.record_board_decision(
                session, proposal, decision=decision, decided_by=decided_by, source=source, actor=ACTOR, at=ctx.now
            )
            # R-BUDGET: an approved budget request records its approved amount with the decision.
            budget.on_decision(
                session, proposal, decision=decision, approved_amount=approved_amount, actor=ACTOR, at=ctx.now
            )
        outcome = {"outcome": code, "decision": decision.value, "proposal": proposal_id, "at": ctx.now.isoformat()}
        if allowed and person_id is not None:  # R-BOARD: the WG is told by whom (a ledger id)
            outcome["person"] = person_id
        repo.effect_record(
            session, key=key, platform="ledger", actor=ACTOR, ref=outcome, about=f"inbox:{event_id}", at=ctx.now
        )
        return outcome


def _click(ctx: BoardCtx, event_id: int, index: int, action: BoardAction) -> str:
    """One Board button click: check, record, answer (see the module docstring)."""
    if action.proposal_id.startswith("wg-role:"):  # a Board Liaison question (R-ROLE-APPOINT)
        return board_click(ctx, event_id, index, action)
    key = f"board:attempt:{event_id}:{index}"
    proposal_id = proposal_id_from(action.proposal_id)
    decision = TO_LEDGER[action.decision]
    with ctx.ledger.read() as session:
        earlier = repo.effect_get(session, key=key)
    if earlier is None:
        board = board_list(ctx)
        check = check_board_member(action, board=board.entries, resolved=board.resolved, team_id=_workspace(ctx))
        person_id = (board.owners.get(check.matched) if check.matched else None) or person_of_slack(ctx, action.user_id)
        refused = "other-workspace" if "workspace" in check.reason else "not-on-board-list"
        outcome = _attempt(
            ctx,
            key=key,
            proposal_id=proposal_id,
            decision=decision,
            board_ok=check.allowed,
            refused_code=refused,
            source="slack",
            person_id=person_id,
            decided_by=action.user_id,
            event_id=event_id,
        )
    else:
        outcome = dict(earlier["ref"])
    code = outcome["outcome"]
    base = f"board:decision:{event_id}:{index}"
    if code == "allowed" and proposal_id is not None:  # allowed: the proposal exists
        record_board_outcome(ctx, proposal_id=proposal_id)
        announce(
            ctx,
            proposal_id=proposal_id,
            key=base,
            decision=decision,
            decided_by=action.user_id,
            decided_at=datetime.fromisoformat(outcome["at"]),
            note=None,
            source="Slack",
            # The decider as matched on the Board list (a member known by e-mail has no Slack
            # identity in the ledger): the WG is told by whom (R-BOARD).
            person_id=outcome.get("person") or person_of_slack(ctx, action.user_id),
        )
        follow_up(ctx, proposal_id=proposal_id)
        return f"proposal:{proposal_id}:{decision.value}"
    if code in ("not-on-board-list", "other-workspace"):
        _reply(
            ctx,
            key=f"{base}:deny",
            action=action,
            send=lambda: ctx.slack.deny(action, BoardCheck(allowed=False, reason=code, user_id=action.user_id)),
        )
        artifact(
            key=f"proposal-{proposal_id}-refused-click",
            title="Board click refused",
            decision=not_on_board(code),
            rows={"proposal": proposal_id, "decision": decision.value, "code": code},
        )
        return f"refused:{code}:proposal:{proposal_id}"
    text = _refusal_text(ctx, code=code, proposal_id=proposal_id)
    _reply(
        ctx,
        key=f"{base}:refused",
        action=action,
        send=lambda: ctx.slack.respond(
            action.response_url or "", {"response_type": "ephemeral", "replace_original": False, "text": text}
        ),
    )
    return f"refused:{code}:proposal:{proposal_id}"


def _refusal_text(ctx: BoardCtx, *, code: str, proposal_id: int | None) -> str:
    if code == "already-decided":
        with ctx.ledger.read() as session:
            proposal = session.get_one(Proposal, proposal_id)
            if proposal.decision is not None and proposal.decided_at is not None:
                return (
                    f"Thank you. This proposal was already decided: {WORDS[proposal.decision]} by "
                    f"{who(proposal.decided_by or '')} on {when(proposal.decided_at)}. "
                    "Nothing was changed."
                )
    return (
        "This proposal is not waiting for a Board decision (it is not known, not sent to "
        "the Board yet, or withdrawn). Nothing was changed."
    )


def _reply(ctx: BoardCtx, *, key: str, action: BoardAction, send: Any) -> None:
    """An ephemeral answer to the clicker, once. A ``response_url`` that expired (30 minutes)
    is logged, not retried: the attempt is already recorded."""
    if not action.response_url:
        return
    try:
        once(ctx, key=key, platform="slack", actor=ACTOR, about=None, act=lambda: (send(), None)[1])
    except FatalError as exc:
        log.warning("board: could not answer a Board click: %s", exc)


def announce(
    ctx: BoardCtx,
    *,
    proposal_id: int,
    key: str,
    decision: BoardDecision,
    decided_by: str,
    decided_at: datetime,
    note: str | None,
    source: str,
    person_id: int | None,
) -> None:
    """After the decision is in the ledger: the Board message shows it, the thread gets the
    history, the WG is told (each once, under ``key``)."""
    message = escalation_of(ctx, proposal_id)
    with ctx.ledger.read() as session:
        proposal = session.get_one(Proposal, proposal_id)
        slack_ref, title, kind = proposal.escalation_ref, proposal.title, proposal.kind
        # R-BUDGET: an approved request tells the WG the amount approved (it may not be the one asked).
        approved_text = (
            budget.approved_text(proposal) if decision == BoardDecision.APPROVED and kind == "budget" else None
        )
        name = decided_by
        if person_id is not None:
            person = session.get(Person, person_id)
            name = person.display_name or person.handle if person else decided_by
        elif source == "Slack":
            name = "a DSF Board member"
    if slack_ref and ":" in slack_ref and not slack_ref.startswith("board-escalation"):
        once(
            ctx,
            key=f"{key}:update",
            platform="slack",
            actor=ACTOR,
            about=f"proposal:{proposal_id}",
            act=lambda: ctx.slack.record_decision(
                slack_ref, message, decision=TO_SLACK[decision], decided_by=decided_by, decided_at=decided_at, note=note
            ),
        )
        _, text = render(
            "decision_thread",
            emoji=_EMOJI[decision],
            word=_TITLE[decision],
            who=who(decided_by),
            when=when(decided_at),
            source=source,
            note=escape(" ".join(note.split())) if note else None,
        )
        once(
            ctx,
            key=f"{key}:thread",
            platform="slack",
            actor=ACTOR,
            about=f"proposal:{proposal_id}",
            act=lambda: thread_reply(ctx, thread=slack_ref, text=text, key=f"{key}:thread"),
        )
    post_wg(
        ctx,
        template="decision_wg",
        key=f"{key}:wg",
        actor=ACTOR,
        about=f"proposal:{proposal_id}",
        threads=wg_threads(ctx, proposal_id),
        proposal_id=proposal_id,
        title=title,
        kind=kind,
        word=WORDS[decision],
        final=decision != BoardDecision.NEEDS_INFO,
        approved_text=approved_text,
        decided_by=name,
        decided_at=decided_at.strftime("%Y-%m-%d %H:%M UTC"),
        source=source,
        note=note,
    )
    artifact(
        key=f"proposal-{proposal_id}-decision",
        title=f"Board decision on proposal {proposal_id}",
        decision=board_decided(WORDS[decision]),
        rows={"decision": decision.value, "source": source, "at": decided_at.strftime("%Y-%m-%d %H:%M UTC")},
    )


# --------------------------------------------------------------------------------------------
# An operator records the decision


def _operator(ctx: BoardCtx, event_id: int, data: dict[str, Any]) -> str:
    proposal_id = int(data["proposal_id"])
    decision = BoardDecision(data["decision"])
    decided_by, note = str(data["decided_by"]), data.get("note") or None
    approved_amount = Decimal(data["approved_amount"]) if data.get("approved_amount") else None
    with ctx.ledger.read() as session:
        # decided_by may name a Slack account or a WG handle the ledger knows.
        person = repo.find_person_by_identity(session, platform="slack", external_id=decided_by) or session.scalar(
            select(Person).where(Person.handle == decided_by)
        )
        person_id = person.id if person else None
    key = f"board:attempt:{event_id}:0"
    outcome = _attempt(
        ctx,
        key=key,
        proposal_id=proposal_id,
        decision=decision,
        board_ok=True,
        refused_code="",
        source="operator",
        person_id=person_id,
        decided_by=decided_by,
        event_id=event_id,
        approved_amount=approved_amount,
    )
    if outcome["outcome"] != "allowed":
        return f"refused:{outcome['outcome']}:proposal:{proposal_id}"
    record_board_outcome(ctx, proposal_id=proposal_id)
    announce(
        ctx,
        proposal_id=proposal_id,
        key=f"board:decision:{event_id}:0",
        decision=decision,
        decided_by=decided_by,
        decided_at=datetime.fromisoformat(outcome["at"]),
        note=note,
        source="an operator",
        person_id=person_id,
    )
    follow_up(ctx, proposal_id=proposal_id)
    return f"proposal:{proposal_id}:{decision.value}"


def _approved_amount(ctx: BoardCtx, proposal_id: int, decision: str, value: Any) -> Decimal | None:
    """An operator's approved amount, checked before anything is recorded."""
    if decision != BoardDecision.APPROVED.value:
        raise ValueError("approved_amount: only an approval carries an approved amount")
    with ctx.ledger.read() as session:
        proposal = session.get(Proposal, proposal_id)
        if proposal is None:
            raise ValueError(f"proposal_id: proposal {proposal_id} does not exist")
        return budget.approved_amount_of(proposal, value)


def _decision_name() -> str:
    params = flow_run.parameters or {}
    return f"board-decision-proposal-{params.get('proposal_id')}"


@flow(name="board-record-decision", flow_run_name=_decision_name, log_prints=True)
def record_decision(
    proposal_id: int,
    decision: Literal["approved", "rejected", "needs-info"],
    decided_by: str,
    note: str | None = None,
    approved_amount: Decimal | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Record the Board's decision on ``proposal_id`` as an operator (a decision taken in a
    meeting or by mail): ``decided_by`` is who decided for the Board (a WG handle, a Slack user
    id or a name), ``note`` is shown on the Board message and to the WG. Takes the same path as
    a Slack click; running it again with the same input records nothing twice. A proposal
    already approved or rejected is refused with who decided it. ``approved_amount``: for an
    approved budget request, the amount the Board approved when it is not the amount asked
    (R-BUDGET; in the request's currency)."""
    ctx = board_context(now)
    decided_by = " ".join((decided_by or "").split())
    if not decided_by or len(decided_by) > 200:
        raise ValueError("decided_by: say who decided for the Board (1-200 characters)")
    if note is not None and len(note) > 3000:
        raise ValueError("note: at most 3000 characters")
    decision_value = BoardDecision(decision).value
    data: dict[str, Any] = {
        "proposal_id": int(proposal_id),
        "decision": decision_value,
        "decided_by": decided_by,
        "note": note or None,
    }
    if approved_amount not in (None, ""):
        data["approved_amount"] = str(_approved_amount(ctx, int(proposal_id), decision_value, approved_amount))
    digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode("utf-8")).hexdigest()[:32]
    with ctx.ledger.transaction() as session:
        row, created = repo.inbox_put(
            session,
            dedupe_key=f"operator:board-decision:{digest}",
            source="operator",
            kind="board_decision",
            payload={"data": data, "attributes": {}, "actor": "operator"},
            received_at=ctx.now,
            actor=ACTOR,
            route=ROUTE,
        )
        if created:
            # Claimed at once: the gateway's drain loop leaves it to this run.
            repo.inbox_claim(session, row.id, actor=ACTOR, at=ctx.now)
        event_id, done = row.id, row.result_ref if row.processed_at else None
    if done is None:
        done = handle_board_decision(ledger=ctx.ledger, event=row, now=ctx.now)
        with ctx.ledger.transaction() as session:
            repo.inbox_mark_processed(
                session, session.get_one(InboxEvent, event_id), actor=ACTOR, result_ref=done[:200], at=ctx.now
            )
    return {"proposal": int(proposal_id), "result": done, "inbox": event_id}
