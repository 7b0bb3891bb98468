"""Push mode (``CHARTERFLOW_INBOX_DISPATCH=push``). Prefect's server stops for 60 s while 50
webhooks arrive: the gateway accepts every one (200),
and after the server is back its drain loop dispatches each exactly once, which the task worker
runs once. A Prefect server subprocess of its own (the session's harness cannot be stopped),
restarted on the same port with the same database, as an operator would.

``CHARTERFLOW_RELIABILITY_OUTAGE_SECONDS`` shortens the outage for local runs (CI: 60).

The scenario mostly waits, so it runs on a thread of its own (``Outage``), started by the
``prefect_outage`` fixture before the lifecycle runs are played; the test collects its result.
"""

from __future__ import annotations

import collections
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from starlette.testclient import TestClient

from gateway.app import create_app
from gateway.dispatch import PrefectDispatcher
from ledger.db import Ledger
from ledger.migrate import upgrade
from ledger.models import AuditEntry
from tests.procs import PrefectServer, start, stop, subprocess_env, wait_for
from tests.support.gateway import DISCOURSE_SECRET, discourse_request, gateway_settings, inbox_rows

pytestmark = [pytest.mark.reliability, pytest.mark.slow]

OUTAGE = float(os.environ.get("CHARTERFLOW_RELIABILITY_OUTAGE_SECONDS", "60"))
EVENTS = 50


def task_runs(api: str) -> list[dict]:
    runs: list[dict] = []
    while True:
        page = httpx.post(
            f"{api}/task_runs/filter",
            timeout=30,
            json={"task_runs": {"name": {"like_": "inbox-"}}, "limit": 200, "offset": len(runs)},
        ).json()
        runs += page
        if len(page) < 200:
            return runs


class Outage:
    """The outage scenario on a thread: :meth:`result` waits for it and re-raises its failure."""

    def __init__(self, tmp_path: Path, evidence: Any) -> None:
        self.tmp_path, self.evidence = tmp_path, evidence
        # Migrated here, on the caller's thread: alembic's context is global to the process.
        self.ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}", lock_timeout=30)
        upgrade(self.ledger)
        self.error: BaseException | None = None
        self.report = ""
        self.thread = threading.Thread(target=self._run, name="prefect-outage", daemon=True)

    def start(self) -> Outage:
        self.thread.start()
        return self

    def _run(self) -> None:
        try:
            self.report = outage_scenario(self.tmp_path, self.ledger, self.evidence)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test
            self.error = exc

    def result(self, timeout: float = 600) -> str:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the outage scenario did not finish"
        if self.error is not None:
            raise self.error
        return self.report


def test_prefect_down_for_a_minute_while_fifty_webhooks_arrive(prefect_outage, record_property):
    record_property("measure:outage", prefect_outage.result())


def outage_scenario(tmp_path: Path, ledger: Ledger, evidence: Any) -> str:
    # Push mode: the gateway dispatches and its drain loop catches up (`up` pulls: the chaos test
    # kills its Prefect server).
    env = subprocess_env(
        CHARTERFLOW_HOME=str(tmp_path),
        CHARTERFLOW_DATABASE_URL=str(ledger.engine.url),
        CHARTERFLOW_INBOX_DISPATCH="push",
    )
    server = PrefectServer(tmp_path, env)
    evidence.secrets["gateway discourse webhook secret"] = DISCOURSE_SECRET
    worker = None
    try:
        server.start()
        worker = start([sys.executable, "-m", "flows.inbox"], server.env, tmp_path / "worker.log")
        dispatcher = PrefectDispatcher(ledger=ledger, api_url=server.api, drain_interval=0.5, stale_after=600)
        app = create_app(settings=gateway_settings(dispatch=True), ledger=ledger, dispatcher=dispatcher)
        with TestClient(app) as client:
            assert wait_for(lambda: client.get("/healthz").status_code == 200, 60)
            # One event while Prefect is up: dispatched and handled at once.
            headers, body = discourse_request(1, event="ping")
            assert client.post("/hooks/discourse", content=body, headers=headers).status_code == 200
            assert wait_for(lambda: inbox_rows(ledger)[0].processed_at is not None, 90), (
                tmp_path / "worker.log"
            ).read_text(errors="replace")[-3000:]

            # The server stops; 50 webhooks arrive over the outage, each acknowledged at once.
            server.stop()
            down_at = time.monotonic()
            statuses, slowest = [], 0.0
            for n in range(2, EVENTS + 2):
                headers, body = discourse_request(n, event="ping")
                began = time.monotonic()
                statuses.append(client.post("/hooks/discourse", content=body, headers=headers).status_code)
                slowest = max(slowest, time.monotonic() - began)
                time.sleep(max(0.0, down_at + OUTAGE * (n - 1) / EVENTS - time.monotonic()))
            assert statuses == [200] * EVENTS
            assert client.get("/healthz").status_code == 503  # the gateway says Prefect is down
            rows = inbox_rows(ledger)
            assert len(rows) == EVENTS + 1
            assert sum(r.processed_at is None for r in rows) == EVENTS
            time.sleep(max(0.0, down_at + OUTAGE - time.monotonic()))

            # The server comes back (same port, same database); the drain loop catches up.
            back_at = time.monotonic()
            server.start()
            # The task worker may have given up while its server was gone: start it again if so,
            # as `charterflow up` supervises it.
            restarted_worker = worker.poll() is not None
            if restarted_worker:
                worker = start([sys.executable, "-m", "flows.inbox"], server.env, tmp_path / "worker.log")
            assert wait_for(lambda: all(r.processed_at is not None for r in inbox_rows(ledger)), 180), (
                tmp_path / "worker.log"
            ).read_text(errors="replace")[-3000:]
            caught_up = time.monotonic() - back_at
        report = (
            f"Prefect outage {OUTAGE:.0f} s: slowest acknowledgement {slowest * 1000:.0f} ms; "
            f"all {EVENTS} handled {caught_up:.1f} s after the server was started again"
            f" (task worker restarted: {restarted_worker})"
        )

        rows = inbox_rows(ledger)
        assert all(r.dispatch_attempts == 1 for r in rows), [r.dispatch_attempts for r in rows]
        # The ledger marks an event processed inside its task; the run's Completed state reaches
        # the server just after (task-run states are recorded in batches): wait for it.
        wait_for(lambda: {run["state_type"] for run in task_runs(server.api)} == {"COMPLETED"}, 60)
        runs = task_runs(server.api)
        names = collections.Counter(run["name"] for run in runs)
        assert set(names) == {f"inbox-{r.route}-{r.id}" for r in rows}
        assert set(names.values()) == {1}, names
        assert {run["state_type"] for run in runs} == {"COMPLETED"}
        with ledger.read() as s:
            processed = s.scalar(
                select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "inbox.processed")
            )
        assert processed == EVENTS + 1
        return report
    finally:
        if worker is not None:
            stop(worker)
        server.stop()
        ledger.dispose()
        for name in ("prefect-server.log", "worker.log"):
            path = tmp_path / name
            if path.exists():
                evidence.add_text(f"outage test {name}", path.read_text(errors="replace"))
