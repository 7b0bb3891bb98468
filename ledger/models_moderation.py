"""Moderation log tables (issue 13): actions read from each platform's audit log, normalised.

One row per platform entry (``platform`` + ``entry_id`` unique: ``<instance>:<the platform's own
id>``, so a re-read never stores it twice and another Forum's or guild's entry 17 is not taken
for ours); ``cursors`` remember how far each platform's log was read, and on which instance.
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
    __table_args__ = (
        UniqueConstraint("platform", "entry_id"),
        Index("ix_moderation_actions_occurred_at", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    platform: Mapped[str] = mapped_column(String(24))
    entry_id: Mapped[str] = mapped_column(String(300))
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
    """How far a platform's moderation log has been read (the last entry id seen), and on which
    instance: a cursor of another Forum or guild means nothing here (read from the start)."""

    __tablename__ = "moderation_cursors"

    platform: Mapped[str] = mapped_column(String(24), primary_key=True)
    instance: Mapped[str | None] = mapped_column(String(255))
    last_entry_id: Mapped[str | None] = mapped_column(String(80))
    updated_at: Mapped[datetime]


class ModerationLink(Base):
    """Two platform accounts of one person, as a moderator confirmed (or a suggestion waiting
    for that). Only ``confirmed`` links join accounts; a ``suggested`` one is never used.

    The pair is stored in a fixed order (``platform_a``/``account_a`` sorts first), so a pair
    has one row whichever side it was found from."""

    __tablename__ = "moderation_links"
    __table_args__ = (UniqueConstraint("platform_a", "account_a", "platform_b", "account_b"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    platform_a: Mapped[str] = mapped_column(String(24))
    account_a: Mapped[str] = mapped_column(String(80))
    username_a: Mapped[str | None] = mapped_column(String(200))
    platform_b: Mapped[str] = mapped_column(String(24))
    account_b: Mapped[str] = mapped_column(String(80))
    username_b: Mapped[str | None] = mapped_column(String(200))
    basis: Mapped[str] = mapped_column(String(24))  # username | email | moderator
    status: Mapped[str] = mapped_column(String(16), index=True)  # suggested | confirmed | rejected
    suggested_by_action_id: Mapped[int | None] = mapped_column(ForeignKey("moderation_actions.id"))
    created_at: Mapped[datetime]
    decided_by: Mapped[str | None] = mapped_column(String(200))
    decided_at: Mapped[datetime | None]


class ModerationAlert(Base):
    """The alert about a severe action, in one other platform's moderator space (one per action
    and platform), and who acknowledged it there."""

    __tablename__ = "moderation_alerts"
    __table_args__ = (UniqueConstraint("action_id", "platform"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    action_id: Mapped[int] = mapped_column(ForeignKey("moderation_actions.id"))
    platform: Mapped[str] = mapped_column(String(24))
    linked_account: Mapped[str | None] = mapped_column(String(80))
    linked_username: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime]
    channel_id: Mapped[str | None] = mapped_column(String(80))
    message_id: Mapped[str | None] = mapped_column(String(80))
    posted_at: Mapped[datetime | None]
    acknowledged_by: Mapped[str | None] = mapped_column(String(200))
    acknowledged_at: Mapped[datetime | None]
