"""Where the sandboxes used to differ from the real platforms (issue 20, point 4).

Each test talks to a sandbox the way a third-party client would: raw HTTP (httpx) on loopback, or
slack_sdk's WebClient. One test per difference, named after it.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from connectors.discord.interactions import InteractionVerifier
from connectors.discord.sandbox import (
    _METHODS,
    API_PREFIX,
    ATTACH_FILES,
    MANAGE_MESSAGES,
    PRIVATE_THREADS,
    READ_HISTORY,
    SEND_IN_THREADS,
    SEND_MESSAGES,
    USE_COMMANDS,
    VIEW_AUDIT_LOG,
    VIEW_CHANNEL,
    DiscordSandbox,
    _routes,
)
from connectors.discord.sandbox import default_seed as default_discord_seed
from connectors.discourse.sandbox import DiscourseSandbox
from connectors.discourse.sandbox import _route as DISCOURSE_ROUTES
from connectors.discourse.sandbox import default_seed as default_discourse_seed
from connectors.errors import ConfigError, InvalidSignature
from connectors.slack.sandbox import SlackSandbox
from tests.connectors.discord.test_spec import SPEC, response_validator
from tests.support.clients import grant_the_bot
from tests.support.net import LoopbackServer, request_of


@pytest.fixture
def discord(serve: Any) -> Any:
    return serve(DiscordSandbox())


@pytest.fixture
def slack(serve: Any) -> Any:
    return serve(SlackSandbox())


@functools.cache
def _vendored(platform: str) -> dict[str, Any]:
    """The platform's official OpenAPI document, as ``tests/data`` keeps it (read once)."""
    return json.loads((Path(__file__).resolve().parents[1] / "data" / f"{platform}-openapi.json").read_text("utf-8"))


def _discord(box: Any, method: str, path: str, **kw: Any) -> httpx.Response:
    headers = {
        "Authorization": f"Bot {box.sandbox.token}",
        "User-Agent": "DiscordBot (tests, 1.0)",
        **kw.pop("headers", {}),
    }
    return httpx.request(method, f"{box.url}{API_PREFIX}{path}", headers=headers, timeout=10, **kw)


def _discourse(box: Any, method: str, path: str, **kw: Any) -> httpx.Response:
    headers = {"Api-Key": box.sandbox.api_key, "Api-Username": "system", **kw.pop("headers", {})}
    return httpx.request(method, f"{box.url}{path}", headers=headers, timeout=10, **kw)


def _slack(box: Any, api_method: str, **data: Any) -> httpx.Response:
    return httpx.post(
        f"{box.url}/api/{api_method}",
        data=data,
        timeout=10,
        headers={"Authorization": f"Bearer {box.sandbox.bot_token}"},
    )


# ---- 1. an endpoint a sandbox does not emulate is not "not found" ---------------------------------


def test_discord_unemulated_endpoint_answers_501_not_404(discord: Any) -> None:
    guild = discord.sandbox.seed.guild_id
    answer = _discord(discord, "GET", f"/guilds/{guild}/bans")
    assert answer.status_code == 501
    assert answer.json() == {"message": f"not emulated by the sandbox: GET {API_PREFIX}/guilds/{guild}/bans", "code": 0}
    # A known route with an unknown id keeps Discord's real 404.
    unknown = _discord(discord, "GET", f"/guilds/{guild}/members/1999999999999999999")
    assert unknown.status_code == 404 and unknown.json()["code"] in (10007, 10013)


def test_discourse_unemulated_endpoint_answers_501_not_404(discourse: Any) -> None:
    answer = _discourse(discourse, "GET", "/admin/plugins.json")
    assert answer.status_code == 501
    assert answer.json() == {
        "errors": ["not emulated by the sandbox: GET /admin/plugins.json"],
        "error_type": "not_emulated",
    }
    unknown = _discourse(discourse, "GET", "/posts/999999.json")
    assert unknown.status_code == 404 and unknown.json()["error_type"] == "not_found"


def test_slack_unemulated_method_answers_not_emulated_at_http_200(slack: Any) -> None:
    # HTTP 200 as every failure of Slack's Web API: Slack's Node SDK retries any other status
    # (but 429) for about 30 minutes (tests/connectors/test_third_party_js.py).
    answer = _slack(slack, "pins.list", channel="C0000000001")
    assert answer.status_code == 200
    assert answer.json()["ok"] is False and answer.json()["error"] == "not_emulated"
    assert "not emulated by the sandbox: POST /api/pins.list" in answer.json()["detail"]
    client = WebClient(token=slack.sandbox.bot_token, base_url=f"{slack.url}/api/")
    with pytest.raises(SlackApiError) as caught:
        client.api_call("bookmarks.list", params={"channel_id": "C0000000001"})
    assert caught.value.response.status_code == 200
    assert caught.value.response["error"] == "not_emulated"


# ---- 2. Discord -----------------------------------------------------------------------------------


def test_discord_wrong_method_on_known_path_answers_405(discord: Any) -> None:
    guild = discord.sandbox.seed.guild_id
    answer = _discord(discord, "DELETE", f"/guilds/{guild}/roles")
    assert answer.status_code == 405
    assert answer.json() == {"message": "405: Method Not Allowed", "code": 0}


def test_discord_methods_table_is_the_openapi_documents() -> None:
    # The sandbox's data of what Discord serves on each path it routes (methods.json).
    def verbs(item: dict[str, Any]) -> str:
        return " ".join(sorted(m.upper() for m in item if m in ("get", "put", "post", "patch", "delete")))

    spec_paths = {_shape_of(path): verbs(item) for path, item in SPEC["paths"].items()}
    assert {route.template for route in _routes.routes} == set(_METHODS)
    assert {template: spec_paths[_shape_of(template)] for template in _METHODS} == _METHODS


def _shape_of(template: str) -> str:
    return "/".join("{}" if part.startswith("{") else part for part in template.split("/"))


