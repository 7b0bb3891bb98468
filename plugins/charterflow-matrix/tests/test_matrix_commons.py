"""Issue 22 point 1: Matrix in the common room (R-COMMS), with no change to ``flows/`` for Matrix.

The Discord moderators' channel, the Forum's Moderators category and the Matrix ``moderators``
room are bridged. Real parts: a Synapse on loopback whose appservice pushes to the real gateway
(the plugin's hook mounted from its entry point), the fault proxy in front of it for the
connector's writes, the Discord and Forum sandboxes, the session's Prefect server, a SQLite
ledger. Pushed events are handled with ``flows.inbox.handle_event``, as the task worker does.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from matrix_served import (
    PushingHomeserver,
    bot_connector,
    platforms_with,
    pushed,
    pushing_synapse,
    say_in,
    seed,
    send_as,
)

from charterflow_matrix.client import q
from charterflow_matrix.proxy import FaultProxy
from connectors.http import RetryPolicy
from flows import inbox
from flows.commons import commons_poll
from flows.platforms import use
from tests.support.commons import discord_copies, forum_copies, say
from tests.support.membership import World, serve_gateway
from tests.support.net import LoopbackServer

pytestmark = pytest.mark.timeout(600)
PEOPLE = ["avery_quill", "bram_tolliver", "cleo_marsh"]
FAST = RetryPolicy(max_retries=2, base_delay=0.05, max_delay=0.2)


@pytest.fixture
def bridged(
    world: World, pushing_homeserver: PushingHomeserver, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, Any]]:
    """Three rooms bridged; Synapse pushing to the gateway; the connector through the proxy."""
    monkeypatch.setenv(
        "CHARTERFLOW_COMMONS_BRIDGES", "moderators: discord=moderators, discourse=Moderators, matrix=moderators"
    )
    category = next(c["id"] for c in world.discourse_state()["categories"] if c["name"] == "Moderators")
    with (
        serve_gateway(world, commons_categories=str(category)) as gw,
        pushing_synapse(pushing_homeserver, gw.url, monkeypatch) as creds,
    ):
        users = seed(creds, {"members": PEOPLE, "rooms": {"moderators": PEOPLE}})
        proxy = FaultProxy(creds.base_url)
        with LoopbackServer(proxy, lifespan="on") as served:
            matrix = bot_connector(creds, homeserver_url=served.url, retry=FAST)
            with use(ledger=world.ledger, platforms=platforms_with(world, matrix)):
                commons_poll()  # Discord's cursor starts at its newest message
                yield {
                    "creds": creds,
                    "users": users,
                    "matrix": matrix,
                    "proxy": proxy,
                    "room": matrix.room_id("moderators"),
                }
            matrix.close()


def matrix_events(b: dict[str, Any], containing: str) -> list[dict[str, Any]]:
    """The room's ``m.room.message`` events whose body holds ``containing`` (admin API, directly
    on Synapse: not through the proxy), oldest first; redacted ones have no body."""
    with httpx.Client(
        base_url=b["creds"].base_url,
        timeout=30,
        trust_env=False,
        headers={"Authorization": f"Bearer {b['creds'].bot_token}"},
    ) as client:
        chunk = (
            client.get(
                f"/_synapse/admin/v1/rooms/{q(b['room'])}/messages",
                params={"dir": "f", "limit": 500, "filter": '{"types":["m.room.message"]}'},
            )
            .raise_for_status()
            .json()["chunk"]
        )
    return [e for e in chunk if containing in str(e["content"].get("body", ""))]


def say_matrix(b: dict[str, Any], who: str, body: str, **content: Any) -> str:
    return say_in(b, who, b["room"], body, **content)


def handle_pushed(world: World, event_id: str) -> str:
    row = pushed(world, event_id)
    assert (row.source, row.route) == ("matrix", inbox.Route.COMMONS), (row.source, row.route, row.kind)
    return inbox.handle_event(world.ledger, row.id)


def test_a_discord_message_appears_once_on_the_forum_and_in_matrix_and_an_edit_follows(
    world: World, bridged: dict[str, Any]
) -> None:
    sent = say(world, "avery_quill", "Raid in #general, slow mode on for an hour. @room heads up, cleo_marsh.")
    commons_poll()
    commons_poll()
    [forum] = forum_copies(world, "Raid in #general")
    [copy] = matrix_events(bridged, "Raid in #general")
    assert copy["content"]["body"].startswith("Raid in #general")  # the conversation's title first
    assert "**avery_quill** (Discord): Raid in #general" in copy["content"]["body"]
    assert copy["sender"] == bridged["matrix"].me
    # Another platform's "@room" pings nobody here, though the bot (power level 100) could.
    with bridged["users"].client(bridged["creds"].base_url, "cleo_marsh") as client:
        notified = client.get("/_matrix/client/v3/notifications").raise_for_status().json()["notifications"]
    [seen] = [n for n in notified if n["event"]["event_id"] == copy["event_id"]]
    highlight = [a.get("value", True) for a in seen["actions"] if isinstance(a, dict) and a["set_tweak"] == "highlight"]
    assert not any(highlight), seen["actions"]
    httpx.post(
        f"{world.discord_url}/_sandbox/messages/edit",
        timeout=10,
        json={"message_id": sent["id"], "content": "Raid in #general: slow mode lifted at 21:00."},
    ).raise_for_status()
    commons_poll()
    commons_poll()
    [edit] = [e for e in matrix_events(bridged, "slow mode lifted") if "m.new_content" in e["content"]]
    assert edit["content"]["m.relates_to"] == {"rel_type": "m.replace", "event_id": copy["event_id"]}
    assert "slow mode lifted" in edit["content"]["m.new_content"]["body"]
    # The copy still opens its thread under the conversation's title.
    assert edit["content"]["m.new_content"]["body"].startswith("Raid in #general, slow mode on for an hour.")
    assert edit["content"]["m.new_content"]["formatted_body"].startswith("<strong>Raid in #general, slow mode on")
    [edited] = forum_copies(world, "Raid in #general")
    assert edited["id"] == forum["id"] and "slow mode lifted" in edited["raw"]
    # The bridge's own Matrix events were pushed too, and never stored nor relayed back.
    assert len(discord_copies(world, "Raid in #general")) == 1


def test_a_matrix_message_appears_on_discord_and_the_forum_threads_edits_and_redactions_follow(
    world: World, bridged: dict[str, Any]
) -> None:
    event_id = say_matrix(bridged, "bram_tolliver", "Can someone review the ban appeal from last night?")
    assert handle_pushed(world, event_id) == "relayed: discord posted, discourse posted"
    [on_discord] = discord_copies(world, "review the ban appeal")
    [on_forum] = forum_copies(world, "review the ban appeal")
    assert "**bram_tolliver** (Matrix): Can someone" in on_discord["content"]
    assert on_forum["post_number"] == 1  # a new topic
    # A Discord reply in the thread on that copy comes to the Matrix message's thread.
    say(world, "cleo_marsh", "On it, I will answer by noon.", channel=on_discord["id"])
    commons_poll()
    [reply] = matrix_events(bridged, "I will answer by noon")
    assert reply["content"]["m.relates_to"]["rel_type"] == "m.thread"
    assert reply["content"]["m.relates_to"]["event_id"] == event_id
    # A Matrix reply in that thread goes to the same Forum topic and Discord thread.
    threaded = say_matrix(
        bridged, "avery_quill", "Thanks, cleo.", **{"m.relates_to": {"rel_type": "m.thread", "event_id": event_id}}
    )
    assert handle_pushed(world, threaded).startswith("relayed")
    [back] = forum_copies(world, "Thanks, cleo.")
    assert back["topic_id"] == on_forum["topic_id"]
    assert discord_copies(world, "Thanks, cleo.")[0]["channel_id"] == on_discord["id"]
    # bram edits his message (m.replace): the copies follow.
    edit = send_as(
        bridged["users"],
        bridged["creds"].base_url,
        "bram_tolliver",
        bridged["room"],
        {
            "msgtype": "m.text",
            "body": "* Can someone review the ban appeal from Tuesday?",
            "m.new_content": {"msgtype": "m.text", "body": "Can someone review the ban appeal from Tuesday?"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": event_id},
        },
    )
    assert handle_pushed(world, edit) == "edited 2 copies"
    assert "from Tuesday" in discord_copies(world, "review the ban appeal")[0]["content"]
    assert "from Tuesday" in forum_copies(world, "review the ban appeal")[0]["raw"]
    # A redaction deletes the copies.
    with bridged["users"].client(bridged["creds"].base_url, "bram_tolliver") as client:
        redaction = (
            client.put(f"/_matrix/client/v3/rooms/{q(bridged['room'])}/redact/{q(event_id)}/cf-test-1", json={})
            .raise_for_status()
            .json()["event_id"]
        )
    assert handle_pushed(world, redaction) == "deleted 2 copies"
    assert discord_copies(world, "review the ban appeal") == []
    assert forum_copies(world, "review the ban appeal") == []


def test_a_synapse_outage_during_relay_loses_nothing_and_duplicates_nothing(
    world: World, bridged: dict[str, Any]
) -> None:
    """Synapse unreachable for the connector's writes (503 from the proxy): the poll fails, the
    Forum copies are made once, the cursor stays; then a write whose answer is lost (Synapse
    stored it): the retry lands on the same transaction. Every message is in Matrix once."""
    proxy = bridged["proxy"]
    proxy.set_faults({"error_rate": 1.0, "error_status": 503, "methods": ["PUT"]})
    try:
        say(world, "avery_quill", "First note while Matrix is down.")
        say(world, "bram_tolliver", "Second note while Matrix is down.")
        with pytest.raises(RuntimeError, match="left for the next run"):
            commons_poll()
    finally:
        proxy.set_faults({})
    assert matrix_events(bridged, "while Matrix is down") == []
    proxy.set_faults({"drop_rate": 1.0, "drop_phase": "after", "methods": ["PUT"], "times": 1, "seed": 3})
    try:
        for _ in range(3):
            try:
                commons_poll()
            except RuntimeError:
                pass
    finally:
        proxy.set_faults({})
    commons_poll()
    assert len(matrix_events(bridged, "First note while Matrix is down")) == 1
    assert len(matrix_events(bridged, "Second note while Matrix is down")) == 1
    assert len(forum_copies(world, "First note while Matrix is down")) == 1
    assert len(forum_copies(world, "Second note while Matrix is down")) == 1
