"""The frequent scheduled runs (``commons-poll`` every minute, the every-5-minutes and
every-15-minutes deployments), run in the workers' process, a thread each, instead of a process
each.

Why: Prefect's runner starts a Python process for every flow run, which imports Prefect and our
flows again: about 4 s of CPU and 120 MiB for a poll that itself takes well under a second. Every
minute that is 7% of a core while the stack is idle, and under load each start is a burst the
inbox falls behind on (bench/README.md, intake, a ninth pass). Deployments whose shortest
schedule is an interval of at most ``CHARTERFLOW_INLINE_MAX_INTERVAL`` (15 minutes) are served
here; the rest (daily, hourly and the operators' deployments) keep a process each, with its
isolation.

What this does as Prefect's runner does: registers the deployments with their schedules, polls
the server for their scheduled runs (which also marks them ready in the UI), proposes
``Pending`` before starting one (so two servers of the same deployment never both run it) and
runs it with Prefect's flow engine, which records its states and logs as usual. What differs: a
run in a thread cannot be killed, so cancelling one in the UI takes effect when it ends; a run
left ``Running`` by a killed workers process is marked ``Crashed`` when the process starts again
(its runs carry a ``host:<host>-<pid>`` tag, as the inbox's flow runs do).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.schedules import IntervalSchedule
from prefect.exceptions import Abort
from prefect.flow_engine import run_flow
from prefect.states import Pending
from prefect.utilities.engine import propose_state

from flows.orphans import end_orphans, host_tag

log = logging.getLogger("charterflow.workers")

INLINE_MAX_INTERVAL = timedelta(minutes=15)
POLL_SECONDS = 5.0  # how often the server is asked for due runs (Prefect's runner: 10 s)
RETRY_SECONDS = 5.0  # after a failed poll (the server restarting, say)


def inline(deployment: Any, most: timedelta = INLINE_MAX_INTERVAL) -> bool:
    """Whether ``deployment`` (a ``RunnerDeployment``) runs in the workers' process: its shortest
    interval schedule is at most ``most`` (``CHARTERFLOW_INLINE_MAX_INTERVAL``; 0: never)."""
    intervals = [s.schedule.interval for s in deployment.schedules or () if isinstance(s.schedule, IntervalSchedule)]
    return bool(intervals) and min(intervals) <= most


def loaded_flow(entrypoint: str) -> Any:
    """The flow object of ``entrypoint`` (``path/to/module.py:name``, the path absolute or from
    the current folder) from its module as imported already (``flows.serve`` imports them all):
    loading the path again would run a second copy of the module."""
    path, _, name = entrypoint.rpartition(":")
    target = Path(path).resolve()
    for module in list(sys.modules.values()):
        found = vars(module).get("__file__") if module is not None else None
        if found and Path(found).resolve() == target and name in vars(module):
            return vars(module)[name]
    raise LookupError(f"the flow {entrypoint} is not imported in this process")


class InlineRuns:
    """Serves ``deployments`` (each an :func:`inline` one) from this process until cancelled."""

    def __init__(self, deployments: Sequence[Any], *, poll: float = POLL_SECONDS) -> None:
        self.deployments, self.poll = list(deployments), poll
        self.flows: dict[UUID, Any] = {}  # deployment id -> its flow object
        self.started = 0  # runs started, for the log and the tests
        self.ready = False  # registered, and the orphans ended: polling
        self._taken: set[UUID] = set()  # flow runs started or waiting for their time
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def running(self) -> int:
        """Flow runs started or waiting for their time, not yet ended."""
        return len(self._tasks)

    async def serve(self) -> None:
        for deployment in self.deployments:
            self.flows[await deployment.aapply()] = loaded_flow(deployment.entrypoint)
        with get_client(sync_client=True) as sync_client:
            await asyncio.to_thread(end_orphans, sync_client, what="inline runs", deployments=list(self.flows))
        self.ready = True
        async with get_client() as client:
            while True:
                try:
                    await self._poll_once(client)
                except Exception as exc:  # noqa: BLE001 - the server may be restarting: ask again
                    log.warning("inline runs: polling the Prefect API failed (%s)", type(exc).__name__)
                    await asyncio.sleep(RETRY_SECONDS)
                    continue
                await asyncio.sleep(self.poll)

    async def _poll_once(self, client: Any) -> None:
        due = await client.get_scheduled_flow_runs_for_deployments(
            deployment_ids=list(self.flows), scheduled_before=datetime.now(UTC) + timedelta(seconds=self.poll)
        )
        for flow_run in due:
            if flow_run.id not in self._taken:
                self._taken.add(flow_run.id)
                task = asyncio.create_task(self._start(client, flow_run), name=f"inline-{flow_run.name}")
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _start(self, client: Any, flow_run: Any) -> None:
        try:
            start = flow_run.next_scheduled_start_time or flow_run.expected_start_time
            if start is not None:
                await asyncio.sleep(max(0.0, (start - datetime.now(UTC)).total_seconds()))
            try:
                state = await propose_state(client, Pending(), flow_run_id=flow_run.id)
            except Abort:  # another server of this deployment took it, or it was cancelled
                return
            if not state.is_pending():
                return
            try:
                await client.update_flow_run(flow_run.id, tags=[*flow_run.tags, host_tag()])
            except Exception as exc:  # noqa: BLE001 - the tag only helps end an orphan: run it anyway
                log.warning("inline runs: tagging flow run %s failed (%s)", flow_run.name, type(exc).__name__)
            self.started += 1
            await asyncio.to_thread(_run, self.flows[flow_run.deployment_id], flow_run)
        except Exception:
            log.exception("inline runs: flow run %s could not be started", flow_run.name)
        finally:
            self._taken.discard(flow_run.id)


def _run(flow: Any, flow_run: Any) -> None:
    """One flow run, in this thread, through Prefect's engine (its states, logs and result)."""
    outcome = run_flow(flow, flow_run=flow_run, return_type="state")
    if asyncio.iscoroutine(outcome):  # an async flow: its own loop, in this thread
        asyncio.run(outcome)
