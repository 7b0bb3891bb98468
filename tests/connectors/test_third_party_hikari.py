"""The Discord sandbox driven by hikari 2.7, a second Discord library we did not write, which
deserializes every answer into typed entities and reads the fields Discord documents as always
there (a missing or null one is a KeyError or a TypeError, not a default). Judged: a bot's usual
REST calls through hikari's own methods return entities equal to the sandbox's state and change
it; what the sandbox does not emulate reaches hikari as a server error (501) and Discord's
refusals as hikari's own; hikari waits out a message bucket's 429 and every message arrives; the
interactions the sandbox sends are signed so that PyNaCl (as Discord's docs show bots do) and
hikari's REST-bot interaction server accept them and refuse them tampered, and hikari answers
them over HTTP and through the callback endpoint."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp.web
import hikari
import httpx
import nacl.exceptions
import nacl.signing
import pytest
from hikari.impl.interaction_server import InteractionServer

from connectors.discord.sandbox import ATTACH_FILES, DiscordSandbox
from tests.support.clients import grant_the_bot, raised

Steps = Callable[[Any], Awaitable[Any]]


@pytest.fixture
def box(serve: Any) -> Any:
    return serve(DiscordSandbox())


async def _with_rest(box: Any, steps: Steps) -> Any:
    """``steps(rest)`` with hikari's REST-only client, pointed at the sandbox with its bot token."""
    app = hikari.RESTApp(url=box.sandbox.client_info(box.url)["api_url"])
    await app.start()
    try:
        async with app.acquire(box.sandbox.token, "Bot") as rest:
            me = await rest.fetch_my_user()  # GET /users/@me
            assert me.id == int(box.sandbox.bot_id) and me.is_bot
            return await steps(rest)
    finally:
        await app.close()


def _run(box: Any, steps: Steps) -> Any:
    return asyncio.run(_with_rest(box, steps))


def _ids(state: dict[str, Any], kind: str, **where: Any) -> set[str]:
    return {item["id"] for item in state[kind] if all(item.get(k) == v for k, v in where.items())}


