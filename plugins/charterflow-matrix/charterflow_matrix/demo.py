"""The Matrix part of ``charterflow demo`` (entry-point group ``charterflow.demo``): once the
Board approved the Matrix trial (the demo's earlier steps), a WG member links their Matrix
account on the homeserver ``up`` runs: ``!link discord <name>`` in the community's ``general``
room, the code arriving in their Discord DMs, ``!link <code>``; every message goes through
Synapse's appservice push, the gateway's hook and the inbox, as a member's would.

``steps(demo)`` returns ``[]`` when no Matrix homeserver is configured for this process (the
plugin is installed but ``up`` runs without it), so the demo runs on without Matrix.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import httpx
from sqlalchemy import select

from charterflow.demo import DemoFailed
from charterflow_matrix.client import q
from charterflow_matrix.payloads import txn_id
from charterflow_matrix.sandbox import Users
from charterflow_matrix.settings import MatrixSettings
from connectors.errors import ConfigError
from ledger import platforms as ledger_platforms
from ledger import repo
from ledger.models import InboxEvent

__all__ = ["steps"]

STEP = "link a Matrix account"


def steps(demo: Any) -> list[tuple[str, Callable[[], Any]]]:
    """The demo's Matrix steps, or none when Matrix is not configured here."""
    try:
        settings = MatrixSettings.load()
    except ConfigError:
        return []
    return [("Matrix is on trial: a member links their Matrix account", lambda: _link(demo, settings))]


def _trial(demo: Any) -> bool:
    with demo.ledger.read() as session:
        rows = ledger_platforms.history(session, "matrix")
        return bool(rows) and rows[-1].state == "trial"


def _processed(demo: Any, event_id: str) -> str | None:
    with demo.ledger.read() as session:
        row = session.scalars(select(InboxEvent).where(InboxEvent.dedupe_key.endswith(event_id))).first()
        return row.result_ref if row is not None and row.processed_at is not None else None


def _linked(demo: Any, user_id: str) -> bool:
    with demo.ledger.read() as session:
        return repo.find_person_by_identity(session, platform="matrix", external_id=user_id) is not None


def _link(demo: Any, settings: MatrixSettings) -> None:
    demo.wait(STEP, "the ledger does not list Matrix as a trial platform", lambda: _trial(demo))
    member = demo.community.person(demo.community.wg_roles["chair"])
    discord_name = member.discord["username"]
    localpart = re.sub(r"[^a-z0-9._=-]", "_", discord_name.lower())
    base = settings.homeserver_url
    with httpx.Client(
        base_url=base,
        timeout=30,
        trust_env=False,
        headers={"Authorization": f"Bearer {settings.access_token.get_secret_value()}"},
    ) as admin:
        users = Users(admin, settings.server_name)
        user_id = users.ensure(localpart)
        room = (
            admin.get(
                f"/_matrix/client/v3/directory/room/{q(f'#{settings.alias_prefix}general:{settings.server_name}')}"
            )
            .raise_for_status()
            .json()["room_id"]
        )
        admin.post(f"/_matrix/client/v3/rooms/{q(room)}/invite", json={"user_id": user_id})
        with users.client(base, localpart) as client:
            client.post(f"/_matrix/client/v3/join/{q(room)}", json={}).raise_for_status()

            def send(body: str) -> str:
                return (
                    client.put(
                        f"/_matrix/client/v3/rooms/{q(room)}/send/m.room.message/{txn_id(None)}",
                        json={"msgtype": "m.text", "body": body},
                    )
                    .raise_for_status()
                    .json()["event_id"]
                )

            # A worker re-reads the platform list every few seconds: until it serves the
            # trial platform, it answers "not served" and the member asks again.
            deadline = time.monotonic() + demo.timeout
            while True:
                sent = send(f"!link discord {discord_name}")
                result = demo.wait(STEP, "the !link request was not handled", lambda e=sent: _processed(demo, e))
                if not result.startswith("refused:R-PLATFORM") or time.monotonic() > deadline:
                    break
                time.sleep(2)
            if not result.startswith("link:pending"):
                raise demo_failed(STEP, f"the !link request was refused ({result})")
            demo.say(f"      {localpart} sent !link discord {discord_name} on Matrix ({user_id})")

            def code() -> str | None:
                found = [
                    re.search(r"!link ([0-9a-f]{10})", m.get("content") or "")
                    for m in demo.state("discord")["messages"]
                    if "matrix" in (m.get("content") or "")
                ]
                codes = [f.group(1) for f in found if f]
                return codes[-1] if codes else None  # the latest: the one just sent

            sent = demo.wait(STEP, "the link code did not reach the member's Discord DMs", code)
            send(f"!link {sent}")
        demo.wait(STEP, "the Matrix account was not linked to the member", lambda: _linked(demo, user_id))
    space = f"#{settings.alias_prefix}{settings.space}:{settings.server_name}"
    demo.say(f"      linked with the code from Discord; the space: https://matrix.to/#/{q(space)}")


def demo_failed(step: str, reason: str) -> Exception:
    """The demo's own failure (the core's ``DemoFailed``)."""
    return DemoFailed(step, reason)
