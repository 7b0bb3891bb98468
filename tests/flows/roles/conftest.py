"""Fixtures of the roles tests: the membership tests' seeded world (both sandboxes on 127.0.0.1,
a migrated SQLite ledger, the session's Prefect server), with the seeded admins in the ledger.

Seeded admins: Forum ``avery_quill``, ``bram_tolliver`` (and the unmanaged ``system``),
Discord ``cleo_marsh``, ``dario_fenwick``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import typer

from ledger import repo
from tests.conftest import cli_with
from tests.flows.membership.conftest import NOW, World, gateway, world  # noqa: F401 - fixtures

SEEDED_ADMINS = {"discourse": ["avery_quill", "bram_tolliver"],
                 "discord": ["cleo_marsh", "dario_fenwick"]}


def want(w: World, handle: str, platform: str, role: str, desired: bool = True) -> None:
    """Record in the ledger that ``handle`` should (not) hold ``role`` on ``platform``."""
    with w.ledger.transaction() as session:
        person = repo.get_person(session, handle)
        repo.set_desired_platform_role(session, person, platform=platform, role=role,
                                       desired=desired, actor="operator", decision_ref="test",
                                       at=NOW)


@pytest.fixture
def roles_world(world: World) -> Iterator[World]:  # noqa: F811 - the imported fixture
    """The world with the seeded admins recorded as wanted in the ledger."""
    for platform, handles in SEEDED_ADMINS.items():
        for handle in handles:
            want(world, handle, platform, "admin")
    yield world


@pytest.fixture
def cli() -> typer.Typer:
    """A Typer app with only the ``roles`` group (what ``charterflow`` registers)."""
    from charterflow.roles_cli import register

    return cli_with(register)


@dataclass
class SlackBox:
    """The Slack sandbox on 127.0.0.1 and a connector to it."""

    sandbox: Any
    url: str
    connector: Any

    def texts(self) -> list[str]:
        """Every message text in the workspace (all channels and DMs)."""
        state = httpx.get(f"{self.url}/_sandbox/state", timeout=10).json()
        out = []
        for messages in state["messages"].values():
            for m in messages:
                out.append(json.dumps(m.get("blocks") or []) + (m.get("text") or ""))
        return out


@pytest.fixture
def slack_box(roles_world: World) -> Iterator[SlackBox]:
    """The Slack sandbox, installed as the process's Slack connector; the Slack accounts of two
    admins (avery_quill, cleo_marsh) are in the ledger."""
    from connectors.slack.sandbox import SlackSandbox
    from tests.connectors.cf_loopback import LoopbackServer

    from flows.board.common import use_slack

    with roles_world.ledger.transaction() as session:
        for handle, slack_id in (("avery_quill", "U0JUNO005"), ("cleo_marsh", "U0OSSI004")):
            repo.add_identity(session, repo.get_person(session, handle), platform="slack",
                              actor="operator", external_id=slack_id, at=NOW)
    sandbox = SlackSandbox(time_factor=0.02)
    with LoopbackServer(sandbox.app) as server:
        connector = sandbox.connect(server.url)
        with use_slack(connector):
            yield SlackBox(sandbox=sandbox, url=server.url, connector=connector)
        connector.close()


def command(w: World, gateway: Any, *, user: str, **options: str) -> int:
    """``user`` runs Discord ``/role`` with ``options``: the sandbox signs it and sends it to the
    gateway, which defers it and stores it; returns the inbox event id."""
    from sqlalchemy import select

    from ledger.models import InboxEvent

    w.discord_sb.command(w.discord_url, user=user, name="role", options=options)
    with w.ledger.read() as session:
        return session.scalars(select(InboxEvent.id).where(InboxEvent.route == "roles-change")
                               .order_by(InboxEvent.id.desc())).first()


def followups(w: World) -> list[str]:
    """The texts of the private follow-ups the bot sent to interactions."""
    return [m["content"] or "" for m in w.discord_state()["messages"]
            if m.get("interaction") or (m.get("flags") or 0) & 64]