def test_hikari_runs_a_bots_rest_calls(box: Any) -> None:
    sb = box.sandbox
    guild, channel, app_id = int(sb.seed.guild_id), int(sb.channel_id("wg-private")), int(sb.seed.application_id)
    member = int(sb._user_by_name("cleo_marsh")["id"])
    moderator = int(sb._role_id("moderator"))
    start = datetime(2099, 1, 10, 18, 0, tzinfo=UTC)

    async def steps(rest: Any) -> dict[str, Any]:
        seen: dict[str, Any] = {"application": await rest.fetch_application()}  # GET /oauth2/applications/@me
        seen["guild"] = await rest.fetch_guild(guild)
        seen["roles"] = await rest.fetch_roles(guild)
        seen["channels"] = await rest.fetch_guild_channels(guild)
        seen["channel"] = await rest.fetch_channel(channel)
        seen["member"] = await rest.fetch_member(guild, member)
        seen["members"] = await rest.fetch_members(guild)
        await rest.add_role_to_member(guild, member, moderator, reason="Appointed by the WG")
        seen["granted"] = await rest.fetch_member(guild, member)
        await rest.remove_role_from_member(guild, member, moderator, reason="Term ended")
        row = rest.build_message_action_row()
        row.add_interactive_button(hikari.ButtonStyle.PRIMARY, "agree", label="Agree")
        row.add_interactive_button(hikari.ButtonStyle.SECONDARY, "later", label="Later")
        sent = await rest.create_message(channel, "Hello from hikari", component=row)
        grant_the_bot(box, ATTACH_FILES)  # a bot uploading files needs Attach Files, as on Discord
        seen["file"] = await rest.create_message(
            channel, "Minutes attached", attachment=hikari.Bytes(b"The minutes.", "minutes.txt")
        )
        seen["edited"] = await rest.edit_message(channel, sent, "Hello, edited")
        seen["history"] = await rest.fetch_messages(channel)
        seen["thread"] = await rest.create_message_thread(channel, sent, "A thread")
        await rest.add_thread_member(seen["thread"], member)
        seen["own_thread"] = await rest.create_thread(channel, hikari.ChannelType.GUILD_PUBLIC_THREAD, "Agenda")
        await rest.join_thread(seen["own_thread"])
        seen["dm_channel"] = await rest.create_dm_channel(member)
        seen["dm"] = await rest.create_message(seen["dm_channel"], "A direct message")
        seen["event"] = await rest.create_external_event(
            guild, "WG meeting", "Online", start, start + timedelta(hours=1), description="Monthly"
        )
        seen["events"] = await rest.fetch_scheduled_events(guild)
        seen["audit"] = await rest.fetch_audit_log(guild)
        seen["commands"] = await rest.set_application_commands(
            app_id, [rest.slash_command_builder("idea", "File an idea")], guild
        )
        seen["listed"] = await rest.fetch_application_commands(app_id, guild)
        seen["global"] = await rest.fetch_application_commands(app_id)
        await rest.delete_message(channel, seen["file"], reason="Cleaning up")
        return seen

    seen = _run(box, steps)
    state = box.state()
    assert seen["application"].id == app_id and seen["application"].public_key.hex() == state["guild"]["public_key"]
    assert seen["guild"].name == state["guild"]["name"]
    assert {(str(r.id), r.name, r.position) for r in seen["roles"]} == {
        (r["id"], r["name"], r["position"]) for r in state["roles"]
    }
    assert {str(c.id) for c in seen["channels"]} == _ids(state, "channels", type=0)
    assert seen["channel"].name == "wg-private" and seen["channel"].type == hikari.ChannelType.GUILD_TEXT
    person = next(m for m in state["members"] if m["username"] == "cleo_marsh")
    assert seen["member"].username == "cleo_marsh" and seen["member"].joined_at.isoformat() == person["joined_at"]
    assert {str(m.id) for m in seen["members"]} == {m["id"] for m in state["members"]}
    assert moderator in seen["granted"].role_ids and "moderator" not in person["roles"]
    message = next(m for m in state["messages"] if m["id"] == str(seen["edited"].id))
    assert seen["edited"].content == message["content"] == "Hello, edited" and message["edited"]
    buttons = [b for row in seen["edited"].components for b in row.components]
    assert [(b.custom_id, b.label) for b in buttons] == [("agree", "Agree"), ("later", "Later")]
    assert [b["custom_id"] for row in message["components"] for b in row["components"]] == ["agree", "later"]
    (attachment,) = seen["file"].attachments
    assert (attachment.filename, attachment.size) == ("minutes.txt", len(b"The minutes."))
    assert [m.id for m in seen["history"]] == [seen["file"].id, seen["edited"].id]
    assert str(seen["file"].id) not in _ids(state, "messages")
    threads = {c["id"]: c for c in state["channels"] if c["thread"]}
    for thread in (seen["thread"], seen["own_thread"]):
        assert thread.parent_id == channel and thread.metadata.archive_timestamp == thread.metadata.created_at
    assert seen["thread"].id == seen["edited"].id  # a thread from a message has the message's id
    assert {sb.bot_id, str(member)} <= set(threads[str(seen["thread"].id)]["members"])
    assert sb.bot_id in threads[str(seen["own_thread"].id)]["members"]
    assert seen["dm_channel"].recipient.username == "cleo_marsh" and seen["dm"].content == "A direct message"
    assert str(seen["dm"].id) in _ids(state, "messages", channel_id=str(seen["dm_channel"].id))
    event = seen["event"]
    assert (event.location, event.start_time, event.description) == ("Online", start, "Monthly")
    assert [e.id for e in seen["events"]] == [event.id] and _ids(state, "events") == {str(event.id)}
    entries = [e for page in seen["audit"] for e in page.entries.values()]
    assert {e.reason for e in entries} >= {"Appointed by the WG", "Term ended"}
    assert {c.key for e in entries for c in e.changes} >= {
        hikari.AuditLogChangeKey.ADD_ROLE_TO_MEMBER,
        hikari.AuditLogChangeKey.REMOVE_ROLE_FROM_MEMBER,
    }
    assert {str(e.id) for e in entries} <= {e["id"] for e in state["audit_log"]}
    assert [(c.name, c.guild_id) for c in seen["commands"]] == [("idea", guild)]
    assert state["commands"] == {str(guild): ["idea"]}
    assert [c.id for c in seen["listed"]] == [c.id for c in seen["commands"]] and seen["global"] == []


