"""Fixtures of the ideas tests: the seeded working group (``world``, tests/support/membership.py)
and the real gateway, with the Forum's "General" category as the ideas category. The sandboxes
deliver webhooks and interactions to the gateway; a test runs each stored event with
``flows.inbox.handle_event``, as the task worker does."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import typer

from charterflow.ideas_cli import app as ideas_cli
from tests.support.cli import cli_with
from tests.support.ideas import IdeasGateway
from tests.support.membership import World, serve_gateway


@pytest.fixture
def gateway(world: World) -> Iterator[IdeasGateway]:
    category = next(c["id"] for c in world.discourse_state()["categories"] if c["name"] == "General")
    with serve_gateway(world, ideas_category=str(category)) as served:
        yield IdeasGateway(url=served.url, ideas_category=int(category))


@pytest.fixture
def cli() -> typer.Typer:
    """A Typer app with only the ``ideas`` group (what ``charterflow`` registers)."""
    return cli_with(ideas_cli)
