"""Random requests to every route (hypothesis): never a 5xx. At least 2,000 per route.

A third of the hook requests carry a valid signature over their random body, so the parsing
and storing paths behind verification are exercised too, not only the refusals.
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from gateway.app import create_app
from gateway.dispatch import StoreOnlyDispatcher
from ledger.db import Ledger
from ledger.migrate import upgrade
from tests.support.gateway import DISCORD_KEY, discourse_request, gateway_settings, slack_request

EXAMPLES = 2000
FUZZ = settings(
    max_examples=EXAMPLES, deadline=None, database=None, derandomize=False, suppress_health_check=list(HealthCheck)
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
bodies = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries(
        {
            "type": st.integers(0, 12),
            "id": st.text("0123456789", max_size=20),
            "data": json_values,
            "topic": json_values,
        }
    ).map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({"payload": json_values.map(json.dumps)}).map(lambda v: ("payload=" + v["payload"]).encode()),
)
content_types = st.sampled_from(
    [
        "application/json",
        "application/x-www-form-urlencoded",
        "text/plain",
        "",
        "application/json; charset=utf-8",
        "multipart/form-data; boundary=x",
    ]
)
header_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40)


@pytest.fixture(scope="module")
def fuzz_client():
    with tempfile.TemporaryDirectory() as tmp:
        ledger = Ledger(f"sqlite:///{Path(tmp) / 'ledger.db'}")
        upgrade(ledger)
        app = create_app(
            settings=gateway_settings(apply_rate_limit=10**9), ledger=ledger, dispatcher=StoreOnlyDispatcher()
        )
        with TestClient(app, raise_server_exceptions=False) as client:
            yield client
        ledger.dispose()


def signed_headers(route: str, body: bytes, seed: int) -> dict[str, str]:
    if route == "/hooks/discourse":
        headers, _ = discourse_request(seed, body=body)
    elif route == "/hooks/discord":
        stamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "X-Signature-Timestamp": stamp,
            "X-Signature-Ed25519": DISCORD_KEY.sign(stamp.encode() + body).hex(),
        }
    else:
        headers, _ = slack_request(body)
    return headers


@pytest.mark.parametrize("route", ["/hooks/discourse", "/hooks/discord", "/hooks/slack"])
def test_hooks_never_answer_5xx(fuzz_client, route):
    sent = []

    @FUZZ
    @given(
        body=bodies,
        signed=st.integers(0, 2),
        content_type=content_types,
        seed=st.integers(1, 10**6),
        extra=st.dictionaries(
            st.sampled_from(
                [
                    "X-Discourse-Event",
                    "X-Discourse-Event-Id",
                    "X-Signature-Timestamp",
                    "X-Slack-Request-Timestamp",
                    "X-Slack-Signature",
                    "X-Signature-Ed25519",
                    "Content-Length",
                ]
            ),
            header_text,
            max_size=2,
        ),
    )
    def one(body, signed, content_type, seed, extra):
        headers = signed_headers(route, body, seed) if signed == 0 else {}
        if signed != 0 or seed % 2:
            headers["Content-Type"] = content_type
        if signed == 2:
            headers.update(extra)
        try:
            answer = fuzz_client.post(route, content=body, headers=headers)
        except Exception:  # httpx refusing a header it cannot send is no answer
            if "Content-Length" in extra:
                return
            raise
        sent.append(answer.status_code)
        assert answer.status_code < 500, (answer.status_code, answer.text[:200])

    one()
    assert len(sent) >= EXAMPLES * 0.95


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_apply_never_answers_5xx(fuzz_client, method):
    sent = []
    page = fuzz_client.get("/apply").text
    token = re.search(r'name="csrf" value="([^"]*)"', page).group(1)
    submission = re.search(r'name="submission" value="([^"]*)"', page).group(1)
    fields = st.sampled_from(
        [
            "discourse_username",
            "discord_username",
            "why",
            "experience",
            "nominator",
            "email",
            "website",
            "csrf",
            "submission",
            "x",
        ]
    )

    @FUZZ
    @given(
        form=st.dictionaries(fields, st.text(max_size=80), max_size=9),
        valid_token=st.booleans(),
        raw=st.one_of(st.none(), st.binary(max_size=200)),
        content_type=content_types,
        query=st.text(max_size=30),
    )
    def one(form, valid_token, raw, content_type, query):
        if method == "GET":
            answer = fuzz_client.get("/apply", params={"q": query})
        elif raw is not None:
            answer = fuzz_client.post("/apply", content=raw, headers={"Content-Type": content_type})
        else:
            if valid_token:
                form = {**form, "csrf": token, "submission": submission}
            answer = fuzz_client.post("/apply", data=form)
        sent.append(answer.status_code)
        assert answer.status_code < 500, (answer.status_code, answer.text[:200])

    one()
    assert len(sent) >= EXAMPLES * 0.95


@pytest.mark.parametrize("path", ["/healthz", "/metrics"])
def test_operations_never_answer_5xx(fuzz_client, path):
    sent = []

    @FUZZ
    @given(
        method=st.sampled_from(["GET", "POST", "PUT", "HEAD"]), query=st.text(max_size=20), body=st.binary(max_size=50)
    )
    def one(method, query, body):
        answer = fuzz_client.request(method, path, params={"q": query}, content=body)
        sent.append(answer.status_code)
        assert answer.status_code < 500

    one()
    assert len(sent) >= EXAMPLES * 0.95
