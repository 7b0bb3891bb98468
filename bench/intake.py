"""Intake latency: signed interactions at a steady rate into a running ``charterflow up``.

    .venv/bin/python -m bench.intake [--seconds 60] [--rate 5] [--postgres] [--env NAME=VALUE]

Starts ``charterflow up`` in a child process (a temporary ``CHARTERFLOW_HOME`` and working
directory, free ports). Discord is this bench's own sandbox, given to ``up`` as the real Discord
(``CHARTERFLOW_DISCORD_*``); ``up`` serves sandboxes for the Forum and Slack. At a steady
``--rate`` per second for ``--seconds``, a member's ``/idea <text>``, built and Ed25519-signed by
the Discord sandbox as Discord does (``POST /_bench/prepare``, see ``bench.common``), is sent to
the gateway's ``/hooks/discord`` by the bench's own threads over kept-alive connections
(``GatewaySender``), and the sandbox applies the answer as Discord would. For each one:

- **acknowledgement**: the gateway's answer time as the sender saw it (verify, store in the
  inbox with its audit entry, answer "deferred");
- **end to end**: from the moment the bench asked for the interaction to the moment the
  "your idea is filed as #N" answer replaced the deferred "thinking…" message on the sandbox
  (its edit time; were it a follow-up, the time in its snowflake id). The path: the gateway's
  dispatcher creates a Prefect *background task run* (``flows.inbox.handle_inbox_event``), the
  task worker ``up`` runs (subscribed to the server) runs the ``idea`` handler: the idea is
  filed in the ledger and the answer posted.

Baseline from the same run: Discord PINGs sent the same way once a second (verified and answered by
the gateway, nothing stored), each followed by one sent and timed inside the sandbox's event loop
(``POST /_bench/deliver``: how every request was timed before 2026-12-06), and the inbox timestamps
of the same events (received -> dispatched -> processed) to show where the end-to-end time goes.
``--postgres`` puts the ledger and the Prefect server's database on a throwaway PostgreSQL cluster
(skipped with a line when there are no PostgreSQL binaries). Targets: acknowledgement p99 <= 50 ms;
end to end p95 <= 1 s. Also counted: the requests the Prefect server answered 503 because its
database was busy (from its log, ``PREFECT_SERVER_LOG_RETRYABLE_ERRORS``), and the CPU time per
event of each part of the stack (less noisy than latencies on a shared machine). Past the ceiling
the events queue in the ledger's inbox: the bench waits for the answers as long as they keep coming
(``DRAIN_STALL``) before it counts the rest as lost. ``--env NAME=VALUE`` passes a setting to
``up`` (to measure without one of its Prefect server settings, say). Results go to
``bench/results/intake.json``, ``up``'s logs to ``bench/results/intake-logs/``. Only one
``charterflow up`` runs at a time; it is always stopped (SIGTERM to its process group)."""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import select

from bench.common import RESULTS, Row, ServedSandbox, clean_env, median, percentile, table, wait_until, write_results
from bench.scale import _pg_database
from bench.scale import postgres as cluster
from ledger.db import Ledger
from ledger.models import Idea, InboxEvent

DISCORD_EPOCH_MS = 1420070400000
FILED = re.compile(r"filed as \*\*#(\d+)\*\*")
UP_TIMEOUT = 300.0
DRAIN_STALL = 60.0  # no answer for this long after sending: the rest count as lost


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class GatewaySender:
    """Posts signed requests to the gateway from the calling thread over that thread's own
    kept-alive connection and times request out to response in. Discord's edge is another
    machine: the timed request should not wait for the sandbox's event loop, which also answers
    the workers' API calls (the way ``/_bench/deliver`` times it, kept as a baseline)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host, self.port, self.path = parts.hostname or "127.0.0.1", parts.port or 80, parts.path or "/"
        self._local = threading.local()

    def post(self, body: bytes, headers: dict[str, str]) -> tuple[int, bytes, float]:
        """(status, body, seconds); a failed connection is dropped and the error raised."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
            conn.connect()
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._local.conn = conn
        started = time.perf_counter()
        try:
            conn.request("POST", self.path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException):
            conn.close()
            self._local.conn = None
            raise
        return response.status, data, time.perf_counter() - started


def snowflake_time(snowflake: str) -> float:
    """Unix seconds at which a Discord id was made."""
    return ((int(snowflake) >> 22) + DISCORD_EPOCH_MS) / 1000


