"""The sandbox answers as the official Discourse OpenAPI document says (openapi-core), and as
hand-written schemas say where the document is silent (errors, grants, polls, by_number)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import jsonschema
import pytest

# A test dependency ([test] extra): missing, the spec check fails instead of skipping.
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse

from connectors.base import Role
from connectors.discourse.sandbox import DiscourseSandbox, default_seed

# Kept in the repository by scripts/refresh-vendored.py.
SPEC = Path(__file__).resolve().parents[1] / "data" / "discourse-openapi.json"


class Recording(httpx.BaseTransport):
    """A real HTTP transport that keeps every exchange for validation afterwards."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.exchanges: list[tuple[httpx.Request, httpx.Response]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        response.read()
        self.exchanges.append((request, response))
        return response

    def close(self) -> None:
        self.inner.close()


# ---- hand-written schemas for what the spec does not cover --------------------------------------

ERROR = {
    "type": "object",
    "required": ["errors"],
    "properties": {
        "errors": {"type": "array", "minItems": 1, "items": {"type": "string"}},
        "error_type": {"enum": ["not_found", "invalid_access", "invalid_parameters", "rate_limit"]},
    },
}
CREATE_POST_ERROR = {
    "type": "object",
    "required": ["action", "errors"],
    "properties": {
        "action": {"const": "create_post"},
        "errors": {"type": "array", "minItems": 1, "items": {"type": "string"}},
    },
}
RATE_LIMIT = {
    "type": "object",
    "required": ["errors", "error_type", "extras"],
    "properties": {
        "error_type": {"const": "rate_limit"},
        "extras": {
            "type": "object",
            "required": ["wait_seconds", "time_left"],
            "properties": {"wait_seconds": {"type": "integer", "minimum": 1}, "time_left": {"type": "string"}},
        },
    },
}
ADMIN_USER_CORE = {"type": "object", "required": ["id", "username", "admin", "moderator", "groups"]}
GRANT_ADMIN = {
    "type": "object",
    "required": ["success", "email_confirmation_required"],
    "additionalProperties": False,
    "properties": {"success": {"const": "OK"}, "email_confirmation_required": {"const": True}},
}
SECOND_FACTOR = {"type": "object", "required": ["second_factor_challenge_nonce"]}
POLL = {
    "type": "object",
    "required": ["name", "type", "status", "options", "voters"],
    "properties": {
        "status": {"enum": ["open", "closed"]},
        "public": {"type": "boolean"},
        "options": {
            "type": "array",
            "minItems": 2,
            "items": {
                "type": "object",
                "required": ["id", "html", "votes"],
                "properties": {
                    "id": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
                    "html": {"type": "string"},
                    "votes": {"type": "integer", "minimum": 0},
                },
            },
        },
    },
}
POST_WITH_POLLS = {
    "type": "object",
    "required": ["id", "topic_id", "post_number", "raw"],
    "properties": {"polls": {"type": "array", "items": POLL}},
}
VOTERS = {
    "type": "object",
    "required": ["voters"],
    "properties": {
        "voters": {
            "type": "object",
            "additionalProperties": {
                "type": "array",
                "items": {"type": "object", "required": ["id", "username", "avatar_template"]},
            },
        }
    },
}
TOGGLE = {"type": "object", "required": ["poll"], "properties": {"poll": POLL}}
VOTE = {"type": "object", "required": ["poll", "vote"], "properties": {"poll": POLL, "vote": {"type": "array"}}}

# (method, path regex) -> {status: schema}; the spec covers the rest
HAND_WRITTEN: list[tuple[str, str, dict[int, dict[str, Any]]]] = [
    ("PUT", r"^/admin/users/-?\d+/(grant|revoke)_moderation(\.json)?$", {200: ADMIN_USER_CORE}),
    ("PUT", r"^/admin/users/-?\d+/revoke_admin(\.json)?$", {200: ADMIN_USER_CORE}),
    ("PUT", r"^/admin/users/-?\d+/grant_admin(\.json)?$", {200: GRANT_ADMIN, 403: SECOND_FACTOR}),
    ("GET", r"^/posts/by_number/\d+/\d+\.json$", {200: POST_WITH_POLLS}),
    ("GET", r"^/polls/voters\.json$", {200: VOTERS}),
    ("PUT", r"^/polls/toggle_status$", {200: TOGGLE}),
    ("PUT", r"^/polls/vote$", {200: VOTE}),
]


@pytest.fixture(scope="module")
def spec_dict() -> dict[str, Any]:
    return json.loads(SPEC.read_text(encoding="utf-8"))


def openapi_for(spec: dict[str, Any], base_url: str) -> OpenAPI:
    # openapi-core matches requests against `servers`; point them at the sandbox.
    return OpenAPI.from_dict({**spec, "servers": [{"url": base_url}]})


def spec_operation(spec: dict[str, Any], method: str, path: str) -> str | None:
    for template, ops in spec["paths"].items():
        pattern = "^" + re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, path) and method.lower() in ops:
            return template
    return None


