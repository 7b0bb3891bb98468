"""Helpers of the plugin's tests (a module of its own: ``conftest`` is not importable by name when
the core's tests run beside these): ``send_as``, ``say_in`` and ``pushed``, a member writes in a room,
and the inbox row Synapse's push stored for it; ``pushing_synapse``, a Synapse pushing to a
gateway, with ``seed``, ``bot_connector`` and ``platforms_with`` for the community in it."""

from __future__ import annotations

import itertools
import secrets
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from charterflow_matrix import payloads
from charterflow_matrix.client import q
from charterflow_matrix.connector import MatrixConnector
from charterflow_matrix.homeserver import APPSERVICE_PATH, Credentials, Homeserver
from charterflow_matrix.sandbox import Users, seed_community
from charterflow_matrix.settings import MatrixSettings
from flows.platforms import Platforms
from ledger.models import InboxEvent
from tests.support.membership import CONFIRM_SECRET, World
from tests.support.net import LoopbackServer

_communities = itertools.count(1)


def send_as(
    users: Any, base_url: str, who: str, room_id: str, content: dict[str, Any], event_type: str = "m.room.message"
) -> str:
    """``who`` sends ``content`` in ``room_id`` with their own token; the event id."""
    with users.client(base_url, who) as client:
        return (
            client.put(
                f"/_matrix/client/v3/rooms/{q(room_id)}/send/{q(event_type)}/{payloads.txn_id(None)}", json=content
            )
            .raise_for_status()
            .json()["event_id"]
        )


def say_in(b: Mapping[str, Any], who: str, room_id: str, body: str, **content: Any) -> str:
    """``who`` writes ``body`` in ``room_id`` (``b`` holds the test's ``users`` and ``creds``); the event id."""
    return send_as(b["users"], b["creds"].base_url, who, room_id, {"msgtype": "m.text", "body": body, **content})


def pushed(world: Any, event_id: str, *, timeout: float = 60) -> Any:
    """The inbox row Synapse's push stored for ``event_id`` (the gateway keys it by event id)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with world.ledger.read() as session:
            row = session.scalars(select(InboxEvent).where(InboxEvent.dedupe_key.endswith(event_id))).first()
            if row is not None:
                session.expunge(row)
                return row
        time.sleep(0.2)
    raise AssertionError(f"Synapse did not push {event_id} within {timeout:g} s")


class Relay:
    """Where the shared Synapse's appservice pushes go: on to the gateway of the test running now
    (``target``). Between tests a push is accepted and dropped, so Synapse never backs off
    because of a gateway that is gone (https://spec.matrix.org/v1.11/application-service-api/#pushing-events)."""

    def __init__(self) -> None:
        self.target: str | None = None
        self.app = Starlette(routes=[Route("/{path:path}", self.forward, methods=["GET", "POST", "PUT"])])

    async def forward(self, request: Request) -> Response:
        target = self.target
        if target is None:
            return JSONResponse({})
        headers = {k: v for k, v in request.headers.items() if k in ("authorization", "content-type")}
        async with httpx.AsyncClient(trust_env=False, timeout=60) as client:
            try:
                answer = await client.request(
                    request.method,
                    target + request.url.path,
                    params=request.query_params,
                    content=await request.body(),
                    headers=headers,
                )
            except httpx.TransportError:
                return JSONResponse({"errcode": "M_UNKNOWN", "error": "gateway unreachable"}, status_code=502)
        return Response(answer.content, status_code=answer.status_code, media_type=answer.headers.get("content-type"))


class PushingHomeserver:
    """A Synapse shared by the tests of one process whose appservice pushes through a ``Relay``
    (started once: a Synapse takes 20 to 60 s to start on a loaded machine)."""

    def __init__(self, workdir: Path) -> None:
        self.relay = Relay()
        self._served = LoopbackServer(self.relay.app)
        self.server = Homeserver(workdir, appservice_url=self._served.url + APPSERVICE_PATH, die_with_parent=True)
        self.credentials: Credentials | None = None

    def __enter__(self) -> PushingHomeserver:
        self._served.__enter__()
        self.credentials = self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()
        self._served.__exit__(*exc)


@dataclass(frozen=True)
class Pushing:
    """A test's community on the shared Synapse: its credentials and the alias prefix of its rooms."""

    base_url: str
    server_name: str
    bot_token: str = field(repr=False)
    hs_token: str = field(repr=False)
    prefix: str


@contextmanager
def pushing_synapse(homeserver: PushingHomeserver, gateway_url: str, monkeypatch: Any) -> Iterator[Pushing]:
    """The shared Synapse pushing to the gateway at ``gateway_url`` while it is open, for a
    community of the test's own (its rooms under a fresh alias prefix), with the
    ``CHARTERFLOW_MATRIX_*`` settings the gateway's hook and the flows read set."""
    creds = homeserver.credentials
    assert creds is not None, "the shared Synapse is not started"
    prefix = f"t{next(_communities)}{secrets.token_hex(3)}-"
    for name, value in {
        "HOMESERVER_URL": creds.base_url,
        "SERVER_NAME": creds.server_name,
        "ACCESS_TOKEN": creds.bot_token,
        "HS_TOKEN": creds.hs_token,
        "ALIAS_PREFIX": prefix,
    }.items():
        monkeypatch.setenv(f"CHARTERFLOW_MATRIX_{name}", value)
    # The bot's DM rooms live in its account data, which outlives a test: each test starts with none.
    httpx.put(
        f"{creds.base_url}/_matrix/client/v3/user/{q(creds.bot_user_id)}/account_data/org.charterflow.dm_rooms",
        json={},
        headers={"Authorization": f"Bearer {creds.bot_token}"},
        timeout=30,
        trust_env=False,
    ).raise_for_status()
    homeserver.relay.target = gateway_url
    try:
        yield Pushing(
            base_url=creds.base_url,
            server_name=creds.server_name,
            bot_token=creds.bot_token,
            hs_token=creds.hs_token,
            prefix=prefix,
        )
    finally:
        homeserver.relay.target = None


def seed(community: Pushing, members: Mapping[str, Any]) -> Users:
    """The space, the rooms and the members (``members``: the seed) of the test's ``community``."""
    return seed_community(
        community.base_url, community.bot_token, community.server_name, prefix=community.prefix, seed=members
    )


def bot_connector(community: Pushing, *, homeserver_url: str | None = None, **options: Any) -> MatrixConnector:
    """The connector as the bot, for the test's ``community``, directly or through
    ``homeserver_url`` (a fault proxy); ``options`` go to the connector (``retry``)."""
    settings = MatrixSettings(
        _env_file=None,
        homeserver_url=homeserver_url or community.base_url,
        server_name=community.server_name,
        access_token=SecretStr(community.bot_token),
        hs_token=SecretStr(community.hs_token),
        alias_prefix=community.prefix,
    )
    return MatrixConnector(settings=settings, **options)


def platforms_with(world: World, matrix: MatrixConnector, **build: Any) -> Platforms:
    """The seeded world's platforms (the Forum and Discord) and ``matrix`` beside them."""
    connectors = {n: world.platforms.space(n).connector for n in world.platforms.names()}
    return Platforms.build(
        charter=world.platforms.charter,
        confirm_secret=CONFIRM_SECRET,
        gateway_url=world.platforms.gateway_url,
        **build,
        **connectors,
        matrix=matrix,
    )
