"""The three hooks: verification first, storage once per dedupe key, routing, answers."""

from __future__ import annotations

import json
import time

import pytest
from starlette.testclient import TestClient

from flows import inbox
from flows.inbox import Route, RoutingConfig, route_for
from gateway.app import create_app
from gateway.dispatch import StoreOnlyDispatcher
from ledger import repo
from ledger.db import Ledger
from tests.support.gateway import (
    IDEAS_CATEGORY,
    discord_command,
    discord_request,
    discourse_request,
    gateway_settings,
    inbox_rows,
    slack_board_click,
    slack_request,
)


def post(client, path, headers, body):
    return client.post(path, content=body, headers=headers)


def test_discourse_webhook_is_stored_once_and_routed_to_intake(client, ledger):
    headers, body = discourse_request(41)
    first = post(client, "/hooks/discourse", headers, body)
    again = post(client, "/hooks/discourse", headers, body)  # a redelivery
    assert first.status_code == again.status_code == 200
    assert first.json()["route"] == Route.INTAKE and again.json()["duplicate"] is True
    rows = inbox_rows(ledger)
    assert len(rows) == 1 and rows[0].dedupe_key == "discourse:forum.example.org:41"
    assert rows[0].payload["data"]["topic"]["title"].startswith("I would like")


def test_a_gateway_that_knows_its_forum_refuses_a_delivery_naming_another(ledger):
    """X-Discourse-Instance is not signed: a replayed body naming another site must not get a
    new dedupe key (issue 19), so a gateway given CHARTERFLOW_DISCOURSE_URL refuses it."""
    settings = gateway_settings(discourse_url="https://Forum.example.org/")
    app = create_app(settings=settings, ledger=ledger, dispatcher=StoreOnlyDispatcher())
    with TestClient(app, base_url="http://testserver") as client:
        headers, body = discourse_request(41)
        assert post(client, "/hooks/discourse", headers, body).status_code == 200
        forged = {**headers, "X-Discourse-Instance": "https://evil.example"}
        answer = post(client, "/hooks/discourse", forged, body)
        assert answer.status_code == 400
        rows = inbox_rows(ledger)
        assert [(r.dedupe_key, r.payload["instance"]) for r in rows] == [
            ("discourse:forum.example.org:41", "forum.example.org")
        ]


def test_discourse_idea_category_and_unknown_events_are_kept(client, ledger):
    headers, body = discourse_request(1, category=IDEAS_CATEGORY)
    assert post(client, "/hooks/discourse", headers, body).json()["route"] == Route.IDEA
    headers, body = discourse_request(2, event="user_updated", body=b'{"user": {"id": 3}}')
    answer = post(client, "/hooks/discourse", headers, body)
    assert answer.status_code == 200 and answer.json()["route"] == Route.UNKNOWN
    assert [r.route for r in inbox_rows(ledger)] == [Route.IDEA, Route.UNKNOWN]


def _post_created(event_id: int, username: str) -> tuple[dict[str, str], bytes]:
    payload = {
        "post": {
            "id": 500 + event_id,
            "topic_id": 1001,
            "post_number": 2,
            "category_id": int(IDEAS_CATEGORY),
            "username": username,
            "raw": "Filed as idea #4.",
        }
    }
    return discourse_request(event_id, event="post_created", body=json.dumps(payload).encode())


def test_the_bots_own_forum_posts_are_recognised_and_start_no_run(ledger):
    app = create_app(
        settings=gateway_settings(discourse_api_username="WG-Bot"), ledger=ledger, dispatcher=StoreOnlyDispatcher()
    )
    with TestClient(app, base_url="http://testserver") as client:
        answers = [
            post(client, "/hooks/discourse", *_post_created(n, user)).json()
            for n, user in ((1, "wg-bot"), (2, "system"), (3, "quill_ash"))
        ]
    assert [a["route"] for a in answers] == [Route.OWN, Route.OWN, Route.UNKNOWN]
    rows = inbox_rows(ledger)
    assert [(r.processed_at is not None, r.result_ref) for r in rows] == [
        (True, "discourse:own-post"),
        (True, "discourse:own-post"),
        (False, None),
    ]
    # Only the member's post is left for the dispatcher (an inbox-unknown-<id> run).
    with ledger.read() as s:
        assert repo.inbox_dispatchable(s, handled_routes=inbox.HANDLERS.keys()) == [rows[2].id]


