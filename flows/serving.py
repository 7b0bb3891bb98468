"""Prefect's runner (deployments, with their schedules) and task worker (the inbox task) served
from one event loop of ours, in a thread of ours: ``python -m charterflow.workers both`` runs
both in one process; ``python -m flows.inbox`` the task worker alone.

Why not Prefect's ``serve`` functions. ``prefect.task_worker.serve`` runs the task worker on
Prefect's *global loop thread*, the thread that also starts every Prefect service (events,
API logs, concurrency slots). A service is made under one lock all services share
(``_QueueServiceBase._instance_lock``), held while the global loop starts it. A run's thread
making a service (an events worker again after the Prefect server came back, say) holds that
lock and waits for the global loop; when the global loop, running the task worker, emits an
event meanwhile it waits for the same lock: both wait for good. That is the hang of the first
attempt at one process (after a restart of the Prefect server) and the inbox worker's hang
after "Received" (bench/README.md). Here nothing of ours runs on the global loop: it only
starts and runs services, never waits for that lock, so whoever holds it gets its service
started and lets it go. The runner and the task worker share our loop as Prefect's own
``aserve`` functions run them; their runs go to threads (inbox), processes (flow runs) and, for
the frequent scheduled deployments, threads too (:mod:`flows.inline_runs` says why).

Why a thread and not the main thread: the runner and the task worker each install their own
SIGTERM handler when started on the main thread (the task worker's raises out of the handler).
Off it they install none; the main thread's handlers stop both, once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from prefect.context import SyncClientContext
from prefect.runner import Runner
from prefect.settings import temporary_settings
from prefect.task_worker import TaskWorker

from flows import inline_runs

log = logging.getLogger("charterflow.workers")

STOP_GRACE_SECONDS = 5.0  # `up` kills what is left after 7 s
STOP_POLL_SECONDS = 0.2


def without_flow_heartbeats() -> contextlib.AbstractContextManager[Any]:
    """Prefect's flow-run heartbeats off for the flow runs started in this context (and the
    threads and tasks that copy it). Prefect 3.9 sends them (every 180 s by default) from a thread
    that sleeps a second at a time, and a flow run ends only once that thread has noticed: up to
    a second more for every flow and subflow run (an application's intake, three runs: 3.2 s,
    0.8 s without; bench/README.md). They feed only Prefect's zombie-run automation
    (https://docs.prefect.io/v3/advanced/detect-zombie-flows), which charterflow does not set
    up: a killed process's runs are marked Crashed by :mod:`flows.orphans`. A flow run that the
    runner starts in a process of its own reads Prefect's settings afresh and keeps them (an
    environment variable cannot say "off")."""
    return temporary_settings(updates={"flows.heartbeat_frequency": None})


class Serving:
    """One event loop, in its own thread, serving ``deployments`` and ``tasks``."""

    def __init__(
        self,
        deployments: Sequence[Any],
        tasks: Sequence[Any],
        *,
        limit: int | None,
        pump: Any = None,
        inline_max: timedelta = inline_runs.INLINE_MAX_INTERVAL,
    ) -> None:
        self.deployments, self.tasks, self.limit, self.pump = list(deployments), list(tasks), limit, pump
        self.inline_max = inline_max
        self.asked = threading.Event()  # a stop was asked (SIGTERM/SIGINT)
        self.code = 1  # until the loop ends as asked

    def run(self) -> int:
        """Serve until SIGTERM/SIGINT (0) or until either side ends by itself (1: `up` starts the
        process again)."""
        previous = {sig: signal.signal(sig, self._ask) for sig in (signal.SIGTERM, signal.SIGINT)}
        thread = threading.Thread(target=self._thread, name="charterflow-workers", daemon=True)
        try:
            thread.start()
            while thread.is_alive() and not self.asked.wait(STOP_POLL_SECONDS):
                pass
            thread.join(STOP_GRACE_SECONDS)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return self.code

    def _ask(self, signum: int, frame: object) -> None:
        self.asked.set()

    def _thread(self) -> None:
        try:
            # One Prefect client for every inbox run: each runs in a copy of this context
            # (flows/inbox.py main says why).
            with SyncClientContext(), without_flow_heartbeats():
                self.code = asyncio.run(self._serve())
        except BaseException:
            log.exception("the workers' loop failed")
            self.code = 1

    async def _serve(self) -> int:
        parts: list[asyncio.Task[Any]] = []
        # The task worker first: inbox events need not wait for the deployments' registration.
        if self.tasks:
            worker = TaskWorker(*self.tasks, limit=self.limit)
            parts.append(asyncio.create_task(worker.astart(), name="task-worker"))
        pumping = None
        if self.pump is not None:  # its own thread: it waits on the ledger and on its runs
            pumping = asyncio.create_task(asyncio.to_thread(self.pump.run), name="inbox-pump")
            parts.append(pumping)
        # The frequent scheduled deployments run here, a thread each; the others a process each.
        inline: list[Any] = []
        others: list[Any] = []
        for deployment in self.deployments:
            (inline if inline_runs.inline(deployment, self.inline_max) else others).append(deployment)
        if inline:
            parts.append(asyncio.create_task(inline_runs.InlineRuns(inline).serve(), name="inline-runs"))
        runner = Runner(pause_on_shutdown=False) if others else None
        if runner is not None:
            parts.append(asyncio.create_task(self._run(runner, others), name="runner"))
        asked = asyncio.create_task(self._asked(), name="asked")
        done, _ = await asyncio.wait([*parts, asked], return_when=asyncio.FIRST_COMPLETED)
        if runner is not None and runner.started:
            # As Prefect's own SIGTERM handler: in-flight flow runs cancelled (bounded: the
            # server may be down).
            with contextlib.suppress(Exception, TimeoutError):
                await asyncio.wait_for(runner.astop(), STOP_GRACE_SECONDS / 2)
        if pumping is not None:
            # Its runs in flight end (the ledger keeps the rest for the next pump).
            self.pump.stop.set()
            with contextlib.suppress(Exception, TimeoutError):
                await asyncio.wait_for(asyncio.shield(pumping), STOP_GRACE_SECONDS / 2)
        for part in [*parts, asked]:
            part.cancel()
        ended = await asyncio.gather(*parts, return_exceptions=True)
        if asked in done:
            return 0
        for part, outcome in zip(parts, ended, strict=True):
            if part in done:
                failed = outcome if isinstance(outcome, BaseException) else None
                log.error("%s ended by itself; stopping the process", part.get_name(), exc_info=failed)
        return 1

    async def _run(self, runner: Runner, deployments: Sequence[Any]) -> None:
        for deployment in deployments:
            await runner.aadd_deployment(deployment)
        await runner.start()

    async def _asked(self) -> None:
        while not self.asked.is_set():
            await asyncio.sleep(STOP_POLL_SECONDS)


def serve(
    deployments: Sequence[Any],
    tasks: Sequence[Any],
    *,
    limit: int | None = 10,
    pump: Any = None,
    inline_max: timedelta = inline_runs.INLINE_MAX_INTERVAL,
) -> int:
    """Serve ``deployments`` (the frequent ones inline, the others with a runner), ``tasks`` (a
    task worker, at most ``limit`` runs at once) and ``pump`` (a
    :class:`flows.inbox_pump.InboxPump`, in a thread) until SIGTERM/SIGINT; the exit code."""
    return Serving(deployments, tasks, limit=limit, pump=pump, inline_max=inline_max).run()
