"""Two gateway processes on one PostgreSQL ledger behind a round-robin proxy: every event is
stored once and handled once, however often and wherever it is delivered.

Real parts only: `charterflow gateway` twice (each with its dispatcher), a Prefect server
subprocess of its own (the session's holds other tests' runs under the same dynamic keys), the
inbox task worker, a throwaway PostgreSQL cluster (``postgres_server`` of tests/support/ledger.py).
"""

from __future__ import annotations

import collections
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from ledger.db import Ledger
from ledger.migrate import upgrade
from ledger.models import AuditEntry
from tests.procs import PrefectServer, start, stop, subprocess_env, wait_for
from tests.proxy import Proxy, serve
from tests.support.gateway import DISCORD_PUBLIC, DISCOURSE_SECRET, discourse_request, inbox_rows
from tests.support.ledger import create_database
from tests.support.net import free_port

pytestmark = [pytest.mark.slow]

EVENTS = 30


def _gateway(port: int, env: dict[str, str], log: Path):
    return start(
        [sys.executable, "-m", "charterflow.cli", "gateway", "--host", "127.0.0.1", "--port", str(port)], env, log
    )


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def _post(url: str, n: int) -> dict:
    headers, body = discourse_request(n, event="ping")
    response = httpx.post(f"{url}/hooks/discourse", content=body, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def test_two_gateways_one_inbox_each_event_stored_once_and_handled_once(tmp_path, postgres_server):
    url = postgres_server.url(create_database(postgres_server))
    ledger = Ledger(url)
    upgrade(ledger)
    env = subprocess_env(
        CHARTERFLOW_HOME=str(tmp_path),
        CHARTERFLOW_DATABASE_URL=url,
        CHARTERFLOW_DISCOURSE_WEBHOOK_SECRET=DISCOURSE_SECRET,
        CHARTERFLOW_DISCORD_PUBLIC_KEY=DISCORD_PUBLIC,
        CHARTERFLOW_GATEWAY_FORM_SECRET="form-secret-for-tests",
        CHARTERFLOW_GATEWAY_DRAIN_INTERVAL="0.5",
    )
    prefect = PrefectServer(tmp_path, env)
    processes = []
    try:
        prefect.start()
        processes.append(
            start([sys.executable, "-c", "from flows.inbox import main; main()"], prefect.env, tmp_path / "worker.log")
        )
        gateways = []
        for n in (1, 2):
            port = free_port()
            processes.append(_gateway(port, prefect.env, tmp_path / f"gateway-{n}.log"))
            gateways.append(f"http://127.0.0.1:{port}")
        assert wait_for(lambda: all(_ready(g) for g in gateways), 120), (tmp_path / "gateway-1.log").read_text(
            errors="replace"
        )[-3000:]

        with serve(Proxy(gateways)) as proxy:
            first = [_post(proxy.url, n) for n in range(1, EVENTS + 1)]
            # Discourse redelivers every event, and each redelivery may reach either gateway.
            again = [_post(g, n) for g in gateways for n in range(1, EVENTS + 1)]
        assert proxy.forwarded == {g: EVENTS // 2 for g in gateways}  # both took deliveries
        assert not any(a.get("duplicate") for a in first)
        assert all(a.get("duplicate") for a in again)

        assert wait_for(lambda: all(r.processed_at is not None for r in inbox_rows(ledger)), 180), (
            tmp_path / "worker.log"
        ).read_text(errors="replace")[-3000:]
        rows = inbox_rows(ledger)
        assert len(rows) == EVENTS  # stored once
        assert all(r.dispatch_attempts == 1 for r in rows), [r.dispatch_attempts for r in rows]
        with ledger.read() as session:
            counts = dict(
                session.execute(
                    select(AuditEntry.action, func.count())
                    .where(
                        AuditEntry.action.in_(
                            ["inbox.received", "inbox.dispatched", "inbox.dispatch_deferred", "inbox.processed"]
                        )
                    )
                    .group_by(AuditEntry.action)
                ).all()
            )
        # A start that failed (Prefect slow under the machine's load) is released and claimed
        # again under the same attempt number, so the same run: one claim per event otherwise.
        deferred = counts.pop("inbox.dispatch_deferred", 0)
        assert counts == {"inbox.received": EVENTS, "inbox.dispatched": EVENTS + deferred, "inbox.processed": EVENTS}

        # One run per event in Prefect, though two gateways saw each (the pump's task runs are
        # recorded from the workers' events, within a few seconds).
        def names() -> collections.Counter[str]:
            runs = httpx.post(
                f"{prefect.api}/task_runs/filter",
                timeout=30,
                json={"task_runs": {"name": {"like_": "inbox-"}}, "limit": 200},
            ).json()
            return collections.Counter(run["name"] for run in runs)

        expected = {f"inbox-ping-{r.id}": 1 for r in rows}
        assert wait_for(lambda: names() == expected, 30), names()
    finally:
        for process in reversed(processes):
            stop(process)
        prefect.stop()
        ledger.dispose()
