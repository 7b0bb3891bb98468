from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from rules import default_charter

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)


def days_ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


@pytest.fixture(scope="session")
def charter():
    return default_charter()
