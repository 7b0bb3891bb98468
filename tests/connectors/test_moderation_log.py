"""The ``ModerationLog`` capability against the sandboxes: Discord's guild audit log and
Discourse's staff action log, read after a cursor, oldest first, page by page, without gaps or
repeats; the Discord answers validate against the official OpenAPI document."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from connectors.base import ModerationLog, Role
from connectors.discord.sandbox import DiscordSandbox
from connectors.discourse.sandbox import DiscourseSandbox
from connectors.errors import FatalError, RetriableError
from tests.connectors.discord.test_spec import (  # noqa: F401 - traffic: the recording fixture
    _template,
    request_validator,
    response_validator,
    traffic,
)


def _inject(url: str, path: str, **body: Any) -> dict[str, Any]:
    response = httpx.post(f"{url}/_sandbox/{path}", json=body, timeout=10)
    response.raise_for_status()
    return response.json()


def _read_all(log: ModerationLog, *, after: str | None = None, limit: int = 100) -> list[Any]:
    out = []
    while True:
        page = log.moderation_entries(after=after, limit=limit)
        out += page
        if len(page) < limit:
            return out
        after = page[-1].id


def test_discord_audit_log_is_read_oldest_first_after_a_cursor(serve: Any) -> None:
    box = serve(DiscordSandbox(time_scale=0.01))
    c = box.connect()
    assert isinstance(c, ModerationLog)
    _inject(box.url, "audit_log", action_type=22, user="bram_tolliver", target="esme_voss", reason="spam links")
    _inject(
        box.url,
        "audit_log",
        action_type=24,
        user="bram_tolliver",
        target="dario_fenwick",
        reason="heated thread",
        timeout_minutes=60,
    )
    c.grant(c.find_user("cleo_marsh"), Role.moderator(), reason="R-MOD new moderator")
    _inject(
        box.url,
        "audit_log",
        action_type=72,
        user="bram_tolliver",
        target="dario_fenwick",
        options={"channel_id": box.sandbox.channel_id("general"), "count": "1"},
    )
    _inject(box.url, "audit_log", action_type=999, user="bram_tolliver", target="esme_voss")

    everything = _read_all(c, limit=2)
    kinds = [e.kind for e in everything]
    assert kinds == ["MEMBER_BAN_ADD", "MEMBER_UPDATE", "MEMBER_ROLE_UPDATE", "MESSAGE_DELETE", "999"]
    assert [int(e.id) for e in everything] == sorted(int(e.id) for e in everything)
    assert len({e.id for e in everything}) == 5
    ban = everything[0]
    assert ban.target.username == "esme_voss" and ban.moderator.username == "bram_tolliver"
    assert ban.reason == "spam links" and ban.platform == "discord"
    assert "communication_disabled_until" in everything[1].changes
    assert everything[3].changes["options"]["count"] == "1" and "/channels/" in everything[3].link
    # After a cursor: only what is newer.
    assert [e.kind for e in c.moderation_entries(after=everything[2].id)] == ["MESSAGE_DELETE", "999"]
    assert c.moderation_entries(after=everything[-1].id) == []
    with pytest.raises(ValueError):
        c.moderation_entries(after=None, limit=101)


def test_discord_audit_log_answers_match_the_spec(serve: Any) -> None:
    box = serve(DiscordSandbox(time_scale=0.01))
    _inject(box.url, "audit_log", action_type=22, user="bram_tolliver", target="esme_voss", reason="spam")
    _inject(box.url, "audit_log", action_type=24, user="bram_tolliver", target="cleo_marsh", timeout_minutes=5)
    guild = box.sandbox.seed.guild_id
    headers = {"Authorization": f"Bot {box.sandbox.token}", "User-Agent": "DiscordBot (https://example.invalid, 1)"}
    checked = 0
    for params in (
        {"after": "0", "limit": "1"},
        {"limit": "50"},
        {"before": "9" * 19},
        {"action_type": "22"},
        {"user_id": box.sandbox._user_by_name("bram_tolliver")["id"]},
    ):
        r = httpx.get(f"{box.url}/api/v10/guilds/{guild}/audit-logs", params=params, headers=headers, timeout=10)
        assert r.status_code == 200
        validator = response_validator("GET", _template(f"/guilds/{guild}/audit-logs"), 200)
        errors = [e.message for e in validator.iter_errors(r.json())]
        assert not errors, (params, errors[:3])
        checked += 1
    newest_first = httpx.get(f"{box.url}/api/v10/guilds/{guild}/audit-logs", headers=headers, timeout=10).json()
    assert [e["action_type"] for e in newest_first["audit_log_entries"]] == [24, 22]
    oldest_first = httpx.get(
        f"{box.url}/api/v10/guilds/{guild}/audit-logs", params={"after": "0"}, headers=headers, timeout=10
    ).json()
    assert [e["action_type"] for e in oldest_first["audit_log_entries"]] == [22, 24]
    assert {u["username"] for u in newest_first["users"]} == {"bram_tolliver", "esme_voss", "cleo_marsh"}
    bad = httpx.get(
        f"{box.url}/api/v10/guilds/{guild}/audit-logs", params={"limit": "500"}, headers=headers, timeout=10
    )
    assert bad.status_code == 400 and bad.json()["code"] == 50035
    assert checked == 5


def test_discourse_staff_action_log_pages_without_gaps_or_repeats(serve: Any) -> None:
    sb = DiscourseSandbox(settings={"admin_api_limit": 100000, "admin_api_window": 1.0})
    box = serve(sb)
    c = box.connect()
    assert isinstance(c, ModerationLog)
    target = c.find_user("esme_voss")
    c.client.request(
        "PUT",
        f"/admin/users/{target.id}/suspend.json",
        what="suspend",
        json_body={"suspend_until": "2099-01-01T00:00:00Z", "reason": "harassment"},
    )
    c.client.request(
        "PUT",
        f"/admin/users/{target.id}/silence.json",
        what="silence",
        json_body={"silenced_till": "2099-01-02T00:00:00Z", "reason": "spam"},
    )
    _inject(
        box.url,
        "staff_action",
        action_name="delete_post",
        acting_user="bram_tolliver",
        target_user="dario_fenwick",
        post_id=1234,
        topic_id=77,
        details="off topic",
    )
    _inject(box.url, "staff_action", action_name="brand_new_thing", acting_user="bram_tolliver")
    # More rows than one page (200) of the log holds.
    with sb._lock:
        for i in range(230):
            sb.log_staff_action(
                "delete_post",
                acting=sb._user_by_name("bram_tolliver"),
                target=sb._user_by_name("cleo_marsh"),
                details=f"bulk {i}",
            )
    first = c.moderation_entries(after=None, limit=3)
    assert [e.kind for e in first] == ["suspend_user", "silence_user", "delete_post"]
    assert first[0].target.username == "esme_voss" and first[0].moderator.username == "system"
    assert first[0].reason == "harassment" and first[0].changes["new_value"].startswith("2099-01-01")
    assert first[2].link.endswith("/p/1234")
    everything = first + _read_all(c, after=first[-1].id, limit=100)
    ids = [int(e.id) for e in everything]
    assert ids == list(range(1, 235)) and everything[3].kind == "brand_new_thing"
    assert c.moderation_entries(after=str(ids[-1])) == []
    bad = httpx.put(
        f"{box.url}/admin/users/{target.id}/suspend.json",
        json={"reason": "x"},
        headers={"Api-Key": sb.api_key, "Api-Username": "system"},
        timeout=10,
    )
    assert bad.status_code == 400 and "suspend_until" in json.dumps(bad.json())


def test_reads_fail_clearly_while_a_platform_is_down(serve: Any) -> None:
    box = serve(DiscourseSandbox())
    c = box.connect(max_retries=1)
    box.faults(error_rate=1.0, error_status=503)
    with pytest.raises(RetriableError):
        c.moderation_entries(after=None)
    box.faults()
    assert c.moderation_entries(after=None) == []
    dbox = serve(DiscordSandbox(time_scale=0.01))
    d = dbox.connect(max_retries=1)
    dbox.faults(error_rate=1.0, error_status=502)
    with pytest.raises(RetriableError):
        d.moderation_entries(after=None)
    dbox.faults()
    assert d.moderation_entries(after=None) == []
    with pytest.raises(FatalError):
        dbox.connect(guild_id="1").moderation_entries(after=None)  # a guild the bot is not in


def test_alert_messages_with_buttons_and_their_edits_match_the_spec(traffic: Any) -> None:  # noqa: F811 - the imported fixture
    box, c, exchanges = traffic
    ref = c.post_with_buttons(
        channel="moderators",
        text="**Moderation alert**\n" + "x" * 2100,
        buttons=[("Acknowledge", "cfm:ack:1"), ("Later", "cfm:later:1")],
        key="alert:1",
    )
    again = c.post_with_buttons(
        channel="moderators",
        text="**Moderation alert**\n" + "x" * 2100,
        buttons=[("Acknowledge", "cfm:ack:1"), ("Later", "cfm:later:1")],
        key="alert:1",
    )
    assert again.id == ref.id  # the nonce makes a re-send return the first message
    c.edit_message(channel_id=ref.thread_id, message_id=ref.id, text="Acknowledged by someone.")
    [message] = [m for m in box.state()["messages"] if m["id"] == ref.id]
    assert message["content"] == "Acknowledged by someone." and message["components"] == []
    with pytest.raises(ValueError):
        c.post_with_buttons(channel="moderators", text="x", buttons=[])
    checked = 0
    for method, path, request_body, status, body in exchanges:
        template = _template(path.removeprefix("/api/v10"))
        if request_body and (validator := request_validator(method, template)) is not None:
            assert not [e.message for e in validator.iter_errors(json.loads(request_body))]
            checked += 1
        validator = response_validator(method, template, status)
        if validator is not None and body:
            assert not [e.message for e in validator.iter_errors(json.loads(body))], (method, template)
    assert checked >= 3
