"""Interaction verification and parsing; 10,000 random and malformed requests against a small
ASGI endpoint that uses the verifier the way the gateway will (zero 5xx, every bad signature 401)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.discord import payloads
from connectors.discord.interactions import InteractionVerifier, parse_interaction
from connectors.discord.sandbox import DiscordSandbox
from connectors.errors import ConfigError, InvalidSignature
from tests.support.net import request_of

SANDBOX = DiscordSandbox()
VERIFIER = InteractionVerifier(public_key=SANDBOX.public_key)
OTHER = DiscordSandbox()  # a different key pair


def signed(
    payload: Any, *, box: DiscordSandbox = SANDBOX, timestamp: int | None = None
) -> tuple[dict[str, str], bytes]:
    body = json.dumps(payload).encode()
    return box.sign(body, timestamp=timestamp), body


def test_valid_signature_parses_each_kind() -> None:
    h, b = SANDBOX.signed_request(kind="ping", payload={})
    assert VERIFIER.verify(headers=h, body=b).kind == "ping"
    h, b = SANDBOX.signed_request(kind="idea", payload={"options": {"text": "Office hours"}})
    event = VERIFIER.verify(headers=h, body=b)
    assert event.kind == "idea" and event.attributes["option.text"] == "Office hours"
    assert event.actor == event.attributes["user_id"] and event.attributes["username"] == "cleo_marsh"
    assert event.dedupe_key == f"discord:{event.attributes['guild_id']}:{event.attributes['interaction_id']}"
    assert event.instance == event.attributes["guild_id"] != ""
    h, b = SANDBOX.signed_request(kind="ballot_vote", payload={"custom_id": payloads.ballot_custom_id("abc123", "2")})
    event = VERIFIER.verify(headers=h, body=b)
    assert (event.kind, event.attributes["ballot_id"], event.attributes["option_id"]) == ("ballot_vote", "abc123", "2")
    h, b = SANDBOX.signed_request(
        kind="apply_submitted",
        payload={"custom_id": payloads.APPLY_MODAL_ID, "fields": {"why": "To help", "experience": "Mod"}},
    )
    event = VERIFIER.verify(headers=h, body=b)
    assert event.kind == "apply_submitted" and event.attributes["field.why"] == "To help"


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda h, b: (h, b + b" "), id="body-changed"),
        pytest.param(lambda h, b: ({**h, "X-Signature-Ed25519": "00" * 64}, b), id="zero-signature"),
        pytest.param(lambda h, b: ({**h, "X-Signature-Ed25519": h["X-Signature-Ed25519"][:-2]}, b), id="short-hex"),
        pytest.param(lambda h, b: ({**h, "X-Signature-Ed25519": "zz" * 64}, b), id="not-hex"),
        pytest.param(lambda h, b: ({**h, "X-Signature-Ed25519": " ".join(h["X-Signature-Ed25519"])}, b), id="spaced"),
        pytest.param(lambda h, b: ({**h, "X-Signature-Timestamp": "1e9"}, b), id="timestamp-not-digits"),
        pytest.param(lambda h, b: ({**h, "X-Signature-Timestamp": str(int(time.time()) - 3600)}, b), id="old-stamp"),
        pytest.param(lambda h, b: ({**h, "X-Signature-Timestamp": "9" * 40}, b), id="huge-timestamp"),
        pytest.param(lambda h, b: ({k: v for k, v in h.items() if "Timestamp" not in k}, b), id="no-timestamp"),
        pytest.param(lambda h, b: ({k: v for k, v in h.items() if "Ed25519" not in k}, b), id="no-signature"),
        pytest.param(lambda h, b: ({"X-Signature-Ed25519": b"\xff" * 3, "X-Signature-Timestamp": 5}, b), id="junk"),
        pytest.param(lambda h, b: signed({"type": 1}, box=OTHER), id="other-key"),
        pytest.param(lambda h, b: signed({"type": 1}, timestamp=int(time.time()) + 3600), id="future-stamp"),
    ],
)
def test_every_malformed_signature_is_invalid_signature_401(mutate: Any) -> None:
    headers, body = mutate(*signed({"type": 1}))
    with pytest.raises(InvalidSignature) as err:
        VERIFIER.verify(headers=headers, body=body)
    assert err.value.status == 401


def test_lowercase_header_names_and_bytes_headers_are_accepted() -> None:
    headers, body = signed({"type": 1})
    lowered = {k.lower().encode(): v.encode() for k, v in headers.items()}
    assert VERIFIER.verify(headers=lowered, body=body).kind == "ping"


@pytest.mark.parametrize(
    "payload", [[1], {"type": "x"}, {"type": 2, "id": "1"}, {"type": 99, "id": "5"}, {"type": 2}, "text"]
)
def test_signed_but_not_an_interaction_is_400(payload: Any) -> None:
    headers, body = signed(payload)
    with pytest.raises(InvalidSignature) as err:
        VERIFIER.verify(headers=headers, body=body)
    assert err.value.status == 400


def test_a_malformed_public_key_is_a_config_error() -> None:
    for key in ("", "xyz", "ab" * 31, "gg" * 32):
        with pytest.raises(ConfigError, match="PUBLIC_KEY"):
            InteractionVerifier(public_key=key)


def test_parse_tolerates_odd_shapes() -> None:
    event = parse_interaction(
        {
            "type": 3,
            "id": "77",
            "data": {"custom_id": "cfb:zz:99"},
            "member": "nope",
            "user": {"id": 5, "username": None},
        }
    )
    assert event.kind == "ballot_vote" and event.attributes["user_id"] == "5"
    assert parse_interaction({"type": 3, "id": "78", "data": {"custom_id": "other"}}).kind == "component"


# ---- the endpoint the gateway will have: verify, answer; 401 on a bad signature -----------------


class Endpoint:
    """A minimal ASGI interactions endpoint built on the verifier (as the gateway will use it)."""

    def __init__(self, verifier: InteractionVerifier) -> None:
        self.verifier = verifier

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        headers, body = await request_of(scope, receive)
        try:
            event = self.verifier.verify(headers=headers, body=body)
            status, answer = 200, (payloads.pong() if event.kind == "ping" else payloads.deferred())
        except InvalidSignature as exc:
            status, answer = exc.status or 401, {"error": "invalid request"}
        out = json.dumps(answer).encode()
        await send(
            {"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]}
        )
        await send({"type": "http.response.body", "body": out})


ENDPOINT = Endpoint(VERIFIER)
LOOP = asyncio.new_event_loop()


def call(headers: list[tuple[bytes, bytes]], body: bytes) -> int:
    sent: list[dict[str, Any]] = []
    chunks = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return chunks.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/interactions", "headers": headers}
    try:
        LOOP.run_until_complete(ENDPOINT(scope, receive, send))
    except Exception:  # noqa: BLE001 - what an ASGI server turns into a 500
        return 500
    return sent[0]["status"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=6,
)
interaction_like = st.fixed_dictionaries(
    {
        "type": st.sampled_from([1, 2, 3, 4, 5, 6, 0, -1, "2", None]),
        "id": st.one_of(st.none(), st.text(max_size=22), st.integers()),
        "data": json_values,
        "member": json_values,
        "user": json_values,
        "token": st.text(max_size=30),
    },
)
header_value = st.one_of(st.text(max_size=140), st.binary(max_size=140).map(lambda b: b.decode("latin-1")))

Case = tuple[str, Any, Any, Any]
cases = st.one_of(
    st.tuples(st.just("valid"), interaction_like, st.none(), st.none()),
    st.tuples(st.just("valid-raw"), st.binary(max_size=200), st.none(), st.none()),
    st.tuples(st.just("tampered"), interaction_like, st.integers(min_value=0, max_value=10_000), st.none()),
    st.tuples(st.just("bad-signature"), st.binary(max_size=200), header_value, header_value),
    st.tuples(st.just("other-key"), interaction_like, st.none(), st.none()),
    st.tuples(st.just("missing"), st.binary(max_size=50), st.sampled_from(["sig", "ts", "both"]), st.none()),
)


@settings(
    max_examples=10_000,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(case=cases)
def test_10000_random_and_malformed_requests_never_5xx_and_bad_signatures_401(case: Case) -> None:
    kind, payload, a, b = case
    if kind in ("valid", "tampered", "other-key"):
        body = json.dumps(payload).encode()
        headers = (OTHER if kind == "other-key" else SANDBOX).sign(body)
        if kind == "tampered":
            body = body + str(a).encode()  # anything appended breaks the signature
    elif kind == "valid-raw":
        body = payload
        headers = SANDBOX.sign(body)
    elif kind == "bad-signature":
        body = payload
        headers = {"X-Signature-Ed25519": a, "X-Signature-Timestamp": b}
    else:
        body = payload
        full = SANDBOX.sign(body)
        drop = {
            "sig": ["X-Signature-Ed25519"],
            "ts": ["X-Signature-Timestamp"],
            "both": ["X-Signature-Ed25519", "X-Signature-Timestamp"],
        }[a]
        headers = {k: v for k, v in full.items() if k not in drop}
    raw = [(k.lower().encode("latin-1"), str(v).encode("latin-1", "replace")) for k, v in headers.items()]
    status = call(raw, body)
    assert status < 500
    if kind in ("tampered", "bad-signature", "other-key", "missing"):
        assert status == 401
    else:
        assert status in (200, 400)
