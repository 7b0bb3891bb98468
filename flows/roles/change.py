"""The ``roles-change`` flow: an operator's typed "grant/revoke ROLE on PLATFORM to PERSON
because REASON" (R-MOD, R-ADMIN-1..3).

Steps: the parts are checked (an unknown person, platform or role, or a platform identity the
person does not have, is refused naming which part); the change is checked with
``rules.plan_roles`` on the state it would make (every platform's observed roles, plus the
ledger's wishes, plus this change); a refusal names the ruling and that state (artifact, audit
entry ``roles.refused``, a note to the WG) and sends nothing. An allowed change is recorded as
the ledger's decision (``platform-role.desired`` with ``decision_ref`` ``roles-change:<person id>@<time>``),
applied through the shared role applier (``flows.reconcile``) with that decision in the platform's audit reason, and
announced to the WG (``templates/roles/change.md.j2``). Running the same change again applies
and announces nothing new.

A Discourse admin grant waits for Discourse's e-mailed confirmation: inside a flow run the run
pauses for the operator's answer (``flows.roles.confirm``) and only the admin flag Discourse then
shows counts. A platform refusing part of a change (Discord 50013, Discourse 404 on admin routes,
an outage) is recorded (audit ``roles.change-failed`` naming what was applied and what failed,
each observed role in the ledger) and shown with the platform's instruction; the flow run fails
with it, and running the same change again sends only the missing part. A granted moderator role
starts the moderator training (``flows.roles.training``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from prefect import flow
from prefect.runtime import flow_run
from sqlalchemy import select

from connectors.base import UserRef
from connectors.errors import FatalError
from flows.kit import (
    Ctx,
    answer_interaction,
    artifact,
    context,
    direct_message_once,
    identities_of,
    person_run_name,
    post_wg,
    user_ref,
)
from flows.platforms import role_text
from flows.platforms_state import role_platforms
from flows.presentation import templates as _env
from flows.reconcile import reconcile_person
from flows.roles.confirm import await_admin_confirmation, forum_operator, in_flow_run
from flows.roles.plan import build_plan, explain, lifted, state_of
from flows.roles.training import start_training
from ledger import audit, repo
from ledger.models import Identity, InboxEvent, Platform, PlatformRoleAssignment
from rules import Change

Action = Literal["grant", "revoke"]
ACTIONS: dict[str, Action] = {"grant": "grant", "revoke": "revoke"}
log = logging.getLogger("charterflow.roles")


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


def parse_change(ctx: Ctx, *, action: str, role: str, platform: str, person: str) -> tuple[Action, str, str, int, str]:
    """Check the parts of a change; returns (action, role text, platform, person id, handle).
    ``role``: ``admin``, ``moderator``, ``wg`` (the platform's WG group/role) or
    ``group:<name>`` of a group the ledger already manages on that platform."""
    verb = ACTIONS.get(action.strip().lower())
    if verb is None:
        raise ChangeRefused("action", f"unknown action {action.strip().lower()!r}: grant or revoke")
    platform = platform.strip().lower()
    space = ctx.platforms.space(platform)
    # R-PLATFORM: roles are granted on approved and trial platforms (a trial's first admin
    # included, before it counts for R-ADMIN-1/2), revoked on any platform still in use.
    if platform not in role_platforms(ctx, grant=verb == "grant") or space is None or space.roles is None:
        served = ", ".join(sorted(ctx.platforms.spaces)) or "none"
        raise ChangeRefused("platform", f"unknown platform {platform!r} (served: {served})")
    text = role.strip()
    if text == "wg":
        text = role_text(space.wg_role)
    known_groups = {role_text(space.wg_role)}
    with ctx.ledger.read() as session:
        known_groups |= set(
            session.scalars(
                select(PlatformRoleAssignment.role).where(PlatformRoleAssignment.platform == Platform(platform))
            )
        )
    if text not in ("admin", "moderator") and not (text.startswith("group:") and text in known_groups):
        raise ChangeRefused(
            "role",
            f"unknown role {role!r} on {platform} (admin, moderator, wg"
            f" or one of {', '.join(sorted(g for g in known_groups if g.startswith('group:')))})",
        )
    with ctx.ledger.read() as session:
        try:
            found = repo.get_person(session, person.strip())
        except Exception as exc:  # NotFound
            raise ChangeRefused("person", f"unknown person {person!r}") from exc
        person_id, handle = found.id, found.handle
        identity = session.scalar(
            select(Identity).where(Identity.person_id == person_id, Identity.platform == Platform(platform))
        )
        if identity is None or not identity.external_id:
            raise ChangeRefused(
                "identity", f"{handle} has no {platform} identity with a platform id; link the account first"
            )
    return verb, text, platform, person_id, handle


@dataclass(frozen=True, kw_only=True)
class _Request:
    """One change as checked by :func:`parse_change`, with who asked and why."""

    action: Action
    text: str
    platform: str
    person_id: int
    handle: str
    reason: str
    actor: str
    override_reason: str | None

    @property
    def change(self) -> Change:
        return Change(action=self.action, platform=self.platform, role=self.text, person=self.handle)

    @property
    def label(self) -> str:
        return f"{self.action}:{self.platform}:{self.text}"

    def values(self) -> dict[str, Any]:
        """The template values every message about the change shows."""
        return {
            "action": self.action,
            "role": self.text,
            "target_platform": self.platform,
            "person": self.handle,
            "reason": self.reason.strip(),
            "requested_by": self.actor,
            "override_reason": self.override_reason,
        }


def _plan(ctx: Ctx, req: _Request) -> Any:
    try:
        return build_plan(
            ctx,
            override_reason=req.override_reason,
            extra=[(req.handle, req.platform, req.text, req.action == "grant")],
        )
    except FatalError as exc:  # a platform cannot be read: say what to fix there
        raise FatalError(explain(exc.platform, str(exc)), platform=exc.platform, status=exc.status) from None


def _refuse(ctx: Ctx, req: _Request, shown: Any) -> dict[str, Any]:
    """A change the guardrails refuse: audited, shown and told to the WG; nothing is sent."""
    decision = shown.plan.decision
    state = shown.resulting_state()
    admins_after = {p: roles.get("admin", []) for p, roles in state.items()}
    with ctx.ledger.transaction() as session:
        audit.append(
            session,
            actor=req.actor,
            action="roles.refused",
            subject=f"person:{req.person_id}",
            payload={
                "change": req.label,
                "reason": req.reason,
                "ruling": decision.ruling,
                "why": decision.reason,
                "admins_after": admins_after,
            },
            at=ctx.now,
        )
    artifact(
        key=f"roles-change-refused-{req.person_id}",
        title=f"Role change refused for {req.handle}",
        decision=decision,
        rows={"change": f"{req.action} {req.text} on {req.platform}", "reason": req.reason},
        evidence={
            "resulting_state": state,
            "violations": [f"{v.ruling} {v.subject}: {v.reason}" for v in decision.violations],
        },
    )
    post_wg(
        ctx,
        template="refused",
        renderer=render,
        key=f"roles-change-refused:{req.person_id}:{req.label}:{ctx.now:%Y%m%dT%H%M%S}",
        actor=req.actor,
        about=f"person:{req.person_id}",
        ruling=decision.ruling,
        ruling_reason=decision.reason,
        admins_after=admins_after,
        **req.values(),
    )
    return {"status": "refused", "ruling": decision.ruling, "reason": decision.reason, "resulting_state": state}


def _record_wish(ctx: Ctx, req: _Request, *, ruling: str) -> str:
    """The ledger's decision (the role wanted or not) and its audit entry; returns the decision
    reference in force (an earlier one when the ledger already wanted this)."""
    mine = f"roles-change:{req.person_id}@{ctx.now:%Y%m%dT%H%M%SZ}"
    with ctx.ledger.transaction() as session:
        row = repo.set_desired_platform_role(
            session,
            repo.get_person(session, req.person_id),
            platform=req.platform,
            role=req.text,
            desired=req.action == "grant",
            actor=req.actor,
            decision_ref=mine,
            at=ctx.now,
        )
        decision_ref = row.decision_ref or mine
        if decision_ref == mine:
            audit.append(
                session,
                actor=req.actor,
                action="roles.change",
                subject=f"person:{req.person_id}",
                payload={
                    "decision": mine,
                    "change": req.label,
                    "reason": req.reason,
                    "ruling": ruling,
                    "override_reason": req.override_reason,
                },
                at=ctx.now,
            )
    return decision_ref


def _outcome(
    ctx: Ctx,
    req: _Request,
    result: dict[str, Any],
    *,
    key: str,
    decision_ref: str,
    notify: Callable[[str, str], None] | None,
    timeout: int | None,
) -> tuple[bool, str]:
    """Whether the change is in force, and the outcome's words; a Discourse admin grant waits
    for its e-mailed confirmation here."""
    applied = key in result["applied"]
    if not applied and key in result["pending"] and req.platform == "discourse" and req.text == "admin":
        applied = _confirm_discourse_admin(
            ctx,
            person_id=req.person_id,
            handle=req.handle,
            decision_ref=decision_ref,
            actor=req.actor,
            notify=notify,
            timeout=timeout,
        )
        return applied, ("applied" if applied else "not applied: the e-mailed confirmation was not completed")
    return applied, "applied" if applied else "awaiting the platform (e.g. an e-mailed confirmation)"


def _announce(
    ctx: Ctx, req: _Request, decision: Any, *, key: str, decision_ref: str, applied: bool, outcome: str
) -> None:
    """Tell the WG about the change and show it as the run's artifact."""
    post_wg(
        ctx,
        template="change",
        renderer=render,
        key=f"roles-change:{key}",
        actor=req.actor,
        about=f"person:{req.person_id}",
        applied=applied,
        outcome=outcome,
        decision_ref=decision_ref,
        ruling=decision.ruling,
        ruling_reason=decision.reason,
        **req.values(),
    )
    artifact(
        key=f"roles-change-{req.person_id}",
        title=f"Role change for {req.handle}",
        decision=decision,
        rows={
            "change": f"{req.action} {req.text} on {req.platform}",
            "decision": decision_ref,
            "outcome": outcome,
            "reason": req.reason,
        },
    )


@dataclass(frozen=True, kw_only=True)
class RoleChangeAsk:
    """One change as asked (the ``roles-change`` flow's parameters), before :func:`parse_change`."""

    action: str
    role: str
    platform: str
    person: str
    reason: str
    actor: str = "operator"
    override_reason: str | None = None


def change_role(
    ctx: Ctx,
    ask: RoleChangeAsk,
    *,
    notify: Callable[[str, str], None] | None = None,
    confirm_timeout: int | None = None,
) -> dict[str, Any]:
    """Check, record, apply and announce one change; see the module docstring. Returns
    ``{"status": "applied"|"recorded"|"unchanged"|"refused"|"failed", ...}``. ``notify(text,
    stage)`` tells the proposer along the way (the ``/role`` follow-up)."""
    if not ask.reason or not ask.reason.strip():
        return _refused_part(ctx, "reason", "a change needs a reason")
    try:
        action, text, platform, person_id, handle = parse_change(
            ctx, action=ask.action, role=ask.role, platform=ask.platform, person=ask.person
        )
    except ChangeRefused as exc:
        return _refused_part(ctx, exc.part, str(exc))
    req = _Request(
        action=action,
        text=text,
        platform=platform,
        person_id=person_id,
        handle=handle,
        reason=ask.reason,
        actor=ask.actor,
        override_reason=ask.override_reason,
    )
    actor = req.actor
    shown = _plan(ctx, req)
    decision = shown.plan.decision
    if not decision.allowed:
        return _refuse(ctx, req, shown)
    # The ledger's decision first, then the platforms (DESIGN: decisions before effects).
    decision_ref = _record_wish(ctx, req, ruling=decision.ruling)
    if req.change not in shown.plan.changes:
        return {"status": "unchanged", "decision": decision_ref}
    result = reconcile_person(lifted(ctx), person_id, decision_ref=decision_ref, actor=actor, report_errors=True)
    result["failed"] = {k: explain(k.split(":", 2)[1], why) for k, why in result["failed"].items()}
    key = req.change.key(decision_ref)
    common = {"decision": decision_ref, "key": key}
    if result["failed"]:
        failed = _record_failure(
            ctx, person_id=person_id, handle=handle, result=result, decision_ref=decision_ref, actor=actor
        )
        return {
            "status": "failed",
            **common,
            "outcome": failed,
            "applied": result["applied"],
            "failed": result["failed"],
        }
    applied, outcome = _outcome(
        ctx, req, result, key=key, decision_ref=decision_ref, notify=notify, timeout=confirm_timeout
    )
    for other in result["applied"]:
        _maybe_train(ctx, other, person_id=person_id, decision_ref=decision_ref, actor=actor)
    _announce(ctx, req, decision, key=key, decision_ref=decision_ref, applied=applied, outcome=outcome)
    return {
        "status": "applied" if applied else "recorded",
        **common,
        "outcome": outcome,
        "resulting_state": state_of(shown.desired),
    }


def _maybe_train(ctx: Ctx, key: str, *, person_id: int, decision_ref: str, actor: str) -> None:
    """Start moderator training for an applied ``grant:<platform>:<person>:moderator:…``."""
    action, platform, _person, role = key.removesuffix(f":{decision_ref}").split(":", 3)
    if action == "grant" and role == "moderator":
        start_training(ctx, person_id=person_id, platform=platform, decision_ref=decision_ref, actor=actor)


def _record_failure(
    ctx: Ctx, *, person_id: int, handle: str, result: dict[str, Any], decision_ref: str, actor: str
) -> str:
    """Audit and show a change a platform refused part of: what is applied where, what failed,
    and the platform's instruction (e.g. Discord 50013: move the bot's role up)."""

    def short(key: str) -> str:  # the audit holds no handles: action:platform:role
        action, platform, _person, role = key.removesuffix(f":{decision_ref}").split(":", 3)
        return f"{action}:{platform}:{role}"

    with ctx.ledger.transaction() as session:
        audit.append(
            session,
            actor=actor,
            action="roles.change-failed",
            subject=f"person:{person_id}",
            at=ctx.now,
            payload={
                "decision": decision_ref,
                "applied": [short(k) for k in result["applied"]],
                "failed": [short(k) for k in result["failed"]],
            },
        )
    lines = [f"applied: {k}" for k in result["applied"]]
    lines += [f"FAILED: {k}: {why}" for k, why in result["failed"].items()]
    message = "; ".join(f"{k.split(':')[1]}: {why}" for k, why in result["failed"].items())
    artifact(
        key=f"roles-change-failed-{person_id}",
        title=f"Role change for {handle}: platform error",
        note=(
            "A platform refused the change. Fix the platform setting named below, then run "
            "the same change again (or `charterflow roles apply --confirm`): only the "
            "missing part is sent."
        ),
        rows={"decision": decision_ref, **{f"line {i + 1}": line for i, line in enumerate(lines)}},
    )
    for key in result["applied"]:
        _maybe_train(ctx, key, person_id=person_id, decision_ref=decision_ref, actor=actor)
    return message


def _confirm_discourse_admin(
    ctx: Ctx,
    *,
    person_id: int,
    handle: str,
    decision_ref: str,
    actor: str,
    notify: Callable[[str, str], None] | None,
    timeout: int | None,
) -> bool:
    """Pause for the e-mailed confirmation (inside a flow run), tell the proposer the outcome."""
    with ctx.ledger.read() as session:
        identity = session.scalar(
            select(Identity).where(Identity.person_id == person_id, Identity.platform == Platform.DISCOURSE)
        )
        assert identity is not None  # parse_change refused a person without one
        user = UserRef(platform="discourse", id=str(identity.external_id), username=str(identity.username or handle))
    if not in_flow_run():
        return False
    api_user = forum_operator(ctx)
    title, text = render(
        "admin_pending", person=handle, target_platform="discourse", api_user=api_user, run_name=_run_name()
    )
    if notify is not None:
        notify(f"**{title}**\n{text}", "pending")
    seen = await_admin_confirmation(
        ctx, person_id=person_id, user=user, decision_ref=decision_ref, actor=actor, timeout=timeout
    )
    title, text = render(
        "admin_outcome",
        granted=seen["granted"],
        person=handle,
        target_platform="discourse",
        decision_ref=decision_ref,
        why=seen["why"],
    )
    if notify is not None:
        notify(f"**{title}**\n{text}", "outcome")
    tell_proposer(ctx, actor=actor, key=f"roles-admin-outcome:{decision_ref}", title=title, text=text)
    artifact(
        key=f"roles-admin-confirmation-{person_id}",
        title=f"Discourse admin grant for {handle}: {'applied' if seen['granted'] else 'NOT applied'}",
        rows={"decision": decision_ref, "answer": seen["answer"], "why": seen["why"]},
    )
    return bool(seen["granted"])


def _run_name() -> str:
    try:
        return str(flow_run.name or "roles-change")
    except Exception:  # noqa: BLE001 - only a label in a message
        return "roles-change"


def tell_proposer(ctx: Ctx, *, actor: str, key: str, title: str, text: str) -> bool:
    """A private message to the proposer when ``actor`` is a person (``person:<id>``): on
    Discord when they have an account there, else on the Forum; once per ``key``."""
    if not actor.startswith("person:"):
        return False
    person_id = int(actor.removeprefix("person:"))
    mine = sorted(identities_of(ctx, person_id), key=lambda i: i.platform.value != "discord")
    for identity in mine:
        space = ctx.platforms.space(identity.platform.value)
        if space is None or space.messenger is None or not identity.username:
            continue
        try:
            direct_message_once(
                ctx, space, user_ref(identity), key=key, actor=actor, about=actor, title=title, text=text
            )
            return True
        except Exception as exc:  # noqa: BLE001 - try the next platform
            log.warning("roles: could not tell %s on %s: %s", actor, space.platform, type(exc).__name__)
    return False


def _refused_part(ctx: Ctx, part: str, message: str) -> dict[str, Any]:
    artifact(key="roles-change-refused", title="Role change refused", note=message, rows={"part": part})
    return {"status": "refused", "part": part, "reason": message}


@flow(name="roles-change", flow_run_name=person_run_name("roles-change", "person"), log_prints=True)
def roles_change(
    action: str,
    role: str,
    platform: str,
    person: str,
    reason: str,
    actor: str = "operator",
    override_reason: str | None = None,
    now: datetime | None = None,
    inbox_event: int | None = None,
    confirm_timeout_seconds: int | None = None,
) -> dict[str, Any]:
    """Grant or revoke ``role`` (admin, moderator, wg, group:<name>) on ``platform`` to
    ``person`` (WG handle or person id) because ``reason``; checked against R-ADMIN-1..3 on the
    resulting state, recorded, applied, announced to the WG. ``override_reason`` lets a refused
    change through and is recorded. ``inbox_event``: the ``/role`` command it comes from (its
    member is answered there). A Discourse admin grant pauses for the e-mailed confirmation
    (``confirm_timeout_seconds``, default ``CHARTERFLOW_ROLES_ADMIN_CONFIRM_TIMEOUT_SECONDS``).
    A platform error fails the run with the platform's instruction, after recording what was
    applied."""
    ctx = context(now)
    notify = interaction_notifier(ctx, inbox_event) if inbox_event is not None else None
    ask = RoleChangeAsk(
        action=action,
        role=role,
        platform=platform,
        person=person,
        reason=reason,
        actor=actor,
        override_reason=override_reason,
    )
    result = change_role(ctx, ask, notify=notify, confirm_timeout=confirm_timeout_seconds)
    if result["status"] == "failed":
        raise FatalError(f"role change {result['decision']} not fully applied: {result['outcome']}", platform=platform)
    return result


def interaction_notifier(ctx: Ctx, event_id: int) -> Callable[[str, str], None]:
    """``notify(text, stage)`` answering the Discord interaction of inbox event ``event_id``
    privately, once per stage (the token lives 15 minutes; later stages may not arrive)."""
    with ctx.ledger.read() as session:
        row = session.get(InboxEvent, event_id)
        attrs = {str(k): str(v) for k, v in (((row.payload or {}) if row else {}).get("attributes") or {}).items()}

    def notify(text: str, stage: str) -> None:
        answer_interaction(
            ctx,
            key=f"roles-command-answer:{event_id}:{stage}",
            actor="flow:roles-change",
            about=f"inbox:{event_id}",
            attributes=attrs,
            text=text,
        )

    return notify
