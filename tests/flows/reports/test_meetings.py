"""The quarterly meeting (R-MEET): the meeting dates from the charter's anchor, the Discord
event created once 21 days ahead (also when the flow runs twice, or when the ledger lost its
record), and the reminder sent once 1 day ahead."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from importlib import resources
from pathlib import Path

import pytest

from flows.kit import context
from flows.reports.deploy import deployments
from flows.reports.meetings import _when, meetings_quarterly, run_meetings
from flows.reports.quarterly import reports_approve, reports_quarterly
from flows.serve import deployments as served
from ledger.db import Ledger
from ledger.migrate import upgrade
from ledger.models_reports import Meeting
from rules import CharterFileError, default_charter, parse_charter
from rules.reports import Quarter, add_months, meeting_due, meeting_starts
from tests.support.reports import NOW, ReportWorld, at

ANCHOR = at("2027-01-14 17:00")


def due(now: datetime, anchor: datetime | None = ANCHOR):
    return meeting_due(
        anchor=anchor, every_months=3, duration_minutes=60, create_days_ahead=21, reminder_days_ahead=1, now=now
    )


def test_meeting_dates_repeat_every_three_months_from_the_anchor():
    assert meeting_starts(ANCHOR, 3, around=at("2026-12-01")) == [
        at("2026-10-14 17:00"),
        at("2027-01-14 17:00"),
        at("2027-04-14 17:00"),
    ]
    assert add_months(at("2026-11-30"), 3) == at("2027-02-28")  # a shorter month: its last day
    early = due(at("2026-12-01"))
    assert early.starts_at == ANCHOR and early.ends_at == ANCHOR + timedelta(hours=1)
    assert (early.create, early.remind) == (False, False)
    assert not early.decision.allowed and early.decision.ruling == "R-MEET"
    assert (due(at("2026-12-24 17:00")).create, due(at("2026-12-24 17:00")).remind) == (True, False)
    assert (due(at("2027-01-13 17:00")).create, due(at("2027-01-13 17:00")).remind) == (True, True)
    after = due(at("2027-01-14 17:00"))  # started: the next one is due next
    assert after.starts_at == at("2027-04-14 17:00") and not after.create
    assert due(at("2026-12-01"), anchor=None) is None


def test_r_meet_one_day_ahead_is_the_daily_run_of_the_day_before():
    # The daily run is at 07:00 UTC; the shipped anchor's meetings start at 17:00 UTC. 24 hours
    # before the start fell after the run of the day before: the reminder went out on the
    # meeting's own day, 10 hours ahead, saying "tomorrow".
    day_before = due(at("2027-01-13 07:00"))
    assert (day_before.create, day_before.remind) == (True, True)
    assert day_before.remind_from == at("2027-01-13 00:00")
    assert not due(at("2027-01-12 23:59")).remind
    assert not due(at("2026-12-23 07:00")).create and due(at("2026-12-24 07:00")).create  # 21 days
    assert _when(ANCHOR, at("2027-01-13 07:00")) == "tomorrow"
    assert _when(ANCHOR, at("2027-01-14 07:00")) == "today"  # a catch-up run on the day itself
    assert _when(ANCHOR, at("2027-01-11 07:00")) == "on Thursday 14 January"


def test_r_meet_a_reminder_earlier_than_the_event_still_comes():
    # A charter creating the event on the day (0) but reminding a day ahead (1): the flow acts
    # only once the event is due, so the reminder was never sent.
    early = meeting_due(
        anchor=ANCHOR,
        every_months=3,
        duration_minutes=60,
        create_days_ahead=0,
        reminder_days_ahead=1,
        now=at("2027-01-13 07:00"),
    )
    assert (early.create, early.remind) == (True, True)


def test_r_meet_an_anchor_with_another_offset_is_shown_in_utc():
    # 09:00 at UTC-8 is 17:00 UTC: the texts say "UTC", so the start is in UTC.
    start = due(at("2027-01-13 07:00"), anchor=datetime.fromisoformat("2027-01-14T09:00:00-08:00")).starts_at
    assert start == ANCHOR and start.utcoffset() == timedelta(0)
    assert "2027-01-14 17:00 UTC" in due(at("2027-01-13 07:00"), anchor=start).decision.reason


def test_quarters():
    q = Quarter.parse("2026q3")
    assert (q.label, q.start, q.end, q.months) == (
        "2026Q3",
        at("2026-07-01"),
        at("2026-10-01"),
        ("2026-07", "2026-08", "2026-09"),
    )
    assert Quarter.just_ended(at("2027-01-01 09:00")).label == "2026Q4"
    assert Quarter.parse("2027-Q1").previous().label == "2026Q4"
    with pytest.raises(ValueError, match="quarter: '2026Q5'"):
        Quarter.parse("2026Q5")


def reminders(world) -> dict[str, int]:
    forum = [t for t in world.discourse_state()["topics"] if t["title"].startswith("Reminder:")]
    discord = [m for m in world.discord_state()["messages"] if (m["content"] or "").startswith("**Reminder:")]
    return {"discourse": len(forum), "discord": len(discord)}


def test_event_created_once_and_reminder_sent_once(report_world: ReportWorld, tmp_path: Path):
    world = report_world.world
    start = (NOW + timedelta(days=10)).replace(minute=0, second=0)
    charter = world.platforms.charter
    world.platforms.charter = charter.model_copy(
        update={"meetings": charter.meetings.model_copy(update={"anchor": start, "title": "OCWG quarterly call"})}
    )

    # 10 days ahead: within the 21 days, so the event is created, once, however often we run.
    for _ in range(2):
        result = meetings_quarterly(now=NOW)
        assert result["status"] == "event-created" and result["reminded"] == []
    events = world.discord_state()["events"]
    assert len(events) == 1
    assert events[0]["name"] == "OCWG quarterly call" and events[0]["entity_type"] == 3
    assert datetime.fromisoformat(events[0]["scheduled_start_time"]) == start
    with world.ledger.read() as s:
        row = s.query(Meeting).one()
        assert row.event_id == events[0]["id"] and row.reminded_at is None
    assert reminders(world) == {"discourse": 0, "discord": 0}

    # A ledger that lost its record: the connector finds the event by title and start.
    other = Ledger(f"sqlite:///{tmp_path / 'other.db'}")
    upgrade(other)
    again = run_meetings(context(NOW, ledger=other))
    assert again["event"] == events[0]["id"] and len(world.discord_state()["events"]) == 1
    other.dispose()

    # One day ahead: the daily 07:00 run of the day before sends the reminder, once per
    # platform, also when run twice (R-MEET).
    before = datetime.combine(start.date() - timedelta(days=1), time(7), tzinfo=UTC)
    for _ in range(2):
        result = meetings_quarterly(now=before)
        assert result["event"] == events[0]["id"]
    assert reminders(world) == {"discourse": 1, "discord": 1}
    text = next(
        m["content"] for m in world.discord_state()["messages"] if (m["content"] or "").startswith("**Reminder:")
    )
    assert "tomorrow" in text and f"/{events[0]['id']}" in text
    with world.ledger.read() as s:
        assert s.query(Meeting).one().reminded_at == before
    assert len(world.discord_state()["events"]) == 1


def test_no_anchor_no_meeting(report_world: ReportWorld):
    world = report_world.world
    charter = world.platforms.charter
    world.platforms.charter = charter.model_copy(
        update={"meetings": charter.meetings.model_copy(update={"anchor": None})}
    )
    assert meetings_quarterly(now=NOW) == {"status": "not-configured"}
    assert world.discord_state()["events"] == []


def test_charter_meeting_settings_are_validated():
    text = resources.files("rules").joinpath("charters/dsf-ocwg.toml").read_text()
    assert default_charter().meetings.anchor == datetime(2027, 1, 14, 17, tzinfo=UTC)
    naive = text.replace("anchor = 2027-01-14T17:00:00Z", "anchor = 2027-01-14T17:00:00")
    with pytest.raises(CharterFileError, match="meetings.anchor"):
        parse_charter(naive)


def test_deployments_and_their_schedules():
    found = {f"{d.flow_name}/{d.name}": d for d in deployments()}
    assert sorted(found) == [
        "meetings-quarterly/daily",
        "meetings-quarterly/operator",
        "reports-approve/operator",
        "reports-quarterly/operator",
        "reports-quarterly/quarterly",
    ]
    crons = {k: [s.schedule.cron for s in d.schedules or []] for k, d in found.items()}
    assert crons["reports-quarterly/quarterly"] == ["0 9 1 1,4,7,10 *"]
    assert crons["meetings-quarterly/daily"] == ["0 7 * * *"]
    assert crons["reports-quarterly/operator"] == [] and crons["reports-approve/operator"] == []
    assert set(found) <= {f"{d.flow_name}/{d.name}" for d in served()}

    assert reports_quarterly.parameters.properties["quarter"]["type"] == "string"
    assert set(reports_approve.parameters.required) == {"quarter", "approved_by"}
