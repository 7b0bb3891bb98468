"""A second audit of where the Discord sandbox, the connector or the doctor differed from Discord
on paths charterflow depends on (the first: ``test_fidelity_audit.py``).

- Since 2026-02-23 a bot needs Create Events to create a scheduled event; Manage Events alone no
  longer does (change log of 2025-11-20, https://github.com/discord/discord-api-docs/pull/7991).
  The sandbox took either and the doctor passed a bot with Manage Events only.
- A member who left: ``GET`` member is 404 10007 Unknown Member, the user still exists, a DM
  channel opens and a message to it is 403 50007 (no shared server); their roles left with them
  (https://discord.com/developers/docs/topics/opcodes-and-status-codes#json). The sandbox could
  not make anyone leave; the connector failed a revocation from someone who had left, and one
  recipient who had left stopped a ``direct_message`` to the others.
- The welcome screen and the onboarding exist only on a Community server
  (https://discord.com/developers/docs/resources/guild#guild-object-guild-features): the doctor
  now reads ``features``.
- Auto Moderation's audit-log entries (143-146) target the member acted on (discord.py:
  https://discordpy.readthedocs.io/en/stable/api.html#discord.AuditLogAction.automod_block_message);
  the moderation log dropped who it was.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from connectors.base import ChangeStatus, Role
from connectors.discord import doctor
from connectors.discord.client import CannotDirectMessage, MissingPermissions
from connectors.discord.sandbox import DiscordSandbox, default_seed
from connectors.errors import FatalError

CREATE_EVENTS, MANAGE_EVENTS = 1 << 44, 1 << 33
ROLE_PUT = "PUT /guilds/{guild_id}/members/{user_id}/roles/{role_id}"
ROLE_DELETE = "DELETE /guilds/{guild_id}/members/{user_id}/roles/{role_id}"


def _api(box: Any, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bot {box.sandbox.token}", "User-Agent": "DiscordBot (https://example.invalid, 1)"}
    return httpx.request(method, f"{box.url}/api/v10{path}", headers=headers, timeout=10, **kwargs)


def _control(box: Any, name: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{box.url}/_sandbox/{name}", json=body, timeout=10)


def _bot_role_permissions(box: Any) -> int:
    return int(next(r for r in box.state()["roles"] if r["name"] == "charterflow")["permissions"])


def test_creating_an_event_needs_create_events_and_manage_events_alone_no_longer_does(serve: Any) -> None:
    box = serve(DiscordSandbox())
    assert _bot_role_permissions(box) & CREATE_EVENTS  # the default seed passes the doctor
    c = box.connect()
    start = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
    made = c.schedule_event(title="Q1 call", starts_at=start, ends_at=start + timedelta(hours=1), location="Online")
    assert made.location == "Online"
    # The bot's role with Manage Events instead of Create Events: Discord refuses, and so do we.
    only_manage = (_bot_role_permissions(box) & ~CREATE_EVENTS) | MANAGE_EVENTS
    assert _control(box, "roles", {"role": "charterflow", "permissions": only_manage}).status_code == 200
    with pytest.raises(MissingPermissions):
        c.schedule_event(title="Q2 call", starts_at=start, ends_at=start + timedelta(hours=2), location="Online")
    assert [e["name"] for e in box.state()["events"]] == ["Q1 call"]
    [events] = [x for x in doctor.check(c.settings) if x.name == "permissions"]
    assert not events.ok and "Create Events" in events.detail and "meeting" in events.detail


def test_an_external_event_is_refused_as_discord_refuses_it(discord: Any) -> None:
    # https://discord.com/developers/docs/resources/guild-scheduled-event#guild-scheduled-event-object-field-requirements-by-entity-type
    start = datetime.now(UTC) + timedelta(days=10)
    good = {
        "name": "Quarterly call",
        "privacy_level": 2,
        "entity_type": 3,
        "entity_metadata": {"location": "Online"},
        "scheduled_start_time": start.isoformat(),
        "scheduled_end_time": (start + timedelta(hours=1)).isoformat(),
    }
    path = f"/guilds/{discord.sandbox.seed.guild_id}/scheduled-events"
    for field, bad in (
        ("scheduled_end_time", None),  # required for EXTERNAL
        ("entity_metadata", {}),  # a location is required
        ("privacy_level", 1),  # GUILD_ONLY (2) is the only level
        ("scheduled_start_time", (datetime.now(UTC) - timedelta(hours=1)).isoformat()),  # in the past
    ):
        body = {k: v for k, v in {**good, field: bad}.items() if v is not None}
        refused = _api(discord, "POST", path, json=body)
        assert (refused.status_code, refused.json()["code"]) == (400, 50035), field
    assert _api(discord, "POST", path, json=good).status_code == 200
    assert len(discord.state()["events"]) == 1


def test_a_member_who_left_is_no_member_and_keeps_no_role(discord: Any) -> None:
    c = discord.connect()
    wg = Role.group("wg-member")
    dario, cleo = c.find_user("dario_fenwick"), c.find_user("cleo_marsh")
    assert _control(discord, "leave", {"user": "dario_fenwick"}).status_code == 204
    guild = discord.sandbox.seed.guild_id
    gone = _api(discord, "GET", f"/guilds/{guild}/members/{dario.id}")
    assert (gone.status_code, gone.json()["code"]) == (404, 10007)
    assert _api(discord, "GET", f"/users/{dario.id}").json()["username"] == "dario_fenwick"
    assert dario not in c.list_holders(wg) and cleo in c.list_holders(wg)
    # Revoking from someone who left is done: nothing is sent, nothing fails.
    revoked = c.revoke(dario, wg, reason="charterflow membership:7 lapsed")
    assert revoked.status is ChangeStatus.UNCHANGED and discord.count(ROLE_DELETE) == 0
    # Granting cannot be, and says why.
    with pytest.raises(FatalError, match="not a member") as err:
        c.grant(dario, wg, reason="charterflow membership:8")
    assert err.value.status == 404 and discord.count(ROLE_PUT) == 0
    # Discord's own answer to the write, were it sent: 10007.
    refused = _api(discord, "PUT", f"/guilds/{guild}/members/{dario.id}/roles/{c.role_id(wg)}")
    assert (refused.status_code, refused.json()["code"]) == (404, 10007)
    # A DM channel opens (the user exists); the message is refused: no server in common.
    with pytest.raises(CannotDirectMessage) as dm:
        c.direct_message_with_button(
            user=dario, title="Your application", text="Press below.", button_label="Confirm", custom_id="cfc:t.2"
        )
    assert dm.value.user_ids == (dario.id,)


def test_one_recipient_who_left_does_not_stop_the_others(discord: Any) -> None:
    c = discord.connect()
    assert _control(discord, "leave", {"user": "dario_fenwick"}).status_code == 204
    with pytest.raises(CannotDirectMessage) as err:
        c.direct_message(recipients=["dario_fenwick", "cleo_marsh"], title="Notice", text="The call moved.")
    assert err.value.user_ids == ("dario_fenwick",) and "not in the server" in str(err.value)
    [sent] = err.value.delivered
    cleo = c.find_user("cleo_marsh")
    dm = discord.state()["messages"]
    assert any(m["id"] == sent.id and m["channel_id"] == sent.thread_id for m in dm)
    assert _api(discord, "GET", f"/channels/{sent.thread_id}").json()["recipients"][0]["id"] == cleo.id


def test_the_moderation_log_names_whom_auto_moderation_and_a_kick_acted_on(discord: Any) -> None:
    c = discord.connect()
    cleo, dario = c.find_user("cleo_marsh"), c.find_user("dario_fenwick")
    general = discord.sandbox.channel_id("general")
    blocked = {"channel_id": general, "auto_moderation_rule_name": "Invite links"}
    assert _control(discord, "audit_log", {"action_type": 143, "target": "cleo_marsh", "options": blocked}).is_success
    # A kick: the member is gone by the time the log is read; the entry still names them.
    assert _control(discord, "leave", {"user": "dario_fenwick"}).status_code == 204
    assert _control(discord, "audit_log", {"action_type": 20, "user": "bram_tolliver", "target": dario.id}).is_success
    automod, kick = c.moderation_entries(after=None)[-2:]
    assert (automod.kind, automod.target, automod.moderator) == ("AUTO_MODERATION_BLOCK_MESSAGE", cleo, None)
    assert automod.link is not None and general in automod.link
    assert kick.kind == "MEMBER_KICK" and kick.target is not None
    assert (kick.target.id, kick.target.username) == (dario.id, "dario_fenwick")


def test_the_doctor_tells_a_server_that_is_not_a_community_server(serve: Any) -> None:
    seed = default_seed()
    seed["features"] = []
    plain = serve(DiscordSandbox(seed=seed))
    assert _api(plain, "GET", f"/guilds/{plain.sandbox.seed.guild_id}").json()["features"] == []
    [community] = [x for x in doctor.check(plain.connect().settings) if x.name == "community"]
    assert not community.ok and "not a Community server" in community.detail and "Enable Community" in community.fix
    [fine] = [x for x in doctor.check(serve(DiscordSandbox()).connect().settings) if x.name == "community"]
    assert fine.ok
