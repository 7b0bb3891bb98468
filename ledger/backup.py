"""Backups of the system of record, and restoring one into an empty database (issue 19).

``backup(ledger, path)`` copies the ledger while the stack runs: SQLite through its online
backup API (``sqlite3.Connection.backup``: WAL readers never block writers), PostgreSQL through
``pg_dump --format=custom`` on a snapshot exported by a REPEATABLE READ transaction, so the
audit head read in that transaction is exactly the one inside the dump. The head is returned
and written beside the backup (``<path>.head``, one line ``SEQ:HASH``): a witness outside the
ledger that ``audit verify --expect-head`` checks a restored or suspect ledger against.

``restore(ledger, path)`` fills an empty database (it refuses one with any table), then
verifies the audit chain, against the ``.head`` witness when it is there.
"""

from __future__ import annotations

import glob
import os
import shutil
import sqlite3
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import inspect, text
from sqlalchemy.engine import URL

from ledger import audit
from ledger.db import Ledger
from ledger.errors import ConfigError

__all__ = ["BackupError", "Restored", "backup", "find_pg_tool", "head_file", "restore"]

SQLITE_MAGIC = b"SQLite format 3\x00"
PGDUMP_MAGIC = b"PGDMP"


class BackupError(ConfigError):
    """The backup or restore cannot be made as asked; the message says what to do."""


@dataclass(frozen=True, kw_only=True)
class Restored:
    """What a restore put in place and what the audit check found."""

    head: audit.Head
    verify: audit.VerifyResult
    witnessed: str | None  # the head read from ``<file>.head``, when there was one


def head_file(path: Path) -> Path:
    """Where the witnessed head of the backup ``path`` is written: ``<path>.head``."""
    return path.with_name(path.name + ".head")


