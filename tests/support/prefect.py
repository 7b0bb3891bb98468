"""``prefect_server``: one real Prefect server for the whole session (a plugin module, so the
Matrix plugin's tests in plugins/charterflow-matrix/tests share it too)."""

from __future__ import annotations

import logging

import pytest


@pytest.fixture(scope="session")
def prefect_server():
    """A real temporary Prefect server (``prefect_test_harness``), started once per session."""
    # lazy: start-up: Prefect, for the test runs that never start its server (this module is a plugin)
    from prefect.testing.utilities import prefect_test_harness

    from flows.serving import without_flow_heartbeats  # lazy: start-up: Prefect's runner, as above

    # As the workers run flows (the harness takes the settings it starts with for every thread).
    with without_flow_heartbeats(), prefect_test_harness(server_startup_timeout=120):
        yield
    # The harness's server logs its own shutdown (cancelled tasks) at ERROR; silence what is
    # left of it so the test output stays clean.
    logging.getLogger("prefect").handlers.clear()
