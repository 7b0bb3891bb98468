"""The append-only, hash-chained audit log (R-RECORD, R-PRIVACY-2).

Each entry's ``hash`` is ``sha256(prev_hash + "\\n" + canonical_json(entry))`` where the entry is
``{seq, at, actor, action, subject, payload}``; the first entry's ``prev_hash`` is 64 zeros.
Canonical JSON: keys sorted, no spaces, UTF-8, ``at`` as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``.
Payloads hold ids, enum values and content hashes (``content_digest``), never personal data, so
erasing a person leaves every hash intact. Floats are refused: their text form is not portable.

``append`` is the only writer; there is no update or delete function. Appends serialize: on
PostgreSQL with ``pg_advisory_xact_lock``, on SQLite through the ``BEGIN IMMEDIATE`` of every
``Ledger.transaction()``; ``seq`` and ``hash`` are unique as a last line of defence.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any, TypedDict

from sqlalchemy import func, insert, select, text
from sqlalchemy.orm import Session

from ledger.db import WRITE_LOCK_KEY
from ledger.models import AuditEntry
from ledger.types import utcnow

GENESIS = "0" * 64
# Actors and subjects are references ("person:12", "operator", "flow:intake"), not names.
_REF = re.compile(r"^[a-z][a-z0-9_.-]{0,39}(:[A-Za-z0-9_.:@/+-]{1,120})?$")
EXPORT_FIELDS = ("seq", "at", "actor", "action", "subject", "payload", "prev_hash", "hash")


def canonical_json(value: Any) -> str:
    """The one text form of a JSON value that the hashes are computed over."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def format_time(at: datetime) -> str:
    """``at`` in the canonical UTC form used in hashes and exports."""
    if at.tzinfo is None:
        raise ValueError("audit times must be timezone-aware")
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def content_digest(value: Any, *, salt: str | None = None) -> str:
    """``sha256:<hex>`` of ``value``'s canonical JSON, salted when ``salt`` is given.

    Use it to let the audit log refer to personal content without holding it; the salt (kept
    beside the content, erased with it) stops anyone from confirming a guessed value later.
    """
    data = (salt or "") + canonical_json(value)
    return "sha256:" + hashlib.sha256(data.encode("utf-8")).hexdigest()


def entry_hash(*, prev_hash: str, seq: int, at: str, actor: str, action: str, subject: str, payload: Any) -> str:
    """The hash of one entry (``at`` already in canonical form)."""
    body = canonical_json(
        {"seq": seq, "at": at, "actor": actor, "action": action, "subject": subject, "payload": payload}
    )
    return hashlib.sha256(f"{prev_hash}\n{body}".encode()).hexdigest()


_json_str = json.encoder.encode_basestring  # what canonical_json writes for a str


def _hash_of_text(
    *, prev_hash: str, seq: int, at: str, actor: str, action: str, subject: str, payload_json: str
) -> str:
    """``entry_hash`` with the payload already in canonical JSON: the same body, keys in sorted
    order, without decoding and re-encoding the payload (verify's hot path)."""
    body = (
        f'{{"action":{_json_str(action)},"actor":{_json_str(actor)},"at":{_json_str(at)},'
        f'"payload":{payload_json},"seq":{seq},"subject":{_json_str(subject)}}}'
    )
    return hashlib.sha256(f"{prev_hash}\n{body}".encode()).hexdigest()


def _check_payload(value: Any, path: str = "payload") -> None:
    if value is None or isinstance(value, (str, bool, int)):
        return
    if isinstance(value, float):
        raise ValueError(f"{path}: floats are not allowed in audit payloads; use a string")
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{path}: keys must be strings")
            _check_payload(item, f"{path}.{key}")
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_payload(item, f"{path}[{i}]")
        return
    raise ValueError(f"{path}: {type(value).__name__} is not a JSON value")


_TAIL = select(AuditEntry.seq, AuditEntry.hash).order_by(AuditEntry.seq.desc()).limit(1)
_INSERT = insert(AuditEntry)  # run on the connection: a Core insert


