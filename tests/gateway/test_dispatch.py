"""Dispatch through Prefect, exactly once per event, across a Prefect outage.

One real Prefect server subprocess on a free port (started *after* the events arrive: that is
the outage) and one real task worker (``python -m flows.inbox``), like `charterflow up` runs
them. The session's `prefect_server` harness is not used: it cannot be stopped and started.
"""

from __future__ import annotations

import collections
import os
import subprocess
import sys

import httpx
import pytest
from sqlalchemy import func, select
from starlette.testclient import TestClient

from flows import inbox
from gateway.app import create_app
from gateway.dispatch import PrefectDispatcher
from ledger.models import AuditEntry
from tests.gateway.conftest import discourse_request, gateway_settings, inbox_rows
from tests.procs import free_port, start, stop, wait_for

OTHER_CATEGORY = "77"  # neither the applications nor the ideas category


def task_runs(api: str) -> list[dict]:
    runs: list[dict] = []
    offset = 0
    while True:
        page = httpx.post(f"{api}/task_runs/filter", timeout=10, json={
            "task_runs": {"name": {"like_": "inbox-"}}, "limit": 200, "offset": offset}).json()
        runs += page
        if len(page) < 200:
            return runs
        offset += 200


@pytest.mark.slow
def test_prefect_down_fifty_events_then_up_each_runs_exactly_once(tmp_path, ledger):
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    dispatcher = PrefectDispatcher(ledger=ledger, api_url=api, drain_interval=0.5, stale_after=600)
    app = create_app(settings=gateway_settings(dispatch=True), ledger=ledger, dispatcher=dispatcher)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "CHARTERFLOW_"))}
    env.update(PREFECT_HOME=str(tmp_path / "prefect"), PREFECT_API_URL=api,
               PREFECT_SERVER_ANALYTICS_ENABLED="false", PREFECT_LOGGING_COLORS="false",
               CHARTERFLOW_HOME=str(tmp_path), CHARTERFLOW_DATABASE_URL=str(ledger.engine.url),
               PYTHONUNBUFFERED="1")
    processes: list[subprocess.Popen] = []
    try:
        with TestClient(app) as client:
            # Prefect is down: every event is stored and acknowledged; /healthz says so.
            health = client.get("/healthz")
            assert health.status_code == 503 and health.json()["prefect"]["prefect_reachable"] is False
            for n in range(1, 51):
                event = "ping" if n % 10 == 0 else "topic_created"
                # Topics of a category nobody routes: kept and handled as "unknown".
                headers, body = discourse_request(n, event=event, category=OTHER_CATEGORY)
                assert client.post("/hooks/discourse", content=body, headers=headers).status_code == 200
            for n in range(1, 11):  # Discourse redelivers ten of them
                headers, body = discourse_request(n, event="ping" if n % 10 == 0 else "topic_created",
                                                  category=OTHER_CATEGORY)
                assert client.post("/hooks/discourse", content=body, headers=headers).json()["duplicate"]
            rows = inbox_rows(ledger)
            assert len(rows) == 50
            assert all(r.dispatched_at is None and r.processed_at is None for r in rows)

            # Prefect comes up, then its task worker; the drain loop dispatches everything.
            processes.append(start([sys.executable, "-m", "prefect", "server", "start", "--host",
                                    "127.0.0.1", "--port", str(port)], env, tmp_path / "server.log"))
            assert wait_for(lambda: dispatcher.prefect_reachable(fresh=True), 150), \
                (tmp_path / "server.log").read_text()[-3000:]
            processes.append(start([sys.executable, "-m", "flows.inbox"], env, tmp_path / "worker.log"))

            def settled() -> bool:
                return all(r.processed_at is not None or r.dispatch_note == inbox.AWAITING_HANDLER
                           for r in inbox_rows(ledger))

            assert wait_for(settled, 150), (tmp_path / "worker.log").read_text()[-3000:]
            assert client.get("/healthz").status_code == 200

        rows = inbox_rows(ledger)
        assert sum(r.processed_at is not None for r in rows) == 50  # 5 pings, 45 unrouted topics
        assert not any(r.dispatch_note == inbox.AWAITING_HANDLER for r in rows)
        assert all(r.dispatch_attempts == 1 for r in rows)
        runs = task_runs(api)
        names = collections.Counter(run["name"] for run in runs)
        expected = {f"inbox-{r.route}-{r.id}" for r in rows}
        assert set(names) == expected and set(names.values()) == {1}, names
        assert {run["state_type"] for run in runs} == {"COMPLETED"}
        with ledger.read() as s:  # and each was handled once: one audit entry per outcome
            held = s.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "inbox.held"))
            processed = s.scalar(select(func.count()).select_from(AuditEntry)
                                 .where(AuditEntry.action == "inbox.processed"))
        assert (held, processed) == (0, 50)
    finally:
        for process in reversed(processes):
            stop(process)
