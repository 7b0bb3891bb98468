"""Fixtures of the plugin's tests: the real Synapse (one per test process), a fresh community in
it, and the fault proxy served on 127.0.0.1. Without the plugin installed nothing here is
collected, so ``make test`` still runs after ``pip uninstall charterflow-matrix``."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.net import LoopbackServer

if importlib.util.find_spec("charterflow_matrix") is None:  # the plugin is not installed
    collect_ignore_glob = ["test_*.py"]

# The core's shared fixtures (the seeded ``world``, the ``board``, the session's Prefect server)
# for the trial test; registered once however many conftests name them.
pytest_plugins = ["tests.support.prefect", "tests.support.membership", "tests.support.ledger", "tests.support.board"]

for _var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
    os.environ.pop(_var, None)


@pytest.fixture(scope="session")
def homeserver() -> Any:
    """The real Synapse shared by this test process (started once, stopped at exit)."""
    from charterflow_matrix.sandbox import shared_homeserver  # lazy: optional: the plugin may be uninstalled

    return shared_homeserver()


@pytest.fixture(scope="session")
def pushing_homeserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A second Synapse shared by this test process, whose appservice pushes through a relay to
    the gateway of the test that uses it (``matrix_served.pushing_synapse``)."""
    from matrix_served import PushingHomeserver  # lazy: optional: the plugin may be uninstalled

    with PushingHomeserver(tmp_path_factory.mktemp("synapse-pushing")) as server:
        yield server


@pytest.fixture(scope="module")
def community(homeserver: Any) -> Iterator[Any]:
    """A fresh community (space, rooms, members) served through the fault proxy."""
    from charterflow_matrix.sandbox import MatrixSandbox  # lazy: optional: the plugin may be uninstalled

    sandbox = MatrixSandbox(homeserver=homeserver)
    with LoopbackServer(sandbox.app, lifespan="on", start_timeout=20) as served:
        sandbox.url = served.url
        yield sandbox


@pytest.fixture
def matrix(community: Any) -> Iterator[Any]:
    """The connector, through the proxy; faults cleared after the test."""
    connector = community.connect(community.url)
    yield connector
    connector.close()
    community.proxy.set_faults({})
