"""Helpers of the roles tests: desired roles in the ledger, the Slack sandbox, ``/role`` commands.

Seeded admins: Forum ``avery_quill``, ``bram_tolliver`` (and the unmanaged ``system``),
Discord ``cleo_marsh``, ``dario_fenwick``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import select

from connectors.base import Role
from ledger import repo
from ledger.models import AuditEntry, InboxEvent
from tests.support.membership import World, want_role

SEEDED_ADMINS = {"discourse": ["avery_quill", "bram_tolliver"], "discord": ["cleo_marsh", "dario_fenwick"]}


def holders(w: World, platform: str, role: Role) -> set[str]:
    """Who holds ``role`` on ``platform`` now (read through the connector)."""
    return {u.username for u in w.platforms.space(platform).roles.list_holders(role)}


def audit_entries(w: World, action: str) -> list[dict[str, Any]]:
    """The payloads of the audit entries of ``action``, oldest first."""
    with w.ledger.read() as session:
        rows = session.scalars(
            select(AuditEntry.payload_json).where(AuditEntry.action == action).order_by(AuditEntry.seq)
        ).all()
    return [json.loads(r) for r in rows]


def want(w: World, handle: str, platform: str, role: str, desired: bool = True) -> None:
    """Record in the ledger that ``handle`` should (not) hold ``role`` on ``platform``."""
    with w.ledger.transaction() as session:
        want_role(session, repo.get_person(session, handle), platform, role, desired=desired)


@dataclass
class SlackBox:
    """The Slack sandbox on 127.0.0.1 and a connector to it."""

    sandbox: Any
    url: str
    connector: Any

    def texts(self) -> list[str]:
        """Every message text in the workspace (all channels and DMs)."""
        state = httpx.get(f"{self.url}/_sandbox/state", timeout=10).json()
        out = []
        for messages in state["messages"].values():
            for m in messages:
                out.append(json.dumps(m.get("blocks") or []) + (m.get("text") or ""))
        return out


def command(w: World, gateway: Any, *, user: str, **options: str) -> int:
    """``user`` runs Discord ``/role`` with ``options``: the sandbox signs it and sends it to the
    gateway, which defers it and stores it; returns the inbox event id."""
    w.discord_sb.command(w.discord_url, user=user, name="role", options=options)
    with w.ledger.read() as session:
        return session.scalars(
            select(InboxEvent.id).where(InboxEvent.route == "roles-change").order_by(InboxEvent.id.desc())
        ).first()


def followups(w: World) -> list[str]:
    """The texts of the private follow-ups the bot sent to interactions."""
    return [
        m["content"] or "" for m in w.discord_state()["messages"] if m.get("interaction") or (m.get("flags") or 0) & 64
    ]
