"""`charterflow up` as a user runs it: a real Prefect server and runner, stopped with Ctrl-C."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

CHARTERFLOW = str(Path(sys.executable).with_name("charterflow"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stack_env(home: Path, port: int, gateway_port: int | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "CHARTERFLOW_"))}
    env.update(CHARTERFLOW_HOME=str(home), CHARTERFLOW_PREFECT_PORT=str(port),
               CHARTERFLOW_GATEWAY_HOST="127.0.0.1",
               CHARTERFLOW_GATEWAY_PORT=str(gateway_port or free_port()),
               PREFECT_RUNNER_POLL_FREQUENCY="2")
    return env


def processes_of(home: Path) -> list[int]:
    """Every process whose environment names this stack's home: nothing may outlive `up`."""
    marker = f"CHARTERFLOW_HOME={home}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


class Output:
    """Collects a process's output on a thread so the pipe never fills."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(process,), daemon=True)
        self._thread.start()

    def _read(self, process: subprocess.Popen) -> None:
        for line in process.stdout:
            self.lines.append(line)

    def wait_for(self, text: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in "".join(self.lines):
                return True
            time.sleep(0.2)
        return False

    @property
    def text(self) -> str:
        return "".join(self.lines)


@pytest.mark.slow
def test_up_serves_ui_and_flows_and_stops_cleanly_on_ctrl_c(tmp_path):
    port, gateway_port = free_port(), free_port()
    env = stack_env(tmp_path, port, gateway_port)
    up = subprocess.Popen([CHARTERFLOW, "up"], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    out = Output(up)
    try:
        assert out.wait_for("charterflow is up", 150), out.text
        base = f"http://127.0.0.1:{port}"
        assert f"Prefect UI   {base}\n" in out.text
        assert "charter-what-if/operator" in out.text
        assert f"sqlite:///{tmp_path}/ledger.db" in out.text  # the ledger was migrated first
        assert (tmp_path / "ledger.db").exists()

        ui = httpx.get(base + "/", timeout=10, follow_redirects=True)
        assert ui.status_code == 200 and "<html" in ui.text.lower()

        # The gateway is up with the public form; Prefect itself listens on loopback only.
        form_url = f"http://127.0.0.1:{gateway_port}/apply"
        assert f"Apply form   {form_url}\n" in out.text
        form = httpx.get(form_url, timeout=10)
        assert form.status_code == 200 and "<form" in form.text
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            health = httpx.get(f"http://127.0.0.1:{gateway_port}/healthz", timeout=10)
            if health.status_code == 200:
                break
            time.sleep(0.5)
        assert health.status_code == 200, health.text
        assert health.json()["prefect"]["prefect_reachable"] is True

        # A second `up` says so instead of failing on the busy port.
        second = subprocess.run([CHARTERFLOW, "up"], env=env, capture_output=True, text=True,
                                timeout=30)
        assert second.returncode == 1
        assert "already running" in second.stdout and "Traceback" not in second.stdout + second.stderr

        # The runner really runs the served deployment.
        api = httpx.Client(base_url=base + "/api", timeout=10)
        deployment = api.get("/deployments/name/charter-what-if/operator").json()
        run = api.post(f"/deployments/{deployment['id']}/create_flow_run", json={
            "parameters": {"case": {"case": "board", "proposal": {"kind": "budget"}}}}).json()
        deadline = time.monotonic() + 90
        state = None
        while time.monotonic() < deadline:
            state = api.get(f"/flow_runs/{run['id']}").json()["state"]["type"]
            if state in {"COMPLETED", "FAILED", "CRASHED"}:
                break
            time.sleep(1)
        assert state == "COMPLETED"
        assert processes_of(tmp_path), "the stack's processes should be found while it runs"
    finally:
        started = time.monotonic()
        up.send_signal(signal.SIGINT)
        try:
            code = up.wait(timeout=15)
        finally:
            if up.poll() is None:
                up.kill()
        stopped_in = time.monotonic() - started
    print(f"\n`charterflow up` stopped {stopped_in:.1f} s after Ctrl-C")
    assert code == 0
    assert stopped_in < 10
    assert "Traceback" not in out.text and "Stopped." in out.text
    time.sleep(0.5)
    assert processes_of(tmp_path) == []
    assert not (tmp_path / "up.json").exists()


def test_up_refuses_a_busy_port_with_a_clear_message(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run([CHARTERFLOW, "up"], env=stack_env(tmp_path, port),
                                capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 is in use" in result.stdout
    assert "CHARTERFLOW_PREFECT_PORT" in result.stdout and "Traceback" not in result.stderr
