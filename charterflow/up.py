"""`charterflow up`: the whole stack on one machine, as one supervised group of processes.

The ledger is migrated first; then the Prefect server (embedded SQLite, bound to 127.0.0.1;
skipped when ``PREFECT_API_URL`` is set), a runner serving every deployment, the task worker
that handles inbox events, and the gateway (the one public port). Ctrl-C or SIGTERM stops all
of them within seconds, newest first.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from rich.console import Console

from charterflow.settings import Settings, get_settings

STOP_GRACE_SECONDS = 7.0
SERVER_START_TIMEOUT = 120.0
console = Console(highlight=False)


@dataclass
class Child:
    """One supervised process, in its own process group so its children stop with it."""

    name: str
    process: subprocess.Popen
    log: Path


@dataclass
class Stack:
    children: list[Child] = field(default_factory=list)

    def start(self, name: str, argv: list[str], *, env: dict[str, str], logs: Path) -> Child:
        log = logs / f"{name}.log"
        with log.open("ab") as out:
            process = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, start_new_session=True)
        child = Child(name=name, process=process, log=log)
        self.children.append(child)
        return child

    def first_dead(self) -> Child | None:
        return next((c for c in self.children if c.process.poll() is not None), None)

    def stop(self) -> None:
        """Stop the groups newest first (the runner before the server it talks to): SIGTERM,
        wait within the shared grace period, then SIGKILL what is left."""
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for child in reversed(self.children):
            _signal_group(child.process, signal.SIGTERM)
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for child in self.children:
            # Also reaps grandchildren (flow-run processes) left in the group.
            _signal_group(child.process, signal.SIGKILL)
            try:
                child.process.wait(timeout=2)
            except subprocess.TimeoutExpired:
                pass


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(process.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _running_instance(state_file: Path) -> dict | None:
    try:
        state = json.loads(state_file.read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state.get("pid"), int) and _alive(state["pid"]) else None


def _wait_healthy(api_url: str, child: Child | None, stop: threading.Event) -> bool:
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline and not stop.is_set():
        if child is not None and child.process.poll() is not None:
            return False
        try:
            if httpx.get(f"{api_url}/health", timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        stop.wait(0.5)
    return False


def _wait_deployments(api_url: str, runner: Child, stop: threading.Event) -> list[str]:
    from flows.serve import deployments

    expected = {f"{d.flow_name}/{d.name}" for d in deployments()}
    deadline = time.monotonic() + 60
    found: set[str] = set()
    while time.monotonic() < deadline and not stop.is_set() and runner.process.poll() is None:
        try:
            response = httpx.post(f"{api_url}/deployments/filter", json={"limit": 200}, timeout=5)
            flows = httpx.post(f"{api_url}/flows/filter", json={"limit": 200}, timeout=5)
            names = {f["id"]: f["name"] for f in flows.json()}
            found = {f"{names.get(d['flow_id'], '?')}/{d['name']}" for d in response.json()}
            if expected <= found:
                return sorted(expected)
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            pass
        stop.wait(0.5)
    return sorted(expected & found)


def _wait_gateway(port: int, gateway: Child, stop: threading.Event) -> bool:
    """Up once /healthz answers at all (503 only means Prefect or the ledger is not ready)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not stop.is_set():
        if gateway.process.poll() is not None:
            return False
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
            return True
        except httpx.HTTPError:
            pass
        stop.wait(0.3)
    return False


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _migrate_ledger(settings: Settings) -> str | None:
    """Bring the ledger to the current schema; its redacted URL, or None (reported) on failure."""
    from connectors.errors import CharterflowError
    from ledger.db import Ledger
    from ledger.migrate import upgrade

    try:
        ledger = Ledger(settings.ledger_url())
        upgrade(ledger)
    except CharterflowError as exc:  # the message already has the password redacted
        console.print(f"error: {exc}")
        return None
    return ledger.url


