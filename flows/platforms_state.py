"""The approved platforms as data (R-PLATFORM, issue 20): what the Board's approval of a
platform proposal changes, the question at a trial's end, and a retirement that revokes roles
first.

* :func:`charter_in_force` (``flows.kit``) is the charter the flows judge with (``Ctx.charter``):
  its platforms are the ledger's approved ones plus each trial platform whose first admin was
  granted (``rules.platforms.admin_platforms``), so R-ADMIN-1/2 follow the list.
* :func:`record_board_outcome` runs once the Board's approval is recorded and before it is
  announced: the transitions ``rules.platforms.decide_proposal`` allows are appended to the
  ledger (``platform.state``) or the refusal is audited (``platform.refused``), once per proposal.
* :func:`follow_up` then tells the WG and, for a platform now ``retiring``, runs
  :func:`retire`: every role the ledger manages there is set "not wanted", revoked through the
  roles plan/apply (``flows.roles.plan``), and only when none is held any more the platform is
  marked ``retired``. A platform without a connector here is reported, never a crash.
* :func:`platforms_trial_ends` (daily) asks the WG, once per trial end date, to propose migrate,
  keep trialling or retire, and records when a trial platform's first admin was granted.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from prefect import flow

from flows.kit import Ctx, artifact, charter_in_force, context, log, post_wg
from flows.presentation import templates as _env
from flows.roles.plan import apply_plan, build_plan, role_rows
from ledger import audit, repo
from ledger import platforms as ledger_platforms
from ledger.models import BoardDecision, Person, Proposal
from rules import Decision, plan_roles
from rules.platforms import (
    PLATFORM_KINDS,
    RETIRING,
    RULING,
    PlatformState,
    check_name,
    decide_proposal,
    may_retire,
    trials_ended,
)

ACTOR = "flow:platforms"

__all__ = [
    "charter_in_force",
    "check_proposal",
    "follow_up",
    "platform_states",
    "platforms_retire",
    "platforms_trial_ends",
    "record_board_outcome",
    "retire",
    "role_platforms",
]


def render(template: str, **values: Any) -> tuple[str, str]:
    """Render ``templates/platforms/<template>.md.j2``: first line the title, the rest the body."""
    text = _env.get_template(f"platforms/{template}.md.j2").render(**values).strip()
    title, _, body = text.partition("\n")
    return title.strip(), body.strip()


def _file_charter(ctx: Ctx) -> Any:
    return ctx.platforms.charter


def platform_states(ctx: Ctx) -> dict[str, PlatformState]:
    """Every platform's state in the ledger (the charter file's list until a change is
    recorded)."""
    with ctx.ledger.read() as session:
        return ledger_platforms.states(session, charter_platforms=_file_charter(ctx).platforms)


def role_platforms(ctx: Ctx, *, grant: bool) -> list[str]:
    """Where a role may be granted (approved and trial platforms) or revoked (any platform
    not retired)."""
    wanted = ("approved", "trial") if grant else ("approved", "trial", RETIRING)
    return [p for p, s in platform_states(ctx).items() if s.state in wanted]


# --------------------------------------------------------------------------------------------
# Filing: a proposal names a platform the list allows


def check_proposal(
    ctx: Ctx, *, kind: str, platform: str | None, replaces: str | None, ends_at: datetime | None
) -> Decision | None:
    """What the Board's approval of this proposal would change, judged on today's list (None
    for a proposal that is not about a platform). Refused: an unknown platform to retire or
    migrate from, the last approved platform, a trial of a platform in use, a bad end date."""
    if kind not in PLATFORM_KINDS:
        return None
    return decide_proposal(
        platform_states(ctx),
        kind=kind,
        platform=platform,
        replaces=replaces,
        ends_at=ends_at,
        now=ctx.now,
        charter=_file_charter(ctx),
    )


# --------------------------------------------------------------------------------------------
# The Board's decision


def record_board_outcome(ctx: Ctx, *, proposal_id: int) -> dict[str, Any] | None:
    """After the Board's approval of a platform proposal is recorded, before it is announced:
    append the transitions it makes (or audit why it cannot), once per proposal. None for a
    proposal that is not an approved platform proposal."""
    key = f"platform:board-outcome:{proposal_id}"
    with ctx.ledger.transaction() as session:
        found = repo.effect_get(session, key=key)
        if found is not None:
            return dict(found["ref"])
        proposal = session.get(Proposal, proposal_id)
        if proposal is None or proposal.kind not in PLATFORM_KINDS or proposal.decision != BoardDecision.APPROVED:
            return None
        file_platforms = _file_charter(ctx).platforms
        states = ledger_platforms.states(session, charter_platforms=file_platforms)
        try:
            decision = decide_proposal(
                states,
                kind=proposal.kind,
                platform=proposal.platform,
                replaces=proposal.replaces_platform,
                ends_at=proposal.trial_ends_at,
                now=ctx.now,
                charter=_file_charter(ctx),
            )
        except ValueError as exc:  # a proposal filed before proposals named their platform
            decision = Decision(allowed=False, ruling=RULING, reason=str(exc))
        changes = []
        if decision.allowed:
            for t in decision.evidence["changes"]:
                row = ledger_platforms.record_state(
                    session,
                    platform=t.platform,
                    state=t.state,
                    actor=ACTOR,
                    decided_by=f"board:{proposal.decision_source or 'slack'}",
                    charter_platforms=file_platforms,
                    at=ctx.now,
                    trial_ends_at=t.trial_ends_at,
                    proposal_id=proposal_id,
                    note=decision.reason,
                )
                changes.append(
                    {
                        "platform": t.platform,
                        "state": t.state,
                        "row": row.id,
                        "trial_ends_at": t.trial_ends_at.isoformat() if t.trial_ends_at else None,
                    }
                )
        else:
            audit.append(
                session,
                actor=ACTOR,
                action="platform.refused",
                subject=f"proposal:{proposal_id}",
                at=ctx.now,
                payload={
                    "ruling": decision.ruling,
                    "kind": proposal.kind,
                    "platform": proposal.platform,
                    "reason": decision.reason,
                },
            )
        outcome = {
            "proposal": proposal_id,
            "allowed": decision.allowed,
            "ruling": decision.ruling,
            "reason": decision.reason,
            "changes": changes,
            "kind": proposal.kind,
            "title": proposal.title,
        }
        repo.effect_record(
            session, key=key, platform="ledger", actor=ACTOR, ref=outcome, about=f"proposal:{proposal_id}", at=ctx.now
        )
        return outcome


def _line(change: dict[str, Any]) -> str:
    until = change.get("trial_ends_at")
    end = f" until {until[:10]}" if until else ""
    return f"{change['platform']}: {change['state']}{end}"


def follow_up(ctx: Ctx, *, proposal_id: int) -> dict[str, Any] | None:
    """After the Board's decision is announced: tell the WG what changed in the platform list
    (or why nothing did), then retire each platform the decision made ``retiring``. Each step
    once; safe to run again (a retirement that could not finish continues)."""
    outcome = record_board_outcome(ctx, proposal_id=proposal_id)
    if outcome is None:
        return None
    about = f"proposal:{proposal_id}"
    if not outcome["allowed"]:
        post_wg(
            ctx,
            template="refused_wg",
            key=f"platform:refused-wg:{proposal_id}",
            actor=ACTOR,
            about=about,
            renderer=render,
            proposal_id=proposal_id,
            kind=outcome["kind"],
            title=outcome["title"],
            reason=outcome["reason"],
            ruling=outcome["ruling"],
        )
        artifact(
            key=f"proposal-{proposal_id}-platforms",
            title="Platform list not changed",
            decision=Decision(allowed=False, ruling=outcome["ruling"], reason=outcome["reason"]),
        )
        return {**outcome, "retired": {}}
    changes = outcome["changes"]
    retiring = [c["platform"] for c in changes if c["state"] == RETIRING]
    if outcome["kind"] == "retire-platform" and not changes:
        # Already retiring (a migration marked it): this approval finishes the retirement.
        retiring = [platform_of(ctx, proposal_id)]
    post_wg(
        ctx,
        template="state_wg",
        key=f"platform:state-wg:{proposal_id}",
        actor=ACTOR,
        about=about,
        renderer=render,
        proposal_id=proposal_id,
        headline="; ".join(_line(c) for c in changes) or outcome["reason"],
        lines=[_line(c) for c in changes],
        reason=outcome["reason"],
        retiring=retiring,
        trial=any(c["state"] == "trial" for c in changes),
    )
    artifact(
        key=f"proposal-{proposal_id}-platforms",
        title="Platform list changed",
        decision=Decision(allowed=True, ruling=RULING, reason=outcome["reason"]),
        rows={c["platform"]: _line(c) for c in changes},
    )
    retired = {
        p: retire(ctx, platform=p, decision_ref=f"platform-retire:{p}:proposal:{proposal_id}") for p in retiring if p
    }
    return {**outcome, "retired": retired}


def platform_of(ctx: Ctx, proposal_id: int) -> str:
    with ctx.ledger.read() as session:
        return session.get_one(Proposal, proposal_id).platform or ""


# --------------------------------------------------------------------------------------------
# Retirement: roles first


def _managed_rows(ctx: Ctx, platform: str) -> list[tuple[int, str, str, bool, bool | None]]:
    """(person id, handle, role, desired, observed) of every ledger role row on ``platform``."""
    return [
        (pid, handle, role, desired, observed)
        for pid, handle, plat, role, desired, observed in role_rows(ctx)
        if plat == platform
    ]


def _unwant(ctx: Ctx, platform: str, *, decision_ref: str) -> int:
    """Record that the WG no longer wants any role on ``platform`` (R-PLATFORM)."""
    rows = [r for r in _managed_rows(ctx, platform) if r[3]]
    if rows:
        with ctx.ledger.transaction() as session:
            for person_id, _handle, role, _d, _o in rows:
                repo.set_desired_platform_role(
                    session,
                    session.get_one(Person, person_id),
                    platform=platform,
                    role=role,
                    desired=False,
                    actor=ACTOR,
                    decision_ref=decision_ref,
                    at=ctx.now,
                )
    return len(rows)


def _plan_on(ctx: Ctx, platform: str, *, override_reason: str) -> Any:
    """The roles plan (``flows.roles.plan.build_plan``) reduced to ``platform``: the other
    platforms stay as observed. The removal limit is lifted by a recorded override: the
    Board approved revoking every role there."""
    shown = build_plan(ctx, tolerate_unreachable=True)
    desired = {a for a in shown.observed if a.platform != platform} | {
        a for a in shown.desired if a.platform == platform
    }
    plan = plan_roles(
        desired,
        shown.observed,
        charter=ctx.charter,
        override_reason=override_reason,
        members=shown.members,
        platform_accounts=shown.builtin,
    )
    return replace(shown, plan=plan, desired=frozenset(desired), override_reason=override_reason)


@dataclass(kw_only=True)
class _Revoked:
    """What a retirement's revocations did on the platform."""

    reachable: bool
    applied: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    left: list[Any] = field(default_factory=list)  # managed roles still held
    unmanaged: list[str] = field(default_factory=list)


