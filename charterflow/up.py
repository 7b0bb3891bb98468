"""`charterflow up`: the whole stack on one machine, as one supervised group of processes.

The Prefect server (embedded SQLite, bound to 127.0.0.1; skipped when ``PREFECT_API_URL`` is
set) starts first, the slowest to answer and needing nothing else; meanwhile the ledger is
migrated; then the sandboxes of the platforms without credentials with the sandbox inspector
(``python -m charterflow.inspector``, seeded with the invented community of
:mod:`charterflow.seed`; the ledger gets the same working group), the workers (one process:
a runner serving every deployment and the inbox pump that handles inbox events,
:mod:`charterflow.workers`), and the gateway (``python -m gateway.serve``, the one public
port), all at once, then waits until each answers. Ctrl-C or SIGTERM stops all of them within seconds, newest first.

Supervision (:class:`Supervisor`): a child that exits is started again after 0.5 s, doubling per
exit up to 30 s, while the others keep running; 5 exits of one child within 2 minutes stop
everything with one line naming it and its log. After a restart of the gateway, the workers or
the Prefect server, the inbox events that were in flight at the exit are dispatched again
(:func:`redispatch_inflight`). The sandboxes process keeps each platform's state in
``<home>/sandboxes`` (:mod:`charterflow.sandbox_state`) and restores it when restarted. Each
child's state is in ``<home>/status.json`` (``charterflow status``).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from http.client import HTTPException
from importlib.metadata import distributions, entry_points, version
from importlib.util import find_spec
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from dotenv import dotenv_values
from rich.console import Console
from rich.markup import escape

from charterflow import stack as stack_files
from charterflow.settings import Settings, get_settings
from charterflow.status import write_status
from charterflow.workers import READY_FILE_ENV
from connectors.email import SmtpSettings
from connectors.errors import CharterflowError
from connectors.ports import unused_port
from flows.forking import forked
from gateway.settings import GatewaySettings

STOP_GRACE_SECONDS = 7.0
READY_POLL_SECONDS = 0.1  # each look is a loopback request or a file read
START_TIMEOUT = 240.0  # every part answers within this, or `up` gives up (a 2-core box under load)
DEPLOYMENTS_FILE = "flows-deployments.json"  # the runner names its deployments here (charterflow.workers)
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
    # On PostgreSQL only: past its default pool of 5 the server opened and closed a connection
    # per busy moment (asyncpg re-reads the types, every statement prepared again) and its
    # statement cache of 100 turned over; 15 kept, 500 cached: some 20 ms of CPU per inbox event
    # less, most of it PostgreSQL's (bench/README.md, intake, third pass).
    "PREFECT_SERVER_DATABASE_SQLALCHEMY_POOL_SIZE": "15",
    "PREFECT_SERVER_DATABASE_SQLALCHEMY_CONNECT_ARGS_PREPARED_STATEMENT_CACHE_SIZE": "500",
}


RESTART_FIRST_DELAY = 0.5  # seconds before the first restart of a child; doubles per exit
RESTART_MAX_DELAY = 30.0
CRASH_LOOP_EXITS = 5  # this many exits of one child within the window stop `up`
CRASH_LOOP_WINDOW = 120.0
PUMP_START_SECONDS = 120.0  # how long the stall watch waits for a restarted pump to serve


@dataclass(frozen=True, kw_only=True)
class RestartPolicy:
    """When a child that exited is started again: after ``first_delay`` s, doubling per exit up
    to ``max_delay``; ``crash_loop_exits`` exits within ``crash_loop_window`` s stop `up`."""

    first_delay: float = RESTART_FIRST_DELAY
    max_delay: float = RESTART_MAX_DELAY
    crash_loop_exits: int = CRASH_LOOP_EXITS
    crash_loop_window: float = CRASH_LOOP_WINDOW

    def delay(self, exits: int) -> float:
        """Seconds before the restart that follows the ``exits``-th recent exit."""
        return min(self.max_delay, self.first_delay * 2 ** (exits - 1))


@dataclass(kw_only=True)
class ChildSpec:
    """One process `up` runs, as data: its command and environment, its readiness check
    (``ready``: one quick look, True once it answers; None: running is enough), its restart
    policy, and what to do once it was started again after an exit (``after_restart`` gets
    the time of that exit). :class:`Supervisor` runs it."""

    name: str
    argv: list[str]
    env: dict[str, str]
    ready: Callable[[], bool] | None = None
    restart: RestartPolicy = field(default_factory=RestartPolicy)
    after_restart: Callable[[datetime], None] | None = None


@dataclass
class Child:
    """A supervised process, in its own process group so its children stop with it."""

    spec: ChildSpec
    log: Path
    process: subprocess.Popen | None = None
    state: str = "starting"
    restarts: int = 0
    exits: deque = field(default_factory=deque)  # monotonic times of recent exits
    last_exit: int | None = None
    last_exit_at: datetime | None = None
    restart_at: float | None = None
    spawned: float = field(default_factory=time.monotonic)  # when its process was last started

    @property
    def name(self) -> str:
        return self.spec.name


def describe_exit(code: int | None) -> str:
    """``exit 1``, ``exit -9 (SIGKILL)``."""
    if code is not None and code < 0:
        try:
            return f"exit {code} ({signal.Signals(-code).name})"
        except ValueError:
            pass
    return f"exit {code}"


class Supervisor:
    """Starts children, restarts any that exits as its :class:`RestartPolicy` says (by default
    backoff 0.5 s doubling to 30 s), and reports a crash loop (by default
    :data:`CRASH_LOOP_EXITS` exits of one child in :data:`CRASH_LOOP_WINDOW` s).
    Every change of state is written to the status file (:mod:`charterflow.status`)."""

    def __init__(self, *, home: Path, logs: Path, say: Callable[[str], None]) -> None:
        self.home, self.logs, self.say = home, logs, say
        self.children: list[Child] = []
        self.started_at = datetime.now(UTC)

    def child(self, name: str) -> Child:
        return next(c for c in self.children if c.name == name)

    def start(self, spec: ChildSpec) -> Child:
        child = Child(spec=spec, log=self.logs / f"{spec.name}.log")
        self.children.append(child)
        self._spawn(child)
        return child

    def _spawn(self, child: Child) -> subprocess.Popen:
        with child.log.open("ab") as out:
            process = child.process = subprocess.Popen(
                child.spec.argv,
                env=child.spec.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        child.state, child.restart_at, child.spawned = "running", None, time.monotonic()
        self.write_status()
        return process

    def adopt(self, spec: ChildSpec, process: subprocess.Popen) -> Child:
        """Supervise ``process``, already started by a plugin (in its own session): when it
        exits it is started again from ``spec``, as any child."""
        child = Child(spec=spec, log=self.logs / f"{spec.name}.log", process=process, state="running")
        self.children.append(child)
        self.write_status()
        return child

    def restart(self, children: list[Child], reason: str, *, meanwhile: Callable[[], None] | None = None) -> None:
        """Stop ``children`` now (they are stuck, say), call ``meanwhile`` while none of them
        runs, and start them again at once."""
        for child in children:
            self.say(f"restarting {child.name}: {reason}")
            _stop_group(child.process)
        if meanwhile is not None:
            meanwhile()
        for child in children:
            child.restarts += 1
            self._spawn(child)

    def check(self) -> Child | None:
        """Notice exits, start again what is due; the crash-looping child, if one is."""
        now = time.monotonic()
        for child in self.children:
            process = child.process
            if child.state == "running" and process is not None and process.poll() is not None:
                if self._exited(child, process, now):
                    return child
            elif child.state == "restarting" and child.restart_at is not None and child.restart_at <= now:
                self._respawn(child)
        return None

    def _exited(self, child: Child, process: subprocess.Popen, now: float) -> bool:
        code = process.returncode
        _stop_group(process)  # what it left behind (a flow run's process) goes too
        child.last_exit, child.last_exit_at = code, datetime.now(UTC)
        child.exits.append(now)
        policy = child.spec.restart
        while child.exits and now - child.exits[0] > policy.crash_loop_window:
            child.exits.popleft()
        if len(child.exits) >= policy.crash_loop_exits:
            child.state = "stopped"
            self.write_status()
            return True
        delay = policy.delay(len(child.exits))
        child.state, child.restart_at = "restarting", now + delay
        self.say(
            f"{child.name} stopped unexpectedly: {describe_exit(code)}; restarting it in {delay:g} s (log: {child.log})"
        )
        self.write_status()
        return False

    def _respawn(self, child: Child) -> None:
        child.restarts += 1
        process = self._spawn(child)
        self.say(f"{child.name} restarted (pid {process.pid}, restart {child.restarts})")
        if child.spec.after_restart is not None and child.last_exit_at is not None:
            try:
                child.spec.after_restart(child.last_exit_at)
            except Exception as exc:  # noqa: BLE001 - healing is best effort; the drain loop catches up
                self.say(f"warning: after restarting {child.name}: {type(exc).__name__}: {exc}")

    def stop(self) -> None:
        """Stop every child newest first (the workers before the server they talk to): SIGTERM,
        wait within the shared grace period, then SIGKILL what is left."""
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        alive = [(c, c.process) for c in self.children if c.process is not None]
        for _, process in reversed(alive):
            _signal_group(process, signal.SIGTERM)
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for child, process in alive:
            _stop_group(process, grace=0)
            child.state = "stopped"

    def status(self) -> dict[str, Any]:
        def stamp(value: datetime | None) -> str | None:
            return value.isoformat(timespec="seconds") if value else None

        return {
            "pid": os.getpid(),
            "started_at": stamp(self.started_at),
            "updated_at": stamp(datetime.now(UTC)),
            "children": [
                {
                    "name": c.name,
                    "state": c.state,
                    "pid": c.process.pid if c.process is not None and c.state == "running" else None,
                    "restarts": c.restarts,
                    "last_exit": c.last_exit,
                    "last_exit_at": stamp(c.last_exit_at),
                    "log": str(c.log),
                }
                for c in self.children
            ],
        }

    def write_status(self) -> None:
        try:
            write_status(self.home, self.status())
        except OSError as exc:  # a full disk must not stop the stack
            self.say(f"warning: could not write the status file ({exc})")


def with_ledger(url: str, work: Callable[[Any], Any]) -> Any:
    """``work(ledger)`` on a ledger opened for it (run :func:`forked`: `up` itself never imports
    SQLAlchemy and the models)."""
    # lazy: start-up: SQLAlchemy and the ledger stay out of `up` itself (this runs forked)
    from ledger.db import Ledger

    ledger = Ledger(url)
    try:
        return work(ledger)
    finally:
        ledger.dispose()


def stalled_events(ledger: Any, stall: timedelta, pulled: bool = False) -> list[int]:
    # lazy: start-up: SQLAlchemy and the ledger stay out of `up` itself (this runs forked)
    from ledger import repo
    from ledger.types import utcnow

    with ledger.read() as session:
        return repo.inbox_stalled(session, now=utcnow(), after=stall, pulled=pulled)


def retry_events(ledger: Any, event_ids: list[int]) -> None:
    # lazy: start-up: SQLAlchemy and the ledger stay out of `up` itself (this runs forked)
    from ledger import repo

    with ledger.transaction() as session:
        for event_id in event_ids:
            try:
                repo.inbox_retry(session, event_id, actor="up")
            except CharterflowError:  # processed meanwhile: nothing to do
                continue


class WorkerWatch:
    """Notices inbox workers that are alive but no longer work the events
    (``ledger.repo.inbox_stalled``); ``up`` then restarts it and the events get new runs."""

    def __init__(self, ledger_url: str, *, stall: int, pulled: bool = False) -> None:
        self.ledger_url, self.stall, self.pulled = ledger_url, timedelta(seconds=stall), pulled
        self.next_check = time.monotonic() + min(30.0, stall / 2)

    def due(self) -> bool:
        if time.monotonic() < self.next_check:
            return False
        self.next_check = time.monotonic() + min(30.0, self.stall.total_seconds() / 2)
        return True

    def stuck(self) -> list[int]:
        try:
            return forked(
                with_ledger, self.ledger_url, partial(stalled_events, stall=self.stall, pulled=self.pulled)
            ).result(120)
        except Exception as exc:  # noqa: BLE001 - a ledger hiccup: look again next time
            console.print(f"warning: the worker watch could not read the ledger ({type(exc).__name__})")
            return []

    def retry(self, event_ids: list[int]) -> None:
        try:
            forked(with_ledger, self.ledger_url, partial(retry_events, event_ids=event_ids)).result(120)
        except Exception as exc:  # noqa: BLE001 - the stale-claim pass dispatches them later anyway
            console.print(f"warning: could not dispatch the waiting events again ({type(exc).__name__})")


def _starting(child: Child, stall: int) -> bool:
    """Whether an inbox pump is too new to be called stuck: started within ``stall`` s, or not
    serving yet (its ready file not written: it imports every flow and registers the deployments
    first, 10-20 s on a loaded machine; at most :data:`PUMP_START_SECONDS` more), or serving
    for less than ``stall`` s."""
    since_spawn = time.monotonic() - child.spawned
    ready = child.spec.env.get(READY_FILE_ENV)
    if since_spawn < stall:
        return True
    if not ready:
        return False
    try:
        serving_for = time.time() - Path(ready).stat().st_mtime
    except OSError:  # not serving yet
        return since_spawn < stall + PUMP_START_SECONDS
    return serving_for < stall


def _stop_group(process: subprocess.Popen | None, *, grace: float = 2.0) -> None:
    """SIGTERM the group (after ``grace`` s, SIGKILL): a stuck process may not answer."""
    if process is None:
        return
    if grace > 0 and process.poll() is None:
        _signal_group(process, signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    _signal_group(process, signal.SIGKILL)  # also reaps grandchildren left in the group
    try:
        process.wait(timeout=2)
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


def _request(url: str, *, timeout: float, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """GET (POST with a JSON ``body``) ``url``: the status and the JSON answer (None if not
    JSON). The standard library's client: httpx would add some 25 MiB to `up`, which lives as
    long as the stack, and a new SSL context at each call. Raises ``OSError`` when nothing
    answers."""
    data = None if body is None else json.dumps(body).encode()
    sent = {**(headers or {}), **({"Content-Type": "application/json"} if data else {})}
    request = urllib.request.Request(url, data=data, headers=sent)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    except HTTPException as exc:  # a connection cut mid-answer
        raise OSError(str(exc)) from exc
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, None


def prefect_answers(api_url: str) -> bool:
    """The Prefect server's readiness: ``/health`` answers 200."""
    try:
        return _request(f"{api_url}/health", timeout=2)[0] == 200
    except OSError:
        return False


