"""``DiscordConnector.direct_message_with_button``: one DM with one button, against the sandbox
on 127.0.0.1; the press comes back as a ``component`` interaction with the ``custom_id``; a re-run
with the same key sends nothing new; a member who refuses DMs is reported (50007)."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.base import UserRef
from connectors.discord.client import CannotDirectMessage


def test_dm_with_button_is_sent_once_per_key_and_its_press_comes_back(discord: Any) -> None:
    c = discord.connect()
    cleo = c.find_user("cleo_marsh")
    message_args: dict[str, Any] = {
        "user": cleo,
        "title": "Please confirm",
        "text": "Press the button below.",
        "button_label": "Confirm",
        "custom_id": "cfc:c.1.2.3.abc",
        "key": "confirm:1:2",
    }
    ref = c.direct_message_with_button(**message_args)
    again = c.direct_message_with_button(**message_args)
    assert again.id == ref.id  # the nonce derived from the key returns the first message
    state = discord.state()
    assert state["requests"]["POST /channels/{channel_id}/messages"] == 2  # sent twice, stored once
    message = next(m for m in state["messages"] if m["id"] == ref.id)
    assert message["channel_id"] == ref.thread_id
    assert message["content"].startswith("**Please confirm**\nPress the button below.")
    button = message["components"][0]["components"][0]
    assert button["label"] == "Confirm" and button["custom_id"] == "cfc:c.1.2.3.abc"
    assert sum(1 for m in state["messages"] if m["channel_id"] == ref.thread_id) == 1

    # The member presses it: the interaction the connector parses carries the custom_id.
    headers, body = discord.sandbox.signed_request(
        kind="component",
        payload={
            "user": "cleo_marsh",
            "custom_id": button["custom_id"],
            "message_id": ref.id,
            "channel_id": ref.thread_id,
        },
    )
    event = c.verify(headers=headers, body=body)
    assert event.kind == "component" and event.attributes["custom_id"] == "cfc:c.1.2.3.abc"
    assert event.attributes["user_id"] == cleo.id


def test_dm_with_button_finds_a_user_by_name_and_reports_closed_dms(discord: Any) -> None:
    c = discord.connect()
    ref = c.direct_message_with_button(
        user=UserRef(platform="discord", id="", username="dario_fenwick"),
        title="Opt in",
        text="Your term ends soon.",
        button_label="Opt in",
        custom_id="cfo:o.3.4.5.def",
    )
    assert ref.platform == "discord" and ref.id
    esme = c.find_user("esme_voss")  # the default seed's member who does not accept DMs
    with pytest.raises(CannotDirectMessage) as err:
        c.direct_message_with_button(user=esme, title="Confirm", text="x", button_label="Confirm", custom_id="cfc:x")
    assert err.value.user_ids == (esme.id,) and err.value.code == 50007


@pytest.mark.parametrize("label, custom_id", [("", "cfc:x"), ("Confirm", ""), ("Confirm", "x" * 101)])
def test_dm_with_button_refuses_a_bad_button_before_sending(discord: Any, label: str, custom_id: str) -> None:
    c = discord.connect()
    cleo = c.find_user("cleo_marsh")
    with pytest.raises(ValueError):
        c.direct_message_with_button(user=cleo, title="t", text="x", button_label=label, custom_id=custom_id)
    assert "POST /channels/{channel_id}/messages" not in discord.state()["requests"]
