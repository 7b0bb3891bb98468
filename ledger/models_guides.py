"""Community guides and training sessions (R-GUIDE, issue 23, migration 0022).

``guide_versions``: one row per version of a guide's text (its ``slug`` is the file name), with
the digest and the text as published, numbered from 1; a new row only when the text changed.
``guide_posts``: where a guide is published, one row per guide per platform instance (R-GUIDE:
one post per guide per platform, edited in place): the messages it holds, how it fit the
platform (``whole``, ``split``, ``linked``) and the version shown there.
``training_sessions``: a community training session on a guide, one per (guide, start), with
the events and announcements made for it on each platform. No personal data.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ledger.models import Base


class GuideVersion(Base):
    """One version of a guide's text."""

    __tablename__ = "guide_versions"
    __table_args__ = (UniqueConstraint("slug", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), index=True)
    version: Mapped[int]
    digest: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(100))
    body: Mapped[str] = mapped_column(Text)
    recorded_at: Mapped[datetime]


class GuidePost(Base):
    """A guide as published on one platform instance (edited in place when its text changes)."""

    __tablename__ = "guide_posts"
    __table_args__ = (UniqueConstraint("slug", "platform", "instance"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), index=True)
    platform: Mapped[str] = mapped_column(String(24))
    instance: Mapped[str] = mapped_column(String(255))
    version: Mapped[int]
    mode: Mapped[str] = mapped_column(String(8))
    # [{"id", "thread_id", "url"}, ...]: the first is where people open the guide.
    messages: Mapped[dict[str, Any]]
    url: Mapped[str | None] = mapped_column(String(500))
    published_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class TrainingSession(Base):
    """A community training session on a guide (R-GUIDE)."""

    __tablename__ = "training_sessions"
    __table_args__ = (UniqueConstraint("slug", "starts_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), index=True)
    title: Mapped[str] = mapped_column(String(100))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    location: Mapped[str | None] = mapped_column(String(100))
    # {platform: {"event": id, "url": ..., "announcement": id}}
    events: Mapped[dict[str, Any]]
    created_by: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime]
