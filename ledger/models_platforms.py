"""The approved community platforms' history (R-PLATFORM, issue 20).

``platform_states``: one row per change of a platform's state, never updated: the newest row of
a platform is its current state (``approved``, ``trial`` until ``trial_ends_at``, ``retiring``,
``retired``). Each row says since when, who decided (``board:<source>``, ``charter``,
``operator``), under which proposal, and a short note; ``first_admin_at`` carries, from the row
that first recorded it, when a trial platform's first admin was granted (R-ADMIN-1/2 count it
from then). No personal data: platform names, ids and dates.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ledger.models import Base


class PlatformStateRow(Base):
    """One step of a platform's history; the newest row per platform is its state."""

    __tablename__ = "platform_states"
    __table_args__ = (Index("ix_platform_states_platform_id", "platform", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    platform: Mapped[str] = mapped_column(String(24))
    state: Mapped[str] = mapped_column(String(16))
    trial_ends_at: Mapped[datetime | None]
    first_admin_at: Mapped[datetime | None]
    since: Mapped[datetime]
    decided_by: Mapped[str] = mapped_column(String(80))
    proposal_id: Mapped[int | None] = mapped_column(ForeignKey("proposals.id"))
    note: Mapped[str | None] = mapped_column(Text)