@pytest.mark.parametrize("platform", ["discord", "discourse"])
def test_no_documented_path_is_taken_by_a_route_of_another_shape(platform: str) -> None:
    # A placeholder route must not catch a literal path of the platform (/messages/{id} took
    # /messages/pins and answered a false 400): each documented path reaches the route of its own
    # shape, or none (then 501, or 405).
    routes = {"discord": _routes, "discourse": DISCOURSE_ROUTES}[platform]
    doc = _vendored(platform)
    taken = []
    for path, item in doc["paths"].items():
        for method in set(item) & {"get", "put", "post", "patch", "delete"}:
            route, _ = routes.match(method.upper(), re.sub(r"\{[^}]+\}", "123", path))
            if route is not None and _shape_of(route.template) != _shape_of(path):
                taken.append(f"{method.upper()} {path} -> {route.template}")
    assert taken == []


def test_discord_pins_list_is_not_emulated_not_a_bad_message_id(discord: Any) -> None:
    answer = _discord(discord, "GET", f"/channels/{discord.sandbox.channel_id('wg-private')}/messages/pins")
    assert answer.status_code == 501 and "not emulated by the sandbox" in answer.json()["message"]


def test_discord_method_it_serves_but_the_sandbox_does_not_answers_501_not_405(discord: Any) -> None:
    # Discord creates one guild command and edits a member: the sandbox emulates neither (it lists
    # and overwrites the commands), and says so instead of claiming Discord refuses the method.
    app, guild = discord.sandbox.seed.application_id, discord.sandbox.seed.guild_id
    for method, path in (
        ("POST", f"/applications/{app}/guilds/{guild}/commands"),
        ("PATCH", f"/guilds/{guild}/members/{app}"),
    ):
        answer = _discord(discord, method, path)
        assert answer.status_code == 501, (method, path)
        assert answer.json()["message"] == f"not emulated by the sandbox: {method} {API_PREFIX}{path}"


def test_discord_percent_encoded_at_me_is_at_me(discord: Any) -> None:
    # discord.js's routes (discord-api-types) percent-encode "@me" as "%40me"; Discord serves both.
    for path, what in (
        ("/users/%40me", discord.sandbox.bot_id),
        ("/applications/%40me", discord.sandbox.seed.application_id),
    ):
        answer = _discord(discord, "GET", path)
        assert (answer.status_code, answer.json()["id"]) == (200, what), path
    assert _discord(discord, "GET", "/users/%40you").json()["code"] == 50035  # not snowflake, as before


def test_discord_join_thread_as_me_adds_the_bot(discord: Any) -> None:
    box = discord.sandbox
    made = _discord(
        discord,
        "POST",
        f"/channels/{box.channel_id('wg-private')}/threads",
        json={"name": "a thread", "type": 12, "invitable": False},
    )
    thread = made.json()["id"]
    assert _discord(discord, "PUT", f"/channels/{thread}/thread-members/@me").status_code == 204
    assert box.channels[thread]["members"].count(box.bot_id) == 1
    assert _discord(discord, "PUT", f"/channels/{thread}/thread-members/@me").status_code == 204  # idempotent
    assert box.channels[thread]["members"].count(box.bot_id) == 1


def test_discord_non_snowflake_path_id_answers_400_invalid_form_body(discord: Any) -> None:
    guild = discord.sandbox.seed.guild_id
    answer = _discord(discord, "GET", f"/guilds/{guild}/members/not-a-snowflake")
    assert answer.status_code == 400
    body = answer.json()
    assert body["code"] == 50035 and body["message"] == "Invalid Form Body"
    assert "user_id" in body["errors"]


def test_discord_message_commands_take_any_case_and_no_description(discord: Any) -> None:
    # Discord: USER/MESSAGE command names may be mixed case with spaces; their description is "".
    seed = discord.sandbox.seed
    path = f"/applications/{seed.application_id}/guilds/{seed.guild_id}/commands"
    ok = _discord(discord, "PUT", path, json=[{"name": "Report to moderators", "type": 3, "description": ""}])
    assert ok.status_code == 200 and ok.json()[0]["type"] == 3, ok.text
    for bad in (
        {"name": "Report to moderators", "type": 3, "description": "Report it"},
        {"name": "Report", "type": 1, "description": "A slash command in capitals"},
        {"name": "x" * 33, "type": 3, "description": ""},
        {"name": "report", "type": 4, "description": "no such type"},
    ):
        refused = _discord(discord, "PUT", path, json=[bad])
        assert refused.status_code == 400 and refused.json()["code"] == 50035, bad


def test_discord_audit_log_reason_over_512_characters_is_refused(discord: Any) -> None:
    sandbox = discord.sandbox
    guild = sandbox.seed.guild_id
    user = next(iter(sandbox.members))
    role = next(r for r in sandbox.roles if r != guild)
    path = f"/guilds/{guild}/members/{user}/roles/{role}"
    too_long = _discord(discord, "PUT", path, headers={"X-Audit-Log-Reason": "r" * 513})
    assert too_long.status_code == 400
    assert too_long.json()["code"] == 50035 and "audit_log_reason" in too_long.json()["errors"]
    assert _discord(discord, "PUT", path, headers={"X-Audit-Log-Reason": "r" * 512}).status_code == 204


def test_discord_429_carries_via_and_scope_headers(discord: Any) -> None:
    discord.faults(storm={"count": 1, "retry_after": 0.01, "scope": "user"})
    answer = _discord(discord, "GET", f"/guilds/{discord.sandbox.seed.guild_id}/roles")
    assert answer.status_code == 429
    assert answer.headers["Via"] == "1.1 google"
    assert answer.headers["X-RateLimit-Scope"] == "user"


# ---- 4. Slack: conversations.info, conversations.members, users.info ------------------------------


