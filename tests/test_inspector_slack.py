"""The sandbox inspector's Slack page, served by a real uvicorn in front of a real Slack sandbox
seeded with the demo community: what it shows of the Events API (where events go, the app's
subscriptions, the last deliveries) and that a channel without the app's bot sends it nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from charterflow.inspector.app import create_app
from charterflow.inspector.serve import Running
from charterflow.seed import build
from connectors.slack.sandbox import SlackSandbox
from tests.support.net import LoopbackServer, request_of


@pytest.fixture
def inspector() -> Iterator[tuple[str, Any, str]]:
    community = build()
    sandbox = SlackSandbox(seed=community.slack_seed(), time_factor=0.001)  # Slack's retry minutes in ms
    with LoopbackServer(sandbox.app) as slack:
        running = Running(urls={"slack": slack.url}, gateway_url="http://127.0.0.1:9", community=community, ready=True)
        with LoopbackServer(create_app(running=running)) as server:
            yield server.url, sandbox, slack.url


def _page(url: str, channel: str) -> str:
    answer = httpx.get(f"{url}/slack", params={"channel": channel}, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.text


def test_the_slack_page_shows_where_events_go_and_where_none_come_from(inspector: tuple[str, Any, str]) -> None:
    url, sandbox, slack = inspector
    board = sandbox.seed.board_channel
    outside = next(c for c, conv in sandbox.channels.items() if sandbox.seed.bot_user_id not in conv["members"])
    page = _page(url, board)
    assert "no Request URL: no event is sent" in page and 'id="bot-out"' not in page
    assert "Slack sends the app none of its messages" in _page(url, outside)
    # An app that answers the handshake but fails every event: the page lists the failed deliveries.
    with LoopbackServer(_refusing_app) as app:
        kept = httpx.post(f"{slack}/_sandbox/events_url", json={"url": f"{app.url}/slack"}, timeout=10)
        assert kept.status_code == 200, kept.text
        member = next(iter(sandbox.channels[board]["members"] - {sandbox.seed.bot_user_id}))
        said = httpx.post(
            f"{slack}/_sandbox/messages", json={"user": member, "channel": board, "text": "Agenda?"}, timeout=30
        ).json()
    page = _page(url, board)
    assert f"sent to {app.url}/slack (message.channels, message.groups)" in page
    assert said["deliveries"] == [503, 503, 503, 503]
    assert f"{said['event_id']} retry 3: 503" in page and f"{said['event_id']}: 503" in page


async def _refusing_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An app of the workspace that answers Slack's challenge and refuses every event (503)."""
    _, body = await request_of(scope, receive)
    challenge = json.loads(body).get("challenge")
    status, text = (200, str(challenge).encode()) if challenge else (503, b"")
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": text})
