"""CLI commands act on the stack `charterflow up` runs (charterflow/stack.py).

A small stand-in for `up`: the seeded ledger (as `up` seeds it), the sandboxes process `up`
starts (``python -m charterflow.inspector``: Discord and the Forum, seeded, on loopback), and
the two files `up` writes (``charterflow.stack.record``, the function `up` calls). The commands
run as subprocesses with nothing but ``CHARTERFLOW_HOME`` set, as an operator's shell would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from charterflow import stack
from charterflow.seed import build
from charterflow.settings import Settings
from charterflow.up import sandbox_env, sandbox_spec, seed_ideas, seed_ledger
from ledger.db import Ledger
from ledger.migrate import upgrade
from tests.procs import start, stop, wait_for
from tests.support.net import free_port


@dataclass
class FakeUp:
    home: Path
    pid: int
    sandboxes: dict[str, str]
    ideas_filed: int


@pytest.fixture(scope="module")
def fake_up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeUp]:
    home = tmp_path_factory.mktemp("stack-home")
    settings = Settings(home=home, inspector_port=0, _env_file=None)
    ledger = Ledger(settings.ledger_url())
    upgrade(ledger)
    ledger.dispose()
    seed_ledger(settings)
    spec = sandbox_spec(
        settings,
        ["discord", "discourse"],
        gateway_url=f"http://127.0.0.1:{free_port()}",
        prefect_ui="http://127.0.0.1:9/",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHARTERFLOW_")}
    env.update(sandbox_env(spec))
    process = start(
        [sys.executable, "-m", "charterflow.inspector"],
        {**env, "CHARTERFLOW_SANDBOX_SPEC": json.dumps(spec)},
        home / "sandboxes.log",
    )
    try:

        def ready() -> bool:
            try:
                return (
                    httpx.get(f"http://127.0.0.1:{spec['inspector_port']}/healthz", timeout=2).json().get("ready")
                    is True
                )
            except (httpx.HTTPError, ValueError):
                return False

        assert wait_for(ready, 60), (home / "sandboxes.log").read_text()
        filed = seed_ideas(settings, spec)  # what `up` does once the sandboxes are ready
        assert seed_ideas(settings, spec) == 0  # and again: nothing new
        urls = {name: f"http://127.0.0.1:{conf['port']}" for name, conf in spec["platforms"].items()}
        stack.record(home, {"pid": process.pid, "sandboxes": urls, "real": [], "ledger": "sqlite:///…/ledger.db"}, env)
        yield FakeUp(home=home, pid=process.pid, sandboxes=urls, ideas_filed=filed)
    finally:
        stop(process)


def charterflow(home: Path, *args: str, use_up: str = "1") -> subprocess.CompletedProcess:
    """``charterflow ARGS`` from a shell that sets only CHARTERFLOW_HOME (and the switch)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHARTERFLOW_", "PREFECT_API"))}
    env.update(CHARTERFLOW_HOME=str(home), CHARTERFLOW_USE_UP=use_up)
    return subprocess.run(
        [sys.executable, "-m", "charterflow.cli", *args], env=env, text=True, capture_output=True, timeout=180, cwd=home
    )


def test_the_env_file_is_private_and_holds_the_sandboxes_settings(fake_up: FakeUp) -> None:
    path = fake_up.home / stack.ENV_FILE
    assert path.stat().st_mode & 0o077 == 0
    env = json.loads(path.read_text())
    assert env["CHARTERFLOW_DISCORD_API_URL"].startswith(fake_up.sandboxes["discord"])
    assert env["CHARTERFLOW_DISCORD_TOKEN"].startswith("sbx.")
    assert "CHARTERFLOW_HOME" not in env and stack.USE_UP not in env
    # up.json names no secret.
    text = (fake_up.home / stack.STATE_FILE).read_text()
    assert all(str(v) not in text for k, v in env.items() if "TOKEN" in k or "KEY" in k)


