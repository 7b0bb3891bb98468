"""Test helpers: tampering with the audit log the way an attacker with database access would.

The append-only guard is switched off only inside ``guard_off`` (PostgreSQL: the superuser
disables the table's triggers; SQLite: the triggers are dropped and recreated), which is
exactly what someone editing the database by hand can do: the hash chain must still tell.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.engine import Connection

from ledger import Ledger, audit
from ledger.repo import create_person

GUARD = importlib.import_module("ledger.migrations.versions.0002_audit_append_only")
NOW = datetime(2025, 5, 1, 12, 0, tzinfo=UTC)


@contextmanager
def guard_off(ledger: Ledger) -> Iterator[Connection]:
    with ledger.engine.begin() as conn:
        if ledger.dialect == "postgresql":
            conn.execute(text("ALTER TABLE audit_log DISABLE TRIGGER USER"))
            yield conn
            conn.execute(text("ALTER TABLE audit_log ENABLE TRIGGER USER"))
        else:
            for statement in GUARD.SQLITE_DOWN:
                conn.execute(text(statement))
            yield conn
            for statement in GUARD.SQLITE_UP:
                conn.execute(text(statement))


def wipe_audit(ledger: Ledger) -> None:
    with guard_off(ledger) as conn:
        conn.execute(text("DELETE FROM audit_log"))


def append_n(ledger: Ledger, n: int, *, tag: str = "x") -> str:
    """Append ``n`` entries; return the head hash."""
    head = audit.GENESIS
    with ledger.transaction() as s:
        for i in range(n):
            head = audit.append(
                s,
                actor="operator",
                action="test.append",
                subject=f"test:{tag}{i}",
                payload={"i": i, "tag": tag, "nested": {"ok": True}},
            ).hash
    return head


def make_people(ledger: Ledger, *handles: str):
    with ledger.transaction() as s:
        return [create_person(s, handle=h, actor="operator", display_name=h.title(), at=NOW).id for h in handles]