def validate_exchange(
    api: OpenAPI, spec: dict[str, Any], base_url: str, request: httpx.Request, response: httpx.Response
) -> str:
    """Validate one exchange; returns how ("spec", "hand", "error")."""
    path, method, status = request.url.path, request.method, response.status_code
    ctype = response.headers.get("content-type", "")
    body = response.json() if "json" in ctype and response.content else None
    if status >= 400:
        if status == 429 and "json" not in ctype:
            assert response.headers["Retry-After"].isdigit() and "Slow down" in response.text
        elif status == 429:
            jsonschema.validate(body, RATE_LIMIT)
            assert response.headers["Retry-After"] == str(body["extras"]["wait_seconds"])
        elif status == 422 and isinstance(body, dict) and "action" in body:
            jsonschema.validate(body, CREATE_POST_ERROR)
        elif status == 403 and isinstance(body, dict) and "second_factor_challenge_nonce" in body:
            jsonschema.validate(body, SECOND_FACTOR)
        elif status >= 500:
            pass  # injected
        else:
            jsonschema.validate(body, ERROR)
        return "error"
    for hand_method, pattern, schemas in HAND_WRITTEN:
        if hand_method == method and re.match(pattern, path):
            jsonschema.validate(body, schemas[status])
            return "hand"
    template = spec_operation(spec, method, path)
    assert template is not None, f"{method} {path} is neither in the spec nor hand-written"
    query = {k: v[0] for k, v in parse_qs(request.url.query.decode()).items()}
    mock_request = MockRequest(
        base_url,
        method.lower(),
        path,
        args=query,
        headers=dict(request.headers),
        data=request.content or None,
        content_type=request.headers.get("content-type", "application/json"),
    )
    mock_response = MockResponse(
        response.content,
        status_code=status,
        headers=dict(response.headers),
        content_type=ctype.split(";")[0] if ctype else "application/json",
    )
    api.validate_request(mock_request)
    api.validate_response(mock_request, mock_response)
    return "spec"


def test_every_sandbox_answer_the_connector_receives_validates(serve, spec_dict, report):
    seed = default_seed()
    seed["api_keys"] = [{"key": "spec-test-key-000001"}]
    box = serve(DiscourseSandbox(seed=seed))
    recording = Recording()
    c = box.connect(transport=recording)
    api = openapi_for(spec_dict, box.url)

    cleo = c.find_user("cleo_marsh")
    c.activity(cleo)
    c.list_staff()
    c.list_holders(Role.group("working-group"))
    for role in (Role.moderator(), Role.group("board")):
        c.grant(cleo, role, reason="spec")
        c.revoke(cleo, role, reason="spec")
    c.grant(cleo, Role.admin(), reason="spec")
    httpx.post(f"{box.url}/_sandbox/confirm_admin", json={"user_id": int(cleo.id)})
    c.revoke(cleo, Role.admin(), reason="spec")
    topic = c.post(channel="Working Group", title="Spec validation topic", text="Body for the spec validation.")
    c.post(channel="Working Group", title="Spec validation keyed", text="Body for the keyed spec topic.", key="k")
    c.post(channel="Working Group", title="Spec validation keyed", text="Body for the keyed spec topic.", key="k")
    c.reply(thread_id=topic.thread_id, text="A reply for the spec validation.")
    # An applicant editing the first post of their topic (updatePost; sends post_edited).
    with httpx.Client(
        transport=recording, base_url=box.url, headers={"Api-Key": "spec-test-key-000001", "Api-Username": "system"}
    ) as editor:
        edited = editor.put(
            f"/posts/{topic.id}.json",
            json={"post": {"raw": "Body for the spec validation, edited.", "edit_reason": "spec"}},
        )
    assert edited.status_code == 200 and edited.json()["post"]["raw"].endswith("edited.")
    c.direct_message(recipients=["cleo_marsh", "board"], title="Spec PM", text="A private message body.")
    ballot = c.open_ballot(
        channel="Working Group", question="Spec ballot: adopt it?", options=["Yes", "No"], voters_group="working-group"
    )
    box.sandbox.cast_vote(box.url, ballot, voter="cleo_marsh", option_index=0)
    c.read_votes(ballot)
    c.close_ballot(ballot)
    # Error answers too: unknown things, bad input, bad credentials, non-admin, rate limit.
    for call in (
        lambda: c.find_user("nobody_here"),
        lambda: c.list_holders(Role.group("nope")),
        lambda: c.post(channel="General", title="short", text="Body long enough to pass the check."),
        lambda: box.connect(transport=recording, api_key="wrong-key-0000").find_user("cleo_marsh"),
        lambda: box.connect(transport=recording, api_username="dario_fenwick").activity(cleo),
    ):
        with pytest.raises(Exception):
            call()
    box.faults(storm={"count": 1, "retry_after": 1})
    c.find_user("cleo_marsh")
    box.faults()

    kinds: dict[str, int] = {}
    for request, response in recording.exchanges:
        kind = validate_exchange(api, spec_dict, box.url, request, response)
        kinds[kind] = kinds.get(kind, 0) + 1
    seen = {f"{r.method} {r.url.path}" for r, _ in recording.exchanges}
    report("spec_validation", f"{len(recording.exchanges)} exchanges validated: {kinds}; {len(seen)} distinct requests")
    assert kinds.get("spec", 0) >= 15 and kinds.get("hand", 0) >= 5 and kinds.get("error", 0) >= 6
    # Every spec-covered endpoint the connector uses was exercised.
    for needed in (
        "/u/cleo_marsh.json",
        "/categories.json",
        "/posts.json",
        "/groups/working-group/members.json",
        f"/posts/{topic.id}.json",
    ):
        assert any(needed == r.url.path for r, _ in recording.exchanges)


def test_the_spec_rejects_what_the_sandbox_must_not_send(spec_dict):
    """A guard on the guard: a response missing a required field fails validation."""
    base = "http://127.0.0.1:9"
    api = openapi_for(spec_dict, base)
    request = MockRequest(base, "get", "/groups/board/members.json")
    with pytest.raises(Exception):
        api.validate_response(request, MockResponse(b'{"members": [], "meta": {}}'))
