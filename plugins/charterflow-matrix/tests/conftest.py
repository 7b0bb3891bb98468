"""Fixtures of the plugin's tests: the real Synapse (one per test process), a fresh community in
it, and the fault proxy served on 127.0.0.1. Without the plugin installed nothing here is
collected, so ``make test`` still runs after ``pip uninstall charterflow-matrix``."""

from __future__ import annotations

import importlib.util
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

if importlib.util.find_spec("charterflow_matrix") is None:  # the plugin is not installed
    collect_ignore_glob = ["test_*.py"]

for _var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
    os.environ.pop(_var, None)


class Served:
    """An ASGI app on a free 127.0.0.1 port (uvicorn in a thread)."""

    def __init__(self, app: Any, *, port: int = 0) -> None:
        import uvicorn

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="critical", access_log=False, lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> Served:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("loopback server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="session")
def homeserver() -> Any:
    """The real Synapse shared by this test process (started once, stopped at exit)."""
    from charterflow_matrix.sandbox import shared_homeserver

    return shared_homeserver()


@pytest.fixture(scope="module")
def community(homeserver: Any) -> Iterator[Any]:
    """A fresh community (space, rooms, members) served through the fault proxy."""
    from charterflow_matrix.sandbox import MatrixSandbox

    sandbox = MatrixSandbox(homeserver=homeserver)
    with Served(sandbox.app) as served:
        sandbox.url = served.url
        yield sandbox


@pytest.fixture
def matrix(community: Any) -> Iterator[Any]:
    """The connector, through the proxy; faults cleared after the test."""
    connector = community.connect(community.url)
    yield connector
    connector.close()
    community.proxy.set_faults({})
