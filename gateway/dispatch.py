"""The gateway's dispatcher: starts a Prefect run for each stored event, and a drain loop that
catches up on everything left in the inbox (Prefect was down, the gateway restarted, a run was
lost with a restarted Prefect server, a handler was registered since).

Runs on daemon threads so the acknowledgement never waits for Prefect: the request path only
calls :meth:`PrefectDispatcher.notify`. The ledger is the queue; the in-memory queue is only a
shortcut, and dropping it loses nothing.

One ``POST /task_runs/`` takes tens of ms (more when Prefect is busy), so one thread caps
dispatch at some 10-20 events a second: a small pool of threads starts runs side by side. Each
event is still claimed in its own ledger transaction (writers serialize), so two threads (or
two gateways) never start one event twice.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any, Protocol

import httpx

# Routing and dispatch only: no Prefect and no flow in the gateway process.
from flows import inbox_routing as inbox
from gateway.metrics import Metrics
from ledger import repo
from ledger.db import Ledger
from ledger.models import InboxEvent
from ledger.types import utcnow

log = logging.getLogger("charterflow.gateway")

NOTICE_BATCH = 32  # events claimed in one ledger transaction, at most


class Dispatcher(Protocol):
    """What the app needs from a dispatcher."""

    def notify(self, event_id: int) -> None:
        """An event was stored; start its run soon (never blocks)."""

    def start(self) -> None:
        """Start dispatching (idempotent)."""

    def stop(self) -> None:
        """Stop within a few seconds."""

    def status(self) -> dict[str, Any]:
        """JSON-ready state for /healthz: ``prefect_reachable`` (bool or None), ``detail``."""


class StoreOnlyDispatcher:
    """The gateway only stores: the workers pull the events (``CHARTERFLOW_INBOX_DISPATCH=pull``,
    the default), or dispatch is off (``CHARTERFLOW_GATEWAY_DISPATCH=false``, tests, benchmarks)
    and events wait for a gateway that dispatches."""

    def __init__(self, *, detail: str = "dispatch disabled") -> None:
        self.detail = detail

    def notify(self, event_id: int) -> None:
        """Nothing: the event waits in the inbox."""

    def start(self) -> None:
        """Nothing to start."""

    def stop(self) -> None:
        """Nothing to stop."""

    def status(self) -> dict[str, Any]:
        """This gateway does not consult Prefect."""
        return {"prefect_reachable": None, "detail": self.detail}


class PrefectDispatcher:
    """Starts ``flows.inbox`` background task runs through the Prefect API at ``api_url``."""

    def __init__(
        self,
        *,
        ledger: Ledger,
        api_url: str | None,
        metrics: Metrics | None = None,
        drain_interval: float = 2.0,
        stale_after: float = 600.0,
        health_ttl: float = 1.0,
        threads: int = 4,
    ) -> None:
        self._ledger = ledger
        self._api_url = api_url.rstrip("/") if api_url else None
        self._metrics = metrics
        self._drain_interval = drain_interval
        self._stale_after = stale_after
        self._health_ttl = health_ttl
        self._threads = max(1, threads)
        self._pool: ThreadPoolExecutor | None = None
        self._queue: queue.SimpleQueue[int | None] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: Any = None
        self._reachable: bool | None = None
        self._checked_at = 0.0
        self._lock = threading.Lock()
        self.last_drain: float | None = None

    # -- public -------------------------------------------------------------------------------

    def notify(self, event_id: int) -> None:
        """Queue ``event_id`` for the dispatcher thread."""
        self._queue.put(event_id)

    def start(self) -> None:
        """Start the dispatcher thread (first thing it does: a drain pass)."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop.clear()
            self._pool = ThreadPoolExecutor(max_workers=self._threads, thread_name_prefix="gateway-dispatch")
            self._thread = threading.Thread(target=self._run, name="gateway-dispatcher", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the thread and close the Prefect client."""
        self._stop.set()
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._pool is not None:
            # Runs still queued are not started: a claimed event is released (``_start``), a drain
            # pass's event is left for the next drain.
            self._pool.shutdown(wait=True)
            self._pool = None
        if self._client is not None:
            try:
                self._client.close()
            except Exception:  # noqa: BLE001 - closing a dead connection
                pass
            self._client = None

    def status(self) -> dict[str, Any]:
        """Prefect's reachability (checked now if the last check is older than the TTL)."""
        reachable = self.prefect_reachable()
        detail = (
            "ok"
            if reachable
            else (
                "PREFECT_API_URL is not set"
                if not self._api_url
                else "Prefect API not reachable; events wait in the inbox"
            )
        )
        return {
            "prefect_reachable": reachable,
            "detail": detail,
            "dispatcher_running": bool(self._thread and self._thread.is_alive()),
        }

    def prefect_reachable(self, *, fresh: bool = False) -> bool:
        """GET ``<api>/health`` answered 200 (cached for ``health_ttl`` seconds)."""
        if not self._api_url:
            return False
        now = time.monotonic()
        if fresh or self._reachable is None or now - self._checked_at > self._health_ttl:
            try:
                ok = httpx.get(f"{self._api_url}/health", timeout=2.0).status_code == 200
            except httpx.HTTPError:
                ok = False
            if ok != self._reachable and self._reachable is not None:
                log.warning("gateway: Prefect API %s", "reachable again" if ok else "unreachable")
            self._reachable, self._checked_at = ok, time.monotonic()
        return bool(self._reachable)

    def drain(self) -> dict[str, int]:
        """Dispatch every dispatchable event now (also used by tests); counts by outcome."""
        counts: dict[str, int] = {}
        while not self._stop.is_set():
            stale_before = utcnow() - timedelta(seconds=self._stale_after)
            with self._ledger.read() as session:
                ids = repo.inbox_dispatchable(
                    session, stale_before=stale_before, handled_routes=inbox.HANDLERS.keys(), limit=100
                )
            if not ids:
                break
            outcomes = self._dispatch_all(ids, stale_before=stale_before)
            for outcome in outcomes:
                counts[outcome] = counts.get(outcome, 0) + 1
            if "deferred" in outcomes or "started" not in outcomes:
                break
        self.last_drain = time.monotonic()
        return counts

    # -- thread -------------------------------------------------------------------------------

    def _prefect_client(self) -> httpx.Client:
        with self._lock:  # one kept-alive client (thread-safe) for all the dispatch threads
            if self._client is None:
                self._client = inbox.prefect_http(self._api_url or "", timeout=10.0)
            return self._client

    def _dispatch_all(self, ids: list[int], *, stale_before: datetime | None) -> list[str]:
        """Dispatch ``ids`` on the pool (in order on this thread when it is not started)."""
        pool = self._pool
        if pool is None:
            outcomes = []
            for event_id in ids:
                outcomes.append(self._dispatch(event_id, stale_before=stale_before))
                if outcomes[-1] == "deferred":  # Prefect is down: the rest wait too
                    break
            return outcomes

        def one(event_id: int) -> str:
            if self._reachable is False:  # a dispatch beside it found Prefect down: not now
                return "deferred"
            if self._stop.is_set():
                return "skipped"
            return self._dispatch(event_id, stale_before=stale_before)

        return list(pool.map(one, ids))

    def _dispatch(self, event_id: int, *, stale_before: datetime | None = None) -> str:
        return self._outcome(
            event_id,
            lambda: inbox.dispatch_event(
                self._ledger, event_id, client=self._prefect_client(), stale_before=stale_before
            ),
        )

    def _start(self, claim: inbox.Claim) -> str:
        if self._reachable is False or self._stop.is_set():
            # Claimed behind others while Prefect went away: released for the drain pass rather
            # than spend the create retries on it.
            with self._ledger.transaction() as session:
                event = session.get(InboxEvent, claim.event_id, populate_existing=True)
                if event is not None:
                    repo.inbox_release(session, event, actor="gateway", reason="prefect-unreachable")
            return self._count("deferred")
        return self._outcome(
            claim.event_id, lambda: inbox.start_claimed(self._ledger, claim, client=self._prefect_client())
        )

    def _outcome(self, event_id: int, dispatch: Callable[[], inbox.DispatchResult]) -> str:
        try:
            result = dispatch()
        except Exception as exc:  # noqa: BLE001 - the ledger may be down: the drain retries
            log.warning("gateway: dispatch of inbox event %s failed: %s", event_id, type(exc).__name__)
            return self._count("error")
        if result.outcome == "deferred":
            self._reachable, self._checked_at = False, time.monotonic()
        if result.outcome == "started":
            # The server just answered: no /health probe needed for a while.
            self._reachable, self._checked_at = True, time.monotonic()
            if result.received_at is not None and self._metrics:
                self._metrics.dispatch_latency.observe(max(0.0, (utcnow() - result.received_at).total_seconds()))
        return self._count(result.outcome)

    def _count(self, outcome: str, n: int = 1) -> str:
        if self._metrics is not None and n:
            self._metrics.dispatched.labels(outcome=outcome).inc(n)
        return outcome

    def _dispatch_notified(self, first: int) -> None:
        """Claim ``first`` and every other event queued by now in one ledger transaction (the
        writers take turns: one turn for the batch), then start their runs on the pool."""
        ids = [first]
        while len(ids) < NOTICE_BATCH:
            try:
                event_id = self._queue.get_nowait()
            except queue.Empty:
                break
            if event_id is None:  # stop() was called
                self._queue.put(None)
                break
            ids.append(event_id)
        try:
            claims = inbox.claim_events(self._ledger, ids)
        except Exception as exc:  # noqa: BLE001 - the ledger may be down: the drain retries
            log.warning("gateway: claiming %d inbox events failed: %s", len(ids), type(exc).__name__)
            self._count("error", len(ids))
            return
        self._count("skipped", len(ids) - len(claims))
        pool = self._pool
        for claim in claims:
            if pool is None:  # stopping: the claim must not stay taken
                self._start(claim)
            else:
                pool.submit(self._start, claim)

    def _run(self) -> None:
        next_drain = 0.0  # a drain pass first: events stored while no gateway ran
        while not self._stop.is_set():
            timeout = max(0.0, next_drain - time.monotonic())
            try:
                event_id = self._queue.get(timeout=timeout) if timeout > 0 else None
            except queue.Empty:
                event_id = None
            if self._stop.is_set():
                break
            try:
                if event_id is not None:
                    if self.prefect_reachable():
                        self._dispatch_notified(event_id)
                    continue  # Prefect down: the drain pass picks it up later
                if self.prefect_reachable(fresh=time.monotonic() - self._checked_at > self._drain_interval):
                    self.drain()
            except Exception:  # the loop must survive anything; the ledger keeps the events
                log.exception("gateway: dispatcher pass failed")
            next_drain = time.monotonic() + self._drain_interval
