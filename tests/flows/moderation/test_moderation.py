"""Issue 13 against the sandboxes, a real ledger and the Prefect test server: one moderation log,
linked identities, cross-platform alerts acknowledged by a moderator, catch-up after faults, the
daily digest and the consistency view."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import httpx
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from sqlalchemy import func, select
from typer.testing import CliRunner

from charterflow.cli import app
from flows.moderation.digest import moderation_digest
from flows.moderation.sync import moderation_sync
from flows.platforms import use
from ledger.db import Ledger
from ledger.models import AuditEntry, Person
from ledger.models_moderation import ModerationAction, ModerationAlert, ModerationCursor, ModerationLink
from ledger.privacy import erase_person
from tests.support.membership import forum_and_discord
from tests.support.moderation import NOW, World, buttons, press


def _actions(world: World) -> list[ModerationAction]:
    with world.ledger.read() as session:
        return list(session.scalars(select(ModerationAction).order_by(ModerationAction.id)))


def _alerts(world: World) -> list[ModerationAlert]:
    with world.ledger.read() as session:
        return list(session.scalars(select(ModerationAlert).order_by(ModerationAlert.id)))


def _links(world: World) -> list[ModerationLink]:
    with world.ledger.read() as session:
        return list(session.scalars(select(ModerationLink).order_by(ModerationLink.id)))


def test_actions_on_both_platforms_appear_once_in_the_log(world: World) -> None:
    world.suspend_on_forum("dario_fenwick", reason="Repeated personal attacks")
    world.forum_act(
        action_name="delete_post",
        acting_user="bram_tolliver",
        target_user="dario_fenwick",
        post_id=4711,
        topic_id=88,
        details="off topic",
    )
    world.discord_act(action_type=20, user="bram_tolliver", target="esme_voss", reason="spam")
    world.discord_act(action_type=24, user="bram_tolliver", target="esme_voss", reason="cool down", timeout_minutes=30)
    first = moderation_sync(now=NOW)
    assert first["discourse"] == {"seen": 2, "stored": 2} and first["discord"] == {"seen": 2, "stored": 2}
    again = moderation_sync(now=NOW + timedelta(minutes=15))
    assert again["discourse"] == {"seen": 0, "stored": 0} and again["discord"] == {"seen": 0, "stored": 0}

    actions = _actions(world)
    assert sorted((a.platform, a.action) for a in actions) == [
        ("discord", "kick"),
        ("discord", "timeout"),
        ("discourse", "post_delete"),
        ("discourse", "suspend"),
    ]
    assert len({(a.platform, a.entry_id) for a in actions}) == 4
    timeout = next(a for a in actions if a.action == "timeout")
    assert 29 * 60 <= timeout.duration_seconds <= 30 * 60 and timeout.moderator_username == "bram_tolliver"
    suspend = next(a for a in actions if a.action == "suspend")
    assert suspend.reason == "Repeated personal attacks" and suspend.target_username == "dario_fenwick"
    assert next(a for a in actions if a.action == "post_delete").link.endswith("/p/4711")
    with world.ledger.read() as session:
        cursors = {c.platform: c.last_entry_id for c in session.scalars(select(ModerationCursor))}
        reads = session.scalars(select(AuditEntry.payload_json).where(AuditEntry.action == "moderation.read")).all()
    assert cursors["discourse"] == "2" and cursors["discord"] == world.discord_state()["audit_log"][-1]["id"]
    # The audit entries hold counts and references, never names or reasons.
    assert reads and not any("dario" in r or "attacks" in r for r in reads)
    # Neither the kick nor the suspension of unlinked people alerted anyone.
    assert _alerts(world) == []


def test_a_forum_suspension_of_a_linked_person_alerts_discord_once_and_is_acknowledged(world: World) -> None:
    world.suspend_on_forum("cleo_marsh", reason="Harassment in a thread")
    moderation_sync(now=NOW)
    moderation_sync(now=NOW + timedelta(minutes=15))  # a second run raises nothing new

    [alert] = _alerts(world)
    assert alert.platform == "discord" and alert.acknowledged_by is None
    [message] = [m for m in world.moderators_channel() if "Moderation alert" in m["content"]]
    assert buttons(message) == [f"cfm:ack:{alert.id}"]
    assert "cleo_marsh" in message["content"] and "Harassment in a thread" in message["content"]
    assert "suspend" in message["content"] and "nothing was done here automatically" in message["content"]
    # No sanction on Discord: cleo's roles are untouched, nobody was banned or timed out.
    assert world.discord_state()["audit_log"] == []
    # Not the WG channel, not public: the alert lives in the moderators' channel only.
    assert not [
        m
        for m in world.discord_state()["messages"]
        if "Moderation alert" in m["content"] and m["channel_id"] != message["channel_id"]
    ]

    # A member who is not a moderator presses the button: refused, nothing recorded.
    assert (
        press(world, user="cleo_marsh", message=message, custom_id=f"cfm:ack:{alert.id}") == "refused:not-a-moderator"
    )
    assert _alerts(world)[0].acknowledged_by is None
    # The moderator acknowledges; the alert now names them and has no button left.
    assert press(world, user="bram_tolliver", message=message, custom_id=f"cfm:ack:{alert.id}") == f"ack:{alert.id}"
    [alert] = _alerts(world)
    assert alert.acknowledged_by == "bram_tolliver" and alert.acknowledged_at is not None
    # The audit log (never erased) holds no platform account id (R-PRIVACY-2).
    with world.ledger.read() as session:
        [actor] = session.scalars(
            select(AuditEntry.actor).where(AuditEntry.action == "moderation.alert_acknowledged")
        ).all()
    assert actor == "discord:unlinked" and world.discord.find_user("bram_tolliver").id not in actor
    [edited] = [m for m in world.moderators_channel() if m["id"] == message["id"]]
    assert "Acknowledged by **bram_tolliver**" in edited["content"] and edited["components"] == []
    followups = [m for m in world.discord_state()["messages"] if "Acknowledged. Thank you." in m["content"]]
    assert len(followups) == 1
    # The Forum (where it happened) got no alert about its own action.
    assert world.forum_moderator_pms() == []


def test_r_privacy_2_erasing_a_moderator_erases_their_name_on_what_they_acknowledged(world: World) -> None:
    world.suspend_on_forum("cleo_marsh", reason="Spam links")
    moderation_sync(now=NOW)
    [message] = [m for m in world.moderators_channel() if "Moderation alert" in m["content"]]
    [alert] = _alerts(world)
    # avery_quill (a Discord admin, in the ledger) acknowledges, then asks to be erased.
    assert press(world, user="avery_quill", message=message, custom_id=f"cfm:ack:{alert.id}") == f"ack:{alert.id}"
    with world.ledger.transaction() as session:
        erase_person(session, session.get(Person, world.people["avery_quill"]), reason="asked", actor="operator")
    [alert] = _alerts(world)
    assert alert.acknowledged_by == f"erased-{world.people['avery_quill']}" and alert.acknowledged_at is not None


def test_a_discord_ban_of_a_linked_person_alerts_the_forum_moderators(world: World) -> None:
    world.discord_act(action_type=22, user="bram_tolliver", target="cleo_marsh", reason="raid organiser")
    world.discord_act(action_type=24, user="bram_tolliver", target="avery_quill", timeout_minutes=10)
    moderation_sync(now=NOW)
    moderation_sync(now=NOW)
    [alert] = _alerts(world)
    assert alert.platform == "discourse"
    [pm] = world.forum_moderator_pms()
    assert "cleo_marsh" in pm["raw"] and "raid organiser" in pm["raw"]
    assert f"charterflow moderation ack {alert.id}" in pm["raw"]
    # A 10-minute timeout is below the charter's threshold: no alert for avery.
    assert all(a.action_id != next(x.id for x in _actions(world) if x.action == "timeout") for a in _alerts(world))


def test_an_unlinked_look_alike_raises_a_link_suggestion_not_an_alert(world: World) -> None:
    world.suspend_on_forum("rowan_vale", reason="Spam")
    moderation_sync(now=NOW)
    moderation_sync(now=NOW + timedelta(minutes=15))
    assert _alerts(world) == []
    [link] = _links(world)
    assert link.status == "suggested" and link.basis == "username"
    [suggestion] = [m for m in world.moderators_channel() if "Same person?" in m["content"]]
    assert buttons(suggestion) == [f"cfm:link:{link.id}:yes", f"cfm:link:{link.id}:no"]
    assert len(world.forum_moderator_pms()) == 1  # the Forum moderators are asked too (by command)

    # A moderator confirms: the link is used from now on, and the held-back alert goes out.
    assert (
        press(world, user="bram_tolliver", message=suggestion, custom_id=f"cfm:link:{link.id}:yes")
        == f"link:{link.id}:confirmed"
    )
    [link] = _links(world)
    assert link.status == "confirmed" and link.decided_by == "bram_tolliver"
    [alert] = _alerts(world)
    assert alert.platform == "discord" and alert.linked_username == "rowan_vale"
    [edited] = [m for m in world.moderators_channel() if m["id"] == suggestion["id"]]
    assert "Decision: **confirmed** by bram_tolliver" in edited["content"] and edited["components"] == []
    decided = [p for p in world.forum_state()["posts"] if p["raw"].startswith("Decision: **confirmed**")]
    assert len(decided) == 1 and decided[0]["topic_id"] == world.forum_moderator_pms()[0]["topic_id"]
    # Pressing again changes nothing.
    assert (
        press(world, user="bram_tolliver", message=suggestion, custom_id=f"cfm:link:{link.id}:no")
        == f"link:{link.id}:confirmed"
    )


def test_unknown_entry_types_are_stored_as_other_never_dropped(world: World) -> None:
    world.discord_act(action_type=999, user="bram_tolliver", target="esme_voss")
    world.discord_act(
        action_type=24,
        user="bram_tolliver",
        target="esme_voss",
        changes=[{"key": "nick", "old_value": "a", "new_value": "b"}],
    )
    world.forum_act(action_name="brand_new_thing", acting_user="bram_tolliver", details="who knows")
    moderation_sync(now=NOW)
    others = [a for a in _actions(world) if a.action == "other"]
    assert sorted(a.platform_action for a in others) == ["999", "MEMBER_UPDATE", "brand_new_thing"]
    raw = next(a for a in others if a.platform_action == "999").raw
    assert raw["action_type"] == 999
    assert next(a for a in others if a.platform_action == "brand_new_thing").raw["details"] == "who knows"


def test_the_cursor_survives_a_restart(world: World, tmp_path: Path) -> None:
    world.discord_act(action_type=22, user="bram_tolliver", target="esme_voss")
    world.forum_act(action_name="delete_post", acting_user="bram_tolliver", target_user="dario_fenwick")
    moderation_sync(now=NOW)
    url = str(world.ledger.engine.url)
    # A new process: a new ledger engine on the same database, new connectors, new Platforms.
    ledger = Ledger(url)
    forum = world.forum_sb.connect(world.forum_url)
    discord = world.discord_sb.connect(world.discord_url)
    platforms = forum_and_discord(forum, discord, secret="test-only-secret")
    world.discord_act(action_type=20, user="bram_tolliver", target="rowan_vale")
    try:
        with use(ledger=ledger, platforms=platforms):
            result = moderation_sync(now=NOW + timedelta(minutes=15))
    finally:
        forum.close()
        discord.close()
    assert result["discord"] == {"seen": 1, "stored": 1} and result["discourse"] == {"seen": 0, "stored": 0}
    with ledger.read() as session:
        assert session.scalar(select(func.count()).select_from(ModerationAction)) == 3
    ledger.dispose()


def test_a_platform_down_for_hours_catches_up_without_gaps_or_duplicates(world: World) -> None:
    world.discord_act(action_type=20, user="bram_tolliver", target="esme_voss")
    moderation_sync(now=NOW)
    httpx.post(
        f"{world.discord_url}/_sandbox/faults", json={"error_rate": 1.0, "error_status": 503}, timeout=10
    ).raise_for_status()
    # Hours of moderation while Discord's API does not answer: 150 entries (more than a page).
    for i in range(150):
        world.discord_act(
            action_type=72 if i % 2 else 24,
            user="bram_tolliver",
            target="esme_voss",
            timeout_minutes=None if i % 2 else 5,
        )
    world.suspend_on_forum("dario_fenwick", reason="spam")
    down = moderation_sync(now=NOW + timedelta(hours=1))
    assert "error" in down["discord"] and down["discourse"] == {"seen": 1, "stored": 1}
    with world.ledger.read() as session:
        cursor = session.get(ModerationCursor, "discord").last_entry_id
    assert cursor == world.discord_state()["audit_log"][0]["id"]  # unchanged while down
    # Back up, but flaky: half the requests fail for a while; runs continue every 15 minutes.
    httpx.post(
        f"{world.discord_url}/_sandbox/faults", json={"error_rate": 0.5, "error_status": 502, "seed": 3}, timeout=10
    ).raise_for_status()
    for n in range(6):
        moderation_sync(now=NOW + timedelta(hours=3, minutes=15 * n))
    httpx.post(f"{world.discord_url}/_sandbox/faults", json={}, timeout=10).raise_for_status()
    moderation_sync(now=NOW + timedelta(hours=5))
    expected = [e["id"] for e in world.discord_state()["audit_log"]]
    guild = world.platforms.space("discord").instance
    keys = [a.entry_id for a in _actions(world) if a.platform == "discord"]
    assert all(k.startswith(f"{guild}:") for k in keys)  # entry ids are per guild
    stored = [k.removeprefix(f"{guild}:") for k in keys]
    assert sorted(stored, key=int) == expected and len(stored) == len(set(stored)) == 151


def test_the_digest_is_posted_once_per_day_even_when_the_flow_runs_twice(world: World) -> None:
    world.suspend_on_forum("dario_fenwick", reason="Spam links")
    world.discord_act(action_type=20, user="bram_tolliver", target="esme_voss", reason="raid")
    moderation_sync(now=NOW)
    day = _actions(world)[0].occurred_at.date()
    tomorrow = datetime.combine(day + timedelta(days=1), time(8), tzinfo=UTC)
    first = moderation_digest(now=tomorrow, sync=False)
    second = moderation_digest(now=tomorrow + timedelta(hours=12))  # run again the same day
    assert first["actions"] == 2 and first["posted"] == ["discord", "discourse"]
    assert second["posted"] == ["discord", "discourse"]
    digests = [m for m in world.moderators_channel() if "Moderation digest" in m["content"]]
    assert len(digests) == 1
    assert "dario_fenwick" in digests[0]["content"] and "esme_voss" in digests[0]["content"]
    assert "the Forum" in digests[0]["content"] and "Discord" in digests[0]["content"]
    pms = [p for p in world.forum_moderator_pms() if "esme_voss" in p["raw"]]
    assert len(pms) == 1
    # The next day has its own digest (with no actions).
    moderation_digest(now=tomorrow + timedelta(days=1), sync=False)
    assert len([m for m in world.moderators_channel() if "Moderation digest" in m["content"]]) == 2


def test_the_consistency_report_and_artifact(world: World) -> None:
    world.suspend_on_forum("cleo_marsh", reason="Harassment.")
    world.discord_act(action_type=24, user="bram_tolliver", target="esme_voss", reason="harassment", timeout_minutes=60)
    world.forum_act(
        action_name="agree_flag",
        acting_user="bram_tolliver",
        target_user="dario_fenwick",
        flagged_at=(NOW - timedelta(minutes=90)).isoformat(),
    )
    moderation_sync(now=NOW)
    day = (NOW - timedelta(days=1)).date().isoformat()
    result = CliRunner().invoke(app, ["moderation", "report", "--since", day, "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output)
    assert figures["per_platform"] == {"discord": {"timeout": 1}, "discourse": {"flag_handled": 1, "suspend": 1}}
    # cleo is suspended on the Forum but not on Discord (where the ledger knows her too).
    assert figures["one_platform_only"] == [
        {"subject": f"person:{world.people['cleo_marsh']}", "sanctioned_on": ["discourse"], "not_on": ["discord"]}
    ]
    assert figures["reasons"][0] == {
        "reason": "harassment",
        "count": 2,
        "actions": {"suspend": 1, "timeout": 1},
        "platforms": {"discord": 1, "discourse": 1},
    }
    assert figures["flag_to_action"]["with_flag_time"] == 1
    assert 85 <= figures["flag_to_action"]["median_minutes"] <= 120
    # No names in the report's subjects.
    assert "cleo" not in json.dumps(figures["one_platform_only"])
    text = CliRunner().invoke(app, ["moderation", "report", "--since", day])
    assert text.exit_code == 0 and "Sanctioned on one platform only" in text.output
    bad = CliRunner().invoke(app, ["moderation", "report", "--since", "last tuesday"])
    assert bad.exit_code == 2 and "--since" in bad.output

    moderation_digest(now=NOW + timedelta(days=1), sync=False)

    async def latest() -> list:
        async with get_client() as client:
            return await client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["moderation-consistency"]))
            )

    artifacts = asyncio.run(latest())
    assert artifacts and artifacts[-1].type == "table"
    assert "cleo" not in json.dumps(artifacts[-1].data)
