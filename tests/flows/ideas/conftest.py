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

import pytest
import typer
from sqlalchemy import select

from ledger.models import InboxEvent
from tests.conftest import cli_with
from tests.flows.membership.conftest import (CONFIRM_SECRET, FORUM_HOOK_SECRET, NOW,  # noqa: F401
                                             World, serve_gateway, world)


@dataclass
class IdeasGateway:
    """The gateway on a loopback port and the Forum's ideas category."""

    url: str
    ideas_category: int


@pytest.fixture
def gateway(world: World) -> Iterator[IdeasGateway]:  # noqa: F811 - the imported fixture
    category = next(c["id"] for c in world.discourse_state()["categories"] if c["name"] == "General")
    with serve_gateway(world, ideas_category=str(category)) as served:
        yield IdeasGateway(url=served.url, ideas_category=int(category))


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

    return cli_with(register)