@pytest.mark.parametrize(
    "mutate, status",
    [
        (lambda h, b: ({k: v for k, v in h.items() if k != "X-Discourse-Event-Signature"}, b), 401),
        (lambda h, b: ({**h, "X-Discourse-Event-Signature": "sha256=" + "0" * 64}, b), 401),
        (lambda h, b: ({**h, "X-Discourse-Event-Signature": "sha256=zz"}, b), 401),
        (lambda h, b: (h, b + b" "), 401),  # body changed after signing
        (lambda h, b: ({**h, "Content-Type": "text/plain"}, b), 415),
    ],
    ids=["missing-signature", "wrong-signature", "garbage-signature", "tampered-body", "text-plain"],
)
def test_discourse_refusals_have_no_side_effect(client, ledger, mutate, status):
    headers, body = mutate(*discourse_request(5))
    assert post(client, "/hooks/discourse", headers, body).status_code == status
    assert inbox_rows(ledger) == []


def test_a_discourse_webhook_set_to_form_content_type_still_sends_json_and_is_stored(client, ledger):
    # Discourse labels the body application/x-www-form-urlencoded for content type 2, but builds
    # and signs the same JSON (app/jobs/regular/emit_web_hook_event.rb, build_webhook_body).
    headers, body = discourse_request(5, category=IDEAS_CATEGORY)
    answer = post(client, "/hooks/discourse", {**headers, "Content-Type": "application/x-www-form-urlencoded"}, body)
    assert answer.status_code == 200 and answer.json()["route"] == Route.IDEA
    assert [r.route for r in inbox_rows(ledger)] == [Route.IDEA]


def test_malformed_json_is_400_after_the_signature(client, ledger):
    headers, body = discourse_request(6, body=b'{"topic": ')
    assert post(client, "/hooks/discourse", headers, body).status_code == 400
    headers, body = discourse_request(7, body=b"[1, 2]")
    assert post(client, "/hooks/discourse", headers, body).status_code == 400
    assert inbox_rows(ledger) == []


def test_bodies_over_one_mebibyte_are_refused_while_streaming(client, ledger):
    big = b'{"x": "' + b"a" * (1 << 20) + b'"}'
    headers, _ = discourse_request(8, body=big)
    assert post(client, "/hooks/discourse", headers, big).status_code == 413
    sent = []

    def chunks():  # no Content-Length: chunked; refused before everything was sent
        for _ in range(64):
            sent.append(1)
            yield b"a" * 65536

    headers.pop("Content-Length", None)
    answer = client.post("/hooks/discourse", content=chunks(), headers=headers)
    assert answer.status_code == 413
    assert inbox_rows(ledger) == []