def gateway_answers(port: int) -> bool:
    """The gateway's readiness: /healthz answers at all (503 only means Prefect or the ledger is
    not ready)."""
    try:
        _request(f"http://127.0.0.1:{port}/healthz", timeout=2)
        return True
    except OSError:
        return False


def sandboxes_ready(port: int) -> bool:
    """The sandboxes' readiness (their inspector's /healthz); raises ``RuntimeError`` with the
    problems the sandboxes report."""
    try:
        status, health = _request(f"http://127.0.0.1:{port}/healthz", timeout=2)
    except OSError:
        return False
    if not isinstance(health, dict):
        return False
    if health.get("problems"):
        raise RuntimeError("; ".join(health["problems"]))
    return status == 200 and bool(health.get("ready"))


class Deployments:
    """The runner's readiness: every deployment it said it serves (in ``DEPLOYMENTS_FILE``) is
    registered with the Prefect server; ``served`` lists them."""

    def __init__(self, *, api_url: str, file: Path) -> None:
        self.api_url, self.file = api_url, file
        self.expected: list[str] | None = None
        self.served: list[str] = []

    def __call__(self) -> bool:
        if self.expected is None:
            try:
                self.expected = json.loads(self.file.read_text())
            except (OSError, ValueError):
                return False
        try:
            api = self.api_url
            found = _request(f"{api}/deployments/filter", body={"limit": 200}, timeout=5)[1]
            flows = _request(f"{api}/flows/filter", body={"limit": 200}, timeout=5)[1]
            names = {f["id"]: f["name"] for f in flows}
            registered = {f"{names.get(d['flow_id'], '?')}/{d['name']}" for d in found}
        except (OSError, KeyError, TypeError):
            return False
        self.served = sorted(set(self.expected) & registered)
        return set(self.expected) <= registered


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _migrate_ledger(settings: Settings) -> str | None:
    """Bring the ledger to the current schema; its redacted URL, or None (reported) on failure."""
    if ledger_at_head(settings):
        return settings.ledger_url()  # a SQLite file: nothing to redact
    # lazy: start-up: alembic and SQLAlchemy, only when the ledger is not at head (runs forked)
    from ledger.db import Ledger
    from ledger.migrate import upgrade

    try:
        ledger = Ledger(settings.ledger_url())
        upgrade(ledger)
    except CharterflowError as exc:  # the message already has the password redacted
        console.print(f"error: {exc}")
        return None
    return ledger.url


