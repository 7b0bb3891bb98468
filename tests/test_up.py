"""`charterflow up` as a user runs it: a real Prefect server, runner and task worker, gateway and the
seeded sandboxes; `charterflow demo` driven against it; stopped with Ctrl-C, nothing left behind."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from bench.startup import stack_processes
from charterflow.seed import build
from charterflow.settings import Settings
from charterflow.up import PREFECT_SERVER_DEFAULTS, START_TIMEOUT
from flows import inbox
from flows.serve import deployments
from ledger.db import Ledger
from ledger.models import AuditEntry, InboxEvent
from tests.support.net import free_port

CHARTERFLOW = str(Path(sys.executable).with_name("charterflow"))


def stack_env(home: Path, port: int, gateway_port: int | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "CHARTERFLOW_"))}
    env.update(
        CHARTERFLOW_HOME=str(home),
        CHARTERFLOW_PREFECT_PORT=str(port),
        CHARTERFLOW_GATEWAY_HOST="127.0.0.1",
        CHARTERFLOW_GATEWAY_PORT=str(gateway_port or free_port()),
        PREFECT_RUNNER_POLL_FREQUENCY="2",
    )
    return env


# Every process whose environment names this stack's home: nothing may outlive `up`.
processes_of = stack_processes


# The banner's last row: the pipe is read line by line, so the heading alone is not the banner.
UP_BANNER_END = "  Stop         Ctrl-C\n"


class Output:
    """Collects a process's output on a thread so the pipe never fills."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(process,), daemon=True)
        self._thread.start()

    def _read(self, process: subprocess.Popen) -> None:
        for line in process.stdout:
            self.lines.append(line)

    def wait_up(self, timeout: float = START_TIMEOUT + 10) -> bool:
        """Whether `up`'s banner came whole: its last row is read after the heading. As long as
        `up` itself waits for its parts: a cold start beside the chaos tests once took over 150 s."""
        return self.wait_for(UP_BANNER_END, timeout)

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


