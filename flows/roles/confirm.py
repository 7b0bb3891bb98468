"""Discourse admin grants need a human (API-NOTES "Roles"): ``grant_admin`` only sends the
acting API admin an e-mail whose link completes the grant.

Inside a flow run, :func:`await_admin_confirmation` pauses the run with a typed input in the
Prefect UI ("confirmed the e-mail?", :class:`AdminConfirmation`) for at most
``CHARTERFLOW_ROLES_ADMIN_CONFIRM_TIMEOUT_SECONDS`` (default 3 hours, the link's life), then
re-reads the user's admin flag on Discourse: only an observed flag counts as granted, whatever
the answer. A timeout or "no" (without the flag) records "not applied" (audit
``roles.admin-confirmation``) and tells the proposer; the WG's decision stays recorded, so the
next ``roles apply`` (or the same change again) sends a new e-mail. Outside a flow run (the CLI)
nothing waits: the grant is reported pending.

Settings (environment, prefix ``CHARTERFLOW_ROLES_``): ``ADMIN_CONFIRM_TIMEOUT_SECONDS``,
``ADMIN_CONFIRM_POLL_SECONDS`` (how often the paused run looks for the answer, default 10),
``SLACK_CHANNEL`` (the drift audit's Slack channel id; unset: a group DM to the admins).
"""

from __future__ import annotations

import logging
from typing import Any

from prefect.context import FlowRunContext
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from connectors.base import Role, UserRef
from flows.kit import Ctx
from ledger import audit, repo
from ledger.models import Person

log = logging.getLogger("charterflow.roles")


class RolesSettings(BaseSettings):
    """``CHARTERFLOW_ROLES_*`` (see the module docstring)."""

    model_config = SettingsConfigDict(env_prefix="CHARTERFLOW_ROLES_", env_file=".env", extra="ignore")
    admin_confirm_timeout_seconds: int = Field(
        default=3 * 3600,
        ge=1,
        description=("How long a Discourse admin grant waits for the e-mailed confirmation (then: not applied)."),
    )
    admin_confirm_poll_seconds: int = Field(
        default=10, ge=1, description=("How often the paused grant re-reads the user's admin flag, seconds.")
    )
    slack_channel: str | None = Field(
        default=None, description=("Slack channel for drift reports (default: a group DM to the WG admins on Slack).")
    )


class AdminConfirmation(RunInput):
    """The operator's answer in the Prefect UI."""

    confirmed: bool = Field(
        default=False, description=("Did someone open the confirmation link Discourse e-mailed to its API admin?")
    )
    note: str = Field(default="", max_length=500, description="Optional note for the record.")


def in_flow_run() -> bool:
    """True inside a Prefect flow run (where a run can pause)."""
    return FlowRunContext.get() is not None


def forum_operator(ctx: Ctx) -> str:
    """The account Discourse e-mails an admin grant's confirmation to (its API admin)."""
    space = ctx.platforms.space("discourse")
    return space.operator_name() if space is not None else "the API admin"


def holds_admin(ctx: Ctx, user: UserRef) -> bool:
    """Whether Discourse shows ``user`` as an admin now (a fresh read)."""
    space = ctx.platforms.space("discourse")
    assert space is not None and space.roles is not None
    return any(str(u.id) == str(user.id) for u in space.roles.list_holders(Role.admin()))


def await_admin_confirmation(
    ctx: Ctx,
    *,
    person_id: int,
    user: UserRef,
    decision_ref: str,
    actor: str,
    timeout: int | None = None,
    poll: int | None = None,
) -> dict[str, Any]:
    """Pause for the operator's answer, then re-read the flag; records the outcome. Returns
    ``{"granted": bool, "answer": "yes"|"no"|"timeout", "why": str}``."""
    settings = RolesSettings()
    timeout = timeout or settings.admin_confirm_timeout_seconds
    poll = poll or settings.admin_confirm_poll_seconds
    api_user = forum_operator(ctx)
    form = AdminConfirmation.with_initial_data(
        description=(
            f"**Discourse admin grant for {user.username}** ({decision_ref}).\n\n"
            f"Discourse e-mailed a confirmation link to its API admin ({api_user}). "
            "Open it, then answer here. Only the admin flag Discourse shows afterwards "
            "counts."
        ),
        confirmed=False,
    )
    try:
        answer = pause_flow_run(
            wait_for_input=form, timeout=timeout, poll_interval=poll, key=f"discourse-admin-{person_id}"
        )
        said = "yes" if answer.confirmed else "no"
        note = answer.note
    except FlowPauseTimeout:
        said, note = "timeout", ""
    granted = holds_admin(ctx, user)
    if granted:
        why = "Discourse shows the admin flag"
    elif said == "timeout":
        why = f"nobody answered within {timeout // 60} minutes"
    elif said == "yes":
        why = "the operator said the link was opened, but Discourse does not show the flag"
    else:
        why = "the operator said the link was not opened"
    with ctx.ledger.transaction() as session:
        person = session.get_one(Person, person_id)
        repo.record_observed_platform_role(
            session, person, platform="discourse", role="admin", observed=granted, actor=actor, at=ctx.now
        )
        audit.append(
            session,
            actor=actor,
            action="roles.admin-confirmation",
            subject=f"person:{person_id}",
            at=ctx.now,
            payload={
                "decision": decision_ref,
                "answer": said,
                "outcome": "applied" if granted else "not-applied",
                "note": audit.content_digest(note) if note else None,
            },
        )
    return {"granted": granted, "answer": said, "why": why}
