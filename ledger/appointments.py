"""Repository functions of WG role appointments (R-ROLE-APPOINT; table in
``ledger.models_appointments``). Each change writes its audit entry in the same transaction:
ids, role names and ruling codes only (R-PRIVACY-2)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledger import audit, repo
from ledger.models import Person, WgRole
from ledger.models_appointments import WgAppointment

OPEN = ("pending", "voting")
FINAL = ("appointed", "refused", "rejected")


def _audit(session: Session, row: WgAppointment, *, actor: str, action: str, at: datetime, **extra: Any) -> None:
    audit.append(
        session,
        actor=actor,
        action=f"wg-appointment.{action}",
        subject=f"wg-appointment:{row.id}",
        at=at,
        payload={
            "role": row.role,
            "nominee": f"person:{row.nominee_person_id}",
            "via": row.via,
            "status": row.status,
            **extra,
        },
    )


def request(
    session: Session,
    *,
    role: str,
    nominee: Person,
    via: str,
    requested_by: str,
    actor: str,
    at: datetime,
    status: str = "pending",
    ruling: str | None = None,
    rulings: Iterable[str] = (),
) -> WgAppointment:
    """Record a request to give ``role`` to ``nominee`` (``status`` ``refused`` with its
    ``ruling`` when a hard rule refused it at once)."""
    row = WgAppointment(
        role=WgRole(role).value,
        nominee_person_id=nominee.id,
        via=via,
        status=status,
        requested_by=requested_by,
        requested_at=at,
        ruling=ruling,
        rulings={"warnings": sorted(set(rulings))},
    )
    if status in FINAL:
        row.decided_at, row.decided_by = at, requested_by
    session.add(row)
    session.flush()
    _audit(
        session,
        row,
        actor=actor,
        action="requested" if status not in FINAL else status,
        at=at,
        ruling=ruling,
        warnings=sorted(set(rulings)),
    )
    return row


def open_request(session: Session, *, role: str, nominee_id: int, via: str) -> WgAppointment | None:
    """The request still open for the same role, nominee and way, if any (asked twice: one)."""
    return session.scalar(
        select(WgAppointment)
        .where(
            WgAppointment.role == role,
            WgAppointment.nominee_person_id == nominee_id,
            WgAppointment.via == via,
            WgAppointment.status.in_(OPEN),
        )
        .order_by(WgAppointment.id)
    )


def mark_voting(session: Session, row: WgAppointment, *, ballot_id: int, actor: str, at: datetime) -> None:
    row.status, row.ballot_id = "voting", ballot_id
    session.flush()
    _audit(session, row, actor=actor, action="voting", at=at, ballot=f"ballot:{ballot_id}")


def set_message(session: Session, row: WgAppointment, *, message_ref: str) -> None:
    row.message_ref = message_ref
    session.flush()


def decide(
    session: Session,
    row: WgAppointment,
    *,
    status: str,
    decided_by: str,
    actor: str,
    at: datetime,
    ruling: str | None = None,
    rulings: Iterable[str] = (),
) -> WgAppointment:
    """End a request: ``appointed`` (then the role is assigned with ``repo.assign_wg_role`` in the
    same transaction), ``refused`` by ``ruling`` or ``rejected``."""
    if status not in FINAL:
        raise ValueError(f"status is one of {FINAL}")
    row.status, row.decided_by, row.decided_at, row.ruling = status, decided_by, at, ruling
    row.rulings = {"warnings": sorted(set(rulings))}
    if status == "appointed":
        person = session.get_one(Person, row.nominee_person_id)
        repo.assign_wg_role(session, person, row.role, actor=actor, assigned_by=decided_by, starts_at=at, at=at)
    session.flush()
    _audit(session, row, actor=actor, action=status, at=at, ruling=ruling, warnings=sorted(set(rulings)))
    return row


def by_ballot(session: Session, ballot_id: int) -> WgAppointment | None:
    return session.scalar(select(WgAppointment).where(WgAppointment.ballot_id == ballot_id))


def listing(session: Session, *, open_only: bool = False) -> list[WgAppointment]:
    query = select(WgAppointment).order_by(WgAppointment.id)
    if open_only:
        query = query.where(WgAppointment.status.in_(OPEN))
    return list(session.scalars(query))
