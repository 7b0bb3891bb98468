"""The audit log: hash chain, append-only in the database, tamper detection, export, concurrency."""

from __future__ import annotations

import hashlib
import io
import json
import multiprocessing
from datetime import timedelta
from itertools import pairwise

import ledger_workers
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ledger_helpers import append_n, guard_off, wipe_audit
from sqlalchemy import select, text, update
from sqlalchemy.exc import DBAPIError

from ledger import Ledger, audit
from ledger.models import AuditEntry


def test_chain_links_and_verifies(ledger: Ledger) -> None:
    head = append_n(ledger, 5)
    with ledger.read() as s:
        rows = s.scalars(select(AuditEntry).order_by(AuditEntry.seq)).all()
        result = audit.verify(s)
    assert [r.seq for r in rows] == [1, 2, 3, 4, 5]
    assert rows[0].prev_hash == audit.GENESIS
    assert all(b.prev_hash == a.hash for a, b in pairwise(rows))
    assert result.ok and result.count == 5 and result.head == head
    assert rows[0].at.tzinfo is not None and rows[0].at.utcoffset() == timedelta(0)


def test_hash_is_sha256_over_prev_and_canonical_json(ledger: Ledger) -> None:
    append_n(ledger, 1)
    with ledger.read() as s:
        entry = s.scalars(select(AuditEntry)).one()

    body = json.dumps(
        {
            "seq": 1,
            "at": audit.format_time(entry.at),
            "actor": "operator",
            "action": "test.append",
            "subject": "test:x0",
            "payload": json.loads(entry.payload_json),
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    assert entry.hash == hashlib.sha256(f"{audit.GENESIS}\n{body}".encode()).hexdigest()


@pytest.mark.parametrize("statement", ["UPDATE audit_log SET actor = 'mallory'", "DELETE FROM audit_log"])
def test_database_refuses_update_and_delete(ledger: Ledger, statement: str) -> None:
    append_n(ledger, 2)
    with pytest.raises(DBAPIError, match="append-only"):
        with ledger.engine.begin() as conn:
            conn.execute(text(statement))
    with ledger.read() as s:
        assert audit.verify(s).count == 2


def test_emptying_the_table_is_refused(ledger: Ledger) -> None:
    # PostgreSQL: TRUNCATE has its own trigger. SQLite has no TRUNCATE; its "truncate
    # optimization" of an unconditional DELETE is off when the table has triggers.
    append_n(ledger, 1)
    statement = "TRUNCATE audit_log" if ledger.dialect == "postgresql" else "DELETE FROM audit_log"
    with pytest.raises(DBAPIError, match="append-only"):
        with ledger.engine.begin() as conn:
            conn.execute(text(statement))


def test_payload_must_be_plain_json_and_refs(ledger: Ledger) -> None:
    with ledger.transaction() as s:
        with pytest.raises(ValueError, match="floats"):
            audit.append(s, actor="operator", action="x.y", subject="test:1", payload={"f": 0.5})
        with pytest.raises(ValueError, match="reference"):
            audit.append(s, actor="Ada Quillfeather", action="x.y", subject="test:1")
    with ledger.read() as s:
        assert audit.count(s) == 0


def test_append_rolls_back_with_its_transaction(ledger: Ledger) -> None:
    append_n(ledger, 2)
    with pytest.raises(RuntimeError):
        with ledger.transaction() as s:
            audit.append(s, actor="operator", action="test.lost", subject="test:9")
            raise RuntimeError("the change failed")
    with ledger.read() as s:
        result = audit.verify(s)
    assert result.ok and result.count == 2


# --- tampering -------------------------------------------------------------------------------

EDITABLE = ["actor", "action", "subject", "payload_json", "at", "prev_hash", "hash", "seq"]


def _tamper(ledger: Ledger, kind: str, n: int, pos: int, other: int, column: str) -> None:
    table = AuditEntry.__table__
    with guard_off(ledger) as conn:
        rows = conn.execute(select(table).order_by(table.c.seq)).mappings().all()
        row = rows[pos]
        if kind == "edit":
            new = {
                "actor": "mallory",
                "action": "test.forged",
                "subject": "test:forged",
                "payload_json": row["payload_json"].replace('"i":', '"i": '),
                "at": row["at"] + timedelta(seconds=1),
                "prev_hash": "f" * 64,
                "hash": "e" * 64,
                "seq": n + 10,
            }[column]
            conn.execute(update(table).where(table.c.id == row["id"]).values({column: new}))
        elif kind == "delete":
            conn.execute(table.delete().where(table.c.id == row["id"]))
        elif kind == "swap":
            a, b = rows[pos], rows[other]
            conn.execute(update(table).where(table.c.id == a["id"]).values(seq=-1))
            conn.execute(update(table).where(table.c.id == b["id"]).values(seq=a["seq"]))
            conn.execute(update(table).where(table.c.id == a["id"]).values(seq=b["seq"]))
        elif kind == "insert":
            # The strongest forger: a well-formed entry chained to its predecessor, later
            # entries renumbered to make room.
            for r in reversed(rows[pos:]):
                conn.execute(update(table).where(table.c.id == r["id"]).values(seq=r["seq"] + 1))
            prev = rows[pos - 1]["hash"] if pos else audit.GENESIS
            at = row["at"]
            forged = audit.entry_hash(
                prev_hash=prev,
                seq=pos + 1,
                at=audit.format_time(at),
                actor="mallory",
                action="test.forged",
                subject="test:f",
                payload={},
            )
            conn.execute(
                table.insert().values(
                    seq=pos + 1,
                    at=at,
                    actor="mallory",
                    action="test.forged",
                    subject="test:f",
                    payload_json="{}",
                    prev_hash=prev,
                    hash=forged,
                )
            )


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(data=st.data())
def test_any_tampering_is_detected(ledger: Ledger, data: st.DataObject) -> None:
    wipe_audit(ledger)
    n = data.draw(st.integers(min_value=2, max_value=7), label="entries")
    head = append_n(ledger, n, tag=data.draw(st.sampled_from("abc"), label="tag"))
    kind = data.draw(st.sampled_from(["edit", "delete", "swap", "insert"]), label="kind")
    pos = data.draw(st.integers(min_value=0, max_value=n - 1), label="position")
    other = data.draw(st.integers(min_value=0, max_value=n - 1).filter(lambda o: o != pos), label="other")
    column = data.draw(st.sampled_from(EDITABLE), label="column")
    _tamper(ledger, kind, n, pos, other, column)
    with ledger.read() as s:
        result = audit.verify(s, expect_head=head)
    assert not result.ok, (kind, pos, other, column)
    assert result.bad_seq is not None and 1 <= result.bad_seq <= n + 1
    assert "entry #" in result.message()


def test_verify_names_the_first_bad_entry(ledger: Ledger) -> None:
    append_n(ledger, 6)
    table = AuditEntry.__table__
    with guard_off(ledger) as conn:
        conn.execute(update(table).where(table.c.seq == 3).values(subject="test:edited"))
        conn.execute(update(table).where(table.c.seq == 5).values(subject="test:edited"))
    with ledger.read() as s:
        result = audit.verify(s)
    assert not result.ok and result.bad_seq == 3 and "edited" in result.reason
    assert result.count == 2


def test_truncation_needs_the_expected_head(ledger: Ledger) -> None:
    head = append_n(ledger, 4)
    table = AuditEntry.__table__
    with guard_off(ledger) as conn:
        conn.execute(table.delete().where(table.c.seq == 4))
    with ledger.read() as s:
        assert audit.verify(s).ok  # a shorter chain is still a chain ...
        result = audit.verify(s, expect_head=head)  # ... unless its old head is known
    assert not result.ok and "expected head" in result.reason


# --- export ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_export_verifies_offline(ledger: Ledger, fmt: str) -> None:
    head = append_n(ledger, 4)
    out = io.StringIO()
    with ledger.read() as s:
        assert audit.export(s, out, fmt=fmt) == 4
    lines = out.getvalue().splitlines(keepends=True)
    assert len(lines) == (5 if fmt == "csv" else 4)
    result = audit.verify_chain(audit.read_export(lines, fmt=fmt), expect_head=head)
    assert result.ok and result.count == 4
    edited = [line.replace("test.append", "test.forged", 1) if i == 2 else line for i, line in enumerate(lines)]
    assert not audit.verify_chain(audit.read_export(edited, fmt=fmt)).ok


# --- concurrency -----------------------------------------------------------------------------


def test_concurrent_appends_from_processes_keep_the_chain(ledger_url: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    workers, per_worker = 4, 15
    barrier = ctx.Barrier(workers)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=ledger_workers.append_entries, args=(ledger_url, f"w{i}", per_worker, barrier, results))
        for i in range(workers)
    ]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert all(o == "ok" for o in outcomes), outcomes
    lg = Ledger(ledger_url)
    with lg.read() as s:
        result = audit.verify(s)
        seqs = s.scalars(select(AuditEntry.seq).order_by(AuditEntry.seq)).all()
    lg.dispose()
    assert result.ok, result.message()
    assert result.count == workers * per_worker
    assert seqs == list(range(1, workers * per_worker + 1))
