"""The Matrix "sandbox": no emulator, a real Synapse on loopback with a fresh community in it.

``MatrixSandbox()`` starts the process's shared homeserver on first use (``shared_homeserver``,
stopped at exit), then seeds a community under its own alias prefix (so every sandbox is
independent on one server): the space ``community`` with the rooms ``general``,
``working-group`` and ``moderators``, and the members below, joined. Its ``app`` is the
``FaultProxy`` in front of Synapse, so the core's conformance suite serves and drives it like any
other sandbox.
"""

from __future__ import annotations

import atexit
import itertools
import json
import secrets
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from charterflow_matrix import payloads
from charterflow_matrix.client import q
from charterflow_matrix.connector import MatrixConnector
from charterflow_matrix.homeserver import Homeserver
from charterflow_matrix.proxy import FaultProxy
from charterflow_matrix.settings import MatrixSettings
from connectors.base import Ballot, ConformanceSamples, Role

__all__ = ["DEFAULT_SEED", "MatrixSandbox", "seed_community", "shared_homeserver"]

DEFAULT_SEED: dict[str, Any] = {
    "members": ["avery_quill", "bram_tolliver", "cleo_marsh", "dario_fenwick", "wren_halloway"],
    "rooms": {
        "general": ["avery_quill", "bram_tolliver", "cleo_marsh", "dario_fenwick", "wren_halloway"],
        "working-group": ["cleo_marsh", "dario_fenwick"],
        "moderators": [],
    },
}

_lock = threading.Lock()
_shared: Homeserver | None = None
_counter = itertools.count(1)


def shared_homeserver() -> Homeserver:
    """This process's Synapse (one per pytest-xdist worker), started on first use; its
    appservice URL leads nowhere (a test of the push starts its own, see the plugin's tests)."""
    global _shared
    with _lock:
        if _shared is None or not _shared.alive():
            workdir = Path(tempfile.mkdtemp(prefix="charterflow-synapse-"))
            server = Homeserver(workdir, die_with_parent=True)
            server.start()
            atexit.register(server.stop)
            _shared = server
        return _shared


class Users:
    """Seeded members' tokens (Synapse's admin "login as user" API), cached."""

    def __init__(self, admin: httpx.Client, server_name: str) -> None:
        self.admin, self.server_name = admin, server_name
        self._tokens: dict[str, str] = {}

    def uid(self, name: str) -> str:
        return name if name.startswith("@") else f"@{name}:{self.server_name}"

    def ensure(self, name: str) -> str:
        """Create the user if missing (the admin API's PUT creates or modifies)."""
        uid = self.uid(name)
        if self.admin.get(f"/_synapse/admin/v2/users/{q(uid)}").status_code == 404:
            self.admin.put(
                f"/_synapse/admin/v2/users/{q(uid)}",
                # No password: members act through admin-issued tokens (no bcrypt per user).
                json={"displayname": name.replace("_", " ").title()},
            ).raise_for_status()
        return uid

    def token(self, name: str) -> str:
        uid = self.uid(name)
        if uid not in self._tokens:
            response = self.admin.post(f"/_synapse/admin/v1/users/{q(uid)}/login", json={})
            response.raise_for_status()
            self._tokens[uid] = response.json()["access_token"]
        return self._tokens[uid]

    def login(self, name: str) -> str:
        """A token from a real password login. Synapse treats the admin's "login as" tokens as
        the admin puppeting: rate limited as the admin, and the member is never "last seen"."""
        uid, password = self.uid(name), secrets.token_urlsafe(16)
        self.admin.put(f"/_synapse/admin/v2/users/{q(uid)}", json={"password": password}).raise_for_status()
        response = self.admin.post(
            "/_matrix/client/v3/login",
            headers={"Authorization": ""},
            json={"type": "m.login.password", "identifier": {"type": "m.id.user", "user": uid}, "password": password},
        )
        response.raise_for_status()
        return response.json()["access_token"]

    def client(self, base_url: str, name: str) -> httpx.Client:
        return httpx.Client(
            base_url=base_url, timeout=30, trust_env=False, headers={"Authorization": f"Bearer {self.token(name)}"}
        )


def seed_community(base_url: str, bot_token: str, server_name: str, *, prefix: str, seed: Mapping[str, Any]) -> Users:
    """Create the space, its rooms and the members, joined. The bot creates every room, so in
    room version 12 (Synapse's default) it outranks every power level (MSC4289)."""
    admin = httpx.Client(
        base_url=base_url, timeout=30, trust_env=False, headers={"Authorization": f"Bearer {bot_token}"}
    )
    users = Users(admin, server_name)
    for name in seed.get("members", []):
        users.ensure(name)

    def create(localpart: str, **extra: Any) -> str:
        body = {"room_alias_name": f"{prefix}{localpart}", "name": localpart, "preset": "private_chat", **extra}
        return admin.post("/_matrix/client/v3/createRoom", json=body).raise_for_status().json()["room_id"]

    space = create("community", creation_content={"type": "m.space"})
    for room_name, members in seed.get("rooms", {}).items():
        room = create(room_name)
        admin.put(
            f"/_matrix/client/v3/rooms/{q(space)}/state/m.space.child/{q(room)}", json={"via": [server_name]}
        ).raise_for_status()
        for member in members:
            uid = users.uid(member)
            for target in (space, room):
                admin.post(f"/_matrix/client/v3/rooms/{q(target)}/invite", json={"user_id": uid})
                with users.client(base_url, member) as client:
                    client.post(f"/_matrix/client/v3/join/{q(target)}", json={}).raise_for_status()
    return users


