"""The sandboxes driven by the platforms' most used Python libraries, which we did not write:
discord.py's REST client and pydiscourse (slack_sdk: tests/connectors/slack). What the libraries
call must work as against the platform, and what a sandbox does not emulate must fail loudly
(501, "not emulated"), never like "not found" or a platform refusal."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import Any

import discord
import pytest
from discord import http as discord_http
from pydiscourse import DiscourseClient
from pydiscourse.exceptions import DiscourseClientError, DiscourseServerError

from connectors.discord.sandbox import DiscordSandbox
from tests.support.clients import raised

# ---- discord.py -------------------------------------------------------------------------------


@pytest.fixture
def discord_py(serve: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The Discord sandbox, with discord.py's REST routes pointed at it (its base URL is a class
    attribute: https://github.com/Rapptz/discord.py/blob/master/discord/http.py)."""
    box = serve(DiscordSandbox())
    monkeypatch.setattr(discord_http.Route, "BASE", box.sandbox.client_info(box.url)["api_url"])
    return box


def _run(box: Any, steps: Any) -> Any:
    async def main() -> Any:
        client = discord_http.HTTPClient(asyncio.get_running_loop())
        try:
            me = await client.static_login(box.sandbox.token)  # GET /users/@me
            assert me["id"] == box.sandbox.bot_id and me["bot"] is True
            return await steps(client)
        finally:
            await client.close()

    return asyncio.run(main())


def _message(text: str) -> Any:
    return discord_http.handle_message_parameters(content=text)


def test_discord_py_runs_a_bots_rest_calls(discord_py: Any) -> None:
    box = discord_py.sandbox
    guild, channel = int(box.seed.guild_id), int(box.channel_id("wg-private"))
    member = int(box._user_by_name("cleo_marsh")["id"])
    moderator = int(box._role_id("moderator"))

    async def steps(client: Any) -> dict[str, Any]:
        seen: dict[str, Any] = {"channels": await client.get_all_guild_channels(guild)}
        seen["guild"] = await client.get_guild(guild)
        seen["channel"] = await client.get_channel(channel)
        seen["user"] = await client.get_user(member)
        seen["roles"] = await client.get_roles(guild)
        seen["members"] = await client.get_members(guild, 1000, None)
        seen["member"] = await client.get_member(guild, member)
        sent = await client.send_message(channel, params=_message("Hello from a library"))
        await client.edit_message(channel, int(sent["id"]), params=_message("Hello, edited"))
        seen["message"] = await client.get_message(channel, int(sent["id"]))
        seen["history"] = await client.logs_from(channel, 10)
        thread = await client.start_thread_with_message(
            channel, int(sent["id"]), name="A thread", auto_archive_duration=1440
        )
        await client.join_thread(int(thread["id"]))
        await client.add_user_to_thread(int(thread["id"]), member)
        seen["thread"] = thread
        await client.add_role(guild, member, moderator, reason="Appointed by the WG")
        seen["granted"] = await client.get_member(guild, member)
        await client.remove_role(guild, member, moderator, reason="Term ended")
        seen["audit"] = await client.get_audit_logs(guild, limit=10)
        dm = await client.start_private_message(member)
        seen["dm"] = await client.send_message(int(dm["id"]), params=_message("A direct message"))
        seen["event"] = await client.create_guild_scheduled_event(
            guild,
            name="WG meeting",
            privacy_level=2,
            entity_type=3,
            scheduled_start_time="2099-01-10T18:00:00+00:00",
            scheduled_end_time="2099-01-10T19:00:00+00:00",
            entity_metadata={"location": "Online"},
        )
        seen["events"] = await client.get_scheduled_events(guild, False)
        seen["commands"] = await client.bulk_upsert_guild_commands(
            int(box.seed.application_id), guild, [{"name": "idea", "description": "File an idea", "type": 1}]
        )
        seen["welcome"] = await client.get_welcome_screen(guild)
        seen["onboarding"] = await client.get_guild_onboarding(guild)
        await client.delete_message(channel, int(sent["id"]), reason="Cleaning up")
        return seen

    seen = _run(discord_py, steps)
    assert "wg-private" in {c["name"] for c in seen["channels"]}
    assert seen["guild"]["name"] == box.seed.guild_name and seen["guild"]["roles"]
    assert seen["channel"]["name"] == "wg-private" and seen["user"]["username"] == "cleo_marsh"
    assert "moderator" in {r["name"] for r in seen["roles"]}
    assert str(member) in {m["user"]["id"] for m in seen["members"]}
    assert seen["member"]["user"]["username"] == "cleo_marsh"
    assert seen["message"]["content"] == "Hello, edited"
    assert seen["history"][0]["id"] == seen["message"]["id"]
    assert set(box.channels[seen["thread"]["id"]]["members"]) >= {box.bot_id, str(member)}
    assert str(moderator) in seen["granted"]["roles"]
    assert str(moderator) not in box.members[str(member)]["roles"]
    reasons = [entry.get("reason") for entry in seen["audit"]["audit_log_entries"]]
    assert {"Appointed by the WG", "Term ended"} <= set(reasons)
    assert seen["dm"]["content"] == "A direct message"
    assert [e["id"] for e in seen["events"]] == [seen["event"]["id"]]
    assert [c["name"] for c in seen["commands"]] == ["idea"]
    assert seen["welcome"]["welcome_channels"] == [] and seen["onboarding"]["enabled"] is False
    assert seen["message"]["id"] not in box.messages


