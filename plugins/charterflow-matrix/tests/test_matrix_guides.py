"""R-GUIDE on Matrix, against the real Synapse: a guide is pinned messages in the guides room
(created once, a child of the space), edited in place with ``m.replace`` when its text changes,
a part no longer needed unpinned; the space's topic points newcomers at the guides. End to end:
the guides flow publishes to the Forum, Discord and Matrix once, then edits in place after a
change; ``!help <topic>`` said in a room is pushed by Synapse to the gateway and answered in
that room's thread with the guides' links, the Matrix one first."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from matrix_served import PushingHomeserver, bot_connector, platforms_with, pushed, pushing_synapse, seed
from test_matrix_trial import say

from charterflow_matrix.client import q
from charterflow_matrix.connector import MatrixConnector
from charterflow_matrix.guides import GUIDE_LIMIT, guide_content, guide_edit
from charterflow_matrix.payloads import MAX_CONTENT_BYTES, content_size
from flows import inbox
from flows.guides.handlers import HELP_ROUTE
from flows.guides.publish import guides_publish
from flows.platforms import use
from flows.presentation import label
from tests.support.guides import CHANNELS, copy_guides
from tests.support.membership import MEMBERS, NOW, serve_gateway

pytestmark = pytest.mark.timeout(600)


def _state(connector: MatrixConnector, room: str, event_type: str) -> dict[str, Any]:
    return connector.client.get(
        f"/_matrix/client/v3/rooms/{q(room)}/state/{event_type}/", what="state", missing_ok=True
    )


def _messages(connector: MatrixConnector, room: str) -> list[dict[str, Any]]:
    page = connector.client.get(
        f"/_matrix/client/v3/rooms/{q(room)}/messages", what="messages", params={"dir": "b", "limit": 100}
    )
    return [e for e in page.get("chunk", []) if e.get("type") == "m.room.message"]


def test_pure_guide_contents_keep_the_whole_text_within_the_event_limit() -> None:
    content = guide_content("## Before you post\n\n- Search first.")
    assert content["body"].startswith("## Before") and "<h2>Before you post</h2>" in content["formatted_body"]
    assert "<script>" not in guide_content("<script>x</script>")["formatted_body"]  # raw HTML stays text
    widest = "\U0001f600" * GUIDE_LIMIT  # 4 bytes each: the HTML and the fallback give way, not the text
    edit = guide_edit("$first", widest)
    assert edit["m.new_content"]["body"] == widest and content_size(edit) <= MAX_CONTENT_BYTES
    assert edit["m.relates_to"] == {"rel_type": "m.replace", "event_id": "$first"}


def test_a_guide_is_pinned_edited_in_place_and_a_stale_part_unpinned(matrix: MatrixConnector) -> None:
    refs = matrix.shelve_guide(
        channel=None,
        title="Reporting a problem",
        key="guide:test:matrix",
        pieces=["**Reporting a problem**\n\nPart one.", "Part two."],
    )
    room = matrix.guides_room()
    space = matrix.room_id(matrix.settings.space)
    assert room in {
        e["state_key"]
        for e in matrix.client.get(f"/_matrix/client/v3/rooms/{q(space)}/state", what="space")
        if e["type"] == "m.space.child"
    }
    assert _state(matrix, room, "m.room.pinned_events")["pinned"] == [r.id for r in refs]
    assert [m["content"]["body"] for m in reversed(_messages(matrix, room))][-2:] == [
        "**Reporting a problem**\n\nPart one.",
        "Part two.",
    ]

    # The same text again: nothing is sent.
    before = len(_messages(matrix, room))
    same = matrix.shelve_guide(
        channel=None,
        title="Reporting a problem",
        key="guide:test:matrix",
        placed=refs,
        pieces=["**Reporting a problem**\n\nPart one.", "Part two."],
    )
    assert same == refs and len(_messages(matrix, room)) == before

    # Shorter: the first edited in place, the second says so and is unpinned.
    again = matrix.shelve_guide(
        channel=None,
        title="Reporting a problem",
        key="guide:test:matrix",
        placed=refs,
        pieces=["**Reporting a problem**\n\nPart one, now all of it."],
    )
    assert [r.id for r in again] == [r.id for r in refs]
    edits = [m for m in _messages(matrix, room) if m["content"].get("m.relates_to", {}).get("rel_type") == "m.replace"]
    assert {e["content"]["m.relates_to"]["event_id"] for e in edits} == {r.id for r in refs}
    assert any(e["content"]["m.new_content"]["body"].endswith("now all of it.") for e in edits)
    assert _state(matrix, room, "m.room.pinned_events")["pinned"] == [refs[0].id]

    # The space's topic points newcomers at the guides room and the guides; written once.
    guides = [("Reporting a problem", refs[0].url)]
    where = matrix.set_welcome(summary="New here? Start with our community guides.", guides=guides)
    topic = _state(matrix, space, "m.room.topic")["topic"]
    assert topic.startswith("New here?") and q(matrix.alias("guides")) in topic and refs[0].url in topic
    assert matrix.set_welcome(summary="New here? Start with our community guides.", guides=guides) == where


@pytest.fixture
def pushing(
    world: Any, tmp_path: Path, pushing_homeserver: PushingHomeserver, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, Any]]:
    """The seeded world's gateway, a Synapse whose appservice pushes to it, Matrix served beside
    the Forum and Discord, and the shipped guides (three of them name Matrix) in a folder of the
    test's."""
    folder = copy_guides(tmp_path / "guides")
    monkeypatch.setenv("CHARTERFLOW_GUIDES_DIR", str(folder))
    with serve_gateway(world) as gateway, pushing_synapse(pushing_homeserver, gateway.url, monkeypatch) as creds:
        users = seed(creds, {"members": list(MEMBERS), "rooms": {"general": list(MEMBERS)}})
        matrix = bot_connector(creds)
        with use(ledger=world.ledger, platforms=platforms_with(world, matrix, mailer=world.platforms.mailer)):
            yield {"creds": creds, "users": users, "matrix": matrix, "folder": folder}
        matrix.close()