class MatrixSandbox:
    """What the conformance suite and the plugin's tests drive (the ``Sandbox`` Protocol)."""

    samples = ConformanceSamples(
        username="avery_quill",
        missing_username="nobody_at_all",
        grantable_role=Role.moderator(),
        channel="general",
        recipients=("bram_tolliver",),
        voters=("cleo_marsh", "dario_fenwick"),
        voters_group="working-group",
        inbound_kind="apply",
        inbound_payload={"body": "!apply hello, I would like to help"},
    )

    def __init__(self, *, seed: Mapping[str, Any] | None = None, homeserver: Homeserver | None = None) -> None:
        self.homeserver = homeserver or shared_homeserver()
        creds = self.homeserver.credentials
        assert creds is not None
        self.credentials = creds
        self.prefix = f"s{next(_counter)}{secrets.token_hex(3)}-"
        self.users = seed_community(
            creds.base_url,
            creds.bot_token,
            creds.server_name,
            prefix=self.prefix,
            seed=seed if seed is not None else DEFAULT_SEED,
        )
        self.proxy = FaultProxy(creds.base_url)
        self.app = self.proxy
        self._txn = itertools.count(1)

    def settings(self, base_url: str | None = None, **options: Any) -> MatrixSettings:
        """Connector settings for this community, through ``base_url`` (default: Synapse itself)."""
        creds = self.credentials
        values: dict[str, Any] = {
            "homeserver_url": base_url or creds.base_url,
            "server_name": creds.server_name,
            "access_token": SecretStr(creds.bot_token),
            "hs_token": SecretStr(creds.hs_token),
            "alias_prefix": self.prefix,
        }
        return MatrixSettings(_env_file=None, **{**values, **options})

    def client_info(self, base_url: str) -> dict[str, Any]:
        """URL, server name, the bot's id and token, the alias prefix."""
        creds = self.credentials
        return {
            "homeserver_url": base_url,
            "server_name": creds.server_name,
            "bot_user_id": creds.bot_user_id,
            "access_token": creds.bot_token,
            "alias_prefix": self.prefix,
        }

    def connect(self, base_url: str, **options: Any) -> MatrixConnector:
        """A connector through ``base_url`` (the proxy, when served)."""
        connector_options = {k: options.pop(k) for k in ("transport", "clock", "retry") if k in options}
        return MatrixConnector(settings=self.settings(base_url, **options), **connector_options)

    def cast_vote(self, base_url: str, ballot: Ballot, *, voter: str, option_index: int) -> None:
        """``voter`` answers the poll (``m.poll.response``) with their own token."""
        room, _, event_id = ballot.id.partition("/")
        content = payloads.poll_response(start_event=event_id, answer=ballot.options[option_index].id)
        with self.users.client(base_url, voter) as client:
            client.put(
                f"/_matrix/client/v3/rooms/{q(room)}/send/m.poll.response/{payloads.txn_id(None)}", json=content
            ).raise_for_status()

    def as_member(self, base_url: str, name: str) -> httpx.Client:
        """An httpx client acting as the member ``name``."""
        return self.users.client(base_url, name)

    def room(self, channel: str) -> str:
        """The room id of one of this community's rooms."""
        alias = f"#{self.prefix}{channel}:{self.credentials.server_name}"
        return (
            httpx.get(f"{self.credentials.base_url}/_matrix/client/v3/directory/room/{q(alias)}", timeout=10)
            .raise_for_status()
            .json()["room_id"]
        )

    def signed_request(self, *, kind: str, payload: Mapping[str, Any]) -> tuple[dict[str, str], bytes]:
        """An appservice transaction as Synapse sends it: one ``m.room.message`` (``payload``'s
        ``body``) in ``general`` from ``avery_quill``, with the ``hs_token`` bearer."""
        n = next(self._txn)
        event = {
            "type": "m.room.message",
            "event_id": f"${self.prefix}{n}",
            "room_id": self.room("general"),
            "sender": self.users.uid(str(payload.get("sender", "avery_quill"))),
            "origin_server_ts": 1_700_000_000_000 + n,
            "content": {"msgtype": "m.text", "body": str(payload.get("body", f"!{kind}"))},
        }
        body = json.dumps({"events": [event]}).encode()
        return ({"Authorization": f"Bearer {self.credentials.hs_token}", "Content-Type": "application/json"}, body)
