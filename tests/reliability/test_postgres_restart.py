"""PostgreSQL restarts (``pg_ctl restart -m fast``) while applications are being filed, with the
ledger on PostgreSQL: every step either goes through (the pool pings and reconnects) or fails
loudly and completes when run again; nothing is half-written (ledger invariants, the audit
chain, each side effect once on the platforms).

A throwaway cluster of its own, started as ``tests/support/ledger.py`` does (``initdb`` +
``pg_ctl`` on a free port; as the ``postgres`` user when run as root).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text

from ledger import audit
from ledger.models import (
    Application,
    ApplicationStatus,
    AuditEntry,
    Ballot,
    BallotStatus,
    InboxEvent,
    MembershipStatus,
    Person,
)
from tests.reliability.scenario import Lifecycle
from tests.reliability.world import APPLICANTS, duplicates, side_effects, stack
from tests.support.ledger import pg_bin
from tests.support.net import free_port
from tests.support.pgcluster import cluster_dir

pytestmark = [pytest.mark.reliability, pytest.mark.slow]

SIX = APPLICANTS[:6]


@dataclass
class Cluster:
    port: int
    data: Path
    log: Path
    prefix: list[str]
    env: dict[str, str]

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def ctl(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*self.prefix, pg_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.log), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    where = cluster_dir("charterflow-pg-rel-")
    workdir = where.workdir
    where.initdb(pg_bin("initdb"))
    port = free_port()
    c = Cluster(port=port, data=where.data, log=workdir / "server.log", prefix=where.prefix, env=where.env)
    opts = where.options(port, "-c max_connections=60")
    started = c.ctl("-o", opts, "-w", "-t", "60", "start")
    assert started.returncode == 0, started.stderr + c.log.read_text(errors="replace")[-2000:]
    try:
        yield c
    finally:
        c.ctl("-m", "immediate", "-w", "stop")
        shutil.rmtree(workdir, ignore_errors=True)


def test_postgres_restarted_mid_run(prefect_server, cluster, tmp_path, evidence, record_property):
    admin = create_engine(cluster.url("postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text("CREATE DATABASE reliability"))
    admin.dispose()

    restarts: list[subprocess.CompletedProcess] = []

    def restart_soon() -> None:
        time.sleep(0.5)  # the intake flow is under way by then
        restarts.append(cluster.ctl("-m", "fast", "-w", "-t", "60", "restart"))

    threads: list[threading.Thread] = []

    def on_step(name: str) -> None:
        if name == f"apply {SIX[2]}" and not threads:
            threads.append(threading.Thread(target=restart_soon, daemon=True))
            threads[0].start()

    with stack(tmp_path, ledger_url=cluster.url("reliability")) as s:
        evidence.add_secrets(s.secrets, prefix="postgres test")
        life = Lifecycle(s, faults=False, applicants=SIX, on_step=on_step)
        life.applications()
        threads[0].join(timeout=120)
        assert restarts and restarts[0].returncode == 0, restarts and restarts[0].stderr
        record_property(
            "measure:postgres",
            f"PostgreSQL restarted during {SIX[2]}'s intake; steps run again: {life.run.reruns or 'none'}",
        )
        states = s.states()
        ledger = s.world.ledger
        with ledger.read() as session:
            assert audit.verify(session).ok
            apps = {session.get(Person, a.person_id).handle: a for a in session.scalars(select(Application))}
            assert sorted(apps) == sorted(SIX), "every application filed once"
            for handle, app in apps.items():
                ballot = session.get(Ballot, app.ballot_id)
                assert ballot is not None and ballot.status == BallotStatus.CLOSED
                assert app.status == (ApplicationStatus.REJECTED if handle == SIX[-1] else ApplicationStatus.APPROVED)
                person = session.get(Person, app.person_id)
                active = [m for m in person.memberships if m.status == MembershipStatus.ACTIVE]
                assert len(active) == (0 if handle == SIX[-1] else 1)
                for m in active:
                    assert [t.approved_by_ballot_id for t in m.terms] == [ballot.id]
            effects = Counter(
                e.subject for e in session.scalars(select(AuditEntry).where(AuditEntry.action == "effect.done"))
            )
            assert [k for k, n in effects.items() if n > 1] == []
            assert all(e.processed_at is not None for e in session.scalars(select(InboxEvent)))
        assert duplicates(states) == []
        group = next(g for g in states["discourse"]["groups"] if g["name"] == "working-group")
        assert set(SIX[:-1]) <= set(group["members"]) and SIX[-1] not in group["members"]
        adds = Counter(
            c["username"] for c in states["discourse"]["role_changes"] if c["action"] == "group_add:working-group"
        )
        assert {n: adds[n] for n in SIX} == {n: (0 if n == SIX[-1] else 1) for n in SIX}
        print("side effects:", side_effects(states))
        with ledger.read() as session:
            evidence.add_text(
                "postgres test audit entries",
                "\n".join(f"{e.action} {e.subject} {e.payload_json}" for e in session.scalars(select(AuditEntry))),
            )
        evidence.add_text("postgres test sandbox states", json.dumps(states, default=str))
        evidence.add_text("postgres server log", cluster.log.read_text(errors="replace"))
