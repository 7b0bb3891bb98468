"""Start-up time and memory of `make up` (issue 18, point 13).

Clones this repository (its committed HEAD) into a temporary folder and, there, with free ports
and a temporary ``CHARTERFLOW_HOME``:

1. **cold**: ``make up`` with no ``.venv`` (the Makefile creates it and installs with uv; whether
   uv's cache already held the packages is reported), timed to the "charterflow is up" line;
2. ``charterflow demo`` against it, then, once the demo's flow runs have ended, the resident
   memory (RSS, and PSS, which counts shared pages once) of every process of the stack, summed,
   and summed again without the plugins' services (Synapse); then Ctrl-C;
3. **warm**: ``make up`` again (the venv is there), timed the same way, then Ctrl-C, in
   ``--warm-runs`` rounds (the median is the figure).

The baseline, measured in the same run: a bare ``prefect server start`` (the stack's largest
part, which `up` cannot start faster than): seconds to healthy, and its RSS; started again
before each warm round after the first.

    .venv/bin/python -m bench.startup [--skip-cold] [--warm-runs N] [--out FILE]

prints the table and writes ``bench/results/startup.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import Row, clean_env, table, write_results

ROOT = Path(__file__).resolve().parent.parent
TARGETS = {"cold": 90.0, "warm": 15.0, "memory_mib": 800.0}
MIB = 1024 * 1024
PLUGIN_SERVICES = {"synapse"}  # named by describe()


def free_port() -> int:
    """A free port below the ephemeral range, so no outgoing connection takes it meanwhile."""
    for _ in range(200):
        port = 20000 + int.from_bytes(os.urandom(2), "big") % 12000
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise SystemExit("no free port")


def uv_cache_warm() -> bool:
    """Whether uv's cache already holds wheels (then the install is mostly links)."""
    cache = Path(os.environ.get("UV_CACHE_DIR") or Path.home() / ".cache" / "uv")
    return (cache / "wheels-v5").exists() or any(cache.glob("archive-v*/*")) if cache.exists() else False


def stack_processes(home: Path) -> list[int]:
    """Every process whose environment names this stack's home."""
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


def _argv(pid: int) -> list[bytes]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return []


