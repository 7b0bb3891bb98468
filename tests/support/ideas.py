"""Helpers of the ideas tests: the gateway with the Forum's "General" category as the ideas
category, and what the inbox and the bots hold."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from ledger.models import InboxEvent
from tests.support.membership import World


@dataclass
class IdeasGateway:
    """The gateway on a loopback port and the Forum's ideas category."""

    url: str
    ideas_category: int


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