# -- a warm start skips what the previous start did ---------------------------------------------
# Both checks read SQLite with the standard library: importing alembic and SQLAlchemy to learn
# that nothing is to do cost about 1.4 s of CPU (the ledger) and 0.3 s in the Prefect server, on
# a 2-core machine where every child of `up` is starting at the same time (bench/README.md).
PREFECT_SCHEMA_STAMP = "prefect-schema.json"  # the Prefect version and schema of its last start
MIGRATE_ON_START = "PREFECT_SERVER_DATABASE_MIGRATE_ON_START"


def _sqlite_revision(path: Path) -> str | None:
    """The alembic revision of the SQLite file at ``path`` (None: no file, no table, unreadable)."""
    if not path.is_file():
        return None
    try:
        with closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=5)) as db:
            rows = db.execute("SELECT version_num FROM alembic_version").fetchall()
    except sqlite3.Error:
        return None
    return rows[0][0] if len(rows) == 1 else None


def migration_head(versions: Path) -> str | None:
    """The one head of the alembic scripts in ``versions``, read as text (None: not exactly one,
    or a script this reading does not understand: then the caller migrates)."""
    revisions, parents = set(), set()
    for script in versions.glob("*.py"):
        text = script.read_text(encoding="utf-8")
        revision = re.search(r"^revision\b[^=\n]*=\s*['\"](\w+)['\"]", text, re.M)
        down = re.search(r"^down_revision\b[^=\n]*=\s*(.*)$", text, re.M)
        if revision is None or down is None:
            continue  # __init__.py
        if down.group(1).count("(") != down.group(1).count(")"):
            return None  # a merge's parents over several lines
        revisions.add(revision.group(1))
        parents.update(re.findall(r"['\"](\w+)['\"]", down.group(1)))
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def ledger_at_head(settings: Settings) -> bool:
    """Whether the ledger is the default SQLite file and already at the newest revision the
    code has (another database: False, and the migration itself finds out)."""
    if settings.database_url is not None:
        return False
    spec = find_spec("ledger")  # where the migrations are, without importing the package
    if spec is None or not spec.submodule_search_locations:
        return False
    versions = Path(next(iter(spec.submodule_search_locations))) / "migrations" / "versions"
    current = _sqlite_revision((settings.home / "ledger.db").resolve())
    return current is not None and current == migration_head(versions)


def _prefect_db(env: dict[str, str]) -> Path | None:
    """The Prefect server's SQLite file when it is Prefect's default one (``PREFECT_HOME``'s
    ``prefect.db``), None when the operator chose a database (variable or profile)."""
    # Our own tuning (PREFECT_SERVER_DEFAULTS: pool sizes) names no database; any other
    # PREFECT_*DATABASE* variable may.
    ours = {k for k, v in PREFECT_SERVER_DEFAULTS.items() if env.get(k) == v} | {MIGRATE_ON_START}
    if any("DATABASE" in k and k not in ours for k in env if k.startswith("PREFECT_")):
        return None
    prefect_home = Path(env["PREFECT_HOME"]).expanduser()
    if (prefect_home / "profiles.toml").exists():
        return None  # a profile may name another database
    return prefect_home / "prefect.db"


def _prefect_version() -> str:
    return version("prefect")


def prefect_schema_current(home: Path, env: dict[str, str]) -> bool:
    """Whether Prefect's database is at the schema the same Prefect version left it in at its
    last start (``PREFECT_SCHEMA_STAMP``): then the server need not run its migrations.
    Prefect decides only by ``server.database.migrate_on_start`` (default true: ``alembic
    upgrade head`` at every start, a no-op that still loads every script; it never compares
    revisions itself). https://docs.prefect.io/v3/api-ref/settings-ref#migrate_on_start"""
    path = _prefect_db(env)
    if path is None:
        return False
    try:
        stamp = json.loads((home / PREFECT_SCHEMA_STAMP).read_text())
    except (OSError, ValueError):
        return False
    return (
        isinstance(stamp, dict)
        and stamp.get("prefect") == _prefect_version()
        and stamp.get("db") == str(path)
        and stamp.get("revision") == _sqlite_revision(path)
    )


