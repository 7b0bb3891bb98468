"""Synapse's appservice push reaching the gateway through the plugin's hook: a second real
Synapse whose registration points at a gateway served on loopback, with a migrated ledger."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy import select
from starlette.responses import Response
from typer.testing import CliRunner

from charterflow.cli import app
from charterflow.inspector.pages import place_links
from charterflow_matrix.client import q
from charterflow_matrix.doctor import check
from charterflow_matrix.homeserver import APPSERVICE_PATH, Homeserver, free_port
from charterflow_matrix.hook import appservice_router
from charterflow_matrix.inbound import AppserviceVerifier
from charterflow_matrix.sandbox import MatrixSandbox
from gateway.app import create_app
from gateway.dispatch import StoreOnlyDispatcher
from gateway.settings import GatewaySettings
from ledger.db import Ledger
from ledger.migrate import upgrade
from ledger.models import InboxEvent
from tests.support.net import LoopbackServer

TXN = APPSERVICE_PATH + "/_matrix/app/v1/transactions/"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    workdir: Path = tmp_path_factory.mktemp("appservice")
    port = free_port()
    server = Homeserver(workdir / "synapse", appservice_url=f"http://127.0.0.1:{port}{APPSERVICE_PATH}")
    creds = server.start()
    ledger = Ledger(f"sqlite:///{workdir / 'ledger.db'}")
    upgrade(ledger)
    with pytest.MonkeyPatch.context() as env:
        for name, value in {
            "HOMESERVER_URL": creds.base_url,
            "SERVER_NAME": creds.server_name,
            "ACCESS_TOKEN": creds.bot_token,
            "HS_TOKEN": creds.hs_token,
        }.items():
            env.setenv(f"CHARTERFLOW_MATRIX_{name}", value)
        cap = 256 * 1024
        settings = GatewaySettings.model_construct(
            **{**GatewaySettings().model_dump(), "dispatch": False, "max_body_bytes": cap}
        )
        app = create_app(settings=settings, ledger=ledger, dispatcher=StoreOnlyDispatcher())
        with LoopbackServer(app, port=port, lifespan="on", start_timeout=20) as gateway:
            community = MatrixSandbox(homeserver=server)
            yield {
                "server": server,
                "creds": creds,
                "ledger": ledger,
                "gateway": gateway.url,
                "community": community,
                "max_body_bytes": cap,
            }
    ledger.dispose()
    server.stop()


def rows(ledger: Ledger) -> list[InboxEvent]:
    with ledger.read() as session:
        return list(session.scalars(select(InboxEvent).where(InboxEvent.source == "matrix").order_by(InboxEvent.id)))


def push(
    world: dict[str, Any], txn: str, events: list[dict[str, Any]] | bytes, *, token: str | None = None, **headers: str
) -> httpx.Response:
    body = events if isinstance(events, bytes) else json.dumps({"events": events}).encode()
    auth = {} if token == "" else {"Authorization": f"Bearer {token or world['creds'].hs_token}"}
    return httpx.put(
        world["gateway"] + TXN + txn,
        content=body,
        timeout=30,
        headers={"Content-Type": "application/json", **auth, **headers},
    )


def event(n: int, body: str = "!idea a quiet room for newcomers") -> dict[str, Any]:
    return {
        "type": "m.room.message",
        "event_id": f"$test-event-{n}",
        "room_id": "!room:localhost",
        "sender": "@cleo_marsh:localhost",
        "origin_server_ts": 1_700_000_000_000 + n,
        "content": {"msgtype": "m.text", "body": body},
    }


def test_a_command_sent_in_a_room_is_pushed_by_synapse_and_stored(world: dict[str, Any]) -> None:
    community = world["community"]
    base = world["creds"].base_url
    with community.as_member(base, "avery_quill") as avery:
        sent = avery.put(
            f"/_matrix/client/v3/rooms/{q(community.room('general'))}/send/m.room.message/apply-1",
            json={"msgtype": "m.text", "body": "!apply I run the Tuesday help desk"},
        ).json()["event_id"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = [r for r in rows(world["ledger"]) if r.dedupe_key.endswith(sent)]
        if found:
            break
        time.sleep(0.5)
    assert found, "Synapse did not push the command to the gateway"
    assert found[0].kind == "apply" and found[0].dedupe_key == f"matrix:localhost:event:{sent}"
    assert found[0].payload["attributes"]["args"] == "I run the Tuesday help desk"
    # The bot's own messages are pushed too, and not stored.
    assert not any(r.payload.get("actor") == "@charterflow:localhost" for r in rows(world["ledger"]))


def test_a_room_the_bot_is_not_in_is_never_pushed(world: dict[str, Any]) -> None:
    # The registration's namespace is the bot: Synapse pushes the rooms it is joined to only
    # (synapse/appservice/__init__.py, _matches_user_in_member_list), never members' own rooms.
    community, base = world["community"], world["creds"].base_url
    with community.as_member(base, "cleo_marsh") as cleo:
        theirs = cleo.post("/_matrix/client/v3/createRoom", json={"preset": "private_chat", "name": "Just us"}).json()[
            "room_id"
        ]
        private = cleo.put(
            f"/_matrix/client/v3/rooms/{q(theirs)}/send/m.room.message/private-1",
            json={"msgtype": "m.text", "body": "!idea between the two of us"},
        ).json()["event_id"]
        public = cleo.put(
            f"/_matrix/client/v3/rooms/{q(community.room('general'))}/send/m.room.message/after-private-1",
            json={"msgtype": "m.text", "body": "!idea in the open"},
        ).json()["event_id"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(r.dedupe_key.endswith(public) for r in rows(world["ledger"])):
        time.sleep(0.5)
    stored = rows(world["ledger"])
    # Synapse pushes in stream order: once the later event is here, the earlier was passed over.
    assert any(r.dedupe_key.endswith(public) for r in stored), "Synapse did not push the room's message"
    assert not any(r.dedupe_key.endswith(private) or theirs in json.dumps(r.payload) for r in stored)


def test_synapse_pings_the_registered_appservice(world: dict[str, Any]) -> None:
    creds = world["creds"]
    answer = httpx.post(
        f"{creds.base_url}/_matrix/client/v1/appservice/charterflow/ping",
        json={},
        headers={"Authorization": f"Bearer {creds.as_token}"},
        timeout=30,
    )
    assert answer.status_code == 200 and "duration_ms" in answer.json()


@pytest.mark.parametrize(("token", "status"), [("", 401), ("wrong-hs-token-0123456789", 403)])
def test_a_push_without_the_right_token_is_refused_and_not_stored(
    world: dict[str, Any], token: str, status: int
) -> None:
    before = len(rows(world["ledger"]))
    answer = push(world, f"bad-{status}", [event(900 + status)], token=token)
    assert answer.status_code == status
    assert answer.json()["errcode"] == ("M_UNAUTHORIZED" if status == 401 else "M_FORBIDDEN")
    assert "wrong-hs-token" not in answer.text and world["creds"].hs_token not in answer.text
    assert len(rows(world["ledger"])) == before


def test_a_replayed_transaction_and_a_repeated_event_are_stored_once(world: dict[str, Any]) -> None:
    before = len(rows(world["ledger"]))
    assert push(world, "replay-1", [event(1), event(2, "just chatting")]).json() == {}
    assert push(world, "replay-1", [event(1), event(2, "just chatting")]).status_code == 200
    assert push(world, "replay-2", [event(2, "just chatting"), event(3, "!frobnicate now")]).status_code == 200
    new = rows(world["ledger"])[before:]
    assert [(r.kind, r.dedupe_key) for r in new] == [
        ("idea", "matrix:localhost:event:$test-event-1"),
        ("message", "matrix:localhost:event:$test-event-2"),
        ("command", "matrix:localhost:event:$test-event-3"),
    ]


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b'{"events": {"a": 1}}',
        b"[1, 2]",
        json.dumps({"events": [event(50), {"type": "m.room.message"}]}).encode(),
        "\udcff".encode("utf-8", "surrogatepass"),
    ],
)
def test_a_malformed_transaction_is_kept_and_acknowledged(world: dict[str, Any], body: bytes) -> None:
    """Synapse resends a transaction it was refused, with backoff, forever, and sends nothing
    after it (synapse/appservice/scheduler.py, ``_Recoverer``): a 400 would stall every later
    event. What is not an event is kept once as ``malformed``; the events beside it are stored."""
    before = len(rows(world["ledger"]))
    txn = f"malformed-{hashlib.sha256(body).hexdigest()[:8]}"
    answer = push(world, txn, body)
    assert answer.status_code == 200 and answer.json() == {}
    new = rows(world["ledger"])[before:]
    kinds = sorted(r.kind for r in new)
    assert kinds == (["idea", "malformed"] if b"test-event-50" in body else ["malformed"])
    assert push(world, txn, body).status_code == 200  # Synapse's resend
    assert len(rows(world["ledger"])) == before + len(new)


def test_a_transaction_larger_than_the_gateways_cap_is_taken(world: dict[str, Any]) -> None:
    """Synapse batches up to 100 events of up to 64 KiB each: five long messages already pass the
    256 KiB the gateway allows the other hooks here, and a 413 would be resent forever."""
    before = len(rows(world["ledger"]))
    events = [event(70 + n, "x" * (60 * 1024)) for n in range(5)]
    assert len(json.dumps({"events": events})) > world["max_body_bytes"]
    answer = push(world, "big", events)
    assert answer.status_code == 200
    assert [r.kind for r in rows(world["ledger"])[before:]] == ["message"] * 5


def test_the_user_and_room_queries_need_the_token(world: dict[str, Any]) -> None:
    url = world["gateway"] + APPSERVICE_PATH + "/_matrix/app/v1/users/" + q("@someone:localhost")
    assert httpx.get(url, timeout=10).status_code == 401
    found = httpx.get(url, headers={"Authorization": f"Bearer {world['creds'].hs_token}"}, timeout=10)
    assert found.status_code == 404 and found.json()["errcode"] == "M_NOT_FOUND"


def test_doctor_checks_the_homeserver_the_bot_the_rooms_and_the_appservice(world: dict[str, Any]) -> None:
    community, creds = world["community"], world["creds"]
    checks = check(community.settings(as_token=SecretStr(creds.as_token)))
    assert [(c.name, c.ok) for c in checks] == [
        ("homeserver", True),
        ("token", True),
        ("ratelimit", True),
        ("rooms", True),
        ("power", True),
        ("appservice", True),
    ]
    assert not any(creds.bot_token in c.line() or creds.as_token in c.line() for c in checks)
    wrong = check(community.settings(as_token=SecretStr("not-the-as-token-0123")))
    assert wrong[-1].name == "appservice" and not wrong[-1].ok
    missing = check(community.settings(wg_room="no-such-room"))
    assert [(c.name, c.ok) for c in missing][3] == ("rooms", False)


def test_pushed_events_are_routed_by_the_plugins_table_with_neutral_attributes(world: dict[str, Any]) -> None:
    """``inbound.ROUTES`` (entry point ``charterflow.inbound_routes``) routes Matrix events to the
    same processes as the other platforms'; the gateway stores each with its route."""
    poll = {
        "type": "m.poll.response",
        "event_id": "$route-poll",
        "room_id": "!wg:localhost",
        "sender": "@cleo_marsh:localhost",
        "origin_server_ts": 1_700_000_100_000,
        "content": {"m.relates_to": {"rel_type": "m.reference", "event_id": "$start"}, "m.selections": ["a2"]},
    }
    spoilt = {
        **poll,
        "event_id": "$route-spoilt",
        "content": {"m.relates_to": {"event_id": "$start"}, "m.selections": []},
    }
    # The common room's: a message, its edit (m.replace) and its redaction (R-COMMS).
    edit = {
        **poll,
        "type": "m.room.message",
        "event_id": "$route-edit",
        "room_id": "!room:localhost",
        "content": {
            "msgtype": "m.text",
            "body": "* hello again",
            "m.new_content": {"body": "hello again"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": "$test-event-84"},
        },
    }
    redaction = {
        **edit,
        "type": "m.room.redaction",
        "event_id": "$route-redaction",
        "content": {"redacts": "$test-event-84"},
    }
    events = [
        event(80, "!apply I help on Tuesdays | two years of moderation"),
        event(81, "!link discord cleo_marsh"),
        event(82, "!link 0123456789"),
        event(83, "!optin"),
        event(84, "hello there"),
        poll,
        spoilt,
        edit,
        redaction,
    ]
    before = len(rows(world["ledger"]))
    assert push(world, "routes-1", events).status_code == 200
    new = {r.dedupe_key.rsplit(":", 1)[-1]: r for r in rows(world["ledger"])[before:]}
    assert {k: r.route for k, r in new.items()} == {
        "$test-event-80": "intake",
        "$test-event-81": "link",
        "$test-event-82": "link",
        "$test-event-83": "renewal-opt-in",
        "$test-event-84": "commons",
        "$route-poll": "vote",
        "$route-spoilt": "vote",
        "$route-edit": "commons",
        "$route-redaction": "commons",
    }
    attrs = {k: r.payload["attributes"] for k, r in new.items()}
    assert attrs["$test-event-80"]["field.why"] == "I help on Tuesdays"
    assert attrs["$test-event-80"]["field.experience"] == "two years of moderation"
    assert (attrs["$test-event-80"]["user_id"], attrs["$test-event-80"]["username"]) == (
        "@cleo_marsh:localhost",
        "cleo_marsh",
    )
    assert (attrs["$test-event-81"]["link.platform"], attrs["$test-event-81"]["link.username"]) == (
        "discord",
        "cleo_marsh",
    )
    assert attrs["$test-event-82"]["link.code"] == "0123456789"
    assert attrs["$test-event-80"]["reply_to"] == "!room:localhost/$test-event-80"
    assert (attrs["$route-poll"]["ballot_id"], attrs["$route-poll"]["option_id"]) == ("!wg:localhost/$start", "a2")
    assert attrs["$route-spoilt"]["option_id"] == ""  # kept; the vote handler refuses it
    assert {k: v for k, v in attrs["$test-event-84"].items() if k.startswith("room.")} == {
        "room.key": "!room:localhost",
        "room.change": "new",
        "room.message_id": "$test-event-84",
        "room.text": "hello there",
        "room.url": "https://matrix.to/#/%21room%3Alocalhost/%24test-event-84",
    }
    assert (
        attrs["$route-edit"]["room.change"],
        attrs["$route-edit"]["room.message_id"],
        attrs["$route-edit"]["room.text"],
    ) == ("edit", "$test-event-84", "hello again")
    assert (attrs["$route-redaction"]["room.change"], attrs["$route-redaction"]["room.message_id"]) == (
        "delete",
        "$test-event-84",
    )


def test_charterflow_doctor_runs_the_plugins_checks(
    world: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    community, creds = world["community"], world["creds"]
    monkeypatch.chdir(tmp_path)  # no .env
    env = {
        "CHARTERFLOW_MATRIX_AS_TOKEN": creds.as_token,
        "CHARTERFLOW_MATRIX_ALIAS_PREFIX": community.prefix,
        "CHARTERFLOW_USE_UP": "0",
    }
    result = CliRunner().invoke(app, ["doctor", "--platform", "matrix"], env=env)
    assert result.exit_code == 0, result.output
    lines = [ln for ln in result.output.splitlines() if ln[6:].startswith("matrix")]
    names = ["homeserver", "token", "ratelimit", "rooms", "power", "appservice"]
    assert [ln.split()[2].rstrip(":") for ln in lines] == names
    assert all(ln.startswith("ok") for ln in lines)
    assert creds.bot_token not in result.output and creds.as_token not in result.output
    # Misconfigured: one FAIL line naming what to fix, exit 1.
    wrong = CliRunner().invoke(
        app, ["doctor", "--platform", "matrix"], env={**env, "CHARTERFLOW_MATRIX_WG_ROOM": "no-such-room"}
    )
    assert wrong.exit_code == 1 and "FAIL  matrix    rooms:" in wrong.output


def test_the_inspector_links_the_matrix_space_and_rooms(world: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHARTERFLOW_MATRIX_ALIAS_PREFIX", world["community"].prefix)
    [(name, links)] = place_links()
    prefix = world["community"].prefix
    assert name == "matrix"
    assert [label for label, _ in links] == [
        f"#{prefix}{room}:localhost" for room in ("community", "working-group", "moderators")
    ]
    assert all(url.startswith("https://matrix.to/#/%23") for _, url in links)


def test_an_event_the_ledger_cannot_take_is_kept_as_malformed_and_the_queue_moves_on() -> None:
    """The gateway answers 400 for an event its ledger can never store (a DataError). Synapse
    would resend that transaction forever, and nothing after it: the hook keeps the event's
    text as ``malformed`` instead, answers ``{}``, and still lets a ledger outage (503) through."""
    kept: list[tuple[str, str]] = []
    refuse = {"$unstorable": 400, "$unstorable-twice": 400, "$outage": 503}

    async def accept(event: Any, raw: bytes | None) -> Any:
        status = refuse.get(event.attributes.get("event_id", ""))
        if event.kind == "malformed" and "unstorable-twice" in event.data["malformed"]:
            status = 400
        if status:
            return Response(status_code=status)
        kept.append((event.kind, event.dedupe_key))
        return ("route", len(kept), True)

    verifier = AppserviceVerifier(hs_token=SecretStr("hs-secret"), server_name="localhost")
    app = FastAPI()
    app.include_router(appservice_router(accept=accept, settings=GatewaySettings(), verifier=verifier))
    auth = {"Authorization": "Bearer hs-secret"}
    with LoopbackServer(app) as gateway:

        def send(txn: str, *ids: str) -> httpx.Response:
            events = [{**event(n), "event_id": eid} for n, eid in enumerate(ids)]
            return httpx.put(gateway.url + TXN + txn, json={"events": events}, headers=auth, timeout=10)

        answer = send("t1", "$unstorable", "$after-it", "$unstorable-twice", "$last")
        assert answer.status_code == 200 and answer.json() == {}
        assert [kind for kind, _ in kept] == ["malformed", "idea", "idea"]
        assert kept[1][1].endswith("$after-it") and kept[2][1].endswith("$last")
        assert send("t2", "$outage").status_code == 503  # the ledger is out: Synapse resends
