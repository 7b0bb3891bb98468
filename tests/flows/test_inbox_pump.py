"""The inbox pump (``pull`` mode, what `up` runs): stored events claimed from the ledger and run
as task runs of an ``inbox`` flow run, against the session's real Prefect server, on SQLite and
PostgreSQL. The stack-level proofs (a killed worker, a restarted Prefect server, 20 events a
second) are tests/reliability and bench/intake.py."""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
from prefect import task
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType
from prefect.context import TaskRunContext
from prefect.settings import PREFECT_API_URL
from prefect.states import Running
from sqlalchemy import func, select

from flows import inbox
from flows.inbox_pump import FLOW_TAGS, InboxPump, inbox_flow
from ledger import repo
from ledger.db import Ledger
from ledger.models import AuditEntry, InboxEvent
from tests.procs import wait_for
from tests.support.gateway import store_pings


def _store(ledger: Ledger, tag: str, n: int) -> list[int]:
    return store_pings(ledger, [f"discourse:pump-{tag}:{i}" for i in range(n)])


def _handler(ledger: Ledger, *, fail: bool = False) -> Any:
    """The pump's task, on this test's ledger (the workers' task, ``handle_pulled_event``, reads
    the ledger from the settings)."""

    @task(name=inbox.TASK_NAME, persist_result=False)
    def handle(event_id: int) -> str:
        if fail:
            raise RuntimeError("the handler failed")
        return inbox.handle_event(ledger, event_id)

    return handle


@contextmanager
def pumping(
    ledger: Ledger, task_: Any, *, source: Callable[[], Ledger] | None = None, **options: Any
) -> Iterator[InboxPump]:
    pump = InboxPump(ledger=source or (lambda: ledger), task=task_, **{"poll": 0.05, "idle_end": 0.5, **options})
    thread = threading.Thread(target=pump.run, daemon=True)
    thread.start()
    try:
        yield pump
    finally:
        pump.stop.set()
        thread.join(30)
        assert not thread.is_alive()


def _processed(ledger: Ledger, ids: list[int]) -> Callable[[], bool]:
    def check() -> bool:
        with ledger.read() as session:
            return all(session.get(InboxEvent, i, populate_existing=True).processed_at for i in ids)

    return check


def _audit_count(ledger: Ledger, action: str, ids: list[int]) -> int:
    with ledger.read() as session:
        return session.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.action == action, AuditEntry.subject.in_([f"inbox:{i}" for i in ids]))
        )