def test_discord_ping_apply_modal_and_deferred_commands(client, ledger):
    headers, body = discord_request({"type": 1, "id": "1", "application_id": "1100000000000000001"})
    assert post(client, "/hooks/discord", headers, body).json() == {"type": 1}
    headers, body = discord_request(discord_command("apply"))
    modal = post(client, "/hooks/discord", headers, body).json()
    assert modal["type"] == 9 and modal["data"]["custom_id"] == "cf:apply"
    for n, name in enumerate(("idea", "optin", "leave"), start=2):
        headers, body = discord_request(discord_command(name, interaction_id=f"120000000000000000{n}"))
        answer = post(client, "/hooks/discord", headers, body).json()
        assert answer["type"] == 5 and answer["data"]["flags"] == 64
    submit = {
        **discord_command("x", interaction_id="1200000000000000009"),
        "type": 5,
        "data": {
            "custom_id": "cf:apply",
            "components": [{"type": 1, "components": [{"type": 4, "custom_id": "why", "value": "I moderate a lot"}]}],
        },
    }
    headers, body = discord_request(submit)
    assert post(client, "/hooks/discord", headers, body).json()["type"] == 5
    routes = [(r.kind, r.route, r.processed_at is not None) for r in inbox_rows(ledger)]
    assert routes == [
        ("apply", Route.APPLY_MODAL, True),
        ("idea", Route.IDEA, False),
        ("optin", Route.OPT_IN, False),
        ("leave", Route.LEAVE, False),
        ("apply_submitted", Route.INTAKE, False),
    ]


def test_discord_buttons_get_a_private_thinking_answer(client, ledger):
    """A Confirm (``cfc:``) or Opt-in (``cfo:``) button: "thinking…" only the presser sees
    (type 5, ephemeral), which the handler's answer then replaces; never the "not known" text."""
    for n, custom_id in enumerate(("cfc:invented-token", "cfo:invented-token"), start=3):
        press = {
            **discord_command("x", interaction_id=f"121000000000000000{n}"),
            "type": 3,
            "message": {"id": "1300000000000000001", "channel_id": "1000000000000000002"},
            "data": {"custom_id": custom_id, "component_type": 2},
        }
        headers, body = discord_request(press)
        answer = post(client, "/hooks/discord", headers, body).json()
        assert answer == {"type": 5, "data": {"flags": 64}}, answer
    assert [(r.kind, r.route) for r in inbox_rows(ledger)] == [
        ("component", Route.CONFIRM),
        ("component", Route.OPT_IN),
    ]


def test_discord_bad_and_stale_signatures_are_401(client, ledger):
    headers, body = discord_request(discord_command("idea"))
    assert post(client, "/hooks/discord", {**headers, "X-Signature-Ed25519": "00" * 64}, body).status_code == 401
    assert post(client, "/hooks/discord", {**headers, "X-Signature-Ed25519": "nothex"}, body).status_code == 401
    headers, body = discord_request(discord_command("idea"), timestamp=int(time.time()) - 3600)
    assert post(client, "/hooks/discord", headers, body).status_code == 401
    assert inbox_rows(ledger) == []


def test_slack_board_button_is_routed_and_acknowledged_empty(client, ledger):
    headers, body = slack_request(slack_board_click())
    answer = post(client, "/hooks/slack", headers, body)
    assert answer.status_code == 200 and answer.content == b""
    assert post(client, "/hooks/slack", headers, body).status_code == 200  # a retry
    rows = inbox_rows(ledger)
    assert [(r.kind, r.route) for r in rows] == [("block_actions", Route.BOARD_DECISION)]


def test_slack_stale_timestamp_and_bad_signature_are_401(client, ledger):
    headers, body = slack_request(slack_board_click(), timestamp=int(time.time()) - 301)
    assert post(client, "/hooks/slack", headers, body).status_code == 401
    headers, body = slack_request(slack_board_click(), secret="another-secret")
    assert post(client, "/hooks/slack", headers, body).status_code == 401
    headers, body = slack_request(slack_board_click())
    assert post(client, "/hooks/slack", {**headers, "Content-Type": "text/plain"}, body).status_code == 415
    assert inbox_rows(ledger) == []


def test_slack_url_verification_answers_the_challenge(client, ledger):
    body = json.dumps({"type": "url_verification", "challenge": "c-123", "token": "t"}).encode()
    headers, body = slack_request(body, content_type="application/json")
    assert post(client, "/hooks/slack", headers, body).json() == {"challenge": "c-123"}


