"""Common room tables (R-COMMS, issue 22): what the bridge relayed where.

``commons_messages`` holds one row per message the bridge knows: a source (a person's message in
a bridged room, ``origin_id`` null) or a copy the bridge posted (``origin_id`` its source). A
message is named by platform, instance and the platform's id (unique), so a copy read back from
a room is known as a copy, and a redelivered source is recorded once. No message text is kept:
a digest of it says when an edit must follow. ``commons_conversations`` joins the threads that
carry one conversation on each platform (a Forum topic, a Discord message's thread:
``commons_threads``); ``commons_cursors`` remember how far each polled room was read.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ledger.models import Base


class CommonsConversation(Base):
    """One conversation of a bridge, whichever platform it was opened on."""

    __tablename__ = "commons_conversations"

    id: Mapped[int] = mapped_column(primary_key=True)
    bridge: Mapped[str] = mapped_column(String(40))
    opened_on: Mapped[str] = mapped_column(String(24))
    created_at: Mapped[datetime]


class CommonsThread(Base):
    """Where a conversation lives on one platform (a topic id, a thread id)."""

    __tablename__ = "commons_threads"
    __table_args__ = (UniqueConstraint("platform", "instance", "thread_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("commons_conversations.id"), index=True)
    platform: Mapped[str] = mapped_column(String(24))
    instance: Mapped[str] = mapped_column(String(255))
    room: Mapped[str] = mapped_column(String(200))
    thread_id: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime]


class CommonsMessage(Base):
    """A source message or one of its copies. ``state``: ``live``, ``deleted`` (gone where it
    was written, or its copy deleted after it), ``refused`` (a platform would not take the copy:
    ``note`` says why and the common room was told) or ``erased`` (R-PRIVACY-2)."""

    __tablename__ = "commons_messages"
    __table_args__ = (
        UniqueConstraint("platform", "instance", "message_id"),
        Index("ix_commons_messages_author", "platform", "author_platform_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    bridge: Mapped[str] = mapped_column(String(40))
    platform: Mapped[str] = mapped_column(String(24))
    instance: Mapped[str] = mapped_column(String(255))
    message_id: Mapped[str] = mapped_column(String(80))
    room: Mapped[str] = mapped_column(String(200))
    thread_id: Mapped[str | None] = mapped_column(String(80))
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("commons_conversations.id"), index=True)
    origin_id: Mapped[int | None] = mapped_column(ForeignKey("commons_messages.id"), index=True)
    author_platform_id: Mapped[str | None] = mapped_column(String(80))
    author_username: Mapped[str | None] = mapped_column(String(200))
    content_hash: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class CommonsCursor(Base):
    """How far a polled room (a channel, a thread) was read: the last message id relayed or
    passed over, advanced only once what it covers is recorded."""

    __tablename__ = "commons_cursors"

    bridge: Mapped[str] = mapped_column(String(40), primary_key=True)
    platform: Mapped[str] = mapped_column(String(24), primary_key=True)
    room: Mapped[str] = mapped_column(String(200), primary_key=True)
    instance: Mapped[str] = mapped_column(String(255))
    last_id: Mapped[str | None] = mapped_column(String(80))
    updated_at: Mapped[datetime]
