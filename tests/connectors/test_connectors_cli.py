"""`charterflow connectors list`, `charterflow sandbox`, and discovery through entry points."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from importlib.metadata import EntryPoint
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from charterflow.cli import app
from connectors import registry
from connectors.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
CHARTERFLOW = [sys.executable, "-c", "from charterflow.cli import main; main()"]


class Good:
    name = "good"
    capabilities = frozenset({"inbound"})
    docs_url = "https://example.invalid/docs"

    def verify(self, *, headers, body): ...
    @classmethod
    def from_env(cls): ...
    @classmethod
    def sandbox(cls, *, seed=None): ...
    def close(self): ...


class Incomplete:
    name = "incomplete"
    capabilities = frozenset({"messenger", "teleport"})
    docs_url = "not a url"


def fake_entry_points(monkeypatch, *eps):
    module = sys.modules[__name__]
    monkeypatch.setattr(registry, "entry_points", lambda group: [EntryPoint(n, v, group) for n, v in eps])
    return module


def test_discovery_reports_failures_without_crashing(monkeypatch):
    fake_entry_points(
        monkeypatch,
        ("good", f"{__name__}:Good"),
        ("broken", "connectors.nowhere.connector:Missing"),
        ("incomplete", f"{__name__}:Incomplete"),
        ("good", f"{__name__}:Incomplete"),
    )
    infos = {(i.name, i.target): i for i in registry.discover()}
    good = infos[("good", f"{__name__}:Good")]
    assert good.loaded and good.capabilities == ("inbound",)
    broken = infos[("broken", "connectors.nowhere.connector:Missing")]
    assert not broken.loaded and "ModuleNotFoundError" in broken.error
    incomplete = infos[("incomplete", f"{__name__}:Incomplete")]
    assert not incomplete.loaded
    for problem in ("unknown capability 'teleport'", "lacks post, reply, direct_message", "docs_url", "from_env"):
        assert problem in incomplete.error
    assert "duplicate name" in infos[("good", f"{__name__}:Incomplete")].error
    assert registry.loaded_connectors() == {"good": Good}
    with pytest.raises(ConfigError, match="failed to load"):
        registry.load_connector("broken")
    with pytest.raises(ConfigError, match="known: broken, good, incomplete"):
        registry.load_connector("absent")


def test_the_real_registry_loads_discourse_and_reports_the_unbuilt_ones():
    infos = {i.name: i for i in registry.discover()}
    assert infos["discourse"].loaded
    assert set(infos["discourse"].capabilities) == {
        "directory",
        "role_manager",
        "messenger",
        "ballot_box",
        "inbound",
        "uploader",
    }
    for name, info in infos.items():
        assert info.loaded or info.error, name


def test_connectors_list_prints_each_with_its_state():
    result = CliRunner().invoke(app, ["connectors", "list"])
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if x.startswith("discourse"))
    assert "ok" in line and "role_manager" in line and "https://docs.discourse.org/" in line
    as_json = CliRunner().invoke(app, ["connectors", "list", "--json"])
    rows = [json.loads(x) for x in as_json.output.splitlines()]
    discourse = next(r for r in rows if r["name"] == "discourse")
    assert discourse["loaded"] and discourse["error"] is None
    assert all(r["loaded"] or r["error"] for r in rows)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["sandbox", "no-such-connector"], "no connector named 'no-such-connector'"),
        (["sandbox", "discourse", "--seed", "/nonexistent/seed.json"], "cannot read"),
        (["sandbox", "discourse", "--port", "70000"], "--port must be between 0 and 65535"),
    ],
)
def test_sandbox_errors_are_one_line_exit_2(args, message):
    result = subprocess.run([*CHARTERFLOW, *args], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr and "Traceback" not in result.stderr


def test_sandbox_bad_seed_and_busy_port(tmp_path):
    bad = tmp_path / "seed.json"
    bad.write_text('{"users": [{"username": "x"}]}')
    result = subprocess.run(
        [*CHARTERFLOW, "sandbox", "discourse", "--seed", str(bad)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2 and "invalid sandbox seed" in result.stderr and result.stderr.count("\n") == 1
    bad.write_text("{not json")
    result = subprocess.run(
        [*CHARTERFLOW, "sandbox", "discourse", "--seed", str(bad)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2 and "not JSON" in result.stderr
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [*CHARTERFLOW, "sandbox", "discourse", "--port", str(port)], capture_output=True, text=True, timeout=60
        )
    assert result.returncode == 2 and f"127.0.0.1:{port}" in result.stderr and "Traceback" not in result.stderr


def test_sandbox_serves_prints_one_json_line_and_stops_cleanly_on_ctrl_c(tmp_path):
    seed = tmp_path / "seed.json"
    seed.write_text(
        json.dumps(
            {
                "api_keys": [{"key": "cli-test-key-0001"}],
                "users": [
                    {"id": -1, "username": "system", "admin": True},
                    {"username": "gale_ember", "name": "Gale Ember", "days_visited": 12},
                ],
                "groups": [{"name": "stewards", "members": ["gale_ember"]}],
            }
        )
    )
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [*CHARTERFLOW, "sandbox", "discourse", "--seed", str(seed)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = proc.stdout.readline()
        info = json.loads(line)
        assert info["base_url"].startswith("http://127.0.0.1:")
        assert info["credentials"]["api_key"] == "cli-test-key-0001"
        # Any HTTP client can use what the line says.
        deadline = time.monotonic() + 10
        while True:
            try:
                response = httpx.get(f"{info['base_url']}/u/gale_ember.json", headers=info["headers"], timeout=5)
                break
            except httpx.ConnectError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        assert response.status_code == 200 and response.json()["user"]["username"] == "gale_ember"
        assert httpx.get(info["control"]["state"]).json()["groups"][0]["name"] == "stewards"
        # A connection left idle past uvicorn's default keep-alive (5 s) still answers: a client
        # that waited out a rate limit reuses its pooled connection (KEEP_ALIVE_SECONDS).
        connection = http.client.HTTPConnection(info["base_url"].removeprefix("http://"), timeout=10)
        answers = []
        for pause in (0, 6):
            time.sleep(pause)
            connection.request("GET", "/u/gale_ember.json", headers=info["headers"])
            answers.append((connection.getresponse(), connection.sock))
            answers[-1][0].read()
        connection.close()
        assert [a.status for a, _ in answers] == [200, 200]
        assert answers[0][1] is answers[1][1], "the second request went on the same connection"
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert out.strip() == ""  # exactly one line was printed