def test_unconfigured_connector_answers_503_without_side_effect(ledger):
    settings = gateway_settings(discord_public_key=None, slack_signing_secret=None)
    app = create_app(settings=settings, ledger=ledger, dispatcher=StoreOnlyDispatcher())
    with TestClient(app) as client:
        headers, body = discord_request(discord_command("idea"))
        answer = post(client, "/hooks/discord", headers, body)
        assert answer.status_code == 503 and "not configured" in answer.json()["error"]
        headers, body = slack_request(slack_board_click())
        assert post(client, "/hooks/slack", headers, body).status_code == 503
        health = client.get("/healthz").json()
        assert health["connectors"]["discord"].startswith("not configured: CHARTERFLOW_DISCORD_PUBLIC_KEY")
    assert inbox_rows(ledger) == []


def test_ledger_down_means_no_acknowledgement(tmp_path):
    broken = Ledger(f"sqlite:///{tmp_path / 'never-migrated.db'}")
    app = create_app(settings=gateway_settings(), ledger=broken, dispatcher=StoreOnlyDispatcher())
    with TestClient(app) as client:
        headers, body = discourse_request(1)
        answer = post(client, "/hooks/discourse", headers, body)
        assert answer.status_code == 503  # Discourse will redeliver; nothing was acknowledged
        assert client.get("/healthz").status_code == 503


@pytest.mark.parametrize(
    "source, kind, attributes, route",
    [
        ("discourse", "topic_created", {"category_id": "7"}, Route.INTAKE),
        ("discourse", "topic_created", {"category_id": "9"}, Route.IDEA),
        ("discourse", "topic_created", {"category_id": "3"}, Route.UNKNOWN),
        ("discourse", "post_created", {"category_id": "7"}, Route.UNKNOWN),
        ("discord", "apply", {}, Route.APPLY_MODAL),
        ("discord", "apply_submitted", {}, Route.INTAKE),
        ("discord", "idea", {}, Route.IDEA),
        ("discord", "optin", {}, Route.OPT_IN),
        ("discord", "leave", {}, Route.LEAVE),
        ("discord", "ballot_vote", {}, Route.VOTE),
        ("discord", "component", {}, Route.UNKNOWN),
        ("slack", "block_actions", {"action_id": "board_approve"}, Route.BOARD_DECISION),
        ("slack", "block_actions", {"action_id": "other"}, Route.UNKNOWN),
        ("form", "application", {}, Route.INTAKE),
        ("nowhere", "x", {}, Route.UNKNOWN),
    ],
)
def test_routing_table(source, kind, attributes, route):
    config = RoutingConfig(
        discourse_applications_categories=frozenset({"7"}), discourse_ideas_categories=frozenset({"9"})
    )
    assert route_for(source=source, kind=kind, attributes=attributes, config=config) == route


def test_handler_is_idempotent_and_unbuilt_routes_wait(ledger):
    with ledger.transaction() as s:
        ping, _ = repo.inbox_put(s, dedupe_key="k:1", source="discourse", kind="ping", payload={}, route=Route.PING)
        idea, _ = repo.inbox_put(s, dedupe_key="k:2", source="form", kind="idea", payload={}, route="not-built-yet")
    assert inbox.handle_event(ledger, ping.id) == "ping:answered"
    assert inbox.handle_event(ledger, ping.id) == "already-processed"
    assert inbox.handle_event(ledger, idea.id) == inbox.AWAITING_HANDLER
    assert inbox.handle_event(ledger, 999) == "missing"
    calls = []
    inbox.register_handler("not-built-yet", lambda *, ledger, event: calls.append(event.id) or "idea:1")
    try:
        with ledger.read() as s:
            assert repo.inbox_dispatchable(s, handled_routes=inbox.HANDLERS.keys()) == [idea.id]
        assert inbox.handle_event(ledger, idea.id) == "idea:1"
        assert inbox.handle_event(ledger, idea.id) == "already-processed"
        assert calls == [idea.id]
    finally:
        inbox.HANDLERS.pop("not-built-yet")
