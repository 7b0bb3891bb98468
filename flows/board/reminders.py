"""Reminders to the Board (R-BOARD: "undecided after 30 days: a reminder to the Board").

An escalated proposal still undecided (a "needs more information" answer leaves it undecided)
gets reminder 1 in its Slack thread ``board.reminder_after_days`` after it was escalated, then
reminder n every ``board.reminder_every_days`` (defaults 30 and 14: days 30, 44, 58 …). Each
reminder is recorded in the ledger (``proposal.reminded``) before it is posted and is posted
once (``board:reminder:<proposal>:<n>``). A run that was down for a while sends only the latest
reminder due, not every one it missed.

The daily run also settles open endorsement ballots (a safety net next to the membership
closer; the same effect keys, so nothing happens twice).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from prefect import flow

from flows.board import endorsement
from flows.board.common import BoardCtx, board_context, render, thread_reply
from flows.kit import artifact, log, once
from ledger import repo
from ledger.models import Proposal, ProposalStatus

ACTOR = "flow:board-reminders"


def due_number(*, escalated_at: datetime, now: datetime, after_days: int, every_days: int) -> int:
    """The number of the latest reminder due at ``now`` (0: none yet). Pure."""
    first = escalated_at + timedelta(days=after_days)
    if now < first:
        return 0
    return 1 + int((now - first) // timedelta(days=every_days))


def remind(ctx: BoardCtx) -> list[dict[str, Any]]:
    """Send the reminders due now (see the module docstring); returns what was sent."""
    board = ctx.charter.board
    with ctx.ledger.read() as session:
        waiting = [
            (p.id, p.escalated_at, p.escalation_ref, p.last_reminder_at)
            for p in repo.proposals_with_status(session, ProposalStatus.ESCALATED)
        ]
    sent = []
    for proposal_id, escalated_at, slack_ref, _last in waiting:
        if escalated_at is None or not slack_ref or slack_ref.startswith("board-escalation"):
            continue  # not posted yet: the escalation flow repairs that first
        number = due_number(
            escalated_at=escalated_at,
            now=ctx.now,
            after_days=board.reminder_after_days,
            every_days=board.reminder_every_days,
        )
        if number == 0:
            continue
        key = f"board:reminder:{proposal_id}:{number}"
        due_at = escalated_at + timedelta(days=board.reminder_after_days + (number - 1) * board.reminder_every_days)
        with ctx.ledger.transaction() as session:
            if repo.effect_get(session, key=key) is not None:
                continue
            proposal = session.get_one(Proposal, proposal_id)
            # Recorded before it is posted; a re-run after a crash finds it recorded and posts.
            if proposal.last_reminder_at is None or proposal.last_reminder_at < due_at:
                repo.record_board_reminder(session, proposal, number=number, actor=ACTOR, at=ctx.now)
        _, text = render("reminder", number=number, days=(ctx.now - escalated_at).days)
        try:
            once(
                ctx,
                key=key,
                platform="slack",
                actor=ACTOR,
                about=f"proposal:{proposal_id}",
                act=lambda r=slack_ref, t=text, k=key: thread_reply(ctx, thread=r, text=t, key=k),
            )
        except Exception as exc:  # noqa: BLE001 - one proposal's thread must not stop the others
            log.warning("board: reminder for proposal:%s not sent: %s", proposal_id, type(exc).__name__)
            continue
        sent.append({"proposal": proposal_id, "reminder": number})
    return sent


@flow(name="board-reminders", flow_run_name="board-reminders", log_prints=True)
def board_reminders(now: datetime | None = None) -> dict[str, Any]:
    """Daily: remind the Board of undecided proposals (R-BOARD) and settle open endorsement
    ballots. ``now``: empty = the real clock."""
    ctx = board_context(now)
    settled = []
    for ballot_id in endorsement.open_endorsements(ctx):
        try:
            settled.append(endorsement.settle(ctx, ballot_id=ballot_id))
        except Exception as exc:  # noqa: BLE001 - one ballot must not stop the reminders
            log.warning("board: ballot:%s not settled: %s", ballot_id, type(exc).__name__)
    sent = remind(ctx)
    artifact(
        key="board-reminders",
        title="Board reminders",
        rows={
            "reminders sent": ", ".join(f"proposal {s['proposal']} #{s['reminder']}" for s in sent) or "none",
            "endorsement ballots looked at": len(settled),
        },
    )
    return {"reminders": sent, "ballots": settled}