def remember_prefect_schema(home: Path, env: dict[str, str]) -> None:
    """After the server answered (its migrations ran): the stamp a later start compares with.
    Not when the migrations were off (ours: the stamp stands; an operator's: nothing is known)."""
    if env.get(MIGRATE_ON_START, "true").strip().lower() not in ("true", "1", "yes", "on"):
        return
    path = _prefect_db(env)
    revision = _sqlite_revision(path) if path is not None else None
    if revision is None:
        (home / PREFECT_SCHEMA_STAMP).unlink(missing_ok=True)
        return
    stamp = {"prefect": _prefect_version(), "db": str(path), "revision": revision}
    (home / PREFECT_SCHEMA_STAMP).write_text(json.dumps(stamp))


# The gateway's inbox routes come from importing flows.inbox (Prefect and every flow) in a forked
# child: 2.5 s of CPU at each start. `up` keeps them, with the size and time of every module file
# that import read, and hands them to the gateway while none of those files changed.
ROUTES_FILE = "gateway-routes.json"
ROUTES_SOURCES = "gateway-routes-sources.json"
ROUTES_VARIABLE = "CHARTERFLOW_GATEWAY_ROUTES_FILE"  # read by gateway.app.load_routes_apart


def _plugins() -> list[str]:
    """charterflow's entry points: a plugin installed since adds routes no kept file has."""
    return sorted(
        {
            f"{ep.group}:{ep.name}={ep.value}"
            for dist in distributions()
            for ep in dist.entry_points
            if ep.group.startswith("charterflow")
        }
    )


def kept_routes(home: Path) -> Path | None:
    """The routes file a previous start kept, if every module it came from is unchanged."""
    try:
        sources = json.loads((home / ROUTES_SOURCES).read_text())
        if sources["python"] != sys.version or sources["plugins"] != _plugins():
            return None
        for path, (mtime_ns, size) in sources["files"].items():
            found = os.stat(path)
            if (found.st_mtime_ns, found.st_size) != (mtime_ns, size):
                return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    routes = home / ROUTES_FILE
    return routes if routes.is_file() else None


def keep_routes(home: Path) -> None:
    """Take the inbox's routes as the gateway does and keep them for the next start (run it
    :func:`forked`: it imports Prefect and every flow)."""
    from flows.inbox_routing import full_routes_snapshot  # lazy: start-up: Prefect and every flow (runs forked)

    snapshot = full_routes_snapshot()
    files = {}
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if not path:
            continue
        try:
            found = os.stat(path)
        except FileNotFoundError:
            # Removed since it was imported (an uninstalled plugin): the next start cannot load
            # it either, and the plugins' list (`_plugins()`) already tells that change.
            continue
        files[path] = [found.st_mtime_ns, found.st_size]
    # The sources last: routes are only ever taken beside the sources they came from.
    (home / ROUTES_SOURCES).unlink(missing_ok=True)
    stack_files.write_private(home / ROUTES_FILE, json.dumps(snapshot))
    sources = {"python": sys.version, "plugins": _plugins(), "files": files}
    stack_files.write_private(home / ROUTES_SOURCES, json.dumps(sources))


def _remember_schema(home: Path, env: dict[str, str]) -> None:
    try:
        remember_prefect_schema(home, env)
    except OSError as exc:  # the next start migrates, as Prefect does by default
        console.print(f"warning: could not record Prefect's schema ({exc})")


PLATFORMS = ("discord", "discourse", "slack")
# A platform is real when its token is set (the variable or .env): then no sandbox for it.
TOKEN_VARIABLES = {
    "discord": "CHARTERFLOW_DISCORD_TOKEN",
    "discourse": "CHARTERFLOW_DISCOURSE_API_KEY",
    "slack": "CHARTERFLOW_SLACK_BOT_TOKEN",
}
LABELS = {"discord": "Discord", "discourse": "Forum (Discourse)", "slack": "Slack"}


def real_platforms() -> set[str]:
    """The platforms whose credentials are set in the environment or ``.env``."""
    dotenv = {k: v for k, v in dotenv_values(".env").items() if v} if Path(".env").exists() else {}
    return {
        name for name, var in TOKEN_VARIABLES.items() if os.environ.get(var, "").strip() or dotenv.get(var, "").strip()
    }


def sandbox_spec(settings: Settings, platforms: list[str], *, gateway_url: str, prefect_ui: str) -> dict:
    """What the sandboxes process needs: ports and fresh secrets for this run."""
    ports = {
        "discord": settings.sandbox_discord_port,
        "discourse": settings.sandbox_discourse_port,
        "slack": settings.sandbox_slack_port,
    }
    fresh: dict[str, Callable[[], dict[str, Any]]] = {
        "discord": lambda: {"token": f"sbx.{secrets.token_urlsafe(24)}", "private_key": secrets.token_hex(32)},
        "discourse": lambda: {
            "api_key": f"sbx_{secrets.token_hex(24)}",
            "webhook_secret": f"whsec_{secrets.token_hex(16)}",
            # event ids above any earlier run's: the ledger keeps their keys
            "first_event_id": int(time.time()),
            "webhook_retry_delays": [float(d) for d in settings.sandbox_webhook_retry.split(",") if d.strip()],
        },
        "slack": lambda: {
            "bot_token": f"xoxb-sandbox-{secrets.token_hex(20)}",
            "signing_secret": secrets.token_hex(16),
        },
    }
    return {
        "host": "127.0.0.1",
        "today": datetime.now(UTC).date().isoformat(),
        "platforms": {name: {"port": ports[name] or unused_port(), **fresh[name]()} for name in platforms},
        "inspector_port": settings.inspector_port or unused_port(),
        "gateway_url": gateway_url,
        "prefect_ui": prefect_ui,
        # No SMTP server configured: outcome e-mails go to a loopback one (the inspector's Mail).
        "smtp": None if _smtp_configured() else {"port": settings.sandbox_smtp_port or unused_port()},
    }


def _smtp_configured() -> bool:
    return bool(SmtpSettings().host)


def sandbox_env(spec: dict) -> dict[str, str]:
    """The ``CHARTERFLOW_*`` variables that point the connectors and the gateway at the sandboxes
    (each sandbox's own ``client_info``, so ids and keys match what it serves)."""
    # lazy: start-up: the sandboxes and the invented community stay out of `up` (this runs forked)
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
    if spec.get("smtp"):
        env.update(
            {
                "CHARTERFLOW_SMTP_HOST": spec["host"],
                "CHARTERFLOW_SMTP_PORT": str(spec["smtp"]["port"]),
                "CHARTERFLOW_SMTP_TLS": "none",
                "CHARTERFLOW_SMTP_SENDER": "wg@sandbox.invalid",
            }
        )
    if "discourse" in spec["platforms"]:
        env["CHARTERFLOW_GATEWAY_DISCOURSE_APPLICATIONS_CATEGORIES"] = str(CATEGORIES["Applications"])
        env["CHARTERFLOW_GATEWAY_DISCOURSE_IDEAS_CATEGORIES"] = str(CATEGORIES["Ideas"])
    return env