def test_roles_plan_reads_the_running_stacks_platforms_and_says_so(fake_up: FakeUp) -> None:
    out = charterflow(fake_up.home, "roles", "plan")
    assert out.returncode == 0, out.stderr
    line = out.stderr.splitlines()[0]
    assert line.startswith(f"using the stack of `charterflow up` (up.json, pid {fake_up.pid}): ")
    assert f"Discord sandbox {fake_up.sandboxes['discord']}" in line
    assert f"Forum (Discourse) sandbox {fake_up.sandboxes['discourse']}" in line
    assert line.endswith("set CHARTERFLOW_USE_UP=0 to use your own settings")
    assert "not served" not in out.stdout and "not reached" not in out.stdout
    assert "unknown" not in out.stdout
    verdict = next(v for v in out.stdout.splitlines() if v.startswith("verdict: "))
    assert verdict.startswith("verdict: allowed (R-"), out.stdout


def test_without_the_stack_the_verdict_is_unknown_not_allowed(fake_up: FakeUp) -> None:
    out = charterflow(fake_up.home, "roles", "plan", use_up="0")
    assert out.returncode == 0, out.stderr
    assert "using the stack" not in out.stderr
    assert "not served" not in out.stdout
    verdict = next(v for v in out.stdout.splitlines() if v.startswith("verdict: "))
    assert "allowed" not in verdict
    assert "unknown for discord (not reached: not configured here)" in verdict
    assert "unknown for discourse (not reached: not configured here)" in verdict
    assert any(
        s.startswith("skipped: ") and "(discord not reached: not configured here)" in s for s in out.stdout.splitlines()
    )
    applied = charterflow(fake_up.home, "roles", "apply", "--confirm", use_up="0")
    assert applied.returncode == 1
    assert "verdict unknown for discord, discourse: nothing sent" in applied.stderr


def test_other_commands_say_which_stack_and_commands_that_do_not_act_stay_quiet(fake_up: FakeUp) -> None:
    listed = charterflow(fake_up.home, "ideas", "list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stderr.startswith("using the stack of `charterflow up`")
    report = charterflow(fake_up.home, "moderation", "report")
    assert report.returncode == 0 and report.stderr.startswith("using the stack of `charterflow up`")
    version = charterflow(fake_up.home, "version")
    assert version.returncode == 0 and "using the stack" not in version.stderr


def test_the_seeded_ideas_are_in_the_backlog(fake_up: FakeUp) -> None:
    seeded = build().ideas
    assert fake_up.ideas_filed == len(seeded) == 3
    out = charterflow(fake_up.home, "ideas", "list", "--json")
    assert out.returncode == 0, out.stderr
    items = json.loads(out.stdout)
    assert sorted(i["title"] for i in items) == sorted(i["title"] for i in seeded)
    forum = fake_up.sandboxes["discourse"]
    assert all(i["status"] == "new" for i in items)
    assert all(i["source"] == "forum" and i["link"].startswith(f"{forum}/t/") for i in items), items


def test_a_platform_that_does_not_answer_makes_its_verdict_unknown(fake_up: FakeUp, tmp_path: Path) -> None:
    # The same stack, but its Forum gone silent (a port nobody listens on).
    env = json.loads((fake_up.home / stack.ENV_FILE).read_text())
    assert env["CHARTERFLOW_DISCOURSE_URL"] == fake_up.sandboxes["discourse"]
    env["CHARTERFLOW_DISCOURSE_URL"] = f"http://127.0.0.1:{free_port()}"
    env["CHARTERFLOW_DATABASE_URL"] = f"sqlite:///{fake_up.home / 'ledger.db'}"
    stack.record(tmp_path, {"pid": fake_up.pid, "sandboxes": fake_up.sandboxes, "real": []}, env)
    out = charterflow(tmp_path, "roles", "plan")
    assert out.returncode == 0, out.stderr
    verdict = next(v for v in out.stdout.splitlines() if v.startswith("verdict: "))
    assert verdict.startswith("verdict: allowed for discord (R-"), verdict
    assert "; unknown for discourse (not reached: not answering (discourse: " in verdict
    assert "not served" not in out.stdout
