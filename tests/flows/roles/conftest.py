"""Fixtures of the roles tests: the seeded world (``world``, tests/support/membership.py) with the
seeded admins in the ledger (tests/support/roles.py), the roles CLI, the Slack sandbox."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import typer

from charterflow.roles_cli import app as roles_cli
from connectors.slack.sandbox import SlackSandbox
from flows.board.common import use_slack
from ledger import repo
from tests.support.cli import cli_with
from tests.support.membership import NOW, World
from tests.support.net import LoopbackServer
from tests.support.roles import SEEDED_ADMINS, SlackBox, want


@pytest.fixture
def roles_world(world: World) -> Iterator[World]:
    """The world with the seeded admins recorded as wanted in the ledger."""
    for platform, handles in SEEDED_ADMINS.items():
        for handle in handles:
            want(world, handle, platform, "admin")
    yield world


@pytest.fixture
def cli() -> typer.Typer:
    """A Typer app with only the ``roles`` group (what ``charterflow`` registers)."""
    return cli_with(roles_cli)


@pytest.fixture
def slack_box(roles_world: World) -> Iterator[SlackBox]:
    """The Slack sandbox, installed as the process's Slack connector; the Slack accounts of two
    admins (avery_quill, cleo_marsh) are in the ledger."""
    with roles_world.ledger.transaction() as session:
        for handle, slack_id in (("avery_quill", "U0JUNO005"), ("cleo_marsh", "U0OSSI004")):
            repo.add_identity(
                session,
                repo.get_person(session, handle),
                platform="slack",
                actor="operator",
                external_id=slack_id,
                at=NOW,
            )
    sandbox = SlackSandbox(time_factor=0.02)
    with LoopbackServer(sandbox.app) as server:
        connector = sandbox.connect(server.url)
        with use_slack(connector):
            yield SlackBox(sandbox=sandbox, url=server.url, connector=connector)
        connector.close()
