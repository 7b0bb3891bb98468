"""Shared fixtures: one real Prefect server for the whole session (``prefect_server``)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

import pytest
import typer


@pytest.fixture(scope="session")
def prefect_server():
    """A real temporary Prefect server (``prefect_test_harness``), started once per session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
    # The harness's server logs its own shutdown (cancelled tasks) at ERROR; silence what is
    # left of it so the test output stays clean.
    logging.getLogger("prefect").handlers.clear()


def cli_with(register: Callable[[typer.Typer], None]) -> typer.Typer:
    """A Typer app holding only the command group ``register`` adds (as ``charterflow`` does)."""
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """charterflow (test)."""

    register(app)
    return app

