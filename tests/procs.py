"""Subprocess helpers of the tests: free ports, processes started in their own
session (so a whole tree can be killed), a Prefect server that can be stopped and started again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.support.net import free_port


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment of a subprocess: no inherited Prefect/charterflow settings, no proxy."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PREFECT_", "CHARTERFLOW_")) and "proxy" not in k.lower()
    }
    env.update(
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_LOGGING_COLORS="false",
        PYTHONUNBUFFERED="1",
        NO_PROXY="127.0.0.1,localhost",
    )
    env.update(extra)
    return env


def start(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """Start ``argv`` in a new session, appending its output to ``log``."""
    with log.open("ab") as out:
        return subprocess.Popen(
            argv, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )


def stop(process: subprocess.Popen, *, sig: int = signal.SIGTERM) -> None:
    """Stop the process and its session: ``sig`` first, SIGKILL if it lingers."""
    for s, wait in ((sig, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, s)
        except ProcessLookupError:
            process.wait(timeout=5)
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def wait_for(predicate: Callable[[], bool], timeout: float, step: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


class PrefectServer:
    """``prefect server start`` on a free port with its own PREFECT_HOME (its own SQLite
    database), which survives :meth:`stop` and :meth:`start` again."""

    def __init__(self, home: Path, env: dict[str, str]) -> None:
        self.home = home
        self.port = free_port()
        self.api = f"http://127.0.0.1:{self.port}/api"
        self.log = home / "prefect-server.log"
        self.env = {**env, "PREFECT_HOME": str(home / "prefect"), "PREFECT_API_URL": self.api}
        self.process: subprocess.Popen | None = None

    def start(self, *, timeout: float = 180) -> None:
        self.process = start(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(self.port)],
            self.env,
            self.log,
        )
        if not wait_for(self.healthy, timeout):
            raise AssertionError("the Prefect server did not start:\n" + self.log.read_text(errors="replace")[-3000:])

    def healthy(self) -> bool:
        try:
            return httpx.get(f"{self.api}/health", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)
            self.process = None