def find_pg_tool(name: str) -> str:
    """``pg_dump``/``pg_restore``: on PATH, else the newest ``/usr/lib/postgresql/*/bin``;
    ``BackupError`` saying how to install it."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if candidates:
        return candidates[-1]
    raise BackupError(
        f"{name} not found (PATH, /usr/lib/postgresql/*/bin): install the "
        "PostgreSQL client tools of the server's version (Debian: postgresql-client)"
    )


# --- backup --------------------------------------------------------------------------------


def backup(ledger: Ledger, path: Path, *, force: bool = False) -> audit.Head:
    """Copy the ledger to ``path`` (written under a temporary name, then renamed, so a file at
    ``path`` is always a whole backup) and its head to ``<path>.head``; returns the head."""
    path = Path(path)
    if path.exists() and not force:
        raise BackupError(f"{path} exists; choose another name or pass --force to replace it")
    if not path.parent.is_dir():
        raise BackupError(f"{path.parent} is not a folder")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        head = _backup_sqlite(ledger, tmp) if ledger.dialect == "sqlite" else _backup_pg(ledger, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    head_file(path).write_text(f"{head}\n", encoding="ascii")
    return head


def _sqlite_path(ledger: Ledger) -> Path:
    return Path(ledger._url.database or "").expanduser()


def _sqlite_head(conn: sqlite3.Connection) -> audit.Head:
    row = conn.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
    return audit.Head(seq=row[0], hash=row[1]) if row else audit.Head(seq=0, hash=audit.GENESIS)


def _backup_sqlite(ledger: Ledger, target: Path) -> audit.Head:
    source_path = _sqlite_path(ledger)
    if not source_path.is_file():
        raise BackupError(f"{ledger.url}: no such database file")
    source = sqlite3.connect(source_path, timeout=ledger.lock_timeout)
    copy = sqlite3.connect(target)
    try:
        source.backup(copy)  # one step: a consistent copy even while writers commit
        if copy.execute("SELECT 1 FROM sqlite_master WHERE name = 'audit_log'").fetchone() is None:
            raise BackupError(f"{ledger.url} has no ledger schema: nothing to back up")
        return _sqlite_head(copy)
    finally:
        copy.close()
        source.close()


def _libpq(ledger: Ledger) -> tuple[str, dict[str, str]]:
    """A libpq URL without the password, and an environment carrying it (never in argv)."""
    url: URL = ledger._url.set(drivername="postgresql")
    env = {**os.environ}
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    return url.set(password=None).render_as_string(hide_password=False), env


def _run(argv: list[str], env: dict[str, str], what: str) -> None:
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise BackupError(f"{what} failed (exit {done.returncode}): {detail[-1] if detail else 'no message'}")


def _backup_pg(ledger: Ledger, target: Path) -> audit.Head:
    pg_dump = find_pg_tool("pg_dump")
    dsn, env = _libpq(ledger)
    with ledger.engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn:
        with conn.begin():
            if not inspect(conn).has_table("audit_log"):
                raise BackupError(f"{ledger.url} has no ledger schema: nothing to back up")
            snapshot = conn.execute(text("SELECT pg_export_snapshot()")).scalar_one()
            row = conn.execute(text("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")).first()
            head = audit.Head(seq=row[0], hash=row[1]) if row else audit.Head(seq=0, hash=audit.GENESIS)
            # The snapshot lives while this transaction is open: the dump sees what we saw.
            _run(
                [
                    pg_dump,
                    "--format=custom",
                    f"--snapshot={snapshot}",
                    "--no-owner",
                    f"--file={target}",
                    f"--dbname={dsn}",
                ],
                env,
                "pg_dump",
            )
    return head


# --- restore -------------------------------------------------------------------------------


def _tables(ledger: Ledger) -> list[str]:
    with ledger.engine.connect() as conn:
        return sorted(inspect(conn).get_table_names())


def restore(ledger: Ledger, path: Path) -> Restored:
    """Fill the empty database of ``ledger`` from the backup ``path``, then verify the audit
    chain (against ``<path>.head`` when present). ``BackupError`` when the database is not
    empty or the file is not a backup of this kind of database."""
    path = Path(path)
    if not path.is_file():
        raise BackupError(f"{path}: no such backup file")
    magic = path.read_bytes()[:16]
    kind = "sqlite" if magic.startswith(SQLITE_MAGIC) else ("postgresql" if magic.startswith(PGDUMP_MAGIC) else None)
    if kind is None:
        raise BackupError(f"{path} is not a ledger backup (neither SQLite nor a pg_dump archive)")
    if kind != ledger.dialect:
        raise BackupError(
            f"{path} is a {kind} backup; the ledger {ledger.url} is {ledger.dialect}: "
            "restore it into a database of the same kind"
        )
    existing = _tables(ledger)
    if existing:
        raise BackupError(
            f"ledger {ledger.url} is not empty ({len(existing)} tables, e.g. "
            f"{existing[0]}): restore fills an empty database only; point "
            "CHARTERFLOW_DATABASE_URL at a new one"
        )
    if kind == "sqlite":
        _restore_sqlite(ledger, path)
    else:
        dsn, env = _libpq(ledger)
        _run(
            [
                find_pg_tool("pg_restore"),
                "--no-owner",
                "--no-privileges",
                "--single-transaction",
                "--exit-on-error",
                f"--dbname={dsn}",
                str(path),
            ],
            env,
            "pg_restore",
        )
    witness = head_file(path)
    witnessed = witness.read_text(encoding="ascii").strip() if witness.is_file() else None
    ledger.dispose()  # connections opened before the restore may hold an old schema cache
    with ledger.read() as session:
        result = audit.verify(session, expect_head=witnessed)
        head = audit.head(session)
    return Restored(head=head, verify=result, witnessed=witnessed)


def _restore_sqlite(ledger: Ledger, path: Path) -> None:
    target = _sqlite_path(ledger)
    source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    copy = sqlite3.connect(target)
    try:
        if source.execute("SELECT 1 FROM sqlite_master WHERE name = 'audit_log'").fetchone() is None:
            raise BackupError(f"{path} is a SQLite file but not a ledger backup (no audit_log)")
        source.backup(copy)
    finally:
        copy.close()
        source.close()
