"""Roles as code: the ledger says who should hold which platform role, the platforms say who
does; the difference is a plan, checked by the charter's guardrails before anything is sent.

Usable by a flow and by ``charterflow roles plan|apply``:

* :func:`observe` reads every served platform's holders of ``admin``, ``moderator``, the WG
  group/role and any other role the ledger names there (``RoleManager.list_holders``: reads only).
* :func:`build_plan` turns the ledger's ``platform_roles`` rows and that observation into a
  ``rules.Plan`` (``rules.plan_roles``: R-ADMIN-1, R-ADMIN-2, R-ADMIN-3 and the removal limit).
* :func:`apply_plan` applies exactly that plan through the shared role applier
  (``flows.reconcile.reconcile_person``) and records the run in the audit log.

What the ledger manages: a (person, platform, role) with a ledger row is managed (``desired``
true: must hold; false: must not). A holding without a row, or an account the ledger does not
know (shown as ``<platform>:<username>``), is *unmanaged*: shown, judged by the invariants,
never changed. R-ADMIN-2 counts WG members only (``rules.count_admins``): the platform's own
accounts (Discourse ``system``: a negative id) and anyone without an active membership hold
admin but are listed as "not counted"; the plan prints one line per platform saying who counts.
A row whose person has no identity (with a platform id) on that platform, or a
platform that is not reached (not configured in this process, or, with ``tolerate_unreachable``,
not answering), cannot be planned and is listed under ``skipped``; the verdict on such a
platform is *unknown* (``RolesPlan.unreached``), and ``format_plan`` says so.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import select

from connectors.errors import RetriableError
from flows.kit import Ctx
from flows.platforms import parse_role, role_text
from flows.reconcile import (
    closed_platforms,
    identities_by_external_id,
    is_platform_account,
    member_handles,
    reconcile_person,
)
from ledger import audit
from ledger.models import Person, PlatformRoleAssignment
from rules import Assignment, Plan, count_admins, plan_roles
from rules.plan import ADMIN, admins_of

ROLE_ORDER = ("admin", "moderator")


@dataclass(frozen=True, kw_only=True)
class Observation:
    """What the platforms show, in ledger terms."""

    assignments: frozenset[Assignment]
    # handle -> person id, for the people the ledger knows on some platform
    people: dict[str, int] = field(default_factory=dict)
    # (platform, handle) -> platform user id, to act on
    users: dict[tuple[str, str], str] = field(default_factory=dict)
    roles: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # unknown accounts that are the platform's own (Discourse's ``system``, negative ids)
    builtin: frozenset[str] = frozenset()
    # platform → why it was not read (not configured here, or not answering)
    unreached: dict[str, str] = field(default_factory=dict)
    # handles of the people with an active membership (who R-ADMIN-2 counts)
    members: frozenset[str] = frozenset()


@dataclass(frozen=True, kw_only=True)
class RolesPlan:
    """A plan with what it was made from."""

    plan: Plan
    observed: frozenset[Assignment]
    desired: frozenset[Assignment]
    people: dict[str, int]
    skipped: tuple[str, ...] = ()
    override_reason: str | None = None
    # the ledger's rows as (handle, platform, role, desired), and the platforms' own accounts
    rows: tuple[tuple[str, str, str, bool], ...] = ()
    builtin: frozenset[str] = frozenset()
    # platform → why it was not reached: the verdict on it is unknown
    unreached: dict[str, str] = field(default_factory=dict)
    # who R-ADMIN-2 counts (active members' handles); None: the roster is not known
    members: frozenset[str] | None = None

    @property
    def allowed(self) -> bool:
        """True when the guardrails let the plan be sent."""
        return self.plan.decision.allowed

    def plan_platforms(self) -> set[str]:
        """The platforms the plan was made on (observed), the unreached ones left out."""
        return ({a.platform for a in self.observed | self.desired} | {c.platform for c in self.plan.changes}) - set(
            self.unreached
        )

    def resulting_state(self) -> dict[str, dict[str, list[str]]]:
        """platform → role → holders after the plan (the state the verdict is about)."""
        after = set(self.observed)
        for c in self.plan.changes:
            a = Assignment(platform=c.platform, role=c.role, person=c.person)
            (after.add if c.action == "grant" else after.discard)(a)
        return state_of(after)


def state_of(assignments: Iterable[Assignment]) -> dict[str, dict[str, list[str]]]:
    """platform → role → sorted holders."""
    out: dict[str, dict[str, list[str]]] = {}
    for a in assignments:
        out.setdefault(a.platform, {}).setdefault(a.role, []).append(a.person)
    return {p: {r: sorted(v) for r, v in sorted(roles.items())} for p, roles in sorted(out.items())}


def role_rows(ctx: Ctx) -> list[tuple[int, str, str, str, bool, bool | None]]:
    """Every ledger platform-role row as (person id, handle, platform, role, desired, observed)."""
    with ctx.ledger.read() as session:
        rows = session.execute(
            select(
                PlatformRoleAssignment.person_id,
                Person.handle,
                PlatformRoleAssignment.platform,
                PlatformRoleAssignment.role,
                PlatformRoleAssignment.desired,
                PlatformRoleAssignment.observed,
            )
            .join(Person, Person.id == PlatformRoleAssignment.person_id)
            .order_by(PlatformRoleAssignment.id)
        ).all()
    return [
        (pid, handle, plat.value, role, bool(desired), observed) for pid, handle, plat, role, desired, observed in rows
    ]


def roles_to_observe(ctx: Ctx, platform: str, extra: Iterable[str] = ()) -> tuple[str, ...]:
    """``admin``, ``moderator``, the WG group/role, then any other role the ledger names."""
    space = ctx.platforms.space(platform)
    names = list(ROLE_ORDER)
    if space is not None:
        names.append(role_text(space.wg_role))
    names += sorted(set(extra) - set(names))
    return tuple(names)


def _holders(space: Any, texts: tuple[str, ...]) -> list[tuple[str, Any]]:
    """(role text, holder) for every holder of every role in ``texts`` on one platform."""
    return [(text, holder) for text in texts for holder in space.roles.list_holders(parse_role(text))]


def observe(
    ctx: Ctx, *, extra_roles: Mapping[str, Iterable[str]] | None = None, tolerate_unreachable: bool = False
) -> Observation:
    """Read the holders of every role of interest on every served platform (GETs only). The
    charter's platforms without a connector here are ``unreached``; so, with
    ``tolerate_unreachable``, is a platform that does not answer (else its error is raised)."""
    known = identities_by_external_id(ctx)
    assignments: set[Assignment] = set()
    people: dict[str, int] = {}
    users: dict[tuple[str, str], str] = {}
    roles: dict[str, tuple[str, ...]] = {}
    builtin: set[str] = set()
    unreached = {p: "not configured here" for p in ctx.charter.platforms if ctx.platforms.space(p) is None}
    for platform, space in sorted(ctx.platforms.spaces.items()):
        if space.roles is None:
            continue
        texts = roles_to_observe(ctx, platform, (extra_roles or {}).get(platform, ()))
        try:
            held = _holders(space, texts)
        except RetriableError as exc:
            if not tolerate_unreachable:
                raise
            unreached[platform] = f"not answering ({str(exc).splitlines()[0][:160]})"
            continue
        roles[platform] = texts
        for text, holder in held:
            found = known.get((platform, str(holder.id)))
            if found is not None:
                person_id, key = found
                people[key] = person_id
                users[(platform, key)] = str(holder.id)
            else:
                key = f"{platform}:{holder.username or holder.id}"
                if is_platform_account(holder):
                    builtin.add(key)
            assignments.add(Assignment(platform=platform, role=text, person=key))
    for (platform, ext), (person_id, handle) in known.items():
        people.setdefault(handle, person_id)
        users.setdefault((platform, handle), ext)
    return Observation(
        assignments=frozenset(assignments),
        people=people,
        users=users,
        roles=roles,
        builtin=frozenset(builtin),
        unreached=unreached,
        members=member_handles(ctx),
    )


def build_plan(
    ctx: Ctx,
    *,
    override_reason: str | None = None,
    extra: Iterable[tuple[str, str, str, bool]] = (),
    tolerate_unreachable: bool = False,
) -> RolesPlan:
    """The plan from the observed state to the ledger's desired one, with the guardrails'
    verdict. ``extra`` adds (handle, platform, role, desired) wishes on top of the ledger's rows
    (a proposed change, checked on the state it would make). ``tolerate_unreachable``: a
    platform that does not answer is left out (its verdict unknown) instead of failing."""
    rows = [(h, p, r, d) for _pid, h, p, r, d, _o in role_rows(ctx)]
    rows += list(extra)
    wanted_roles: dict[str, set[str]] = {}
    for _h, p, r, _d in rows:
        wanted_roles.setdefault(p, set()).add(r)
    seen = observe(ctx, extra_roles=wanted_roles, tolerate_unreachable=tolerate_unreachable)
    unreached = dict(seen.unreached)
    desired = set(seen.assignments)
    skipped: list[str] = []
    closed = closed_platforms(ctx)
    for handle, platform, role, want in rows:
        if platform not in seen.roles:
            why = unreached.setdefault(platform, "not configured here")
            skipped.append(f"{handle}: {role} on {platform} ({platform} not reached: {why})")
            continue
        if (platform, handle) not in seen.users:
            skipped.append(f"{handle}: {role} on {platform} (no {platform} identity with a platform id)")
            continue
        a = Assignment(platform=platform, role=role, person=handle)
        if want and platform in closed and a not in seen.assignments:
            # R-PLATFORM: as the applier (flows.reconcile), nothing is granted on a retiring
            # or retired platform.
            skipped.append(f"{handle}: {role} on {platform} ({platform} is retiring or retired: no new grant)")
            continue
        (desired.add if want else desired.discard)(a)
    plan = plan_roles(
        desired,
        seen.assignments,
        charter=ctx.charter,
        override_reason=override_reason,
        members=seen.members,
        platform_accounts=seen.builtin,
    )
    return RolesPlan(
        plan=plan,
        observed=seen.assignments,
        desired=frozenset(desired),
        people=seen.people,
        skipped=tuple(skipped),
        override_reason=override_reason,
        rows=tuple(rows),
        builtin=seen.builtin,
        unreached=unreached,
        members=seen.members,
    )


def admin_lines(shown: RolesPlan, *, charter: Any, state: Iterable[Assignment] | None = None) -> list[str]:
    """One line per approved platform observed: which admins count toward R-ADMIN-2 and
    which do not, in ``state`` (default: what the platforms show now)."""
    observed = {a.platform for a in shown.observed}
    served = [p for p in charter.platforms if p in observed]
    counts = count_admins(
        admins_of(shown.observed if state is None else state),
        members=shown.members,
        platform_accounts=shown.builtin,
        platforms=served,
        charter=charter,
    )
    return [c.line() for c in counts.values()]


def lifted(ctx: Ctx) -> Ctx:
    """``ctx`` with the guardrails lifted, for applying a plan already checked as a whole: the
    applier re-plans one person at a time, and a swap of admins between two people (or an
    operator's override) must not be refused half-way."""
    charter = ctx.charter
    admins = charter.admins.model_copy(
        update={"min_admins_per_platform": 0, "forbid_admin_on_all_platforms": False, "max_removals_per_run": 10**6}
    )
    platforms = replace(ctx.platforms, charter=charter.model_copy(update={"admins": admins}))
    return Ctx(ledger=ctx.ledger, platforms=platforms, now=ctx.now)


def person_order(plan: Plan) -> list[str]:
    """The people of a plan, those only gaining roles first and those only losing last, so the
    platforms pass through as few thin states as possible."""
    kinds: dict[str, set[str]] = {}
    for c in plan.changes:
        kinds.setdefault(c.person, set()).add(c.action)
    rank = {frozenset({"grant"}): 0, frozenset({"grant", "revoke"}): 1, frozenset({"revoke"}): 2}
    return sorted(kinds, key=lambda h: (rank[frozenset(kinds[h])], h))


@dataclass(kw_only=True)
class _Applied:
    """What applying a plan did so far, person by person."""

    applied: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    refused: list[str] = field(default_factory=list)

    def add(self, handle: str, result: dict[str, Any]) -> None:
        """One person's ``reconcile_person`` result; platform refusals carry their fix."""
        self.applied += result["applied"]
        self.pending += result["pending"]
        self.failed.update({k: explain(k.split(":", 2)[1], why) for k, why in result["failed"].items()})
        if result["refused"]:
            self.refused.append(f"{handle}: {result['refused']}")

    def answer(self, planned: list[str]) -> dict[str, Any]:
        return {
            "applied": [k for k in planned if k in self.applied],
            "pending": [k for k in planned if k in self.pending],
            "failed": self.failed,
            "not_applied": [k for k in planned if k not in self.applied],
            "unexpected": [k for k in self.applied if k not in planned],
            "refused": self.refused,
        }


def _check_appliable(shown: RolesPlan) -> None:
    if not shown.allowed:
        raise ValueError(f"the plan is refused ({shown.plan.decision.ruling}); nothing to apply")
    unmanaged = [c for c in shown.plan.changes if c.person not in shown.people]
    if unmanaged:  # cannot happen by construction: unmanaged holders are never changed
        raise ValueError(f"the plan changes an account the ledger does not know: {unmanaged[0].person}")


def _start_trainings(
    ctx: Ctx, shown: RolesPlan, handle: str, applied: list[str], *, decision_ref: str, actor: str
) -> None:
    """A moderator grant just applied starts the new moderator's training."""
    # lazy: start-up: Prefect (the training's flows), which `charterflow roles plan` does not load
    from flows.roles.training import start_training

    for c in shown.plan.changes:
        if c.person == handle and c.action == "grant" and c.role == "moderator" and c.key(decision_ref) in applied:
            start_training(
                ctx, person_id=shown.people[handle], platform=c.platform, decision_ref=decision_ref, actor=actor
            )


def apply_plan(ctx: Ctx, shown: RolesPlan, *, decision_ref: str, actor: str) -> dict[str, Any]:
    """Apply exactly ``shown`` (refused plans are not applied) through the role applier
    (``flows.reconcile``); returns ``{"applied": [keys], "pending": [keys], "failed": {key:
    error}, "not_applied": [keys], "unexpected": [keys], "refused": [...]}``.

    The run is recorded in the audit log (``roles.apply``: the plan, the verdict, any override
    reason); each person's observed roles are recorded by the applier. A platform error stops
    the run there (the plan was checked as a whole): what was applied is recorded, the audit
    entry ``roles.apply-failed`` names what was applied and what failed, and the next apply
    plans only what is missing. A moderator grant starts the new moderator's training. A
    Discourse admin grant stays ``pending`` until someone opens the e-mailed link."""
    _check_appliable(shown)
    planned = [c.key(decision_ref) for c in shown.plan.changes]
    _record(ctx, shown, decision_ref=decision_ref, actor=actor, action="roles.apply", keys=planned)
    done = _Applied()
    run = lifted(ctx)
    for handle in person_order(shown.plan):
        result = reconcile_person(run, shown.people[handle], decision_ref=decision_ref, actor=actor, report_errors=True)
        done.add(handle, result)
        _start_trainings(ctx, shown, handle, result["applied"], decision_ref=decision_ref, actor=actor)
        if done.failed:
            break
    if done.failed:
        with ctx.ledger.transaction() as session:
            audit.append(
                session,
                actor=actor,
                action="roles.apply-failed",
                subject=f"roles:{decision_ref}",
                at=ctx.now,
                payload={
                    "decision": decision_ref,
                    "applied": [_short(k, shown, decision_ref) for k in planned if k in done.applied],
                    "failed": [_short(k, shown, decision_ref) for k in done.failed],
                },
            )
    return done.answer(planned)


def _short(key: str, shown: RolesPlan, decision_ref: str) -> str:
    """A change key without the handle, for the audit log: ``grant:discord:person:12:admin``."""
    for c in shown.plan.changes:
        if c.key(decision_ref) == key:
            return f"{c.action}:{c.platform}:person:{shown.people.get(c.person, 0)}:{c.role}"
    return "unknown"


def _record(ctx: Ctx, shown: RolesPlan, *, decision_ref: str, actor: str, action: str, keys: list[str]) -> None:
    decision = shown.plan.decision
    payload: dict[str, Any] = {
        "decision": decision_ref,
        "changes": keys,
        "allowed": decision.allowed,
        "ruling": decision.ruling,
        "reason": decision.reason,
        "warnings": [f"{w.ruling}: {w.reason}" for w in decision.warnings],
    }
    if shown.override_reason:
        payload["override_reason"] = shown.override_reason
    with ctx.ledger.transaction() as session:
        audit.append(session, actor=actor, action=action, subject=f"roles:{decision_ref}", payload=payload, at=ctx.now)


def record_refusal(ctx: Ctx, shown: RolesPlan, *, decision_ref: str, actor: str) -> None:
    """Audit a refused plan (``roles.refused``) with the changes it would have made."""
    _record(
        ctx,
        shown,
        decision_ref=decision_ref,
        actor=actor,
        action="roles.refused",
        keys=[c.key(decision_ref) for c in shown.plan.changes],
    )


def _change_lines(shown: RolesPlan, platforms: list[str]) -> list[str]:
    """Per platform, the number of changes, then each grant (``+``) and revocation (``-``)."""
    lines: list[str] = []
    for platform in platforms:
        mine = [c for c in shown.plan.changes if c.platform == platform]
        lines.append(f"{platform}: {len(mine)} change(s)")
        for c in mine:
            sign, word = ("+", "to") if c.action == "grant" else ("-", "from")
            lines.append(f"  {sign} {c.action} {c.role} {word} {c.person}")
    return lines


def _verdict_lines(shown: RolesPlan, platforms: list[str]) -> list[str]:
    """The verdict, its violations (refused) or warnings, an override, and, when refused or
    warned, the admins each platform would have after the plan."""
    d = shown.plan.decision
    lines = [verdict_line(shown)]
    lines += [f"  {v.ruling} {v.subject}: {v.reason}" for v in (d.violations if not d.allowed else d.warnings)]
    if shown.override_reason and d.allowed and d.warnings:
        lines.append(f"override recorded: {shown.override_reason}")
    if not d.allowed or d.warnings:
        after = admins_of(_after(shown))
        lines += [
            f"  resulting {ADMIN}s on {platform}: {', '.join(sorted(after.get(platform, []))) or 'nobody'}"
            for platform in platforms
        ]
    return lines


def format_plan(shown: RolesPlan) -> str:
    """The plan as text: per platform, grants and revocations; then the verdict and, when
    refused, the resulting state (admins per platform) the refusal is about."""
    platforms = sorted({a.platform for a in shown.observed | shown.desired} | {c.platform for c in shown.plan.changes})
    lines = _change_lines(shown, platforms)
    lines += [f"skipped: {item}" for item in shown.skipped]
    lines += _verdict_lines(shown, platforms)
    counts = shown.plan.decision.evidence.get("admin_counts", {})
    shown_counts = [counts[p] for p in counts if p in platforms]
    if shown_counts:
        lines.append("admins after the plan (R-ADMIN-2 counts WG members only):")
        lines += [f"  {line}" for line in shown_counts]
    return "\n".join(lines)


def verdict_line(shown: RolesPlan) -> str:
    """``verdict: allowed (R-…): …``; a platform not reached makes the verdict on it unknown:
    ``verdict: allowed for discourse (…): …; unknown for discord (not reached: …)``."""
    d = shown.plan.decision
    verdict = "allowed" if d.allowed else "REFUSED"
    if not shown.unreached:
        return f"verdict: {verdict} ({d.ruling}): {d.reason}"
    unknown = "; ".join(f"unknown for {p} (not reached: {why})" for p, why in sorted(shown.unreached.items()))
    reached = sorted(shown.plan_platforms())
    if not reached:
        return f"verdict: {unknown} (no platform was reached; nothing can be judged)"
    return f"verdict: {verdict} for {', '.join(reached)} ({d.ruling}): {d.reason}; {unknown}"


def _after(shown: RolesPlan) -> set[Assignment]:
    after = set(shown.observed)
    for c in shown.plan.changes:
        a = Assignment(platform=c.platform, role=c.role, person=c.person)
        (after.add if c.action == "grant" else after.discard)(a)
    return after


# Platform answers that a person must fix in the platform's settings, and how.
HINTS = (
    (
        "discourse",
        "HTTP 404",
        "Fix on the Forum: the API user must be an admin (Discourse answers "
        "404 on admin routes to anyone else). Set CHARTERFLOW_DISCOURSE_API_USERNAME to an admin "
        "account, or give the API key the admin scopes (Admin → Advanced → API keys).",
    ),
    (
        "discord",
        "50013",
        "Fix on Discord: Server Settings → Roles; the bot's role needs Manage "
        "Roles and must sit above every role charterflow grants "
        "(https://discord.com/developers/docs/topics/permissions#permission-hierarchy).",
    ),
)


def explain(platform: str, message: str) -> str:
    """``message`` with the instruction for a platform refusal a person must fix (Discourse 404
    on admin routes, Discord 50013), if it is one; pure."""
    for where, marker, hint in HINTS:
        if platform == where and marker in message:
            return f"{message} {hint}"
    return message


def decision_ref_for(ctx: Ctx, prefix: str = "roles-apply") -> str:
    """A decision reference for one run: ``<prefix>-<UTC timestamp>``."""
    return f"{prefix}-{ctx.now:%Y%m%dT%H%M%SZ}"


__all__ = [
    "Observation",
    "RolesPlan",
    "admin_lines",
    "apply_plan",
    "build_plan",
    "decision_ref_for",
    "explain",
    "format_plan",
    "is_platform_account",
    "lifted",
    "member_handles",
    "observe",
    "person_order",
    "record_refusal",
    "roles_to_observe",
    "verdict_line",
    "state_of",
]
