"""Beyond one machine: a Prefect server on PostgreSQL, the ledger on PostgreSQL, `charterflow deploy
--work-pool` to a process pool, `prefect worker start` on it, the gateway and the inbox task
worker, all as separate processes talking over HTTP, with the platform sandboxes on 127.0.0.1.

One application goes from the gateway to onboarding: the public form POST, the Discord Confirm
button in the DM and the Forum confirmation page, two members' ballot buttons on Discord (through
the gateway and the task worker), two votes in the Forum poll; then the scheduled
``close-due-ballots`` deployment, started as the scheduler would, runs **on the pool's worker**,
merges the Forum votes, closes the ballot and onboards the applicant. Prefect's API shows the run's
``work_pool_name``; the sandboxes show each onboarding effect exactly once. Every process is
stopped at the end and none is left.

The server's scheduler is off (``--no-scheduler``): the registered schedules are read back from
the API instead of letting timed runs (renewal, expiry…) start during the test.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, select, text

from charterflow.deploy import deploy_to_pool
from connectors.discord.connector import DiscordConnector
from connectors.discourse.connector import DiscourseConnector
from connectors.errors import ConfigError
from flows.kit import context
from flows.membership import ballot as ballots
from flows.platforms import Platforms, use
from flows.serve import deployments
from ledger import repo
from ledger.db import Ledger
from ledger.migrate import upgrade
from ledger.models import Application, ApplicationStatus, InboxEvent, MembershipStatus, Person
from rules import default_charter
from tests.support.membership import NOW, discord_seed, discourse_seed, seed_members
from tests.support.net import LoopbackServer, free_port

BIN = Path(sys.executable).parent
POOL = "charterflow-test-pool"
APPLICANT = "quinn_harbor"
CONFIRM_SECRET = "workpool-test-confirm-secret-invented"


def _database(server: Any, name: str) -> str:
    engine = create_engine(server.admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        conn.execute(text(f"CREATE DATABASE {name}"))
    engine.dispose()
    return name


def _wait(what: str, probe: Callable[[], Any], timeout: float = 90.0, every: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = probe()
        except (httpx.HTTPError, ValueError, KeyError):
            found = None
        if found:
            return found
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


class Processes:
    """Child processes, each in its own process group, with their output in files."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.children: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen:
        out = (self.logs / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            argv,
            env=env,
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.children.append((name, proc))
        return proc

    def alive(self) -> None:
        for name, proc in self.children:
            assert proc.poll() is None, f"{name} exited ({proc.returncode}):\n{self.tail(name)}"

    def tail(self, name: str, lines: int = 40) -> str:
        path = self.logs / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def stop(self) -> None:
        """Newest first (the clients before the server they talk to): SIGTERM, then SIGKILL for
        what is left in the group (a flow-run process included)."""
        for _, proc in reversed(self.children):
            for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 10)):
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    pass
                try:
                    proc.wait(timeout=wait)
                except subprocess.TimeoutExpired:
                    pass