def append(
    session: Session,
    *,
    actor: str,
    action: str,
    subject: str,
    payload: Mapping[str, Any] | None = None,
    at: datetime | None = None,
) -> AuditEntry:
    """Append one entry in ``session``'s transaction (committed or rolled back with it)."""
    for name, value in (("actor", actor), ("subject", subject)):
        if not _REF.match(value):
            raise ValueError(f"audit {name} {value!r} is not a reference like 'person:12'")
    if not re.match(r"^[a-z][a-z0-9_.-]{0,79}$", action):
        raise ValueError(f"audit action {action!r} must look like 'membership.started'")
    body = dict(payload or {})
    _check_payload(body)
    payload_json = canonical_json(body)
    connection = session.connection()
    if (
        connection.dialect.name == "postgresql"
        and connection.get_execution_options().get("ledger_begin") != "IMMEDIATE"
    ):
        # Held until this transaction ends, so the next appender sees our entry as the tail.
        # A transaction of Ledger.transaction() took it when it began: a round trip saved
        # while every other writer waits.
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": WRITE_LOCK_KEY})
    session.flush()  # what the entry records is written first
    last = session.execute(_TAIL).first()
    seq, prev = (last.seq + 1, last.hash) if last else (1, GENESIS)
    when = (at or utcnow()).astimezone(UTC)
    row = {
        "seq": seq,
        "at": when,
        "actor": actor,
        "action": action,
        "subject": subject,
        "payload_json": payload_json,
        "prev_hash": prev,
        "hash": entry_hash(
            prev_hash=prev, seq=seq, at=format_time(when), actor=actor, action=action, subject=subject, payload=body
        ),
    }
    # A Core insert, not the ORM's unit of work: a third of an append's CPU, and an `/idea`
    # appends six (issue 19 point 7). The entry returned is not in the session.
    connection.execute(_INSERT, row)
    return AuditEntry(**row)


# --- reading, verifying, exporting -----------------------------------------------------------


def entry_record(entry: AuditEntry) -> dict[str, Any]:
    """An entry as the plain record that exports hold and ``verify_chain`` checks."""
    return {
        "seq": entry.seq,
        "at": format_time(entry.at),
        "actor": entry.actor,
        "action": entry.action,
        "subject": entry.subject,
        "payload": json.loads(entry.payload_json),
        "prev_hash": entry.prev_hash,
        "hash": entry.hash,
        "_payload_json": entry.payload_json,
    }


_RECORD_COLUMNS = (
    AuditEntry.seq,
    AuditEntry.at,
    AuditEntry.actor,
    AuditEntry.action,
    AuditEntry.subject,
    AuditEntry.payload_json,
    AuditEntry.prev_hash,
    AuditEntry.hash,
)


def _rows(session: Session, batch: int) -> Any:
    # Plain rows, not ORM objects: building instances to throw away took a third of the time of
    # verifying 1M entries (bench/scale.py). Rows have the same attribute names.
    return session.execute(
        select(*_RECORD_COLUMNS).order_by(AuditEntry.seq, AuditEntry.id).execution_options(yield_per=batch)
    )


def iter_records(session: Session, *, batch: int = 2000) -> Iterator[dict[str, Any]]:
    """Every entry in ``seq`` order, streamed."""
    for row in _rows(session, batch):
        yield entry_record(row)


@dataclass(frozen=True, kw_only=True)
class VerifyResult:
    """What ``verify`` found. ``bad_seq``/``reason`` name the first bad entry when not ``ok``."""

    ok: bool
    count: int
    head: str
    bad_seq: int | None = None
    reason: str | None = None

    def message(self) -> str:
        """One line for a person."""
        if self.ok:
            return f"ok: {self.count} audit entries, head {self.count}:{self.head}"
        return f"audit log broken at entry #{self.bad_seq}: {self.reason}"


@dataclass(frozen=True, kw_only=True)
class Head:
    """The newest entry of the chain: its ``seq`` and ``hash`` (``0`` and 64 zeros when empty).
    Printed as ``SEQ:HASH``, the form ``--expect-head`` takes; witnessed outside the ledger
    (``db backup``, the quarterly Board report) it catches a chain whose tail was cut."""

    seq: int
    hash: str

    def __str__(self) -> str:
        return f"{self.seq}:{self.hash}"

    def short(self) -> str:
        """``<seq> <first 12 hex digits>``: enough to compare by eye in a report."""
        return f"{self.seq} {self.hash[:12]}"


