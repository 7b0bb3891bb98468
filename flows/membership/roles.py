"""Apply a person's platform roles as the ledger wants them (plan, then apply: DESIGN 9).

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

from typing import Any

from connectors.base import ChangeStatus, Role
from connectors.errors import CharterflowError
from ledger import repo
from ledger.models import Person
from rules import Assignment, plan_roles

from flows.kit import Ctx, artifact, identities_of, user_ref
from flows.platforms import parse_role


def reconcile_person(ctx: Ctx, person_id: int, *, decision_ref: str, actor: str,
                     report_errors: bool = False) -> dict[str, Any]:
    """Bring the person's roles on every served platform to what the ledger wants; returns
    ``{"applied": [...], "pending": [...], "failed": {key: error}, "unchanged": n,
    "refused": reason | None}``. A platform error stops the plan (see the module docstring)."""
    with ctx.ledger.read() as session:
        person = session.get(Person, person_id)
        handle = person.handle if person else f"person-{person_id}"
        rows = [(r.platform.value, r.role, r.desired) for r in repo.platform_roles_of(session, person)]
    from flows.roles.plan import _identities, is_platform_account, member_handles

    identities = {i.platform.value: i for i in identities_of(ctx, person_id)}
    known = _identities(ctx)  # other holders by ledger handle, so R-ADMIN-2 can count members
    accounts: set[str] = set()
    desired: set[Assignment] = set()
    observed: set[Assignment] = set()
    users: dict[str, Any] = {}
    seen: list[tuple[str, str, bool]] = []
    for platform, role_text, want in rows:
        space = ctx.platforms.space(platform)
        identity = identities.get(platform)
        if space is None or space.roles is None or identity is None or not identity.external_id:
            continue
        user = user_ref(identity)
        users[platform] = user
        role = parse_role(role_text)
        holders = _holders(ctx, space, role)
        if want:
            desired.add(Assignment(platform=platform, role=role_text, person=handle))
        for holder in holders:
            other = known.get((platform, str(holder.id)), (None, f"{platform}:{holder.username}"))
            key = handle if holder.id == user.id else other[1]
            if is_platform_account(holder):
                accounts.add(key)
            observed.add(Assignment(platform=platform, role=role_text, person=key))
            if key != handle:
                desired.add(Assignment(platform=platform, role=role_text, person=key))
        seen.append((platform, role_text, any(h.id == user.id for h in holders)))
    plan = plan_roles(desired, observed, charter=ctx.charter, members=member_handles(ctx),
                      platform_accounts=accounts)
    mine = [c for c in plan.changes if c.person == handle]
    result: dict[str, Any] = {"applied": [], "pending": [], "failed": {}, "unchanged": 0,
                              "refused": None}
    if not plan.decision.allowed:
        result["refused"] = f"{plan.decision.ruling}: {plan.decision.reason}"
        artifact(key=f"roles-person-{person_id}", title=f"Role plan refused for {handle}",
                 decision=plan.decision, rows={c.key(decision_ref): c.action for c in mine})
        return result
    now_holds = {(p, r): holds for p, r, holds in seen}
    failure: CharterflowError | None = None
    for change in mine:
        space = ctx.platforms.space(change.platform)
        assert space is not None and space.roles is not None
        role = parse_role(change.role)
        reason = f"charterflow {change.key(decision_ref)}"
        try:
            if change.action == "grant":
                report = space.roles.grant(users[change.platform], role, reason=reason)
            else:
                report = space.roles.revoke(users[change.platform], role, reason=reason)
        except CharterflowError as exc:
            # Stop here: the plan was checked as a whole, its rest may rely on this change.
            failure = exc
            result["failed"][change.key(decision_ref)] = str(exc)
            break
        if report.done:
            now_holds[(change.platform, change.role)] = change.action == "grant"
            result["applied"].append(change.key(decision_ref))
        elif report.status is ChangeStatus.PENDING_CONFIRMATION:
            result["pending"].append(change.key(decision_ref))
    result["unchanged"] = len(seen) - len(result["applied"])
    with ctx.ledger.transaction() as session:
        person = session.get_one(Person, person_id)
        for (platform, role_text), holds in now_holds.items():
            repo.record_observed_platform_role(session, person, platform=platform, role=role_text,
                                               observed=holds, actor=actor, at=ctx.now)
    if failure is not None and not report_errors:
        raise failure
    return result


def _holders(ctx: Ctx, space: Any, role: Role) -> list[Any]:
    return list(space.roles.list_holders(role))
