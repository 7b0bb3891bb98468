"""The inbox pump: the workers take stored events from the ledger and run each as a task run of
an ``inbox`` flow run (``CHARTERFLOW_INBOX_DISPATCH=pull``, what `up` runs).

How an event travels here: the gateway verifies and stores it and acknowledges (it does not
call Prefect); the pump finds it in the ledger (``repo.inbox_dispatchable``, polled every
:data:`POLL_SECONDS` while idle, at once again after a pass that found some), claims it
(``inbox_claim``: one claimer wins, so several pumps never run one event twice) and submits
:func:`flows.inbox.handle_pulled_event` with the event's id, named ``inbox-<route>-<id>``. It
runs at most ``limit`` at once (``CHARTERFLOW_INBOX_CONCURRENCY``) and holds up to ``limit``
more claimed ahead, so that a run that ends is followed at once; those are released when it stops.

Why a flow run and not a background task run per event (the ``push`` mode): a task run inside
a flow run is created and moved through its states by the client's events, which the server
records in batches; a background task run costs a ``POST /task_runs/``, the server's
orchestration rules, its push to a subscribed task worker and a concurrency lease: about 16 ms
of CPU per event more on two cores (bench/README.md, intake, fifth pass). Every event is still a
run in the Prefect UI: a task run of the ``inbox`` flow run of its moment.

A flow run lasts while events keep coming: it ends after :data:`IDLE_END_SECONDS` without one,
or after :data:`EVENTS_PER_RUN` events (the UI draws every task run of a flow run), and the
next event starts a new one. A run nearing its count (:data:`HANDOVER_AT` of it) hands over: the
next flow run starts, in a thread of its own, and takes events as soon as it is up, while the
last one runs to its count and ends, so a busy inbox never waits for a flow run to end and the
next to begin (a one-second stall every 1,000 events at 20 a second: bench/README.md, intake, a
tenth pass). The limit, and the claims ahead, are the pump's, across both.

Crash safety is the ledger's, as in ``push`` mode: a claimed event that a killed worker did not
finish is claimed again after ``up``'s restart (``heal``) or once its claim is stale; the
handlers are idempotent. The killed worker's flow run, left ``Running``, is marked ``Crashed``
by the next pump of the host (:func:`flows.orphans.end_orphans`).
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED
from concurrent.futures import wait as wait_any
from datetime import timedelta
from typing import Any

from prefect import flow
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterName,
)
from prefect.client.schemas.objects import State
from prefect.context import FlowRunContext, SyncClientContext
from prefect.task_runners import ThreadPoolTaskRunner

from flows import inbox_routing as routing
from flows.orphans import end_orphans, host_tag
from ledger import repo
from ledger.db import Ledger
from ledger.types import utcnow

log = logging.getLogger("charterflow.inbox")

POLL_SECONDS = 0.1  # an idle pump reads the ledger this often: the latency it adds, at most
IDLE_END_SECONDS = 30.0
EVENTS_PER_RUN = 1_000
STALE_AFTER_SECONDS = 600.0  # a claim this old and unprocessed is claimed again (as the gateway's drain)
FLOW_TAGS = ("charterflow", "inbox")
ACTOR = "workers"
HANDOVER_AT = 0.9  # of EVENTS_PER_RUN: the next flow run is made while this one still has events
HANDOVER_WAIT = 0.01  # a new flow run's wait for a slot the last one's runs still hold


class InboxPump:
    """Claims stored events and runs them, at most ``limit`` at once, until ``stop`` is set."""

    def __init__(
        self,
        *,
        ledger: Callable[[], Ledger],
        task: Any,
        limit: int = 10,
        poll: float = POLL_SECONDS,
        idle_end: float = IDLE_END_SECONDS,
        per_run: int = EVENTS_PER_RUN,
        stale_after: float = STALE_AFTER_SECONDS,
        handover_at: int | None = None,
    ) -> None:
        self.ledger, self.task, self.limit = ledger, task, max(1, limit)
        self.poll, self.idle_end, self.per_run, self.stale_after = poll, idle_end, per_run, stale_after
        self.handover_at = round(per_run * HANDOVER_AT) if handover_at is None else handover_at
        self.stop = threading.Event()
        self.flow_runs = 0
        self.handled = 0
        self._lock = threading.Lock()
        self._in_flight = 0  # runs started and not finished, of every flow run of this pump

    def run(self) -> None:
        """Wait for events; run a flow run while they come; again, until :attr:`stop`."""
        # Each run's "Finished in state Completed()" would be a log line to the console and the
        # Prefect API per event; the run's state says it. Warnings and failures are still logged.
        logging.getLogger("prefect.task_runs").setLevel(logging.WARNING)
        threads: list[threading.Thread] = []
        with SyncClientContext() as prefect:  # one Prefect client for the pump and all its task runs
            # Left ``Running`` by a killed workers process: `up` started this one in its place.
            end_orphans(
                prefect.client,
                what="inbox pump",
                flows=FlowFilter(name=FlowFilterName(any_=[inbox_flow.name])),
                tags=FLOW_TAGS,
            )
            while not self.stop.is_set():
                try:
                    waiting = self._pending(1)
                except Exception as exc:  # noqa: BLE001 - the ledger may be down: wait, then look again
                    log.warning("inbox pump: reading the ledger failed (%s)", type(exc).__name__)
                    self.stop.wait(min(5.0, self.poll * 20))
                    continue
                if not waiting:
                    self.stop.wait(self.poll)
                    continue
                self.flow_runs += 1
                handover = threading.Event()
                # In a copy of this context: the flow run and its task runs use the pump's client.
                thread = threading.Thread(
                    target=contextvars.copy_context().run,
                    args=(self._flow_run, handover),
                    name=f"inbox-flow-run-{self.flow_runs}",
                    daemon=True,
                )
                thread.start()
                threads = [t for t in threads if t.is_alive()] + [thread]
                handover.wait()  # the run neared its count (it goes on to it while the next starts), or ended
            for thread in threads:  # before the client closes
                thread.join()

    def _flow_run(self, handover: threading.Event) -> None:
        _serving.pump, _serving.handover = self, handover
        # A task runner per flow run: two flow runs overlap at a handover.
        runner: Any = ThreadPoolTaskRunner(max_workers=self.limit)  # Prefect's hint wants its base future type
        try:
            inbox_flow.with_options(task_runner=runner)()
        except Exception:
            log.exception("inbox pump: the inbox flow run failed")
            self.stop.wait(1.0)
        finally:
            handover.set()

    def _pending(self, limit: int) -> list[int]:
        stale_before = utcnow() - timedelta(seconds=self.stale_after)
        with self.ledger().read() as session:
            return repo.inbox_dispatchable(
                session, stale_before=stale_before, handled_routes=routing.HANDLERS.keys(), limit=limit
            )

    def claim(self, room: int, *, busy: bool) -> list[routing.Claim]:
        """Claim up to ``room`` dispatchable events. ``busy`` (the last claim found some): straight
        to one write transaction; else a read first, so an idle pump never takes the writers' lock."""
        if not busy and not self._pending(1):
            return []
        stale_before = utcnow() - timedelta(seconds=self.stale_after)
        with self.ledger().transaction() as session:
            ids = repo.inbox_dispatchable(
                session, stale_before=stale_before, handled_routes=routing.HANDLERS.keys(), limit=room
            )
            return routing.claim_in(session, ids, stale_before=stale_before, actor=ACTOR)

    def serve_run(self) -> int:
        """The body of one ``inbox`` flow run: how many events it ran."""
        running: dict[Any, routing.Claim] = {}
        # Claimed ahead, up to ``limit``: a run that ends starts the next at once, instead of its
        # slot waiting for the next claim (the claims stay one write transaction per poll).
        ready: deque[routing.Claim] = deque()
        started, last_event, last_claim, busy = 0, time.monotonic(), 0.0, True
        while not self.stop.is_set() and started < self.per_run:
            room = min(2 * self.limit - self._in_flight - len(ready), self.per_run - started - len(ready))
            # While runs are in flight or waiting, claim at most once a poll interval: a batch per
            # write transaction, not one transaction per event.
            due = not (running or ready) or time.monotonic() - last_claim >= self.poll
            claims = self.claim(room, busy=busy) if room > 0 and due else []
            if due:
                last_claim, busy = time.monotonic(), bool(claims)
            ready.extend(claims)
            started += self._start(ready, running, started)
            if claims:
                last_event = time.monotonic()
            elif not running and not ready and time.monotonic() - last_event > self.idle_end:
                break
            if not running:  # nothing of this run's in flight: claiming, or the last run's hold the slots
                self.stop.wait(HANDOVER_WAIT if ready else 0 if claims else self.poll)
                continue
            self._reap(running, timeout=max(0.0, last_claim + self.poll - time.monotonic()))
        self._release(list(ready))  # stopping: what was claimed ahead goes back to the ledger
        while running:  # and the runs in flight end, each slot freed as it does
            self._reap(running, timeout=None)
        return started

    def _start(self, ready: deque[routing.Claim], running: dict[Any, routing.Claim], started: int) -> int:
        """Submit what is ready while the pump has a free slot; how many."""
        count = 0
        while ready and self._take_slot():
            claim = ready.popleft()
            name = f"inbox-{claim.route}-{claim.event_id}"
            if claim.event is not None:
                routing.HANDED[claim.event_id] = claim.event
            running[self.task.with_options(task_run_name=name).submit(event_id=claim.event_id)] = claim
            count += 1
            if started + count >= self.handover_at:
                _serving.handover.set()  # the next flow run is made while this one ends
        return count

    def _reap(self, running: dict[Any, routing.Claim], *, timeout: float | None) -> None:
        """Wait up to ``timeout`` (None: as long as it takes) for a run of ``running`` to end;
        record those that did."""
        waits = {future.wrapped_future: future for future in running}
        done, _ = wait_any(waits, timeout=timeout, return_when=FIRST_COMPLETED)
        for wrapped in done:
            future = waits[wrapped]
            self._finished(future, running.pop(future))

    def _take_slot(self) -> bool:
        with self._lock:
            if self._in_flight >= self.limit:
                return False
            self._in_flight += 1
            return True

    def _release(self, claims: list[routing.Claim]) -> None:
        """Undo claims not started (the pump is stopping): the next pump takes them at once. A
        failure leaves them to the stale-claim rule or `up`'s heal, as after a crash."""
        if not claims:
            return
        try:
            routing.release_claims(self.ledger(), claims, actor=ACTOR, reason="pump-stopped")
        except Exception as exc:  # noqa: BLE001 - stopping: the ledger may be gone; claims heal later
            log.warning("inbox pump: %d claims not released (%s)", len(claims), type(exc).__name__)

    def _finished(self, future: Any, claim: routing.Claim) -> None:
        # The run's final state, as the task runner's thread returned it: ``future.state`` would
        # ask the Prefect API for it (a request per event).
        state = future.wrapped_future.result()
        routing.HANDED.pop(claim.event_id, None)  # a run that never began leaves its event here
        with self._lock:
            self._in_flight -= 1
            self.handled += 1
        if not (isinstance(state, State) and state.is_completed()):
            # The event stays claimed and unprocessed: claimed again once stale (its attempts
            # are counted; MAX_DISPATCH_ATTEMPTS then gives up), as a failed background run.
            log.warning(
                "inbox event %s: run ended %s", claim.event_id, state.name if isinstance(state, State) else state
            )


