"""Community reports (issue 22, R-SAFE-1/2/3): one queue for every platform and the web form.

A row is one report: who reported (a person when the ledger knows the account, else the
platform account; the web form may be anonymous), what (a message, a post or a person, with the
platform's ids and the content the platform still gave when the report was made), whether it is
a Code of Conduct matter, where it is in the queue (``open``/``claimed``/``resolved``/``referred``),
the outcome and the times the figures (R-SAFE-3) read. ``source_key`` is unique: a redelivered
interaction, webhook or form post makes no second report. ``reporter_key`` groups one reporter's
reports for the rate limit (``<platform>:<account>`` or ``ip:<digest>``; never a raw address).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ledger.models import Base


class SafetyReport(Base):
    """One community report (see the module docstring)."""

    __tablename__ = "safety_reports"
    __table_args__ = (
        Index("ix_safety_reports_reporter_key_created_at", "reporter_key", "created_at"),
        Index("ix_safety_reports_state", "state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    source_key: Mapped[str] = mapped_column(String(300), unique=True)
    via: Mapped[str] = mapped_column(String(24))  # discord, discourse, form, matrix, ...
    platform: Mapped[str] = mapped_column(String(24))  # the platform the target is on
    reporter_key: Mapped[str] = mapped_column(String(200))
    reporter_person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"), index=True)
    reporter_account: Mapped[str | None] = mapped_column(String(80))
    reporter_username: Mapped[str | None] = mapped_column(String(200))
    target_kind: Mapped[str] = mapped_column(String(16))
    target_person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"), index=True)
    target_account: Mapped[str | None] = mapped_column(String(80))
    target_username: Mapped[str | None] = mapped_column(String(200))
    target_message_id: Mapped[str | None] = mapped_column(String(80))
    target_channel_id: Mapped[str | None] = mapped_column(String(80))
    target_link: Mapped[str | None] = mapped_column(String(500))
    content: Mapped[str | None] = mapped_column(Text)
    content_gone: Mapped[bool] = mapped_column(default=False)
    reason: Mapped[str | None] = mapped_column(Text)
    coc: Mapped[bool] = mapped_column(default=False)
    state: Mapped[str] = mapped_column(String(16), default="open")
    claimed_by: Mapped[str | None] = mapped_column(String(200))
    claimed_at: Mapped[datetime | None]
    first_response_at: Mapped[datetime | None]
    resolved_by: Mapped[str | None] = mapped_column(String(200))
    resolved_at: Mapped[datetime | None]
    outcome: Mapped[str | None] = mapped_column(String(24))
    referred_by: Mapped[str | None] = mapped_column(String(200))
    referred_at: Mapped[datetime | None]
    coc_outcome: Mapped[str | None] = mapped_column(Text)
    coc_outcome_at: Mapped[datetime | None]
    reminded_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
