"""`charterflow up`: the whole stack on one machine, as one supervised group of processes.

The ledger is migrated first; then the Prefect server (embedded SQLite, bound to 127.0.0.1;
skipped when ``PREFECT_API_URL`` is set), the sandboxes of the platforms without credentials
with the sandbox inspector (``python -m charterflow.inspector``, seeded with the invented
community of :mod:`charterflow.seed`; the ledger gets the same working group), a runner serving
every deployment, the task worker that handles inbox events, and the gateway (the one public
port). Ctrl-C or SIGTERM stops all of them within seconds, newest first.
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
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from charterflow import stack as stack_files
from charterflow.settings import Settings, get_settings
from charterflow.stack import process_alive  # noqa: F401 - demo imports it from here

STOP_GRACE_SECONDS = 7.0
SERVER_START_TIMEOUT = 120.0
console = Console(highlight=False)

# Settings of the Prefect server `up` starts (an operator's own values win). Task workers report
# each state change of a task run as an event; with the default batch of 1 the server's task run
# recorder commits one SQLite write per event, and a concurrent `POST /task_runs/` (which reads,
# then writes) then fails "database is locked" at once and the client retries after 2 s: at 5
# inbox events per s that happened every few events (bench/README.md, intake). Batched, the
# recorder writes about once a second; a run's state shows in the UI up to 1 s later.
# https://docs.prefect.io/v3/api-ref/settings-ref (server.services.task_run_recorder)
PREFECT_SERVER_DEFAULTS = {
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "50",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL": "1",
}


@dataclass
class Child:
    """One supervised process, in its own process group so its children stop with it."""

    name: str
    process: subprocess.Popen
    log: Path
    argv: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)


class WorkerWatch:
    """Notices an inbox task worker that is alive but no longer works its runs
    (``ledger.repo.inbox_stalled``); ``up`` then restarts it and the events get new runs."""

    def __init__(self, ledger: Any, *, stall: int) -> None:
        self.ledger, self.stall = ledger, timedelta(seconds=stall)
        self.next_check = time.monotonic() + min(30.0, stall / 2)

    def due(self) -> bool:
        if time.monotonic() < self.next_check:
            return False
        self.next_check = time.monotonic() + min(30.0, self.stall.total_seconds() / 2)
        return True

    def stuck(self) -> list[int]:
        from ledger import repo
        from ledger.types import utcnow

        try:
            with self.ledger.read() as session:
                return repo.inbox_stalled(session, now=utcnow(), after=self.stall)
        except Exception as exc:  # noqa: BLE001 - a ledger hiccup: look again next time
            console.print(f"warning: the worker watch could not read the ledger ({type(exc).__name__})")
            return []

    def retry(self, event_ids: list[int]) -> None:
        from connectors.errors import CharterflowError
        from ledger import repo

        try:
            with self.ledger.transaction() as session:
                for event_id in event_ids:
                    try:
                        repo.inbox_retry(session, event_id, actor="up")
                    except CharterflowError:  # processed meanwhile: nothing to do
                        continue
        except Exception as exc:  # noqa: BLE001 - the stale-claim pass dispatches them later anyway
            console.print(f"warning: could not dispatch the waiting events again ({type(exc).__name__})")


@dataclass
class Stack:
    children: list[Child] = field(default_factory=list)

    def start(self, name: str, argv: list[str], *, env: dict[str, str], logs: Path) -> Child:
        log = logs / f"{name}.log"
        with log.open("ab") as out:
            process = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, start_new_session=True)
        child = Child(name=name, process=process, log=log, argv=list(argv), env=dict(env))
        self.children.append(child)
        return child

    def restart(self, child: Child) -> Child:
        """Stop ``child``'s group (SIGTERM, then SIGKILL: a stuck process may not answer) and
        start the same command again, logging to the same file."""
        self.stop([child])
        self.children.remove(child)
        return self.start(child.name, child.argv, env=child.env, logs=child.log.parent)

    def first_dead(self) -> Child | None:
        return next((c for c in self.children if c.process.poll() is not None), None)

    def stop(self, children: list[Child] | None = None) -> None:
        """Stop the groups (all by default) newest first (the runner before the server it talks
        to): SIGTERM, wait within the shared grace period, then SIGKILL what is left."""
        children = self.children if children is None else children
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for child in reversed(children):
            _signal_group(child.process, signal.SIGTERM)
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for child in children:
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


PLATFORMS = ("discord", "discourse", "slack")
# A platform is real when its token is set (the variable or .env): then no sandbox for it.
TOKEN_VARIABLES = {"discord": "CHARTERFLOW_DISCORD_TOKEN", "discourse": "CHARTERFLOW_DISCOURSE_API_KEY",
                   "slack": "CHARTERFLOW_SLACK_BOT_TOKEN"}
LABELS = {"discord": "Discord", "discourse": "Forum (Discourse)", "slack": "Slack"}


def real_platforms() -> set[str]:
    """The platforms whose credentials are set in the environment or ``.env``."""
    from dotenv import dotenv_values

    dotenv = {k: v for k, v in dotenv_values(".env").items() if v} if Path(".env").exists() else {}
    return {name for name, var in TOKEN_VARIABLES.items()
            if os.environ.get(var, "").strip() or dotenv.get(var, "").strip()}


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def sandbox_spec(settings: Settings, platforms: list[str], *, gateway_url: str,
                 prefect_ui: str) -> dict:
    """What the sandboxes process needs: ports and fresh secrets for this run."""
    import secrets
    from datetime import UTC, datetime

    ports = {"discord": settings.sandbox_discord_port, "discourse": settings.sandbox_discourse_port,
             "slack": settings.sandbox_slack_port}
    fresh = {
        "discord": lambda: {"token": f"sbx.{secrets.token_urlsafe(24)}",
                            "private_key": secrets.token_hex(32)},
        "discourse": lambda: {"api_key": f"sbx_{secrets.token_hex(24)}",
                              "webhook_secret": f"whsec_{secrets.token_hex(16)}",
                              # event ids above any earlier run's: the ledger keeps their keys
                              "first_event_id": int(time.time())},
        "slack": lambda: {"bot_token": f"xoxb-sandbox-{secrets.token_hex(20)}",
                          "signing_secret": secrets.token_hex(16)},
    }
    return {
        "host": "127.0.0.1", "today": datetime.now(UTC).date().isoformat(),
        "platforms": {name: {"port": ports[name] or _free_port(), **fresh[name]()} for name in platforms},
        "inspector_port": settings.inspector_port or _free_port(),
        "gateway_url": gateway_url, "prefect_ui": prefect_ui,
    }


def sandbox_env(spec: dict) -> dict[str, str]:
    """The ``CHARTERFLOW_*`` variables that point the connectors and the gateway at the sandboxes
    (each sandbox's own ``client_info``, so ids and keys match what it serves)."""
    from charterflow.inspector.serve import build_sandboxes
    from charterflow.seed import CATEGORIES, build

    community = build()
    env: dict[str, str] = {}
    for name, box in build_sandboxes(spec, community).items():
        url = f"http://{spec['host']}:{spec['platforms'][name]['port']}"
        env.update({k: str(v) for k, v in box.client_info(url)["env"].items()})
        close = getattr(box, "close", None)
        if callable(close):
            close()
    if "discourse" in spec["platforms"]:
        env["CHARTERFLOW_GATEWAY_DISCOURSE_APPLICATIONS_CATEGORIES"] = str(CATEGORIES["Applications"])
        env["CHARTERFLOW_GATEWAY_DISCOURSE_IDEAS_CATEGORIES"] = str(CATEGORIES["Ideas"])
    return env


def seed_ledger(settings: Settings) -> str:
    """Import the invented community's roster (the WG, the Board, admins and moderators) and the
    platform roles the WG wants held; idempotent. A short summary of what changed."""
    from charterflow.charter import load_configured_charter
    from charterflow.seed import build
    from ledger import repo
    from ledger.db import Ledger
    from ledger.roster import import_roster, parse_roster

    community = build()
    charter = load_configured_charter()
    text = community.roster_toml()
    roster_file = settings.home / "community-roster.toml"
    roster_file.write_text(text, encoding="utf-8")
    ledger = Ledger(settings.ledger_url())
    try:
        with ledger.transaction() as session:
            report = import_roster(session, parse_roster(text, source=str(roster_file), charter=charter),
                                   charter=charter, actor="charterflow-up")
            # Only for people this import created: later decisions of the WG (a moderator
            # removed, say) are not overridden by the next `up`.
            for handle, platform, role in community.platform_roles():
                if handle not in report.created:
                    continue
                person = repo.get_person(session, handle)
                repo.set_desired_platform_role(session, person, platform=platform, role=role,
                                               desired=True, actor="charterflow-up",
                                               decision_ref="seed")
    finally:
        ledger.dispose()
    if report.created:
        return f"{len(report.created)} people imported from {roster_file.name}"
    return "already seeded" if not report.changes else f"{report.changes} changes"


def seed_ideas(settings: Settings, spec: dict) -> int:
    """File the seeded ideas (the Forum topics the sandboxes process posted in the Ideas
    category) in the ledger's backlog, as the intake would have (``discourse:topic:<id>``, so a
    later webhook for the topic finds it filed), without replying on the Forum: they are the
    community's history. Read through the Forum's latest posts; idempotent. How many were new."""
    from charterflow.seed import CATEGORIES, build
    from ledger import ideas as backlog
    from ledger import repo
    from ledger.db import Ledger

    conf = spec["platforms"]["discourse"]
    url = f"http://{spec['host']}:{conf['port']}"
    response = httpx.get(f"{url}/posts.json", timeout=10,
                         headers={"Api-Key": conf["api_key"], "Api-Username": "system"})
    response.raise_for_status()
    titles = {idea["title"] for idea in build().ideas}
    topics = [p for p in response.json().get("latest_posts", [])
              if p.get("post_number") == 1 and p.get("category_id") == CATEGORIES["Ideas"]
              and p.get("topic_title") in titles]
    ledger = Ledger(settings.ledger_url())
    filed = 0
    try:
        with ledger.transaction() as session:
            for post in sorted(topics, key=lambda p: p["topic_id"]):
                author = repo.find_person_by_identity(session, platform="discourse",
                                                      username=post["username"])
                _, new = backlog.file_idea(
                    session, title=post["topic_title"], body=post.get("raw") or None,
                    source="forum", source_key=f"discourse:topic:{post['topic_id']}",
                    source_url=f"{url}/t/{post.get('topic_slug') or 'topic'}/{post['topic_id']}",
                    author=author, author_handle=f"discourse:{post['username']}",
                    actor="charterflow-up")
                filed += new
    finally:
        ledger.dispose()
    return filed


def _wait_inspector(port: int, child: Child, stop: threading.Event) -> dict | None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not stop.is_set():
        if child.process.poll() is not None:
            return None
        try:
            response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
            if response.status_code == 200:
                return response.json()
            if response.json().get("problems"):
                return response.json()
        except (httpx.HTTPError, ValueError):
            pass
        stop.wait(0.3)
    return None


def run_up(settings: Settings | None = None) -> int:
    """Start the stack, print where to find it, and supervise it until stopped. Returns the
    exit code: 0 after a requested stop, 1 when something could not start or died."""
    settings = settings or get_settings()
    home = settings.home.resolve()
    logs = home / "logs"
    logs.mkdir(parents=True, exist_ok=True)

    running = stack_files.running(home)
    if running:
        console.print(f"charterflow up is already running (pid {running['pid']}); "
                      f"Prefect UI: {running.get('ui_url', '?')}")
        return 1

    ledger_url = _migrate_ledger(settings)
    if ledger_url is None:
        return 1
    real = real_platforms()
    sandboxed = [p for p in PLATFORMS if p not in real] if settings.sandboxes else []
    seeded = None
    if sandboxed and not real:
        # Only a stack without any real platform gets the invented people in its ledger.
        from connectors.errors import CharterflowError

        try:
            seeded = seed_ledger(settings)
        except CharterflowError as exc:
            console.print(f"error: seeding the ledger failed: {exc}")
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
        if sandboxed and settings.inspector_port and not _port_free("127.0.0.1", settings.inspector_port):
            console.print(f"error: port {settings.inspector_port} on 127.0.0.1 is in use by another "
                          "program; stop it or set CHARTERFLOW_INSPECTOR_PORT to a free port (0: any)")
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
                                 env={**PREFECT_SERVER_DEFAULTS, **env}, logs=logs)
        else:
            server = None
        ui_url = api_url.removesuffix("/api")
        public = (gw.public_url or f"http://127.0.0.1:{gw.port}").rstrip("/")
        lock = {"pid": os.getpid(), "ui_url": ui_url, "api_url": api_url, "gateway_url": public,
                "real": sorted(real), "sandboxes": {}, "inspector_url": None, "ledger": ledger_url}
        sandboxes = None
        if sandboxed:
            # Started while Prefect boots: seeding the sandboxes takes a few seconds too.
            spec = sandbox_spec(settings, sandboxed, gateway_url=public, prefect_ui=ui_url)
            env.update(sandbox_env(spec))
            sandboxes = stack.start("sandboxes", [sys.executable, "-m", "charterflow.inspector"],
                                    env={**env, "CHARTERFLOW_SANDBOX_SPEC": json.dumps(spec)}, logs=logs)
            lock["sandboxes"] = {name: f"http://127.0.0.1:{spec['platforms'][name]['port']}"
                                 for name in sandboxed}
            lock["inspector_url"] = f"http://127.0.0.1:{spec['inspector_port']}"
        # up.json, and (0600) the settings its processes got: CLI commands use the same stack.
        stack_files.record(home, lock, env)
        if not _wait_healthy(api_url, server, stop):
            if stop.is_set():
                return 0
            console.print(f"error: the Prefect server at {api_url} did not become healthy; "
                          f"see {logs / 'prefect-server.log'}")
            if server is not None:
                console.print(_tail(server.log))
            return 1

        runner = stack.start("runner", [sys.executable, "-m", "flows.serve"], env=env, logs=logs)
        try:
            served = _wait_deployments(api_url, runner, stop)
        except Exception as exc:  # noqa: BLE001 - a flow module that does not import: one line
            console.print(f"error: the deployments could not be loaded: {type(exc).__name__}: {exc}")
            return 1
        if stop.is_set():
            return 0
        if runner.process.poll() is not None:
            console.print(f"error: the flow runner stopped; see {runner.log}")
            console.print(_tail(runner.log))
            return 1

        # Not `-m flows.inbox`: run as __main__ the module would exist twice, and the handlers
        # that capability packages register (into flows.inbox) would miss the served task's table.
        # A background task run has no flow run, so Prefect never sends its logs to the API;
        # by default it warns about that once per run, in this log.
        worker = stack.start("inbox-worker", [sys.executable, "-c", "from flows.inbox import main; main()"],
                             env={"PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore", **env}, logs=logs)
        gateway = stack.start("gateway", [sys.executable, "-m", "charterflow.cli", "gateway",
                                          "--host", gw.host, "--port", str(gw.port)],
                              env=env, logs=logs)
        if not _wait_gateway(gw.port, gateway, stop):
            if stop.is_set():
                return 0
            console.print(f"error: the gateway did not start; see {gateway.log}")
            console.print(_tail(gateway.log))
            return 1

        if sandboxes is not None:
            health = _wait_inspector(spec["inspector_port"], sandboxes, stop)
            if stop.is_set():
                return 0
            if health is None or not health.get("ready"):
                problems = "; ".join((health or {}).get("problems") or []) or "see the log"
                console.print(f"error: the sandboxes did not start ({problems}); see {sandboxes.log}")
                console.print(_tail(sandboxes.log))
                return 1
            if seeded is not None and "discourse" in sandboxed:
                try:
                    filed = seed_ideas(settings, spec)
                except Exception as exc:  # noqa: BLE001 - the stack runs; the backlog is short
                    console.print(f"warning: the seeded ideas are not in the backlog ({type(exc).__name__})")
                else:
                    seeded += f"; {filed} seeded ideas filed in the backlog" if filed else ""
        where = [f"{LABELS[p]}: " + ("real" if p in real else "sandbox" if p in sandboxed else "not served")
                 for p in PLATFORMS]
        rows = [("Prefect UI", ui_url + ("  (external server)" if external else "")),
                ("Apply form", f"{public}/apply"),
                ("Inspector", lock["inspector_url"] or "(no sandboxes)"),
                ("Platforms", ", ".join(where)),
                ("Ledger", ledger_url + (f"  ({seeded})" if seeded else "")),
                ("Deployments", f"{len(served)} served"),
                ("Logs", str(logs)), ("Stop", "Ctrl-C")]
        # Plain aligned lines rather than a box: long URLs stay on one line and copyable.
        console.print("charterflow is up", style="bold")
        for name, value in rows:
            first, *rest = value.splitlines() or [""]
            console.print(f"  {name:<12} {first}", soft_wrap=True)
            for line in rest:
                console.print(f"  {'':<12} {line}", soft_wrap=True)

        from ledger.db import Ledger

        watch = WorkerWatch(Ledger(settings.ledger_url()), stall=settings.worker_stall_seconds)
        while not stop.wait(1.0):
            if watch.due():
                stuck = watch.stuck()
                if stuck:
                    console.print(f"warning: the inbox worker handled nothing for "
                                  f"{settings.worker_stall_seconds} s while {len(stuck)} event(s) "
                                  f"waited; restarting it and dispatching them again")
                    worker = stack.restart(worker)
                    watch.retry(stuck)
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
            stack_files.forget(home, os.getpid())
        except OSError:
            pass
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if stack.children:
            console.print("Stopped.")
