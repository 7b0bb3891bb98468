"""Helpers of the plugin's tests (a module of its own: ``conftest`` is not importable by name when
the core's tests run beside these): ``send_as`` and ``pushed``, a member writes in a room, and the
inbox row Synapse's push stored for it; ``pushing_synapse``, a Synapse pushing to a gateway."""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Any

from sqlalchemy import select

from charterflow_matrix import payloads
from charterflow_matrix.client import q
from charterflow_matrix.homeserver import APPSERVICE_PATH, Homeserver
from ledger.models import InboxEvent


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


def pushing_synapse(workdir: Any, gateway_url: str, monkeypatch: Any) -> Any:
    """A context: a Synapse in ``workdir`` whose appservice pushes to the gateway at
    ``gateway_url``, with the ``CHARTERFLOW_MATRIX_*`` settings the gateway's hook reads set;
    yields its credentials and stops it after."""

    @contextmanager
    def running() -> Any:
        server = Homeserver(workdir, appservice_url=gateway_url + APPSERVICE_PATH, die_with_parent=True)
        creds = server.start()
        try:
            for name, value in {
                "HOMESERVER_URL": creds.base_url,
                "SERVER_NAME": creds.server_name,
                "ACCESS_TOKEN": creds.bot_token,
                "HS_TOKEN": creds.hs_token,
            }.items():
                monkeypatch.setenv(f"CHARTERFLOW_MATRIX_{name}", value)
            yield creds
        finally:
            server.stop()

    return running()
