"""The gateway process holds neither Prefect nor any flow (issue 18, point 13): its routes come
from a snapshot taken in a forked child, and it writes the inbox task's run bodies itself. Each
check here compares that light path with what importing flows.inbox and Prefect gives."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from prefect.client.schemas.actions import TaskRunCreate
from prefect.client.schemas.objects import TaskRunPolicy
from prefect.settings import PREFECT_API_URL
from prefect.states import Scheduled, to_state_create

from flows import inbox, inbox_routing

ROOT = Path(__file__).resolve().parents[2]

# Run in a fresh interpreter: the served gateway's start-up, then what it knows.
GATEWAY_START = """
import json, sys
from gateway.app import create_app, load_routes_apart
from gateway.dispatch import StoreOnlyDispatcher
from ledger.db import Ledger
from ledger.migrate import upgrade
from tests.support.gateway import gateway_settings
from flows import inbox_routing as r

load_routes_apart()
ledger = Ledger(sys.argv[1])
upgrade(ledger)
create_app(settings=gateway_settings(), ledger=ledger, dispatcher=StoreOnlyDispatcher())
config = r.RoutingConfig()
print(json.dumps({
    "heavy": sorted(m for m in sys.modules if m.split(".")[0] == "prefect" or m == "flows.inbox"
                    or m.startswith(("flows.roles.", "flows.ideas.", "flows.reports.", "flows.board."))),
    "snapshot": r.routes_snapshot(),
    "role": r.route_for(source="discord", kind="role", attributes={}, config=config),
    "button": r.route_for(source="discord", kind="component", attributes={"custom_id": "cfm:1"}, config=config),
    "body": r.task_run_body(event_id=3, attempt=2, route="idea"),
}))
"""


def _gateway_start(tmp_path: Path, **env: str) -> dict:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    environ.update(
        PREFECT_HOME=str(tmp_path / "prefect"),
        PREFECT_API_URL="http://127.0.0.1:9/api",
        CHARTERFLOW_HOME=str(tmp_path),
        **env,
    )
    result = subprocess.run(
        [sys.executable, "-c", GATEWAY_START, f"sqlite:///{tmp_path / 'ledger.db'}"],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_served_gateway_routes_as_flows_inbox_does_without_importing_prefect(tmp_path):
    seen = _gateway_start(tmp_path)
    assert seen["heavy"] == []
    # The same registry as this process's, where flows.inbox registered every capability.
    assert seen["snapshot"] == json.loads(json.dumps(inbox.routes_snapshot()))
    assert seen["snapshot"]["task_key"] == inbox.handle_inbox_event.task_key
    assert seen["role"] == inbox.COMMAND_ROUTES["role"] == "roles-change"
    assert seen["button"] == "moderation-button"
    assert seen["body"]["task_key"] == inbox.handle_inbox_event.task_key


def test_task_run_body_is_what_prefect_builds_for_the_task():
    task = inbox.handle_inbox_event
    state = Scheduled()
    state.state_details.deferred = True
    built = TaskRunCreate(
        name="inbox-vote-41",
        flow_run_id=None,
        task_key=task.task_key,
        dynamic_key="inbox-41-3",
        task_version=task.version,
        tags=["charterflow", "inbox", "route:vote"],
        empirical_policy=TaskRunPolicy(
            retries=task.retries,
            retry_jitter_factor=task.retry_jitter_factor,
            retry_delay=[int(d) for d in task.retry_delay_seconds],
        ),
        state=to_state_create(state),
        task_inputs={},
    ).model_dump(mode="json", exclude={"id"})
    written = inbox_routing.task_run_body(event_id=41, attempt=3, route="vote")
    # What we write, read back by Prefect's own model, is what Prefect would send.
    parsed = TaskRunCreate.model_validate(written).model_dump(mode="json", exclude={"id"})
    for body in (built, parsed):
        body["state"]["state_details"].pop("scheduled_time")
    assert parsed == built
    assert task.name == inbox_routing.TASK_NAME


def test_prefect_settings_from_the_environment_unless_a_file_may_set_them(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no .env, prefect.toml or pyproject.toml here
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect"))
    monkeypatch.delenv("PREFECT_PROFILES_PATH", raising=False)
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:4200/api")
    monkeypatch.setenv("PREFECT_API_KEY", "pnu_invented_key_of_avery_quill")
    monkeypatch.delenv("PREFECT_API_AUTH_STRING", raising=False)
    assert not inbox_routing._prefect_files()
    assert inbox_routing.prefect_setting("PREFECT_API_URL") == "http://127.0.0.1:4200/api"
    assert inbox_routing.prefect_setting("PREFECT_API_AUTH_STRING") is None
    with inbox_routing.prefect_http("http://127.0.0.1:4200/api") as client:
        assert client.headers["Authorization"] == "Bearer pnu_invented_key_of_avery_quill"
    # A file Prefect reads could set one: then Prefect's settings answer (this process's, read
    # when Prefect was imported here).

    (tmp_path / "prefect.toml").write_text('[api]\nurl = "http://127.0.0.1:4300/api"\n')
    assert inbox_routing._prefect_files()
    assert inbox_routing.prefect_setting("PREFECT_API_URL") == (PREFECT_API_URL.value() or None)
    (tmp_path / "prefect.toml").unlink()
    (tmp_path / ".env").write_text("CHARTERFLOW_HOME=/tmp/x\n")
    assert not inbox_routing._prefect_files()
    (tmp_path / ".env").write_text("PREFECT_API_AUTH_STRING=bram_tolliver:invented\n")
    assert inbox_routing._prefect_files()
