"""Prefect's flow-run heartbeats are off where the workers run flows (``flows.serving``), against
the session's real Prefect server: a flow run with heartbeats on (Prefect's default) sends one
as it starts; the same flow and its subflow started under ``without_flow_heartbeats`` send none."""

from __future__ import annotations

import time
from typing import Any

from prefect import flow
from prefect.client.orchestration import get_client
from prefect.context import get_run_context
from prefect.settings import temporary_settings

from flows.serving import without_flow_heartbeats

HEARTBEAT = "prefect.flow-run.heartbeat"


@flow(name="heartbeat-test-child")
def child() -> str:
    return str(get_run_context().flow_run.id)


@flow(name="heartbeat-test-parent")
def parent() -> list[str]:
    return [str(get_run_context().flow_run.id), child()]


def heartbeats(run_ids: list[str]) -> list[dict[str, Any]]:
    with get_client(sync_client=True) as client:
        answer = client.request(
            "POST",
            "/events/filter",
            json={
                "filter": {
                    "event": {"name": [HEARTBEAT]},
                    "any_resource": {"id": [f"prefect.flow-run.{run_id}" for run_id in run_ids]},
                },
                "limit": 50,
            },
        )
    return answer.json()["events"]


def test_runs_under_without_flow_heartbeats_send_none_where_the_default_sends_one(prefect_server):
    # The session's harness starts with them off too (tests/support/prefect.py): on here, at
    # Prefect's shortest period, as a process without the helper has them.
    with temporary_settings(updates={"flows.heartbeat_frequency": 30}):
        with without_flow_heartbeats():
            quiet = parent()
        beating = parent()
    # Events arrive in the order sent: once the later runs' heartbeats are stored, any of the
    # quiet runs' would be too.
    deadline = time.monotonic() + 60
    while len(heartbeats(beating)) < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert {e["resource"]["prefect.resource.id"] for e in heartbeats(beating)} == {
        f"prefect.flow-run.{run_id}" for run_id in beating
    }
    assert heartbeats(quiet) == []