def _tuples_to_any_of(node: Any) -> Any:
    """Slack's spec writes alternatives as tuple-style ``"items": [...]`` on non-arrays (its
    SOURCE notes call that out as invalid); read them as the ``anyOf`` they mean."""
    if isinstance(node, list):
        return [_tuples_to_any_of(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _tuples_to_any_of(v) for k, v in node.items()}
    if isinstance(out.get("items"), list) and out.get("type") != "array":
        out["anyOf"] = out.pop("items")
    return out


@pytest.fixture(scope="module")
def slack_spec() -> dict[str, Any]:
    return _tuples_to_any_of(_vendored("slack"))


def _check_slack(spec: dict[str, Any], api_method: str, body: dict[str, Any]) -> None:
    """Validate ``body`` against the method's success (ok) or error (default) schema."""
    responses = spec["paths"][f"/{api_method}"]["get"]["responses"]
    schema = dict(responses["200" if body["ok"] else "default"]["schema"], definitions=spec["definitions"])
    jsonschema.Draft4Validator(schema).validate(body)


def test_slack_conversations_info_answers_like_slack(slack: Any, slack_spec: dict[str, Any]) -> None:
    client = WebClient(token=slack.sandbox.bot_token, base_url=f"{slack.url}/api/")
    board = slack.sandbox.seed.board_channel
    answer = client.conversations_info(channel=board, include_num_members=True)
    _check_slack(slack_spec, "conversations.info", answer.data)
    channel = answer["channel"]
    assert channel["id"] == board and channel["is_private"] and channel["is_member"]
    assert channel["num_members"] == len(slack.sandbox.channels[board]["members"])
    with pytest.raises(SlackApiError) as caught:
        client.conversations_info(channel="C0NOSUCH99")
    assert caught.value.response.status_code == 200
    _check_slack(slack_spec, "conversations.info", caught.value.response.data)
    assert caught.value.response["error"] == "channel_not_found"


def test_slack_conversations_members_answers_like_slack(slack: Any, slack_spec: dict[str, Any]) -> None:
    board = slack.sandbox.seed.board_channel
    members = sorted(slack.sandbox.channels[board]["members"])
    first = _slack(slack, "conversations.members", channel=board, limit="2").json()
    _check_slack(slack_spec, "conversations.members", first)
    rest = _slack(
        slack, "conversations.members", channel=board, cursor=first["response_metadata"]["next_cursor"], limit="100"
    ).json()
    assert first["members"] + rest["members"] == members and rest["response_metadata"]["next_cursor"] == ""
    missing = _slack(slack, "conversations.members", channel="C0NOSUCH99").json()
    _check_slack(slack_spec, "conversations.members", missing)
    assert missing == {"ok": False, "error": "channel_not_found"}
    bad_limit = _slack(slack, "conversations.members", channel=board, limit="0").json()
    assert bad_limit["error"] == "invalid_limit"


def test_slack_users_info_answers_like_slack(slack: Any, slack_spec: dict[str, Any]) -> None:
    client = WebClient(token=slack.sandbox.bot_token, base_url=f"{slack.url}/api/")
    seeded = slack.sandbox.seed.users[0]
    answer = client.users_info(user=seeded.id)
    _check_slack(slack_spec, "users.info", answer.data)
    assert answer["user"]["id"] == seeded.id and answer["user"]["profile"]["email"] == seeded.email
    with pytest.raises(SlackApiError) as caught:
        client.users_info(user="U0NOBODY99")
    _check_slack(slack_spec, "users.info", caught.value.response.data)
    assert caught.value.response["error"] == "user_not_found"


# ---- 3. Discourse ---------------------------------------------------------------------------------


def test_discourse_post_longer_than_max_post_length_is_refused_422(discourse: Any) -> None:
    too_long = _discourse(
        discourse, "POST", "/posts.json", json={"title": "A topic title long enough", "raw": "x" * 32001}
    )
    assert too_long.status_code == 422
    assert too_long.json() == {
        "action": "create_post",
        "errors": ["Body is limited to 32000 characters; you entered 32001."],
    }
    at_limit = _discourse(
        discourse, "POST", "/posts.json", json={"title": "Another topic title here", "raw": "y" * 32000}
    )
    assert at_limit.status_code == 200


def test_discourse_malformed_json_answers_400_not_422(discourse: Any) -> None:
    answer = _discourse(
        discourse, "POST", "/posts.json", content=b'{"title": "broken', headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 400
    assert answer.json()["error_type"] == "invalid_parameters"
    assert not discourse.sandbox.posts  # nothing was created


def test_discord_me_endpoints_return_every_field_the_openapi_requires(discord: Any) -> None:
    for template in ("/users/@me", "/applications/@me"):
        answer = _discord(discord, "GET", template)
        assert answer.status_code == 200
        response_validator("GET", template, 200).validate(answer.json())
        schema_name = SPEC["paths"][template]["get"]["responses"]["200"]["content"]["application/json"]["schema"][
            "$ref"
        ].rsplit("/", 1)[1]
        missing = set(SPEC["components"]["schemas"][schema_name]["required"]) - set(answer.json())
        assert not missing, f"{template} lacks {sorted(missing)}"


def test_discord_multipart_message_create_is_accepted(discord: Any) -> None:
    channel = next(cid for cid, c in discord.sandbox.channels.items() if c["type"] == 0)
    upload = {"files[0]": ("minutes.txt", b"agenda and notes", "text/plain")}
    body = {"payload_json": json.dumps({"content": "minutes attached"})}
    refused = _discord(discord, "POST", f"/channels/{channel}/messages", data=body, files=upload)
    assert (refused.status_code, refused.json()["code"]) == (403, 50013)  # no Attach Files: charterflow uploads none
    grant_the_bot(discord, ATTACH_FILES)
    answer = _discord(
        discord,
        "POST",
        f"/channels/{channel}/messages",
        data={"payload_json": json.dumps({"content": "minutes attached"})},
        files={"files[0]": ("minutes.txt", b"agenda and notes", "text/plain")},
    )
    assert answer.status_code == 200, answer.text
    message = answer.json()
    assert message["content"] == "minutes attached"
    assert [(a["filename"], a["size"]) for a in message["attachments"]] == [("minutes.txt", 16)]

    response_validator("POST", "/channels/{channel_id}/messages", 200).validate(message)


def _guild_with_overwrites() -> dict[str, Any]:
    """The default guild and three channels whose overwrites keep the bot from something."""
    seed = default_discord_seed()
    seed["channels"] += [
        {"name": "vault", "permission_overwrites": [{"role": "@everyone", "deny": VIEW_CHANNEL}]},
        {
            "name": "read-only",
            "permission_overwrites": [
                {"role": "@everyone", "deny": SEND_MESSAGES},
                {"role": "charterflow", "deny": SEND_MESSAGES},
            ],
        },
        {"name": "no-history", "permission_overwrites": [{"role": "charterflow", "deny": READ_HISTORY}]},
        {
            "name": "bot-excepted",
            "permission_overwrites": [
                {"role": "charterflow", "deny": SEND_MESSAGES},
                {"member": "charterflow", "allow": SEND_MESSAGES},  # the bot's user
            ],
        },
    ]
    return seed


def test_discord_channel_overwrites_decide_what_the_bot_may_do(serve: Any) -> None:
    # https://discord.com/developers/docs/topics/permissions#permission-overwrites: @everyone's,
    # then the roles', then the member's own; no View Channel is 50001, the rest 50013. The sandbox
    # had let the bot do everything everywhere.
    box = serve(DiscordSandbox(seed=_guild_with_overwrites()))
    sb = box.sandbox
    vault, read_only, no_history = (sb.channel_id(n) for n in ("vault", "read-only", "no-history"))

    def code(answer: httpx.Response) -> tuple[int, int | None]:
        return answer.status_code, answer.json().get("code") if answer.status_code >= 400 else None

    post = {"json": {"content": "From the bot"}}
    assert code(_discord(box, "POST", f"/channels/{vault}/messages", **post)) == (403, 50001)
    assert code(_discord(box, "GET", f"/channels/{vault}")) == (403, 50001)
    assert code(_discord(box, "GET", f"/channels/{vault}/messages")) == (403, 50001)
    assert code(_discord(box, "POST", f"/channels/{read_only}/messages", **post)) == (403, 50013)
    assert _discord(box, "GET", f"/channels/{read_only}/messages").json() == []
    # Without Read Message History the list is empty and a message by id refused.
    sent = _discord(box, "POST", f"/channels/{no_history}/messages", **post).json()
    assert _discord(box, "GET", f"/channels/{no_history}/messages").json() == []
    assert code(_discord(box, "GET", f"/channels/{no_history}/messages/{sent['id']}")) == (403, 50013)
    # The member's own overwrite comes last: the bot's user allowed to send wins over its role's deny.
    excepted = sb.channel_id("bot-excepted")
    assert code(_discord(box, "POST", f"/channels/{excepted}/messages", **post)) == (200, None)
    # A channel shows its overwrites as Discord does (ids, types, allow and deny as strings); the
    # guild's list leaves out a channel the bot cannot view (Discord's channel obfuscation, in
    # force since 2026-11-16).
    shown = {c["id"]: c for c in _discord(box, "GET", f"/guilds/{sb.seed.guild_id}/channels").json()}
    assert vault not in shown and {read_only, no_history, sb.channel_id("wg-private")} <= set(shown)
    bot_role = next(rid for rid, r in sb.roles.items() if r.get("bot_role"))
    assert shown[no_history]["permission_overwrites"] == [
        {"id": bot_role, "type": 0, "allow": "0", "deny": str(READ_HISTORY)}
    ]
    response_validator("GET", "/channels/{channel_id}", 200).validate(shown[no_history])
    # The search finds no message of a channel the bot cannot read.
    found = _discord(box, "GET", f"/guilds/{sb.seed.guild_id}/messages/search").json()["messages"]
    assert found and not {m[0]["channel_id"] for m in found} & {vault, no_history}


def test_discord_a_person_acts_only_where_their_own_permissions_allow(serve: Any) -> None:
    # A member cannot post, edit, press a button or run a command in a channel they cannot view
    # (50001), nor post where they may not send or run a command without Use Application Commands
    # (50013); the sandbox's control routes had let anyone act anywhere.
    seed = _guild_with_overwrites()
    seed["channels"].append(
        {"name": "no-commands", "permission_overwrites": [{"role": "@everyone", "deny": USE_COMMANDS}]}
    )
    box = serve(DiscordSandbox(seed=seed))
    sb = box.sandbox
    moderators, read_only, no_commands = (sb.channel_id(n) for n in ("moderators", "read-only", "no-commands"))

    def act(route: str, body: dict[str, Any]) -> tuple[int, int | None]:
        answer = httpx.post(f"{box.url}/_sandbox/{route}", json=body, timeout=10)
        return answer.status_code, answer.json().get("code") if answer.status_code >= 400 else None

    def said(channel: str) -> list[str]:  # the channel's messages, as the bot reads them
        return [m["id"] for m in _discord(box, "GET", f"/channels/{channel}/messages").json()]

    buttons = [{"type": 1, "components": [{"type": 2, "style": 1, "label": "Claim", "custom_id": "claim"}]}]
    claim = _discord(
        box, "POST", f"/channels/{moderators}/messages", json={"content": "A report", "components": buttons}
    )
    before, kept = said(moderators), dict(sb.interactions)
    # cleo_marsh is in wg-member, not moderator: #moderators is hidden from her.
    press = {"type": "component", "user": "cleo_marsh", "message_id": claim.json()["id"], "custom_id": "claim"}
    command = {"type": "command", "user": "cleo_marsh", "name": "idea", "channel_id": moderators}
    assert act("messages", {"user": "cleo_marsh", "channel": "moderators", "content": "Hi"}) == (403, 50001)
    assert act("interactions", press) == (403, 50001)
    assert act("interactions", command) == (403, 50001)
    assert said(moderators) == before and sb.interactions == kept  # nothing stored, nothing sent
    # She sees read-only but may not send there; no-commands but may not run a command there.
    assert act("messages", {"user": "cleo_marsh", "channel": "read-only", "content": "Hi"}) == (403, 50013)
    assert said(read_only) == []
    assert act("interactions", {**command, "channel_id": no_commands}) == (403, 50013)
    # Where she may, she does; a moderator presses the button she could not.
    assert act("messages", {"user": "cleo_marsh", "channel": "wg-private", "content": "Hi"}) == (200, None)
    assert act("messages", {"user": "cleo_marsh", "channel": "no-commands", "content": "Hi"}) == (200, None)
    assert act("interactions", {**press, "user": "bram_tolliver"}) == (200, None)
    # A DM has no guild: nothing refuses her there.
    dm = _discord(box, "POST", "/users/@me/channels", json={"recipient_id": sb._user_by_name("cleo_marsh")["id"]})
    assert act("messages", {"user": "cleo_marsh", "channel": dm.json()["id"], "content": "Hi"}) == (200, None)
    assert act("interactions", {**command, "channel_id": dm.json()["id"]}) == (200, None)
    # Her message in wg-private, once she has left wg-member, is out of her reach.
    mine = httpx.post(
        f"{box.url}/_sandbox/messages",
        json={"user": "cleo_marsh", "channel": "wg-private", "content": "Hi"},
        timeout=10,
    ).json()
    wg = next(rid for rid, r in sb.roles.items() if r["name"] == "wg-member")
    _discord(box, "DELETE", f"/guilds/{sb.seed.guild_id}/members/{mine['author']['id']}/roles/{wg}").raise_for_status()
    assert act("messages/edit", {"message_id": mine["id"], "content": "Edited"}) == (403, 50001)
    assert sb.messages[mine["id"]]["content"] == "Hi"


def test_discord_guild_permissions_the_bot_lacks_are_refused_and_administrator_holds_them_all(serve: Any) -> None:
    # @everyone without Send Messages in Threads: the bot holds it through its own role only.
    seed = default_discord_seed()
    seed["everyone_permissions"] = VIEW_CHANNEL | SEND_MESSAGES | READ_HISTORY
    box = serve(DiscordSandbox(seed=seed))
    sb = box.sandbox
    general, guild = sb.channel_id("general"), sb.seed.guild_id
    person = sb._user_by_name("cleo_marsh")["id"]
    theirs = httpx.post(
        f"{box.url}/_sandbox/messages", json={"user": "cleo_marsh", "channel": "general", "content": "Hi"}, timeout=10
    ).json()
    mine = _discord(box, "POST", f"/channels/{general}/messages", json={"content": "Mine"}).json()
    thread = _discord(box, "POST", f"/channels/{general}/threads", json={"name": "Open", "type": 11}).json()
    role = next(r for r in sb.roles.values() if r.get("bot_role"))
    held = int(role["permissions"])
    cuts = {
        "DELETE another's message": (MANAGE_MESSAGES, "DELETE", f"/channels/{general}/messages/{theirs['id']}", {}),
        "a private thread": (PRIVATE_THREADS, "POST", f"/channels/{general}/threads", {"name": "Closed", "type": 12}),
        "another into a thread": (SEND_IN_THREADS, "PUT", f"/channels/{thread['id']}/thread-members/{person}", None),
        "the audit log": (VIEW_AUDIT_LOG, "GET", f"/guilds/{guild}/audit-logs", None),
    }
    for what, (bit, method, path, body) in cuts.items():
        httpx.post(
            f"{box.url}/_sandbox/roles", json={"role": role["id"], "permissions": held & ~bit}, timeout=10
        ).raise_for_status()
        answer = _discord(box, method, path, **({"json": body} if body else {}))
        assert (answer.status_code, answer.json()["code"]) == (403, 50013), what
    # Deleting its own message needs nothing more; Administrator (8) holds every permission.
    assert _discord(box, "DELETE", f"/channels/{general}/messages/{mine['id']}").status_code == 204
    httpx.post(f"{box.url}/_sandbox/roles", json={"role": role["id"], "permissions": 8}, timeout=10)
    for what, (_, method, path, body) in cuts.items():
        assert _discord(box, method, path, **({"json": body} if body else {})).status_code < 300, what


def test_discord_without_its_privileged_intents_the_bot_lists_no_members_and_reads_no_ones_content(
    serve: Any,
) -> None:
    # https://discord.com/developers/docs/events/gateway#privileged-intents: List Guild Members
    # needs Server Members (403 50001 else); without Message Content another's message in a guild
    # channel comes without its content, unless it mentions the bot. The sandbox had served both.
    seed = default_discord_seed()
    seed["application_flags"] = 0
    box = serve(DiscordSandbox(seed=seed))
    sb = box.sandbox
    refused = _discord(box, "GET", f"/guilds/{sb.seed.guild_id}/members")
    assert (refused.status_code, refused.json()["code"]) == (403, 50001)
    general = sb.channel_id("general")

    def person(content: str, channel: str = "general") -> str:
        said = {"user": "cleo_marsh", "channel": channel, "content": content}
        return str(httpx.post(f"{box.url}/_sandbox/messages", json=said, timeout=10).json()["id"])

    plain, mention = person("Meeting at six"), person(f"<@{sb.bot_id}> can you pin this?")
    own = _discord(box, "POST", f"/channels/{general}/messages", json={"content": "Pinned"}).json()["id"]
    dm = _discord(box, "POST", "/users/@me/channels", json={"recipient_id": sb._user_by_name("cleo_marsh")["id"]})
    private = person("Thanks for the reminder", channel=dm.json()["id"])
    read = {m["id"]: m["content"] for m in _discord(box, "GET", f"/channels/{general}/messages").json()}
    assert read == {plain: "", mention: f"<@{sb.bot_id}> can you pin this?", own: "Pinned"}
    assert _discord(box, "GET", f"/channels/{general}/messages/{plain}").json()["content"] == ""
    assert _discord(box, "GET", f"/channels/{dm.json()['id']}/messages").json()[0]["id"] == private
    assert (
        _discord(box, "GET", f"/channels/{dm.json()['id']}/messages").json()[0]["content"] == "Thanks for the reminder"
    )
    # With the intent (the default seed's limited bit) the same message is read whole.
    whole = serve(DiscordSandbox())
    said = {"user": "cleo_marsh", "channel": "general", "content": "Meeting at six"}
    mid = httpx.post(f"{whole.url}/_sandbox/messages", json=said, timeout=10).json()["id"]
    channel = whole.sandbox.channel_id("general")
    assert _discord(whole, "GET", f"/channels/{channel}/messages/{mid}").json()["content"] == "Meeting at six"


@pytest.mark.parametrize(
    "overwrite",
    [
        {"role": "no-such-role", "deny": 1024},
        {"member": "nobody_here", "allow": 1024},
        {"role": "wg-member", "member": "cleo_marsh"},
        {},
        {"role": "wg-member", "allow": 1024, "twice": True},
    ],
    ids=["unknown-role", "unknown-member", "both", "neither", "twice"],
)
def test_a_discord_seed_overwrite_naming_nothing_or_two_things_is_refused(overwrite: dict[str, Any]) -> None:
    seed = default_discord_seed()
    twice = overwrite.pop("twice", False)
    seed["channels"][0]["permission_overwrites"] = [overwrite, *([dict(overwrite, allow=2048)] if twice else [])]
    with pytest.raises(ConfigError, match="overwrite"):
        DiscordSandbox(seed=seed)


def _created(discourse: Any, **fields: Any) -> httpx.Response:
    """A post created through the API as the connector's key; the test stops unless it was."""
    response = _discourse(discourse, "POST", "/posts.json", json=fields)
    assert response.status_code == 200, response.text
    return response


def test_discourse_unauthenticated_gets_answer_as_anonymous_on_a_public_site(discourse: Any) -> None:
    public = _created(discourse, title="A public topic for visitors", raw="Everyone may read this post.")
    private = _created(
        discourse,
        title="A private message",
        raw="Only the recipient reads this.",
        archetype="private_message",
        target_recipients="avery_quill",
    )
    anonymous = httpx.Client(base_url=discourse.url, timeout=10, headers={"Accept": "application/json"})
    seen = anonymous.get(f"/posts/{public.json()['id']}.json")
    assert seen.status_code == 200 and seen.json()["raw"] == "Everyone may read this post."
    categories = anonymous.get("/categories.json").json()["category_list"]
    assert categories["can_create_topic"] is False
    assert [c["name"] for c in categories["categories"]] == ["General"]  # not the restricted one
    hidden = anonymous.get(f"/posts/{private.json()['id']}.json")
    assert hidden.status_code == 403
    assert hidden.json() == {
        "errors": ["You are not permitted to view the requested resource."],
        "error_type": "invalid_access",
    }
    # Admin routes do not match for a visitor (StaffConstraint/AdminConstraint fail): 404.
    assert anonymous.get("/admin/users/list/active.json").status_code == 404
    assert anonymous.post("/posts.json", json={"title": "x" * 20, "raw": "y" * 30}).status_code == 403


def test_discourse_paths_without_json_are_served_when_the_client_accepts_json(discourse: Any) -> None:
    json_accept = {"Accept": "application/json"}
    created = _discourse(
        discourse,
        "POST",
        "/posts",
        headers=json_accept,
        json={"title": "Posted without the suffix", "raw": "The Accept header says JSON."},
    )
    assert created.status_code == 200, created.text
    shown = _discourse(discourse, "GET", f"/posts/{created.json()['id']}", headers=json_accept)
    assert shown.status_code == 200 and shown.json()["id"] == created.json()["id"]
    by_alias = _discourse(discourse, "GET", "/users/avery_quill.json")
    assert by_alias.status_code == 200 and by_alias.json()["user"]["username"] == "avery_quill"
    assert _discourse(discourse, "GET", "/u/avery_quill", headers=json_accept).status_code == 200


def test_discourse_anonymous_topic_and_listing_reads_answer_like_a_public_site(discourse: Any) -> None:
    spec = _vendored("discourse")

    def check(template: str, body: Any) -> None:
        schema = spec["paths"][template]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        jsonschema.Draft202012Validator(schema).validate(body)

    general = next(c for c in discourse.sandbox.categories.values() if not c["read_restricted"])
    restricted = next(c for c in discourse.sandbox.categories.values() if c["read_restricted"])
    public = _created(
        discourse, title="A public topic for visitors", raw="Everyone may read this post.", category=general["id"]
    )
    private = _created(
        discourse,
        title="Working group business",
        raw="Only the working group reads this topic.",
        category=restricted["id"],
    )
    anonymous = httpx.Client(base_url=discourse.url, timeout=10)
    topic_id, slug = public.json()["topic_id"], public.json()["topic_slug"]

    for path in (f"/t/{slug}/{topic_id}.json", f"/t/{topic_id}.json"):
        shown = anonymous.get(path)
        assert shown.status_code == 200, (path, shown.text)
        check("/t/{id}.json", shown.json())
        assert shown.json()["title"] == "A public topic for visitors"
        assert [p["cooked"] for p in shown.json()["post_stream"]["posts"]] == ["<p>Everyone may read this post.</p>"]
        assert shown.json()["details"]["can_create_post"] is False

    hidden = anonymous.get(f"/t/{private.json()['topic_slug']}/{private.json()['topic_id']}.json")
    assert hidden.status_code == 403 and hidden.json()["error_type"] == "invalid_access"
    assert anonymous.get("/t/no-such-topic/999999.json").status_code == 404

    latest = anonymous.get("/latest.json")
    assert latest.status_code == 200

    # The spec's two topic lists (one TopicListItemSerializer) disagree: /latest.json types
    # image_url and bookmarked as non-null, /c/{slug}/{id}.json as nullable and requires every
    # field. The topics are checked against the stricter one, the envelope against its own.
    def topics_schema(template: str) -> dict[str, Any]:
        return spec["paths"][template]["get"]["responses"]["200"]["content"]["application/json"]["schema"][
            "properties"
        ]["topic_list"]["properties"]["topics"]

    topics_schema("/latest.json")["items"] = topics_schema("/c/{slug}/{id}.json")["items"]
    check("/latest.json", latest.json())
    assert [t["id"] for t in latest.json()["topic_list"]["topics"]] == [topic_id]  # not the restricted one
    as_admin = _discourse(discourse, "GET", "/latest.json").json()["topic_list"]["topics"]
    assert {t["id"] for t in as_admin} == {topic_id, private.json()["topic_id"]}

    listed = anonymous.get(f"/c/{general['slug']}/{general['id']}.json")
    assert listed.status_code == 200
    check("/c/{slug}/{id}.json", listed.json())
    assert [t["id"] for t in listed.json()["topic_list"]["topics"]] == [topic_id]
    assert anonymous.get(f"/c/{restricted['slug']}/{restricted['id']}.json").status_code == 404
    assert anonymous.get("/c/nowhere/999.json").status_code == 404


def test_discourse_group_search_is_its_own_route_not_a_group_called_search(discourse: Any) -> None:
    # pydiscourse's groups() reads /groups/search.json; it once matched /groups/{name}.json and
    # answered 404, as if the Forum had no such page.
    every = _discourse(discourse, "GET", "/groups/search.json")
    assert every.status_code == 200
    assert [g["name"] for g in every.json()] == ["board", "moderators", "working-group"]
    assert every.json()[0]["user_count"] == len(discourse.sandbox._group_by_name("board")["members"])
    found = _discourse(discourse, "GET", "/groups/search.json", params={"term": "WORK"})
    assert [g["name"] for g in found.json()] == ["working-group"]
    assert _discourse(discourse, "GET", "/groups/search.json", params={"term": "nobody"}).json() == []
    assert _discourse(discourse, "GET", "/groups/working-group.json").json()["group"]["name"] == "working-group"


def test_discord_objects_fetched_by_id_answer_as_the_openapi_says(discord: Any) -> None:
    # What a bot's library fetches by id (discord.py's fetch_guild, fetch_channel, fetch_user).
    box = discord.sandbox
    member = box._user_by_name("cleo_marsh")["id"]
    thread = _discord(
        discord, "POST", f"/channels/{box.channel_id('wg-private')}/threads", json={"name": "a thread", "type": 12}
    ).json()
    dm = _discord(discord, "POST", "/users/@me/channels", json={"recipient_id": member}).json()
    for template, path, check in (
        ("/guilds/{guild_id}", f"/guilds/{box.seed.guild_id}", {"name": box.seed.guild_name}),
        ("/channels/{channel_id}", f"/channels/{box.channel_id('wg-private')}", {"name": "wg-private", "type": 0}),
        ("/channels/{channel_id}", f"/channels/{thread['id']}", {"parent_id": box.channel_id("wg-private")}),
        ("/channels/{channel_id}", f"/channels/{dm['id']}", {"type": 1}),
        ("/users/{user_id}", f"/users/{member}", {"username": "cleo_marsh"}),
    ):
        answer = _discord(discord, "GET", path)
        assert answer.status_code == 200, (path, answer.text)
        response_validator("GET", template, 200).validate(answer.json())
        assert check.items() <= answer.json().items(), path
    assert _discord(discord, "GET", f"/channels/{thread['id']}").json()["thread_metadata"] == thread["thread_metadata"]
    assert _discord(discord, "GET", "/channels/1").json() == {"message": "Unknown Channel", "code": 10003}
    assert _discord(discord, "GET", "/users/1").json() == {"message": "Unknown User", "code": 10013}


def test_slack_conversations_and_users_lists_answer_like_slack(slack: Any, slack_spec: dict[str, Any]) -> None:
    # The lists every Slack bot reads first (slack_sdk's conversations_list, users_list), paged.
    box = slack.sandbox
    client = WebClient(token=box.bot_token, base_url=f"{slack.url}/api/")
    public = client.conversations_list()
    _check_slack(slack_spec, "conversations.list", public.data)
    assert public["channels"] and all(not c["is_private"] for c in public["channels"])
    both = client.conversations_list(types="public_channel,private_channel", limit=1)
    names = [both["channels"][0]["name"]]
    while cursor := both["response_metadata"]["next_cursor"]:
        both = client.conversations_list(types="public_channel,private_channel", limit=1, cursor=cursor)
        names.append(both["channels"][0]["name"])
    visible = [
        c["name"]
        for c in sorted(box.channels.values(), key=lambda c: c["id"])
        if not c["is_im"] and (not c["is_private"] or box.seed.bot_user_id in c["members"])
    ]
    assert names == visible and box.channels[box.seed.board_channel]["name"] in names
    users = client.users_list(limit=2)
    _check_slack(slack_spec, "users.list", users.data)
    ids = [u["id"] for u in users["members"]]
    ids += [u["id"] for u in client.users_list(cursor=users["response_metadata"]["next_cursor"])["members"]]
    assert ids == sorted(box.users)
    # Slack's method docs list invalid_types; the spec's error enum predates it.
    assert _slack(slack, "conversations.list", types="everything").json() == {"ok": False, "error": "invalid_types"}
    assert _slack(slack, "users.list", cursor="not-one-we-gave").json()["error"] == "invalid_cursor"


def test_slack_api_test_echoes_without_a_token(slack: Any, slack_spec: dict[str, Any]) -> None:
    echoed = httpx.post(f"{slack.url}/api/api.test", data={"foo": "bar"}, timeout=10).json()
    _check_slack(slack_spec, "api.test", echoed)
    assert echoed == {"ok": True, "args": {"foo": "bar"}}
    failed = httpx.post(f"{slack.url}/api/api.test", data={"error": "my_error"}, timeout=10).json()
    assert failed == {"ok": False, "error": "my_error", "args": {"error": "my_error"}}


def test_discourse_category_page_is_its_own_route_not_a_category_called_show(discourse: Any) -> None:
    # pydiscourse's category(id) reads /c/{id}/show.json; /c/{slug}/{id}.json took it for a topic
    # list of a category with the id "show" and answered 404.
    spec = _vendored("discourse")
    schema = spec["paths"]["/c/{id}/show.json"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    box = discourse.sandbox
    private = next(c for c in box.categories.values() if c["read_restricted"])
    public = next(c for c in box.categories.values() if not c["read_restricted"])
    for category in (public, private):
        shown = _discourse(discourse, "GET", f"/c/{category['id']}/show.json")
        assert shown.status_code == 200, shown.text
        jsonschema.Draft202012Validator(schema).validate(shown.json())
        assert shown.json()["category"]["slug"] == category["slug"]
    private_page = _discourse(discourse, "GET", f"/c/{private['id']}/show.json").json()["category"]
    assert [p["group_name"] for p in private_page["group_permissions"]] == list(private["permissions"])
    assert httpx.get(f"{discourse.url}/c/{private['id']}/show.json", timeout=10).status_code == 404  # a visitor
    assert httpx.get(f"{discourse.url}/c/{public['id']}/show.json", timeout=10).status_code == 200
    assert _discourse(discourse, "GET", "/c/999/show.json").status_code == 404


def test_discourse_admin_user_lists_it_does_not_name_are_every_user(serve: Any) -> None:
    # AdminUserIndexQuery filters only the lists it knows: "all" (pydiscourse's user_by_email) is
    # every user, narrowed by email (exact, any case) or filter (part of a username or e-mail).
    seed = default_discourse_seed()
    seed["users"][3]["email"] = "cleo@example.org"
    box = serve(DiscourseSandbox(seed=seed))
    everyone = _discourse(box, "GET", "/admin/users/list/all.json").json()
    assert len(everyone) == len(box.sandbox.users)
    by_email = _discourse(box, "GET", "/admin/users/list/all.json", params={"email": "CLEO@example.org"}).json()
    assert [u["username"] for u in by_email] == [seed["users"][3]["username"]]
    by_part = _discourse(box, "GET", "/admin/users/list/active.json", params={"filter": "quill"}).json()
    assert [u["username"] for u in by_part] == ["avery_quill"]
    assert _discourse(box, "GET", "/admin/users/list/all.json", params={"email": "nobody@example.org"}).json() == []


def test_discourse_topic_at_a_post_number_is_the_topic_not_a_slug(discourse: Any) -> None:
    # pydiscourse's post(topic_id, post_number) reads /t/{topic_id}/{post_number}.json, which
    # Discourse routes before /t/{slug}/{id}: it took the topic id for a slug and answered 404.
    created = _created(discourse, title="A topic read at a post", raw="The first post of the topic.")
    topic_id = created.json()["topic_id"]
    _discourse(discourse, "POST", "/posts.json", json={"topic_id": topic_id, "raw": "The second post, long enough."})
    shown = _discourse(discourse, "GET", f"/t/{topic_id}/2.json")
    assert shown.status_code == 200, shown.text
    schema = _vendored("discourse")["paths"]["/t/{id}.json"]["get"]["responses"]["200"]["content"]
    jsonschema.Draft202012Validator(schema["application/json"]["schema"]).validate(shown.json())
    assert shown.json()["id"] == topic_id and shown.json()["posts_count"] == 2
    assert _discourse(discourse, "GET", f"/t/{topic_id}/abc.json").status_code == 404


def test_discourse_upload_by_url_is_not_emulated_not_a_missing_file(discourse: Any) -> None:
    # pydiscourse's update_avatar uploads by `url` (Discourse downloads it): it was a false 400 "file".
    answer = _discourse(discourse, "POST", "/uploads.json", data={"type": "avatar", "url": "http://127.0.0.1:9/a.png"})
    assert answer.status_code == 501 and answer.json()["error_type"] == "not_emulated"
    assert discourse.sandbox.uploads == {}
    assert _discourse(discourse, "POST", "/uploads.json", data={"type": "avatar"}).status_code == 400


def test_discourse_suspended_and_silenced_users_are_listed_as_such(discourse: Any) -> None:
    # /admin/users/list/suspended.json was always empty, even after a suspension the sandbox applied.
    cleo, dario = (discourse.sandbox._user_by_name(n)["id"] for n in ("cleo_marsh", "dario_fenwick"))
    for user, kind, field in ((cleo, "suspend", "suspend_until"), (dario, "silence", "silenced_till")):
        put = _discourse(
            discourse, "PUT", f"/admin/users/{user}/{kind}.json", json={field: "2099-01-01", "reason": "x"}
        )
        assert put.status_code == 200, put.text
    _discourse(
        discourse, "PUT", f"/admin/users/{cleo}/suspend.json", json={"suspend_until": "2000-01-01", "reason": "x"}
    )

    def listed(flag: str) -> list[str]:
        return [u["username"] for u in _discourse(discourse, "GET", f"/admin/users/list/{flag}.json").json()]

    assert listed("suspended") == [] and listed("silenced") == listed("blocked") == ["dario_fenwick"]
    _discourse(
        discourse, "PUT", f"/admin/users/{cleo}/suspend.json", json={"suspend_until": "2099-01-01", "reason": "x"}
    )
    assert listed("suspended") == ["cleo_marsh"]


def _endpoint(public_key: str, *, verifies: bool = True, pong: bool = True) -> Any:
    """An interactions endpoint: it refuses what its key did not sign (401) unless ``verifies``
    is off, and answers a PING with a PONG unless ``pong`` is off."""
    verifier = InteractionVerifier(public_key=public_key)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        headers, body = await request_of(scope, receive)
        status, answer = 200, {"type": 1} if pong else {"type": 4, "data": {"content": "hello"}}
        if verifies:
            try:
                verifier.check(headers=headers, body=body)
            except InvalidSignature:
                status, answer = 401, {"error": "invalid request signature"}
        await send(
            {"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]}
        )
        await send({"type": "http.response.body", "body": json.dumps(answer).encode()})

    return app


def test_discord_an_interactions_url_is_saved_only_once_it_refuses_forged_pings_and_pongs(discord: Any) -> None:
    # The Developer Portal sends a PING signed with another key (to be refused) and a signed
    # PING (to be answered with a PONG) before it saves an Interactions Endpoint URL.
    control, key = f"{discord.url}/_sandbox/interactions_url", discord.sandbox.public_key
    for app, why in (
        (_endpoint(key, verifies=False), "a PING with a wrong signature was answered HTTP 200, not refused (401)"),
        (_endpoint(key, pong=False), "the signed PING was answered HTTP 200, not with a PONG"),
    ):
        with LoopbackServer(app) as endpoint:
            refused = httpx.post(control, json={"url": endpoint.url}, timeout=10)
        assert (refused.status_code, refused.json()["code"]) == (400, 50035)
        (error,) = refused.json()["errors"]["interactions_endpoint_url"]["_errors"]
        assert error["code"] == "APPLICATION_INTERACTIONS_ENDPOINT_URL_INVALID" and why in error["message"]
        assert discord.sandbox.interactions_url is None  # not saved
    gone = httpx.post(control, json={"url": endpoint.url}, timeout=10)  # nobody listens there now
    assert gone.status_code == 400 and "ConnectError" in gone.text
    with LoopbackServer(_endpoint(key)) as endpoint:
        saved = httpx.post(control, json={"url": endpoint.url}, timeout=10)
        assert saved.status_code == 200 and discord.sandbox.interactions_url == endpoint.url
        app = _discord(discord, "GET", "/applications/@me").json()
        assert app["interactions_endpoint_url"] == endpoint.url
    assert httpx.post(control, json={"url": None}, timeout=10).json() == {"url": None}  # clearing checks nothing
