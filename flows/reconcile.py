"""Apply a person's platform roles as the ledger wants them (plan, then apply: DESIGN 9).

Shared by the capability packages that change roles (membership onboarding and leave, the roles
plan, change and revocation flows), so none of them imports another's internals.

The ledger's ``platform_roles`` rows say what the WG wants (``desired``); this step reads what
each platform shows first, plans with ``rules.plan_roles`` (guardrails R-ADMIN-1..3 and the
removal limit checked before anything is sent), applies the plan through ``RoleManager`` with
an audit reason carrying the change's key, and records what it observed. A crash between a
grant and its record is repaired by the next run: the platform already shows the role, so the
plan is empty and only the observation is recorded. No second role change is ever sent.

A platform failing half-way (Discord applied, the Forum refused) stops the person's plan there:
what was applied is recorded as observed first, then the error is raised (or, with
``report_errors``, returned under ``failed``), so the ledger shows exactly what is applied where
and the next run plans only the missing part. A grant the platform has not completed yet
(Discourse's e-mailed ``grant_admin`` confirmation) is listed under ``pending``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from connectors.base import ChangeStatus, UserRef
from connectors.errors import CharterflowError
from flows.kit import Ctx, artifact, identities_of, user_ref
from flows.platforms import parse_role
from ledger import platforms as ledger_platforms
from ledger import repo
from ledger.models import Identity, Person
from rules import Assignment, Change, plan_roles
from rules.platforms import RETIRED, RETIRING


def identities_by_external_id(ctx: Ctx) -> dict[tuple[str, str], tuple[int, str]]:
    """(platform, external id) → (person id, handle) for every identity with a platform id."""
    with ctx.ledger.read() as session:
        rows = session.execute(
            select(Identity.platform, Identity.external_id, Identity.person_id, Person.handle)
            .join(Person, Person.id == Identity.person_id)
            .where(Identity.external_id.is_not(None))
        ).all()
    return {(plat.value, str(ext)): (pid, handle) for plat, ext, pid, handle in rows}


def member_handles(ctx: Ctx) -> frozenset[str]:
    """The handles of every person with an active membership (R-ADMIN-2 counts only them)."""
    with ctx.ledger.read() as session:
        return frozenset(session.get_one(Person, m.person_id).handle for m in repo.active_memberships(session))


def is_platform_account(holder: UserRef) -> bool:
    """The platform's own account: Discourse's ``system`` and its other built-in users have
    negative ids; a connector may mark bots and integrations (``platform_account``)."""
    return holder.platform_account or str(holder.id).startswith("-")


@dataclass(kw_only=True)
class _View:
    """One person's roles as the ledger wants them and as the platforms show them."""

    handle: str
    desired: set[Assignment] = field(default_factory=set)
    observed: set[Assignment] = field(default_factory=set)
    accounts: set[str] = field(default_factory=set)
    users: dict[str, UserRef] = field(default_factory=dict)
    # (platform, role) → does the person hold it now
    holds: dict[tuple[str, str], bool] = field(default_factory=dict)

    def add_holders(
        self,
        platform: str,
        role_text: str,
        holders: list[UserRef],
        *,
        me: UserRef,
        known: dict[tuple[str, str], tuple[int, str]],
    ) -> None:
        """Every holder of one role: observed; the others stay desired (they are not ours to
        change here); the platforms' own accounts are noted for R-ADMIN-2."""
        for holder in holders:
            other = known.get((platform, str(holder.id)), (None, f"{platform}:{holder.username}"))
            key = self.handle if holder.id == me.id else other[1]
            if is_platform_account(holder):
                self.accounts.add(key)
            self.observed.add(Assignment(platform=platform, role=role_text, person=key))
            if key != self.handle:
                self.desired.add(Assignment(platform=platform, role=role_text, person=key))
        self.holds[(platform, role_text)] = any(h.id == me.id for h in holders)


def _person_rows(ctx: Ctx, person_id: int) -> tuple[str, list[tuple[str, str, bool]]]:
    """The person's handle and ledger rows as (platform, role, desired)."""
    with ctx.ledger.read() as session:
        person = session.get_one(Person, person_id)
        handle = person.handle if person else f"person-{person_id}"
        rows = [(r.platform.value, r.role, r.desired) for r in repo.platform_roles_of(session, person)]
    return handle, rows


