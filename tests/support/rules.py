"""The rules tests' fixed clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def days_ago(days: float) -> datetime:
    return NOW - timedelta(days=days)