def _revoke_all(ctx: Ctx, platform: str, *, decision_ref: str) -> _Revoked:
    """Revoke every managed role on ``platform`` through the roles plan/apply, then read what
    is still held; a platform not reached here is read from the ledger instead."""
    space = ctx.platforms.space(platform)
    if space is not None and space.roles is not None:
        shown = _plan_on(
            ctx,
            platform,
            override_reason=f"retirement of {platform} approved by the Board (R-PLATFORM, {decision_ref})",
        )
        if platform not in shown.unreached:
            out = _Revoked(reachable=True)
            if shown.plan.changes:
                result = apply_plan(ctx, shown, decision_ref=decision_ref, actor=ACTOR)
                out.applied, out.failed = result["applied"], result["failed"]
            after = _plan_on(ctx, platform, override_reason="check")
            managed = {(h, r) for _p, h, r, _d, _o in _managed_rows(ctx, platform)}
            held = [a for a in after.observed if a.platform == platform]
            out.left = [a for a in held if (a.person, a.role) in managed]
            out.unmanaged = sorted({f"{a.person} ({a.role})" for a in held if (a.person, a.role) not in managed})
            return out
    return _Revoked(reachable=False, left=[r for r in _managed_rows(ctx, platform) if r[4]])


def _retire_waits(ctx: Ctx, platform: str, done: _Revoked, decision: Decision, *, decision_ref: str) -> dict[str, Any]:
    """Roles are left or the platform is not reached: audited, the WG told why, it stays
    retiring."""
    about = f"platform:{platform}"
    with ctx.ledger.transaction() as session:
        audit.append(
            session,
            actor=ACTOR,
            action="platform.retire-waits",
            subject=about,
            at=ctx.now,
            payload={
                "ruling": decision.ruling,
                "left": len(done.left),
                "reachable": done.reachable,
                "decision": decision_ref,
            },
        )
    post_wg(
        ctx,
        template="retiring_wg",
        key=f"platform:retiring-wg:{decision_ref}:{len(done.left)}",
        actor=ACTOR,
        about=about,
        renderer=render,
        name=platform,
        reason=decision.reason,
        failed=[f"{k}: {v}" for k, v in done.failed.items()],
    )
    artifact(
        key=f"platform-{platform}-retiring",
        title=f"{platform} stays retiring",
        decision=decision,
        rows={"revoked now": len(done.applied), "left": len(done.left)},
    )
    log.warning("platforms: %s stays retiring: %s", platform, decision.reason)
    return {
        "platform": platform,
        "status": RETIRING,
        "reason": decision.reason,
        "revoked": done.applied,
        "failed": done.failed,
    }


