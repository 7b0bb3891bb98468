"""Queries and writes of the platform roles tables (issue 9): moderator training (R-TRAIN), the
drift audit's reports (R-ADMIN-3) and admin revocations that wait (R-ADMIN-4, issue 18). Each
write carries its audit entry in the same transaction; audit payloads hold ids, platform names,
counts and digests, never handles."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledger import audit
from ledger.models import Person
from ledger.models_roles import AdminRevocation, RoleDriftReport, RoleTraining
from ledger.types import utcnow

__all__ = [
    "acknowledge_training",
    "record_revocation_reminder",
    "resolve_revocation",
    "revocations",
    "wait_revocation",
    "latest_drift_report",
    "record_drift_report",
    "record_training_reminder",
    "record_training_sent",
    "start_training",
    "training_of",
    "training_rows",
]


def _at(at: datetime | None) -> datetime:
    if at is None:
        return utcnow()
    if at.tzinfo is None:
        raise ValueError("pass a timezone-aware datetime")
    return at


# --- training ------------------------------------------------------------------------------


def training_of(session: Session, *, person_id: int, platform: str) -> RoleTraining | None:
    """The person's training record on ``platform``, if they were ever sent the guide."""
    return session.scalar(
        select(RoleTraining).where(RoleTraining.person_id == person_id, RoleTraining.platform == platform)
    )


def start_training(
    session: Session,
    *,
    person_id: int,
    platform: str,
    decision_ref: str,
    guide_digest: str,
    actor: str,
    at: datetime | None = None,
) -> tuple[RoleTraining, bool]:
    """The training record of a new moderator, created once per (person, platform); returns
    (row, created). A moderator granted again keeps their record (and acknowledgement)."""
    at = _at(at)
    row = training_of(session, person_id=person_id, platform=platform)
    if row is not None:
        return row, False
    row = RoleTraining(
        person_id=person_id,
        platform=platform,
        decision_ref=decision_ref[:200],
        guide_digest=guide_digest,
        reminders=0,
        created_at=at,
    )
    session.add(row)
    session.flush()
    audit.append(
        session,
        actor=actor,
        action="roles.training-started",
        subject=f"person:{person_id}",
        at=at,
        payload={"training": row.id, "platform": platform, "decision": decision_ref, "guide": guide_digest},
    )
    return row, True


def record_training_sent(
    session: Session, row: RoleTraining, *, message_ref: str, actor: str, at: datetime | None = None
) -> RoleTraining:
    """The guide reached the moderator (``message_ref``: the platform's message id)."""
    at = _at(at)
    if row.sent_at is not None:
        return row
    row.sent_at, row.message_ref = at, message_ref[:200]
    session.flush()
    audit.append(
        session,
        actor=actor,
        action="roles.training-sent",
        subject=f"person:{row.person_id}",
        at=at,
        payload={"training": row.id, "platform": row.platform},
    )
    return row


def acknowledge_training(session: Session, row: RoleTraining, *, actor: str, at: datetime | None = None) -> bool:
    """Record the acknowledgement (the first one counts); True when this call recorded it."""
    at = _at(at)
    if row.acknowledged_at is not None:
        return False
    row.acknowledged_at = at
    session.flush()
    audit.append(
        session,
        actor=actor,
        action="roles.training-acknowledged",
        subject=f"person:{row.person_id}",
        at=at,
        payload={"training": row.id, "platform": row.platform, "guide": row.guide_digest},
    )
    return True


def record_training_reminder(
    session: Session, row: RoleTraining, *, number: int, actor: str, at: datetime | None = None
) -> bool:
    """Record reminder ``number`` (1, 2, …) once; True when this call recorded it."""
    return _remind(session, row, "training", number=number, actor=actor, at=at)


def _remind(
    session: Session,
    row: RoleTraining | AdminRevocation,
    kind: str,
    *,
    number: int,
    actor: str,
    at: datetime | None,
) -> bool:
    """Reminder ``number`` of a training (``kind`` ``training``) or an admin revocation
    (``revocation``) recorded once, with its ``roles.<kind>-reminded`` audit entry."""
    at = _at(at)
    if row.reminders >= number:
        return False
    row.reminders, row.reminded_at = number, at
    session.flush()
    action = "roles.training-reminded" if kind == "training" else "roles.admin-revocation-reminded"
    audit.append(
        session,
        actor=actor,
        action=action,
        subject=f"person:{row.person_id}",
        at=at,
        payload={kind: row.id, "platform": row.platform, "reminder": number},
    )
    return True


