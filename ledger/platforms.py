"""Queries and writes of the platforms' history (R-PLATFORM, issue 20).

A platform's state is the newest ``platform_states`` row of that platform; rows are only
appended. Until the first change is recorded the list is the charter file's platforms, all
approved (:func:`states` answers that without writing); the first write records that seed
(``platform.seeded``) before the change. Each write carries its audit entry (``platform.state``,
subject ``platform:<name>``) in the same transaction: names, states, dates and ledger ids only.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ledger import audit
from ledger.models import PlatformRoleAssignment
from ledger.models_platforms import PlatformStateRow
from ledger.repo import _now as _at  # the ledger's one check of an aware `at`
from rules.platforms import APPROVED, STATES, TRIAL, PlatformState, seed

__all__ = ["first_admin_granted", "history", "record_first_admin", "record_state", "states"]


def _latest(session: Session) -> list[PlatformStateRow]:
    newest = select(func.max(PlatformStateRow.id)).group_by(PlatformStateRow.platform)
    return list(
        session.scalars(select(PlatformStateRow).where(PlatformStateRow.id.in_(newest)).order_by(PlatformStateRow.id))
    )


def first_admin_granted(session: Session, platform: str) -> datetime | None:
    """When the ledger first saw an admin it manages on ``platform`` (a ``platform_roles``
    admin row wanted and observed held), None if never. Compared as text: the platform column
    may not know a plugin's platform name."""
    rows = session.execute(
        select(
            PlatformRoleAssignment.platform, PlatformRoleAssignment.desired_since, PlatformRoleAssignment.observed_at
        ).where(
            PlatformRoleAssignment.role == "admin",
            PlatformRoleAssignment.desired.is_(True),
            PlatformRoleAssignment.observed.is_(True),
        )
    ).all()
    seen = [
        at
        for plat, since, observed in rows
        if str(getattr(plat, "value", plat)) == platform and (at := since or observed)
    ]
    return min(seen) if seen else None


def states(session: Session, *, charter_platforms: Iterable[str]) -> dict[str, PlatformState]:
    """Every platform's current state (retired ones included), oldest first. Nothing recorded
    yet: the charter file's platforms, approved. A trial platform's ``first_admin_at`` is the
    recorded one, else when the ledger first saw an admin granted there."""
    rows = _latest(session)
    if not rows:
        return seed(charter_platforms)
    out: dict[str, PlatformState] = {}
    for row in rows:
        first = row.first_admin_at
        if row.state == TRIAL and first is None:
            first = first_admin_granted(session, row.platform)
        out[row.platform] = PlatformState(
            platform=row.platform,
            state=row.state,
            since=row.since,
            trial_ends_at=row.trial_ends_at,
            first_admin_at=first,
        )
    return out


def history(session: Session, platform: str | None = None) -> list[PlatformStateRow]:
    """Every recorded step, oldest first (of one platform when given)."""
    query = select(PlatformStateRow).order_by(PlatformStateRow.id)
    if platform is not None:
        query = query.where(PlatformStateRow.platform == platform)
    return list(session.scalars(query))


def _append(
    session: Session,
    *,
    platform: str,
    state: str,
    actor: str,
    decided_by: str,
    at: datetime,
    trial_ends_at: datetime | None,
    first_admin_at: datetime | None,
    proposal_id: int | None,
    note: str | None,
    action: str,
    previous: str | None,
) -> PlatformStateRow:
    if state not in STATES:
        raise ValueError(f"unknown platform state {state!r} ({', '.join(STATES)})")
    row = PlatformStateRow(
        platform=platform,
        state=state,
        trial_ends_at=trial_ends_at,
        first_admin_at=first_admin_at,
        since=at,
        decided_by=decided_by[:80],
        proposal_id=proposal_id,
        note=(note or None) and note[:2000],
    )
    session.add(row)
    session.flush()
    payload = {
        "state": state,
        "from": previous,
        "decided_by": decided_by[:80],
        "proposal": proposal_id,
        "row": row.id,
        "trial_ends_at": audit.format_time(trial_ends_at) if trial_ends_at else None,
        "first_admin_at": audit.format_time(first_admin_at) if first_admin_at else None,
    }
    audit.append(session, actor=actor, action=action, subject=f"platform:{platform}", at=at, payload=payload)
    return row


def _seed_if_empty(session: Session, *, charter_platforms: Iterable[str], actor: str, at: datetime) -> None:
    if session.scalar(select(func.count()).select_from(PlatformStateRow)):
        return
    for name in dict.fromkeys(charter_platforms):
        _append(
            session,
            platform=name,
            state=APPROVED,
            actor=actor,
            decided_by="charter",
            at=at,
            trial_ends_at=None,
            first_admin_at=None,
            proposal_id=None,
            note="approved in the charter file",
            action="platform.seeded",
            previous=None,
        )


def record_state(
    session: Session,
    *,
    platform: str,
    state: str,
    actor: str,
    decided_by: str,
    charter_platforms: Iterable[str],
    at: datetime | None = None,
    trial_ends_at: datetime | None = None,
    proposal_id: int | None = None,
    note: str | None = None,
) -> PlatformStateRow:
    """Append ``platform``'s new state (seeding the charter's list first when nothing is
    recorded). ``decided_by``: ``board:slack``, ``board:operator``, ``operator``, ``flow:…``:
    never a person's name. A trial keeps its recorded ``first_admin_at``."""
    at = _at(at)
    _seed_if_empty(session, charter_platforms=charter_platforms, actor=actor, at=at)
    before = states(session, charter_platforms=())
    previous = before.get(platform)
    first = previous.first_admin_at if previous is not None and state == TRIAL else None
    return _append(
        session,
        platform=platform,
        state=state,
        actor=actor,
        decided_by=decided_by,
        at=at,
        trial_ends_at=trial_ends_at if state == TRIAL else None,
        first_admin_at=first,
        proposal_id=proposal_id,
        note=note,
        action="platform.state",
        previous=previous.state if previous else None,
    )


def record_first_admin(
    session: Session,
    *,
    platform: str,
    first_admin_at: datetime,
    actor: str,
    charter_platforms: Iterable[str],
    at: datetime | None = None,
) -> PlatformStateRow | None:
    """Record when a trial platform's first admin was granted (once; from then it counts for
    R-ADMIN-1/2 even if that admin is revoked later). None when it is not a trial or was
    recorded before."""
    at = _at(at)
    rows = {r.platform: r for r in _latest(session)}
    row = rows.get(platform)
    if row is None or row.state != TRIAL or row.first_admin_at is not None:
        return None
    return _append(
        session,
        platform=platform,
        state=TRIAL,
        actor=actor,
        decided_by="ledger",
        at=at,
        trial_ends_at=row.trial_ends_at,
        first_admin_at=first_admin_at,
        proposal_id=row.proposal_id,
        note="first admin granted",
        action="platform.first-admin",
        previous=TRIAL,
    )