def _mark_retired(ctx: Ctx, platform: str, done: _Revoked, decision: Decision, *, decision_ref: str) -> dict[str, Any]:
    with ctx.ledger.transaction() as session:
        current = ledger_platforms.states(session, charter_platforms=_file_charter(ctx).platforms)
        if current[platform].state == RETIRING:  # a concurrent run may have finished it
            ledger_platforms.record_state(
                session,
                platform=platform,
                state="retired",
                actor=ACTOR,
                decided_by="flow:platforms",
                charter_platforms=_file_charter(ctx).platforms,
                at=ctx.now,
                note=decision.reason,
            )
    post_wg(
        ctx,
        template="retired_wg",
        key=f"platform:retired-wg:{platform}:{decision_ref}",
        actor=ACTOR,
        about=f"platform:{platform}",
        renderer=render,
        name=platform,
        revoked=len(done.applied),
        unmanaged=done.unmanaged,
    )
    artifact(
        key=f"platform-{platform}-retired",
        title=f"{platform} retired",
        decision=decision,
        rows={"revoked now": len(done.applied), "unmanaged holders left": len(done.unmanaged)},
    )
    return {
        "platform": platform,
        "status": "retired",
        "reason": decision.reason,
        "revoked": done.applied,
        "failed": done.failed,
        "unmanaged": done.unmanaged,
    }


