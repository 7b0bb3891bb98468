"""Moderation log tables (issue 13): actions read from each platform's audit log, normalised.

One row per platform entry (``platform`` + ``entry_id`` unique: the platform's own id, so a
re-read never stores it twice); ``cursors`` remember how far each platform's log was read.
Moderation data is for moderators and WG members only (never in a public output).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ledger.models import Base


class ModerationAction(Base):
    """One moderation action on a platform, normalised.

    ``action`` is one of ``ledger.moderation.ACTIONS`` (``other`` for an entry type we do not
    know; ``raw`` keeps the entry as the platform sent it)."""

    __tablename__ = "moderation_actions"
    __table_args__ = (UniqueConstraint("platform", "entry_id"),
                      Index("ix_moderation_actions_occurred_at", "occurred_at"))

    id: Mapped[int] = mapped_column(primary_key=True)
    platform: Mapped[str] = mapped_column(String(24))
    entry_id: Mapped[str] = mapped_column(String(80))
    action: Mapped[str] = mapped_column(String(40))
    platform_action: Mapped[str] = mapped_column(String(80))
    target_platform_id: Mapped[str | None] = mapped_column(String(80))
    target_username: Mapped[str | None] = mapped_column(String(200))
    target_person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"), index=True)
    moderator_platform_id: Mapped[str | None] = mapped_column(String(80))
    moderator_username: Mapped[str | None] = mapped_column(String(200))
    reason: Mapped[str | None] = mapped_column(Text)
    duration_seconds: Mapped[int | None]
    link: Mapped[str | None] = mapped_column(String(500))
    occurred_at: Mapped[datetime]
    recorded_at: Mapped[datetime]
    raw: Mapped[dict[str, Any]] = mapped_column(default=dict)


class ModerationCursor(Base):
    """How far a platform's moderation log has been read (the last entry id seen)."""

    __tablename__ = "moderation_cursors"

    platform: Mapped[str] = mapped_column(String(24), primary_key=True)
    last_entry_id: Mapped[str | None] = mapped_column(String(80))
    updated_at: Mapped[datetime]
