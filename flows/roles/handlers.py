"""The inbox routes of this package (called by ``flows.inbox`` at import).

* ``roles-change`` ← Discord ``/role`` (options ``action``, ``role``, ``platform``, ``person``,
  ``reason``): :func:`handle_role_command`. Only an active WG member may propose (the Discord
  account must be a ledger identity of a person with an active membership); the change runs as
  the ``roles-change`` flow (same checks, records and announcements as an operator's run, with
  ``actor`` ``person:<id>``) and the member gets a private follow-up: applied, refused with the
  ruling and the state it would have left, which part is unknown, or the platform's error.
* ``roles-training-ack`` ← the Acknowledge button (``custom_id`` ``cft:<training id>``) of a
  moderation guide: :func:`flows.roles.training.handle_training_ack`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flows.kit import answer_interaction, context, done, once
from flows.platforms import current_platforms, use
from flows.roles.change import roles_change
from flows.roles.training import PREFIX, handle_training_ack
from flows.roles.training import ROUTE as TRAINING_ROUTE
from ledger import repo
from ledger.errors import NotFound
from ledger.models import InboxEvent, Platform

ROUTE = "roles-change"
ACTOR = "flow:roles-change"


def _describe(result: dict[str, Any], options: dict[str, str]) -> str:
    """The member's follow-up for a change result; pure."""
    what = (
        f"{options.get('action', '?')} {options.get('role', '?')} on "
        f"{options.get('platform', '?')} {'to' if options.get('action') == 'grant' else 'from'} "
        f"{options.get('person', '?')}"
    )
    status = result.get("status")
    if status == "refused" and "part" in result:
        return f"Not changed ({what}): {result['reason']} (the {result['part']} is the problem)."
    if status == "refused":
        state = result.get("resulting_state") or {}
        admins = "; ".join(f"{p}: {', '.join(r.get('admin', [])) or 'nobody'}" for p, r in state.items())
        return (
            f"Refused by {result['ruling']} ({what}): {result['reason']}. "
            f"Admins it would have left: {admins}. Nothing was sent."
        )
    if status == "unchanged":
        return f"Nothing to do ({what}): the ledger and the platform already agree."
    if status == "applied":
        return f"Done ({what}): applied and announced to the working group ({result['decision']})."
    if status == "failed":
        return (
            f"Recorded but not fully applied ({what}): {result['outcome']}. The operators "
            "were told; once the platform is fixed, the same change sends only what is missing."
        )
    return f"Recorded ({what}): {result.get('outcome', 'not applied yet')} ({result.get('decision')})."


def handle_role_command(*, ledger: Any, event: InboxEvent, now: datetime | None = None) -> str:
    """Inbox handler of Discord ``/role``; idempotent (a replayed event returns the recorded
    outcome and sends nothing). Returns ``roles-change:<status>`` or
    ``refused:R-MOD:not-a-member``."""
    platforms = current_platforms()
    with use(ledger=ledger, platforms=platforms):
        ctx = context(now, ledger=ledger, platforms=platforms)
        key = f"roles-command:{event.id}"
        recorded = done(ctx, key)
        if recorded is not None:
            return f"roles-change:{recorded['ref'].get('status', 'done')}"
        with ledger.read() as session:
            row = session.get(InboxEvent, event.id)
            attrs = {str(k): str(v) for k, v in ((row.payload or {}).get("attributes") or {}).items()}
            person = repo.find_person_by_identity(
                session, platform=Platform.DISCORD, external_id=attrs.get("user_id", "")
            )
            membership = repo.open_membership(session, person) if person else None
            person_id = person.id if person else None
        answer_key = f"roles-command-answer:{event.id}"
        if membership is None or membership.status.value != "active":
            answer_interaction(
                ctx,
                key=f"{answer_key}:final",
                actor=ACTOR,
                about=f"inbox:{event.id}",
                attributes=attrs,
                text="Only members of the working group can propose a platform role change (R-MOD).",
            )
            return "refused:R-MOD:not-a-member"
        options = {k.removeprefix("option."): v for k, v in attrs.items() if k.startswith("option.")}
        state = roles_change(
            action=options.get("action", ""),
            role=options.get("role", ""),
            platform=options.get("platform", ""),
            person=_ledger_id(ledger, options.get("person", "")),
            reason=options.get("reason", ""),
            actor=f"person:{person_id}",
            now=ctx.now,
            inbox_event=event.id,
            return_state=True,
        )
        result = state.result(raise_on_failure=False)
        if isinstance(result, BaseException):
            status = "failed"
            text = (
                f"Recorded but not fully applied: {result}. The operators were told; once "
                "the platform is fixed, the same change sends only what is missing."
            )
        else:
            status = str(result.get("status"))
            text = _describe(result, options)
        answer_interaction(
            ctx, key=f"{answer_key}:final", actor=ACTOR, about=f"inbox:{event.id}", attributes=attrs, text=text
        )
        once(ctx, key=key, platform="discord", actor=ACTOR, about=f"inbox:{event.id}", act=lambda: {"status": status})
        return f"roles-change:{status}"


def _ledger_id(ledger: Any, handle: str) -> str:
    """The person's ledger id for the flow's parameters (R-PRIVACY-3); a name the ledger does
    not know is passed on as typed, for the flow to refuse with it."""
    try:
        with ledger.read() as session:
            return str(repo.get_person(session, handle.strip()).id)
    except NotFound:
        return handle


def register() -> None:
    """Register this package's routes with ``flows.inbox.register_route``."""
    # lazy: cycle: flows.inbox <-> flows.roles.handlers (flows.inbox imports this to call register)
    from flows import inbox

    inbox.register_route(ROUTE, handle_role_command, discord_command="role", condition="slash command /role (R-MOD)")
    inbox.register_route(
        TRAINING_ROUTE,
        handle_training_ack,
        discord_component_prefix=PREFIX,
        condition="a moderation guide's Acknowledge button (custom_id cft:…)",
    )
