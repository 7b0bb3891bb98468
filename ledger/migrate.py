"""Schema migrations with alembic, configured in code (no alembic.ini).

``upgrade(ledger)`` brings an empty or older database to the current schema in one transaction
and is a no-op when it is already current; two upgrades started at once on PostgreSQL queue on
an advisory lock, on SQLite on ``BEGIN IMMEDIATE``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from ledger.db import Ledger
from ledger.errors import LedgerUnavailable

MIGRATIONS = Path(__file__).with_name("migrations")
_PG_MIGRATE_LOCK = 0x6368_6172_7465_7202


def alembic_config(connection: Connection | None = None, instances: Mapping[str, str] | None = None) -> Config:
    """An alembic ``Config`` for the ledger's migrations, bound to ``connection``.
    ``instances`` (platform → instance: the Forum's host, the Discord guild id, the Slack team
    id) tells migration 0012 whose ids the stored keys are (see that revision)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    cfg.attributes["instances"] = dict(instances or {})
    return cfg


def head_revision() -> str:
    """The newest revision the code knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(ledger: Ledger) -> str | None:
    """The revision the database is at (None: empty)."""
    try:
        with ledger.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    except DBAPIError as exc:
        raise ledger.translate(exc, committing=False) from exc


def upgrade(
    ledger: Ledger, revision: str = "head", *, instances: Mapping[str, str] | None = None
) -> tuple[str | None, str | None]:
    """Migrate to ``revision``; returns (revision before, revision after). ``instances``: see
    ``alembic_config``."""
    return _migrate(ledger, lambda conn: command.upgrade(alembic_config(conn, instances), revision))


def downgrade(ledger: Ledger, revision: str) -> tuple[str | None, str | None]:
    """Migrate back to ``revision`` (a revision that cannot be undone raises, naming why);
    returns (revision before, revision after)."""
    return _migrate(ledger, lambda conn: command.downgrade(alembic_config(conn), revision))


def _migrate(ledger: Ledger, run: Callable[[Any], None]) -> tuple[str | None, str | None]:
    """``run(conn)`` in one write transaction, one migrator at a time (PostgreSQL: an advisory
    lock); (revision before, revision after)."""
    committing = False
    try:
        with ledger.engine.execution_options(ledger_begin="IMMEDIATE").connect() as conn:
            with conn.begin():
                if conn.dialect.name == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATE_LOCK})
                before = MigrationContext.configure(conn).get_current_revision()
                run(conn)
                after = MigrationContext.configure(conn).get_current_revision()
                committing = True
    except DBAPIError as exc:
        raise ledger.translate(exc, committing=committing) from exc
    return before, after


def require_current(ledger: Ledger) -> None:
    """Raise ``LedgerUnavailable`` unless the database is at the code's schema revision."""
    current, head = current_revision(ledger), head_revision()
    if current != head:
        state = "has no ledger schema" if current is None else f"is at schema {current}"
        raise LedgerUnavailable(
            f"ledger database {ledger.url} {state}, this charterflow needs {head}: run `charterflow db upgrade`",
            url=ledger.url,
        )