@contextmanager
def running_up(tmp_path: Path, **extra_env: str) -> Iterator[tuple[dict, Output]]:
    """`charterflow up` on free ports (its lock file and its output); stopped with Ctrl-C at
    the end, nothing left behind."""
    env = stack_env(tmp_path, free_port(), free_port())
    env.update(CHARTERFLOW_INSPECTOR_PORT=str(free_port()), **extra_env)
    up = subprocess.Popen([CHARTERFLOW, "up"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = Output(up)
    try:
        assert out.wait_up(), out.text
        yield json.loads((tmp_path / "up.json").read_text()), out
    finally:
        up.send_signal(signal.SIGINT)
        try:
            assert up.wait(timeout=15) == 0, out.text[-3000:]
        finally:
            if up.poll() is None:
                up.kill()
    assert "Traceback" not in out.text
    time.sleep(0.5)
    assert processes_of(tmp_path) == []


def ideas_installed() -> bool:
    """Whether this tree has the ideas capability the demo's last step needs."""
    names = {f"{d.flow_name}/{d.name}" for d in deployments()}
    return inbox.HANDLERS.get(inbox.Route.IDEA) is not None and "ideas-triage/operator" in names


def wait_terminal(api: httpx.Client, run_id: str, timeout: float = 90, path: str = "/flow_runs") -> dict:
    deadline = time.monotonic() + timeout
    while True:
        run = api.get(f"{path}/{run_id}").json()
        if run["state"]["type"] in {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"} or time.monotonic() > deadline:
            return run
        time.sleep(1)


@pytest.mark.slow
def test_up_runs_the_stack_with_sandboxes_the_demo_and_stops_cleanly_on_ctrl_c(tmp_path):
    port, gateway_port, inspector_port = free_port(), free_port(), free_port()
    env = stack_env(tmp_path, port, gateway_port)
    env["CHARTERFLOW_INSPECTOR_PORT"] = str(inspector_port)
    up = subprocess.Popen([CHARTERFLOW, "up"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = Output(up)
    try:
        assert out.wait_up(), out.text
        base = f"http://127.0.0.1:{port}"
        inspector = f"http://127.0.0.1:{inspector_port}"
        assert f"Prefect UI   {base}\n" in out.text
        assert f"Inspector    {inspector}\n" in out.text
        assert "Platforms    Discord: sandbox, Forum (Discourse): sandbox, Slack: sandbox\n" in out.text
        assert f"sqlite:///{tmp_path}/ledger.db" in out.text  # the ledger was migrated first
        assert "people imported" in out.text  # and seeded with the invented community
        for secret_prefix in ("sbx.", "sbx_", "xoxb-", "whsec_"):
            assert secret_prefix not in out.text, "per-run secrets are never printed"
        assert "3 seeded ideas filed in the backlog" in out.text  # the Forum's old ideas
        # What CLI commands use to reach this stack: private to its owner.
        assert (tmp_path / "up-env.json").stat().st_mode & 0o077 == 0

        ui = httpx.get(base + "/", timeout=10, follow_redirects=True)
        assert ui.status_code == 200 and "<html" in ui.text.lower()
        assert httpx.get(inspector + "/discord", timeout=10).status_code == 200

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
        # `up` pulls: the workers take the stored events from the ledger, the gateway never
        # waits for Prefect (flows/inbox_pump.py).
        assert health.json()["prefect"] == {
            "prefect_reachable": None,
            "detail": "the workers take stored events from the ledger (pull)",
        }

        # A second `up` says so instead of failing on the busy port.
        second = subprocess.run([CHARTERFLOW, "up"], env=env, capture_output=True, text=True, timeout=30)
        assert second.returncode == 1
        assert "already running" in second.stdout and "Traceback" not in second.stdout + second.stderr

        # The demo drives its story through the public interfaces.
        demo = subprocess.run(
            [CHARTERFLOW, "demo", "--timeout", "120"], env=env, capture_output=True, text=True, timeout=900
        )
        print(demo.stdout, demo.stderr)
        assert "Traceback" not in demo.stdout + demo.stderr
        if ideas_installed():
            assert demo.returncode == 0, demo.stderr
        else:  # the capability is missing: the step says so at once, after all the others
            assert demo.returncode == 1
            assert "error: step 'file and triage an idea' did not happen" in demo.stderr
        for step in (
            "1. An applicant",
            "2. They confirm",
            "3. Members vote",
            "4. A moderator",
            "5. A platform trial",
            "6. A Board member",
            "7. The Board names its Liaison",
            "8. An idea",
            "9. The community guides are published",
            "10. A member reports a message",
        ):
            assert step in demo.stdout
        # The common room relayed the moderators' message; the inspector lists the report and it.
        assert "relayed to the Forum's Moderators category" in demo.stdout
        reports_page = httpx.get(inspector + "/reports", timeout=10).text
        assert 'class="report"' in reports_page and 'class="relay"' in reports_page

        # Every flow run the demo caused completed.
        api = httpx.Client(base_url=base + "/api", timeout=10)
        run_ids = re.findall(r"/runs/flow-run/([0-9a-f-]{36})", demo.stdout)
        assert len(run_ids) >= 6
        for run_id in run_ids:
            run = wait_terminal(api, run_id)
            assert run["state"]["type"] == "COMPLETED", (run["name"], run["state"])
        # And every inbox task run that handled the story's platform events.
        task_ids = re.findall(r"/runs/task-run/([0-9a-f-]{36})", demo.stdout)
        assert len(task_ids) >= 10
        for task_id in task_ids:
            run = wait_terminal(api, task_id, path="/task_runs")
            assert run["state"]["type"] == "COMPLETED", (run["name"], run["state"])

        # Each effect happened once on the platforms.
        lock = json.loads((tmp_path / "up.json").read_text())
        applicant = re.search(r"applied as (\S+) on Discord", demo.stdout).group(1)
        moderator = re.search(r"      (\S+) is a moderator on Discord", demo.stdout).group(1)
        discord = httpx.get(f"{lock['sandboxes']['discord']}/_sandbox/state", timeout=10).json()
        grants = [(c["username"], c["role"]) for c in discord["role_changes"] if c["action"] == "grant"]
        assert grants.count((applicant, "wg-member")) == 1
        moderator_user = next(p.discord["username"] for p in build().wg if p.handle == moderator)
        assert grants.count((moderator_user, "moderator")) == 1
        buttons = [
            b.get("custom_id", "")
            for m in discord["messages"]
            for row in m["components"]
            for b in row.get("components", [])
        ]
        assert sum(1 for b in buttons if b.startswith("cfc:")) == 1, "one confirmation DM"
        # A ballot message keeps its buttons while open; once closed they are removed.
        ballot_messages = {m["id"] for m in discord["messages"] if m["content"].startswith("**Ballot")}
        assert len(ballot_messages) == 2, "the approval and the endorsement ballot, once each"
        forum = httpx.get(f"{lock['sandboxes']['discourse']}/_sandbox/state", timeout=10).json()
        assert len(forum["polls"]) == 2
        slack = httpx.get(f"{lock['sandboxes']['slack']}/_sandbox/state", timeout=10).json()
        board = slack["messages"]["C0BOARD01"]
        top = [m for m in board if not m.get("thread_ts") or m["thread_ts"] == m["ts"]]
        # The proposal's escalation, and the question naming the Board Liaison (R-ROLE-APPOINT).
        assert len(top) == 2, "one escalation and one Board Liaison question in the Board channel"
        top = [m for m in top if "chat bridge" in json.dumps(m)]
        assert len(top) == 1, "one escalation of the proposal"
        assert [m for m in board if m.get("thread_ts") == top[0]["ts"] and m["ts"] != top[0]["ts"]], (
            "the decision is told in its thread"
        )
        assert processes_of(tmp_path), "the stack's processes should be found while it runs"

        # The bot's own Forum posts (its replies, as `system`) came back by webhook and were
        # recognised: route "own", no inbox-unknown run.

        ledger = Ledger(f"sqlite:///{tmp_path}/ledger.db")
        try:
            with ledger.read() as session:
                routes = [
                    e.route
                    for e in session.scalars(select(InboxEvent).where(InboxEvent.source == "discourse"))
                    if (e.payload or {}).get("actor") == "system"
                ]
        finally:
            ledger.dispose()
        assert routes and set(routes) == {"own"}, routes
        # A CLI command run from a plain shell sees this stack's ledger and says so.
        shell = {k: v for k, v in env.items() if not k.startswith("CHARTERFLOW_")}
        listed = subprocess.run(
            [CHARTERFLOW, "ideas", "list", "--json"],
            text=True,
            timeout=120,
            capture_output=True,
            env={**shell, "CHARTERFLOW_HOME": str(tmp_path), "CHARTERFLOW_USE_UP": "1"},
        )
        assert listed.returncode == 0, listed.stderr
        assert listed.stderr.startswith("using the stack of `charterflow up` (up.json, pid ")
        assert len(json.loads(listed.stdout)) >= 4  # the three seeded ideas and the demo's

        # The Prefect server got up's settings (its task run recorder writes in batches: see
        # bench/README.md, intake); the inbox worker (the workers process) logs one line per event
        # and no warnings.

        servers = []
        for pid in processes_of(tmp_path):
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"prefect" in argv and b"server" in argv and b"start" in argv:
                servers.append(environ)
        assert servers, "the Prefect server should be among the stack's processes"
        for name, value in PREFECT_SERVER_DEFAULTS.items():
            assert all(f"{name}={value}".encode() in environ for environ in servers), name
        worker_log = (tmp_path / "logs" / "workers.log").read_text(errors="replace")
        assert re.search(r"charterflow\.inbox - inbox event \d+: \S+ in \d+ ms", worker_log), worker_log[-2000:]
        assert "UserWarning" not in worker_log
        # The worker said it started, in Prefect's event feed.
        found = api.post(
            "/events/filter", json={"filter": {"event": {"prefix": ["charterflow.inbox-worker.started"]}}, "limit": 10}
        ).json()
        assert [e["event"] for e in found["events"]] == ["charterflow.inbox-worker.started"], found
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
    assert not (tmp_path / "up-env.json").exists()


def test_up_refuses_a_busy_port_with_a_clear_message(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [CHARTERFLOW, "up"], env=stack_env(tmp_path, port), capture_output=True, text=True, timeout=30
        )
    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 is in use" in result.stdout
    assert "CHARTERFLOW_PREFECT_PORT" in result.stdout and "Traceback" not in result.stderr


@pytest.mark.slow
def test_a_stuck_inbox_worker_is_restarted_and_its_event_dispatched_again(tmp_path):
    """The workers frozen (SIGSTOP: alive, working nothing): `up` notices that an event waits
    while nothing is processed, restarts them, and the new workers handle the event, once. The
    frozen pump never claimed it (pull mode), so its one run is its first attempt."""
    with running_up(tmp_path, CHARTERFLOW_WORKER_STALL_SECONDS="10") as (lock, out):

        def worker_pids() -> list[int]:
            found = []
            for pid in processes_of(tmp_path):
                try:
                    if b"charterflow.workers\0both" in Path(f"/proc/{pid}/cmdline").read_bytes():
                        found.append(pid)
                except OSError:
                    continue
            return found

        frozen = worker_pids()
        assert frozen, "the inbox worker should be running"
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        author = build().applicants()[-1]
        sent = httpx.post(
            f"{lock['sandboxes']['discord']}/_sandbox/interactions",
            timeout=30,
            json={
                "type": "command",
                "user": author.discord["username"],
                "name": "idea",
                "options": {"text": "A shared calendar of community events across both platforms"},
            },
        ).json()
        assert sent["status"] == 200, sent
        assert out.wait_for("restarting it and dispatching them again", 120), out.text[-3000:]
        ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
        try:

            def handled() -> InboxEvent | None:
                with ledger.read() as session:
                    return session.scalars(
                        select(InboxEvent).where(InboxEvent.route == "idea", InboxEvent.processed_at.is_not(None))
                    ).first()

            deadline = time.monotonic() + 90
            while handled() is None and time.monotonic() < deadline:
                time.sleep(0.5)
            event = handled()
            assert event is not None, (tmp_path / "logs" / "workers.log").read_text()[-3000:]
            assert event.dispatch_attempts == 1 and event.result_ref.startswith("idea:"), event.result_ref
            with ledger.read() as session:
                retries = list(
                    session.scalars(
                        select(AuditEntry).where(
                            AuditEntry.action == "inbox.retry", AuditEntry.subject == f"inbox:{event.id}"
                        )
                    )
                )
            assert [r.actor for r in retries] == ["up"]
        finally:
            ledger.dispose()
        assert not set(frozen) & set(worker_pids()), "the frozen worker should be gone"
        assert worker_pids(), "a new worker should be running"


def test_the_inbox_workers_default_to_two_on_postgresql_and_one_on_sqlite(tmp_path):
    pg = "postgresql+psycopg://charter:flow@127.0.0.1:5432/ledger"
    sqlite = Settings(home=tmp_path, database_url=None, inbox_workers=None)
    assert sqlite.inbox_worker_count() == 1
    assert Settings(home=tmp_path, database_url=pg, inbox_workers=None).inbox_worker_count() == 2
    assert Settings(home=tmp_path, database_url=pg, inbox_workers=1).inbox_worker_count() == 1
    assert Settings(home=tmp_path, database_url=None, inbox_workers=3).inbox_worker_count() == 3
    with pytest.raises(ValueError, match="inbox_workers"):
        Settings(home=tmp_path, inbox_workers=0)


@pytest.mark.slow
def test_a_second_inbox_worker_handles_events_and_is_restarted_like_the_others(tmp_path):
    """CHARTERFLOW_INBOX_WORKERS=2 (PostgreSQL's default; set here on SQLite): `up` runs an
    `inbox-2` pump beside the workers, which handles events alone while the workers are frozen,
    and is restarted when killed, as every child is (issue 19 point 7: one process's interpreter
    lock was the intake's ceiling)."""
    with running_up(tmp_path, CHARTERFLOW_INBOX_WORKERS="2") as (lock, out):

        def pids(role: bytes) -> list[int]:
            found = []
            for pid in processes_of(tmp_path):
                try:
                    if b"charterflow.workers\0" + role in Path(f"/proc/{pid}/cmdline").read_bytes():
                        found.append(pid)
                except OSError:
                    continue
            return found

        def status() -> dict[str, dict]:
            return {c["name"]: c for c in json.loads((tmp_path / "status.json").read_text())["children"]}

        # The banner waited for it: it serves (it wrote its readiness after its imports).
        assert status()["inbox-2"]["state"] == "running" and pids(b"inbox")
        assert (tmp_path / "pumps" / "inbox-2.ready").read_text() == str(pids(b"inbox")[0])
        ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
        author = build().applicants()[-1]

        def idea_handled(text: str, timeout: float = 120) -> InboxEvent | None:
            sent = httpx.post(
                f"{lock['sandboxes']['discord']}/_sandbox/interactions",
                timeout=30,
                json={"type": "command", "user": author.discord["username"], "name": "idea", "options": {"text": text}},
            ).json()
            assert sent["status"] == 200, sent
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                with ledger.read() as session:
                    found = [
                        e
                        for e in session.scalars(select(InboxEvent).where(InboxEvent.route == "idea"))
                        if text in json.dumps(e.payload) and e.processed_at is not None
                    ]
                if found:
                    return found[0]
                time.sleep(0.5)
            return None

        # Frozen mid-write, the workers would hold SQLite's write lock: freeze them idle, once
        # the seeded ideas' events are handled.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with ledger.read() as session:
                if not session.scalars(select(InboxEvent.id).where(InboxEvent.processed_at.is_(None))).first():
                    break
            time.sleep(0.5)
        frozen = pids(b"both")
        try:
            for pid in frozen:
                os.kill(pid, signal.SIGSTOP)
            # Its imports done once the server answered, the second pump takes the event alone.
            event = idea_handled("A glossary of the working group's terms for newcomers")
            assert event is not None, (tmp_path / "logs" / "inbox-2.log").read_text()[-3000:]
            assert event.dispatch_attempts == 1 and event.result_ref.startswith("idea:")
        finally:
            for pid in frozen:
                os.kill(pid, signal.SIGCONT)
        [second] = pids(b"inbox")
        os.kill(second, signal.SIGKILL)
        assert out.wait_for("inbox-2 restarted (pid", 60), out.text[-3000:]
        assert second not in pids(b"inbox") and status()["inbox-2"]["restarts"] == 1
        assert status()["workers"]["restarts"] == 0
        try:
            assert idea_handled("A monthly digest of the Forum's best answers") is not None
        finally:
            ledger.dispose()
