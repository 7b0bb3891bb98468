"""The Board Liaison, named by the DSF Board in Slack (R-ROLE-BOARD, R-ROLE-APPOINT).

Asking is checked first: a nominee who is not on the Board list (the ledger's ``board_members``,
imported with the roster, the list R-BOARD's clicks are checked against) or who is the CoC
Liaison is refused with the rule before anything is posted. Otherwise the Board's channel gets
the same message as an escalation (``BoardEscalation``, buttons ``board_approve`` ...) whose
``proposal:`` value is ``wg-role:<appointment id>``; a click comes back through the gateway on
the ``board-decision`` route and ``flows.board.decision`` hands it to :func:`board_click`:

- the clicker must be on the Board list (else the ephemeral "not allowed" reply, as for a
  proposal); the click is audited either way;
- Approve: R-ROLE-* is checked again, the appointment recorded (or refused, answered to the
  clicker with the rule and nothing announced), the Slack message shows who decided, the WG is
  told; Reject: recorded and the WG told; Needs more information: the request stays open.

Each click is handled once (``wg-role:click:<event>:<n>``).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from prefect import flow

from connectors.errors import FatalError
from connectors.slack.blocks import BoardDecision as SlackDecision
from connectors.slack.blocks import BoardEscalation
from connectors.slack.inbound import BoardAction, BoardCheck, check_board_member
from flows.board.common import BoardCtx, board_context, board_list, person_of_slack
from flows.kit import done, log, once, record
from flows.wg_roles.common import appoint, post_wg, render, request_or_refuse, result, show
from ledger import appointments, audit
from ledger.models import Person
from ledger.models_appointments import WgAppointment
from rules.appointments import LABELS

ACTOR = "flow:wg-roles-board"
PREFIX = "wg-role:"


def appointment_id_from(value: str) -> int | None:
    """The appointment id in a Board button's ``wg-role:<id>`` value (None: not ours)."""
    match = re.fullmatch(r"wg-role:(\d{1,12})", value or "")
    return int(match.group(1)) if match else None


def _message(row_id: int, nominee: str, requested_by: str) -> BoardEscalation:
    return BoardEscalation(
        proposal_id=f"{PREFIX}{row_id}",
        kind="wg-role",
        title=f"Name {nominee} as the WG's Board Liaison",
        summary=(
            f"The Online Community Working Group asks the Board to name its Board Liaison "
            f"(R-ROLE-APPOINT). Proposed: {nominee}, who is on the Board list (R-ROLE-BOARD). "
            "Approve names them; Reject leaves the role as it is."
        ),
        endorsement="not required by the charter",
        requested_by=requested_by,
    )


def ask_step(ctx: BoardCtx, *, nominee: str, requested_by: str) -> dict[str, Any]:
    """Check, record, then post the question to the Board's channel (once)."""
    row, checked, _ = request_or_refuse(
        ctx, role="board_liaison", nominee=nominee, via="board", requested_by=requested_by, actor=ACTOR
    )
    if not checked.allowed:
        show(f"wg-appointment-{row.id}", checked, via="board", status="refused")
        return result(row, checked)
    message = _message(row.id, checked.nominee, requested_by)
    key = f"wg-role:board:{row.id}"
    posted = once(
        ctx,
        key=key,
        platform="slack",
        actor=ACTOR,
        about=f"wg-appointment:{row.id}",
        act=lambda: ctx.slack.escalate(message, channel=ctx.board_channel, key=key),
    )
    with ctx.ledger.transaction() as session:  # the Slack message's "channel:ts"
        appointments.set_message(session, session.get_one(WgAppointment, row.id), message_ref=str(posted["ref"]["id"]))
    show(f"wg-appointment-{row.id}", checked, via="board", status=row.status, asked="the Board's Slack channel")
    return result(row, checked)