def _tag_flow_run() -> None:
    """Tag the ``inbox`` flow run (the UI filters runs by tag). Not its task runs: a tagged task
    run asks the server for a concurrency lease, for each event."""
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return
    try:
        context.client.update_flow_run(context.flow_run.id, tags=[*FLOW_TAGS, host_tag()])
    except Exception as exc:  # noqa: BLE001 - a missing tag costs nothing but a filter
        log.warning("inbox pump: tagging the flow run failed (%s)", type(exc).__name__)


def _run_name() -> str:
    return f"inbox-{utcnow():%Y-%m-%d-%H%M%S}"


@flow(
    name="inbox",
    flow_run_name=_run_name,
    persist_result=False,
    log_prints=False,
    validate_parameters=False,
    description="Runs the stored inbox events as they come, one task run each (flows/inbox_pump.py).",
)
def inbox_flow() -> int:
    """The events of one busy spell, one task run each; how many."""
    pump = _serving.pump
    if pump is None:
        raise RuntimeError("the inbox flow runs inside a pump (InboxPump.run)")
    _tag_flow_run()
    return pump.serve_run()


class _Serving(threading.local):
    pump: InboxPump | None = None
    handover: threading.Event = threading.Event()  # set by a flow run that reached its count


# The pump whose thread runs the flow: a flow's parameters are stored in Prefect, a pump is not data.
_serving = _Serving()