def test_hikari_sees_unemulated_calls_fail_as_server_errors_and_platform_refusals_as_such(box: Any) -> None:
    sb = box.sandbox
    guild, channel = int(sb.seed.guild_id), int(sb.channel_id("wg-private"))
    member, owners = int(sb._user_by_name("cleo_marsh")["id"]), int(sb._role_id("owners"))

    def attempt(call: Awaitable[Any]) -> Awaitable[hikari.HTTPResponseError]:
        return raised(call, hikari.HTTPResponseError)

    async def steps(rest: Any) -> list[hikari.HTTPResponseError]:
        return [
            # Discord serves these; the sandbox does not emulate them: 501, which hikari does not retry.
            await attempt(rest.fetch_pins(channel)),
            await attempt(rest.edit_member(guild, member, nickname="Cleo")),
            # Discord's own refusals, as hikari knows them.
            await attempt(rest.fetch_member(guild, 1)),  # no such user at all: 10013, not 10007
            await attempt(rest.create_message(channel, "")),
            await attempt(rest.add_role_to_member(guild, member, owners)),  # above the bot's role
        ]

    unemulated_pins, unemulated_edit, unknown_member, empty_message, above_the_bot = _run(box, steps)
    for exc in (unemulated_pins, unemulated_edit):
        assert isinstance(exc, hikari.InternalServerError) and exc.status == 501
        assert "not emulated by the sandbox" in str(exc.raw_body)
    assert isinstance(unknown_member, hikari.NotFoundError) and unknown_member.code == 10013
    assert isinstance(empty_message, hikari.BadRequestError) and empty_message.code == 50006
    assert isinstance(above_the_bot, hikari.ForbiddenError) and above_the_bot.code == 50013
    state = box.state()
    assert "owners" not in next(m["roles"] for m in state["members"] if m["username"] == "cleo_marsh")
    assert state["messages"] == []


def test_hikari_waits_out_a_message_bucket_and_every_message_arrives(serve: Any) -> None:
    # Another process of the bot has spent the channel's message bucket (5 per 5 s, halved here):
    # hikari's first send meets its 429 (hikari learns a bucket from the answers), then eight sends
    # at once wait for the resets, on pooled connections the sandbox keeps open (KEEP_ALIVE_SECONDS).
    box = serve(DiscordSandbox(time_scale=0.5))
    channel = int(box.sandbox.channel_id("wg-private"))
    info = box.sandbox.client_info(box.url)
    for n in range(5):
        other = httpx.post(
            f"{info['api_url']}/channels/{channel}/messages", headers=info["headers"], json={"content": f"Other {n}"}
        )
        assert other.status_code == 200

    async def steps(rest: Any) -> list[Any]:
        sends = [rest.create_message(channel, f"Burst {n}") for n in range(8)]
        return await asyncio.gather(*sends, return_exceptions=True)

    started = time.monotonic()
    sent = _run(box, steps)
    assert [type(s).__name__ for s in sent if not isinstance(s, hikari.Message)] == []
    assert [s.content for s in sent] == [f"Burst {n}" for n in range(8)]
    state = box.state()
    bursts = sorted(m["content"] for m in state["messages"] if m["content"].startswith("Burst"))
    assert bursts == sorted(f"Burst {n}" for n in range(8))
    assert state["rate_limited"] and {r["bucket"] for r in state["rate_limited"]} == {"message.create"}
    assert time.monotonic() - started > 2.5, "hikari waited for the bucket's resets"


# ---- interactions -----------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _rest_bot(box: Any, rest: Any) -> AsyncIterator[tuple[InteractionServer, list[tuple[dict[str, str], bytes]]]]:
    """hikari's REST-bot interaction server on a loopback port, where the sandbox sends its
    interactions; every request it receives is recorded (headers, raw body) before hikari reads it."""
    server = InteractionServer(
        entity_factory=rest.entity_factory, rest_client=rest, public_key=bytes.fromhex(box.sandbox.public_key)
    )
    received: list[tuple[dict[str, str], bytes]] = []

    async def recorded(request: aiohttp.web.Request) -> aiohttp.web.Response:
        received.append((dict(request.headers), await request.read()))  # aiohttp keeps the body for hikari
        return await server.aiohttp_hook(request)

    web = aiohttp.web.Application()
    web.add_routes([aiohttp.web.post("/", recorded)])
    runner = aiohttp.web.AppRunner(web)
    await runner.setup()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    await aiohttp.web.SockSite(runner, sock).start()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/"
    async with httpx.AsyncClient() as control:
        assert (await control.post(f"{box.url}/_sandbox/interactions_url", json={"url": url})).status_code == 200
    # Saving the URL, the Developer Portal sent two PINGs: one signed with another key, which
    # hikari refused (400, as Discord's docs first asked), one signed, which it answered PONG.
    assert [json.loads(body)["type"] for _, body in received] == [1, 1]
    received.clear()
    try:
        yield server, received
    finally:
        await runner.cleanup()