def board_click(ctx: BoardCtx, event_id: int, index: int, action: BoardAction) -> str:
    """One Board button on a Board Liaison question (see the module docstring)."""
    appointment_id = appointment_id_from(action.proposal_id)
    key = f"wg-role:click:{event_id}:{index}"
    recorded = done(ctx, key)
    if recorded is not None:
        return str(recorded["ref"]["result"])
    board = board_list(ctx)
    allowed = check_board_member(action, board=board.entries, resolved=board.resolved, team_id=_workspace(ctx)).allowed
    with ctx.ledger.transaction() as session:
        row = session.get(WgAppointment, appointment_id) if appointment_id else None
        nominee = session.get_one(Person, row.nominee_person_id).handle if row else "?"
        status, message_ref = (row.status, row.message_ref) if row else ("unknown", None)
        audit.append(
            session,
            actor=ACTOR,
            action="wg-appointment.board-click",
            subject=f"wg-appointment:{appointment_id or 0}",
            at=ctx.now,
            payload={
                "decision": action.decision.value,
                "allowed": allowed,
                "status": status,
                "event": f"inbox:{event_id}",
            },
        )
    if not allowed:
        _answer(
            ctx,
            action,
            key=f"{key}:deny",
            send=lambda: ctx.slack.deny(
                action, BoardCheck(allowed=False, reason="not-on-board-list", user_id=action.user_id)
            ),
        )
        outcome = f"refused:not-on-board-list:wg-role:{appointment_id}"
    elif appointment_id is None or status != "pending":
        _answer(
            ctx,
            action,
            key=f"{key}:closed",
            text=(f"This question is not open any more ({status}). Nothing was changed."),
        )
        outcome = f"refused:{status}:wg-role:{appointment_id}"
    elif action.decision == SlackDecision.NEEDS_INFO:
        _answer(
            ctx, action, key=f"{key}:info", text=("Noted: the question stays open. Please ask the WG in this thread.")
        )
        outcome = f"wg-role:{appointment_id}:needs-info"
    else:
        outcome = _decide(ctx, action, key=key, appointment_id=appointment_id, nominee=nominee, message_ref=message_ref)
    record(ctx, key=key, actor=ACTOR, ref={"result": outcome}, about=f"inbox:{event_id}")
    return outcome


def _decide(
    ctx: BoardCtx, action: BoardAction, *, key: str, appointment_id: int, nominee: str, message_ref: str | None
) -> str:
    decided_by = f"slack:{action.user_id}"
    if action.decision == SlackDecision.APPROVE:
        outcome = appoint(ctx, appointment_id=appointment_id, decided_by=decided_by, actor=ACTOR)
        if outcome["status"] == "refused":
            # A hard rule (the list changed since the question): the clicker hears the rule;
            # nothing is announced.
            _answer(ctx, action, key=f"{key}:refused", text=outcome["explanation"])
            return f"refused:{outcome['ruling']}:wg-role:{appointment_id}"
    else:
        with ctx.ledger.transaction() as session:
            row = session.get_one(WgAppointment, appointment_id)
            appointments.decide(session, row, status="rejected", decided_by=decided_by, actor=ACTOR, at=ctx.now)
        post_wg(
            ctx,
            template="board_rejected_wg",
            key=f"wg-role:rejected:{appointment_id}",
            actor=ACTOR,
            about=f"wg-appointment:{appointment_id}",
            renderer=render,
            nominee=nominee,
            label=LABELS["board_liaison"],
        )
    if message_ref:
        message = _message(appointment_id, nominee, "the working group")
        once(
            ctx,
            key=f"{key}:update",
            platform="slack",
            actor=ACTOR,
            about=f"wg-appointment:{appointment_id}",
            act=lambda: ctx.slack.record_decision(
                message_ref, message, decision=action.decision, decided_by=action.user_id, decided_at=ctx.now
            ),
        )
    person = person_of_slack(ctx, action.user_id)
    log.info("wg-roles: Board %s on wg-appointment:%s (person:%s)", action.decision.value, appointment_id, person)
    return f"wg-role:{appointment_id}:{'appointed' if action.decision == SlackDecision.APPROVE else 'rejected'}"


def _workspace(ctx: BoardCtx) -> str | None:
    try:
        return str(ctx.slack.auth_test().get("team_id") or "") or None
    except Exception:  # noqa: BLE001 - without it the Board list check alone decides
        return None


def _answer(ctx: BoardCtx, action: BoardAction, *, key: str, text: str | None = None, send: Any = None) -> None:
    """An ephemeral answer to the clicker, once; an expired ``response_url`` is logged."""
    if not action.response_url:
        return
    send = send or (
        lambda: ctx.slack.respond(
            action.response_url, {"response_type": "ephemeral", "replace_original": False, "text": text}
        )
    )
    try:
        once(ctx, key=key, platform="slack", actor=ACTOR, about=None, act=lambda: (send(), None)[1])
    except FatalError as exc:
        log.warning("wg-roles: could not answer a Board click: %s", exc)


@flow(name="wg-roles-ask-board", flow_run_name="wg-ask-board-liaison", log_prints=True)
def ask_board(nominee: str, requested_by: str = "operator", now: datetime | None = None) -> dict[str, Any]:
    """Ask the DSF Board in Slack to name ``nominee`` (WG handle or id) as Board Liaison.
    Refused at once when ``nominee`` is not on the Board list or is the CoC Liaison
    (R-ROLE-BOARD); otherwise the Board decides with the buttons."""
    return ask_step(board_context(now), nominee=nominee, requested_by=requested_by)