def closed_platforms(ctx: Ctx) -> frozenset[str]:
    """The platforms retiring or retired in the ledger's list: nothing is granted there any
    more (R-PLATFORM: a retiring platform's roles are revoked, then it is retired), even while
    this process still serves it."""
    with ctx.ledger.read() as session:
        states = ledger_platforms.states(session, charter_platforms=ctx.platforms.charter.platforms)
    return frozenset(p for p, s in states.items() if s.state in (RETIRING, RETIRED))


def _view(ctx: Ctx, person_id: int) -> _View:
    """Read what every served platform shows for the person's ledger rows."""
    handle, rows = _person_rows(ctx, person_id)
    identities = {i.platform.value: i for i in identities_of(ctx, person_id)}
    known = identities_by_external_id(ctx)  # other holders by ledger handle (R-ADMIN-2 counts)
    closed = closed_platforms(ctx)
    view = _View(handle=handle)
    for platform, role_text, want in rows:
        space = ctx.platforms.space(platform)
        identity = identities.get(platform)
        if space is None or space.roles is None or identity is None or not identity.external_id:
            continue
        me = user_ref(identity)
        view.users[platform] = me
        holders = list(space.roles.list_holders(parse_role(role_text)))
        # R-PLATFORM: no new grant on a retiring or retired platform; a role held there stays
        # for the retirement to revoke.
        if want and (platform not in closed or any(h.id == me.id for h in holders)):
            view.desired.add(Assignment(platform=platform, role=role_text, person=handle))
        view.add_holders(platform, role_text, holders, me=me, known=known)
    return view


def _send(ctx: Ctx, change: Change, user: UserRef, *, decision_ref: str) -> Any:
    """One grant or revocation, its audit reason carrying the change's key."""
    space = ctx.platforms.space(change.platform)
    assert space is not None and space.roles is not None
    send = space.roles.grant if change.action == "grant" else space.roles.revoke
    return send(user, parse_role(change.role), reason=f"charterflow {change.key(decision_ref)}")


def _apply(
    ctx: Ctx, view: _View, changes: list[Change], result: dict[str, Any], *, decision_ref: str
) -> CharterflowError | None:
    """Send ``changes`` in order, noting each outcome in ``result`` and ``view.holds``; the
    first platform error stops the rest and is returned."""
    for change in changes:
        key = change.key(decision_ref)
        try:
            report = _send(ctx, change, view.users[change.platform], decision_ref=decision_ref)
        except CharterflowError as exc:
            # Stop here: the plan was checked as a whole, its rest may rely on this change.
            result["failed"][key] = str(exc)
            return exc
        if report.done:
            view.holds[(change.platform, change.role)] = change.action == "grant"
            result["applied"].append(key)
        elif report.status is ChangeStatus.PENDING_CONFIRMATION:
            result["pending"].append(key)
    return None


def _record_observed(ctx: Ctx, person_id: int, holds: dict[tuple[str, str], bool], *, actor: str) -> None:
    with ctx.ledger.transaction() as session:
        person = session.get_one(Person, person_id)
        for (platform, role_text), held in holds.items():
            repo.record_observed_platform_role(
                session, person, platform=platform, role=role_text, observed=held, actor=actor, at=ctx.now
            )


def reconcile_person(
    ctx: Ctx, person_id: int, *, decision_ref: str, actor: str, report_errors: bool = False
) -> dict[str, Any]:
    """Bring the person's roles on every served platform to what the ledger wants; returns
    ``{"applied": [...], "pending": [...], "failed": {key: error}, "unchanged": n,
    "refused": reason | None}``. A platform error stops the plan (see the module docstring)."""
    view = _view(ctx, person_id)
    plan = plan_roles(
        view.desired, view.observed, charter=ctx.charter, members=member_handles(ctx), platform_accounts=view.accounts
    )
    mine = [c for c in plan.changes if c.person == view.handle]
    result: dict[str, Any] = {"applied": [], "pending": [], "failed": {}, "unchanged": 0, "refused": None}
    if not plan.decision.allowed:
        result["refused"] = f"{plan.decision.ruling}: {plan.decision.reason}"
        artifact(
            key=f"roles-person-{person_id}",
            title=f"Role plan refused for {view.handle}",
            decision=plan.decision,
            rows={c.key(decision_ref): c.action for c in mine},
        )
        return result
    seen = len(view.holds)
    failure = _apply(ctx, view, mine, result, decision_ref=decision_ref)
    result["unchanged"] = seen - len(result["applied"])
    _record_observed(ctx, person_id, view.holds, actor=actor)
    if failure is not None and not report_errors:
        raise failure
    return result
