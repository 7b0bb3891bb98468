"""The idle stack's CPU: `charterflow up` with nothing arriving, its scheduled runs in the workers'
process (as it ships) against a process per run (``CHARTERFLOW_INLINE_MAX_INTERVAL=0``), one
after the other in the same run.

    .venv/bin/python -m bench.idle [--seconds 240] [--settle 60]

Each `up` starts on SQLite (as it ships), is left ``--settle`` seconds to finish its start, then
the CPU of its processes (``bench.intake.cpu_seconds``: by part, the flow run processes the runner
started and reaped as ``flow-runs``) is read over ``--seconds``, with the flow runs that ended in
that window (from the Prefect API).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import Row, table, write_results
from bench.intake import Up, cpu_seconds

VARIANTS = (("inline (as `up` ships)", {}), ("a process per run", {"CHARTERFLOW_INLINE_MAX_INTERVAL": "0"}))


def measure(env: dict[str, str], *, seconds: float, settle: float) -> dict[str, Any]:
    """One idle `up` with ``env``: CPU seconds per minute by part, and the runs that ended."""
    with tempfile.TemporaryDirectory(prefix="charterflow-bench-idle-") as tmp:
        up = Up(Path(tmp), extra_env=env)
        try:
            info = up.wait_ready()
            time.sleep(settle)
            before, started = cpu_seconds(up.home, None), time.monotonic()
            since = time.time()
            time.sleep(seconds)
            after, elapsed = cpu_seconds(up.home, None), time.monotonic() - started
            runs = _runs_ended_since(info["api_url"], since)
        finally:
            up.stop()
    per_minute = {name: (after.get(name, 0.0) - used) * 60 / elapsed for name, used in sorted(before.items())}
    return {"cpu_s_per_minute": per_minute, "total": sum(per_minute.values()), "runs": runs, "seconds": elapsed}


def _runs_ended_since(api: str, since: float) -> dict[str, int]:
    """Flow runs that ended in the window, by flow name."""
    start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(since))
    found = httpx.post(
        f"{api.rstrip('/')}/flow_runs/filter",
        json={"flow_runs": {"end_time": {"after_": start}}, "limit": 200},
        timeout=30,
    ).json()
    names = {f["id"]: f["name"] for f in httpx.post(f"{api.rstrip('/')}/flows/filter", json={}, timeout=30).json()}
    out: dict[str, int] = {}
    for run in found:
        name = names.get(run["flow_id"], "?")
        out[name] = out.get(name, 0) + 1
    return out


def rows(results: dict[str, Any]) -> list[Row]:
    inline, separate = (results["variants"][label] for label, _ in VARIANTS)
    out = [
        Row(
            "idle stack: CPU s per minute",
            f"{inline['total']:.2f} s",
            "",
            None,
            f"a process per run: {separate['total']:.2f} s",
        ),
        Row(
            "  of it: the workers process",
            f"{inline['cpu_s_per_minute'].get('workers', 0.0):.2f} s",
            "",
            None,
            f"{separate['cpu_s_per_minute'].get('workers', 0.0):.2f} s",
        ),
        Row(
            "  of it: flow run processes",
            f"{inline['cpu_s_per_minute'].get('flow-runs', 0.0):.2f} s",
            "",
            None,
            f"{separate['cpu_s_per_minute'].get('flow-runs', 0.0):.2f} s",
        ),
    ]
    for label, _ in VARIANTS:
        runs = results["variants"][label]["runs"]
        out.append(Row(f"flow runs ended, {label}", ", ".join(f"{k} {v}" for k, v in sorted(runs.items())) or "none"))
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=240.0, help="the measured window of each `up`")
    parser.add_argument("--settle", type=float, default=60.0, help="seconds after `up` is ready, before it")
    parser.add_argument("--out", type=Path, default=None, help="the JSON file (default bench/results/idle.json)")
    args = parser.parse_args(argv)
    results: dict[str, Any] = {
        "config": {"seconds": args.seconds, "settle": args.settle},
        "variants": {label: measure(env, seconds=args.seconds, settle=args.settle) for label, env in VARIANTS},
    }
    results["table"] = [r.as_dict() for r in rows(results)]
    path = write_results("idle", results, out=args.out)
    print(table(f"the idle stack's CPU over {args.seconds:g} s (baseline: a process per run, same run)", rows(results)))
    print(f"results: {path}")
    return results


if __name__ == "__main__":
    main()
