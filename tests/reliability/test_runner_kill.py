"""The runner is killed with SIGKILL in the middle of onboarding, then started again: the run
completes, and no message or role change happens twice.

A real runner subprocess (``tests/reliability/serve_closer.py``: ``serve()`` of the ballot closer,
which onboards the applicants it approves) against a Prefect server of its own (the session's
has served the lifecycle runs by then; a quiet server keeps the timing about the runner). The sandboxes
answer slowly (1.5 s per request) so the kill lands between the first role grant and the welcome
messages. Nothing marks a SIGKILLed run: its state stays Running. The operator does what the
Prefect UI offers: marks it Crashed, then retries it (state Scheduled); the restarted runner runs
it again, and the ledger's keyed effects (``once``) plus the connectors' read-before-write make
the second pass finish the work without repeating any of it.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select

from flows.kit import context
from flows.membership import ballot as ballots
from ledger import audit
from ledger.models import Application, AuditEntry
from tests.procs import PrefectServer, start, stop, subprocess_env, wait_for
from tests.reliability.serve_closer import DEPLOYMENT
from tests.reliability.world import APPLICANTS, duplicates, stack
from tests.support.membership import CONFIRM_SECRET, NOW, apply_proven

pytestmark = [pytest.mark.reliability, pytest.mark.slow]

NAME = APPLICANTS[0]


def _set_state(api: httpx.Client, run_id: str, state_type: str, message: str) -> None:
    _post(
        api,
        f"/flow_runs/{run_id}/set_state",
        {"state": {"type": state_type, "name": state_type.title(), "message": message}, "force": True},
    )


def _post(api: httpx.Client, path: str, body: dict) -> dict:
    """POST, tried again on a 5xx (a busy SQLite server answers "database is locked")."""
    for _ in range(5):
        answer = api.post(path, json=body)
        if answer.status_code < 500:
            break
        time.sleep(2)
    assert answer.status_code in (200, 201), f"{path}: {answer.status_code} {answer.text[:500]}"
    return answer.json()


def _progress(s) -> dict[str, int]:
    states = s.states()
    forum_user = next(u for u in states["discourse"]["users"] if u["username"] == NAME)
    discord_user = next(m for m in states["discord"]["members"] if m["username"] == NAME)
    dm_channels = {c["id"] for c in states["discord"]["channels"] if c.get("type") == 1}
    return {
        "forum group adds": sum(
            1
            for c in states["discourse"]["role_changes"]
            if str(c.get("user_id")) == str(forum_user["id"]) and c.get("action") == "group_add:working-group"
        ),
        "discord role grants": sum(
            1
            for c in states["discord"]["role_changes"]
            if c["user_id"] == discord_user["id"] and c["action"] == "grant"
        ),
        "forum welcome PMs": sum(
            1
            for p in states["discourse"]["posts"]
            if p["raw"].startswith(f"Hello {NAME},") and "application was approved" in p["raw"]
        ),
        "discord welcome DMs": sum(
            1
            for m in states["discord"]["messages"]
            if m["channel_id"] in dm_channels
            and f"Hello {NAME}," in (m["content"] or "")
            and "application was approved" in (m["content"] or "")
        ),
    }


@pytest.mark.timeout(600)
def test_runner_killed_mid_onboarding_then_restarted(prefect_server, tmp_path, evidence, record_property):
    server = PrefectServer(tmp_path, subprocess_env())
    server.start()
    try:
        record_property("measure:runner-kill", _killed_then_restarted(server.api, tmp_path, evidence))
    finally:
        server.stop()


def _killed_then_restarted(api_url: str, tmp_path, evidence) -> str:
    with stack(tmp_path / "world") as s:
        evidence.add_secrets(s.secrets, prefix="runner-kill")
        world = s.world
        # An applicant whose ballot has four yes on the Forum poll: the closer will approve and
        # onboard them.
        app_id = apply_proven(world, NAME, discord=True)["application"]
        with world.ledger.read() as session:
            ballot_id = session.get(Application, app_id).ballot_id
        fref = ballots.refs(context(NOW), ballot_id)["discourse"]
        for voter in ("avery_quill", "bram_tolliver", "cleo_marsh", "dario_fenwick"):
            world.discourse_sb.cast_vote(
                world.discourse_url, ballots.platform_ballot("discourse", fref), voter=voter, option_index=0
            )
        assert _progress(s)["forum group adds"] == 0

        env = subprocess_env(
            PREFECT_API_URL=api_url,
            PREFECT_HOME=str(tmp_path / "prefect"),
            PREFECT_RUNNER_POLL_FREQUENCY="1",
            CHARTERFLOW_HOME=str(tmp_path),
            PYTHONUNBUFFERED="1",
            CHARTERFLOW_DATABASE_URL=str(world.ledger.engine.url),
            CHARTERFLOW_MEMBERSHIP_CONFIRM_SECRET=CONFIRM_SECRET,
            CHARTERFLOW_MEMBERSHIP_GATEWAY_URL="http://gateway.test",
            **world.discourse_sb.client_info(world.discourse_url)["env"],
            **world.discord_sb.client_info(world.discord_url)["env"],
        )
        argv = [sys.executable, "-m", "tests.reliability.serve_closer"]
        log = tmp_path / "runner.log"
        runner = start(argv, env, log)
        api = httpx.Client(base_url=api_url, timeout=30)
        try:
            deployment = {}

            def registered() -> bool:
                answer = api.get(f"/deployments/name/membership-close-due-ballots/{DEPLOYMENT}")
                deployment.update(answer.json() if answer.status_code == 200 else {})
                return bool(deployment)

            assert wait_for(registered, 120), log.read_text(errors="replace")[-3000:]
            s.set_faults({"latency": 1.5})
            run = _post(
                api,
                f"/deployments/{deployment['id']}/create_flow_run",
                {"parameters": {"now": (NOW + timedelta(hours=2)).isoformat()}},
            )

            # Kill the runner (and the run's process) once the first role is granted.
            if not wait_for(lambda: _progress(s)["forum group adds"] >= 1, 240, step=0.2):
                state = api.get(f"/flow_runs/{run['id']}").json().get("state") or {}
                pytest.fail(
                    f"no role granted; the run is {state.get('type')} "
                    f"({state.get('message')}); runner log:\n" + log.read_text(errors="replace")[-3000:]
                )
            stop(runner, sig=signal.SIGKILL)
            at_kill = _progress(s)
            state_at_kill = api.get(f"/flow_runs/{run['id']}").json()["state"]["type"]
            s.set_faults({})
            assert state_at_kill == "RUNNING"
            assert at_kill["forum welcome PMs"] == 0 and at_kill["discord welcome DMs"] == 0, (
                "the kill should land before the welcome messages"
            )
            time.sleep(2)
            assert api.get(f"/flow_runs/{run['id']}").json()["state"]["type"] == "RUNNING"

            # Restart; the operator marks the orphaned run Crashed and retries it.
            runner = start(argv, env, log)
            _set_state(api, run["id"], "CRASHED", "runner killed (SIGKILL)")
            _set_state(api, run["id"], "SCHEDULED", "retried by the operator")

            def finished() -> bool:
                return api.get(f"/flow_runs/{run['id']}").json()["state"]["type"] in ("COMPLETED", "FAILED", "CRASHED")

            assert wait_for(finished, 180), log.read_text(errors="replace")[-3000:]
            final = api.get(f"/flow_runs/{run['id']}").json()
            assert final["state"]["type"] == "COMPLETED", log.read_text(errors="replace")[-3000:]
            assert final["run_count"] >= 2
        finally:
            stop(runner)
            api.close()
            evidence.add_text("runner-kill runner.log", log.read_text(errors="replace"))

        done = _progress(s)
        assert done == {
            "forum group adds": 1,
            "discord role grants": 1,
            "forum welcome PMs": 1,
            "discord welcome DMs": 1,
        }
        states = s.states()
        assert duplicates(states) == []
        assert NAME in next(g for g in states["discourse"]["groups"] if g["name"] == "working-group")["members"]

        with world.ledger.read() as session:
            assert session.get(Application, app_id).status.value == "approved"
            assert audit.verify(session).ok
            evidence.add_text(
                "runner-kill audit entries",
                "\n".join(f"{e.action} {e.subject} {e.payload_json}" for e in session.scalars(select(AuditEntry))),
            )
        evidence.add_text("runner-kill sandbox states", json.dumps(states, default=str))
    return f"runner kill: at the kill {at_kill}; after the restart {done}"
