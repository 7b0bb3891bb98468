"""Fixtures of the ledger tests beyond the two-backend ``ledger`` (``tests/support/ledger.py``):
an empty database per backend, and the ledger's commands."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from charterflow import ledger_cli
from charterflow.settings import get_settings
from tests.support.ledger import create_database


@pytest.fixture
def db_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty database (no schema) on ``backend``."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.db'}"
    server = request.getfixturevalue("postgres_server")
    return server.url(create_database(server))


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Run the ledger's commands (registered on a bare Typer app) against ``url``."""
    app = typer.Typer(pretty_exceptions_enable=False)
    app.add_typer(ledger_cli.app)
    runner = CliRunner()

    def run(url: str, *args: str):
        monkeypatch.setenv("CHARTERFLOW_DATABASE_URL", url)
        monkeypatch.setenv("CHARTERFLOW_HOME", str(tmp_path / "home"))
        get_settings.cache_clear()
        try:
            return runner.invoke(app, list(args))
        finally:
            get_settings.cache_clear()

    return run
