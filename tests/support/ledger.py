"""The ledger on both backends (a pytest plugin: ``tests/conftest.py`` registers it): a test
asking for ``ledger`` runs on SQLite and on a real, throwaway PostgreSQL.

``postgres_server`` (session) runs ``initdb`` into a temporary folder and ``pg_ctl start`` on a
free port of 127.0.0.1, with its unix socket in that folder; it stops the server and deletes
the folder at the end. PostgreSQL refuses to run as root, so as root both run as the
``postgres`` system user. Missing binaries fail the run loudly: `make test` installs them
(scripts/test-deps.sh).
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import create_engine, event, text

from ledger import Ledger
from ledger.backup import BackupError, find_pg_tool
from ledger.migrate import upgrade
from tests.support.net import free_port
from tests.support.pgcluster import cluster_dir


def pg_bin(name: str) -> str:
    try:
        return find_pg_tool(name)
    except BackupError:
        pytest.fail(
            f"PostgreSQL server binary {name!r} not found (PATH, /usr/lib/postgresql/*/bin): "
            "run scripts/test-deps.sh (make test does) to install it",
            pytrace=False,
        )


@dataclass(frozen=True)
class PostgresServer:
    port: int
    admin_url: str

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    initdb, pg_ctl = pg_bin("initdb"), pg_bin("pg_ctl")
    cluster = cluster_dir("charterflow-pg-")
    workdir, prefix, env, data = cluster.workdir, cluster.prefix, cluster.env, cluster.data
    try:
        cluster.initdb(initdb)
        for _attempt in range(3):
            port = free_port()
            opts = cluster.options(port, "-c max_connections=60")
            proc = subprocess.run(
                cluster.start_command(pg_ctl, opts),
                env=env,
                capture_output=True,
                text=True,
            )
            if proc.returncode == 0:
                break
        else:
            log = (workdir / "server.log").read_text(errors="replace")[-2000:]
            pytest.fail(f"pg_ctl start failed: {proc.stderr}\n{log}", pytrace=False)
        server = PostgresServer(port=port, admin_url=f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres")
        yield server
    except subprocess.CalledProcessError as exc:
        pytest.fail(f"{exc.cmd[len(prefix)]} failed: {exc.stderr}", pytrace=False)
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(
                [*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"], env=env, capture_output=True
            )
        shutil.rmtree(workdir, ignore_errors=True)


_counter = itertools.count()


def create_database(server: PostgresServer, *, template: str | None = None) -> str:
    name = f"t{os.getpid()}_{next(_counter)}"
    engine = create_engine(server.admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        clause = f" TEMPLATE {template} STRATEGY FILE_COPY" if template else ""
        conn.execute(text(f"CREATE DATABASE {name}{clause}"))
    engine.dispose()
    return name


@pytest.fixture(scope="session")
def _templates(postgres_server: PostgresServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A migrated database per backend, copied for each test (much faster than migrating)."""
    pg_name = create_database(postgres_server)
    pg = Ledger(postgres_server.url(pg_name))
    upgrade(pg)
    pg.dispose()
    sqlite_file = tmp_path_factory.mktemp("template") / "ledger.db"
    lite = Ledger(f"sqlite:///{sqlite_file}")
    upgrade(lite)
    lite.dispose()
    return {"postgresql": pg_name, "sqlite": str(sqlite_file)}


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def ledger_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a database at the current schema on ``backend``."""
    templates = request.getfixturevalue("_templates")
    if backend == "sqlite":
        target = tmp_path / "ledger.db"
        shutil.copyfile(templates["sqlite"], target)
        return f"sqlite:///{target}"
    server = request.getfixturevalue("postgres_server")
    return server.url(create_database(server, template=templates["postgresql"]))


@pytest.fixture
def ledger(ledger_url: str) -> Iterator[Ledger]:
    """A migrated ledger on ``backend``."""
    lg = Ledger(ledger_url, lock_timeout=20)
    yield lg
    lg.dispose()


@dataclass
class Counted:
    """What ran on a ledger inside ``counted``: its transactions, and its statements in order."""

    transactions: int = 0
    statements: list[str] = field(default_factory=list)


@contextmanager
def counted(ledger: Ledger) -> Iterator[Counted]:
    """Count the transactions and statements ``ledger`` runs inside the block (its cost per
    event, issue 19 point 7); readable during the block too."""
    seen = Counted()

    def on_begin(conn: object) -> None:
        seen.transactions += 1

    def on_statement(conn: object, cursor: object, statement: str, *rest: object) -> None:
        seen.statements.append(statement)

    event.listen(ledger.engine, "begin", on_begin)
    event.listen(ledger.engine, "before_cursor_execute", on_statement)
    try:
        yield seen
    finally:
        event.remove(ledger.engine, "begin", on_begin)
        event.remove(ledger.engine, "before_cursor_execute", on_statement)