def _runs(kind: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    response = httpx.post(f"{PREFECT_API_URL.value()}/{kind}/filter", json={**body, "limit": 200}, timeout=10)
    response.raise_for_status()
    return response.json()


def test_each_stored_event_runs_once_as_a_task_run_of_an_inbox_flow_run(ledger, prefect_server):
    ids = _store(ledger, "once", 12)
    since = datetime.now(UTC).isoformat()  # the session's server holds the other backend's runs too
    with pumping(ledger, _handler(ledger), limit=4) as pump:
        assert wait_for(_processed(ledger, ids), 60)
    assert pump.handled == 12
    assert _audit_count(ledger, "inbox.processed", ids) == 12
    with ledger.read() as session:
        assert {session.get(InboxEvent, i).dispatch_attempts for i in ids} == {1}
    names = [f"inbox-ping-{i}" for i in ids]

    def recorded() -> list[dict[str, Any]]:  # the server records task runs from the client's events
        return _runs("task_runs", {"task_runs": {"name": {"any_": names}, "start_time": {"after_": since}}})

    assert wait_for(lambda: len(recorded()) == 12, 30)
    runs = recorded()
    assert Counter(r["name"] for r in runs) == Counter(names)
    assert all(r["tags"] == [] for r in runs)  # a tagged task run asks for a concurrency lease
    flow_run_ids = {r["flow_run_id"] for r in runs}
    assert None not in flow_run_ids
    flow_runs = _runs("flow_runs", {"flow_runs": {"id": {"any_": sorted(flow_run_ids)}}})
    assert flow_runs and all(f["name"].startswith("inbox-") for f in flow_runs)
    assert all(set(FLOW_TAGS) <= set(f["tags"]) for f in flow_runs)


def test_two_pumps_on_one_ledger_never_run_an_event_twice(ledger, prefect_server):
    ids = _store(ledger, "two", 30)
    handle = _handler(ledger)
    with pumping(ledger, handle, limit=3) as first, pumping(ledger, handle, limit=3) as second:
        assert wait_for(_processed(ledger, ids), 90)
    assert first.handled + second.handled == 30
    assert _audit_count(ledger, "inbox.dispatched", ids) == 30  # one claim each
    assert _audit_count(ledger, "inbox.processed", ids) == 30


def test_a_pump_runs_at_most_its_limit_holds_as_many_claimed_ahead_and_releases_them_when_it_stops(
    ledger, prefect_server
):
    ids = _store(ledger, "ahead", 10)
    gate, lock = threading.Event(), threading.Lock()
    now, most = [0], [0]

    @task(name=inbox.TASK_NAME, persist_result=False)
    def slow(event_id: int) -> str:
        with lock:
            now[0] += 1
            most[0] = max(most[0], now[0])
        gate.wait(30)
        with lock:
            now[0] -= 1
        return inbox.handle_event(ledger, event_id)

    def claimed() -> list[int]:
        with ledger.read() as session:
            return [i for i in ids if session.get(InboxEvent, i, populate_existing=True).dispatched_at is not None]

    with pumping(ledger, slow, limit=2) as pump:
        assert wait_for(lambda: now[0] == 2 and len(claimed()) == 4, 30)  # 2 running, 2 ahead
        time.sleep(0.3)  # several poll intervals: no more is claimed while the slots are full
        assert claimed() == ids[:4]
        pump.stop.set()
        time.sleep(0.3)
        gate.set()  # the runs in flight end; what was claimed ahead went back
    assert most[0] == 2 and pump.handled == 2
    assert claimed() == ids[:2] and _processed(ledger, ids[:2])()
    assert _audit_count(ledger, "inbox.dispatch_deferred", ids[2:4]) == 2
    with pumping(ledger, _handler(ledger), limit=2):
        assert wait_for(_processed(ledger, ids), 60)
    assert _audit_count(ledger, "inbox.processed", ids) == 10


def test_a_flow_run_near_its_count_hands_over_to_the_next_while_its_last_runs_end(ledger, prefect_server):
    """Near its count of events a flow run hands over: the next flow run is made and takes events
    while the last one's are still running (a busy inbox never stalls on a flow run ending and
    the next beginning); no flow run takes more than its count, and the pump's limit holds
    across the two."""
    ids = _store(ledger, "handover", 16)
    changed, now, most = threading.Condition(), [0], [0]
    spans: dict[str, list[tuple[float, float]]] = {}
    began_in: dict[str, int] = {}  # flow run -> its events begun, in the order the runs began

    @task(name=inbox.TASK_NAME, persist_result=False)
    def timed(event_id: int) -> str:
        context = TaskRunContext.get()
        assert context is not None
        began, run = time.monotonic(), str(context.task_run.flow_run_id)
        with changed:
            now[0] += 1
            most[0] = max(most[0], now[0])
            began_in[run] = began_in.get(run, 0) + 1
            changed.notify_all()
            # A flow run's last event waits for the next flow run to begin one (or for every event
            # to have begun): the next run was made at the handover, but on a loaded machine
            # Prefect took up to 7 s to start it, longer than the last events run. Made only
            # once this run had ended, it would never begin one: the wait ends at 30 s, and
            # the overlap asserted below fails.
            if began_in[run] == 8:
                changed.wait_for(lambda: list(began_in)[-1] != run or sum(began_in.values()) == 16, 30)
        time.sleep(1.0 + 0.37 * (event_id % 3))  # unequal: the two slots seldom free at one moment
        with changed:
            now[0] -= 1
            spans.setdefault(run, []).append((began, time.monotonic()))
        return inbox.handle_event(ledger, event_id)

    with pumping(ledger, timed, limit=2, per_run=8, handover_at=2) as pump:
        assert wait_for(_processed(ledger, ids), 90)
    assert pump.handled == 16 and _audit_count(ledger, "inbox.processed", ids) == 16
    assert most[0] == 2  # two at once, never more, across the flow runs
    runs = sorted(spans.values(), key=lambda s: min(b for b, _ in s))
    assert len(runs) >= 2 and all(len(r) <= 8 for r in runs) and sum(map(len, runs)) == 16
    # Each next flow run was running before the last one ended (made only once the last one had
    # ended, before the handover, it could not be). By the flow runs' own times in Prefect: the
    # events' times depend on which run wins a freed slot first (bench/README.md, a tenth pass,
    # measures what the overlap does to the answers).
    found = {f["id"]: f for f in _runs("flow_runs", {"flow_runs": {"id": {"any_": list(spans)}}})}
    order = sorted(spans, key=lambda i: min(b for b, _ in spans[i]))
    times = [tuple(datetime.fromisoformat(found[i][k]) for k in ("start_time", "end_time")) for i in order]
    assert all(after[0] < before[1] for before, after in itertools.pairwise(times)), times


def test_an_idle_pump_ends_its_flow_run_and_the_next_event_starts_another(ledger, prefect_server):
    with pumping(ledger, _handler(ledger), idle_end=0.2) as pump:
        first = _store(ledger, "idle-1", 1)
        assert wait_for(_processed(ledger, first), 30)
        assert wait_for(lambda: pump.flow_runs == 1 and pump.handled == 1, 10)
        time.sleep(1.0)  # past idle_end: the flow run has ended, the pump waits outside one
        second = _store(ledger, "idle-2", 1)
        assert wait_for(_processed(ledger, second), 30)
        assert pump.flow_runs == 2


def test_a_failing_run_leaves_its_event_to_a_later_attempt_until_the_pump_gives_up(ledger, prefect_server):
    """Every claim is stale at once (``stale_after=0``): the whole life of an event whose runs
    fail, as a crashed worker's would, in seconds."""
    ids = _store(ledger, "fail", 1)
    with pumping(ledger, _handler(ledger, fail=True), stale_after=0) as pump:

        def gave_up() -> bool:
            with ledger.read() as session:
                return session.get(InboxEvent, ids[0], populate_existing=True).dispatch_note == repo.GAVE_UP

        assert wait_for(gave_up, 60)
    assert pump.handled == repo.MAX_DISPATCH_ATTEMPTS
    assert _audit_count(ledger, "inbox.dispatched", ids) == repo.MAX_DISPATCH_ATTEMPTS
    assert _audit_count(ledger, "inbox.processed", ids) == 0


def test_a_pump_with_the_ledger_down_waits_and_then_runs_what_was_stored(ledger, prefect_server, tmp_path):
    """A ledger the pump cannot read at first: it logs, waits and reads again; nothing is lost."""
    ids = _store(ledger, "down", 3)
    reachable = threading.Event()
    broken = Ledger(f"sqlite:///{tmp_path / 'missing' / 'x.db'}")  # no schema: every read fails

    def which() -> Ledger:
        return ledger if reachable.is_set() else broken

    with pumping(ledger, _handler(ledger), source=which):
        time.sleep(0.5)
        with ledger.read() as session:
            assert all(session.get(InboxEvent, i).dispatched_at is None for i in ids)
        reachable.set()
        assert wait_for(_processed(ledger, ids), 30)
    broken.dispose()


def test_a_starting_pump_marks_crashed_the_inbox_flow_runs_of_a_killed_pump_only(ledger, prefect_server):
    """A killed workers process leaves its ``inbox`` flow run ``Running`` (nothing ends it); the
    pump `up` starts in its place marks it ``Crashed``. A live process's run, or another host's,
    is left as it is."""
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    host = socket.gethostname()
    tags = {
        "dead": f"host:{host}-{gone.stdout.strip()}",
        "alive": f"host:{host}-{os.getppid()}",
        "elsewhere": f"host:{host}-elsewhere-{gone.stdout.strip()}",
    }
    with get_client(sync_client=True) as client:
        runs = {
            name: client.create_flow_run(
                inbox_flow, name=f"inbox-orphan-{name}", tags=[*FLOW_TAGS, tag], state=Running()
            )
            for name, tag in tags.items()
        }
    with pumping(ledger, _handler(ledger)):
        ids = _store(ledger, "orphans", 1)
        assert wait_for(_processed(ledger, ids), 30)
    with get_client(sync_client=True) as client:
        states = {name: client.read_flow_run(run.id).state for name, run in runs.items()}
    assert states["dead"].type == StateType.CRASHED and gone.stdout.strip() in states["dead"].message
    assert states["alive"].type == StateType.RUNNING and states["elsewhere"].type == StateType.RUNNING