def prepare_ledger(settings: Settings, seed: bool) -> tuple[str, str | None] | None:
    """Migrate (and ``seed``) the ledger: its redacted URL and what seeding did; None when it
    failed (said on the console)."""
    ledger_url = _migrate_ledger(settings)
    if ledger_url is None or not seed:
        return None if ledger_url is None else (ledger_url, None)
    try:
        return ledger_url, seed_ledger(settings)
    except CharterflowError as exc:
        console.print(f"error: seeding the ledger failed: {exc}")
        return None


def seed_ledger(settings: Settings) -> str:
    """Import the invented community's roster (the WG, the Board, admins and moderators) and the
    platform roles the WG wants held; idempotent. A short summary of what changed."""
    # lazy: start-up: the charter, SQLAlchemy and the ledger stay out of `up` (this runs forked)
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
            report = import_roster(
                session,
                parse_roster(text, source=str(roster_file), charter=charter),
                charter=charter,
                actor="charterflow-up",
            )
            # Only for people this import created: later decisions of the WG (a moderator
            # removed, say) are not overridden by the next `up`.
            for handle, platform, role in community.platform_roles():
                if handle not in report.created:
                    continue
                person = repo.get_person(session, handle)
                repo.set_desired_platform_role(
                    session,
                    person,
                    platform=platform,
                    role=role,
                    desired=True,
                    actor="charterflow-up",
                    decision_ref="seed",
                )
    finally:
        ledger.dispose()
    if report.created:
        return f"{len(report.created)} people imported from {roster_file.name}"
    return "already seeded" if not report.changes else f"{report.changes} changes"


def seed_ideas(settings: Settings, spec: dict) -> int:
    """File the seeded ideas (the Forum topics the sandboxes process posted in the Ideas
    category) in the ledger's backlog, as the intake would have (``discourse:<host>:topic:<id>``, so a
    later webhook for the topic finds it filed), without replying on the Forum: they are the
    community's history. Read through the Forum's latest posts; idempotent. How many were new."""
    # lazy: start-up: SQLAlchemy and the ledger stay out of `up` (this runs forked)
    from charterflow.seed import CATEGORIES, build
    from connectors.base import instance_key, url_instance
    from ledger import ideas as backlog
    from ledger import repo
    from ledger.db import Ledger

    conf = spec["platforms"]["discourse"]
    url = f"http://{spec['host']}:{conf['port']}"
    # The standard library's client: importing httpx here cost some 0.2 s of CPU before the banner.
    status, latest = _request(
        f"{url}/posts.json", timeout=10, headers={"Api-Key": conf["api_key"], "Api-Username": "system"}
    )
    if status != 200 or not isinstance(latest, dict):
        raise RuntimeError(f"the Forum sandbox answered {status} to GET /posts.json")
    titles = {idea["title"] for idea in build().ideas}
    topics = [
        p
        for p in latest.get("latest_posts", [])
        if p.get("post_number") == 1 and p.get("category_id") == CATEGORIES["Ideas"] and p.get("topic_title") in titles
    ]
    ledger = Ledger(settings.ledger_url())
    filed = 0
    try:
        with ledger.transaction() as session:
            for post in sorted(topics, key=lambda p: p["topic_id"]):
                author = repo.find_person_by_identity(session, platform="discourse", username=post["username"])
                _, new = backlog.file_idea(
                    session,
                    title=post["topic_title"],
                    body=post.get("raw") or None,
                    source="forum",
                    source_key=instance_key("discourse", url_instance(url), "topic", post["topic_id"]),
                    source_url=f"{url}/t/{post.get('topic_slug') or 'topic'}/{post['topic_id']}",
                    author=author,
                    author_handle=f"discourse:{post['username']}",
                    actor="charterflow-up",
                )
                filed += new
    finally:
        ledger.dispose()
    return filed


def _ledger_helper(conn: Connection, settings: Settings, seed: bool, ups: Connection) -> None:
    """A forked child of `up`: :func:`prepare_ledger`, its outcome sent; then, if `up` sends the
    sandboxes' spec once they answer, :func:`seed_ideas` with the same imports (SQLAlchemy and
    the ledger: about 1 s of CPU each time they are imported), its count (or the error) sent."""
    ups.close()  # `up`'s end, copied by the fork: without it, no end of file if `up` dies
    conn.send(prepare_ledger(settings, seed))
    try:
        spec = conn.recv()
        if spec is not None:
            try:
                conn.send(seed_ideas(settings, spec))
            except Exception as exc:  # noqa: BLE001 - told to `up`, which warns and goes on
                conn.send(type(exc).__name__)
    except (EOFError, OSError):  # `up` stopped meanwhile
        pass


class LedgerHelper:
    """`up`'s side of :func:`_ledger_helper`: the ledger prepared while the rest starts, then
    (optionally) the seeded ideas filed."""

    def __init__(self, settings: Settings, seed: bool) -> None:
        context = multiprocessing.get_context("fork")
        self.conn, theirs = context.Pipe()
        # A process of its own (not `forked`'s pool): stopping `up` ends it at once.
        self.process = context.Process(
            target=_ledger_helper, args=(theirs, settings, seed, self.conn), name="ledger", daemon=True
        )
        self.process.start()
        theirs.close()

    def prepared(self) -> tuple[str, str | None] | None:
        """:func:`prepare_ledger`'s answer (None: it failed, and said why)."""
        try:
            return self.conn.recv()
        except EOFError:  # the child died (its traceback is on the console)
            console.print("error: preparing the ledger failed")
            return None

    def file_ideas(self, spec: dict | None) -> None:
        """File the seeded ideas of these sandboxes (None: none to file; the child ends)."""
        try:
            self.conn.send(spec)
        except OSError:
            pass

    def ideas_filed(self, timeout: float) -> int | str:
        """How many seeded ideas were new, or the name of what went wrong."""
        try:
            return self.conn.recv() if self.conn.poll(timeout) else "TimeoutError"
        except EOFError:
            return "EOFError"

    def close(self) -> None:
        self.conn.close()
        self.process.join(2)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(2)


def redispatch_inflight(ledger: Any, *, before: datetime) -> int:
    """Give a new dispatch attempt to every event handed to a run before ``before`` and not
    processed: those runs may have gone with a process that exited (the task worker's runs, the
    Prefect server's in-memory queue of scheduled task runs, a gateway's claim whose run was
    never created). The handlers are idempotent, so a run that was not lost after all does no
    harm; the gateway's drain loop starts the new runs. How many events."""
    # lazy: start-up: SQLAlchemy and the ledger's models stay out of `up` (this runs forked)
    from sqlalchemy import select

    # lazy: start-up: as above
    from ledger import repo
    from ledger.models import InboxEvent

    count = 0
    with ledger.transaction() as session:
        ids = list(
            session.scalars(
                select(InboxEvent.id).where(
                    InboxEvent.processed_at.is_(None),
                    InboxEvent.dispatch_note.is_(None),
                    InboxEvent.dispatched_at.is_not(None),
                    InboxEvent.dispatched_at <= before,
                )
            )
        )
        for event_id in ids:
            try:
                repo.inbox_retry(session, event_id, actor="up")
                count += 1
            except CharterflowError:  # processed meanwhile
                continue
    return count


