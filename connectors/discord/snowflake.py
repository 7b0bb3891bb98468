"""Discord snowflakes: ids that carry their creation time.

``(id >> 22) + 1420070400000`` is the creation time in Unix milliseconds, so
``(unix_ms - 1420070400000) << 22`` is the smallest id of a moment — what ``min_id``/``after``
take (https://discord.com/developers/docs/reference#snowflakes).
"""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["DISCORD_EPOCH_MS", "snowflake_at", "time_of"]

DISCORD_EPOCH_MS = 1420070400000


def snowflake_at(moment: datetime) -> str:
    """The smallest snowflake created at ``moment`` (timezone-aware), as a string."""
    ms = int(moment.timestamp() * 1000)
    return str(max(ms - DISCORD_EPOCH_MS, 0) << 22)


def time_of(snowflake: str | int) -> datetime:
    """When ``snowflake`` was created (UTC)."""
    ms = (int(snowflake) >> 22) + DISCORD_EPOCH_MS
    return datetime.fromtimestamp(ms / 1000, tz=UTC)
