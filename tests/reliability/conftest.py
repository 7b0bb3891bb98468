"""Fixtures of the reliability suite (``tests/reliability/README.md``).

``lifecycle_runs`` (session) plays the full lifecycle twice at the same time, without faults in a
subprocess and with injected faults in this process, and keeps both runs' final states; the
``prefect_outage`` scenario runs on a thread meanwhile. ``evidence`` collects every configured
secret and everything the tests produced (logs, audit entries, sandbox states) for the scan.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from prefect.settings import PREFECT_API_URL

from tests.procs import start, stop, subprocess_env
from tests.reliability.play import Played, play


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "reliability: the reliability suite (faults, crashes, outages); part of make test, bounded to 10 minutes",
    )


@dataclass
class Evidence:
    """Everything the suite's secret scan reads: texts by origin, and the secrets configured."""

    secrets: dict[str, str] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)  # the suite's first fixture

    def add_secrets(self, found: dict[str, str], *, prefix: str) -> None:
        for name, value in found.items():
            if value:
                self.secrets[f"{prefix} {name}"] = str(value)

    def add_text(self, origin: str, text: str) -> None:
        self.texts[origin] = self.texts.get(origin, "") + text


@pytest.fixture(scope="session")
def evidence() -> Evidence:
    return Evidence()


@pytest.fixture(scope="session")
def prefect_outage(tmp_path_factory: pytest.TempPathFactory, evidence: Evidence) -> Any:
    """The Prefect outage scenario (``test_prefect_outage.py``), started on a thread now: it
    mostly waits, so it overlaps the lifecycle runs."""
    # lazy: cycle: tests/reliability/test_prefect_outage.py uses the mark this conftest registers
    from tests.reliability.test_prefect_outage import Outage

    outage = Outage(tmp_path_factory.mktemp("outage"), evidence).start()
    yield outage
    outage.thread.join(timeout=600)


@pytest.fixture(scope="session")
def lifecycle_runs(
    prefect_server: None, tmp_path_factory: pytest.TempPathFactory, evidence: Evidence, prefect_outage: Any
) -> Iterator[tuple[Played, Played]]:
    """The clean run (in a subprocess, against the same Prefect server) and the faulted run (in
    this process), played at the same time."""
    tmp = tmp_path_factory.mktemp("lifecycle")
    out, log = tmp / "clean.json", tmp / "clean.log"
    env = subprocess_env(
        PREFECT_API_URL=str(PREFECT_API_URL.value()), PREFECT_HOME=str(tmp / "prefect"), TMPDIR=str(tmp)
    )
    clean_process = start([sys.executable, "-m", "tests.reliability.play", str(out)], env, log)
    try:
        faulted = play(tmp / "faulted", faults=True)
        try:
            clean_process.wait(timeout=900)
        except subprocess.TimeoutExpired:
            pass
        assert clean_process.returncode == 0, log.read_text(errors="replace")[-5000:]
    finally:
        stop(clean_process)
    clean = Played.from_json(out.read_text())
    for name, played in (("clean run", clean), ("faulted run", faulted)):
        evidence.add_secrets(played.secrets, prefix=name)
        for origin, text in played.texts.items():
            evidence.add_text(f"{name} {origin}", text)
        print(
            f"\n{name}: {played.run.seconds:.1f} s, phases {played.run.phases}, "
            f"seconds by kind of step {played.run.timings}, "
            f"steps run again: {played.run.reruns or 'none'}",
            flush=True,
        )
    evidence.add_text("clean run subprocess output", log.read_text(errors="replace"))
    yield clean, faulted
