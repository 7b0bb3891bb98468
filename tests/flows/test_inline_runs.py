"""The frequent scheduled deployments run in the workers' process (flows/inline_runs.py), against
the session's real Prefect server: which deployments, each due run once (also with two servers
of one deployment), its states and logs recorded by Prefect's engine, a failing run failing
alone, and the runs a killed process left ``Running`` marked ``Crashed``."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType
from prefect.logging.handlers import APILogWorker
from prefect.states import Running

from flows import inline_runs, orphans
from flows.serve import deployments
from tests.procs import wait_for


@flow(name="inline-test-poll", flow_run_name="inline-test-poll")
def poll_here(out: str, fail: bool = False) -> int:
    """Says where it ran: this process and thread, one line per run."""
    with Path(out).open("a", encoding="utf-8") as lines:
        lines.write(f"{os.getpid()} {threading.current_thread().name}\n")
    if fail:
        raise RuntimeError("the poll failed")
    return os.getpid()


def _deployment(out: Path, name: str, *, fail: bool = False) -> Any:
    return poll_here.to_deployment(
        name=name, interval=300, tags=["charterflow", "inline-test"], parameters={"out": str(out), "fail": fail}
    )


@contextmanager
def serving(*servers: inline_runs.InlineRuns) -> Iterator[None]:
    """``servers`` on an event loop of their own, in a thread, as the workers serve them."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    futures = [asyncio.run_coroutine_threadsafe(server.serve(), loop) for server in servers]
    try:
        assert wait_for(lambda: all(server.ready for server in servers) or any(f.done() for f in futures), 60)
        for future in futures:
            if future.done():
                future.result()  # raises what ended it
        yield
    finally:
        # The runs' threads end (their last logs) before the loop does; then their logs are sent.
        wait_for(lambda: not any(server.running for server in servers), 30, step=0.1)
        asyncio.run_coroutine_threadsafe(_cancel_all(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        APILogWorker.drain_all(timeout=10)  # the runs' logs reach the server while it runs


async def _cancel_all() -> None:
    """Cancel the servers and their runs' tasks, as the workers' loop ends: their ``finally``s run."""
    tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _run_now(deployment_id: Any) -> Any:
    with get_client(sync_client=True) as client:
        return client.create_flow_run_from_deployment(deployment_id)


def _state(run_id: Any) -> Any:
    with get_client(sync_client=True) as client:
        return client.read_flow_run(run_id)


def _final(run_id: Any, timeout: float = 60) -> Any:
    assert wait_for(lambda: _state(run_id).state.is_final(), timeout, step=0.2), _state(run_id).state
    return _state(run_id)


def test_the_deployments_scheduled_every_15_minutes_or_more_often_run_inline_the_others_in_a_process():
    served = {f"{d.flow_name}/{d.name}" for d in deployments() if inline_runs.inline(d)}
    assert served == {
        "commons-poll/every-minute",
        "hooks-redeliver/every-2-minutes",
        "membership-close-due-ballots/every-5-minutes",
        "safety-platform-reports/every-5-minutes",
        "moderation-sync/every-15-minutes",
    }
    assert not inline_runs.inline(poll_here.to_deployment(name="operator"))  # no schedule: a process
    assert not inline_runs.inline(poll_here.to_deployment(name="hourly", interval=3600))


def test_a_due_run_runs_once_in_this_process_with_its_states_tagged_with_the_process(prefect_server, tmp_path):
    out = tmp_path / "ran.txt"
    # Two servers of one deployment (two workers processes, say): each run still runs once.
    first, second = (inline_runs.InlineRuns([_deployment(out, "twice")], poll=0.2) for _ in range(2))
    with serving(first, second):
        (deployment_id,) = first.flows
        runs = [_run_now(deployment_id) for _ in range(3)]
        finished = [_final(run.id) for run in runs]
    assert [run.state.type for run in finished] == [StateType.COMPLETED] * 3
    lines = out.read_text().splitlines()
    assert len(lines) == 3, lines  # each run once, though both servers saw each
    assert {line.split()[0] for line in lines} == {str(os.getpid())}  # in this process: no new one
    assert first.started + second.started == 3
    assert all(orphans.host_tag() in run.tags and "inline-test" in run.tags for run in finished)


def test_a_failing_run_fails_alone_and_the_next_one_runs(prefect_server, tmp_path):
    out = tmp_path / "ran.txt"
    failing = inline_runs.InlineRuns([_deployment(out, "failing", fail=True), _deployment(out, "fine")], poll=0.2)
    with serving(failing):
        ids = dict(zip(("failing", "fine"), failing.flows, strict=True))
        failed = _final(_run_now(ids["failing"]).id)
        fine = _final(_run_now(ids["fine"]).id)
    assert failed.state.type == StateType.FAILED and "the poll failed" in (failed.state.message or "")
    assert fine.state.type == StateType.COMPLETED
    assert len(out.read_text().splitlines()) == 2


def test_a_starting_server_marks_crashed_the_runs_a_killed_process_left_running(prefect_server, tmp_path):
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    host = socket.gethostname()
    tags = {"dead": f"host:{host}-{gone.stdout.strip()}", "alive": f"host:{host}-{os.getppid()}"}
    deployment = _deployment(tmp_path / "ran.txt", "orphans")
    deployment_id = deployment.apply()
    with get_client(sync_client=True) as client:
        runs = {
            name: client.create_flow_run_from_deployment(deployment_id, tags=[tag], state=Running())
            for name, tag in tags.items()
        }
    with serving(inline_runs.InlineRuns([deployment], poll=0.2)):
        assert wait_for(lambda: _state(runs["dead"].id).state.type == StateType.CRASHED, 30)
    states = Counter(_state(run.id).state.type for run in runs.values())
    assert states == {StateType.CRASHED: 1, StateType.RUNNING: 1}  # a live process's run is left as it is
    assert gone.stdout.strip() in (_state(runs["dead"].id).state.message or "")
