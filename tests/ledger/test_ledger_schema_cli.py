"""Migrations, connection errors, the command line, and the ledger's import boundary."""

from __future__ import annotations

import ast
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from ledger_helpers import append_n, guard_off
from sqlalchemy import create_engine, text

from ledger import Ledger, LedgerUnavailable, audit, redact_url
from ledger.db import WRITE_LOCK_KEY
from ledger.migrate import current_revision, head_revision, require_current, upgrade
from ledger.models import AuditEntry, Base

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "roster.toml"


# --- migrations ------------------------------------------------------------------------------


def test_upgrade_empty_database_twice(db_url: str) -> None:
    lg = Ledger(db_url)
    with pytest.raises(LedgerUnavailable, match="db upgrade"):
        require_current(lg)
    assert upgrade(lg) == (None, head_revision())
    assert upgrade(lg) == (head_revision(), head_revision())
    require_current(lg)
    # The migrations build exactly what the models describe.
    with lg.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diffs == []
    lg.dispose()


def test_upgrade_from_an_older_revision_keeps_data(db_url: str) -> None:
    lg = Ledger(db_url)
    upgrade(lg, "0001")
    assert current_revision(lg) == "0001"
    append_n(lg, 3)
    with lg.engine.begin() as conn:  # no guard yet at 0001
        conn.execute(text("UPDATE audit_log SET actor = actor"))
    upgrade(lg)
    assert current_revision(lg) == head_revision()
    with lg.read() as s:
        assert audit.verify(s).count == 3
    lg.dispose()


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "ledger.db"
    lg = Ledger(f"sqlite:///{path}")  # creates the folder, like .charterflow/ on first use
    upgrade(lg)
    lg.dispose()
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


# --- errors: unreachable, locked, redacted ---------------------------------------------------


def test_unreachable_postgresql_names_the_redacted_url() -> None:
    url = "postgresql+psycopg://wg:s3cr3t-pw@127.0.0.1:9/ledger"
    lg = Ledger(url, connect_timeout=2)
    with pytest.raises(LedgerUnavailable) as info:
        with lg.read() as s:
            s.execute(text("SELECT 1"))
    message = str(info.value)
    assert "s3cr3t-pw" not in message
    assert "postgresql+psycopg://wg:***@127.0.0.1:9/ledger" in message
    assert "cannot be reached" in message and info.value.retry_safe