def test_discord_py_sees_unemulated_calls_fail_as_server_errors_and_platform_refusals_as_such(discord_py: Any) -> None:
    box = discord_py.sandbox
    guild = int(box.seed.guild_id)

    def attempt(call: Any) -> Awaitable[discord.HTTPException]:
        return raised(call, discord.HTTPException)

    async def steps(client: Any) -> list[discord.HTTPException]:
        return [
            # Discord serves these; the sandbox does not emulate them: 501, loudly.
            await attempt(
                client.upsert_guild_command(
                    int(box.seed.application_id), guild, {"name": "idea", "description": "An idea"}
                )
            ),
            await attempt(client.edit_member(guild, int(box._user_by_name("cleo_marsh")["id"]), nick="Cleo")),
            # Discord's own refusals, as discord.py knows them.
            await attempt(client.get_member(guild, 1)),  # no such user at all: 10013, not 10007
            await attempt(client.send_message(int(box.channel_id("wg-private")), params=_message(""))),
        ]

    unemulated_commands, unemulated_edit, unknown_member, empty_message = _run(discord_py, steps)
    for exc in (unemulated_commands, unemulated_edit):
        assert isinstance(exc, discord.DiscordServerError) and exc.status == 501
        assert "not emulated by the sandbox" in exc.text
    assert isinstance(unknown_member, discord.NotFound) and unknown_member.code == 10013
    assert empty_message.status == 400 and empty_message.code == 50006


def test_discord_py_waits_out_a_message_bucket_and_every_message_arrives(discord_py: Any) -> None:
    # Eight messages at once in one channel: a bucket of 5 per 5 s, so discord.py, reading
    # X-RateLimit-Remaining, sleeps until the reset and sends the rest on its pooled connections,
    # which the sandbox must not have closed under it (it once did after 5 idle seconds: "Server
    # disconnected"; KEEP_ALIVE_SECONDS).
    box = discord_py.sandbox
    channel = int(box.channel_id("wg-private"))

    async def steps(client: Any) -> list[Any]:
        sends = [client.send_message(channel, params=_message(f"Burst {n}")) for n in range(8)]
        return await asyncio.gather(*sends, return_exceptions=True)

    started = time.monotonic()
    sent = _run(discord_py, steps)
    assert [type(s).__name__ for s in sent if not isinstance(s, dict)] == []
    assert sorted(m["content"] for m in box.messages.values()) == sorted(f"Burst {n}" for n in range(8))
    assert time.monotonic() - started > 4, "the client waited for the bucket's reset"


# ---- pydiscourse ------------------------------------------------------------------------------


@pytest.fixture
def forum(discourse: Any) -> tuple[Any, DiscourseClient]:
    return discourse, DiscourseClient(discourse.url, api_username="system", api_key=discourse.sandbox.api_key)


def test_pydiscourse_runs_an_integrations_calls(forum: tuple[Any, DiscourseClient]) -> None:
    box, client = forum
    category = next(c["id"] for c in client.categories() if c["name"] == "Working Group")
    assert client.category(category)["category"]["name"] == "Working Group"
    topic = client.create_post(
        "The first post of a topic made by a library.", title="A topic from a library", category_id=category
    )
    reply = client.create_post("A reply to the topic, long enough.", topic_id=topic["topic_id"])
    client.update_post(reply["id"], "The reply, edited and long enough.", edit_reason="Typo")
    shown = client.topic(topic["topic_slug"], topic["topic_id"])
    assert [p["post_number"] for p in shown["post_stream"]["posts"]] == [1, 2]
    assert client.post_by_number(topic["topic_id"], 2)["raw"] == "The reply, edited and long enough."
    assert topic["topic_id"] in {t["id"] for t in client.latest_topics()["topic_list"]["topics"]}
    assert client.user("cleo_marsh")["username"] == "cleo_marsh"
    assert "cleo_marsh" in {u["username"] for u in client.list_users("active")}
    assert client.user_by_email("nobody@example.org") == []  # the seed's people have no e-mail
    assert {g["name"] for g in client.groups()} == {"board", "moderators", "working-group"}
    group = client.group("working-group")["group"]
    members = {m["username"] for m in client.group_members("working-group")}
    newcomer = next(u["username"] for u in client.list_users("active") if u["username"] not in members | {"system"})
    client.add_group_member(group["id"], newcomer)
    assert newcomer in {m["username"] for m in client.group_members("working-group")}
    message = client.create_post(
        "A private message long enough to send.",
        title="A private message from a library",
        archetype="private_message",
        target_recipients="cleo_marsh",
    )
    assert box.sandbox.topics[message["topic_id"]]["archetype"] == "private_message"


def test_pydiscourse_sees_unemulated_calls_fail_as_server_errors_and_refusals_as_the_forums(
    forum: tuple[Any, DiscourseClient],
) -> None:
    _, client = forum
    with pytest.raises(DiscourseServerError, match="not emulated by the sandbox: GET /search.json"):
        client.search("anything")
    with pytest.raises(DiscourseClientError, match="Title is too short"):
        client.create_post("A body long enough for the Forum.", title="Short", category_id=4)
    with pytest.raises(DiscourseClientError, match="could not be found"):
        client.user("nobody_by_this_name")
