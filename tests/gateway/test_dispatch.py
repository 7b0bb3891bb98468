"""Dispatch through Prefect, exactly once per event, across a Prefect outage.

One real Prefect server subprocess on a free port (started *after* the events arrive: that is
the outage) and one real task worker (``python -m flows.inbox``), like `charterflow up` runs
them. The session's `prefect_server` harness is not used: it cannot be stopped and started.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime

import httpx
import pytest
from prefect.settings import PREFECT_API_URL
from sqlalchemy import func, select
from starlette.testclient import TestClient

from flows import inbox
from gateway.app import create_app
from gateway.dispatch import PrefectDispatcher
from ledger import repo
from ledger.models import AuditEntry, InboxEvent
from ledger.types import utcnow
from tests.procs import start, stop, wait_for
from tests.proxy import Proxy, serve
from tests.support.gateway import discourse_request, gateway_settings, inbox_rows, store_pings
from tests.support.net import free_port

OTHER_CATEGORY = "77"
# Background runs have no flow run: on the session's Prefect server the inbox pump's tests
# (tests/flows/test_inbox_pump.py) leave task runs of the same names inside flow runs.
BACKGROUND = {"flow_run_id": {"is_null_": True}}  # neither the applications nor the ideas category


def task_runs(api: str) -> list[dict]:
    runs: list[dict] = []
    offset = 0
    while True:
        page = httpx.post(
            f"{api}/task_runs/filter",
            timeout=10,
            json={"task_runs": {"name": {"like_": "inbox-"}}, "limit": 200, "offset": offset},
        ).json()
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
    env.update(
        PREFECT_HOME=str(tmp_path / "prefect"),
        PREFECT_API_URL=api,
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_LOGGING_COLORS="false",
        CHARTERFLOW_HOME=str(tmp_path),
        CHARTERFLOW_DATABASE_URL=str(ledger.engine.url),
        PYTHONUNBUFFERED="1",
        CHARTERFLOW_INBOX_DISPATCH="push",  # the gateway creates the runs, the task worker serves them
    )
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
                headers, body = discourse_request(
                    n, event="ping" if n % 10 == 0 else "topic_created", category=OTHER_CATEGORY
                )
                assert client.post("/hooks/discourse", content=body, headers=headers).json()["duplicate"]
            rows = inbox_rows(ledger)
            assert len(rows) == 50
            assert all(r.dispatched_at is None and r.processed_at is None for r in rows)

            # Prefect comes up, then its task worker; the drain loop dispatches everything.
            processes.append(
                start(
                    [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                    env,
                    tmp_path / "server.log",
                )
            )
            assert wait_for(lambda: dispatcher.prefect_reachable(fresh=True), 150), (
                tmp_path / "server.log"
            ).read_text()[-3000:]
            processes.append(start([sys.executable, "-m", "flows.inbox"], env, tmp_path / "worker.log"))

            def settled() -> bool:
                return all(
                    r.processed_at is not None or r.dispatch_note == inbox.AWAITING_HANDLER for r in inbox_rows(ledger)
                )

            if not wait_for(settled, 150):
                os.kill(processes[-1].pid, signal.SIGUSR1)  # the worker prints its threads' stacks
                time.sleep(3)
                pytest.fail(
                    "not every event was handled; the task worker's log:\n"
                    + (tmp_path / "worker.log").read_text()[-12000:]
                )
            assert client.get("/healthz").status_code == 200

        rows = inbox_rows(ledger)
        assert sum(r.processed_at is not None for r in rows) == 50  # 5 pings, 45 unrouted topics
        assert not any(r.dispatch_note == inbox.AWAITING_HANDLER for r in rows)
        assert all(r.dispatch_attempts == 1 for r in rows)
        runs = task_runs(api)
        names = collections.Counter(run["name"] for run in runs)
        expected = {f"inbox-{r.route}-{r.id}" for r in rows}
        assert set(names) == expected and set(names.values()) == {1}, names
        # The server records a run's states from the worker's events, a moment after the handler
        # has marked the event processed (later still on a loaded machine).
        assert wait_for(lambda: {run["state_type"] for run in task_runs(api)} == {"COMPLETED"}, 60), (
            collections.Counter(run["state_type"] for run in task_runs(api))
        )
        with ledger.read() as s:  # and each was handled once: one audit entry per outcome
            held = s.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "inbox.held"))
            processed = s.scalar(
                select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "inbox.processed")
            )
        assert (held, processed) == (0, 50)
    finally:
        for process in reversed(processes):
            stop(process)


# --------------------------------------------------------------------------------------------
# One dispatch, against the session's real Prefect server (no task worker: runs stay scheduled)


def _store(ledger, n: int) -> int:
    return store_pings(ledger, [f"discourse:test:{n}"])[0]


def test_a_dispatch_is_one_deferred_background_run_and_a_lost_answer_finds_it_again(ledger, prefect_server):
    event_id = _store(ledger, 1)
    with inbox.prefect_http(PREFECT_API_URL.value()) as http:
        result = inbox.dispatch_event(ledger, event_id, client=http)
        assert result.outcome == "started"
        run = http.get(f"task_runs/{result.task_run_id}").json()
        assert run["name"] == f"inbox-ping-{event_id}" and run["dynamic_key"] == f"inbox-{event_id}-1"
        assert run["flow_run_id"] is None and sorted(run["tags"]) == ["charterflow", "inbox", "route:ping"]
        assert run["state"]["type"] == "SCHEDULED" and run["state"]["state_details"]["deferred"]
        assert run["empirical_policy"]["retries"] == 2
        # The answer to the POST was lost: sent again, the same key gives the same run.
        body = inbox.task_run_body(event_id=event_id, attempt=1, route=inbox.Route.PING)
        assert inbox.create_task_run(http, body) == result.task_run_id
        # Dispatched once: a second notice for the same event starts nothing.
        assert inbox.dispatch_event(ledger, event_id, client=http).outcome == "skipped"
        runs = http.post("task_runs/filter", json={"task_runs": {"name": {"any_": [run["name"]]}, **BACKGROUND}}).json()
        assert [r["id"] for r in runs] == [result.task_run_id]


def test_a_stale_claim_is_dispatched_again_up_to_the_limit_then_left_to_the_operator(ledger, prefect_server):
    """No task worker here, so every run stays Scheduled: a lost run as far as the event is
    concerned. With ``stale_after=0`` every claim is stale at once, so one drain pass shows
    the whole life of such an event."""
    event_id = _store(ledger, 2)
    dispatcher = PrefectDispatcher(ledger=ledger, api_url=PREFECT_API_URL.value(), stale_after=0)
    try:
        counts = dispatcher.drain()
    finally:
        dispatcher.stop()
    assert counts == {"started": repo.MAX_DISPATCH_ATTEMPTS, "skipped": 1}
    with ledger.read() as session:
        event = session.get(InboxEvent, event_id)
        assert (event.dispatch_attempts, event.dispatch_note) == (repo.MAX_DISPATCH_ATTEMPTS, repo.GAVE_UP)
        actions = list(
            session.scalars(
                select(AuditEntry.action).where(AuditEntry.subject == f"inbox:{event_id}").order_by(AuditEntry.seq)
            )
        )
    assert actions == ["inbox.received"] + ["inbox.dispatched"] * repo.MAX_DISPATCH_ATTEMPTS + ["inbox.gave-up"]
    with inbox.prefect_http(PREFECT_API_URL.value()) as http:
        runs = http.post(
            "task_runs/filter", json={"task_runs": {"name": {"any_": [f"inbox-ping-{event_id}"]}, **BACKGROUND}}
        ).json()
    assert sorted(r["dynamic_key"] for r in runs) == [
        f"inbox-{event_id}-{n}" for n in range(1, repo.MAX_DISPATCH_ATTEMPTS + 1)
    ]
    # Left alone from now on: the drain pass does not list it any more.
    with ledger.read() as session:
        assert event_id not in repo.inbox_dispatchable(session, stale_before=utcnow())


# --------------------------------------------------------------------------------------------
# Prefect answering 503 (its SQLite database busy for a moment): asked again within ms, not 2 s.
# A Prefect server cannot be made busy on cue, so its answers come from an httpx transport.


def _answers(*statuses: int) -> tuple[httpx.Client, list[dict]]:
    seen: list[dict] = []
    pending = list(statuses)

    def respond(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        status = pending.pop(0)
        body = (
            {"id": "9f7d3c2e-0000-4000-8000-000000000001"}
            if status == 201
            else {"exception_message": "Service Unavailable" if status == 503 else "Unprocessable"}
        )
        return httpx.Response(status, json=body)

    return httpx.Client(base_url="http://prefect.invalid/api/", transport=httpx.MockTransport(respond)), seen


def test_a_busy_prefect_is_asked_again_after_50_then_100_ms_with_the_same_run():
    http, seen = _answers(503, 503, 201)
    waited: list[float] = []
    body = inbox.task_run_body(event_id=7, attempt=1, route="idea")
    assert inbox.create_task_run(http, body, sleep=waited.append) == "9f7d3c2e-0000-4000-8000-000000000001"
    assert waited == [0.05, 0.1]
    assert seen == [body] * 3  # the same dynamic key each time: at most one run


def test_prefect_busy_for_seconds_or_refusing_raises_for_the_drain_loop():
    http, seen = _answers(*[503] * 7)
    waited: list[float] = []
    with pytest.raises(httpx.HTTPStatusError):
        inbox.create_task_run(http, inbox.task_run_body(event_id=7, attempt=1, route="idea"), sleep=waited.append)
    assert waited == list(inbox.CREATE_RETRY_DELAYS) and len(seen) == 7
    assert sum(waited) < 4  # then the event is released and the drain loop takes it later
    http, seen = _answers(422)
    with pytest.raises(httpx.HTTPStatusError):
        inbox.create_task_run(http, inbox.task_run_body(event_id=7, attempt=1, route="idea"), sleep=waited.append)
    assert len(seen) == 1  # a refusal is not repeated


def test_events_are_dispatched_side_by_side_each_once_when_prefect_is_slow(ledger, prefect_server):
    """Each ``POST /task_runs/`` held 0.3 s (a busy Prefect): a dispatcher with a few threads
    starts runs side by side, not one after another, and still starts each event once."""
    api = PREFECT_API_URL.value().rstrip("/")
    base, _, prefix = api.rpartition("/")

    # Run keys are inbox-<id>-<attempt>, and the session's server holds other tests' runs of
    # events 1, 2…: these events take ids none of them had.
    with ledger.transaction() as session:
        for n in range(20):
            event, _ = repo.inbox_put(
                session,
                dedupe_key=f"discourse:pad:{n}",
                source="discourse",
                kind="ping",
                payload={"data": {}},
                route=inbox.Route.PING,
            )
            repo.inbox_mark_processed(session, event, actor="test", result_ref="padding")
    ids = [_store(ledger, 100 + n) for n in range(12)]
    since = utcnow()
    slow = Proxy([base], delay=0.3, slow=lambda r: r.method == "POST" and r.url.path.endswith("/task_runs/"))
    with serve(slow):
        dispatcher = PrefectDispatcher(ledger=ledger, api_url=f"{slow.url}/{prefix}", threads=4, drain_interval=0.2)
        dispatcher.start()
        try:
            for event_id in ids:
                dispatcher.notify(event_id)
            assert wait_for(lambda: all(r.dispatched_at is not None for r in inbox_rows(ledger) if r.id in ids), 30)
        finally:
            dispatcher.stop()
    assert slow.max_in_flight >= 3  # one thread held one request at a time
    with inbox.prefect_http(api) as http:
        runs = http.post(
            "task_runs/filter",
            json={"task_runs": {"name": {"any_": [f"inbox-ping-{i}" for i in ids]}, **BACKGROUND}, "limit": 200},
        ).json()
    runs = [r for r in runs if datetime.fromisoformat(r["created"]) >= since]
    assert sorted(r["name"] for r in runs) == sorted(f"inbox-ping-{i}" for i in ids)
    with ledger.read() as session:
        dispatched = session.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.action == "inbox.dispatched", AuditEntry.subject.in_([f"inbox:{i}" for i in ids]))
        )
    assert dispatched == len(ids)