def test_locked_database_is_a_clear_error_and_run_retries(ledger_url: str, tmp_path: Path) -> None:
    # Another writer holds the write lock for longer than our lock timeout.
    if ledger_url.startswith("sqlite"):
        holder = sqlite3.connect(ledger_url.removeprefix("sqlite:///"), isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        release = lambda: (holder.execute("ROLLBACK"), holder.close())  # noqa: E731 - one per database
    else:
        engine = create_engine(ledger_url)
        conn = engine.connect()
        conn.execute(text(f"SELECT pg_advisory_xact_lock({WRITE_LOCK_KEY})"))
        release = lambda: (conn.rollback(), conn.close(), engine.dispose())  # noqa: E731 - one per database
    lg = Ledger(ledger_url, lock_timeout=0.3)
    try:
        with pytest.raises(LedgerUnavailable, match="locked") as info:
            lg.run(lambda s: audit.append(s, actor="operator", action="t.x", subject="t:1"), attempts=2, backoff=0.05)
        assert redact_url(ledger_url) in str(info.value) and info.value.retry_safe
    finally:
        release()
    lg.run(lambda s: audit.append(s, actor="operator", action="t.x", subject="t:1"))
    with lg.read() as s:
        assert audit.count(s) == 1  # the refused attempts left nothing behind
    lg.dispose()


def test_redact_url() -> None:
    assert redact_url("postgresql+psycopg://u:pw@h/db") == "postgresql+psycopg://u:***@h/db"
    assert redact_url("sqlite:///x.db") == "sqlite:///x.db"


# --- command line ----------------------------------------------------------------------------


def test_cli_end_to_end(cli, db_url: str, tmp_path: Path) -> None:
    r = cli(db_url, "audit", "verify")
    assert r.exit_code == 2 and r.stderr.startswith("error: ") and "db upgrade" in r.stderr
    assert "Traceback" not in r.output
    r = cli(db_url, "db", "upgrade")
    assert r.exit_code == 0 and "upgraded from empty" in r.stdout
    assert cli(db_url, "db", "upgrade").stdout.strip().endswith("already")
    r = cli(db_url, "roster", "import", str(EXAMPLE), "--dry-run")
    assert r.exit_code == 0, r.output
    assert "would change" in r.stdout
    r = cli(db_url, "roster", "import", str(EXAMPLE))
    assert r.exit_code == 0 and "6 created" in r.stdout
    r = cli(db_url, "roster", "import", str(EXAMPLE))
    assert "changed 0 record(s)" in r.stdout
    r = cli(db_url, "audit", "verify")
    assert r.exit_code == 0 and r.stdout.startswith("ok: ")
    head = r.stdout.split()[-1]
    r = cli(db_url, "roster", "export")
    assert r.exit_code == 0 and 'handle = "hollis"' in r.stdout
    r = cli(db_url, "person", "export", "fenna")
    assert r.exit_code == 0 and json.loads(r.stdout)["person"]["handle"] == "fenna"
    r = cli(db_url, "person", "erase", "fenna", "--reason", "asked by e-mail")
    assert r.exit_code == 0, r.output
    r = cli(db_url, "person", "erase", "ada", "--reason", "asked")
    assert r.exit_code == 2 and "R-PRIVACY-2" in r.stderr
    r = cli(db_url, "person", "export", "nobody")
    assert r.exit_code == 2 and r.stderr == "error: no person 'nobody' in the ledger\n"
    r = cli(db_url, "audit", "verify", "--expect-head", head)
    assert r.exit_code == 0
    for fmt in ("jsonl", "csv"):
        out = tmp_path / f"audit.{fmt}"
        r = cli(db_url, "audit", "export", "--format", fmt, "--output", str(out))
        assert r.exit_code == 0
        r = cli(db_url, "audit", "verify", "--file", str(out), "--format", fmt)
        assert r.exit_code == 0 and r.stdout.startswith("ok: ")
    assert cli(db_url, "audit", "export", "--format", "xml").exit_code == 2


def test_cli_verify_fails_with_1_naming_the_entry(cli, ledger: Ledger, ledger_url: str) -> None:
    append_n(ledger, 4)
    with guard_off(ledger) as conn:
        table = AuditEntry.__table__
        conn.execute(table.update().where(table.c.seq == 2).values(action="test.forged"))
    r = cli(ledger_url, "audit", "verify")
    assert r.exit_code == 1
    assert r.stderr.startswith("error: audit log broken at entry #2")
    assert len(r.stderr.strip().splitlines()) == 1


def test_cli_refuses_a_hard_rule_violation(cli, ledger_url: str, tmp_path: Path) -> None:
    bad = tmp_path / "roster.toml"
    bad.write_text(EXAMPLE.read_text().replace('steering_council = ["gideon", ', "steering_council = ["))
    r = cli(ledger_url, "roster", "import", str(bad))
    assert r.exit_code == 2 and r.stderr.startswith("error: R-ROLE-SC: ")
    assert cli(ledger_url, "audit", "verify").stdout.startswith("ok: 0 audit entries")


def test_cli_roster_conflicts_name_the_person_line_and_account(cli, ledger_url: str, tmp_path: Path) -> None:
    text = EXAMPLE.read_text()
    line_of = {h: text.splitlines().index(f'handle = "{h}"') for h in ("bram", "cosima")}
    # In the file: cosima's Discord account given as bram's too.
    twice = tmp_path / "twice.toml"
    twice.write_text(text.replace('username = "cosima" }', 'username = "BRAM.T" }', 1))
    r = cli(ledger_url, "roster", "import", str(twice))
    assert r.exit_code == 2 and len(r.stderr.splitlines()) == 1
    assert (
        f"person 'cosima' (line {line_of['cosima']}): discord username 'BRAM.T' already "
        f"given for 'bram' (line {line_of['bram']})"
    ) in r.stderr
    # Against the ledger: a second file gives bram's Discord account to a new person.
    assert cli(ledger_url, "roster", "import", str(EXAMPLE)).exit_code == 0
    other = tmp_path / "other.toml"
    other.write_text(
        '[roster]\nformat = 1\n\n# a newcomer\n[[person]]\nhandle = "ivo"\n'
        'discord = { id = "400000000000000002", username = "ivo_b" }\n'
    )
    r = cli(ledger_url, "roster", "import", str(other))
    assert r.exit_code == 2, r.output
    assert r.stderr == (f"error: {other}: person 'ivo' (line 5): discord account 'ivo_b' already belongs to 'bram'\n")


def test_cli_unreachable_database_is_one_redacted_line(cli) -> None:
    r = cli("postgresql+psycopg://wg:hunter2-secret@127.0.0.1:9/ledger", "db", "upgrade")
    assert r.exit_code == 2
    assert "hunter2-secret" not in r.output
    assert r.stderr.startswith("error: ledger database postgresql+psycopg://wg:***@127.0.0.1:9")
    assert len(r.stderr.strip().splitlines()) == 1


def test_real_entry_point_runs_the_commands(tmp_path: Path) -> None:
    env = {**os.environ, "CHARTERFLOW_HOME": str(tmp_path / ".charterflow")}
    env.pop("CHARTERFLOW_DATABASE_URL", None)
    exe = [sys.executable, "-c", "from charterflow.cli import main; main()"]
    for args in (["db", "upgrade"], ["roster", "import", str(EXAMPLE)], ["audit", "verify"]):
        proc = subprocess.run([*exe, *args], env=env, capture_output=True, text=True, cwd=tmp_path, timeout=120)
        assert proc.returncode == 0, proc.stderr
    assert (tmp_path / ".charterflow" / "ledger.db").exists()  # the SQLite default


# --- layering --------------------------------------------------------------------------------


def test_ledger_imports_only_rules_and_the_exception_tree() -> None:
    allowed_ours = {"ledger", "rules", "connectors.errors"}
    ours = ("ledger", "rules", "connectors", "flows", "gateway", "charterflow")
    for path in (REPO / "ledger").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            for name in names:
                if name.split(".")[0] in ours:
                    assert name in allowed_ours or name.split(".")[0] in ("ledger", "rules"), (
                        f"{path.relative_to(REPO)} imports {name}"
                    )