def test_r_guide_published_on_three_platforms_edited_in_place_and_help_answered_on_matrix(
    world: Any, pushing: dict[str, Any]
) -> None:
    matrix = pushing["matrix"]
    out = guides_publish(channels=CHANNELS, now=NOW)
    assert out["errors"] == [] and out["skipped"] == []  # the plugin is installed: matrix has a connector
    rows = {(r["guide"], r["platform"]): r for r in out["guides"]}
    assert rows[("reporting-a-problem", "matrix")]["change"] == "published"
    # The shipped guides that name Matrix are published there, the Matrix guide on every platform.
    assert {g for g, p in rows if p == "matrix"} == {"joining-matrix", "reporting-a-problem", "welcome"}
    assert {p for g, p in rows if g == "joining-matrix"} == {"discourse", "discord", "matrix"}
    assert {p for g, p in rows if g == "reporting-a-problem"} == {"discourse", "discord", "matrix"}
    room = matrix.guides_room()
    [message] = [m for m in _messages(matrix, room) if m["content"]["body"].startswith("**Reporting a problem**")]
    pinned = _state(matrix, room, "m.room.pinned_events")["pinned"]
    assert message["event_id"] in pinned and len(pinned) == 3  # one message for each of the three guides
    assert rows[("reporting-a-problem", "matrix")]["url"].endswith(q(message["event_id"]))

    # A WG member changes the guide: one edit on Matrix, the same message pinned.
    path = pushing["folder"] / "reporting-a-problem.md"
    path.write_text(path.read_text().replace("please tell us.", "please tell us right away."))
    changed = {(r["guide"], r["platform"]): r["change"] for r in guides_publish(channels=CHANNELS, now=NOW)["guides"]}
    assert changed[("reporting-a-problem", "matrix")] == changed[("reporting-a-problem", "discourse")] == "edited"
    guide_messages = [m for m in _messages(matrix, room) if "Reporting a problem" in m["content"]["body"]]
    assert len(guide_messages) == 2  # the message and its one replacement
    [edit] = [m for m in guide_messages if m["event_id"] != message["event_id"]]
    assert "right away" in edit["content"]["m.new_content"]["body"]
    assert _state(matrix, room, "m.room.pinned_events")["pinned"] == pinned
    count = len(_messages(matrix, room))
    assert {r["change"] for r in guides_publish(channels=CHANNELS, now=NOW)["guides"]} == {"unchanged"}
    assert len(_messages(matrix, room)) == count

    # !help in a room: pushed by Synapse, answered in its thread, the Matrix link first.
    t = {"matrix": matrix, "users": pushing["users"], "creds": pushing["creds"]}
    asked = pushed(world, say(t, "cleo_marsh", "general", "!help how do I report spam"))
    assert (asked.route, asked.kind) == (HELP_ROUTE, "help")
    assert inbox.handle_event(world.ledger, asked.id) == "help:1"
    assert inbox.handle_event(world.ledger, asked.id) == "already-processed"
    general = matrix.room_id("general")
    [answer] = [m for m in _messages(matrix, general) if m["content"]["body"].startswith("Guides about")]
    body = answer["content"]["body"]
    assert answer["content"]["m.relates_to"]["event_id"] == asked.payload["attributes"]["event_id"]
    assert body.index(f"{label('matrix')} https://matrix.to/") < min(
        body.index("Forum http"), body.index("Discord http")
    )
    # An oversized topic is read as its first 100 characters.
    long = pushed(world, say(t, "cleo_marsh", "general", "!help " + "report spam " * 400))
    assert inbox.handle_event(world.ledger, long.id) == "help:1"
