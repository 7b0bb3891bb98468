"""Platform roles tables added by issue 9: moderator training acknowledgements (R-TRAIN) and the
drift audit's reports (R-ADMIN-3).

``role_training``: one row per (person, platform) that was sent a moderation guide: when, under
which decision, the guide's digest, the DM's id, when it was acknowledged, and the reminders.
``role_drift_reports``: each report the hourly drift audit sent (``drift``) or the "resolved"
note after it (``resolved``); the latest row's fingerprint says what was last reported, so the
same drift is reported once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ledger.models import Base


class RoleTraining(Base):
    """The moderation guide of ``platform`` sent to a new moderator, and its acknowledgement."""

    __tablename__ = "role_training"
    __table_args__ = (UniqueConstraint("person_id", "platform"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    platform: Mapped[str] = mapped_column(String(24))
    # The ledger decision that made them a moderator (``roles-change:…``, ``roles-apply-…``).
    decision_ref: Mapped[str] = mapped_column(String(200))
    # sha256 of the rendered guide, so the record says which text was acknowledged.
    guide_digest: Mapped[str] = mapped_column(String(80))
    sent_at: Mapped[datetime | None]
    message_ref: Mapped[str | None] = mapped_column(String(200))
    acknowledged_at: Mapped[datetime | None]
    reminders: Mapped[int] = mapped_column(default=0)
    reminded_at: Mapped[datetime | None]
    created_at: Mapped[datetime]


class RoleDriftReport(Base):
    """One drift report (or the "resolved" note after one) sent to the WG's admins."""

    __tablename__ = "role_drift_reports"

    id: Mapped[int] = mapped_column(primary_key=True)
    status: Mapped[str] = mapped_column(String(16))  # "drift" | "resolved"
    fingerprint: Mapped[str] = mapped_column(String(80))
    reported_at: Mapped[datetime] = mapped_column(index=True)
    findings: Mapped[int] = mapped_column(default=0)
    # The findings and the repair plan as reported (personal data: handles; never in the audit).
    summary: Mapped[dict[str, Any]] = mapped_column(default=dict)


class AdminRevocation(Base):
    """R-ADMIN-4: a former member's admin privileges on ``platform`` whose revocation waits
    because it would leave the platform with fewer counted admins than R-ADMIN-2 asks.

    ``status``: ``waiting`` (the WG is reminded), ``done`` (revoked once the platform had enough
    counted admins again), ``cancelled`` (the person is a member again, or no longer holds
    admin there). Ids and counts only: no handles."""

    __tablename__ = "admin_revocations"
    __table_args__ = (UniqueConstraint("person_id", "platform", "membership_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    platform: Mapped[str] = mapped_column(String(24))
    membership_id: Mapped[int] = mapped_column(ForeignKey("memberships.id"))
    status: Mapped[str] = mapped_column(String(16), index=True)
    created_at: Mapped[datetime]
    reminders: Mapped[int] = mapped_column(default=0)
    reminded_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