def _processes_of(marker: str) -> list[int]:
    """Every process whose environment carries ``marker`` (nothing may outlive the test)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if marker.encode() in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def _seed_ledger(ledger: Ledger, forum: Any, discord: Any) -> None:
    """The seven WG members, a term started 100 days ago, on both platforms (as ``world`` does)."""
    with ledger.transaction() as session:
        seed_members(session, forum=forum, discord=discord, charter=default_charter(), start=NOW - timedelta(days=100))


@pytest.fixture
def stack(tmp_path: Path, postgres_server: Any) -> Iterator[dict[str, Any]]:
    logs = tmp_path / "logs"
    logs.mkdir()
    home = tmp_path / "home"
    prefect_db = _database(postgres_server, f"prefect_{os.getpid()}")
    ledger_url = postgres_server.url(_database(postgres_server, f"ledger_{os.getpid()}"))
    ledger = Ledger(ledger_url)
    upgrade(ledger)

    seed = discord_seed()
    seed["settings"]["interaction_timeout"] = 20.0  # a loaded 2-core machine: keep Discord's 3 s out of it
    forum_sb, discord_sb = DiscourseConnector.sandbox(seed=discourse_seed()), DiscordConnector.sandbox(seed=seed)
    procs = Processes(logs)
    with LoopbackServer(forum_sb.app) as forum_srv, LoopbackServer(discord_sb.app) as discord_srv:
        forum, discord = forum_sb.connect(forum_srv.url), discord_sb.connect(discord_srv.url)
        _seed_ledger(ledger, forum, discord)
        api_port, gateway_port = free_port(), free_port()
        api = f"http://127.0.0.1:{api_port}/api"
        gateway = f"http://127.0.0.1:{gateway_port}"
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("PREFECT_", "CHARTERFLOW_")) and k.upper() not in ("HTTP_PROXY", "HTTPS_PROXY")
        }
        env.update(forum_sb.client_info(forum_srv.url)["env"])
        env.update(discord_sb.client_info(discord_srv.url)["env"])
        env.update(
            {
                "NO_PROXY": "127.0.0.1,localhost",
                "PREFECT_HOME": str(tmp_path / "prefect"),
                "PREFECT_API_URL": api,
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "PREFECT_API_DATABASE_CONNECTION_URL": f"postgresql+asyncpg://postgres@127.0.0.1:{postgres_server.port}/{prefect_db}",
                "PREFECT_WORKER_QUERY_SECONDS": "2",
                "PREFECT_WORKER_PREFETCH_SECONDS": "2",
                "PREFECT_LOGGING_LEVEL": "WARNING",
                "CHARTERFLOW_HOME": str(home),
                "CHARTERFLOW_DATABASE_URL": ledger_url,
                "CHARTERFLOW_MEMBERSHIP_CONFIRM_SECRET": CONFIRM_SECRET,
                "CHARTERFLOW_MEMBERSHIP_GATEWAY_URL": gateway,
                "CHARTERFLOW_GATEWAY_HOST": "127.0.0.1",
                "CHARTERFLOW_GATEWAY_PORT": str(gateway_port),
                "CHARTERFLOW_GATEWAY_FORM_SECRET": "workpool-test-form-secret-invented",
                "CHARTERFLOW_GATEWAY_DRAIN_INTERVAL": "1",
            }
        )
        try:
            procs.start(
                "server",
                [
                    str(BIN / "prefect"),
                    "server",
                    "start",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(api_port),
                    "--no-ui",
                    "--no-scheduler",
                ],
                env,
                tmp_path,
            )
            _wait("the Prefect server", lambda: httpx.get(f"{api}/health", timeout=3).status_code == 200, timeout=150)
            deployed = subprocess.run(
                [str(BIN / "charterflow"), "deploy", "--work-pool", POOL, "--create-pool"],
                env=env,
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=180,
            )
            assert deployed.returncode == 0, deployed.stdout + deployed.stderr
            procs.start(
                "worker", [str(BIN / "prefect"), "worker", "start", "--pool", POOL, "--type", "process"], env, tmp_path
            )
            procs.start("task-worker", [sys.executable, "-m", "flows.inbox"], env, tmp_path)
            procs.start("gateway", [str(BIN / "charterflow"), "gateway"], env, tmp_path)
            _wait("the gateway", lambda: httpx.get(f"{gateway}/healthz", timeout=3).status_code == 200, timeout=90)
            httpx.post(
                f"{discord_srv.url}/_sandbox/interactions_url", json={"url": f"{gateway}/hooks/discord"}, timeout=10
            ).raise_for_status()
            yield {
                "api": api,
                "gateway": gateway,
                "ledger": ledger,
                "deploy_output": deployed.stdout,
                "forum_sb": forum_sb,
                "forum_url": forum_srv.url,
                "discord_sb": discord_sb,
                "discord_url": discord_srv.url,
                "procs": procs,
                "home": home,
                "env": env,
                "cwd": tmp_path,
            }
        finally:
            procs.stop()
            forum.close()
            discord.close()
            ledger.dispose()


def _state(url: str) -> dict[str, Any]:
    return httpx.get(f"{url}/_sandbox/state", timeout=10).json()


def _application(ledger: Ledger) -> tuple[int, str, int | None] | None:
    with ledger.read() as session:
        app = session.scalars(select(Application).order_by(Application.id.desc())).first()
        return (app.id, app.status.value, app.ballot_id) if app else None


def _processed(ledger: Ledger, kind: str) -> int:
    with ledger.read() as session:
        return sum(
            1 for e in session.scalars(select(InboxEvent).where(InboxEvent.kind == kind)) if e.processed_at is not None
        )


def _press_page_button(base: str, path: str) -> httpx.Response:
    with httpx.Client(base_url=base, timeout=30) as browser:
        shown = browser.get(path)
        assert shown.status_code == 200, shown.text
        csrf = re.search(r'name="csrf" value="([^"]+)"', shown.text).group(1)
        return browser.post(path, data={"csrf": csrf})


def _flow_runs(api: str, flow_name: str) -> list[dict[str, Any]]:
    return httpx.post(f"{api}/flow_runs/filter", json={"flows": {"name": {"any_": [flow_name]}}}, timeout=10).json()


@pytest.mark.slow
def test_an_application_reaches_onboarding_through_a_process_work_pool(stack):
    api, gateway, ledger, procs = stack["api"], stack["gateway"], stack["ledger"], stack["procs"]
    forum_sb, forum_url = stack["forum_sb"], stack["forum_url"]
    discord_sb, discord_url = stack["discord_sb"], stack["discord_url"]

    # deploy registered every deployment to the pool, with its schedules, as module entrypoints.

    expected = {f"{d.flow_name}/{d.name}": d for d in deployments()}
    listed = httpx.post(f"{api}/deployments/filter", json={}, timeout=10).json()
    assert len(listed) == len(expected) and all(d["work_pool_name"] == POOL for d in listed)
    flow_names = {f["id"]: f["name"] for f in httpx.post(f"{api}/flows/filter", json={}, timeout=10).json()}
    for row in listed:
        want = expected[f"{flow_names[row['flow_id']]}/{row['name']}"]
        assert len(row["schedules"]) == len(want.schedules or [])
        assert row["tags"] == want.tags and row["description"] == want.description
        assert ":" not in row["entrypoint"] and row["pull_steps"] in ([], None)
        assert row["job_variables"]["working_dir"] == str(stack["cwd"].resolve())
    registered = [ln.split()[1] for ln in stack["deploy_output"].splitlines() if ln.startswith("registered ")]
    assert sorted(registered) == sorted(expected)
    assert "membership-renewal/daily  → charterflow-test-pool  cron 0 9 * * *" in stack["deploy_output"]
    # Idempotent: a second deploy updates the same deployments, schedules not doubled.
    again = subprocess.run(
        [str(BIN / "charterflow"), "deploy", "--work-pool", POOL],
        env=stack["env"],
        cwd=stack["cwd"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert again.returncode == 0, again.stderr
    relisted = httpx.post(f"{api}/deployments/filter", json={}, timeout=10).json()
    assert sorted((d["id"], len(d["schedules"])) for d in relisted) == sorted(
        (d["id"], len(d["schedules"])) for d in listed
    )

    # 1. The public form.
    with httpx.Client(base_url=gateway, timeout=30) as browser:
        page = browser.get("/apply").text
        hidden = {n: re.search(rf'name="{n}" value="([^"]*)"', page).group(1) for n in ("submission", "csrf")}
        done = browser.post(
            "/apply",
            data={
                **hidden,
                "discourse_username": APPLICANT,
                "discord_username": APPLICANT,
                "why": "I moderate a local meetup forum and want to help.",
                "experience": "Five years of community moderation.",
                "nominator": "",
                "email": "",
                "website": "",
            },
        )
    assert done.status_code == 200, done.text
    app_id = _wait("the application", lambda: _application(ledger))[0]

    # 2. Discord: the applicant presses Confirm in the DM the intake sent.
    def dm_button() -> tuple[dict[str, Any], str] | None:
        for message in _state(discord_url)["messages"]:
            for row in message.get("components") or []:
                for comp in row.get("components", []):
                    if str(comp.get("custom_id", "")).startswith("cfc:"):
                        return message, comp["custom_id"]
        return None

    message, custom_id = _wait("the Discord confirmation DM", dm_button)
    pressed = discord_sb.press(
        discord_url, user=APPLICANT, channel_id=message["channel_id"], message_id=message["id"], custom_id=custom_id
    )
    assert pressed["status"] == 200 and not pressed["failed"], pressed
    _wait("the Discord confirmation", lambda: _processed(ledger, "component") == 1)

    # 3. The Forum: the confirmation page linked from the PM.
    def forum_link() -> str | None:
        for post in _state(forum_url)["posts"]:
            found = re.search(r"https?://[^/\s]+(/confirm/[\w.]+)", post["raw"])
            if found:
                return found.group(1)
        return None

    assert _press_page_button(gateway, _wait("the Forum confirmation PM", forum_link)).status_code == 200
    _, status, ballot_id = _wait("the ballot", lambda: (a := _application(ledger)) and a[1] == "voting" and a)
    procs.alive()

    # 4. Two members vote yes with the ballot's buttons on Discord (gateway → task worker).

    platforms = Platforms.build(
        charter=default_charter(),
        discourse=forum_sb.connect(forum_url),
        discord=discord_sb.connect(discord_url),
        confirm_secret=CONFIRM_SECRET,
    )
    with use(ledger=ledger, platforms=platforms):
        where = ballots.refs(context(NOW), ballot_id)
    for voter in ("cleo_marsh", "dario_fenwick"):
        vote = discord_sb.press(
            discord_url,
            user=voter,
            channel_id=where["discord"]["thread_id"],
            message_id=where["discord"]["message_id"],
            option_index=0,
        )
        assert vote["status"] == 200 and not vote["failed"], vote
    _wait("two Discord votes", lambda: _processed(ledger, "ballot_vote") == 2)
    assert _application(ledger)[1] == "voting"  # two of seven: not decided yet
    # ... and two in the Forum poll, which only the scheduled close-due-ballots flow reads.
    forum_ballot = ballots.platform_ballot("discourse", where["discourse"])
    for voter in ("avery_quill", "bram_tolliver"):
        forum_sb.cast_vote(forum_url, forum_ballot, voter=voter, option_index=0)
    platforms.close()

    # 5. The scheduled deployment, started as its schedule would, runs on the pool's worker.
    deployment = httpx.get(f"{api}/deployments/name/membership-close-due-ballots/every-5-minutes", timeout=10).json()
    run = httpx.post(f"{api}/deployments/{deployment['id']}/create_flow_run", json={}, timeout=10).json()
    finished = _wait(
        "the close-due-ballots run on the worker",
        lambda: (
            (r := httpx.get(f"{api}/flow_runs/{run['id']}", timeout=10).json())["state_type"]
            in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")
            and r
        ),
        timeout=150,
        every=1.0,
    )
    assert finished["state_type"] == "COMPLETED", procs.tail("worker")
    assert finished["work_pool_name"] == POOL and finished["deployment_id"] == deployment["id"]
    assert finished["infrastructure_pid"]  # a process the worker started

    # Onboarding ran inside that run (a child flow run of it).
    [onboarding] = _flow_runs(api, "membership-onboarding")
    assert onboarding["state_type"] == "COMPLETED"
    parent = httpx.get(f"{api}/task_runs/{onboarding['parent_task_run_id']}", timeout=10).json()
    assert parent["flow_run_id"] == run["id"]
    # The inbox events were handled by the task worker, never by the pool.
    intakes = _flow_runs(api, "membership-intake-inbox")
    assert intakes and all(r["work_pool_name"] is None and r["state_type"] == "COMPLETED" for r in intakes)

    with ledger.read() as session:
        app = session.get(Application, app_id)
        assert app.status == ApplicationStatus.APPROVED
        membership = repo.open_membership(session, session.get(Person, app.person_id))
        assert membership.status == MembershipStatus.ACTIVE

    # The onboarding effects happened once on each platform.
    discord_state = _state(discord_url)
    grants = [c for c in discord_state["role_changes"] if c["username"] == APPLICANT]
    assert [(c["action"], c["role"]) for c in grants] == [("grant", "wg-member")]
    forum_state = _state(forum_url)
    adds = [c for c in forum_state["role_changes"] if c["username"] == APPLICANT]
    assert [c["action"] for c in adds] == ["group_add:working-group"], adds
    assert APPLICANT in next(g for g in forum_state["groups"] if g["name"] == "working-group")["members"]

    # Stopped, nothing of the stack is left (the flow-run processes included).
    procs.alive()
    marker = f"CHARTERFLOW_HOME={stack['home']}"
    assert _processes_of(marker), "the stack's processes carry the marker"
    procs.stop()
    assert _wait("every process to end", lambda: not _processes_of(marker), timeout=30)


def test_deploy_refuses_a_missing_pool_and_an_image_for_a_process_pool(prefect_server):
    """Against the session's Prefect server: nothing is registered when the pool is wrong."""
    lines: list[str] = []
    with pytest.raises(ConfigError, match="work pool 'no-such-pool' does not exist: add --create-pool"):
        deploy_to_pool(work_pool="no-such-pool", echo=lines.append)
    with pytest.raises(ConfigError, match="process pool: it runs no images"):
        deploy_to_pool(work_pool="a-process-pool", create_pool=True, image="registry.example/cf:1", echo=lines.append)
    assert lines == []