class Up:
    """``charterflow up`` in a child process (its own session: stopped as a group)."""

    def __init__(self, work: Path, extra_env: dict[str, str] | None = None) -> None:
        self.home = work / "home"
        self.home.mkdir()
        self.log = work / "up.log"
        env = clean_env()
        for name in [k for k in env if k.startswith("PREFECT_")]:
            env.pop(name)
        env.update(
            {
                "CHARTERFLOW_HOME": str(self.home),
                "CHARTERFLOW_GATEWAY_HOST": "127.0.0.1",
                "CHARTERFLOW_GATEWAY_PORT": str(_free_port()),
                "CHARTERFLOW_PREFECT_PORT": str(_free_port()),
                "CHARTERFLOW_INSPECTOR_PORT": "0",
                "PYTHONUNBUFFERED": "1",
                **(extra_env or {}),
            }
        )
        charterflow = Path(sys.executable).with_name("charterflow")
        argv = [str(charterflow), "up"] if charterflow.exists() else [sys.executable, "-m", "charterflow.cli", "up"]
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                argv,
                cwd=work,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.started = time.monotonic()

    def wait_ready(self) -> dict[str, Any]:
        """``up.json`` once ``up`` says it is up; ``SystemExit`` with its log when it fails."""

        def ready() -> bool:
            return self.process.poll() is not None or "charterflow is up" in self.log.read_text(errors="replace")

        if not wait_until(ready, timeout=UP_TIMEOUT, interval=0.5) or self.process.poll() is not None:
            tail = self.log.read_text(errors="replace")[-3000:]
            raise SystemExit(f"charterflow up did not come up within {UP_TIMEOUT:g} s:\n{tail}")
        return json.loads((self.home / "up.json").read_text())

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)  # up stops its children, newest first
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


def _inbox_times(url: str) -> dict[str, dict[str, float | None]]:
    """Inbox timestamps and idea ids of the Discord ``/idea`` events, by interaction id."""
    ledger = Ledger(url)
    out: dict[str, dict[str, float | None]] = {}
    try:
        with ledger.read() as session:
            # discord:<guild>:interaction:<id> (connectors.base.instance_key)
            ideas = {
                key.rpartition(":interaction:")[2]: idea_id
                for idea_id, key in session.execute(
                    select(Idea.id, Idea.source_key).where(Idea.source_key.like("discord:%:interaction:%"))
                )
            }
            for event in session.scalars(select(InboxEvent).where(InboxEvent.source == "discord")):
                attrs = (event.payload or {}).get("attributes") or {}
                iid = str(attrs.get("interaction_id") or "")
                if not iid:
                    continue

                def ts(value: datetime | None) -> float | None:
                    return value.timestamp() if value is not None else None

                out[iid] = {
                    "received": ts(event.received_at),
                    "dispatched": ts(event.dispatched_at),
                    "processed": ts(event.processed_at),
                    "idea": ideas.get(iid),
                }
    finally:
        ledger.dispose()
    return out


BUSY = re.compile(r"Encountered retryable exception in request")
BUSY_TARGET = re.compile(r"^\[SQL: (INSERT INTO|UPDATE|DELETE FROM|SELECT .*? FROM) (\w+)", re.M)


def prefect_busy(log: Path) -> dict[str, int]:
    """Requests the Prefect server answered 503 (its database busy), by the statement that
    failed (``INSERT INTO task_run``…), from its log."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return {}
    counts: dict[str, int] = {}
    for block in BUSY.split(text)[1:]:
        match = BUSY_TARGET.search(block)
        name = f"{match.group(1).split()[0]} {match.group(2)}" if match else "other"
        counts[name] = counts.get(name, 0) + 1
    return counts


def gateway_ack_buckets(text: str, route: str = "/hooks/discord") -> dict[float, float]:
    """The gateway's own histogram of request in -> response out for ``route`` (Prometheus
    text): cumulative counts by upper bound in seconds (``inf`` included)."""
    out: dict[float, float] = {}
    for line in text.splitlines():
        if not line.startswith("charterflow_gateway_ack_seconds_bucket{") or f'route="{route}"' not in line:
            continue
        bound = re.search(r'le="([^"]+)"', line)
        if bound:
            out[float(bound.group(1))] = float(line.rpartition(" ")[2])
    return dict(sorted(out.items()))


def bucket_percentile(buckets: dict[float, float], pct: float) -> float | None:
    """The upper bound (s) of the bucket holding the ``pct`` percentile, or None when empty."""
    total = buckets.get(float("inf"), 0.0)
    if not total:
        return None
    return next(bound for bound, count in buckets.items() if count >= total * pct / 100)


def _dispatch_metrics(text: str) -> dict[str, float]:
    """The gateway's dispatch counters (Prometheus text): attempts by outcome, latency sum/count."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if (
            line.startswith(("charterflow_gateway_dispatches_total", "charterflow_gateway_dispatch_latency"))
            and not line.startswith("#")
            and "_bucket" not in line
            and "_created" not in line
        ):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


