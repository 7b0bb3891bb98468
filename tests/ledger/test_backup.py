"""``charterflow db backup|restore`` and the witnessed audit head (issue 19), on SQLite and
PostgreSQL: a backup taken while writers commit restores into an empty database with an intact
chain; a non-empty target is refused; ``audit verify --expect-head SEQ:HASH`` catches an older
copy and a cut tail, naming the expected and found heads."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from ledger_helpers import append_n, guard_off
from sqlalchemy import text

from ledger import Ledger, audit
from ledger.backup import BackupError, find_pg_tool, head_file, restore
from ledger.migrate import upgrade
from ledger.models import AuditEntry


def _head(ledger: Ledger) -> audit.Head:
    with ledger.read() as s:
        return audit.head(s)


def test_backup_while_writing_then_restore_into_an_empty_database(
    ledger: Ledger, ledger_url: str, db_url: str, cli, tmp_path: Path
) -> None:
    append_n(ledger, 20, tag="before")
    stop = threading.Event()
    written: list[int] = []

    def writer() -> None:  # the stack keeps recording while the backup runs
        while not stop.is_set():
            append_n(ledger, 2, tag="during")
            written.append(2)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        file = tmp_path / "ledger.backup"
        r = cli(ledger_url, "db", "backup", str(file))
    finally:
        stop.set()
        thread.join(timeout=60)
    assert r.exit_code == 0, r.output
    line = next(x for x in r.stdout.splitlines() if x.startswith("audit head: "))
    witnessed = line.split()[2]
    seq, _, digest = witnessed.partition(":")
    assert head_file(file).read_text().strip() == witnessed and int(seq) >= 20
    assert written, "the writer committed nothing during the test"
    with ledger.read() as s:  # the witnessed head is an entry of the live chain
        entry = s.get(AuditEntry, int(seq))
        assert entry is not None and entry.hash == digest

    # Restore into a fresh database: exactly the backup's chain, verified against the witness.
    r = cli(db_url, "db", "restore", str(file))
    assert r.exit_code == 0, r.output
    assert f"head {witnessed}" in r.stdout and "(the witnessed head)" in r.stdout
    fresh = Ledger(db_url)
    assert str(_head(fresh)) == witnessed
    # The restored ledger is a working ledger: it takes new entries on the same chain.
    append_n(fresh, 3, tag="after")
    with fresh.read() as s:
        assert audit.verify(s, expect_head=witnessed).ok and audit.head(s).seq == int(seq) + 3
    fresh.dispose()

    # Restoring again, into the now non-empty database, is refused and changes nothing.
    r = cli(db_url, "db", "restore", str(file))
    assert r.exit_code == 2 and "is not empty" in r.stderr and "restore fills an empty" in r.stderr
    # So is a backup over an existing file without --force.
    r = cli(ledger_url, "db", "backup", str(file))
    assert r.exit_code == 2 and "exists" in r.stderr


def test_expect_head_catches_an_older_copy_and_a_cut_tail(
    ledger: Ledger, ledger_url: str, db_url: str, cli, tmp_path: Path
) -> None:
    append_n(ledger, 5)
    old = tmp_path / "monday.backup"
    assert cli(ledger_url, "db", "backup", str(old)).exit_code == 0
    append_n(ledger, 4, tag="later")
    later = tmp_path / "tuesday.backup"
    r = cli(ledger_url, "db", "backup", str(later))
    witnessed = head_file(later).read_text().strip()
    assert witnessed.startswith("9:")

    # The quarterly Board report shows "<seq> <12 hex digits>": that form is a witness too.
    seq, _, digest = witnessed.partition(":")
    r = cli(ledger_url, "audit", "verify", "--expect-head", f"{seq} {digest[:12]}")
    assert r.exit_code == 0 and r.stdout.startswith(f"ok: 9 audit entries, head {witnessed}")

    # An old backup restored in place of the newest: valid chain, but not the witnessed head.
    assert cli(db_url, "db", "restore", str(old)).exit_code == 0
    r = cli(db_url, "audit", "verify", "--expect-head", witnessed)
    assert r.exit_code == 1
    found = f"5:{head_file(old).read_text().strip().partition(':')[2]}"
    assert f"expected head {witnessed}, found head {found}" in r.stderr
    assert "deleted from the end" in r.stderr

    # An attacker cuts the live chain's tail: still a chain, but the witness says otherwise.
    with guard_off(ledger) as conn:
        conn.execute(text("DELETE FROM audit_log WHERE seq > 7"))
    assert cli(ledger_url, "audit", "verify").exit_code == 0
    r = cli(ledger_url, "audit", "verify", "--expect-head", witnessed)
    assert r.exit_code == 1 and f"expected head {witnessed}, found head 7:" in r.stderr
    # A rewritten entry at the witnessed place is named as such.
    with guard_off(ledger) as conn:
        conn.execute(text("DELETE FROM audit_log WHERE seq > 5"))
    append_n(ledger, 4, tag="forged")
    r = cli(ledger_url, "audit", "verify", "--expect-head", witnessed)
    assert r.exit_code == 1 and "entry #9 has hash" in r.stderr and "rewritten" in r.stderr
    # A malformed head is a usage error, not a verdict.
    r = cli(ledger_url, "audit", "verify", "--expect-head", "9:xyz")
    assert r.exit_code == 2 and "SEQ:HASH" in r.stderr


def test_restore_refuses_what_is_not_a_backup_of_this_database(
    ledger: Ledger, db_url: str, backend: str, tmp_path: Path
) -> None:
    empty = Ledger(db_url)
    junk = tmp_path / "notes.txt"
    junk.write_text("not a backup")
    with pytest.raises(BackupError, match="is not a ledger backup"):
        restore(empty, junk)
    with pytest.raises(BackupError, match="no such backup file"):
        restore(empty, tmp_path / "missing.backup")
    # A backup of the other kind of database is named as such.
    other = tmp_path / "other.db"
    lite = Ledger(f"sqlite:///{other}")
    upgrade(lite)
    lite.dispose()
    pg_magic = tmp_path / "fake.dump"
    pg_magic.write_bytes(b"PGDMP" + b"\0" * 32)
    wrong = pg_magic if backend == "sqlite" else other
    with pytest.raises(BackupError, match="restore it into a database of the same kind"):
        restore(empty, wrong)
    empty.dispose()


def test_a_missing_pg_tool_is_named_with_how_to_install_it() -> None:
    with pytest.raises(BackupError, match="pg_nothing_here not found .*postgresql-client"):
        find_pg_tool("pg_nothing_here")
