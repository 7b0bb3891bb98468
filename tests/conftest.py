"""Shared fixtures: one real Prefect server for the whole session (``prefect_server``); how
``make test`` spreads the tests over pytest-xdist workers; the measurements' closing summary."""

from __future__ import annotations

import os

import pytest

# Fixtures every directory may use (tests/support/__init__.py lists them); helpers are imported
# from tests.support, never from another conftest.
pytest.register_assert_rewrite("tests.support")
pytest_plugins = [
    "tests.support.prefect",
    "tests.support.membership",
    "tests.support.ledger",
    "tests.support.board",
    "tests.support.reports",
]

_MEASUREMENTS: list[str] = []

# A developer's own `charterflow up` (same CHARTERFLOW_HOME) must not steer the CLI under test;
# the tests of that (tests/cli/test_stack.py) turn it on for their own commands.
os.environ.setdefault("CHARTERFLOW_USE_UP", "0")
# Every test server is on loopback: a proxy from the environment must not come between.
for _var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
    os.environ.pop(_var, None)
os.environ["NO_PROXY"] = "127.0.0.1,localhost"


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under ``make test`` (``-n 2 --dist loadgroup --no-loadscope-reorder``): a module's tests
    stay on one worker (its module fixtures are set up once), and the reliability suite is one
    group (its tests share session fixtures; its secret scan reads what the others produced),
    listed first because it is the longest, so it starts at once on one worker while the other
    worker runs the rest."""
    for item in items:
        path = item.nodeid.split("::", 1)[0]
        item.add_marker(pytest.mark.xdist_group("reliability" if path.startswith("tests/reliability/") else path))
    items.sort(key=lambda item: not item.nodeid.startswith("tests/reliability/"))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call":
        _MEASUREMENTS.extend(
            f"{report.nodeid.split('::')[-1].split('@')[0]}: {text}"
            for name, text in report.user_properties
            if str(name).startswith("measure:")
        )


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Repeat the measurements (``report`` fixture) at the end of the run."""
    if _MEASUREMENTS:
        terminalreporter.section("measurements")
        for line in _MEASUREMENTS:
            terminalreporter.write_line(line)
