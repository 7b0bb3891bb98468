"""Quarterly report and meeting tables added by issue 10 (R-REPORT, R-MEET).

``reports``: one row per quarter. ``facts`` holds the quarter's aggregated figures (counts, idea
titles and links, proposal titles; never an applicant's answer, a vote or a sanctioned person's
name) from which the three texts and the charts are rendered, so what is published is exactly
the draft a member approved (``digest`` is the hash of the rendered texts).
``meetings``: one row per meeting, with the platform event and the reminder once sent.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import Enum, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from ledger.models import Base


class ReportStatus(enum.StrEnum):
    """A quarterly report's state."""

    DRAFT = "draft"  # rendered, waiting for a member's approval
    APPROVED = "approved"  # approved; publishing (a re-run finishes what is missing)
    PUBLISHED = "published"  # every output posted


class Report(Base):
    """The quarterly report of one quarter (``2026Q3``)."""

    __tablename__ = "reports"

    id: Mapped[int] = mapped_column(primary_key=True)
    quarter: Mapped[str] = mapped_column(String(7), unique=True)
    status: Mapped[ReportStatus] = mapped_column(
        Enum(
            ReportStatus,
            native_enum=False,
            create_constraint=False,
            validate_strings=True,
            length=24,
            values_callable=lambda e: [m.value for m in e],
        )
    )
    facts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    digest: Mapped[str] = mapped_column(String(64))
    drafted_at: Mapped[datetime]
    approved_by_person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    approved_at: Mapped[datetime | None]
    approval_source: Mapped[str | None] = mapped_column(String(24))
    published_at: Mapped[datetime | None]


class Meeting(Base):
    """One quarterly meeting (R-MEET): its time, the platform's event, the reminder."""

    __tablename__ = "meetings"

    id: Mapped[int] = mapped_column(primary_key=True)
    starts_at: Mapped[datetime] = mapped_column(unique=True)
    ends_at: Mapped[datetime]
    platform: Mapped[str] = mapped_column(String(24))
    title: Mapped[str] = mapped_column(String(100))
    event_id: Mapped[str | None] = mapped_column(String(80))
    created_at: Mapped[datetime]
    event_created_at: Mapped[datetime | None]
    reminded_at: Mapped[datetime | None]