def run_up(settings: Settings | None = None) -> int:
    """Start the stack, print where to find it, and supervise it until stopped. Returns the
    exit code: 0 after a requested stop, 1 when something could not start or died."""
    settings = settings or get_settings()
    home = settings.home.resolve()
    logs = home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    state_file = home / "up.json"

    running = _running_instance(state_file)
    if running:
        console.print(f"charterflow up is already running (pid {running['pid']}); "
                      f"Prefect UI: {running.get('ui_url', '?')}")
        return 1

    ledger_url = _migrate_ledger(settings)
    if ledger_url is None:
        return 1

    stop = threading.Event()
    stop_reason: list[str] = []

    def request_stop(signum: int, frame: object) -> None:
        stop_reason.append(signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    stack = Stack()
    env = dict(os.environ)
    env.setdefault("PREFECT_HOME", str(home / "prefect"))
    env.setdefault("PREFECT_LOGGING_COLORS", "false")
    # The server would try to send telemetry; this stack may have no network beyond loopback.
    env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    env["PYTHONUNBUFFERED"] = "1"
    api_url = os.environ.get("PREFECT_API_URL", "").rstrip("/")
    external = bool(api_url)
    from gateway.settings import GatewaySettings

    gw = GatewaySettings()
    try:
        if not _port_free(gw.host, gw.port):
            console.print(f"error: port {gw.port} on {gw.host} is in use by another program; stop "
                          "it or set CHARTERFLOW_GATEWAY_PORT to a free port")
            return 1
        if not external:
            host, port = settings.prefect_host, settings.prefect_port
            if not _port_free(host, port):
                console.print(f"error: port {port} on {host} is in use by another program; stop "
                              "it or set CHARTERFLOW_PREFECT_PORT to a free port")
                return 1
            api_url = f"http://{host}:{port}/api"
            env["PREFECT_API_URL"] = api_url
            console.print(f"Starting the Prefect server on {host}:{port} …")
            server = stack.start("prefect-server", [sys.executable, "-m", "prefect", "server",
                                 "start", "--host", host, "--port", str(port)],
                                 env=env, logs=logs)
            state_file.write_text(json.dumps({"pid": os.getpid(),
                                              "ui_url": api_url.removesuffix("/api")}))
        else:
            server = None
            state_file.write_text(json.dumps({"pid": os.getpid(), "ui_url": api_url}))
        if not _wait_healthy(api_url, server, stop):
            if stop.is_set():
                return 0
            console.print(f"error: the Prefect server at {api_url} did not become healthy; "
                          f"see {logs / 'prefect-server.log'}")
            if server is not None:
                console.print(_tail(server.log))
            return 1

        runner = stack.start("runner", [sys.executable, "-m", "flows.serve"], env=env, logs=logs)
        served = _wait_deployments(api_url, runner, stop)
        if stop.is_set():
            return 0
        if runner.process.poll() is not None:
            console.print(f"error: the flow runner stopped; see {runner.log}")
            console.print(_tail(runner.log))
            return 1

        stack.start("inbox-worker", [sys.executable, "-m", "flows.inbox"], env=env, logs=logs)
        gateway = stack.start("gateway", [sys.executable, "-m", "charterflow.cli", "gateway",
                                          "--host", gw.host, "--port", str(gw.port)],
                              env=env, logs=logs)
        if not _wait_gateway(gw.port, gateway, stop):
            if stop.is_set():
                return 0
            console.print(f"error: the gateway did not start; see {gateway.log}")
            console.print(_tail(gateway.log))
            return 1

        ui_url = api_url.removesuffix("/api")
        public = (gw.public_url or f"http://127.0.0.1:{gw.port}").rstrip("/")
        rows = [("Prefect UI", ui_url + ("  (external server)" if external else "")),
                ("Prefect API", api_url), ("Ledger", ledger_url),
                ("Deployments", "\n".join(served) or "(none yet)"),
                ("Apply form", f"{public}/apply"),
                ("Gateway", f"{gw.host}:{gw.port}  /hooks/discourse /hooks/discord /hooks/slack "
                            "/healthz /metrics"),
                ("Logs", str(logs)), ("Stop", "Ctrl-C")]
        # Plain aligned lines rather than a box: long URLs stay on one line and copyable.
        console.print("charterflow is up", style="bold")
        for name, value in rows:
            first, *rest = value.splitlines() or [""]
            console.print(f"  {name:<12} {first}", soft_wrap=True)
            for line in rest:
                console.print(f"  {'':<12} {line}", soft_wrap=True)

        while not stop.wait(1.0):
            dead = stack.first_dead()
            if dead is not None:
                console.print(f"error: {dead.name} stopped unexpectedly (exit {dead.process.returncode}); "
                              f"see {dead.log}")
                console.print(_tail(dead.log))
                return 1
        return 0
    finally:
        if stack.children:
            console.print("Stopping …")
        stack.stop()
        try:
            if (_running_instance(state_file) or {}).get("pid") == os.getpid():
                state_file.unlink()
        except OSError:
            pass
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if stack.children:
            console.print("Stopped.")