@dataclass(kw_only=True)
class Plan:
    """What `up` starts, and where a user finds it."""

    api_url: str
    ui_url: str
    public_url: str
    external_prefect: bool
    server: ChildSpec | None
    sandboxes: ChildSpec | None
    workers: ChildSpec
    gateway: ChildSpec
    gateway_port: int
    # More inbox pumps beside the workers' own (CHARTERFLOW_INBOX_WORKERS): inbox-2, inbox-3, …
    pumps: list[ChildSpec] = field(default_factory=list)
    inspector_port: int | None
    lock: dict[str, Any]

    def children(self) -> list[ChildSpec]:
        """Every child `up` starts, the Prefect server (when it runs one) first."""
        return [s for s in (self.server, self.sandboxes, self.workers, *self.pumps, self.gateway) if s is not None]

    def started(self) -> list[ChildSpec]:
        """The children `up` starts once the Prefect server runs (or is external)."""
        return [s for s in (self.sandboxes, self.workers, *self.pumps, self.gateway) if s is not None]


def _base_env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    # Fewer malloc arenas: the threaded children (gateway, task worker) keep less memory.
    env.setdefault("MALLOC_ARENA_MAX", "2")
    env.setdefault("PREFECT_HOME", str(home / "prefect"))
    env.setdefault("PREFECT_LOGGING_COLORS", "false")
    # The server would try to send telemetry; this stack may have no network beyond loopback.
    env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _prefect_port_busy(settings: Settings) -> str | None:
    """The error line when another program holds the Prefect server's port, or None."""
    if not _port_free(settings.prefect_host, settings.prefect_port):
        return (
            f"error: port {settings.prefect_port} on {settings.prefect_host} is in use by another "
            "program; stop it or set CHARTERFLOW_PREFECT_PORT to a free port"
        )
    return None


def _busy_port(settings: Settings, gw: Any, sandboxed: list[str]) -> str | None:
    """The error line for a port another program holds (the gateway's, the inspector's), or None."""
    if not _port_free(gw.host, gw.port):
        return (
            f"error: port {gw.port} on {gw.host} is in use by another program; stop it or set "
            "CHARTERFLOW_GATEWAY_PORT to a free port"
        )
    if sandboxed and settings.inspector_port and not _port_free("127.0.0.1", settings.inspector_port):
        return (
            f"error: port {settings.inspector_port} on 127.0.0.1 is in use by another program; "
            "stop it or set CHARTERFLOW_INSPECTOR_PORT to a free port (0: any)"
        )
    return None


def prefect_server(settings: Settings, *, home: Path, heal: Callable[[datetime], None]) -> tuple[str, ChildSpec | None]:
    """The Prefect API URL, and the server `up` runs for it (None: ``PREFECT_API_URL`` names a
    server already running)."""
    api_url = os.environ.get("PREFECT_API_URL", "").rstrip("/")
    if api_url:
        return api_url, None
    host, port = settings.prefect_host, settings.prefect_port
    api_url = f"http://{host}:{port}/api"
    env = {**PREFECT_SERVER_DEFAULTS, **_base_env(home), "PREFECT_API_URL": api_url}
    if prefect_schema_current(home, env):
        env.setdefault(MIGRATE_ON_START, "false")
    return api_url, ChildSpec(
        name="prefect-server",
        after_restart=heal,
        env=env,
        ready=partial(prefect_answers, api_url),
        argv=[sys.executable, "-m", "prefect", "server", "start", "--host", host, "--port", str(port)],
    )


def _service_children(
    env: dict[str, str], *, api_url: str, home: Path, heal: Callable[[datetime], None], host: str, port: int
) -> tuple[ChildSpec, ChildSpec]:
    """The workers (the runner and the inbox pump, one process) and gateway children,
    both sharing ``env``; :func:`_pumps` the inbox pumps beside them."""
    # charterflow.workers: it waits for the Prefect server, so all start at once. A background
    # task run has no flow run, so Prefect never sends its logs to the API; by default it warns
    # about that once per run, in the workers' log.
    workers = ChildSpec(
        name="workers",
        after_restart=heal,
        argv=[sys.executable, "-m", "charterflow.workers", "both"],
        # The ready file: when its pump serves (the stall watch waits for it after a restart).
        env={
            "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
            **env,
            READY_FILE_ENV: str(home / "pumps" / "workers.ready"),
        },
        ready=Deployments(api_url=api_url, file=home / DEPLOYMENTS_FILE),
    )
    gateway = ChildSpec(
        name="gateway",
        after_restart=heal,
        env=env,
        ready=partial(gateway_answers, port),
        argv=[sys.executable, "-m", "gateway.serve", "--host", host, "--port", str(port)],
    )
    return workers, gateway


def _pumps(workers: ChildSpec, count: int, home: Path) -> list[ChildSpec]:
    """``count`` - 1 more inbox pumps (``python -m charterflow.workers inbox``) beside the
    workers' own, with their environment; each is ready once it serves (it writes
    ``<home>/pumps/<name>.ready``: events sent right after the banner found the second pump
    still importing Prefect). Pumps on one ledger never run an event twice
    (tests/flows/test_inbox_pump.py)."""
    pumps = []
    for n in range(2, count + 1):
        ready = home / "pumps" / f"inbox-{n}.ready"
        pumps.append(
            ChildSpec(
                name=f"inbox-{n}",
                after_restart=workers.after_restart,
                argv=[sys.executable, "-m", "charterflow.workers", "inbox"],
                env={**workers.env, READY_FILE_ENV: str(ready)},
                ready=ready.exists,
            )
        )
    return pumps


def public_url(gw: GatewaySettings) -> str:
    """Where users reach the gateway."""
    return (gw.public_url or f"http://127.0.0.1:{gw.port}").rstrip("/")


def plan_stack(
    settings: Settings,
    *,
    home: Path,
    real: set[str],
    sandboxed: list[str],
    heal: Callable[[datetime], None],
    prefect: tuple[str, ChildSpec | None] | None = None,
    meanwhile: Callable[[], None] | None = None,
) -> Plan:
    """The children `up` runs for these settings (``heal`` runs after a restart of a process
    that may have taken inbox runs with it; ``prefect``: :func:`prefect_server`'s answer;
    ``meanwhile``: run while a forked child makes the sandboxes' settings)."""
    gw = GatewaySettings()
    env = _base_env(home)
    api_url, server = prefect or prefect_server(settings, home=home, heal=heal)
    external = server is None
    if not external:
        env["PREFECT_API_URL"] = api_url
    ui_url = api_url.removesuffix("/api")
    public = public_url(gw)
    lock = {
        "pid": os.getpid(),
        "ui_url": ui_url,
        "api_url": api_url,
        "gateway_url": public,
        "real": sorted(real),
        "sandboxes": {},
        "inspector_url": None,
    }
    sandboxes, inspector_port = None, None
    if sandboxed:
        spec = sandbox_spec(settings, sandboxed, gateway_url=public, prefect_ui=ui_url)
        # A restarted sandboxes process finds its platforms' state here (this run's only).
        spec["state_dir"] = str(home / "sandboxes")
        shutil.rmtree(spec["state_dir"], ignore_errors=True)
        making = forked(sandbox_env, spec)
        if meanwhile is not None:
            meanwhile()
        env.update(making.result())
        sandboxes = ChildSpec(
            name="sandboxes",
            argv=[sys.executable, "-m", "charterflow.inspector"],
            ready=partial(sandboxes_ready, spec["inspector_port"]),
            env={**env, "CHARTERFLOW_SANDBOX_SPEC": json.dumps(spec)},
        )
        inspector_port = spec["inspector_port"]
        lock["sandboxes"] = {name: f"http://127.0.0.1:{spec['platforms'][name]['port']}" for name in sandboxed}
        lock["inspector_url"] = f"http://127.0.0.1:{inspector_port}"
    elif meanwhile is not None:
        meanwhile()
    workers, gateway = _service_children(env, api_url=api_url, home=home, heal=heal, host=gw.host, port=gw.port)
    return Plan(
        api_url=api_url,
        ui_url=ui_url,
        public_url=public,
        external_prefect=external,
        server=server,
        sandboxes=sandboxes,
        workers=workers,
        gateway=gateway,
        gateway_port=gw.port,
        pumps=_pumps(workers, settings.inbox_worker_count(), home),
        inspector_port=inspector_port,
        lock=lock,
    )


