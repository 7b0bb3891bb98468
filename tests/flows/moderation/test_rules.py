"""The pure parts of issue 13: what an entry means, what is severe (R-DIRECT), the consistency
figures, and the deployments' schedules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from flows import inbox
from flows.moderation.common import render
from flows.moderation.deploy import deployments
from flows.moderation.digest import digest_rows
from rules import CharterFileError, default_charter, parse_charter
from rules.moderation import consistency_figures, group_reasons, is_severe, normalise

AT = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
MOD = default_charter().moderation


@pytest.mark.parametrize(
    ("platform", "kind", "changes", "action", "seconds"),
    [
        ("discord", "MEMBER_BAN_ADD", {}, "ban", None),
        ("discord", "MEMBER_BAN_REMOVE", {}, "unban", None),
        ("discord", "MEMBER_KICK", {}, "kick", None),
        ("discord", "MEMBER_ROLE_UPDATE", {"$add": {"new": [{"id": "1"}]}}, "role_change", None),
        ("discord", "MESSAGE_DELETE", {"options": {"count": "1"}}, "message_delete", None),
        (
            "discord",
            "MEMBER_UPDATE",
            {"communication_disabled_until": {"old": None, "new": "2026-11-21T12:00:00+00:00"}},
            "timeout",
            86400,
        ),
        (
            "discord",
            "MEMBER_UPDATE",
            {"communication_disabled_until": {"old": "2026-11-21T12:00:00Z", "new": None}},
            "untimeout",
            None,
        ),
        ("discord", "MEMBER_UPDATE", {"nick": {"old": "a", "new": "b"}}, "other", None),
        ("discord", "999", {}, "other", None),
        ("discourse", "suspend_user", {"new_value": "2026-11-27T12:00:00.000Z"}, "suspend", 7 * 86400),
        ("discourse", "suspend_user", {}, "suspend", None),
        ("discourse", "silence_user", {"new_value": "not a time"}, "silence", None),
        ("discourse", "delete_post", {}, "post_delete", None),
        ("discourse", "agree_flag", {}, "flag_handled", None),
        ("discourse", "brand_new_thing", {}, "other", None),
        ("slack", "anything", {}, "other", None),
    ],
)
def test_normalise(platform: str, kind: str, changes: dict, action: str, seconds: int | None) -> None:
    meaning = normalise(platform=platform, kind=kind, changes=changes, occurred_at=AT)
    assert (meaning.action, meaning.duration_seconds) == (action, seconds)


@pytest.mark.parametrize(
    ("action", "seconds", "severe"),
    [
        ("ban", None, True),
        ("suspend", 3600, True),
        ("kick", None, False),
        ("post_delete", None, False),
        ("timeout", 1440 * 60, False),
        ("timeout", 1440 * 60 + 1, True),
        ("silence", None, True),
        ("silence", 600, False),
        ("other", None, False),
    ],
)
def test_R_DIRECT_severe_actions_follow_the_charter(action: str, seconds: int | None, severe: bool) -> None:
    decision = is_severe(action=action, duration_seconds=seconds, moderation=MOD)
    assert decision.allowed is severe and decision.ruling == "R-DIRECT"
    assert decision.evidence["severe_timeout_minutes"] == 1440


def test_consistency_figures() -> None:
    rows = [
        {"platform": "discourse", "action": "suspend", "occurred_at": AT, "reason": "Spam.", "subject": "person:1"},
        {"platform": "discord", "action": "ban", "occurred_at": AT, "reason": "spam", "subject": "person:2"},
        {"platform": "discourse", "action": "suspend", "occurred_at": AT, "reason": None, "subject": "person:2"},
        {
            "platform": "discourse",
            "action": "flag_handled",
            "occurred_at": AT,
            "reason": "ok",
            "subject": None,
            "flagged_at": AT - timedelta(minutes=30),
        },
        {
            "platform": "discourse",
            "action": "flag_handled",
            "occurred_at": AT,
            "reason": "ok",
            "subject": None,
            "flagged_at": AT - timedelta(minutes=90),
        },
        {"platform": "discourse", "action": "flag_handled", "occurred_at": AT, "reason": "ok", "subject": None},
        {"platform": "discord", "action": "role_change", "occurred_at": AT, "reason": "R-MOD", "subject": "person:3"},
    ]
    figures = consistency_figures(rows, accounts={"person:1": {"discourse", "discord"}, "person:2": {"discord"}})
    assert figures["per_platform"] == {
        "discord": {"ban": 1, "role_change": 1},
        "discourse": {"flag_handled": 3, "suspend": 2},
    }
    assert figures["flag_to_action"] == {"median_minutes": 60.0, "with_flag_time": 2, "flags_handled": 3}
    # person:1 is suspended on the Forum only; person:2 is sanctioned everywhere they are.
    assert figures["one_platform_only"] == [
        {"subject": "person:1", "sanctioned_on": ["discourse"], "not_on": ["discord"]}
    ]
    assert figures["reasons"][0]["reason"] == "ok" and figures["reasons"][1] == {
        "reason": "spam",
        "count": 2,
        "actions": {"ban": 1, "suspend": 1},
        "platforms": {"discord": 1, "discourse": 1},
    }
    assert all(r["reason"] != "r-mod" for r in figures["reasons"])  # role changes are not sanctions
    assert group_reasons([], top=3) == []


def test_the_deployments_and_their_schedules() -> None:
    found = {d.name: d for d in deployments()}
    assert set(found) == {"every-15-minutes", "daily"}
    assert found["every-15-minutes"].schedules[0].schedule.interval == timedelta(seconds=900)
    assert found["daily"].schedules[0].schedule.cron == f"0 {MOD.digest_hour_utc} * * *"
    assert found["daily"].flow_name == "moderation-digest" and found["every-15-minutes"].flow_name == "moderation-sync"


def test_the_moderators_buttons_are_routed() -> None:
    assert inbox.COMPONENT_ROUTES["cfm:"] == "moderation-button"
    assert (
        inbox.route_for(
            source="discord", kind="component", attributes={"custom_id": "cfm:ack:3"}, config=inbox.RoutingConfig()
        )
        == "moderation-button"
    )


def test_the_digest_lists_at_most_150_lines_per_platform() -> None:
    actions = [
        SimpleNamespace(
            id=i,
            platform="discord",
            occurred_at=AT + timedelta(minutes=i),
            action="kick",
            platform_action="MEMBER_KICK",
            duration_seconds=None,
            target_username=f"user_{i}",
            target_platform_id=str(i),
            moderator_username="bram_tolliver",
            reason="spam",
        )
        for i in range(160)
    ]
    [(platform, rows, more)] = digest_rows(actions)
    assert platform == "Discord" and len(rows) == 150 and more == 10
    title, text = render("digest", day="2026-11-20", actions=actions, by_platform=digest_rows(actions))
    assert title == "Moderation digest for 2026-11-20"
    assert "**Discord** (160)" in text and "and 10 more" in text and "user_149" in text and "user_150" not in text


def test_a_misspelt_severe_action_is_refused_with_the_field_named() -> None:
    text = (Path(__file__).resolve().parents[3] / "rules" / "charters" / "dsf-ocwg.toml").read_text()
    bad = text.replace('severe_actions = ["ban", "suspend"]', 'severe_actions = ["ban", "suspended"]')
    assert bad != text
    with pytest.raises(CharterFileError, match="severe_actions"):
        parse_charter(bad)