TICK = os.sysconf("SC_CLK_TCK")
PART_NAMES = (
    ("prefect server start", "prefect-server"),
    ("charterflow.workers inbox", "inbox-worker"),
    ("charterflow.workers runner", "runner"),
    ("charterflow.workers both", "workers"),
    ("gateway", "gateway"),
    ("charterflow.inspector", "sandboxes"),
    ("charterflow up", "up"),
    ("cli up", "up"),
    ("synapse.app.homeserver", "matrix-homeserver"),
    ("prefect.engine", "flow-runs"),
)

# "workers": `up`'s inbox worker, in one process with the runner (idle but for its polls).
INTAKE_PARTS = ("prefect-server", "inbox-worker", "workers", "gateway", "postgresql")


def _stat(pid: str) -> tuple[list[str], str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split(), cmdline  # fields from the state on (field 3)


def cpu_seconds(home: Path, pg_port: int | None) -> dict[str, float]:
    """CPU time (user + system) used so far by the processes of the ``up`` whose
    ``CHARTERFLOW_HOME`` is ``home`` (its inbox pumps too), by part, and by the PostgreSQL
    cluster on ``pg_port`` (its server processes, and the connections already closed: the
    postmaster's reaped children)."""
    marker = f"CHARTERFLOW_HOME={home}".encode()
    out: dict[str, float] = {}
    postmaster, children = None, []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        found = _stat(pid)
        if found is None:
            continue
        fields, cmdline = found
        used = _cpu(fields)
        try:
            ours = marker in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            ours = False
        if ours:
            name = next((n for marker, n in PART_NAMES if marker in cmdline), "other")
            out[name] = out.get(name, 0.0) + used
            if name in ("workers", "runner"):  # the flow run processes the runner started and reaped
                out["flow-runs"] = out.get("flow-runs", 0.0) + _reaped_cpu(fields)
        elif pg_port is not None and f"-p {pg_port} " in cmdline:
            postmaster = (pid, used + _reaped_cpu(fields))
        elif cmdline.startswith("postgres:"):
            children.append((fields[1], used))
    if postmaster is not None:
        out["postgresql"] = postmaster[1] + sum(used for ppid, used in children if ppid == postmaster[0])
    return out


def _cpu(fields: list[str]) -> float:
    """User + system seconds from a process's ``stat`` fields (as :func:`_stat` splits them)."""
    return (int(fields[11]) + int(fields[12])) / TICK


def _reaped_cpu(fields: list[str]) -> float:
    """User + system seconds of the process's children that ended and were waited for."""
    return (int(fields[13]) + int(fields[14])) / TICK


def process_cpu(pids: list[int]) -> float:
    """CPU time (user + system) used so far by these processes (all their threads)."""
    return sum(_cpu(found[0]) for found in map(_stat, map(str, pids)) if found is not None)


def run(
    *, seconds: float, rate: float, postgres: bool = False, up_env: dict[str, str] | None = None
) -> dict[str, Any] | None:
    if postgres:
        with cluster() as admin_url:  # prints why when there are no PostgreSQL binaries
            if admin_url is None:
                return None
            prefect_db = _pg_database(admin_url, "prefect").replace("+psycopg", "+asyncpg")
            return _run(
                seconds=seconds,
                rate=rate,
                database_url=_pg_database(admin_url, "intake"),
                prefect_database_url=prefect_db,
                up_env=up_env,
            )
    return _run(seconds=seconds, rate=rate, database_url=None, up_env=up_env)


def _run(
    *,
    seconds: float,
    rate: float,
    database_url: str | None,
    prefect_database_url: str | None = None,
    up_env: dict[str, str] | None = None,
) -> dict[str, Any]:
    # Discord is this bench's own sandbox (so it can sign and time deliveries over one kept-alive
    # connection); `up` takes it as the real Discord and serves sandboxes for the others.
    with (
        tempfile.TemporaryDirectory(prefix="charterflow-bench-intake-") as tmp,
        ServedSandbox("discord", bench_deliver=True) as discord,
    ):
        env = {k: str(v) for k, v in discord.info["env"].items()}
        if database_url:
            env["CHARTERFLOW_DATABASE_URL"] = database_url
        if prefect_database_url:
            env["PREFECT_API_DATABASE_CONNECTION_URL"] = prefect_database_url
        # The server then logs each request it answered 503 because its database was busy
        # (Prefect's own client repeats those after 2 s, the gateway's dispatcher after 50 ms):
        # counted below, by the table the failed write was for.
        env["PREFECT_SERVER_LOG_RETRYABLE_ERRORS"] = "true"
        env.update(up_env or {})
        up = Up(Path(tmp), extra_env=env)
        try:
            info = up.wait_ready()
            startup = time.monotonic() - up.started
            pg_port = int(re.search(r":(\d+)/", database_url).group(1)) if database_url else None
            hook = info["gateway_url"].rstrip("/") + "/hooks/discord"
            user = "cleo_marsh"  # an invented member of the sandbox's default guild
            http = httpx.Client(base_url=discord.url, timeout=30)
            sent: list[dict[str, Any]] = []
            pings: list[dict[str, Any]] = []
            lock = threading.Lock()

            sender = GatewaySender(hook)
            loop_pings: list[dict[str, Any]] = []

            def deliver(kind: str, options: dict[str, Any] | None = None) -> dict[str, Any]:
                """Built and signed by the sandbox, sent and timed by this thread, answered back."""
                ready = http.post("/_bench/prepare", json={"kind": kind, "user": user, "options": options}).json()
                try:
                    status, raw, elapsed = sender.post(ready["body"].encode(), ready["headers"])
                except (OSError, http.client.HTTPException) as exc:
                    return {
                        "interaction_id": ready["interaction_id"],
                        "elapsed": 0.0,
                        "failed": True,
                        "error": repr(exc),
                    }
                error = f"HTTP {status}" if status != 200 else None
                if error is None:
                    answer = json.loads(raw)
                    error = http.post("/_bench/answer", json={"token": ready["token"], "answer": answer}).json()[
                        "error"
                    ]
                return {
                    "interaction_id": ready["interaction_id"],
                    "status": status,
                    "elapsed": elapsed,
                    "error": error,
                    "failed": error is not None,
                }

            def interaction(n: int) -> None:
                at = time.time()
                answer = deliver("idea", {"text": f"Benchmark idea {n:04d}: a monthly reading group on topic {n}"})
                with lock:
                    sent.append({"n": n, "at": at, **answer})

            def ping() -> None:
                answer = deliver("ping")
                # The same PING sent and timed inside the sandbox's event loop: how the runs
                # before 2026-12-06 timed every request (the difference is the sender's own wait).
                in_loop = http.post("/_bench/deliver", json={"url": hook, "kind": "ping", "user": user}).json()
                with lock:
                    pings.append(answer)
                    loop_pings.append(in_loop)

            def messages() -> dict[int, float]:
                found: dict[int, float] = {}
                for m in discord.state()["messages"]:
                    match = FILED.search(m["content"] or "")
                    if match:
                        # The answer replaces the deferred message (an edit) or is a follow-up.
                        edited = m.get("edited_at")
                        found[int(match.group(1))] = (
                            datetime.fromisoformat(edited).timestamp() if edited else snowflake_time(m["id"])
                        )
                return found

            health: list[float] = []
            sampling = threading.Event()

            def sample_health() -> None:
                # Prefect's /health as the gateway's dispatcher probes it (about every second, a
                # fresh httpx.get each time).
                while not sampling.wait(0.5):
                    started = time.perf_counter()
                    try:
                        httpx.get(info["api_url"].rstrip("/") + "/health", timeout=10)
                    except httpx.HTTPError:
                        pass
                    health.append(time.perf_counter() - started)

            for n in range(3):  # warm-up: the first run of each path imports and connects
                interaction(-1 - n)
            wait_until(lambda: len(messages()) >= 3, timeout=60, interval=0.5)
            sent.clear()
            total = int(seconds * rate)
            sampler = threading.Thread(target=sample_health, daemon=True)
            sampler.start()
            # The sending side (the bench's threads and its Discord sandbox): Discord's machines
            # in production, sharing the two cores here.
            sender_pids = [os.getpid(), discord.process.pid]
            cpu_before, sender_before = cpu_seconds(up.home, pg_port), process_cpu(sender_pids)
            with ThreadPoolExecutor(max_workers=16) as pool:
                t0 = time.monotonic()
                for n in range(total):
                    delay = t0 + n / rate - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    pool.submit(interaction, n)
                    if n % max(1, int(rate)) == 0:
                        pool.submit(ping)
            sending = time.monotonic() - t0
            # Past the ceiling the events queue in the ledger's inbox: wait for the queue to drain
            # (as long as it keeps draining) before counting an event as lost.
            drained, last = time.monotonic(), -1
            while (count := len(messages())) < total + 3:
                if count > last:
                    drained, last = time.monotonic(), count
                elif time.monotonic() - drained > DRAIN_STALL:
                    break
                time.sleep(0.5)
            drain_s = time.monotonic() - t0 - sending
            cpu_after, sender_after = cpu_seconds(up.home, pg_port), process_cpu(sender_pids)
            sampling.set()
            posted = messages()
            inbox = _inbox_times(database_url or f"sqlite:///{up.home / 'ledger.db'}")
            exposition = httpx.get(info["gateway_url"].rstrip("/") + "/metrics", timeout=10).text
            metrics = _dispatch_metrics(exposition)
            at_gateway = gateway_ack_buckets(exposition)
            http.close()
        finally:
            up.stop()
            # up's logs, for looking into a slow run (bench/results/ is not in git)
            shutil.rmtree(RESULTS / "intake-logs", ignore_errors=True)
            if (up.home / "logs").is_dir():
                shutil.copytree(up.home / "logs", RESULTS / "intake-logs", dirs_exist_ok=True)
            busy = prefect_busy(up.home / "logs" / "prefect-server.log")

    acks = [s["elapsed"] for s in sent if not s.get("failed")]
    e2e, parts = [], {"received_to_dispatched": [], "dispatched_to_processed": []}
    missing = 0
    events = []
    for s in sorted(sent, key=lambda s: s["n"]):
        row = inbox.get(str(s.get("interaction_id"))) or {}
        idea = row.get("idea")
        event = {"n": s["n"], "ack_ms": round(s["elapsed"] * 1000, 1)}
        if row.get("dispatched") and row.get("received"):
            parts["received_to_dispatched"].append(row["dispatched"] - row["received"])
            event["received_to_dispatched_ms"] = round((row["dispatched"] - row["received"]) * 1000)
        if row.get("processed") and row.get("dispatched"):
            parts["dispatched_to_processed"].append(row["processed"] - row["dispatched"])
            event["dispatched_to_processed_ms"] = round((row["processed"] - row["dispatched"]) * 1000)
        if idea is None or idea not in posted:
            missing += 1
        else:
            e2e.append(posted[idea] - s["at"])
            event["e2e_ms"] = round((posted[idea] - s["at"]) * 1000)
        events.append(event)
    ms = lambda values: [v * 1000 for v in values]  # noqa: E731 - a one-line helper of this report
    return {
        "config": {
            "seconds": seconds,
            "rate": rate,
            "interactions": total,
            "ledger": "postgresql" if database_url else "sqlite",
            "prefect_database": "postgresql" if prefect_database_url else "sqlite",
            "up_env": dict(up_env or {}),
            "inbox_workers": (up_env or {}).get("CHARTERFLOW_INBOX_WORKERS", "up's default"),
        },
        "load_average": os.getloadavg(),
        "startup_s": round(startup, 1),
        "sending_s": round(sending, 2),
        "drained_after_s": round(drain_s, 1),
        # CPU per event, by part (all the events sent to the last answer): less noisy than the
        # latencies on a shared machine; 2 cores / this = the rate the CPU alone allows.
        "cpu_ms_per_event": {
            name: round((cpu_after.get(name, 0.0) - used) * 1000 / max(1, total), 1)
            for name, used in sorted(cpu_before.items())
        },
        "sender_cpu_ms_per_event": round((sender_after - sender_before) * 1000 / max(1, total), 1),
        "achieved_rate_per_s": round(total / sending, 2) if sending else None,
        "ack_ms": {
            "n": len(acks),
            "p50": percentile(ms(acks), 50),
            "p99": percentile(ms(acks), 99),
            "max": max(ms(acks), default=None),
        },
        # As the gateway times it (its histogram, PINGs included): what the client's figure
        # adds on top is the sending side and the wait for a core on either side.
        "ack_at_gateway": {
            "p99_at_most_ms": (lambda b: b * 1000 if b is not None else None)(bucket_percentile(at_gateway, 99)),
            "within_50_ms": round(at_gateway.get(0.05, 0.0) / at_gateway[float("inf")], 4)
            if at_gateway.get(float("inf"))
            else None,
        },
        "ack_failed": sum(1 for s in sent if s.get("failed")),
        "ack_errors": sorted({str(s.get("error")) for s in sent if s.get("failed")})[:5],
        "ping_ack_ms": {
            "n": len(pings),
            "p50": percentile(ms([p["elapsed"] for p in pings]), 50),
            "p99": percentile(ms([p["elapsed"] for p in pings]), 99),
        },
        "ping_in_sandbox_loop_ms": {
            "n": len(loop_pings),
            "p50": percentile(ms([p["elapsed"] for p in loop_pings]), 50),
            "p99": percentile(ms([p["elapsed"] for p in loop_pings]), 99),
        },
        "e2e_ms": {
            "n": len(e2e),
            "p50": percentile(ms(e2e), 50),
            "p95": percentile(ms(e2e), 95),
            "max": max(ms(e2e), default=None),
        },
        "e2e_missing": missing,
        "inbox_ms": {name: {"p50": median(ms(v)), "p95": percentile(ms(v), 95)} for name, v in parts.items()},
        "gateway_dispatch_metrics": metrics,
        "prefect_busy_503": busy,
        "prefect_health_ms": {
            "n": len(health),
            "p50": percentile(ms(health), 50),
            "p95": percentile(ms(health), 95),
            "max": max(ms(health), default=None),
        },
        "events": events,
    }


def rows(r: dict[str, Any]) -> list[Row]:
    ack, e2e, ping = r["ack_ms"], r["e2e_ms"], r["ping_ack_ms"]
    loop = r.get("ping_in_sandbox_loop_ms") or {}
    gw = r.get("ack_at_gateway") or {}
    inbox = r["inbox_ms"]
    cpu = r.get("cpu_ms_per_event") or {}
    busy = r.get("prefect_busy_503") or {}
    n = r["config"]["interactions"]
    return [
        Row("rate sent", f"{r['achieved_rate_per_s']:.2f} per s ({n} /idea)", f"{r['config']['rate']:g} per s"),
        Row("ack p50", f"{ack['p50']:.1f} ms", "", None, f"PING p50 {ping['p50']:.1f} ms"),
        Row(
            "ack p99",
            f"{ack['p99']:.1f} ms",
            "<= 50 ms",
            ack["p99"] <= 50 and r["ack_failed"] == 0,
            f"PING p99 {ping['p99']:.1f} ms",
        ),
        Row(
            "PING p99 timed in the sandbox's loop",
            f"{loop['p99']:.1f} ms" if loop.get("p99") is not None else "-",
            "",
            None,
            "how runs before 2026-12-06 timed each request",
        ),
        Row(
            "ack at the gateway p99 (its histogram)",
            f"<= {gw['p99_at_most_ms']:g} ms" if gw.get("p99_at_most_ms") is not None else "-",
            "",
            None,
            f"{gw['within_50_ms']:.2%} within 50 ms" if gw.get("within_50_ms") is not None else "",
        ),
        Row(
            "webhook -> answer posted p50",
            f"{e2e['p50']:.0f} ms",
            "",
            None,
            f"inbox received->dispatched p50 {inbox['received_to_dispatched']['p50']:.0f} ms",
        ),
        Row(
            "webhook -> answer posted p95",
            f"{e2e['p95']:.0f} ms",
            "<= 1000 ms",
            e2e["p95"] <= 1000 and r["e2e_missing"] == 0,
            f"dispatched->processed p50 {inbox['dispatched_to_processed']['p50']:.0f} ms",
        ),
        Row("events without an answer", str(r["e2e_missing"]), "0", r["e2e_missing"] == 0),
        Row(
            "answered within, after the last was sent",
            f"{r['drained_after_s']:.1f} s",
            "",
            None,
            f"sending took {r['sending_s']:.0f} s",
        ),
        Row(
            "CPU per event, the whole stack",
            f"{sum(cpu.values()):.0f} ms",
            "",
            None,
            ", ".join(f"{name} {ms:.0f}" for name, ms in sorted(cpu.items(), key=lambda i: -i[1]) if ms >= 1),
        ),
        # What an event costs on its way (the rest runs whatever the rate: the Matrix
        # homeserver, scheduled flow runs): 2 cores / this = the most the machine could carry.
        Row(
            "CPU per event, the intake path",
            f"{sum(cpu.get(n, 0.0) for n in INTAKE_PARTS):.0f} ms",
            "<= 80 ms (20 per s, 2 cores)",
            None,
            " + ".join(INTAKE_PARTS),
        ),
        Row(
            "CPU per event, the sender (Discord's side)",
            f"{r['sender_cpu_ms_per_event']:.0f} ms" if r.get("sender_cpu_ms_per_event") is not None else "-",
            "",
            None,
            "the bench's threads and its Discord sandbox, on the same two cores",
        ),
        Row(
            "Prefect API /health during the run p95",
            f"{r['prefect_health_ms']['p95']:.0f} ms",
            "",
            None,
            f"max {r['prefect_health_ms']['max'] or 0:.0f} ms",
        ),
        Row(
            "Prefect API answered 503 (database busy)",
            str(sum(busy.values())),
            "",
            None,
            ", ".join(f"{name}: {count}" for name, count in sorted(busy.items(), key=lambda i: -i[1])[:3]),
        ),
    ]


# The figures before issue 19 (bench/README.md and the issue), printed beside a run's own.
PREVIOUS = {
    ("sqlite", 5): "ack p99 12.7 ms (87 ms in another quiet run), answer posted p95 93-173 ms",
    ("postgresql", 5): "ack p99 11.3 ms, answer posted p95 94 ms",
    ("sqlite", 20): "answer posted p95 19 s, 80 Prefect 503s (one dispatch thread)",
    ("postgresql", 20): "inbox received->dispatched p50 11 s (one dispatch thread); "
    "CPU per event 150 ms (2026-12-05, second pass)",
    ("postgresql", 30): "none before issue 19; CPU per event 141 ms at 20 per s (2026-12-05, third pass)",
}


def previous(r: dict[str, Any]) -> str:
    """The earlier figures for this configuration, if any were recorded."""
    key = (r["config"]["ledger"], int(r["config"]["rate"]))
    return PREVIOUS.get(key, "none recorded at this rate")


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rate", type=float, default=5.0, help="interactions per second")
    parser.add_argument(
        "--postgres", action="store_true", help="the ledger and Prefect's database on a throwaway PostgreSQL cluster"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="inbox workers `up` runs (CHARTERFLOW_INBOX_WORKERS; default: up's, 2 on PostgreSQL, 1 on SQLite)",
    )
    parser.add_argument("--out", type=Path, default=None, help="the JSON file (default bench/results/intake.json)")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for `up` and its processes (repeatable), e.g. to measure "
        "without one of the Prefect server settings `up` makes",
    )
    args = parser.parse_args(argv)
    up_env = {}
    for item in args.env:
        name, sep, value = item.partition("=")
        if not sep or not name:
            parser.error(f"--env {item!r}: expected NAME=VALUE")
        up_env[name] = value
    if args.workers is not None:
        up_env["CHARTERFLOW_INBOX_WORKERS"] = str(args.workers)
    results = run(seconds=args.seconds, rate=args.rate, postgres=args.postgres, up_env=up_env)
    if results is None:
        return None
    results["table"] = [r.as_dict() for r in rows(results)]
    path = write_results("intake", results, out=args.out)
    where = (
        "ledger and Prefect database on PostgreSQL"
        if args.postgres
        else "default up: ledger and Prefect database on SQLite"
    )
    print(
        table(
            f"intake latency ({where}): Discord /idea into charterflow up, {args.rate:g} per s for "
            f"{args.seconds:g} s (baseline: PINGs and inbox timestamps, same run)",
            rows(results),
        )
    )
    print(
        f"inbox workers: {results['config']['inbox_workers']}; load average at the end (1/5/15 min): "
        + " / ".join(f"{v:.1f}" for v in results["load_average"])
    )
    print(f"previous (before issue 19): {previous(results)}")
    print(f"results: {path}")
    return results


if __name__ == "__main__":
    main()