def retire(ctx: Ctx, *, platform: str, decision_ref: str) -> dict[str, Any]:
    """Retire a ``retiring`` platform: revoke every role the ledger manages there through the
    roles plan/apply, then mark it ``retired``. Unmanaged holders are not changed (listed). A
    platform not reached here, or a revocation that failed, leaves it ``retiring`` and the WG
    is told why; running again continues."""
    fresh = Ctx(ledger=ctx.ledger, platforms=ctx.platforms, now=ctx.now)
    state = platform_states(fresh).get(platform)
    if state is None or state.state != RETIRING:
        decision = may_retire(state, managed_roles_left=0)
        return {"platform": platform, "status": state.state if state else "unknown", "reason": decision.reason}
    _unwant(fresh, platform, decision_ref=decision_ref)
    done = _revoke_all(fresh, platform, decision_ref=decision_ref)
    decision = may_retire(state, managed_roles_left=len(done.left), unreachable=not done.reachable)
    if not decision.allowed:
        return _retire_waits(fresh, platform, done, decision, decision_ref=decision_ref)
    return _mark_retired(fresh, platform, done, decision, decision_ref=decision_ref)


# --------------------------------------------------------------------------------------------
# Flows


def _note_first_admins(ctx: Ctx) -> list[str]:
    """Record, once, when each trial platform's first admin was granted (it counts for
    R-ADMIN-1/2 from then, even if that admin is revoked later)."""
    noted = []
    with ctx.ledger.transaction() as session:
        rows = ledger_platforms.history(session)
        recorded = {r.platform for r in rows if r.first_admin_at is not None}
        for name, state in ledger_platforms.states(session, charter_platforms=_file_charter(ctx).platforms).items():
            if state.state == "trial" and state.first_admin_at and name not in recorded:
                if (
                    ledger_platforms.record_first_admin(
                        session,
                        platform=name,
                        first_admin_at=state.first_admin_at,
                        actor=ACTOR,
                        charter_platforms=(),
                        at=ctx.now,
                    )
                    is not None
                ):
                    noted.append(name)
    return noted


