"""Second fidelity pass on the Slack side, the common room's paths (R-COMMS): what Slack parses in
a copy's text, what it sends in a person's, and what deleting a thread's first message sends.
The connector and the sandbox over real HTTP on 127.0.0.1; the app's events URL is a loopback
receiver that only records what Slack sends."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from connectors.sandboxkit import read_body
from connectors.slack.connector import split_ref
from tests.support.net import LoopbackServer

BOARD = "C0BOARD01"  # the seed's private channel the bot is in
WREN, TOBIN = "U0WREN001", "U0TOBI002"


class _Receiver:
    """The app's Request URL: answers Slack's challenge, keeps each signed delivery."""

    def __init__(self) -> None:
        self.deliveries: list[tuple[dict[str, str], bytes]] = []
        self.lock = threading.Lock()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        data = json.loads(body)
        answer = json.dumps({"challenge": data["challenge"]} if data.get("type") == "url_verification" else {})
        if data.get("type") != "url_verification":
            with self.lock:
                self.deliveries.append((headers, body))
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": answer.encode()})


@pytest.fixture
def receiver(slack: Any) -> Iterator[_Receiver]:
    app = _Receiver()
    with LoopbackServer(app) as server:
        httpx.post(f"{slack.url}/_sandbox/events_url", json={"url": server.url}, timeout=10).raise_for_status()
        yield app


def _say(slack: Any, user: str, text: str, **extra: Any) -> dict[str, Any]:
    reply = httpx.post(
        f"{slack.url}/_sandbox/messages", json={"user": user, "channel": BOARD, "text": text, **extra}, timeout=30
    )
    reply.raise_for_status()
    return reply.json()


def _event(receiver: _Receiver, event_id: str) -> tuple[dict[str, str], bytes]:
    return next((h, b) for h, b in receiver.deliveries if json.loads(b)["event_id"] == event_id)


def test_a_copy_in_slack_shows_control_characters_and_pings_no_one(slack: Any) -> None:
    # Slack parses <…> in a message's text (<!channel> pings everyone, <url|label> hides a link)
    # unless &, < and > are escaped (https://api.slack.com/reference/surfaces/formatting#escaping).
    connector = slack.connect()
    text = "**avery** (Discord): <!channel> see <https://evil.example|the docs> & if a<b>c"
    ref = connector.room_post(room=BOARD, text=text, title="<!here> Appeal & co")
    [stored] = [m for m in slack.state()["messages"][BOARD] if m["ts"] == split_ref(ref)[1]]
    assert stored["text"] == (
        "*&lt;!here&gt; Appeal &amp; co*\n*avery* (Discord): &lt;!channel&gt; see "
        "&lt;https://evil.example|the docs&gt; &amp; if a&lt;b&gt;c"
    )
    connector.room_edit(room=BOARD, thread_id=None, message_id=ref.id, text="now <!everyone> & <@U0TOBI002>")
    [edited] = [m for m in slack.state()["messages"][BOARD] if m["ts"] == split_ref(ref)[1]]
    assert edited["text"] == "now &lt;!everyone&gt; &amp; &lt;@U0TOBI002&gt;"


def test_a_persons_slack_text_reaches_the_other_rooms_as_people_read_it(slack: Any, receiver: _Receiver) -> None:
    # Slack sends what people typed escaped, and mentions, channels and links as <…> sequences
    # (https://api.slack.com/reference/surfaces/formatting#retrieving-messages).
    connector = slack.connect()
    said = _say(
        slack,
        WREN,
        "Ask <@U0TOBI002> in <#C0GENERAL|general>, <!here>: a &lt; b &amp;&amp; c &gt; d, "
        "<https://wg.example.org/coc|the CoC> or <https://wg.example.org>",
    )
    headers, body = _event(receiver, said["event_id"])
    attributes = connector.verify(headers=headers, body=body).attributes
    assert attributes["room.text"] == (
        "Ask @U0TOBI002 in #general, @here: a < b && c > d, the CoC (https://wg.example.org/coc) or "
        "https://wg.example.org"
    )
    assert attributes["room.change"] == "new"


def test_deleting_a_threads_first_message_leaves_a_tombstone_and_is_a_deletion(slack: Any, receiver: _Receiver) -> None:
    # Slack keeps a deleted message that has replies as a tombstone and sends message_changed
    # by USLACKBOT, not message_deleted (https://github.com/42wim/matterbridge/issues/600,
    # https://github.com/slack-edge/slack-edge/pull/10).
    connector = slack.connect()
    parent = _say(slack, WREN, "Agenda for Thursday")
    _say(slack, TOBIN, "Add the budget", thread_ts=parent["ts"])
    gone = httpx.post(
        f"{slack.url}/_sandbox/messages/delete", json={"channel": BOARD, "ts": parent["ts"]}, timeout=30
    ).json()
    headers, body = _event(receiver, gone["event_id"])
    event = json.loads(body)["event"]
    assert (event["subtype"], event["message"]["subtype"], event["message"]["user"]) == (
        "message_changed",
        "tombstone",
        "USLACKBOT",
    )
    [tomb] = [m for m in slack.state()["messages"][BOARD] if m["ts"] == parent["ts"]]
    assert tomb["text"] == "This message was deleted." and tomb["reply_count"] == 1
    attributes = connector.verify(headers=headers, body=body).attributes
    assert (attributes["room.change"], attributes["room.message_id"]) == ("delete", f"{BOARD}:{parent['ts']}")
    assert "room.text" not in attributes
    # A message without replies goes for good, as message_deleted.
    lone = _say(slack, WREN, "Typo")
    gone = httpx.post(
        f"{slack.url}/_sandbox/messages/delete", json={"channel": BOARD, "ts": lone["ts"]}, timeout=30
    ).json()
    assert json.loads(_event(receiver, gone["event_id"])[1])["event"]["subtype"] == "message_deleted"
    assert all(m["ts"] != lone["ts"] for m in slack.state()["messages"][BOARD])
