"""What a flow run costs with Prefect's flow-run heartbeats and without them.

    .venv/bin/python -m bench.flow_runs [--runs 10]

An application's intake (``flows.membership.intake``: the flow and its two subflows) against
the three sandboxes and a real Prefect server (``prefect_test_harness``), ``--runs`` times with
Prefect's default heartbeats (``flows.heartbeat_frequency``, 180 s) and as many times under
``flows.serving.without_flow_heartbeats`` (as the workers run flows), alternated so that the
machine's noise falls on both. Prints the median seconds per intake of each and their ratio;
results go to ``bench/results/flow-runs.json``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from prefect.settings import Settings, temporary_settings

from bench.common import Row, median, table, write_results
from flows.serving import without_flow_heartbeats
from tests.reliability.world import APPLICANTS, stack
from tests.support.membership import NOW, apply_proven


def measure(runs: int) -> dict[str, list[float]]:
    """Seconds per intake, ``runs`` of each kind, against the Prefect server configured now."""
    default = Settings().flows.heartbeat_frequency  # what a process without the helper has
    seconds: dict[str, list[float]] = {"default": [], "off": []}
    with stack(Path(tempfile.mkdtemp(prefix="bench-flow-runs-"))) as s:
        apply_proven(s.world, APPLICANTS[0], discord=True, now=NOW)  # imports and connections warm
        for n in range(runs * 2):
            kind = ("default", "off")[n % 2]
            chosen = (
                without_flow_heartbeats()
                if kind == "off"
                else temporary_settings(updates={"flows.heartbeat_frequency": default})
            )
            with chosen:
                began = time.perf_counter()
                apply_proven(s.world, APPLICANTS[1 + n], discord=True, now=NOW + timedelta(hours=1))
                seconds[kind].append(time.perf_counter() - began)
    return seconds


def rows(seconds: dict[str, list[float]]) -> list[Row]:
    default, off = median(seconds["default"]), median(seconds["off"])
    return [
        Row(
            "an intake (3 flow runs), heartbeats off, median",
            f"{off:.2f} s",
            baseline=f"Prefect's default heartbeats {default:.2f} s ({default / off:.1f}x)",
        )
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--runs", type=int, default=10, help=f"intakes of each kind (at most {len(APPLICANTS) // 2 - 1})"
    )
    args = parser.parse_args(argv)
    # lazy: only the script starts a server of its own (the smoke test has the session's)
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        seconds = measure(args.runs)
    found = rows(seconds)
    print(table("Flow runs with and without Prefect's heartbeats", found))
    write_results("flow-runs", {"seconds": seconds, "rows": [r.as_dict() for r in found]})


if __name__ == "__main__":
    main()
