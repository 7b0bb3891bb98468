"""The quarterly meeting (R-MEET): a Discord external scheduled event created
``create_days_ahead`` (21) days before each meeting's day, and a reminder to the members
``reminder_days_ahead`` (1) day before it (calendar days, UTC: the daily run of that day).

Discord cannot repeat an event quarterly, so ``meetings-quarterly`` runs daily: the charter's
``[meetings]`` ``anchor`` and ``every_months`` give the meeting dates (``rules.reports.
meeting_due``); the next meeting's row (table ``meetings``) is recorded first, then the event is
created once (effect key ``meeting:<start>:event``; the connector also looks for an event with
the same title and start in ``list_events`` before creating one), then, from one day ahead, the
reminder is posted in the WG's space on every platform once (``meeting:<start>:reminder``).
A day the flow did not run is caught up by the next run; after the start nothing is sent.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from prefect import flow

from connectors.base import Calendar, Links
from flows.kit import Ctx, artifact, context, once, post_wg
from flows.reports.render import render_meeting_reminder
from ledger import reports as store
from ledger.models_reports import Meeting
from rules.reports import MeetingDue, meeting_due

__all__ = ["meetings_quarterly", "run_meetings"]

log = logging.getLogger("charterflow.meetings")
ACTOR = "flow:meetings"
DESCRIPTION = (
    "The Online Community Working Group's quarterly call (R-MEET). Everyone in the "
    "working group is welcome; bring topics for the agenda."
)


def _event_url(connector: Any, event_id: str | None) -> str | None:
    return connector.event_url(event_id) if isinstance(connector, Links) and event_id else None


def _when(starts_at: datetime, now: datetime) -> str:
    """When the meeting is, by UTC calendar day (the reminder shows its time in UTC): a
    catch-up run on the meeting's own day says "today", not "tomorrow"."""
    days = (starts_at.astimezone(UTC).date() - now.astimezone(UTC).date()).days
    return "today" if days <= 0 else "tomorrow" if days == 1 else f"on {starts_at:%A %d %B}"


def _create_event(ctx: Ctx, calendar: Calendar, due: MeetingDue, *, start_key: str, meeting_id: int) -> str:
    """Create the meeting's calendar event once and record its id."""
    conf = ctx.charter.meetings
    made = once(
        ctx,
        key=f"meeting:{start_key}:event",
        platform=conf.platform,
        actor=ACTOR,
        about=f"meeting:{meeting_id}",
        act=lambda: {
            "id": calendar.schedule_event(
                title=conf.title,
                starts_at=due.starts_at,
                ends_at=due.ends_at,
                location=conf.location,
                description=DESCRIPTION,
            ).id
        },
    )
    event_id = str(made["ref"]["id"])
    with ctx.ledger.transaction() as session:
        store.record_meeting_event(session, _meeting(session, due), event_id=event_id, actor=ACTOR, at=ctx.now)
    return event_id


def _remind(
    ctx: Ctx, due: MeetingDue, *, start_key: str, meeting_id: int, event_url: str | None
) -> dict[str, dict[str, Any]]:
    """Post the reminder in the WG's spaces once; record it when any was reached."""
    conf = ctx.charter.meetings
    reached = post_wg(
        ctx,
        template="meeting_reminder",
        key=f"meeting:{start_key}:reminder",
        actor=ACTOR,
        about=f"meeting:{meeting_id}",
        renderer=lambda _name, **v: render_meeting_reminder(**v),
        title=conf.title,
        starts_at=due.starts_at,
        when_text=_when(due.starts_at, ctx.now),
        duration_minutes=conf.duration_minutes,
        location=conf.location,
        event_url=event_url,
    )
    if reached:
        with ctx.ledger.transaction() as session:
            store.record_meeting_reminder(session, _meeting(session, due), actor=ACTOR, at=ctx.now)
    return reached


def _meeting(session: Any, due: MeetingDue) -> Meeting:
    """The row of the meeting due: :func:`run_meetings` records it before a step acts."""
    meeting = store.get_meeting(session, due.starts_at)
    if meeting is None:
        raise LookupError(f"the meeting of {due.starts_at:%Y-%m-%d %H:%M} UTC is not recorded")
    return meeting


def run_meetings(ctx: Ctx) -> dict[str, Any]:
    """Do what is due at ``ctx.now`` for the next meeting; see the module docstring."""
    conf = ctx.charter.meetings
    due = meeting_due(
        anchor=conf.anchor,
        every_months=conf.every_months,
        duration_minutes=conf.duration_minutes,
        create_days_ahead=conf.create_days_ahead,
        reminder_days_ahead=conf.reminder_days_ahead,
        now=ctx.now,
    )
    if due is None:
        artifact(
            key="meetings",
            title="No quarterly meeting configured",
            note="Set `anchor` in the charter's [meetings] (R-MEET) to schedule meetings.",
        )
        return {"status": "not-configured"}
    start_key = due.starts_at.strftime("%Y%m%dT%H%MZ")
    result: dict[str, Any] = {
        "starts_at": due.starts_at.isoformat(),
        "event": None,
        "reminded": [],
        "status": "not-due",
    }
    if not due.create:
        artifact(
            key="meetings",
            title="Next quarterly meeting",
            decision=due.decision,
            rows={
                "starts": f"{due.starts_at:%Y-%m-%d %H:%M} UTC",
                "event created from": f"{due.create_from:%Y-%m-%d %H:%M} UTC",
            },
        )
        return result
    with ctx.ledger.transaction() as session:
        meeting = store.upsert_meeting(
            session,
            starts_at=due.starts_at,
            ends_at=due.ends_at,
            platform=conf.platform,
            title=conf.title,
            actor=ACTOR,
            at=ctx.now,
        )
        meeting_id, event_id = meeting.id, meeting.event_id
    space = ctx.platforms.space(conf.platform)
    calendar = space.connector if space is not None and isinstance(space.connector, Calendar) else None
    if calendar is None:
        log.warning("meetings: %s is not served or has no calendar; no event created", conf.platform)
    elif event_id is None:
        event_id = _create_event(ctx, calendar, due, start_key=start_key, meeting_id=meeting_id)
    result.update(event=event_id, status="event-created" if event_id else "no-calendar")
    if due.remind:
        reached = _remind(
            ctx, due, start_key=start_key, meeting_id=meeting_id, event_url=_event_url(calendar, event_id)
        )
        result.update(reminded=sorted(reached), status="reminded" if reached else result["status"])
    artifact(
        key="meetings",
        title="Quarterly meeting",
        decision=due.decision,
        rows={
            "starts": f"{due.starts_at:%Y-%m-%d %H:%M} UTC",
            "event": event_id or "-",
            "reminded on": ", ".join(result["reminded"]) or "-",
        },
    )
    return result


@flow(name="meetings-quarterly", flow_run_name="meetings", log_prints=True)
def meetings_quarterly(now: datetime | None = None) -> dict[str, Any]:
    """Create the next quarterly meeting's Discord event 21 days ahead and remind the members
    1 day ahead (R-MEET; numbers from the charter's ``[meetings]``). Safe to run any number of
    times. ``now``: empty = the real clock."""
    return run_meetings(context(now))