def training_rows(session: Session) -> list[tuple[RoleTraining, str]]:
    """Every training record with the person's handle, by platform then handle."""
    rows = session.execute(
        select(RoleTraining, Person.handle)
        .join(Person, Person.id == RoleTraining.person_id)
        .order_by(RoleTraining.platform, Person.handle)
    ).all()
    return [(r, h) for r, h in rows]


# --- drift reports -------------------------------------------------------------------------


def latest_drift_report(session: Session) -> RoleDriftReport | None:
    """The last report (drift or resolved) the audit sent."""
    return session.scalar(select(RoleDriftReport).order_by(RoleDriftReport.id.desc()).limit(1))


def record_drift_report(
    session: Session,
    *,
    status: str,
    fingerprint: str,
    findings: int,
    summary: dict[str, Any],
    actor: str,
    at: datetime | None = None,
) -> RoleDriftReport:
    """Record a report before it is sent: ``drift`` (with its findings' fingerprint) or
    ``resolved`` (the drift last reported is gone)."""
    if status not in ("drift", "resolved"):
        raise ValueError("status is 'drift' or 'resolved'")
    at = _at(at)
    row = RoleDriftReport(status=status, fingerprint=fingerprint, reported_at=at, findings=findings, summary=summary)
    session.add(row)
    session.flush()
    audit.append(
        session,
        actor=actor,
        action=f"roles.drift-{status}",
        subject=f"roles-drift:{row.id}",
        at=at,
        payload={"report": row.id, "fingerprint": fingerprint, "findings": findings},
    )
    return row


# --- admin revocations that wait (R-ADMIN-4) -----------------------------------------------

REVOCATION_STATUSES = ("waiting", "done", "cancelled")


def wait_revocation(
    session: Session, *, person_id: int, platform: str, membership_id: int, actor: str, at: datetime | None = None
) -> tuple[AdminRevocation, bool]:
    """Record once that ``person_id``'s admin on ``platform`` stays until the platform has
    enough counted admins again; returns (row, created)."""
    at = _at(at)
    row = session.scalar(
        select(AdminRevocation).where(
            AdminRevocation.person_id == person_id,
            AdminRevocation.platform == platform,
            AdminRevocation.membership_id == membership_id,
        )
    )
    if row is not None:
        return row, False
    row = AdminRevocation(
        person_id=person_id,
        platform=platform,
        membership_id=membership_id,
        status="waiting",
        created_at=at,
        reminders=0,
    )
    session.add(row)
    session.flush()
    audit.append(
        session,
        actor=actor,
        action="roles.admin-revocation-waits",
        subject=f"person:{person_id}",
        at=at,
        payload={"revocation": row.id, "platform": platform, "membership": membership_id, "ruling": "R-ADMIN-4"},
    )
    return row, True


def revocations(session: Session, *, status: str | None = "waiting") -> list[AdminRevocation]:
    """Admin revocations (by default those still waiting), oldest first."""
    query = select(AdminRevocation).order_by(AdminRevocation.id)
    if status is not None:
        query = query.where(AdminRevocation.status == status)
    return list(session.scalars(query))


def record_revocation_reminder(
    session: Session, row: AdminRevocation, *, number: int, actor: str, at: datetime | None = None
) -> bool:
    """Record reminder ``number`` (1, 2, …) to the WG once; True when this call recorded it."""
    return _remind(session, row, "revocation", number=number, actor=actor, at=at)


def resolve_revocation(
    session: Session, row: AdminRevocation, *, status: str, actor: str, reason_code: str, at: datetime | None = None
) -> bool:
    """End a waiting revocation as ``done`` or ``cancelled``; True when this call ended it."""
    if status not in ("done", "cancelled"):
        raise ValueError("a revocation ends as 'done' or 'cancelled'")
    at = _at(at)
    if row.status != "waiting":
        return False
    row.status, row.resolved_at = status, at
    session.flush()
    audit.append(
        session,
        actor=actor,
        action=f"roles.admin-revocation-{status}",
        subject=f"person:{row.person_id}",
        at=at,
        payload={"revocation": row.id, "platform": row.platform, "reason": reason_code},
    )
    return True
