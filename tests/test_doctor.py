"""`charterflow doctor` against the three sandboxes served on 127.0.0.1: set up right, every line is
``ok`` and the exit code 0; set up wrong on purpose (a permission missing, Manage Server too, the
bot's role below a role it manages, an unknown channel, a Slack scope missing, the bot outside the
Board channel, a Forum key without admin rights, webhook secrets unset, bad tokens), each problem
is one ``FAIL`` line saying what to fix, and the exit code is 1. No secret ever appears in the output."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from charterflow.cli import app
from connectors.discord.connector import DiscordConnector
from connectors.discord.doctor import REQUIRED_PERMISSIONS, channel_permissions, guild_permissions
from connectors.discord.sandbox import default_seed as discord_default
from connectors.discourse.connector import DiscourseConnector
from connectors.discourse.doctor import WEBHOOK_EVENTS, webhook_check
from connectors.discourse.sandbox import default_seed as discourse_default
from connectors.slack.connector import SlackConnector
from connectors.slack.sandbox import default_seed as slack_default
from tests.support.net import LoopbackServer

LIVE_HOOK = "http://127.0.0.1:8080/hooks/discourse"
LIVE_ENDPOINT = "http://127.0.0.1:8080/hooks/discord"
CREATE_PRIVATE_THREADS = 1 << 36
MANAGE_SERVER = 1 << 5


@pytest.fixture(autouse=True)
def _clean_env(tmp_path, monkeypatch) -> None:
    """No ``.env`` and no inherited CHARTERFLOW_* variable: each test sets exactly its own."""
    monkeypatch.chdir(tmp_path)
    for key in list(os.environ):
        if key.startswith("CHARTERFLOW_") or key.upper() in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


def _serve(seeds: dict[str, dict[str, Any] | None]) -> Iterator[tuple[dict[str, str], list[str]]]:
    """The sandboxes named in ``seeds`` on loopback ports: (their env variables, their secrets)."""
    with ExitStack() as stack:
        env: dict[str, str] = {}
        secrets: list[str] = []
        for name, cls in (("discord", DiscordConnector), ("discourse", DiscourseConnector), ("slack", SlackConnector)):
            if name not in seeds:
                continue
            # The Forum's webhook and Discord's interactions go to a gateway, as on a live setup
            # (unless the Forum's seed says otherwise).
            seed = seeds[name]
            hook = {"webhook_url": LIVE_HOOK} if name == "discourse" and "webhook" not in (seed or {}) else {}
            hook = {"interactions_url": LIVE_ENDPOINT} if name == "discord" else hook
            box = cls.sandbox(seed=seed, **hook)
            server = stack.enter_context(LoopbackServer(box.app))
            info = box.client_info(server.url)
            env.update(info["env"])
            secrets += [
                str(v)
                for k, v in info["credentials"].items()
                if k in ("token", "api_key", "webhook_secret", "bot_token", "signing_secret")
            ]
        yield env, secrets


def _doctor(env: dict[str, str], *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["doctor", *args], env=env)
    return result.exit_code, result.output


def _line(output: str, platform: str, name: str) -> str:
    found = [ln for ln in output.splitlines() if ln[6:].startswith(f"{platform:<9} {name}:")]
    assert len(found) == 1, f"no single line for {platform} {name!r} in:\n{output}"
    return found[0]


def test_sandboxes_set_up_right_are_all_ok():
    for env, secrets in _serve({"discord": None, "discourse": None, "slack": None}):  # noqa: B007 - read after the loop
        code, out = _doctor(env)
    assert code == 0, out
    # An installed plugin not configured here (Matrix) is a "--  … skipped" line.
    lines = [ln for ln in out.splitlines() if ln.strip() and not ln.startswith("--")]
    assert lines[-1].endswith("all ok")
    checks = lines[:-1]
    assert len(checks) >= 19 and all(ln.startswith("ok ") for ln in checks), out
    for name in (
        "token",
        "permissions",
        "role wg-member",
        "role moderator",
        "role admin",
        "interactions key",
        "interactions URL",
        "intents",
    ):
        assert _line(out, "discord", name).startswith("ok")
    for name in (
        "key scope",
        "api key",
        "admin scope",
        "category Working Group",
        "group working-group",
        "webhook secret",
    ):
        assert _line(out, "discourse", name).startswith("ok")
    for name in ("token", "scopes", "board channel", "signing secret"):
        assert _line(out, "slack", name).startswith("ok")
    assert not any(secret in out for secret in secrets)


def _wrong_seeds() -> dict[str, dict[str, Any]]:
    discord = discord_default()
    discord["application_flags"] = 1 << 15  # Server Members on, Message Content off
    for role in discord["roles"]:
        if role.get("bot_role"):
            role["permissions"] &= ~CREATE_PRIVATE_THREADS  # a permission missing
            role["position"] = 3  # now below ...
        elif role["name"] == "admin":
            role["position"] = 4  # ... the admin role it manages
    discourse = discourse_default()
    discourse["api_username"] = "cleo_marsh"  # not an admin: admin routes answer 404
    discourse["api_keys"] = [{"key": "forum-key-invented-0451", "username": "cleo_marsh"}]
    slack = slack_default()
    slack["bot_scopes"] = [
        "chat:write",
        "im:write",
        "mpim:write",
        "users:read",
        "users:read.email",
        "channels:history",
        "im:history",
        "mpim:history",
    ]  # no groups:history
    for channel in slack["channels"]:
        if channel["id"] == "C0GENERAL":
            channel["is_private"] = False
    slack["board_channel"] = "C0GENERAL"  # public, and the bot was never invited
    return {"discord": discord, "discourse": discourse, "slack": slack}


def test_each_problem_of_a_wrong_setup_is_reported_with_its_fix():
    for env, secrets in _serve(_wrong_seeds()):  # noqa: B007 - read after the loop
        env["CHARTERFLOW_DISCORD_WG_CHANNEL_ID"] = "1100000000000009999"  # no such channel
        del env["CHARTERFLOW_DISCOURSE_WEBHOOK_SECRET"]
        del env["CHARTERFLOW_SLACK_SIGNING_SECRET"]
        env["CHARTERFLOW_COMMONS_BRIDGES"] = "moderators: discord=moderators, slack=C0BOARD01"
        code, out = _doctor(env)
    assert code == 1, out

    permissions = _line(out, "discord", "permissions")
    assert permissions.startswith("FAIL") and "Create Private Threads" in permissions
    assert "Server Settings → Roles → 'charterflow' → Permissions: turn on Create Private Threads" in permissions
    assert "Manage Roles" not in permissions.split("fix:")[0]  # only what is missing
    admin = _line(out, "discord", "role admin")
    assert admin.startswith("FAIL") and "not below the bot's highest role 'charterflow'" in admin
    assert "drag 'charterflow' above 'admin'" in admin
    assert _line(out, "discord", "role wg-member").startswith("ok")  # still below the bot
    intents = _line(out, "discord", "intents")
    assert intents.startswith("FAIL") and "Message Content Intent" in intents
    assert "Server Members" not in intents.split("fix:")[0]
    channel = _line(out, "discord", "channel 1100000000000009999")
    assert channel.startswith("FAIL") and "no channel '1100000000000009999'" in channel
    assert "CHARTERFLOW_DISCORD_WG_CHANNEL_ID" in channel

    assert _line(out, "discourse", "api key").startswith("ok")
    account = _line(out, "discourse", "admin account")
    assert account.startswith("FAIL") and "'cleo_marsh' is not an admin" in account and "Grant Admin" in account
    scope = _line(out, "discourse", "admin scope")
    assert scope.startswith("FAIL") and "404" in scope and "Scope Global" in scope
    hook = _line(out, "discourse", "webhook secret")
    assert hook.startswith("FAIL") and "CHARTERFLOW_DISCOURSE_WEBHOOK_SECRET" in hook

    scopes = _line(out, "slack", "scopes")
    assert scopes.startswith("FAIL") and "groups:history" in scopes and "reinstall the app" in scopes
    assert "chat:write" not in scopes.split("fix:")[0]
    assert "channels:read" in scopes and "groups:read" in scopes  # the common room's, as a room is bridged
    room = _line(out, "slack", "common room C0BOARD01")
    assert room.startswith("FAIL") and "missing_scope" in room and "add channels:read and groups:read" in room
    board = _line(out, "slack", "board channel")
    assert board.startswith("FAIL") and "not_in_channel" in board and "/invite @<app name>" in board
    assert _line(out, "slack", "signing secret").startswith("FAIL")

    assert out.rstrip().splitlines()[-1].endswith("failed")
    assert not any(secret in out for secret in secrets + ["forum-key-invented-0451"])


def test_a_bot_without_manage_server_is_told_what_needs_it():
    discord = discord_default()
    for role in discord["roles"]:
        if role.get("bot_role"):
            role["permissions"] &= ~MANAGE_SERVER
    for env, secrets in _serve({"discord": discord}):  # noqa: B007 - read after the loop
        code, out = _doctor(env)
        # The server owner gives @everyone Manage Server: the bot holds it through that role.
        granted = httpx.post(
            f"{env['CHARTERFLOW_DISCORD_API_URL'].removesuffix('/api/v10')}/_sandbox/roles",
            json={"role": "@everyone", "permissions": MANAGE_SERVER},
            timeout=10,
        )
        assert granted.status_code == 200, granted.text
        again, after = _doctor(env)
    assert code == 1, out
    permissions = _line(out, "discord", "permissions")
    detail, fix = permissions.split("fix:")
    assert detail.startswith("FAIL")
    assert "Manage Server (for the guides' welcome screen and onboarding prompt)" in detail
    assert "Manage Roles" not in detail  # only what is missing
    assert "Server Settings → Roles → 'charterflow' → Permissions: turn on Manage Server" in fix
    assert again == 0, after
    assert "Manage Server" in _line(after, "discord", "permissions") and not any(s in out + after for s in secrets)


def test_a_granular_forum_key_is_named_as_such_and_stops_the_forum_checks():
    # Discourse refuses a granular key's calls outside its scopes as it refuses a wrong key; the
    # doctor asks the key's scopes first so it does not blame the key or its user.
    discourse = discourse_default()
    discourse["api_keys"] = [{"key": "forum-granular-invented-0452", "scopes": ["topics:write", "posts:edit"]}]
    for env, secrets in _serve({"discourse": discourse}):  # noqa: B007 - read after the loop
        code, out = _doctor(env)
    assert code == 1, out
    scope = _line(out, "discourse", "key scope")
    detail, fix = scope.split("fix:")
    assert detail.startswith("FAIL") and "a granular key (topics:write, posts:edit)" in detail
    assert "grant_moderation" in detail and "Scope Global" in fix
    assert not any(f"discourse {n}:" in out for n in ("api key", "admin scope"))  # nothing misleading after it
    assert not any(s in out for s in [*secrets, "forum-granular-invented-0452"])


def test_a_forum_webhook_that_does_not_reach_the_gateway_is_reported_with_its_setup():
    discourse = discourse_default()
    # Active no more, without the review events (flags), sending to the gateway's route.
    discourse["webhook"] = {"url": LIVE_HOOK, "active": False, "events": ["topic_created", "post_created"]}
    for env, secrets in _serve({"discourse": discourse}):  # noqa: B007 - read after the loop
        code, out = _doctor({**env, "CHARTERFLOW_GATEWAY_PUBLIC_URL": "https://wg.example.org"})
        env["CHARTERFLOW_DISCOURSE_WEBHOOK_SECRET"] = "another-secret-invented-0453"
        again, unknown_url = _doctor(env)
    assert code == 1 and again == 1
    hook = _line(out, "discourse", "webhook")
    assert hook.startswith("FAIL") and "no webhook sends to https://wg.example.org/hooks/discourse" in hook
    assert "Payload URL https://wg.example.org/hooks/discourse" in hook.split("fix:")[1]
    # Without the gateway's public URL, any webhook to its route is the one; its problems, each named.
    detail, fix = _line(unknown_url, "discourse", "webhook").split("fix:")
    assert detail.startswith("FAIL") and f"the webhook to {LIVE_HOOK}" in detail
    assert "it is not active" in detail and "does not send post_edited, post_destroyed, reviewable_created" in detail
    assert "its secret is not CHARTERFLOW_DISCOURSE_WEBHOOK_SECRET" in detail
    assert "Reviewable (created, updated)" in fix
    assert not any(s in out + unknown_url for s in [*secrets, "another-secret-invented-0453"])


def test_discord_interactions_sent_elsewhere_or_nowhere_are_reported() -> None:
    # Without an Interactions Endpoint URL Discord sends interactions over the Gateway.
    for env, secrets in _serve({"discord": None}):  # noqa: B007 - read after the loop
        code, out = _doctor({**env, "CHARTERFLOW_GATEWAY_PUBLIC_URL": "https://wg.example.org"})
        api = env["CHARTERFLOW_DISCORD_API_URL"].removesuffix("/api/v10")
        httpx.post(f"{api}/_sandbox/interactions_url", json={"url": None}, timeout=10).raise_for_status()
        unset_code, unset = _doctor(env)
    assert code == 1 and unset_code == 1
    elsewhere = _line(out, "discord", "interactions URL")
    assert elsewhere.startswith("FAIL") and f"sends interactions to {LIVE_ENDPOINT}, not to the gateway" in elsewhere
    assert "Interactions Endpoint URL: https://wg.example.org/hooks/discord" in elsewhere
    nowhere = _line(unset, "discord", "interactions URL")
    assert nowhere.startswith("FAIL") and "over the Gateway" in nowhere and "<the gateway>/hooks/discord" in nowhere
    assert not any(s in out + unset for s in secrets)


def test_the_webhook_check_reads_discourses_answer() -> None:
    # Pure: AdminWebHookSerializer objects as Discourse lists them; what the sandbox cannot show.
    events = [{"id": n, "name": e, "group": e.split("_")[0]} for n, e in enumerate(WEBHOOK_EVENTS)]
    good = {"payload_url": LIVE_HOOK, "active": True, "content_type": 1, "secret": "s3", "last_delivery_status": 3}
    secret = SecretStr("s3")
    assert webhook_check([{**good, "web_hook_event_types": events}], url=None, secret=secret).ok
    assert webhook_check([{**good, "wildcard_web_hook": True}], url=LIVE_HOOK, secret=secret).ok  # every event
    form = webhook_check([{**good, "wildcard_web_hook": True, "content_type": 2}], url=None, secret=secret)
    assert not form.ok and "not application/json" in form.detail
    failing = webhook_check([{**good, "wildcard_web_hook": True, "last_delivery_status": 2}], url=None, secret=secret)
    assert not failing.ok and "last delivery failed" in failing.detail
    unset = webhook_check([{**good, "wildcard_web_hook": True}], url=None, secret=None)
    assert not unset.ok and "secret" in unset.detail and "s3" not in unset.detail
    elsewhere = webhook_check([{**good, "payload_url": "https://chat.example.org/hook"}], url=None, secret=secret)
    assert not elsewhere.ok and "no webhook sends to a gateway" in elsewhere.detail
    assert webhook_check(["not a hook", {}], url=None, secret=secret).ok is False


def test_bad_credentials_stop_each_platform_at_its_first_check():
    for env, secrets in _serve({"discord": None, "discourse": None, "slack": None}):  # noqa: B007 - read after the loop
        wrong = {
            "CHARTERFLOW_DISCORD_TOKEN": "invented.discord.token-not-valid",
            "CHARTERFLOW_DISCOURSE_API_KEY": "invented-forum-key-not-valid",
            "CHARTERFLOW_SLACK_BOT_TOKEN": "xoxb-invented-not-valid",
        }
        code, out = _doctor({**env, **wrong})
    assert code == 1, out
    assert "set CHARTERFLOW_DISCORD_TOKEN" in _line(out, "discord", "token")
    assert "CHARTERFLOW_DISCOURSE_API_KEY" in _line(out, "discourse", "api key")
    assert "invalid_auth" in _line(out, "slack", "token")
    assert not any(f"discord   {n}:" in out for n in ("permissions", "guild"))  # nothing after a bad token
    assert not any(s in out for s in [*secrets, *wrong.values()])


def test_a_half_configured_platform_names_the_missing_variable_and_others_are_skipped():
    code, out = _doctor({"CHARTERFLOW_SLACK_BOT_TOKEN": "xoxb-invented-half-set"})
    assert code == 1, out
    settings = _line(out, "slack", "settings")
    assert settings.startswith("FAIL") and "CHARTERFLOW_SLACK_BOARD_CHANNEL is not set" in settings
    assert "discord   not configured" in out and "discourse not configured" in out
    assert "xoxb-invented-half-set" not in out


def test_nothing_configured_is_a_failure():
    code, out = _doctor({})
    assert code == 1 and "no platform is configured" in out


def test_doctor_sandboxes_option_checks_the_builtin_sandboxes():
    code, out = _doctor({}, "--sandboxes", "--platform", "slack")
    assert code == 0, out
    assert _line(out, "slack", "scopes").startswith("ok") and "discord" not in out


def test_a_wg_channel_whose_overwrites_keep_the_bot_out_is_reported_and_the_sandbox_agrees():
    # The default wg-private is closed to @everyone and open to the bot's role; here its role is
    # also denied Send Messages there: the doctor says so, and the sandbox refuses the bot's post.
    discord = discord_default()
    [wg] = [c for c in discord["channels"] if c["name"] == "wg-private"]
    [bot] = [o for o in wg["permission_overwrites"] if o.get("role") == "charterflow"]
    bot["deny"] = 1 << 11  # Send Messages
    for env, secrets in _serve({"discord": discord}):  # noqa: B007 - read after the loop
        code, out = _doctor(env)
        api = env["CHARTERFLOW_DISCORD_API_URL"]
        state = httpx.get(f"{api.removesuffix('/api/v10')}/_sandbox/state", timeout=10).json()
        [channel] = [c for c in state["channels"] if c["name"] == "wg-private"]
        posted = httpx.post(
            f"{api}/channels/{channel['id']}/messages",
            headers={"Authorization": f"Bot {env['CHARTERFLOW_DISCORD_TOKEN']}", "User-Agent": "DiscordBot (tests, 1)"},
            json={"content": "Agenda"},
            timeout=10,
        )
    assert code == 1, out
    [line] = [ln for ln in out.splitlines() if "#wg-private" in ln]
    assert line.startswith("FAIL") and "the bot lacks Send Messages" in line and "Edit Channel → Permissions" in line
    assert "View Channels" not in line.split("fix:")[0]  # its role's overwrite lets it see the channel
    assert (posted.status_code, posted.json()["code"]) == (403, 50013)
    assert not any(s in out for s in secrets)


def test_a_wg_channel_the_bot_cannot_view_is_not_found_as_on_discord_since_obfuscation():
    # Since 2026-11-16 Discord leaves out of the guild's channel list those the bot cannot view.
    discord = discord_default()
    [wg] = [c for c in discord["channels"] if c["name"] == "wg-private"]
    wg["permission_overwrites"] = [o for o in wg["permission_overwrites"] if o.get("role") != "charterflow"]
    for env, secrets in _serve({"discord": discord}):  # noqa: B007 - read after the loop
        code, out = _doctor(env)
    [line] = [ln for ln in out.splitlines() if "discord   channel" in ln]
    assert code == 1 and line.startswith("FAIL") and "(or the bot cannot see it)" in line, out
    assert "give the bot View Channel there" in line and not any(s in out for s in secrets)


def test_the_common_rooms_slack_channels_are_checked_for_the_bot_and_the_scopes_they_need():
    # Slack sends an app events only from conversations its bot is in (R-COMMS's shared channel).
    bridges = (
        "moderators: discord=moderators, slack=C0GENERAL; wg: discord=wg-private, slack=C0BOARD01; "
        "spare: discord=moderators, slack=C0NOSUCH99"
    )
    code, out = _doctor({"CHARTERFLOW_COMMONS_BRIDGES": bridges}, "--sandboxes", "--platform", "slack")
    assert code == 1, out
    scopes = _line(out, "slack", "scopes")
    assert scopes.startswith("ok") and "channels:read" in scopes and "groups:read" in scopes
    outside = _line(out, "slack", "common room C0GENERAL")
    assert outside.startswith("FAIL") and "not a member of #general" in outside and "/invite" in outside
    inside = _line(out, "slack", "common room C0BOARD01")
    assert inside.startswith("ok") and "message.groups" in inside and "Event Subscriptions" in inside
    unknown = _line(out, "slack", "common room C0NOSUCH99")
    assert unknown.startswith("FAIL") and "channel_not_found" in unknown and "CHARTERFLOW_COMMONS_BRIDGES" in unknown
    # Without a Slack bridge no room is checked, nor its scopes asked for.
    code, out = _doctor({"CHARTERFLOW_COMMONS_BRIDGES": "none"}, "--sandboxes", "--platform", "slack")
    assert code == 0 and "common room" not in out and "channels:read" not in _line(out, "slack", "scopes")


def test_common_room_bridges_that_do_not_parse_are_one_failed_check():
    code, out = _doctor({"CHARTERFLOW_COMMONS_BRIDGES": "moderators discord"}, "--sandboxes", "--platform", "slack")
    line = _line(out, "slack", "common room")
    assert code == 1 and line.startswith("FAIL") and "expected 'name: platform=room" in line


def test_channel_overwrites_are_applied_as_discord_does():
    view, send = REQUIRED_PERMISSIONS["View Channels"][0], REQUIRED_PERMISSIONS["Send Messages"][0]
    guild, bot, wg_role, bot_role = "10", "20", "30", "40"
    roles = {guild: {"permissions": str(view | send)}, bot_role: {"permissions": "0"}}
    base = guild_permissions(guild_id=guild, roles=roles, member_roles=[bot_role])
    assert base == view | send
    private = [
        {"id": guild, "type": 0, "allow": "0", "deny": str(view)},  # hidden from @everyone
        {"id": wg_role, "type": 0, "allow": str(view), "deny": "0"},
    ]
    assert (
        not channel_permissions(base, guild_id=guild, member_id=bot, member_roles=[bot_role], overwrites=private) & view
    )
    assert (
        channel_permissions(base, guild_id=guild, member_id=bot, member_roles=[bot_role, wg_role], overwrites=private)
        & view
    )
    member_deny = private + [{"id": bot, "type": 1, "allow": "0", "deny": str(send)}]
    assert (
        not channel_permissions(
            base, guild_id=guild, member_id=bot, member_roles=[bot_role, wg_role], overwrites=member_deny
        )
        & send
    )
    admin = {**roles, bot_role: {"permissions": str(1 << 3)}}
    top = guild_permissions(guild_id=guild, roles=admin, member_roles=[bot_role])
    assert (
        channel_permissions(top, guild_id=guild, member_id=bot, member_roles=[bot_role], overwrites=member_deny) == -1
    )  # Administrator passes every overwrite


def test_json_output_is_one_object_per_check():
    code, out = _doctor({}, "--sandboxes", "--platform", "discourse", "--json")
    assert code == 0, out
    rows = [json.loads(line) for line in out.splitlines()]
    assert {r["platform"] for r in rows} == {"discourse", "gateway"}
    assert all(set(r) == {"platform", "name", "ok", "detail", "fix"} and r["ok"] for r in rows)