def head(session: Session) -> Head:
    """The chain's head as stored (``verify`` says whether it is intact)."""
    row = session.execute(select(AuditEntry.seq, AuditEntry.hash).order_by(AuditEntry.seq.desc()).limit(1)).first()
    return Head(seq=row[0], hash=row[1]) if row else Head(seq=0, hash=GENESIS)


def parse_head(text: str) -> tuple[int | None, str]:
    """``SEQ:HASH`` (or a bare ``HASH``, as older heads were printed) → (seq or None, hash);
    with ``SEQ`` the hash may be a prefix of at least 12 hex digits (what the quarterly Board
    report shows); ``SEQ HASH`` is read as ``SEQ:HASH``. ``ValueError`` naming the form."""
    seq_text, _, digest = text.strip().replace(" ", ":", 1).rpartition(":")
    digest = digest.lower()
    shape = r"[0-9a-f]{12,64}" if seq_text else r"[0-9a-f]{64}"
    if not re.fullmatch(shape, digest) or (seq_text and not seq_text.isdigit()):
        raise ValueError(
            f"--expect-head {text[:80]!r}: use SEQ:HASH as printed by "
            "`charterflow db backup` or `audit verify` (HASH: 64 hex digits, or "
            "at least the first 12 with SEQ)"
        )
    return (int(seq_text) if seq_text else None), digest


def verify_chain(records: Iterable[Mapping[str, Any]], *, expect_head: str | None = None) -> VerifyResult:
    """Check a sequence of records (from the database or an export) link by link.

    Detects an edited entry (its hash no longer matches its content), a deleted, inserted or
    reordered one (``seq`` not consecutive or ``prev_hash`` not the previous hash). Deleting
    entries from the end leaves a valid shorter chain: pass a head witnessed earlier as
    ``expect_head`` (``SEQ:HASH``; a bare hash is still accepted) to catch that too: entry SEQ
    must exist and have that hash.
    """
    want_seq, want_hash = parse_head(expect_head) if expect_head is not None else (None, None)
    checker = _HeadCheck(want_seq, want_hash)
    result = _walk(records, checker)
    if not result.ok:
        return result
    return checker.verdict(result)


class _HeadCheck:
    """Whether the witnessed head is in the chain, at its place."""

    def __init__(self, seq: int | None, digest: str | None) -> None:
        self.seq, self.digest = seq, digest
        self.seen = digest is None
        self.found_at: str | None = None  # the hash at ``seq``, when it differs

    def see(self, seq: int, computed: str) -> None:
        if self.digest is None:
            return
        if self.seq is None and computed == self.digest:
            self.seen = True
        elif seq == self.seq:
            self.seen = computed.startswith(self.digest)
            self.found_at = None if self.seen else computed

    def verdict(self, result: VerifyResult) -> VerifyResult:
        if self.seen:
            return result
        expected = f"{self.seq}:{self.digest}" if self.seq is not None else str(self.digest)
        found = f"{result.count}:{result.head}"
        if self.found_at is not None:
            why = f"entry #{self.seq} has hash {self.found_at}: the log was rewritten"
        else:
            why = "entries were deleted from the end, or this is an older copy of the log"
        return VerifyResult(
            ok=False,
            count=result.count,
            head=result.head,
            bad_seq=result.count + 1 if self.found_at is None else self.seq,
            reason=f"expected head {expected}, found head {found}: {why}",
        )


def _position_problem(rec: Mapping[str, Any], expected_seq: int, prev: str) -> tuple[Any, str] | None:
    """(bad_seq, reason) when the entry is out of place in the chain, else None."""
    seq = rec.get("seq")
    if seq != expected_seq:
        why = (
            "entries before it were deleted or it was moved"
            if isinstance(seq, int) and seq > expected_seq
            else "an entry was inserted or moved here"
        )
        return expected_seq, f"found seq {seq} where {expected_seq} belongs: {why}"
    if rec.get("prev_hash") != prev:
        return seq, (
            "prev_hash does not match the previous entry's hash: an entry before it was "
            "deleted, inserted, reordered or edited"
        )
    return None


class _TextFields(TypedDict):
    """The hashed text fields of an entry as verify reads them (whatever is stored, as text)."""

    at: str
    actor: str
    action: str
    subject: str


