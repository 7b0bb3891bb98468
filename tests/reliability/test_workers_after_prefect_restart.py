"""The runner and the inbox task worker run in one process (`up`'s ``workers``). A first attempt
at that hung after a restart of the Prefect server: its inbox runs waited for good in Prefect's
own service start-up (flows/serving.py says why). Here `up`'s Prefect server is SIGKILLed twice;
after each restart, at once, members file ideas (inbox events) while a deployment's flow run is
created: every event is handled and the flow run completes, without the stall watch's help."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from charterflow.seed import build
from ledger.db import Ledger
from ledger.models import InboxEvent
from tests.procs import wait_for
from tests.test_up import running_up, wait_terminal

pytestmark = [pytest.mark.reliability, pytest.mark.slow]

DEPLOYMENT = "membership-close-due-ballots/every-5-minutes"  # no parameters
ROUNDS = 2
EVENTS_PER_ROUND = 3


def _status(home: Path) -> dict[str, dict]:
    try:
        return {c["name"]: c for c in json.loads((home / "status.json").read_text())["children"]}
    except (OSError, ValueError, KeyError):
        return {}


def _api_answers(api: httpx.Client) -> bool:
    try:
        return api.get("/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _deployment_id(api: httpx.Client) -> str:
    flow, name = DEPLOYMENT.split("/")
    return api.get(f"/deployments/name/{flow}/{name}").json()["id"]


def _create_run(api: httpx.Client, deployment_id: str) -> dict:
    """A flow run of :data:`DEPLOYMENT`, asked again while the server just started answers 503
    (as Prefect's own client does)."""
    deadline = time.monotonic() + 60
    while True:
        created = api.post(f"/deployments/{deployment_id}/create_flow_run", json={})
        if created.status_code < 500 or time.monotonic() > deadline:
            assert created.status_code == 201, created.text
            return created.json()
        time.sleep(0.5)


def _processed(ledger: Ledger) -> int:
    with ledger.read() as session:
        return session.scalar(
            select(func.count())
            .select_from(InboxEvent)
            .where(InboxEvent.route == "idea", InboxEvent.processed_at.is_not(None))
        )


@pytest.mark.timeout(900)
def test_after_prefect_restarts_the_workers_still_handle_inbox_events_and_flow_runs(tmp_path):
    # The stall watch would restart a hung worker and hide the hang: an hour, not 2 minutes.
    with running_up(tmp_path, CHARTERFLOW_WORKER_STALL_SECONDS="3600") as (lock, out):
        api = httpx.Client(base_url=lock["api_url"], timeout=10)
        ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
        authors = [p.discord["username"] for p in build().applicants()[:EVENTS_PER_ROUND]]
        sent, deployment_id = 0, _deployment_id(api)
        try:
            for n in range(ROUNDS):
                server = _status(tmp_path)["prefect-server"]
                os.kill(server["pid"], signal.SIGKILL)
                assert wait_for(
                    lambda s=server: _status(tmp_path)["prefect-server"]["restarts"] == s["restarts"] + 1, 60
                ), out.text[-3000:]
                assert wait_for(lambda: _api_answers(api), 180, step=0.2), out.text[-3000:]
                # At once, while the workers reconnect and Prefect's services start again.
                run = _create_run(api, deployment_id)
                for i, author in enumerate(authors):
                    answer = httpx.post(
                        f"{lock['sandboxes']['discord']}/_sandbox/interactions",
                        timeout=30,
                        json={
                            "type": "command",
                            "user": author,
                            "name": "idea",
                            "options": {"text": f"Idea r{n}-{i}: a reading list for newcomers to the charter"},
                        },
                    ).json()
                    assert answer["status"] == 200, answer
                    sent += 1
                logs = tmp_path / "logs" / "workers.log"
                assert wait_for(lambda want=sent: _processed(ledger) >= want, 180, step=1), (
                    f"round {n}: {_processed(ledger)} of {sent} events handled\n"
                    + logs.read_text(errors="replace")[-4000:]
                )
                finished = wait_terminal(api, run["id"], timeout=180)
                assert finished["state"]["type"] == "COMPLETED", (finished["state"], out.text[-2000:])
            assert _processed(ledger) == sent
        finally:
            ledger.dispose()
            api.close()
        assert "restarting it and dispatching them again" not in out.text  # no stall, no rescue
    print(f"\n{ROUNDS} restarts of the Prefect server; {sent} events handled; workers {_status(tmp_path)['workers']}")
