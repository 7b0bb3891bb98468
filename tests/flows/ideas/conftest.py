"""Fixtures of the ideas tests: the membership tests' seeded working group (Forum and Discord
sandboxes on 127.0.0.1, a migrated SQLite ledger, the session's Prefect server) and the real
gateway, with the Forum's "General" category as the ideas category. The sandboxes deliver
webhooks and interactions to the gateway; a test runs each stored event with
``flows.inbox.handle_event``, as the task worker does."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import typer
from pydantic import SecretStr
from sqlalchemy import select

from ledger.models import InboxEvent
from tests.connectors.cf_loopback import LoopbackServer
from tests.flows.membership.conftest import (CONFIRM_SECRET, FORUM_HOOK_SECRET, NOW,  # noqa: F401
                                             World, world)


@dataclass
class IdeasGateway:
    """The gateway on a loopback port and the Forum's ideas category."""

    url: str
    ideas_category: int


@pytest.fixture
def gateway(world: World) -> Iterator[IdeasGateway]:  # noqa: F811 - the imported fixture
    from gateway.app import create_app
    from gateway.dispatch import StoreOnlyDispatcher
    from gateway.settings import GatewaySettings

    categories = {c["name"]: c["id"] for c in world.discourse_state()["categories"]}
    values = {**GatewaySettings().model_dump(),
              "discourse_webhook_secret": SecretStr(FORUM_HOOK_SECRET),
              "discord_public_key": world.discord_sb.public_key,
              "slack_signing_secret": None, "form_secret": SecretStr("form-secret-invented"),
              "discourse_applications_categories": str(categories["Applications"]),
              "discourse_ideas_categories": str(categories["General"]), "dispatch": False}
    app = create_app(settings=GatewaySettings.model_construct(**values), ledger=world.ledger,
                     dispatcher=StoreOnlyDispatcher(), charter=world.platforms.charter,
                     confirm_secret=CONFIRM_SECRET)
    with LoopbackServer(app) as server:
        world.discourse_sb.webhook.url = f"{server.url}/hooks/discourse"
        httpx.post(f"{world.discord_url}/_sandbox/interactions_url",
                   json={"url": f"{server.url}/hooks/discord"}, timeout=10).raise_for_status()
        yield IdeasGateway(url=server.url, ideas_category=int(categories["General"]))
        world.discourse_sb.webhook.url = None


def events(world: World, **where: Any) -> list[int]:
    """Inbox event ids matching ``where`` (column = value)."""
    with world.ledger.read() as session:
        rows = session.scalars(select(InboxEvent).order_by(InboxEvent.id))
        return [r.id for r in rows if all(getattr(r, k) == v for k, v in where.items())]


def wait_for_event(world: World, *, count: int = 1, **where: Any) -> int:
    """The newest event matching ``where`` once ``count`` of them are stored (webhooks arrive
    from the sandbox's sender thread)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        found = events(world, **where)
        if len(found) >= count:
            return found[-1]
        time.sleep(0.05)
    raise AssertionError(f"no inbox event {where}")


def bot_messages(world: World, containing: str) -> list[dict[str, Any]]:
    """Messages the bot holds in the Discord sandbox whose text contains ``containing``."""
    return [m for m in world.discord_state()["messages"] if containing in (m["content"] or "")]


@pytest.fixture
def cli() -> typer.Typer:
    """A Typer app with only the ``ideas`` group (what ``charterflow`` registers)."""
    from charterflow.ideas_cli import register

    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """charterflow (test)."""

    register(app)
    return app