class Up:
    """One run of `charterflow up`: prepares the ledger, starts the plan's children, waits for
    each to answer, then supervises them until stopped or a crash loop."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.home = settings.home.resolve()
        self.logs = self.home / "logs"
        self.state_file = self.home / "up.json"
        self.stop_event = threading.Event()
        self.services: list[Any] = []
        self._ledger: LedgerHelper | None = None  # migrates, seeds, files the seeded ideas
        self._keeping: Any = None  # the process keeping the gateway's routes (keep_routes)
        self.supervisor = Supervisor(
            home=self.home, logs=self.logs, say=lambda text: console.print(text, soft_wrap=True)
        )

    # -- healing ---------------------------------------------------------------------------

    def heal(self, exited_at: datetime) -> None:
        count = forked(with_ledger, self.settings.ledger_url(), partial(redispatch_inflight, before=exited_at)).result(
            120
        )
        if count:
            console.print(f"  {count} inbox event(s) in flight at that exit dispatched again")

    # -- the run ---------------------------------------------------------------------------

    def run(self) -> int:
        self.logs.mkdir(parents=True, exist_ok=True)
        running = stack_files.running(self.home)
        if running:
            console.print(
                f"charterflow up is already running (pid {running['pid']}); Prefect UI: {running.get('ui_url', '?')}"
            )
            return 1
        previous = {sig: signal.signal(sig, self._request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            prefect = prefect_server(self.settings, home=self.home, heal=self.heal)
            if prefect[1] is not None:
                busy = _prefect_port_busy(self.settings)
                if busy:
                    console.print(busy)
                    return 1
                # The server, the slowest to start, needs nothing else: it boots while the other
                # ports are checked, the sandboxes' settings made and the ledger migrated and
                # seeded (bench/README.md, start-up).
                console.print(f"Starting the Prefect server on {prefect[0].removesuffix('/api')} …")
                self.supervisor.start(prefect[1])

            real = real_platforms()
            sandboxed = [p for p in PLATFORMS if p not in real] if self.settings.sandboxes else []
            busy = _busy_port(self.settings, GatewaySettings(), sandboxed)
            if busy:
                console.print(busy)
                return 1
            # Only a stack without any real platform gets the invented people in its ledger.
            # While the Prefect server boots, three things at once: the ledger migrated and
            # seeded and the sandboxes' settings made (two forked children) and the plugins'
            # services started (a homeserver answers in seconds, mostly waited for).
            self._ledger = LedgerHelper(self.settings, bool(sandboxed and not real))
            services = partial(self._services_started, public_url(GatewaySettings()))
            plan = plan_stack(
                self.settings,
                home=self.home,
                real=real,
                sandboxed=sandboxed,
                heal=self.heal,
                prefect=prefect,
                meanwhile=services if self.settings.sandboxes else None,
            )
            self._services_env(plan)
            prepared = self._ledger.prepared()
            if prepared is None:
                return 1
            ledger_url, seeded = prepared
            plan.lock["ledger"] = ledger_url
            file_ideas = seeded is not None and plan.sandboxes is not None and "discourse" in sandboxed
            if not file_ideas:
                self._ledger.file_ideas(None)
            routes = kept_routes(self.home)
            if routes is not None:
                plan.gateway.env[ROUTES_VARIABLE] = str(routes)
            served = self._start(plan, file_ideas=file_ideas)
            if isinstance(served, int):
                return served
            if file_ideas and seeded is not None:
                seeded += self._seeded_ideas_filed()
            self._ledger.close()
            self._banner(plan, served, real, sandboxed, ledger_url, seeded)
            if routes is None:  # for the next start; the gateway took its own meanwhile
                # A process of its own (not `forked`'s pool): stopping `up` ends it at once.
                self._keeping = multiprocessing.get_context("fork").Process(
                    target=keep_routes, args=(self.home,), name="keep-routes", daemon=True
                )
                self._keeping.start()
            return self._supervise()
        finally:
            self._shutdown(previous)

    def _start_services(self, plan: Plan) -> None:
        """Plugins' services (entry-point group ``charterflow.stack``, e.g. a Matrix homeserver):
        each gets the home and the gateway's URL and returns ``None`` or an object with ``env``
        (added to every child's but the Prefect server's), ``links`` (for the banner) and
        ``stop()``. A failing one is reported and skipped: the stack runs without it."""
        self._services_started(plan.public_url)
        self._services_env(plan)

    def _services_started(self, gateway_url: str) -> None:
        """Start the plugins' services (:meth:`_start_services`) and supervise their processes."""
        for ep in sorted(entry_points(group="charterflow.stack"), key=lambda e: e.name):
            try:
                service = ep.load()(home=self.home, gateway_url=gateway_url)
            except Exception as exc:  # noqa: BLE001 - a plugin never stops the stack
                console.print(f"warning: {ep.name} not started ({type(exc).__name__}: {exc})", soft_wrap=True)
                continue
            if service is not None:
                self.services.append(service)
                # A service's own process (Synapse), restarted like ours if it dies.
                run = getattr(service, "supervised", None)
                if run and run.get("process") is not None:
                    self.supervisor.adopt(
                        ChildSpec(name=run["name"], argv=list(run["argv"]), env=dict(run["env"])), run["process"]
                    )

    def _services_env(self, plan: Plan) -> None:
        """The plugins' services' settings into every child's environment but the Prefect server's."""
        for service in self.services:
            for spec in plan.started():
                spec.env.update(service.env)

    def _seeded_ideas_filed(self) -> str:
        filed = self._ledger.ideas_filed(120) if self._ledger is not None else "EOFError"
        if isinstance(filed, str):  # the stack runs; the backlog is short
            console.print(f"warning: the seeded ideas are not in the backlog ({filed})")
            return ""
        return f"; {filed} seeded ideas filed in the backlog" if filed else ""

    def _request_stop(self, signum: int, frame: object) -> None:
        self.stop_event.set()

    def _failed(self, what: str, child: Child | None) -> int:
        console.print(f"error: {what}" + (f"; see {child.log}" if child else ""))
        if child is not None:
            console.print(_tail(child.log))
        return 1

    def _mark_ready(self, plan: Plan, waiting: dict[str, Callable[[], bool]], *, file_ideas: bool) -> int | None:
        """One look at each child still starting: those that answer leave ``waiting``; the
        exit code when the sandboxes fail to start."""
        for name, check in list(waiting.items()):
            try:
                if (name == "workers" and "prefect-server" in waiting) or not check():
                    continue
            except RuntimeError as exc:
                return self._failed(f"the sandboxes did not start ({exc})", self.supervisor.child(name))
            del waiting[name]
            if name == "prefect-server" and plan.server is not None:
                _remember_schema(self.home, plan.server.env)
            if name == "sandboxes" and file_ideas and plan.sandboxes is not None and self._ledger is not None:
                self._ledger.file_ideas(json.loads(plan.sandboxes.env["CHARTERFLOW_SANDBOX_SPEC"]))
        return None

    def _start(self, plan: Plan, *, file_ideas: bool = False) -> int | list[str]:
        """Start every child at once (their imports overlap; the workers wait for the
        Prefect server by themselves) and wait until each answers; the deployments served, or the
        exit code. A child that stops meanwhile is restarted as later on. ``file_ideas``: once
        the sandboxes answer, file the seeded ideas (:func:`seed_ideas`) while the rest starts."""
        sup = self.supervisor
        (self.home / DEPLOYMENTS_FILE).unlink(missing_ok=True)
        shutil.rmtree(self.home / "pumps", ignore_errors=True)  # the last run's readiness
        for spec in plan.started():  # the server runs
            sup.start(spec)
        # up.json, and (0600) the settings its processes got: CLI commands use the same stack.
        stack_files.record(self.home, plan.lock, plan.gateway.env)
        # Each child's own readiness check; an external Prefect server is waited for too.
        waiting = {spec.name: spec.ready for spec in plan.children() if spec.ready is not None}
        if plan.server is None:
            waiting["prefect-server"] = partial(prefect_answers, plan.api_url)
        deadline = time.monotonic() + START_TIMEOUT
        while waiting:
            if self.stop_event.wait(READY_POLL_SECONDS):
                return 0
            looping = sup.check()
            if looping is not None:
                exits = looping.spec.restart.crash_loop_exits
                return self._failed(
                    f"{looping.name} stopped {exits} times while starting ({describe_exit(looping.last_exit)})", looping
                )
            failed = self._mark_ready(plan, waiting, file_ideas=file_ideas)
            if failed is not None:
                return failed
            if time.monotonic() > deadline:
                names = ", ".join(waiting)
                late = next((c for c in sup.children if c.name in waiting), None)
                return self._failed(f"{names} did not answer within {START_TIMEOUT:.0f} s", late)
        return plan.workers.ready.served if isinstance(plan.workers.ready, Deployments) else []

    def _banner(
        self, plan: Plan, served: list[str], real: set[str], sandboxed: list[str], ledger_url: str, seeded: str | None
    ) -> None:
        where = [
            f"{LABELS[p]}: " + ("real" if p in real else "sandbox" if p in sandboxed else "not served")
            for p in PLATFORMS
        ]
        rows = [
            ("Prefect UI", plan.ui_url + ("  (external server)" if plan.external_prefect else "")),
            ("Apply form", f"{plan.public_url}/apply"),
            ("Inspector", plan.lock["inspector_url"] or "(no sandboxes)"),
            ("Platforms", ", ".join(where)),
            ("Ledger", ledger_url + (f"  ({seeded})" if seeded else "")),
            ("Deployments", f"{len(served)} served"),
            *(link for service in self.services for link in service.links.items()),
            ("Logs", str(self.logs)),
            ("Status", "charterflow status"),
            ("Stop", "Ctrl-C"),
        ]
        # Plain aligned lines rather than a box: long URLs stay on one line and copyable.
        # One write: a reader never sees the heading without its rows.
        lines = "\n".join(f"  {name:<12} {value}" for name, value in rows)
        console.print(f"[bold]charterflow is up[/bold]\n{escape(lines)}", soft_wrap=True)

    def _supervise(self) -> int:
        """Until Ctrl-C/SIGTERM (0) or a crash loop (1)."""
        watch = WorkerWatch(
            self.settings.ledger_url(),
            stall=self.settings.worker_stall_seconds,
            pulled=self.settings.inbox_dispatch == "pull",
        )
        while not self.stop_event.wait(0.25):
            looping = self.supervisor.check()
            if looping is not None:
                policy = looping.spec.restart
                console.print(
                    f"error: {looping.name} stopped {policy.crash_loop_exits} times within "
                    f"{policy.crash_loop_window:.0f} s (last: {describe_exit(looping.last_exit)}); "
                    f"stopping everything; see {looping.log}",
                    soft_wrap=True,
                )
                return 1
            if watch.due():
                self._restart_if_stalled(watch)
        return 0

    def _restart_if_stalled(self, watch: WorkerWatch) -> None:
        stall = self.settings.worker_stall_seconds
        # Nothing handled at all means every pump is stuck (one that works takes a stuck one's
        # claims once they are stale).
        pumps = [c for c in self.supervisor.children if c.name == "workers" or c.name.startswith("inbox-")]
        if any(c.state != "running" or _starting(c, stall) for c in pumps):
            return
        stuck = watch.stuck()
        if stuck:
            console.print(
                f"warning: the inbox worker handled nothing for {stall} s while {len(stuck)} event(s) "
                f"waited; restarting it and dispatching them again"
            )

            def release() -> None:
                # With the stuck pumps gone and the new ones not started: a new pump that had
                # claimed an event before the retry would run it as a second attempt.
                for child in pumps:
                    Path(child.spec.env.get(READY_FILE_ENV, "")).unlink(missing_ok=True)
                watch.retry(stuck)

            self.supervisor.restart(pumps, "stalled", meanwhile=release)

    def _shutdown(self, previous: dict) -> None:
        if self.supervisor.children:
            console.print("Stopping …")
        # Plugins' services first (Synapse stops in well under a second): behind the others'
        # shared grace period, pushing to a gateway already gone, it could be killed instead.
        for service in self.services:
            service.stop()
        if self._ledger is not None:
            self._ledger.close()
        if self._keeping is not None and self._keeping.is_alive():
            self._keeping.kill()  # (it has `up`'s SIGTERM handler) the next start keeps them
            self._keeping.join(2)
        self.supervisor.stop()
        if self.supervisor.children:
            self.supervisor.write_status()  # kept: `status` shows the last exits, and "not running"
        try:
            stack_files.forget(self.home, os.getpid())
        except OSError:
            pass
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if self.supervisor.children:
            console.print("Stopped.")


def run_up(settings: Settings | None = None) -> int:
    """Start the stack, print where to find it, and supervise it until stopped. Returns the
    exit code: 0 after a requested stop, 1 when something could not start or crash-looped."""
    return Up(settings or get_settings()).run()
