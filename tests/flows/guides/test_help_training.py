"""R-GUIDE: ``/help [topic]`` answered privately with the matching guides and their links on
each platform (through the real gateway and the inbox, as ``/idea``), once per event; training
sessions scheduled as platform events with announcements and reminders, once (replay-safe)."""

from __future__ import annotations

from datetime import timedelta, timezone

import pytest

from flows import inbox
from flows.guides.handlers import HELP_ROUTE
from flows.guides.publish import guides_publish
from flows.guides.training import TrainingError, training_reminders, training_schedule
from flows.reports.render import CHARTS, render_report
from ledger import guides as shelf_ledger
from ledger import reports as reports_store
from rules.reports import Quarter
from tests.support.guides import CHANNELS
from tests.support.ideas import bot_messages, wait_for_event
from tests.support.membership import NOW, serve_gateway


def test_r_guide_help_answers_with_links_on_each_platform(world, guides_folder):
    out = guides_publish(channels=CHANNELS, now=NOW)
    links = {r["platform"]: r["url"] for r in out["guides"] if r["guide"] == "reporting-a-problem"}
    assert inbox.COMMAND_ROUTES["help"] == HELP_ROUTE
    with serve_gateway(world):
        world.discord_sb.command(
            world.discord_url, user="quinn_harbor", name="help", options={"topic": "how do I report spam"}
        )
        event_id = wait_for_event(world, source="discord", kind="help", route=HELP_ROUTE)
        assert inbox.handle_event(world.ledger, event_id) == "help:1"
        [answer] = bot_messages(world, "Guides about \u201chow do I report spam\u201d")
        assert "**Reporting a problem**" in answer["content"]
        assert links["discourse"] in answer["content"] and links["discord"] in answer["content"]
        # Handled again (a retry of the task): no second answer.
        assert inbox.handle_event(world.ledger, event_id) == "already-processed"
        assert len(bot_messages(world, "how do I report spam")) == 1
        # No topic: where to start; an unknown topic names the guides there are.
        world.discord_sb.command(world.discord_url, user="quinn_harbor", name="help", options={})
        assert inbox.handle_event(
            world.ledger, wait_for_event(world, source="discord", kind="help", route=HELP_ROUTE, count=2)
        ).startswith("help:")
        assert bot_messages(world, "Guides to start with:")
        world.discord_sb.command(world.discord_url, user="quinn_harbor", name="help", options={"topic": "kubernetes"})
        assert (
            inbox.handle_event(
                world.ledger, wait_for_event(world, source="discord", kind="help", route=HELP_ROUTE, count=3)
            )
            == "help:0"
        )
        assert bot_messages(world, "No guide matches \u201ckubernetes\u201d. The guides: ")
        # An oversized topic (a forged interaction past the command's 100 characters) is read
        # as its first 100 characters; the answer stays one message.
        world.discord_sb.command(
            world.discord_url, user="quinn_harbor", name="help", options={"topic": "report spam " * 600}
        )
        assert (
            inbox.handle_event(
                world.ledger, wait_for_event(world, source="discord", kind="help", route=HELP_ROUTE, count=4)
            )
            == "help:1"
        )
        [long] = bot_messages(world, "Guides about \u201creport spam")
        assert len(long["content"]) <= 2000 and long["content"].count("report spam") == 8


def test_r_guide_training_scheduled_once_with_events_announcements_and_reminders(world, guides_folder):
    guides_publish(channels=CHANNELS, now=NOW)
    starts = (NOW + timedelta(days=3)).replace(minute=0, second=0)
    first = training_schedule(
        guide="asking-questions", starts_at=starts, minutes=90, location="Discord stage", channels=CHANNELS, now=NOW
    )
    assert first["created"] and set(first["platforms"]) == {"discourse", "discord"}
    [event] = [e for e in world.discord_state()["events"] if e["name"] == first["title"]]
    assert first["platforms"]["discord"]["event"] == event["id"]
    assert "event" not in first["platforms"]["discourse"]  # no calendar: the topic is the event
    [topic] = [t for t in world.discourse_state()["topics"] if t["title"] == first["title"]]
    assert bot_messages(world, "A community training session on \u201cHow to ask a good question")

    # Replay (the operator runs it again, or the run is retried): nothing new anywhere.
    writes = world.writes()
    again = training_schedule(
        guide="asking-questions", starts_at=starts, minutes=90, location="Discord stage", channels=CHANNELS, now=NOW
    )
    assert not again["created"] and again["session"] == first["session"]
    assert world.writes() == writes

    # Reminders from one day ahead, once per platform.
    assert training_reminders(now=NOW)["reminded"] == []
    day_before = starts - timedelta(hours=20)
    reminded = training_reminders(now=day_before)["reminded"]
    assert {r["platform"] for r in reminded} == {"discourse", "discord"}
    forum_posts = [p for p in world.discourse_state()["posts"] if p["topic_id"] == topic["id"]]
    assert any("starts in about 20 hours" in p["raw"] for p in forum_posts)
    writes = world.writes()
    training_reminders(now=day_before + timedelta(hours=1))
    assert world.writes() == writes
    with world.ledger.read() as session:
        [row] = shelf_ledger.training_between(session, NOW, NOW + timedelta(days=30))
        assert row.slug == "asking-questions" and row.ends_at - row.starts_at == timedelta(minutes=90)
        # The quarterly report lists the quarter's sessions (public Forum post and Board report).
        facts = reports_store.gather_facts(session, Quarter.of(starts))
    assert facts["training"] == [
        {
            "guide": "asking-questions",
            "title": first["title"],
            "on": f"{starts:%Y-%m-%d}",
            "platforms": ["discord", "discourse"],
        }
    ]
    texts = render_report(facts, charts={c: f"upload://{c}.png" for c in CHARTS})
    assert f"- {starts:%Y-%m-%d}: {first['title']} (" in texts.forum
    assert "*Community training* (R-GUIDE)" in texts.board_json()


def test_r_guide_training_refuses_bad_input_before_recording(world, guides_folder):
    with pytest.raises(TrainingError, match="no guide 'nope'"):
        training_schedule(guide="nope", starts_at=NOW + timedelta(days=1), now=NOW)
    with pytest.raises(TrainingError, match="not in the future"):
        training_schedule(guide="welcome", starts_at=NOW - timedelta(days=1), now=NOW)
    with world.ledger.read() as session:
        assert shelf_ledger.training_between(session, NOW - timedelta(days=9), NOW + timedelta(days=9)) == []


def test_r_guide_a_session_given_in_another_time_zone_is_announced_in_utc(world, guides_folder):
    # The Prefect UI's date picker sends the operator's own offset: 20:00+02:00 is 18:00 UTC.
    utc = (NOW + timedelta(days=3)).replace(hour=18, minute=0, second=0, microsecond=0)
    out = training_schedule(
        guide="asking-questions",
        starts_at=utc.astimezone(timezone(timedelta(hours=2))),
        minutes=60,
        channels=CHANNELS,
        now=NOW,
    )
    assert out["starts_at"] == utc.isoformat()
    [announced] = bot_messages(world, "A community training session on \u201cHow to ask a good question")
    assert f"{utc:%A %d %B %Y}, 18:00 UTC" in announced["content"]