def _content_hash(rec: Mapping[str, Any], seq: Any, prev: str) -> tuple[str, str | None]:
    """(hash, None) when the entry's hash matches its content, else ("", reason)."""
    fields = _TextFields(
        at=str(rec.get("at")),
        actor=str(rec.get("actor")),
        action=str(rec.get("action")),
        subject=str(rec.get("subject")),
    )
    raw = rec.get("_payload_json")
    if raw is not None and type(seq) is int:
        # Hashing the stored text as it is gives the same hash when it is canonical; any
        # other text (or content) gives another, and the checks below say which it was.
        computed = _hash_of_text(prev_hash=prev, seq=seq, payload_json=raw, **fields)
        if computed == rec.get("hash"):
            return computed, None
    if "payload" in rec or raw is None:
        payload = rec.get("payload")
    else:
        try:
            payload = json.loads(raw)
        except ValueError:
            return "", "payload is not valid JSON: it was edited"
    if raw is not None and raw != canonical_json(payload):
        return "", "payload is not stored in canonical form: it was edited"
    try:
        computed = entry_hash(prev_hash=prev, seq=seq, payload=payload, **fields)
    except (TypeError, ValueError):
        computed = ""
    if computed != rec.get("hash"):
        return "", "hash does not match the entry's content: it was edited"
    return computed, None


def _walk(records: Iterable[Mapping[str, Any]], checker: _HeadCheck) -> VerifyResult:
    prev, count = GENESIS, 0
    for expected_seq, rec in enumerate(records, start=1):
        problem = _position_problem(rec, expected_seq, prev)
        if problem is not None:
            bad_seq, reason = problem
            return VerifyResult(ok=False, count=count, head=prev, bad_seq=bad_seq, reason=reason)
        seq: Any = rec.get("seq")  # equals expected_seq here
        computed, failure = _content_hash(rec, seq, prev)
        if failure is not None:
            return VerifyResult(ok=False, count=count, head=prev, bad_seq=seq, reason=failure)
        prev, count = computed, count + 1
        checker.see(seq, computed)
    return VerifyResult(ok=True, count=count, head=prev)


def verify(session: Session, *, expect_head: str | None = None) -> VerifyResult:
    """Verify the whole log in the database (streamed: memory stays flat at any size)."""
    # The payload is decoded only for an entry whose hash does not match (verify_chain).
    records = (
        {
            "seq": r.seq,
            "at": format_time(r.at),
            "actor": r.actor,
            "action": r.action,
            "subject": r.subject,
            "_payload_json": r.payload_json,
            "prev_hash": r.prev_hash,
            "hash": r.hash,
        }
        for r in _rows(session, 2000)
    )
    return verify_chain(records, expect_head=expect_head)


def count(session: Session) -> int:
    """Number of entries."""
    return session.execute(select(func.count()).select_from(AuditEntry)).scalar_one()


def export(session: Session, out: IO[str], *, fmt: str = "jsonl") -> int:
    """Write every entry to ``out`` as ``jsonl`` (one canonical JSON object per line) or
    ``csv`` (payload as canonical JSON text). Returns the number of entries written."""
    if fmt not in ("jsonl", "csv"):
        raise ValueError(f"unknown export format {fmt!r}: use jsonl or csv")
    n = 0
    writer = None
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(EXPORT_FIELDS)
    for rec in iter_records(session):
        if writer is not None:
            writer.writerow([canonical_json(rec["payload"]) if f == "payload" else rec[f] for f in EXPORT_FIELDS])
        else:
            out.write(canonical_json({f: rec[f] for f in EXPORT_FIELDS}) + "\n")
        n += 1
    return n


def read_export(lines: Iterable[str], *, fmt: str = "jsonl") -> Iterator[dict[str, Any]]:
    """Records from an export, for ``verify_chain`` (offline verification)."""
    if fmt == "jsonl":
        for line in lines:
            if line.strip():
                yield json.loads(line)
    elif fmt == "csv":
        for row in csv.DictReader(lines):
            yield {**row, "seq": int(row["seq"]), "payload": json.loads(row["payload"])}
    else:
        raise ValueError(f"unknown export format {fmt!r}: use jsonl or csv")
