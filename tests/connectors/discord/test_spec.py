"""The sandbox's answers (and the connector's request bodies) validate against Discord's official
OpenAPI document (``tests/data/discord-openapi.json``), except where the docs win over the
spec: a 429 body has no ``code`` and message content is limited to 2000, not 4000.

Validation uses jsonschema (OAS 3.1 schemas are JSON Schema 2020-12) with the spec as the
``$ref`` registry, over traffic captured from real HTTP exchanges with the sandbox.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from connectors.base import Role
from connectors.discord.client import CannotDirectMessage, MissingPermissions
from connectors.discord.sandbox import DiscordSandbox

# Kept in the repository by scripts/refresh-vendored.py.
SPEC_PATH = Path(__file__).resolve().parents[2] / "data" / "discord-openapi.json"
SPEC = json.loads(SPEC_PATH.read_text(encoding="utf-8"))
REGISTRY = Registry().with_resource("spec.json", Resource.from_contents(SPEC, default_specification=DRAFT202012))
TEMPLATES = [(re.compile("^" + re.sub(r"\{\w+\}", "[^/]+", p) + "$"), p) for p in SPEC["paths"]]


def _schema(ref_or_schema: dict[str, Any]) -> Draft202012Validator:
    wrapped = (
        {"$ref": "spec.json" + ref_or_schema["$ref"]}
        if "$ref" in ref_or_schema
        else {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": "inline.json",
            "allOf": [json.loads(json.dumps(ref_or_schema).replace('"$ref": "#', '"$ref": "spec.json#'))],
        }
    )
    return Draft202012Validator(wrapped, registry=REGISTRY)


def _template(path: str) -> str | None:
    matches = [t for rx, t in TEMPLATES if rx.match(path)]
    return min(matches, key=lambda t: t.count("{")) if matches else None


def response_validator(method: str, template: str, status: int) -> Draft202012Validator | None:
    responses = SPEC["paths"][template][method.lower()]["responses"]
    entry = responses.get(str(status)) or responses.get(f"{str(status)[0]}XX")
    if entry is None:
        raise AssertionError(f"{method} {template} has no {status} response in the spec")
    if "$ref" in entry:
        entry = SPEC["components"]["responses"][entry["$ref"].rsplit("/", 1)[1]]
    content = (entry.get("content") or {}).get("application/json")
    return None if content is None else _schema(content["schema"])


def request_validator(method: str, template: str) -> Draft202012Validator | None:
    body = SPEC["paths"][template][method.lower()].get("requestBody")
    if not body:
        return None
    return _schema(body["content"]["application/json"]["schema"])


@pytest.fixture
def traffic(serve: Any) -> Any:
    """A sandbox and a connector whose every exchange is recorded (over real HTTP)."""
    box = serve(DiscordSandbox(time_scale=0.01))
    exchanges: list[tuple[str, str, bytes, int, bytes]] = []

    def record(response: httpx.Response) -> None:
        response.read()
        req = response.request
        exchanges.append((req.method, req.url.path, req.content, response.status_code, response.content))

    transport = httpx.HTTPTransport()
    connector = box.connect(transport=transport)
    connector.client._http.event_hooks["response"].append(record)
    return box, connector, exchanges


def test_sandbox_answers_and_connector_requests_match_the_spec(traffic: Any) -> None:
    box, c, exchanges = traffic
    cleo = c.find_user("cleo_marsh")
    c.get_member(cleo.id)
    c.list_members()
    c.guild_roles()
    c.activity(cleo)
    c.grant(cleo, Role.moderator(), reason="spec check")
    c.revoke(cleo, Role.moderator(), reason="spec check")
    with pytest.raises(MissingPermissions):
        c.grant(cleo, Role.group("owners"), reason="spec check")
    ref = c.post(channel="wg-private", title="Spec check", text="Hello.", key="spec")
    c.reply(thread_id=ref.thread_id, text="Reply.")
    c.post(channel="wg-private", title="Spec check", text="Hello.", key="spec")  # 160004 on the thread
    with pytest.raises(CannotDirectMessage):
        c.direct_message(recipients=["dario_fenwick", "esme_voss"], title="Note", text="Private note.")
    c.private_thread(channel="wg-private", name="Private", members=[cleo], text="Inside.")
    ballot = c.open_ballot(channel="wg-private", question="Adopt?", options=["Yes", "No"])
    c.close_ballot(ballot)
    start = datetime.now(UTC) + timedelta(days=3)
    c.schedule_event(title="Spec call", starts_at=start, ends_at=start + timedelta(hours=1), location="Online")
    c.register_commands()
    c.register_commands(scope="global")
    c.keep_onboarding_prompt(title="Guides", options=[("Asking", "https://example.org/asking")], channel="general")
    box.faults(search_not_indexed=1)
    box.sandbox.settings.search_index_retry_after = 0
    c.message_count(cleo.id)

    checked = set()
    for method, path, request_body, status, body in exchanges:
        template = _template(path.removeprefix("/api/v10"))
        assert template is not None, path
        if request_body and (validator := request_validator(method, template)) is not None:
            errors = [e.message for e in validator.iter_errors(json.loads(request_body))]
            assert not errors, (method, template, errors)
        validator = response_validator(method, template, status)
        if validator is not None and body:
            errors = [f"{list(e.absolute_path)}: {e.message}"[:300] for e in validator.iter_errors(json.loads(body))]
            assert not errors, (method, template, status, errors[:3])
        checked.add((method, template, status))
    expected = {
        ("GET", "/guilds/{guild_id}/members/{user_id}", 200),
        ("GET", "/guilds/{guild_id}/members", 200),
        ("GET", "/guilds/{guild_id}/members/search", 200),
        ("GET", "/guilds/{guild_id}/roles", 200),
        ("GET", "/guilds/{guild_id}/messages/search", 200),
        ("GET", "/guilds/{guild_id}/messages/search", 202),
        ("PUT", "/guilds/{guild_id}/members/{user_id}/roles/{role_id}", 204),
        ("PUT", "/guilds/{guild_id}/members/{user_id}/roles/{role_id}", 403),
        ("DELETE", "/guilds/{guild_id}/members/{user_id}/roles/{role_id}", 204),
        ("POST", "/channels/{channel_id}/messages", 200),
        ("POST", "/channels/{channel_id}/messages", 403),
        ("POST", "/channels/{channel_id}/messages/{message_id}/threads", 201),
        ("POST", "/channels/{channel_id}/messages/{message_id}/threads", 400),
        ("POST", "/channels/{channel_id}/threads", 201),
        ("POST", "/users/@me/channels", 200),
        ("PATCH", "/channels/{channel_id}/messages/{message_id}", 200),
        ("GET", "/guilds/{guild_id}/scheduled-events", 200),
        ("POST", "/guilds/{guild_id}/scheduled-events", 200),
        ("PUT", "/applications/{application_id}/guilds/{guild_id}/commands", 200),
        ("PUT", "/applications/{application_id}/commands", 200),
        ("GET", "/guilds/{guild_id}/channels", 200),
        ("GET", "/guilds/{guild_id}/onboarding", 200),
        ("PUT", "/guilds/{guild_id}/onboarding", 200),
    }
    assert expected <= checked, expected - checked


def test_429_bodies_follow_the_docs_not_the_spec(discord: Any) -> None:
    discord.faults(storm={"count": 1, "retry_after": 0.05})
    response = httpx.get(
        f"{discord.url}/api/v10/guilds/{discord.sandbox.seed.guild_id}/roles",
        headers=discord.sandbox.client_info(discord.url)["headers"],
    )
    assert response.status_code == 429
    body = response.json()
    assert isinstance(body["retry_after"], float) and body["global"] is False and "code" not in body
    assert response.headers["X-RateLimit-Scope"] == "user" and "X-RateLimit-Bucket" in response.headers
    validator = response_validator("GET", "/guilds/{guild_id}/roles", 429)
    assert [e.message for e in validator.iter_errors(body)] == ["'code' is a required property"]
    assert not list(validator.iter_errors({**body, "code": 0}))  # the only difference


def test_message_content_limit_is_the_docs_2000_not_the_spec_4000(discord: Any) -> None:
    headers = discord.sandbox.client_info(discord.url)["headers"]
    channel = discord.sandbox.channel_id("general")
    response = httpx.post(
        f"{discord.url}/api/v10/channels/{channel}/messages", headers=headers, json={"content": "x" * 2001}
    )
    assert response.status_code == 400 and response.json()["code"] == 50035
    assert "2000" in json.dumps(response.json()["errors"])
    assert not list(request_validator("POST", "/channels/{channel_id}/messages").iter_errors({"content": "x" * 2001}))
