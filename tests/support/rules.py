"""The rules tests' fixed clock."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)


def days_ago(days: float) -> datetime:
    return NOW - timedelta(days=days)
