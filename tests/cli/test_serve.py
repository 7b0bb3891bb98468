"""`charterflow serve`: every deployment served from one process against an existing Prefect
server (the session's), the frequent scheduled ones run in that process (flows/inline_runs.py),
and a clean stop on SIGTERM."""

from __future__ import annotations

import json
import signal
import socket
import sys
import time
from pathlib import Path

import httpx
from prefect.settings import PREFECT_API_URL

from flows.serve import deployments
from ledger.db import Ledger
from ledger.migrate import upgrade
from tests.procs import start, stop, subprocess_env, wait_for

INLINE = "membership-close-due-ballots/every-5-minutes"  # no parameters


def test_serve_registers_every_deployment_and_runs_the_frequent_ones_in_its_own_process(prefect_server, tmp_path):
    home, log, url = tmp_path / "home", tmp_path / "serve.log", f"sqlite:///{tmp_path / 'ledger.db'}"
    ledger = Ledger(url)
    upgrade(ledger)
    ledger.dispose()
    env = subprocess_env(
        PREFECT_API_URL=str(PREFECT_API_URL.value()),
        CHARTERFLOW_HOME=str(home),
        CHARTERFLOW_DATABASE_URL=url,
    )
    process = start([sys.executable, "-m", "charterflow.cli", "serve"], env, log)
    api = httpx.Client(base_url=str(PREFECT_API_URL.value()), timeout=10)
    try:
        names = home / "flows-deployments.json"
        assert wait_for(names.exists, 120), log.read_text(errors="replace")[-3000:]
        assert json.loads(names.read_text()) == sorted(f"{d.flow_name}/{d.name}" for d in deployments())

        def deployment_id() -> str | None:
            found = api.get(f"/deployments/name/{INLINE}")
            return found.json()["id"] if found.status_code == 200 else None

        assert wait_for(lambda: deployment_id() is not None, 120), log.read_text(errors="replace")[-3000:]
        # Asked again while the server's SQLite is busy with the registrations (503), as
        # Prefect's own client does.
        created = api.post(f"/deployments/{deployment_id()}/create_flow_run", json={})
        for _ in range(60):
            if created.status_code != 503:
                break
            time.sleep(1)
            created = api.post(f"/deployments/{deployment_id()}/create_flow_run", json={})
        assert created.status_code == 201, created.text
        run = created.json()

        def ended() -> dict | None:
            current = api.get(f"/flow_runs/{run['id']}").json()
            return current if current["state"]["type"] in ("COMPLETED", "FAILED", "CRASHED") else None

        assert wait_for(lambda: ended() is not None, 120), log.read_text(errors="replace")[-3000:]
        finished = ended()
        assert finished is not None and finished["state"]["type"] == "COMPLETED", finished
        # Run by the serve process itself (its tag), not by a process of its own.
        assert f"host:{socket.gethostname()}-{process.pid}" in finished["tags"]
    finally:
        api.close()
        stop(process, sig=signal.SIGTERM)
    assert process.returncode == 0, Path(log).read_text(errors="replace")[-3000:]
