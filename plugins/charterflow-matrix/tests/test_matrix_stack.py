"""The homeserver ``charterflow up`` starts (``charterflow_matrix.stack.up_service``): settings for
the stack's processes, a community seeded once, the same bot and rooms after a restart."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from charterflow.settings import Settings
from charterflow.up import Up, plan_stack
from charterflow_matrix.connector import MatrixConnector
from charterflow_matrix.settings import MatrixSettings
from charterflow_matrix.stack import up_service


def test_up_starts_synapse_seeds_once_and_restarts_with_the_same_bot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CHARTERFLOW_MATRIX_ACCESS_TOKEN", raising=False)
    monkeypatch.delenv("CHARTERFLOW_MATRIX_UP", raising=False)
    service = up_service(home=tmp_path, gateway_url="http://127.0.0.1:9")
    assert service is not None
    try:
        env = service.env
        settings = MatrixSettings(
            _env_file=None,
            homeserver_url=env["CHARTERFLOW_MATRIX_HOMESERVER_URL"],
            server_name=env["CHARTERFLOW_MATRIX_SERVER_NAME"],
            access_token=SecretStr(env["CHARTERFLOW_MATRIX_ACCESS_TOKEN"]),
        )
        with MatrixConnector(settings=settings) as matrix:
            assert len(matrix.community_rooms()) == 4
            assert matrix.find_user("wren_halloway").username == "wren_halloway"
        assert (
            "matrix.to" in service.links["Matrix"]
            and env["CHARTERFLOW_MATRIX_ACCESS_TOKEN"] not in service.links["Matrix"]
        )
    finally:
        service.stop()
    again = up_service(home=tmp_path, gateway_url="http://127.0.0.1:9")
    try:
        assert again.env == env  # same port, same bot token
        with MatrixConnector(settings=settings) as matrix:
            assert len(matrix.community_rooms()) == 4  # not seeded twice
    finally:
        again.stop()
    assert not again.homeserver.alive()


def test_up_leaves_a_configured_homeserver_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHARTERFLOW_MATRIX_ACCESS_TOKEN", "a-real-token-from-settings")
    assert up_service(home=tmp_path, gateway_url="http://127.0.0.1:9") is None


def test_charterflow_up_starts_it_gives_its_settings_to_the_children_and_stops_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``up``'s own hook (entry-point group ``charterflow.stack``), without the rest of the stack."""
    monkeypatch.delenv("CHARTERFLOW_MATRIX_ACCESS_TOKEN", raising=False)
    monkeypatch.delenv("CHARTERFLOW_MATRIX_UP", raising=False)
    settings = Settings(_env_file=None, home=tmp_path)
    up = Up(settings)
    plan = plan_stack(settings, home=tmp_path, real=set(), sandboxed=[], heal=lambda _: None)
    up._start_services(plan)
    try:
        [service] = up.services
        assert service.homeserver.alive()
        for spec in (plan.workers, plan.gateway):
            assert spec.env["CHARTERFLOW_MATRIX_HOMESERVER_URL"] == service.env["CHARTERFLOW_MATRIX_HOMESERVER_URL"]
        assert "CHARTERFLOW_MATRIX_ACCESS_TOKEN" not in (plan.server.env if plan.server else {})
        registration = (tmp_path / "matrix" / "appservice.yaml").read_text()
        assert f'"{plan.public_url}/hooks/matrix"' in registration
        _killed_synapse_is_restarted(up, service)
    finally:
        up._shutdown({})
    assert not service.homeserver.alive()
    assert all(c.process.poll() is not None for c in up.supervisor.children)


def _killed_synapse_is_restarted(up: Any, service: Any) -> None:
    """Supervised like ``up``'s own children: SIGKILLed, it is started again and answers."""
    up.logs.mkdir(parents=True, exist_ok=True)
    child = up.supervisor.child("matrix-homeserver")
    assert child.process is service.homeserver.process and child.state == "running"
    os.kill(child.process.pid, signal.SIGKILL)
    base = service.env["CHARTERFLOW_MATRIX_HOMESERVER_URL"]
    deadline = time.monotonic() + 90
    answered = False
    while time.monotonic() < deadline and not answered:
        assert up.supervisor.check() is None
        if child.restarts == 1 and child.process.poll() is None:
            try:
                answered = httpx.get(f"{base}/_matrix/client/versions", timeout=2).status_code == 200
            except httpx.TransportError:
                pass
        time.sleep(0.2)
    assert answered, (up.logs / "matrix-homeserver.log").read_text(errors="replace")[-2000:]
    status = json.loads((up.home / "status.json").read_text())
    row = next(c for c in status["children"] if c["name"] == "matrix-homeserver")
    assert row["restarts"] == 1 and row["last_exit"] == -9
