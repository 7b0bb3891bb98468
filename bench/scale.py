"""Community scale: time and peak memory of the pure rules and the audit verify at large sizes.

    .venv/bin/python -m bench.scale [--size 1.0] [--skip-postgres]

Cases (sizes at ``--size 1``):

- ``eligibility``: ``rules.eligibility.decide_eligibility`` for 50,000 applicants, each with
  Forum and Discord evidence;
- ``tally``: ``rules.ballots.tally`` of an approval ballot with 1,000 voters;
- ``roster_plan``: ``rules.plan.plan_roles`` for 50,000 members on two platforms (desired vs
  observed, about 5% of them different, with the charter's guardrails);
- ``audit_verify_sqlite`` / ``audit_verify_postgresql``: ``ledger.audit.verify`` of 1,000,000
  entries (the chain computed while generating, inserted in bulk beforehand; PostgreSQL on a
  throwaway cluster, skipped with a line saying so when ``initdb``/``pg_ctl`` are not found).

Each case runs in its own child process, which reports the time of the measured call and its
peak resident memory (``ru_maxrss``, which includes the interpreter and the generated input).
Every case also runs at a tenth of its size in the same run: the baseline, showing how the time
grows (10x the size should take about 10x the time). Targets: audit verify of 1M <= 20 s,
everything else <= 5 s, peak memory <= 1 GiB. Results go to ``bench/results/scale.json``.
"""

from __future__ import annotations

import argparse
import glob
import json
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, insert, text

from bench.common import Row, clean_env, table, write_results
from ledger.audit import GENESIS, canonical_json, entry_hash, format_time, verify
from ledger.db import Ledger
from ledger.migrate import upgrade
from ledger.models import AuditEntry
from rules.ballots import tally
from rules.charter import default_charter
from rules.eligibility import Applicant, DiscordEvidence, DiscourseEvidence, decide_eligibility
from rules.plan import Assignment, plan_roles
from tests.support.pgcluster import cluster_dir

SIZES = {
    "eligibility": 50_000,
    "tally": 1_000,
    "roster_plan": 50_000,
    "audit_verify_sqlite": 1_000_000,
    "audit_verify_postgresql": 1_000_000,
}
TARGETS = {
    "eligibility": 5.0,
    "tally": 5.0,
    "roster_plan": 5.0,
    "audit_verify_sqlite": 20.0,
    "audit_verify_postgresql": 20.0,
}
MEMORY_TARGET_MIB = 1024
NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# ------------------------------------------------------------------------------------------------
# The cases (each runs in a child process: python -m bench.scale --case NAME --n N [--url URL])


def case_eligibility(n: int) -> tuple[float, dict[str, Any]]:
    charter = default_charter()
    dsf = frozenset(f"nominator_{i}" for i in range(500))
    people = []
    for i in range(n):
        applicant = Applicant(
            forum=f"user_{i}", discord=f"user_{i}", nominator=f"nominator_{i % 500}" if i % 3 == 0 else None
        )
        forum = DiscourseEvidence(
            created_at=NOW - timedelta(days=30 + i % 900),
            days_visited=i % 400,
            post_count=i % 250,
            last_seen_at=NOW - timedelta(days=i % 60),
            fetched_at=NOW,
        )
        discord = DiscordEvidence(
            joined_at=NOW - timedelta(days=10 + i % 700), messages_90d=None if i % 17 == 0 else i % 120, fetched_at=NOW
        )
        people.append((applicant, forum, discord))
    started = time.perf_counter()
    decisions = [
        decide_eligibility(a, discourse=f, discord=d, dsf_members=dsf, now=NOW, charter=charter) for a, f, d in people
    ]
    elapsed = time.perf_counter() - started
    statuses: dict[str, int] = {}
    for d in decisions:
        statuses[d.evidence["status"]] = statuses.get(d.evidence["status"], 0) + 1
    return elapsed, {"decisions": len(decisions), "statuses": statuses}


