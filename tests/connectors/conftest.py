"""Fixtures for the connector tests: sandboxes served over real HTTP on 127.0.0.1."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from connectors.discourse.sandbox import DiscourseSandbox
from tests.support.net import LoopbackServer

# Loopback only: never let a proxy setting send sandbox traffic elsewhere.
for _var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
    os.environ.pop(_var, None)
os.environ["NO_PROXY"] = "127.0.0.1,localhost"


class RunningSandbox:
    """A sandbox served on 127.0.0.1, with helpers for its control routes."""

    def __init__(self, sandbox: Any, server: LoopbackServer) -> None:
        self.sandbox = sandbox
        self.server = server
        self.url = server.url

    def connect(self, **options: Any) -> Any:
        """A connector pointed at this sandbox."""
        return self.sandbox.connect(self.url, **options)

    def state(self) -> dict[str, Any]:
        """``GET /_sandbox/state``."""
        return httpx.get(f"{self.url}/_sandbox/state", timeout=10).json()

    def faults(self, **faults: Any) -> dict[str, Any]:
        """``POST /_sandbox/faults`` (no arguments: clear every fault)."""
        response = httpx.post(f"{self.url}/_sandbox/faults", json=faults, timeout=10)
        response.raise_for_status()
        return response.json()

    def count(self, endpoint: str) -> int:
        """How many requests reached ``endpoint`` ("METHOD /template")."""
        return int(self.state()["requests"].get(endpoint, 0))


@pytest.fixture
def serve() -> Iterator[Any]:
    """``serve(sandbox)`` starts it on a free loopback port; everything stops after the test."""
    started: list[LoopbackServer] = []

    def start(sandbox: Any) -> RunningSandbox:
        server = LoopbackServer(sandbox.app).__enter__()
        started.append(server)
        return RunningSandbox(sandbox, server)

    yield start
    for server in reversed(started):
        server.__exit__(None, None, None)


@pytest.fixture
def discourse(serve: Any) -> RunningSandbox:
    """The Discourse sandbox with its default seed, on 127.0.0.1."""
    return serve(DiscourseSandbox())


@pytest.fixture
def report(request: pytest.FixtureRequest) -> Any:
    """``report(name, text)`` records a measurement: in the test's ``record_property`` (JUnit XML;
    ``tests/conftest.py`` repeats them in the run's closing summary, also from xdist workers) and
    on the terminal at once (even without ``-s``) when the test runs in the main process."""
    terminal = request.config.pluginmanager.getplugin("terminalreporter")
    capman = request.config.pluginmanager.getplugin("capturemanager")

    def write(name: str, text: str) -> None:
        request.node.user_properties.append((f"measure:{name}", text))
        if terminal is None:  # pragma: no cover
            print(text)
            return
        if capman is not None:
            with capman.global_and_fixture_disabled():
                terminal.write_line(f"\n[measure] {text}")
        else:  # pragma: no cover
            terminal.write_line(f"[measure] {text}")

    return write
