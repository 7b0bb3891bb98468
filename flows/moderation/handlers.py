"""The inbox routes of this package (called by ``flows.inbox`` at import): the moderators'
buttons, custom_id prefix ``cfm:``.

- ``cfm:ack:<alert id>``: acknowledge a cross-platform alert; the alert message is edited to
  name who acknowledged it (the first acknowledgement stands).
- ``cfm:link:<link id>:yes|no``: confirm or reject a suggested link between two accounts; a
  confirmed link raises the alerts it was holding back.

Only a moderator or admin of the Discord server may press them (the ``moderator``/``admin``
roles, by the connector's role settings); anyone else is told so and nothing changes.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from flows.kit import answer_interaction, context, is_moderator
from flows.moderation.alerts import raise_alerts, show_acknowledged, show_link_decision
from flows.moderation.common import ACTOR, BUTTON_PREFIX
from ledger import moderation as modlog
from ledger import repo
from ledger.errors import NotFound
from ledger.models import InboxEvent

log = logging.getLogger("charterflow.moderation")
ROUTE = "moderation-button"


def register() -> None:
    """Register this package's routes with ``flows.inbox.register_route``."""
    # lazy: cycle: flows.inbox <-> flows.moderation.handlers (flows.inbox imports this to call register)
    from flows import inbox

    inbox.register_route(
        ROUTE,
        handle_moderation_button,
        discord_component_prefix=BUTTON_PREFIX,
        condition="a moderator's button (custom_id cfm:…): acknowledge an alert, decide a link",
    )


def _is_moderator(ctx: Any, platform: str, attrs: dict[str, str]) -> bool:
    # The press lists the presser's role ids; the connector names the moderator/admin role ids.
    return is_moderator(ctx, platform, role_ids=attrs.get("member_roles", "").split(","))


def _actor(ctx: Any, platform: str, account: str) -> str:
    """The audit log's reference of who pressed: ``person:<id>`` when the ledger knows the
    account, else ``<platform>:unlinked``; never the account id (R-PRIVACY-2: the log is never
    erased, it holds ids of ours only; the alert or link row names who, by username)."""
    with ctx.ledger.read() as session:
        try:
            identity = repo.find_identity(session, platform=platform, external_id=account) if account else None
        except ValueError:  # not a platform the ledger knows
            identity = None
        return f"person:{identity.person_id}" if identity is not None else f"{platform}:unlinked"


def handle_moderation_button(*, ledger: Any, event: InboxEvent, now: datetime | None = None) -> str:
    """Inbox handler for the ``cfm:`` buttons. Returns ``ack:<alert>``, ``link:<id>:<status>``
    or ``refused:<why>``; idempotent (a redelivered press changes nothing twice)."""
    ctx = context(now, ledger=ledger)
    with ctx.ledger.read() as session:
        row = session.get_one(InboxEvent, event.id)
        payload = dict(row.payload or {})
    attrs = {str(k): str(v) for k, v in (payload.get("attributes") or {}).items()}
    who = attrs.get("username") or attrs.get("user_id") or "unknown"
    actor = _actor(ctx, event.source, attrs.get("user_id", ""))
    parts = attrs.get("custom_id", "").split(":")

    def answer(text: str) -> None:
        answer_interaction(
            ctx,
            key=f"moderation:answer:inbox:{event.id}",
            actor=ACTOR,
            about=f"inbox:{event.id}",
            attributes=attrs,
            text=text,
        )

    if not _is_moderator(ctx, event.source, attrs):
        answer("Only moderators can answer moderation alerts and link suggestions.")
        return "refused:not-a-moderator"
    try:
        if len(parts) == 3 and parts[1] == "ack" and parts[2].isdigit():
            alert_id = int(parts[2])
            with ctx.ledger.transaction() as session:
                alert, first = modlog.acknowledge_alert(session, alert_id, by=who, at=ctx.now, actor=actor)
                by = alert.acknowledged_by
            show_acknowledged(ctx, alert_id)
            answer("Acknowledged. Thank you." if first else f"Already acknowledged by {by}.")
            return f"ack:{alert_id}"
        if len(parts) == 4 and parts[1] == "link" and parts[2].isdigit() and parts[3] in ("yes", "no"):
            link_id = int(parts[2])
            with ctx.ledger.transaction() as session:
                link, first = modlog.decide_link(
                    session, link_id, confirm=parts[3] == "yes", by=who, at=ctx.now, actor=actor
                )
                status = link.status
            show_link_decision(ctx, link_id)
            if status == "confirmed":
                raise_alerts(ctx)
            answer(f"Link {link_id}: {status}." if first else f"Link {link_id} was already {status}.")
            return f"link:{link_id}:{status}"
    except NotFound as exc:
        answer(f"Nothing to do: {exc}.")
        return "refused:not-found"
    answer("This button is not understood (unknown custom_id).")
    return "refused:unknown-button"
