"""Fixtures of the rules tests: the shipped charter (once per session)."""

from __future__ import annotations

import pytest

from rules import default_charter


@pytest.fixture(scope="session")
def charter():
    return default_charter()
