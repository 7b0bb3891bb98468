"""Fixtures for the Slack tests: the Slack sandbox on 127.0.0.1 in scaled time
(tests/support/slack.py holds the time factor and the stand-in gateway)."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.slack.sandbox import SlackSandbox
from tests.support.slack import TIME_FACTOR


@pytest.fixture
def slack(serve: Any, request: pytest.FixtureRequest) -> Any:
    """The Slack sandbox (scaled time) served on 127.0.0.1: the default seed, or the one a test
    names with ``@pytest.mark.parametrize("slack", [seed], indirect=True)``."""
    return serve(SlackSandbox(seed=getattr(request, "param", None), time_factor=TIME_FACTOR))