def case_tally(n: int) -> tuple[float, dict[str, Any]]:
    charter = default_charter()
    electorate = [f"member_{i}" for i in range(n)]
    votes = {m: ("yes", "no", "abstain", "yes")[i % 4] for i, m in enumerate(electorate)}
    votes.update({f"outsider_{i}": "yes" for i in range(n // 100)})  # refused, never counted
    opened = NOW - timedelta(days=3)
    started = time.perf_counter()
    result = tally(
        "approval", electorate=electorate, votes=votes, subject=None, opened_at=opened, now=NOW, charter=charter
    )
    elapsed = time.perf_counter() - started
    return elapsed, {"outcome": result.outcome, "refused": len(result.refused)}


def case_roster_plan(n: int) -> tuple[float, dict[str, Any]]:
    charter = default_charter()
    charter = charter.model_copy(
        update={"admins": charter.admins.model_copy(update={"max_removals_per_run": n})}
    )  # a bulk reconcile: the per-run limit is lifted
    observed: list[Assignment] = []
    desired: list[Assignment] = []
    for i in range(n):
        person = f"person_{i}"
        for platform in ("discord", "discourse"):
            role = "wg-member" if i % 10 else "moderator"
            a = Assignment(platform=platform, role=role, person=person)
            if i % 40 != 1:
                observed.append(a)
            if i % 40 != 2:
                desired.append(a)
    for platform in ("discord", "discourse"):  # the admin invariants hold before and after
        for admin in ("admin_a", "admin_b") if platform == "discord" else ("admin_b", "admin_c"):
            a = Assignment(platform=platform, role="admin", person=admin)
            observed.append(a)
            desired.append(a)
    started = time.perf_counter()
    plan = plan_roles(desired, observed, charter=charter)
    elapsed = time.perf_counter() - started
    return elapsed, {"changes": len(plan.changes), "allowed": plan.decision.allowed, "ruling": plan.decision.ruling}


def case_audit_verify(url: str) -> tuple[float, dict[str, Any]]:
    ledger = Ledger(url)
    try:
        started = time.perf_counter()
        with ledger.read() as session:
            result = verify(session)
        elapsed = time.perf_counter() - started
    finally:
        ledger.dispose()
    if not result.ok:
        raise SystemExit(f"verify failed: {result.message()}")
    return elapsed, {"entries": result.count}


def _child(case: str, n: int, url: str | None) -> None:
    base = _peak_mib()
    if case == "eligibility":
        elapsed, detail = case_eligibility(n)
    elif case == "tally":
        elapsed, detail = case_tally(n)
    elif case == "roster_plan":
        elapsed, detail = case_roster_plan(n)
    elif case.startswith("audit_verify"):
        assert url is not None
        elapsed, detail = case_audit_verify(url)
    else:
        raise SystemExit(f"unknown case {case!r}")
    print(
        json.dumps(
            {"seconds": elapsed, "peak_mib": round(_peak_mib(), 1), "start_mib": round(base, 1), "detail": detail}
        )
    )


def run_case(case: str, n: int, url: str | None = None) -> dict[str, Any]:
    argv = [sys.executable, "-m", "bench.scale", "--case", case, "--n", str(n)]
    if url:
        argv += ["--url", url]
    proc = subprocess.run(argv, capture_output=True, text=True, env=clean_env())
    if proc.returncode != 0:
        raise SystemExit(f"case {case} (n={n}) failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------------
# Generating the audit log


def _audit_rows(n: int, batch: int = 10_000) -> Iterator[list[dict[str, Any]]]:
    """``n`` chained entries in batches, as ``ledger.audit.append`` would have written them."""
    prev = GENESIS
    start = datetime(2025, 1, 1, tzinfo=UTC)
    actions = ("membership.started", "ballot.opened", "vote.cast", "role.granted", "inbox.received")
    rows: list[dict[str, Any]] = []
    for seq in range(1, n + 1):
        at = start + timedelta(seconds=seq * 7, microseconds=seq % 1_000_000)
        action = actions[seq % len(actions)]
        subject = f"person:{seq % 5000}"
        payload = {"ballot": seq % 300, "choice": ("yes", "no", "abstain")[seq % 3], "ref": f"evt-{seq}"}
        digest = entry_hash(
            prev_hash=prev,
            seq=seq,
            at=format_time(at),
            actor="flow:bench",
            action=action,
            subject=subject,
            payload=payload,
        )
        rows.append(
            {
                "seq": seq,
                "at": at,
                "actor": "flow:bench",
                "action": action,
                "subject": subject,
                "payload_json": canonical_json(payload),
                "prev_hash": prev,
                "hash": digest,
            }
        )
        prev = digest
        if len(rows) == batch:
            yield rows
            rows = []
    if rows:
        yield rows


def generate_audit(urls: Sequence[str], n: int) -> float:
    """Migrate each ledger and fill its audit log with ``n`` entries (COPY on PostgreSQL)."""
    started = time.perf_counter()
    ledgers = []
    for url in urls:
        ledger = Ledger(url)
        upgrade(ledger)
        ledgers.append(ledger)
    columns = ("seq", "at", "actor", "action", "subject", "payload_json", "prev_hash", "hash")
    conns = [
        ledger.engine.raw_connection() if ledger.engine.dialect.name == "postgresql" else None for ledger in ledgers
    ]
    try:
        for rows in _audit_rows(n):
            for ledger, raw in zip(ledgers, conns, strict=True):
                if raw is None:
                    with ledger.transaction() as session:
                        session.execute(insert(AuditEntry.__table__), rows)
                else:
                    with raw.cursor() as cur, cur.copy(f"COPY audit_log ({', '.join(columns)}) FROM STDIN") as copy:
                        for row in rows:
                            copy.write_row(tuple(row[c] for c in columns))
                    raw.commit()
    finally:
        for raw in conns:
            if raw is not None:
                raw.close()
        for ledger in ledgers:
            ledger.dispose()
    return time.perf_counter() - started


# ------------------------------------------------------------------------------------------------
# A throwaway PostgreSQL cluster (as tests/ledger/conftest.py starts one)


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


@contextmanager
def postgres() -> Iterator[str | None]:
    """The URL of a database on a throwaway cluster, or ``None`` (with a line) without binaries."""
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        print(
            "PostgreSQL: skipped (initdb/pg_ctl not found on PATH or in /usr/lib/postgresql/*/bin; "
            "scripts/test-deps.sh installs them)"
        )
        yield None
        return
    cluster = cluster_dir("charterflow-bench-pg-")
    workdir, prefix, env, data = cluster.workdir, cluster.prefix, cluster.env, cluster.data
    try:
        cluster.initdb(initdb)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        opts = cluster.options(port)
        subprocess.run(
            cluster.start_command(pg_ctl, opts),
            check=True,
            env=env,
            capture_output=True,
            text=True,
        )
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(
                [*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"], env=env, capture_output=True
            )
        shutil.rmtree(workdir, ignore_errors=True)


def _pg_database(admin_url: str, name: str) -> str:
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    engine.dispose()
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


# ------------------------------------------------------------------------------------------------
# The run


def run(*, size: float, skip_postgres: bool) -> dict[str, Any]:
    sizes = {case: max(1, int(n * size)) for case, n in SIZES.items()}
    results: dict[str, Any] = {"config": {"size": size, "sizes": sizes}, "cases": {}, "skipped": {}}
    for case in ("eligibility", "tally", "roster_plan"):
        results["cases"][case] = {
            "n": sizes[case],
            "full": run_case(case, sizes[case]),
            "tenth": run_case(case, max(1, sizes[case] // 10)),
        }
    with tempfile.TemporaryDirectory() as tmp, postgres() if not skip_postgres else _none() as pg:
        if pg is None and not skip_postgres:
            results["skipped"]["audit_verify_postgresql"] = "initdb/pg_ctl not found"
        elif skip_postgres:
            results["skipped"]["audit_verify_postgresql"] = "--skip-postgres"
        n = sizes["audit_verify_sqlite"]
        for label, count in (("full", n), ("tenth", max(1, n // 10))):
            urls = {"audit_verify_sqlite": f"sqlite:///{Path(tmp) / f'{label}.db'}"}
            if pg is not None:
                urls["audit_verify_postgresql"] = _pg_database(pg, f"bench_{label}")
            generated = generate_audit(list(urls.values()), count)
            print(
                f"generated {count:,} audit entries on {', '.join(u.split(':')[0] for u in urls.values())} "
                f"in {generated:.1f} s"
            )
            for case, url in urls.items():
                results["cases"].setdefault(case, {"n": n})[label] = run_case(case, count, url)
    return results


@contextmanager
def _none() -> Iterator[None]:
    yield None


def _seconds(value: float) -> str:
    return f"{value:.3f} s" if value >= 0.1 else f"{value * 1000:.2f} ms"


def rows(results: dict[str, Any]) -> list[Row]:
    out: list[Row] = []
    for case, data in results["cases"].items():
        full, tenth = data["full"], data["tenth"]
        target = TARGETS[case]
        out.append(
            Row(
                f"{case} (n={data['n']:,}): time",
                _seconds(full["seconds"]),
                f"<= {target:g} s",
                full["seconds"] <= target,
                f"n/10: {_seconds(tenth['seconds'])}",
            )
        )
        out.append(
            Row(
                f"{case} (n={data['n']:,}): peak memory",
                f"{full['peak_mib']:.0f} MiB",
                f"<= {MEMORY_TARGET_MIB} MiB",
                full["peak_mib"] <= MEMORY_TARGET_MIB,
                f"n/10: {tenth['peak_mib']:.0f} MiB",
            )
        )
    for case, why in results["skipped"].items():
        out.append(Row(f"{case}: skipped", why))
    return out


def main(argv: Sequence[str] | None = None) -> dict[str, Any] | None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=float, default=1.0, help="multiplies every size (0.01 for a smoke run)")
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--out", type=Path, default=None, help="the JSON file (default bench/results/scale.json)")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.case:
        _child(args.case, args.n, args.url)
        return None
    results = run(size=args.size, skip_postgres=args.skip_postgres)
    results["table"] = [r.as_dict() for r in rows(results)]
    path = write_results("scale", results, out=args.out)
    print(
        table(
            "community scale (each case in its own process; baseline: the same case at a tenth of its size)",
            rows(results),
        )
    )
    print(f"results: {path}")
    return results


if __name__ == "__main__":
    main()
