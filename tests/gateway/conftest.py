"""Fixtures of the gateway tests: a migrated SQLite ledger (overriding the two-backend ``ledger``
of tests/support/ledger.py) and the app with invented secrets; the request helpers are in
tests/support/gateway.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from connectors.discord.connector import DiscordConnector
from connectors.discourse.connector import DiscourseConnector
from gateway.app import create_app
from gateway.dispatch import StoreOnlyDispatcher
from gateway.form import UsernameLookup
from ledger.db import Ledger
from ledger.migrate import upgrade
from tests.support.gateway import gateway_settings
from tests.support.net import LoopbackServer


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    lg = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    upgrade(lg)
    yield lg
    lg.dispose()


@pytest.fixture
def client(ledger: Ledger) -> Iterator[TestClient]:
    app = create_app(settings=gateway_settings(), ledger=ledger, dispatcher=StoreOnlyDispatcher())
    with TestClient(app, base_url="http://testserver") as c:
        yield c


@pytest.fixture
def directories() -> Iterator[dict[str, Any]]:
    """The Forum and Discord sandboxes (their default invented sites) on 127.0.0.1, connected:
    ``discourse`` and ``discord`` → the real connectors, used as the form's Directory."""
    forum_sb, discord_sb = DiscourseConnector.sandbox(), DiscordConnector.sandbox()
    with LoopbackServer(forum_sb.app) as f_srv, LoopbackServer(discord_sb.app) as d_srv:
        forum, discord = forum_sb.connect(f_srv.url), discord_sb.connect(d_srv.url)
        yield {"discourse": forum, "discord": discord}
        forum.close()
        discord.close()


@pytest.fixture
def looked_up(ledger: Ledger, directories: dict[str, Any]) -> Iterator[TestClient]:
    """The gateway whose form looks usernames up on the sandboxes."""
    app = create_app(
        settings=gateway_settings(), ledger=ledger, dispatcher=StoreOnlyDispatcher(), lookup=UsernameLookup(directories)
    )
    with TestClient(app, base_url="http://testserver") as c:
        yield c