async def _send(box: Any, kind: str, **what: Any) -> dict[str, Any]:
    """What the sandbox tells of one interaction it sent (the call blocks until the answer)."""
    control = {"command": box.sandbox.command, "press": box.sandbox.press}[kind]
    return await asyncio.to_thread(control, box.url, **what)


def test_hikari_answers_the_sandboxs_interactions_as_a_rest_bot(box: Any) -> None:
    sb = box.sandbox
    guild, channel = int(sb.seed.guild_id), int(sb.channel_id("wg-private"))
    seen: dict[str, Any] = {}

    async def steps(rest: Any) -> dict[str, Any]:
        text = hikari.CommandOption(
            type=hikari.OptionType.STRING, name="text", description="The idea", is_required=True
        )
        idea = rest.slash_command_builder("idea", "File an idea").add_option(text)
        await rest.set_application_commands(int(sb.seed.application_id), [idea], guild)
        followed_up = asyncio.Event()

        # Deferred at once over HTTP, then the original answer edited and a follow-up sent (REST).
        async def on_command(interaction: hikari.CommandInteraction) -> AsyncIterator[Any]:
            seen["command"] = interaction
            yield interaction.build_deferred_response()
            await interaction.edit_initial_response(f"Filed: {interaction.options[0].value}")
            seen["follow_up"] = await interaction.execute("Thanks for the idea")
            followed_up.set()

        async def on_press(interaction: hikari.ComponentInteraction) -> Any:
            seen["press"] = interaction
            return interaction.build_response(hikari.ResponseType.MESSAGE_UPDATE).set_content("Counted")

        async with _rest_bot(box, rest) as (server, received):
            server.set_listener(hikari.CommandInteraction, on_command)
            server.set_listener(hikari.ComponentInteraction, on_press)
            options = {"text": "More benches"}
            seen["sent"] = await _send(
                box, "command", user="cleo_marsh", name="idea", options=options, channel=str(channel)
            )
            await asyncio.wait_for(followed_up.wait(), 10)
            row = rest.build_message_action_row().add_interactive_button(hikari.ButtonStyle.PRIMARY, "yes", label="Yes")
            vote = await rest.create_message(channel, "Benches?", component=row)
            seen["pressed"] = await _send(
                box, "press", user="dario_fenwick", channel_id=str(channel), message_id=str(vote.id), custom_id="yes"
            )
            seen["vote"], seen["received"] = vote, received
        return seen

    _run(box, steps)
    state = box.state()
    assert [i["failed"] for i in state["interactions"]] == [False, False]
    assert (seen["sent"]["response"]["type"], seen["pressed"]["response"]["type"]) == (5, 7)  # deferred; update
    command, press = seen["command"], seen["press"]
    assert (command.command_name, command.guild_id, command.channel.id) == ("idea", guild, channel)
    assert command.channel.name == "wg-private" and command.user.username == "cleo_marsh"
    assert [(o.name, o.value) for o in command.options] == [("text", "More benches")]
    assert command.member is not None and int(sb._role_id("wg-member")) in command.member.role_ids
    by_id = {m["id"]: m for m in state["messages"]}
    original = next(m for m in state["messages"] if m["content"].startswith("Filed"))
    assert original["content"] == "Filed: More benches" and original["edited"]
    assert by_id[str(seen["follow_up"].id)]["content"] == seen["follow_up"].content == "Thanks for the idea"
    assert (press.custom_id, press.message.id, press.user.username) == ("yes", seen["vote"].id, "dario_fenwick")
    assert by_id[str(seen["vote"].id)]["content"] == "Counted"
    assert [json.loads(body)["type"] for _, body in seen["received"]] == [2, 3]


