"""Connecting to the ledger database: engines, transactions, error translation, redaction.

SQLite (the default, a file under ``Settings.home``) runs in WAL mode; every write transaction
starts with ``BEGIN IMMEDIATE`` so writers from several processes queue on the database lock
instead of failing half-way. PostgreSQL (``postgresql+psycopg://…``) runs in READ COMMITTED;
every write transaction first takes a transaction-scoped advisory lock, so writers serialize
the same way on both databases (the audit chain relies on it; ``ledger.audit`` takes it too).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import URL, Engine, create_engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError
from sqlalchemy.orm import Session

from ledger.errors import ConfigError, LedgerUnavailable

T = TypeVar("T")

# SQLSTATEs after which the whole transaction was rolled back by the server and nothing of it
# was committed: rerunning it is safe. (https://www.postgresql.org/docs/15/errcodes-appendix.html)
_PG_RETRY_SAFE = {
    "40001": "serialization failure",
    "40P01": "deadlock",
    "55P03": "lock not available (locked)",
    "57P03": "server is starting up",
}


def redact_url(url: str | URL) -> str:
    """``url`` with its password replaced by ``***``, safe for messages and logs."""
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except ArgumentError:
        return "<unparsable database URL>"
    return parsed.render_as_string(hide_password=True)


def _password(url: URL) -> str | None:
    return url.password if url.password else None


class Ledger:
    """A handle on one ledger database.

    ``transaction()`` yields a session for one atomic unit of work (used by every repository
    function); ``read()`` one for queries; ``run(work)`` runs ``work(session)`` in a
    transaction and reruns it when the database said "locked / busy / not reachable" before
    anything was committed. Errors come out as ``LedgerUnavailable`` naming the redacted URL.
    """

    def __init__(
        self, url: str, *, lock_timeout: float = 30.0, connect_timeout: float = 10.0, echo: bool = False
    ) -> None:
        try:
            self._url = make_url(url)
        except ArgumentError:
            raise ConfigError(
                "the ledger database URL is not a valid SQLAlchemy URL (CHARTERFLOW_DATABASE_URL)"
            ) from None
        self.url = redact_url(self._url)
        self.lock_timeout = lock_timeout
        backend = self._url.get_backend_name()
        if backend not in ("sqlite", "postgresql"):
            raise ConfigError(f"{self.url}: the ledger runs on sqlite or postgresql, not {backend}")
        self.dialect = backend
        kwargs: dict[str, Any] = {"echo": echo}
        if backend == "sqlite":
            database = self._url.database or ""
            if database in ("", ":memory:") or self._url.query.get("mode") == "memory":
                # Each connection would see its own empty database: useless for a ledger.
                raise ConfigError(f"{self.url}: the ledger needs a SQLite file, not memory")
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": lock_timeout}
        else:
            if self._url.get_driver_name() != "psycopg":
                raise ConfigError(f"{self.url}: use the psycopg 3 driver: postgresql+psycopg://…")
            kwargs["connect_args"] = {
                "connect_timeout": max(1, int(connect_timeout)),
                # Waiting for a lock (the audit chain, a row) longer than this is an error.
                "options": f"-c lock_timeout={int(lock_timeout * 1000)}",
            }
            kwargs["pool_pre_ping"] = True
        try:
            self.engine: Engine = create_engine(self._url, **kwargs)
        except (NoSuchModuleError, ImportError) as exc:
            raise ConfigError(f"{self.url}: database driver missing: {exc}") from None
        if backend == "sqlite":
            _configure_sqlite(self.engine, lock_timeout)
        else:
            _configure_postgresql(self.engine)
        self._write_engine = self.engine.execution_options(ledger_begin="IMMEDIATE")

    # -- sessions -------------------------------------------------------------------------

    @contextmanager
    def transaction(self, *, lock: bool = True) -> Iterator[Session]:
        """One write transaction: commits when the block ends, rolls back on an exception.

        ``lock=False`` does not take the writers' lock first, on PostgreSQL: for a write that is
        safe beside concurrent writers by itself (``INSERT … ON CONFLICT DO NOTHING``, rows
        locked ``FOR UPDATE``); an audit entry appended in it takes the lock then. SQLite has one
        writer at a time anyway: there every write transaction begins ``IMMEDIATE`` (a deferred
        one that read first could not wait for the lock, it would fail at once)."""
        committing = False
        engine = self._write_engine if lock or self.dialect == "sqlite" else self.engine
        try:
            with Session(engine, expire_on_commit=False) as session:
                with session.begin():
                    yield session
                    committing = True
        except DBAPIError as exc:
            raise self.translate(exc, committing=committing) from exc

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only session (one snapshot on PostgreSQL; never takes the SQLite write lock)."""
        try:
            with Session(self.engine, expire_on_commit=False) as session:
                with session.begin():
                    # Ends with a COMMIT of nothing: unlike a rollback it keeps loaded objects.
                    yield session
        except DBAPIError as exc:
            raise self.translate(exc, committing=False) from exc

    def run(self, work: Callable[[Session], T], *, attempts: int = 3, backoff: float = 0.25, lock: bool = True) -> T:
        """``work(session)`` in one transaction (``lock`` as in :meth:`transaction`), rerun
        when that is safe.

        Safe means the database refused before commit (locked, busy, unreachable, serialization
        failure): nothing of the attempt was stored. A failure during commit is never rerun,
        because the write may have happened. ``work`` must touch nothing but the session.
        """
        for attempt in range(1, attempts + 1):
            try:
                with self.transaction(lock=lock) as session:
                    return work(session)
            except LedgerUnavailable as exc:
                if not exc.retry_safe or attempt == attempts:
                    raise
                time.sleep(backoff * attempt)
        raise AssertionError("unreachable")

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    # -- errors ---------------------------------------------------------------------------

    def translate(self, exc: DBAPIError, *, committing: bool) -> Exception:
        """A database error as ``LedgerUnavailable`` (redacted), or ``exc`` itself if it is not
        about reaching the database (an integrity error is the caller's bug, not an outage)."""
        orig = exc.orig
        text = self._scrub(str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__)
        sqlstate = getattr(orig, "sqlstate", None)
        low = text.lower()
        kind: str | None = None
        retry_safe = False
        if "no such table" in low or sqlstate == "42P01":
            kind = "has no ledger schema yet (run `charterflow db upgrade`)"
        elif sqlstate in _PG_RETRY_SAFE:
            kind, retry_safe = _PG_RETRY_SAFE[sqlstate], True
        elif "database is locked" in low or "database is busy" in low:
            kind, retry_safe = f"is locked by another writer (waited {self.lock_timeout:g} s)", True
        elif exc.connection_invalidated or type(orig).__name__ in ("OperationalError", "InterfaceError"):
            kind, retry_safe = "cannot be reached", True
        if kind is None:
            return exc
        if committing:
            retry_safe = False
            kind += "; the outcome of the last write is unknown, check before repeating it"
        return LedgerUnavailable(f"ledger database {self.url} {kind}: {text}", url=self.url, retry_safe=retry_safe)

    def _scrub(self, message: str) -> str:
        password = _password(self._url)
        return message.replace(password, "***") if password else message


# Any fixed 64-bit number: the key of the advisory lock every PostgreSQL write transaction takes.
WRITE_LOCK_KEY = 0x6368_6172_7465_7201


def _configure_postgresql(engine: Engine) -> None:
    # Writers take one transaction-scoped advisory lock first, the equivalent of SQLite's
    # BEGIN IMMEDIATE: writes serialize (the ledger's volume is small), no deadlocks between
    # writers, and a repository check such as "no open application yet" stays true until
    # commit. Readers never take it.
    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        if conn.get_execution_options().get("ledger_begin") == "IMMEDIATE":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({WRITE_LOCK_KEY})")


def _configure_sqlite(engine: Engine, lock_timeout: float) -> None:
    # pysqlite's own transaction handling defers BEGIN and cannot do BEGIN IMMEDIATE; take
    # it over (the recipe in SQLAlchemy's SQLite dialect docs, "Serializable isolation").
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(lock_timeout * 1000)}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA journal_mode = WAL")
        # In WAL mode NORMAL is durable against application crashes and much faster.
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get("ledger_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")
