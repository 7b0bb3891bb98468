"""The common room's Slack side, pure parts: an Events API ``message`` callback as the neutral
``room.*`` attributes (R-COMMS), the app's own recognised, anything else left out."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.slack.rooms import room_attributes, slack_markdown

APP, BOT = "A0CHARTER", "U0CHARTER"


def envelope(event: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "event_callback",
        "team_id": "T0SANDBOX",
        "api_app_id": APP,
        "event_id": "Ev01",
        "authorizations": [{"team_id": "T0SANDBOX", "user_id": BOT, "is_bot": True}],
        "event": event,
    }


def test_a_persons_message_a_thread_reply_and_a_file() -> None:
    new = room_attributes(
        envelope({"type": "message", "channel": "G0COC", "user": "U0WREN001", "text": "hello", "ts": "1.000100"})
    )
    assert new == {
        "room.key": "G0COC",
        "room.change": "new",
        "room.message_id": "G0COC:1.000100",
        "room.text": "hello",
        "user_id": "U0WREN001",
        "username": "U0WREN001",
    }
    reply = room_attributes(
        envelope(
            {
                "type": "message",
                "channel": "G0COC",
                "user": "U0WREN001",
                "text": "re",
                "ts": "2.000100",
                "thread_ts": "1.000100",
                "subtype": "file_share",
                "files": [{"permalink": "https://x.slack.com/files/U/F1/a.pdf"}],
            }
        )
    )
    assert reply["room.thread_id"] == "G0COC:1.000100"
    assert reply["room.attachments"] == "https://x.slack.com/files/U/F1/a.pdf"


def test_edits_and_deletions_name_the_original_message() -> None:
    edited = room_attributes(
        envelope(
            {
                "type": "message",
                "subtype": "message_changed",
                "channel": "C0MODS",
                "ts": "9.1",
                "message": {"user": "U0JUNO005", "text": "new", "ts": "1.5"},
            }
        )
    )
    assert (edited["room.change"], edited["room.message_id"], edited["room.text"]) == ("edit", "C0MODS:1.5", "new")
    deleted = room_attributes(
        envelope(
            {
                "type": "message",
                "subtype": "message_deleted",
                "channel": "C0MODS",
                "ts": "9.2",
                "deleted_ts": "1.5",
                "previous_message": {"user": "U0JUNO005"},
            }
        )
    )
    assert deleted == {"room.key": "C0MODS", "room.change": "delete", "room.message_id": "C0MODS:1.5"}


@pytest.mark.parametrize(
    "event",
    [
        {"type": "message", "channel": "C0MODS", "user": BOT, "text": "a copy", "ts": "1.1"},
        {
            "type": "message",
            "channel": "C0MODS",
            "bot_id": "B0",
            "app_id": APP,
            "text": "a copy",
            "ts": "1.1",
            "subtype": "bot_message",
        },
        {"type": "message", "subtype": "message_changed", "channel": "C0MODS", "message": {"app_id": APP, "ts": "1.1"}},
        {
            "type": "message",
            "subtype": "message_deleted",
            "channel": "C0MODS",
            "deleted_ts": "1.1",
            "previous_message": {"bot_profile": {"app_id": APP}},
        },
    ],
)
def test_the_apps_own_messages_are_only_marked_own(event: dict[str, Any]) -> None:
    assert room_attributes(envelope(event)) == {"own": "true"}


@pytest.mark.parametrize(
    "event",
    [
        {"type": "message", "subtype": "channel_join", "channel": "C0MODS", "user": "U0WREN001", "ts": "1.1"},
        {"type": "message", "channel": "D0DIRECT", "user": "U0WREN001", "text": "a DM", "ts": "1.1"},
        {"type": "app_mention", "channel": "C0MODS", "user": "U0WREN001", "text": "hi", "ts": "1.1"},
        {"type": "message", "channel": "general", "user": "U0WREN001", "text": "no channel id", "ts": "1.1"},
    ],
)
def test_anything_else_is_not_a_room_message(event: dict[str, Any]) -> None:
    assert room_attributes(envelope(event)) == {}


def test_markdown_bold_becomes_mrkdwn_bold() -> None:
    assert slack_markdown("**avery_quill** (Discord): a **loud** note") == "*avery_quill* (Discord): a *loud* note"