def test_the_sandboxs_interaction_signature_verifies_with_pynacl_and_hikari_and_fails_tampered(box: Any) -> None:
    sb = box.sandbox

    async def on_command(interaction: hikari.CommandInteraction) -> Any:
        return interaction.build_response().set_content("All well")

    async def steps(rest: Any) -> dict[str, Any]:
        async with _rest_bot(box, rest) as (server, received):
            server.set_listener(hikari.CommandInteraction, on_command)
            seen: dict[str, Any] = {"sent": await _send(box, "command", user="cleo_marsh", name="ping")}
            headers, body = received[0]
            tampered = body.replace(b'"ping"', b'"pong"')
            signature, timestamp = bytes.fromhex(headers["X-Signature-Ed25519"]), headers["X-Signature-Timestamp"]
            seen["replays"] = [await server.on_interaction(b, signature, timestamp.encode()) for b in (body, tampered)]
            async with httpx.AsyncClient() as client:  # the tampered body, over HTTP to hikari's endpoint
                seen["refused"] = await client.post(sb.interactions_url, content=tampered, headers=headers)
        return {**seen, "body": body, "tampered": tampered, "signed": timestamp.encode(), "signature": signature}

    seen = _run(box, steps)
    # A /ping command is a command (type 2), never Discord's PING (type 1).
    assert json.loads(seen["body"])["type"] == 2 and json.loads(seen["body"])["data"]["name"] == "ping"
    assert seen["sent"]["status"] == 200 and seen["sent"]["response"]["data"]["content"] == "All well"
    assert seen["tampered"] != seen["body"]
    # As Discord's docs show a bot doing it: timestamp + body, against the application's public key.
    # https://discord.com/developers/docs/interactions/overview#setting-up-an-endpoint-validating-security-request-headers
    key = nacl.signing.VerifyKey(bytes.fromhex(sb.public_key))
    assert key.verify(seen["signed"] + seen["body"], seen["signature"]) == seen["signed"] + seen["body"]
    with pytest.raises(nacl.exceptions.BadSignatureError):
        key.verify(seen["signed"] + seen["tampered"], seen["signature"])
    accepted, rejected = seen["replays"]
    assert accepted.status_code == 200 and json.loads(accepted.payload)["data"]["content"] == "All well"
    assert rejected.status_code == 400 and rejected.payload == b"Invalid request signature"
    assert seen["refused"].status_code == 400


def test_hikari_answers_an_interaction_through_the_callback_endpoint(box: Any) -> None:
    # A gateway bot gets the interaction over the gateway and answers with POST .../callback;
    # hikari asks for the answer's callback object (?with_response=true).
    sb = box.sandbox
    _, body = sb.signed_request(kind="idea", payload={"user": "esme_voss", "options": {"text": "A library"}})

    async def steps(rest: Any) -> dict[str, Any]:
        interaction = rest.entity_factory.deserialize_interaction(json.loads(body))
        seen: dict[str, Any] = {"interaction": interaction}
        seen["callback"] = await interaction.create_initial_response(hikari.ResponseType.MESSAGE_CREATE, "On the list")
        with pytest.raises(hikari.BadRequestError) as twice:  # Discord's 40060
            await interaction.create_initial_response(hikari.ResponseType.MESSAGE_CREATE, "Again")
        seen["twice"] = twice.value
        seen["edited"] = await interaction.edit_initial_response("On the list, edited")
        seen["fetched"] = await interaction.fetch_initial_response()
        return seen

    seen = _run(box, steps)
    state = box.state()
    callback, interaction = seen["callback"], seen["interaction"]
    assert interaction.user.username == "esme_voss" and interaction.options[0].value == "A library"
    assert callback.interaction.id == interaction.id and callback.resource.type == hikari.ResponseType.MESSAGE_CREATE
    (message,) = state["messages"]
    assert str(callback.interaction.response_message_id) == str(callback.resource.message.id) == message["id"]
    assert callback.resource.message.content == "On the list"
    assert seen["edited"].content == message["content"] == "On the list, edited"
    assert seen["twice"].code == 40060
    assert seen["fetched"].id == callback.resource.message.id and seen["fetched"].content == "On the list, edited"
