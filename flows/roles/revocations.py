"""R-ADMIN-4: the roles of a membership that ends, and admin revocations that wait.

When a membership ends (lapse, leave, removal) :func:`decide_end` reads the platforms (GETs
only) and asks ``rules.end_of_membership``: the WG group/role goes, admin goes unless the
platform would keep fewer counted admins than R-ADMIN-2 asks (then the revocation *waits*),
moderator and other roles stay (R-MOD). ``flows.membership.leave.end_membership`` records that
decision with the end of the membership (a ``admin_revocations`` row per waiting platform), then
applies it through the usual plan-then-apply path (``reconcile_person``) and tells the WG which
platform needs a new admin (:func:`announce_waiting`).

The ``roles-admin-revocations`` flow (daily) looks at every waiting revocation:

* the platform has enough counted admins without the person again (a member was appointed):
  the ledger records the admin as not desired, the revocation is applied through
  ``reconcile_person`` and the WG is told; the row ends ``done``. (R-ADMIN-4 says the revocation
  *waits*: it is applied once it no longer breaks R-ADMIN-2, and the reminders stop then.)
* the person is a member again, or no longer holds admin there: the row ends ``cancelled`` /
  ``done`` without a change;
* otherwise the WG is reminded every ``admins.revocation_reminder_every_days`` (charter), once
  per reminder number.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import flow
from sqlalchemy import select

from flows.kit import Ctx, artifact, context, post_wg
from flows.platforms import role_text
from flows.reconcile import reconcile_person
from flows.roles.plan import Observation, observe
from ledger import repo
from ledger import roles as roles_ledger
from ledger.models import Person, PlatformRoleAssignment
from ledger.models_roles import AdminRevocation
from rules import EndOfMembership, admin_revocation, end_of_membership
from rules.admins import place
from rules.plan import ADMIN, admins_of

ACTOR = "flow:roles-admin-revocations"


def _holds(ctx: Ctx, person_id: int, handle: str, seen: Observation) -> dict[str, set[str]]:
    """platform → roles the person holds (observed) or the ledger wants them to hold."""
    holds: dict[str, set[str]] = {}
    for a in seen.assignments:
        if a.person == handle:
            holds.setdefault(a.platform, set()).add(a.role)
    with ctx.ledger.read() as session:
        for row in session.scalars(
            select(PlatformRoleAssignment).where(
                PlatformRoleAssignment.person_id == person_id, PlatformRoleAssignment.desired
            )
        ):
            holds.setdefault(row.platform.value, set()).add(row.role)
    return holds


def _wants(ctx: Ctx, person_id: int, platform: str, role: str) -> bool:
    """Does the ledger want the person to hold ``role`` on ``platform``?"""
    with ctx.ledger.read() as session:
        return any(
            r.desired and r.platform.value == platform and r.role == role
            for r in repo.platform_roles_of(session, session.get_one(Person, person_id))
        )


def decide_end(ctx: Ctx, *, person_id: int) -> EndOfMembership:
    """What ending ``person_id``'s membership does to their roles (pure decision on what the
    platforms show now and who the members are)."""
    with ctx.ledger.read() as session:
        handle = session.get_one(Person, person_id).handle
    seen = observe(ctx)
    # Only the platforms served now are decided; the rest keep the old rule (every wish ends).
    wg_roles = {p: [role_text(s.wg_role)] for p, s in ctx.platforms.spaces.items() if s.roles is not None}
    holds = {p: r for p, r in _holds(ctx, person_id, handle, seen).items() if p in wg_roles}
    return end_of_membership(
        handle,
        holds=holds,
        membership_roles=wg_roles,
        admins=admins_of(seen.assignments),
        members=seen.members or (),
        platform_accounts=seen.builtin,
        charter=ctx.charter,
    )


def record_end(
    session: Any, end: EndOfMembership, *, person: Person, membership_id: int, actor: str, at: datetime
) -> list[int]:
    """In the transaction that ends the membership: the roles to revoke become not desired
    (also an admin held without a ledger row), and each waiting admin revocation is recorded;
    returns the ids of the waiting revocations."""
    for platform, role in end.revoke:
        repo.set_desired_platform_role(
            session,
            person,
            platform=platform,
            role=role,
            desired=False,
            actor=actor,
            decision_ref=f"membership:{membership_id}",
            at=at,
        )
    ids = []
    for count in end.waiting:
        row, _ = roles_ledger.wait_revocation(
            session, person_id=person.id, platform=count.platform, membership_id=membership_id, actor=actor, at=at
        )
        ids.append(row.id)
    return ids


def kept_roles(end: EndOfMembership) -> list[tuple[str, str]]:
    """The (platform, role) pairs whose ledger wish stays when the membership ends."""
    return [*end.keep, *((c.platform, ADMIN) for c in end.waiting)]


def announce_waiting(ctx: Ctx, *, revocation_id: int, count_line: str, reminder: int = 0, actor: str = ACTOR) -> None:
    """Tell the WG (once per reminder number) that a platform needs a new admin."""
    with ctx.ledger.read() as session:
        row = _revocation(session, revocation_id)
        person = session.get_one(Person, row.person_id)
        status = person.memberships[-1].status.value if person.memberships else "ended"
        handle, platform = person.handle, row.platform
    post_wg(
        ctx,
        template="admin_needed",
        key=f"admin-needed:{revocation_id}:{reminder}",
        actor=actor,
        about=f"person:{row.person_id}",
        handle=handle,
        where=place(platform),
        status=status,
        count_line=count_line,
        reminder=reminder,
        revocation_id=revocation_id,
        every=ctx.charter.admins.revocation_reminder_every_days,
    )


def _revocation(session: Any, revocation_id: int) -> Any:
    return session.get(AdminRevocation, revocation_id)


def _settle(ctx: Ctx, row_id: int, seen: Observation) -> str:
    """One waiting revocation: applied, cancelled, reminded or still waiting."""
    with ctx.ledger.read() as session:
        row = _revocation(session, row_id)
        person = session.get_one(Person, row.person_id)
        handle, person_id, platform = person.handle, person.id, row.platform
        membership = repo.open_membership(session, person)
        member_again = membership is not None and membership.status.value == "active"
        created, reminders = row.created_at, row.reminders
    admins = admins_of(seen.assignments)
    holds = handle in admins.get(platform, ()) or _wants(ctx, person_id, platform, ADMIN)
    if member_again or not holds:  # they count again, or someone revoked it already
        outcome = "cancelled" if member_again else "done"
        with ctx.ledger.transaction() as session:
            roles_ledger.resolve_revocation(
                session,
                _revocation(session, row_id),
                status=outcome,
                actor=ACTOR,
                reason_code="member-again" if member_again else "no-longer-admin",
                at=ctx.now,
            )
        return outcome
    decision = admin_revocation(
        handle,
        platform=platform,
        admins=admins,
        members=seen.members or (),
        platform_accounts=seen.builtin,
        charter=ctx.charter,
    )
    count = decision.evidence["count"]
    if not decision.allowed:
        every = ctx.charter.admins.revocation_reminder_every_days
        number = int((ctx.now - created).total_seconds() // (every * 86400))
        if number <= reminders:
            return "waiting"
        with ctx.ledger.transaction() as session:
            roles_ledger.record_revocation_reminder(
                session, _revocation(session, row_id), number=number, actor=ACTOR, at=ctx.now
            )
        announce_waiting(ctx, revocation_id=row_id, count_line=count.line(), reminder=number)
        return "reminded"
    # Enough counted admins without them: the revocation no longer waits (plan, then apply).
    with ctx.ledger.transaction() as session:
        person = session.get_one(Person, person_id)
        repo.set_desired_platform_role(
            session,
            person,
            platform=platform,
            role=ADMIN,
            desired=False,
            actor=ACTOR,
            decision_ref=f"admin-revocation:{row_id}",
            at=ctx.now,
        )
    result = reconcile_person(ctx, person_id, decision_ref=f"admin-revocation:{row_id}", actor=ACTOR)
    if result["refused"]:
        return "waiting"
    with ctx.ledger.transaction() as session:
        roles_ledger.resolve_revocation(
            session, _revocation(session, row_id), status="done", actor=ACTOR, reason_code="admins-enough", at=ctx.now
        )
    post_wg(
        ctx,
        template="admin_revoked",
        key=f"admin-revoked:{row_id}",
        actor=ACTOR,
        about=f"person:{person_id}",
        handle=handle,
        where=place(platform),
        count_line=count.line(),
        revocation_id=row_id,
    )
    return "done"


def settle_revocations(ctx: Ctx) -> dict[str, Any]:
    """One pass over every waiting admin revocation; returns revocation id → outcome."""
    with ctx.ledger.read() as session:
        ids = [r.id for r in roles_ledger.revocations(session)]
    outcomes: dict[int, str] = {}
    if ids:
        seen = observe(ctx)
        for row_id in ids:
            outcomes[row_id] = _settle(ctx, row_id, seen)
    artifact(
        key="roles-admin-revocations",
        title="Admin revocations that wait (R-ADMIN-4)",
        rows={f"revocation {k}": v for k, v in outcomes.items()} or {"waiting": "none"},
    )
    return {"revocations": outcomes}


@flow(name="roles-admin-revocations", flow_run_name="admin-revocations", log_prints=True)
def roles_admin_revocations(now: datetime | None = None) -> dict[str, Any]:
    """R-ADMIN-4: apply each waiting admin revocation once its platform has two counted admins
    without the former member again; until then remind the WG which platform needs a new admin
    (every ``admins.revocation_reminder_every_days`` days)."""
    return settle_revocations(context(now))
