"""The ``roles-change`` flow: an operator's typed "grant/revoke ROLE on PLATFORM to PERSON
because REASON" (R-MOD, R-ADMIN-1..3).

Steps: the parts are checked (an unknown person, platform or role, or a platform identity the
person does not have, is refused naming which part); the change is checked with
``rules.plan_roles`` on the state it would make (every platform's observed roles, plus the
ledger's wishes, plus this change); a refusal names the ruling and that state (artifact, audit
entry ``roles.refused``, a note to the WG) and sends nothing. An allowed change is recorded as
the ledger's decision (``platform-role.desired`` with ``decision_ref`` ``roles-change:<person id>@<time>``),
applied through the membership applier with that decision in the platform's audit reason, and
announced to the WG (``templates/roles/change.md.j2``). Running the same change again applies
and announces nothing new.

Not here yet (issue 9): the pause for Discourse's e-mailed ``grant_admin`` confirmation (such a
grant is recorded as desired and reported "not yet applied"), moderator training, drift audit.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from prefect import flow
from sqlalchemy import select

from connectors.errors import CharterflowError
from ledger import audit, repo
from ledger.models import Identity, Platform, PlatformRoleAssignment
from rules import Change

from flows.membership.common import Ctx, artifact, context, post_wg, run_name
from flows.platforms import role_text
from flows.roles.plan import build_plan, lifted, state_of

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
_env = Environment(loader=FileSystemLoader(str(TEMPLATES)), undefined=StrictUndefined,
                   autoescape=False, trim_blocks=True, lstrip_blocks=True)
ACTIONS = ("grant", "revoke")


class ChangeRefused(ValueError):
    """A change that cannot even be planned: ``part`` names what is wrong."""

    def __init__(self, part: str, message: str) -> None:
        super().__init__(message)
        self.part = part


def render(name: str, **values: Any) -> tuple[str, str]:
    """Render ``templates/roles/<name>.md.j2``: first line the title, the rest the body."""
    text = _env.get_template(f"roles/{name}.md.j2").render(**values).strip()
    title, _, body = text.partition("\n")
    return title.strip(), body.strip()


def parse_change(ctx: Ctx, *, action: str, role: str, platform: str,
                 person: str) -> tuple[str, str, str, int, str]:
    """Check the parts of a change; returns (action, role text, platform, person id, handle).
    ``role``: ``admin``, ``moderator``, ``wg`` (the platform's WG group/role) or
    ``group:<name>`` of a group the ledger already manages on that platform."""
    action = action.strip().lower()
    if action not in ACTIONS:
        raise ChangeRefused("action", f"unknown action {action!r}: grant or revoke")
    platform = platform.strip().lower()
    space = ctx.platforms.space(platform)
    if platform not in ctx.charter.platforms or space is None or space.roles is None:
        served = ", ".join(sorted(ctx.platforms.spaces)) or "none"
        raise ChangeRefused("platform", f"unknown platform {platform!r} (served: {served})")
    text = role.strip()
    if text == "wg":
        text = role_text(space.wg_role)
    known_groups = {role_text(space.wg_role)}
    with ctx.ledger.read() as session:
        known_groups |= set(session.scalars(select(PlatformRoleAssignment.role).where(
            PlatformRoleAssignment.platform == Platform(platform))))
    if text not in ("admin", "moderator") and not (text.startswith("group:") and text in known_groups):
        raise ChangeRefused("role", f"unknown role {role!r} on {platform} (admin, moderator, wg"
                                    f" or one of {', '.join(sorted(g for g in known_groups if g.startswith('group:')))})")
    with ctx.ledger.read() as session:
        try:
            found = repo.get_person(session, person.strip())
        except Exception as exc:  # NotFound
            raise ChangeRefused("person", f"unknown person {person!r}") from exc
        person_id, handle = found.id, found.handle
        identity = session.scalar(select(Identity).where(
            Identity.person_id == person_id, Identity.platform == Platform(platform)))
        if identity is None or not identity.external_id:
            raise ChangeRefused("identity", f"{handle} has no {platform} identity with a platform "
                                            "id; link the account first")
    return action, text, platform, person_id, handle


def change_role(ctx: Ctx, *, action: str, role: str, platform: str, person: str, reason: str,
                actor: str = "operator", override_reason: str | None = None) -> dict[str, Any]:
    """Check, record, apply and announce one change; see the module docstring. Returns
    ``{"status": "applied"|"recorded"|"unchanged"|"refused", ...}``."""
    if not reason or not reason.strip():
        return _refused_part(ctx, "reason", "a change needs a reason")
    try:
        action, text, platform, person_id, handle = parse_change(
            ctx, action=action, role=role, platform=platform, person=person)
    except ChangeRefused as exc:
        return _refused_part(ctx, exc.part, str(exc))
    values = {"action": action, "role": text, "target_platform": platform, "person": handle,
              "reason": reason.strip(), "requested_by": actor, "override_reason": override_reason}
    shown = build_plan(ctx, override_reason=override_reason,
                       extra=[(handle, platform, text, action == "grant")])
    decision = shown.plan.decision
    this = Change(action=action, platform=platform, role=text, person=handle)
    if not decision.allowed:
        state = shown.resulting_state()
        admins_after = {p: roles.get("admin", []) for p, roles in state.items()}
        with ctx.ledger.transaction() as session:
            audit.append(session, actor=actor, action="roles.refused",
                         subject=f"person:{person_id}",
                         payload={"change": f"{action}:{platform}:{text}", "reason": reason,
                                  "ruling": decision.ruling, "why": decision.reason,
                                  "admins_after": admins_after}, at=ctx.now)
        artifact(key=f"roles-change-refused-{person_id}", title=f"Role change refused for {handle}",
                 decision=decision, rows={"change": f"{action} {text} on {platform}",
                                          "reason": reason},
                 evidence={"resulting_state": state, "violations": [
                     f"{v.ruling} {v.subject}: {v.reason}" for v in decision.violations]})
        post_wg(ctx, template="refused", renderer=render,
                key=f"roles-change-refused:{person_id}:{action}:{platform}:{text}:{ctx.now:%Y%m%dT%H%M%S}",
                actor=actor, about=f"person:{person_id}", ruling=decision.ruling,
                ruling_reason=decision.reason, admins_after=admins_after, **values)
        return {"status": "refused", "ruling": decision.ruling, "reason": decision.reason,
                "resulting_state": state}
    # The ledger's decision first, then the platforms (DESIGN: decisions before effects).
    mine = f"roles-change:{person_id}@{ctx.now:%Y%m%dT%H%M%SZ}"
    with ctx.ledger.transaction() as session:
        row = repo.set_desired_platform_role(
            session, repo.get_person(session, person_id), platform=platform, role=text,
            desired=action == "grant", actor=actor, decision_ref=mine, at=ctx.now)
        decision_ref = row.decision_ref or mine
        if decision_ref == mine:
            audit.append(session, actor=actor, action="roles.change", subject=f"person:{person_id}",
                         payload={"decision": mine, "change": f"{action}:{platform}:{text}",
                                  "reason": reason, "ruling": decision.ruling,
                                  "override_reason": override_reason}, at=ctx.now)
    if this not in shown.plan.changes:
        return {"status": "unchanged", "decision": decision_ref}
    from flows.membership.roles import reconcile_person

    try:
        result = reconcile_person(lifted(ctx), person_id, decision_ref=decision_ref,
                                  actor=actor)
    except CharterflowError as exc:
        return {"status": "recorded", "decision": decision_ref,
                "outcome": f"not applied: {exc}"}
    key = this.key(decision_ref)
    applied = key in result["applied"]
    outcome = "applied" if applied else "awaiting the platform (e.g. an e-mailed confirmation)"
    post_wg(ctx, template="change", renderer=render, key=f"roles-change:{key}", actor=actor,
            about=f"person:{person_id}", applied=applied, outcome=outcome,
            decision_ref=decision_ref, ruling=decision.ruling, ruling_reason=decision.reason,
            **values)
    artifact(key=f"roles-change-{person_id}", title=f"Role change for {handle}", decision=decision,
             rows={"change": f"{action} {text} on {platform}", "decision": decision_ref,
                   "outcome": outcome, "reason": reason})
    return {"status": "applied" if applied else "recorded", "decision": decision_ref,
            "key": key, "outcome": outcome, "resulting_state": state_of(shown.desired)}


def _refused_part(ctx: Ctx, part: str, message: str) -> dict[str, Any]:
    artifact(key="roles-change-refused", title="Role change refused", note=message,
             rows={"part": part})
    return {"status": "refused", "part": part, "reason": message}


@flow(name="roles-change", flow_run_name=run_name("roles-change", "person"), log_prints=True)
def roles_change(action: str, role: str, platform: str, person: str, reason: str,
                 actor: str = "operator", override_reason: str | None = None,
                 now: datetime | None = None) -> dict[str, Any]:
    """Grant or revoke ``role`` (admin, moderator, wg, group:<name>) on ``platform`` to
    ``person`` (WG handle or person id) because ``reason``; checked against R-ADMIN-1..3 on the
    resulting state, recorded, applied, announced to the WG. ``override_reason`` lets a refused
    change through and is recorded."""
    return change_role(context(now), action=action, role=role, platform=platform, person=person,
                       reason=reason, actor=actor, override_reason=override_reason)
