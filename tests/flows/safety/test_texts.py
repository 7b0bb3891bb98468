"""The room message of a report (a pure text builder): within one Discord message."""

from __future__ import annotations

from flows.safety.queue import _room_text


def test_r_safe_1_a_room_message_fits_one_discord_message_with_its_commands() -> None:
    facts = {
        "id": 9,
        "via": "form",
        "platform": "discord",
        "target_kind": "person",
        "target_username": "rowan_vale",
        "target_link": "https://discord.com/channels/1/2/3",
        "content": "c" * 4000,
        "content_gone": False,
        "reason": "r" * 4000,
        "coc": False,
        "state": "open",
        "outcome": None,
        "claimed_by": None,
        "resolved_by": None,
        "reporter_username": None,
        "created_at": "2027-03-01 12:00 UTC",
    }
    text = _room_text(facts, buttons=False)
    assert len(text) < 2000 and text.rstrip().endswith("--by <you>`.") and "cut here" in text