@flow(name="platforms-trial-ends", flow_run_name="platforms-trial-ends", log_prints=True)
def platforms_trial_ends(now: datetime | None = None) -> dict[str, Any]:
    """Daily: each trial whose end date has come asks the WG, once per end date, to propose
    migrate, keep trialling or retire (R-PLATFORM); a trial platform's first admin grant is
    recorded. ``now``: empty = the real clock."""
    ctx = context(now)
    noted = _note_first_admins(ctx)
    asked = []
    for end in trials_ended(platform_states(ctx), now=ctx.now):
        with ctx.ledger.transaction() as session:
            if repo.effect_get(session, key=end.key) is None:
                # Recorded before it is announced: the question is a decision of the charter.
                audit.append(
                    session,
                    actor=ACTOR,
                    action="platform.trial-ended",
                    subject=f"platform:{end.platform}",
                    at=ctx.now,
                    payload={"ends_at": audit.format_time(end.ends_at), "ruling": RULING},
                )
                repo.effect_record(
                    session,
                    key=end.key,
                    platform="ledger",
                    actor=ACTOR,
                    ref={"platform": end.platform},
                    about=f"platform:{end.platform}",
                    at=ctx.now,
                )
                asked.append(end.platform)
        post_wg(
            ctx,
            template="trial_end_wg",
            key=f"{end.key}:wg",
            actor=ACTOR,
            about=f"platform:{end.platform}",
            renderer=render,
            name=end.platform,
            ends_at=f"{end.ends_at:%Y-%m-%d}",
        )
        artifact(
            key=f"platform-{end.platform}-trial-end", title=f"Trial of {end.platform} ended", decision=end.decision
        )
    return {"asked": asked, "first_admin_recorded": noted}


@flow(name="platforms-retire", flow_run_name="platforms-retire-{platform}", log_prints=True)
def platforms_retire(platform: str, now: datetime | None = None) -> dict[str, Any]:
    """Continue the retirement of a ``retiring`` platform (one a migration replaced, or one
    whose roles could not all be revoked): revoke every role charterflow manages there, then
    mark it retired. A platform in any other state is refused (the Board decides that)."""
    ctx = context(now)
    name = check_name(platform)
    return retire(ctx, platform=name, decision_ref=f"platform-retire:{name}")


def deployments() -> list:
    """This module's deployments (served by ``flows.serve``)."""
    tags = ["charterflow", "platforms"]
    return [
        platforms_trial_ends.to_deployment(
            name="daily",
            cron="15 8 * * *",
            tags=tags,
            description="Asks the WG at a platform trial's end to propose migrate, keep "
            "trialling or retire (R-PLATFORM).",
        ),
        platforms_retire.to_deployment(
            name="operator",
            tags=tags,
            description="Revoke every managed role on a retiring platform, then retire it (R-PLATFORM).",
        ),
    ]
