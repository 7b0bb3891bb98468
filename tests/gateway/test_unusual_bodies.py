"""Validly signed bodies that are valid JSON but unusual (issue 19): lone surrogate escapes, deep
nesting, huge numbers, NaN/Infinity. Through all three hooks, with the ledger up: never a 5xx,
a 2xx body stored exactly once with its raw bytes, and the inbox worker's handler
(``flows.inbox.handle_event``, as the task worker runs it) handles or refuses each one with a
recorded result, never crashing. What is not JSON at all is 400, and nothing is stored."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from starlette.testclient import TestClient

from flows.inbox import handle_event
from gateway.app import create_app
from gateway.dispatch import StoreOnlyDispatcher
from ledger.models import InboxEvent
from tests.support.gateway import (
    APPLICATIONS_CATEGORY,
    DISCORD_KEY,
    IDEAS_CATEGORY,
    discourse_request,
    gateway_settings,
    slack_request,
)
from tests.support.membership import CONFIRM_SECRET, World

PLACE = '"@@unusual@@"'
# Valid JSON that Python's json either refuses, or returns in a form the database refuses.
unusual = st.one_of(
    st.sampled_from(['"x\\ud800"', '"\\udfff tail"', '"a\\ud83d"', '"\\u0000 nul"']),
    st.integers(65, 3000).map(lambda n: "[" * n + "]" * n),
    st.integers(65, 800).map(lambda n: '{"a": ' * n + "1" + "}" * n),
    st.integers(31, 5000).map(lambda n: "-" * (n % 2) + "9" * n),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "-1e999"]),
)
where = st.sampled_from(["extra", "title", "name", "nested"])


@pytest.fixture
def hooks(world: World) -> Iterator[tuple[TestClient, World]]:
    app = create_app(
        settings=gateway_settings(apply_rate_limit=10**9),
        ledger=world.ledger,
        dispatcher=StoreOnlyDispatcher(),
        charter=world.platforms.charter,
        confirm_secret=CONFIRM_SECRET,
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, world


def _with(template: dict[str, Any], spot: str, value: str) -> bytes:
    """``template`` as JSON text with ``value`` (JSON text) put at ``spot``."""
    text = json.dumps(template)
    marker = {"extra": '"extra": ' + PLACE, "title": PLACE, "name": PLACE, "nested": PLACE}[spot]
    if spot == "extra":
        return text.replace("{", "{" + marker + ", ", 1).replace(PLACE, value).encode()
    return text.replace(f'"@@{spot}@@"', value).encode()


def discourse_body(n: int, spot: str, value: str) -> tuple[dict[str, str], bytes]:
    category = APPLICATIONS_CATEGORY if n % 2 else IDEAS_CATEGORY
    topic = {
        "id": 5000 + n,
        "title": "@@title@@",
        "category_id": int(category),
        "archetype": "regular",
        "created_by": {"id": 55, "username": "@@name@@"},
        "tags": ["@@nested@@"],
    }
    headers, body = discourse_request(n, body=_with({"topic": topic}, spot, value))
    return headers, body


def discord_body(n: int, spot: str, value: str) -> tuple[dict[str, str], bytes]:
    payload = {
        "type": 2,
        "id": str(1300000000000000000 + n),
        "application_id": "1100000000000000001",
        "token": "tok-invented",
        "guild_id": "1000000000000000001",
        "channel_id": "1000000000000000002",
        "member": {"user": {"id": "400000000000000009", "username": "@@name@@"}, "roles": []},
        "data": {
            "name": "idea",
            "type": 1,
            "options": [
                {"name": "title", "type": 3, "value": "@@title@@"},
                {"name": "details", "type": 3, "value": "@@nested@@"},
            ],
        },
    }
    body = _with(payload, spot, value)
    stamp = str(int(time.time()))
    return {
        "Content-Type": "application/json",
        "X-Signature-Timestamp": stamp,
        "X-Signature-Ed25519": DISCORD_KEY.sign(stamp.encode() + body).hex(),
    }, body


def slack_body(n: int, spot: str, value: str) -> tuple[dict[str, str], bytes]:
    payload = {
        "type": "block_actions",
        "trigger_id": f"trig-{n}",
        "team": {"id": "T0INVENTED"},
        "user": {"id": "U0INVENTED1", "username": "@@name@@"},
        "channel": {"id": "C0BOARD01"},
        "container": {"message_ts": "1700000000.000100"},
        "actions": [
            {
                "action_id": "other_button",
                "block_id": "@@title@@",
                "value": "@@nested@@",
                "action_ts": "1700000001.000200",
            }
        ],
    }
    return slack_request(urlencode({"payload": _with(payload, spot, value).decode()}).encode())


BUILDERS = {"/hooks/discourse": discourse_body, "/hooks/discord": discord_body, "/hooks/slack": slack_body}


def _rows(world: World) -> list[InboxEvent]:
    with world.ledger.read() as session:
        return list(session.scalars(select(InboxEvent).order_by(InboxEvent.id)))


@pytest.mark.parametrize("route", sorted(BUILDERS))
def test_unusual_valid_json_is_stored_once_and_handled(hooks, route):
    client, world = hooks
    counter = iter(range(1, 10**6))
    outcomes: dict[str, int] = {}

    @settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(value=unusual, spot=where)
    def check(value: str, spot: str) -> None:
        headers, body = BUILDERS[route](next(counter), spot, value)
        before = len(_rows(world))
        answers = [client.post(route, content=body, headers=headers) for _ in range(2)]
        assert all(a.status_code < 500 for a in answers), [a.text for a in answers]
        assert answers[0].status_code == 200, (answers[0].status_code, answers[0].text, body[:200])
        rows = _rows(world)
        assert len(rows) == before + 1, "a redelivery must not store a second row"
        event = rows[-1]
        assert event.raw == body
        result = handle_event(world.ledger, event.id)  # must not raise
        with world.ledger.read() as session:
            stored = session.get(InboxEvent, event.id)
            assert stored.processed_at is not None and stored.result_ref == result[:200]
        outcomes[result.split(":")[0]] = outcomes.get(result.split(":")[0], 0) + 1

    check()
    assert outcomes, "nothing was handled"


@pytest.mark.parametrize("route", sorted(BUILDERS))
def test_what_is_not_json_is_400_and_not_stored(hooks, route):
    client, world = hooks
    broken = "[" * 5000 + "]" * 4999  # nested deeper than any parser recursion, and unbalanced
    for n, value in enumerate([broken, "[1,]", "'single'", "\\ud800"]):
        headers, body = BUILDERS[route](900 + n, "extra", value)
        answer = client.post(route, content=body, headers=headers)
        assert answer.status_code == 400, (value[:20], answer.text)
    assert _rows(world) == []