def memory_of(pid: int) -> dict[str, Any] | None:
    """Name, RSS and PSS (bytes) of a process, from /proc."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return None
    fields = {}
    for line in rollup.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0] in ("Rss:", "Pss:"):
            fields[parts[0][:-1].lower()] = int(parts[1]) * 1024
    return {"pid": pid, "name": describe(argv), **fields}


def cpu_by_process(pids: list[int]) -> dict[str, float]:
    """CPU seconds (user + system) each process used so far, with its waited-for children
    (`up`'s short-lived forked helpers count as `up`'s); the processes of one name summed.
    Unlike seconds to the banner, this hardly depends on how busy the machine is."""
    ticks = os.sysconf("SC_CLK_TCK")
    found: dict[str, float] = {}
    for pid in pids:
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        name = describe(argv)
        found[name] = found.get(name, 0.0) + sum(int(f) for f in fields[11:15]) / ticks
    return found


def _parent(pid: int) -> int | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    return next((int(line.split()[1]) for line in status.splitlines() if line.startswith("PPid:")), None)


def describe(argv: list[bytes]) -> str:
    """A short name for a stack process from its command line."""
    words = [a.decode(errors="replace") for a in argv if a]
    text = " ".join(words)
    for needle, name in (
        ("prefect server start", "prefect-server"),
        ("charterflow.inspector", "sandboxes"),
        ("synapse.app.homeserver", "synapse"),  # the Matrix plugin's homeserver
        ("workers both", "workers"),  # the runner and the inbox worker, one process
        ("workers runner", "runner"),
        ("workers inbox", "inbox-worker"),
        (" gateway ", "gateway"),
        ("gateway.serve", "gateway"),
        ("charterflow up", "up"),
        ("prefect.engine", "flow-run"),  # a deployment's run, in a process of its own (Prefect's runner)
        ("make", "make"),
    ):
        if needle in f" {text} ":
            return name
    return Path(words[0]).name if words else "?"


class Stack:
    """``make up`` in ``clone`` with its own home and ports."""

    def __init__(self, clone: Path, work: Path) -> None:
        self.clone, self.home = clone, work / "home"
        self.env = {k: v for k, v in clean_env().items() if not k.startswith(("PREFECT_", "VIRTUAL_ENV"))}
        self.env.update(
            CHARTERFLOW_HOME=str(self.home),
            CHARTERFLOW_PREFECT_PORT=str(free_port()),
            CHARTERFLOW_GATEWAY_HOST="127.0.0.1",
            CHARTERFLOW_GATEWAY_PORT=str(free_port()),
            CHARTERFLOW_INSPECTOR_PORT=str(free_port()),
            PREFECT_RUNNER_POLL_FREQUENCY="2",
            PYTHON=_base_python(),
        )
        self.process: subprocess.Popen | None = None
        self.log = work / "make-up.log"
        self.cpu: dict[str, float] = {}

    def up(self, timeout: float = 600) -> float:
        """Seconds from ``make up`` to the "charterflow is up" line (the CPU each process had
        used by then in ``self.cpu``)."""
        started = time.monotonic()
        with self.log.open("w") as out:
            self.process = subprocess.Popen(
                ["make", "up"],
                cwd=self.clone,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        while time.monotonic() - started < timeout:
            if "charterflow is up" in self.log.read_text(errors="replace"):
                seconds = time.monotonic() - started
                self.cpu = cpu_by_process(stack_processes(self.home))
                return seconds
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        raise SystemExit("make up did not get up:\n" + self.log.read_text(errors="replace")[-3000:])

    def demo(self) -> None:
        result = subprocess.run(
            [str(self.clone / ".venv/bin/charterflow"), "demo", "--timeout", "180"],
            cwd=self.clone,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        if result.returncode != 0:
            print(f"warning: charterflow demo exited {result.returncode}: {result.stderr[-500:]}")

    def memory(self, settle: float = 60.0) -> list[dict[str, Any]]:
        """Each process of the stack at rest: once the demo's flow runs (each a process of its
        own) have ended, or after ``settle`` seconds with them counted; not `up`'s short-lived
        forked helpers (a ledger check every 30 s), which are copies of `up` that end within a
        second or two."""
        deadline = time.monotonic() + settle
        while time.monotonic() < deadline and any(
            describe(_argv(pid)) == "flow-run" for pid in stack_processes(self.home)
        ):
            time.sleep(1)
        pids = stack_processes(self.home)
        found = [m for m in (memory_of(pid) for pid in pids) if m]
        ups = {m["pid"] for m in found if m["name"] == "up"}
        kept = [m for m in found if not (m["name"] == "up" and _parent(m["pid"]) in ups)]
        return sorted(kept, key=lambda m: -m.get("rss", 0))

    def stop(self) -> None:
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGINT)  # make and up get Ctrl-C, as in a terminal
            self.process.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        self.process = None


def _base_python() -> str:
    """The interpreter the venv was made from (``make`` makes the clone's venv with it)."""
    return getattr(sys, "_base_executable", None) or shutil.which("python3") or "python3"


def bare_prefect(work: Path) -> dict[str, float]:
    """The baseline: ``prefect server start`` alone, seconds to healthy and its RSS."""
    port = free_port()
    env = {k: v for k, v in clean_env().items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(work / "bare-prefect"), PREFECT_SERVER_ANALYTICS_ENABLED="false")
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        while time.monotonic() - started < 300:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        seconds = time.monotonic() - started
        cpu = sum(cpu_by_process(_group(process.pid)).values())
        time.sleep(3)  # its services start just after /health answers
        rss = sum((memory_of(pid) or {}).get("rss", 0) for pid in _group(process.pid))
        return {"seconds": seconds, "rss_mib": rss / MIB, "cpu_seconds": cpu}
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def _group(pgid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getpgid(int(entry.name)) == pgid:
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def run(*, cold: bool = True, warm_runs: int = 3) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="cf-startup-") as tmp:
        work = Path(tmp)
        clone = work / "charterflow"
        subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
        baseline = bare_prefect(work)
        stack = Stack(clone, work)
        results: dict[str, Any] = {"baseline": baseline, "uv_cache_warm": uv_cache_warm(), "commit": _head(clone)}
        try:
            if cold:
                results["cold_seconds"] = stack.up()
            else:
                subprocess.run(["make", "install"], cwd=clone, env=stack.env, check=True, stdout=subprocess.DEVNULL)
                results["warm_first_seconds"] = stack.up()
            stack.demo()
            time.sleep(2)
            results["processes"] = stack.memory()
            # Warm starts in rounds, each beside a bare Prefect server started just before it: on
            # a shared machine one round says little, the median of the pairs more.
            rounds: list[dict[str, Any]] = []
            for _ in range(warm_runs):
                stack.stop()
                bare = bare_prefect(work) if rounds else baseline
                rounds.append({"bare_seconds": bare["seconds"], "warm_seconds": stack.up(), "warm_cpu": stack.cpu})
            results["rounds"] = rounds
            results["warm_seconds"] = statistics.median(r["warm_seconds"] for r in rounds)
            results["bare_warm_seconds"] = statistics.median(r["bare_seconds"] for r in rounds)
            results["warm_cpu"] = rounds[len(rounds) // 2]["warm_cpu"]
        finally:
            stack.stop()
    processes = results["processes"]
    results["memory_mib"] = sum(p.get("rss", 0) for p in processes) / MIB
    results["pss_mib"] = sum(p.get("pss", 0) for p in processes) / MIB
    # The plugins' services (the Matrix homeserver) are third-party servers `up` runs beside the
    # stack; shown apart so the core stack compares with the figures from before the plugin.
    results["core_memory_mib"] = sum(p.get("rss", 0) for p in processes if p["name"] not in PLUGIN_SERVICES) / MIB
    return results


def _head(clone: Path) -> str:
    return subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=clone, capture_output=True, text=True
    ).stdout.strip()


def rows(r: dict[str, Any]) -> list[Row]:
    b = r["baseline"]
    out = []
    if "cold_seconds" in r:
        cache = "warm" if r["uv_cache_warm"] else "cold"
        out.append(
            Row(
                f"cold: fresh clone, make up to 'charterflow is up' (uv cache {cache})",
                f"{r['cold_seconds']:.1f} s",
                f"<= {TARGETS['cold']:.0f} s",
                r["cold_seconds"] <= TARGETS["cold"],
                f"bare Prefect server {b['seconds']:.1f} s",
            )
        )
    rounds = r.get("rounds") or [{"warm_seconds": r["warm_seconds"], "bare_seconds": b["seconds"]}]
    out.append(
        Row(
            f"warm: make up again, median of {len(rounds)}",
            f"{r['warm_seconds']:.1f} s",
            f"<= {TARGETS['warm']:.0f} s",
            r["warm_seconds"] <= TARGETS["warm"],
            f"bare Prefect server {r.get('bare_warm_seconds', b['seconds']):.1f} s",
        )
    )
    for i, one in enumerate(rounds, 1):
        out.append(Row(f"  round {i}", f"{one['warm_seconds']:.1f} s", baseline=f"bare {one['bare_seconds']:.1f} s"))
    out.append(
        Row(
            f"memory after demo: RSS of {len(r['processes'])} processes",
            f"{r['memory_mib']:.0f} MiB",
            f"<= {TARGETS['memory_mib']:.0f} MiB",
            r["memory_mib"] <= TARGETS["memory_mib"],
            f"bare Prefect server {b['rss_mib']:.0f} MiB",
        )
    )
    out.append(Row("  the same counted once per shared page (PSS)", f"{r['pss_mib']:.0f} MiB"))
    if "core_memory_mib" in r:
        out.append(
            Row(
                "  without the plugins' services (" + ", ".join(sorted(PLUGIN_SERVICES)) + ")",
                f"{r['core_memory_mib']:.0f} MiB",
                f"<= {TARGETS['memory_mib']:.0f} MiB",
                r["core_memory_mib"] <= TARGETS["memory_mib"],
            )
        )
    for p in r["processes"]:
        out.append(Row(f"  {p['name']} (pid {p['pid']})", f"{p.get('rss', 0) / MIB:.0f} MiB"))
    cpu = r.get("warm_cpu") or {}
    if cpu:
        out.append(
            Row(
                "warm: CPU used by the banner, all processes",
                f"{sum(cpu.values()):.1f} s",
                baseline=f"bare Prefect server {b.get('cpu_seconds', float('nan')):.1f} s (2 cores)",
            )
        )
        for name, seconds in sorted(cpu.items(), key=lambda item: -item[1]):
            out.append(Row(f"  {name}", f"{seconds:.1f} s"))
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-cold", action="store_true", help="install first (untimed) and time only warm starts")
    parser.add_argument("--warm-runs", type=int, default=3, help="warm starts to time (the median is reported)")
    parser.add_argument("--out", type=Path, default=None, help="the JSON file (default bench/results/startup.json)")
    args = parser.parse_args(argv)
    results = run(cold=not args.skip_cold, warm_runs=max(1, args.warm_runs))
    results["table"] = [row.as_dict() for row in rows(results)]
    path = write_results("startup", results, out=args.out)
    print(
        table(
            "start-up and memory of `make up` in a fresh clone (baseline: a bare Prefect server, same run)",
            rows(results),
        )
    )
    print(f"results: {path}")
    return results


if __name__ == "__main__":
    main()
