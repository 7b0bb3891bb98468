"""Queries and writes over the moderation log (issue 13) shared by its flows, its CLI and the
quarterly report: the actions read from each platform, the cursors, the links between accounts
that moderators confirmed, and the alerts. Every write adds an audit entry (references and
counts only, never a name or a reason)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, TypedDict, Unpack

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from ledger import audit
from ledger.errors import Conflict, NotFound
from ledger.models import Identity, Platform
from ledger.models_moderation import ModerationAction, ModerationAlert, ModerationCursor, ModerationLink

# The normalised action names; anything else a platform reports is stored as "other".
ACTIONS = (
    "ban",
    "unban",
    "kick",
    "timeout",
    "untimeout",
    "suspend",
    "unsuspend",
    "silence",
    "unsilence",
    "role_change",
    "message_delete",
    "post_delete",
    "flag_handled",
    "other",
)
LINK_STATUSES = ("suggested", "confirmed", "rejected")


def workload(session: Session, start: datetime, end: datetime) -> list[dict[str, object]]:
    """Actions in ``[start, end)`` counted per platform, month (``YYYY-MM``) and action, sorted."""
    rows = session.execute(
        select(ModerationAction.platform, ModerationAction.action, ModerationAction.occurred_at).where(
            ModerationAction.occurred_at >= start, ModerationAction.occurred_at < end
        )
    ).all()
    counts = Counter((p, at.strftime("%Y-%m"), a) for p, a, at in rows)
    return [{"platform": p, "month": m, "action": a, "count": n} for (p, m, a), n in sorted(counts.items())]


# --- the log and its cursors --------------------------------------------------------------------


def cursor(session: Session, platform: str, instance: str) -> str | None:
    """The last entry id read from ``platform``'s ``instance`` (``None``: nothing read from it
    yet, also when the cursor belongs to another instance: a restored or another Forum)."""
    row = session.get(ModerationCursor, platform)
    return row.last_entry_id if row and row.instance == instance else None


def entry_key(instance: str, entry_id: object) -> str:
    """What ``ModerationAction.entry_id`` holds: the platform's entry id within its instance."""
    if not instance:
        raise ValueError("a moderation entry needs its platform instance")
    return f"{instance}:{entry_id}"


def store_entries(
    session: Session,
    *,
    platform: str,
    instance: str,
    rows: Iterable[Mapping[str, Any]],
    last_entry_id: str,
    at: datetime,
    actor: str = "flow:moderation-sync",
) -> list[int]:
    """Store the entries of one page (``ModerationAction`` fields, ``entry_id`` as the platform
    gave it) of ``platform``'s ``instance`` that are not stored yet, and move the cursor to
    ``last_entry_id``, in the caller's transaction (so rows and cursor commit together).
    Returns the ids of the new rows."""
    rows = [{**r, "entry_id": entry_key(instance, r["entry_id"])} for r in rows]
    wanted = [str(r["entry_id"]) for r in rows]
    known = (
        set(
            session.scalars(
                select(ModerationAction.entry_id).where(
                    ModerationAction.platform == platform, ModerationAction.entry_id.in_(wanted)
                )
            )
        )
        if wanted
        else set()
    )
    new: list[ModerationAction] = []
    for r in rows:
        if str(r["entry_id"]) in known:
            continue
        if r["action"] not in ACTIONS:
            raise ValueError(f"action {r['action']!r} is not one of ledger.moderation.ACTIONS")
        known.add(str(r["entry_id"]))
        item = ModerationAction(**{**r, "platform": platform, "entry_id": str(r["entry_id"]), "recorded_at": at})
        session.add(item)
        new.append(item)
    row = session.get(ModerationCursor, platform)
    if row is None:
        session.add(ModerationCursor(platform=platform, instance=instance, last_entry_id=last_entry_id, updated_at=at))
    else:
        row.instance, row.last_entry_id, row.updated_at = instance, last_entry_id, at
    session.flush()
    audit.append(
        session,
        actor=actor,
        action="moderation.read",
        subject=f"moderation-log:{platform}",
        payload={"stored": len(new), "seen": len(rows), "cursor": last_entry_id, "actions": [n.id for n in new]},
        at=at,
    )
    return [n.id for n in new]


def actions_between(session: Session, start: datetime, end: datetime) -> list[ModerationAction]:
    """Actions that happened in ``[start, end)``, oldest first."""
    return list(
        session.scalars(
            select(ModerationAction)
            .where(ModerationAction.occurred_at >= start, ModerationAction.occurred_at < end)
            .order_by(ModerationAction.occurred_at, ModerationAction.id)
        )
    )


def person_of_account(session: Session, platform: str, account_id: str | None) -> int | None:
    """The ledger person owning this platform account, if any (the identities table)."""
    if not account_id or platform not in {p.value for p in Platform}:
        return None
    found = session.scalar(
        select(Identity.person_id).where(
            Identity.platform == Platform(platform), Identity.external_id == str(account_id)
        )
    )
    return int(found) if found is not None else None


# --- linked accounts -------------------------------------------------------------------------------


def _pair(p1: str, a1: str, u1: str | None, p2: str, a2: str, u2: str | None) -> dict[str, Any]:
    if (p1, a1) > (p2, a2):
        p1, a1, u1, p2, a2, u2 = p2, a2, u2, p1, a1, u1
    return {
        "platform_a": p1,
        "account_a": str(a1),
        "username_a": u1,
        "platform_b": p2,
        "account_b": str(a2),
        "username_b": u2,
    }


def find_link(session: Session, p1: str, a1: str, p2: str, a2: str) -> ModerationLink | None:
    """The link row of this pair of accounts, whatever its status."""
    key = _pair(p1, a1, None, p2, a2, None)
    return session.scalar(
        select(ModerationLink).where(
            ModerationLink.platform_a == key["platform_a"],
            ModerationLink.account_a == key["account_a"],
            ModerationLink.platform_b == key["platform_b"],
            ModerationLink.account_b == key["account_b"],
        )
    )


class LinkedAccount(TypedDict):
    """An account on another platform with the same owner (:func:`linked_accounts`)."""

    platform: str
    account: str
    username: str | None


def linked_accounts(session: Session, platform: str, account_id: str) -> list[LinkedAccount]:
    """The accounts on other platforms that belong to the owner of ``platform``/``account_id``:
    the ledger person's identities, then moderator-confirmed links. Never a suggestion."""
    out: dict[tuple[str, str], str | None] = {}
    person = person_of_account(session, platform, account_id)
    if person is not None:
        for ident in session.scalars(select(Identity).where(Identity.person_id == person)):
            if ident.platform.value != platform and ident.external_id:
                out[(ident.platform.value, ident.external_id)] = ident.username
    for link in session.scalars(
        select(ModerationLink).where(
            ModerationLink.status == "confirmed",
            or_(
                (ModerationLink.platform_a == platform) & (ModerationLink.account_a == str(account_id)),
                (ModerationLink.platform_b == platform) & (ModerationLink.account_b == str(account_id)),
            ),
        )
    ):
        if link.platform_a == platform and link.account_a == str(account_id):
            out.setdefault((link.platform_b, link.account_b), link.username_b)
        else:
            out.setdefault((link.platform_a, link.account_a), link.username_a)
    return [LinkedAccount(platform=p, account=a, username=u) for (p, a), u in sorted(out.items())]


class LinkSides(TypedDict):
    """The two accounts a link joins, as ``suggest_link`` and ``add_link`` take them."""

    platform: str
    account: str
    username: str | None
    other_platform: str
    other_account: str
    other_username: str | None


def suggest_link(
    session: Session,
    *,
    basis: str,
    action_id: int | None,
    at: datetime,
    actor: str = "flow:moderation-sync",
    **sides: Unpack[LinkSides],
) -> tuple[ModerationLink, bool]:
    """Store a suggested link (``basis``: ``username`` or ``email``) unless the pair has a row
    already; returns the row and whether it is new."""
    found = find_link(session, sides["platform"], sides["account"], sides["other_platform"], sides["other_account"])
    if found is not None:
        return found, False
    link = ModerationLink(
        **_pair(
            sides["platform"],
            sides["account"],
            sides["username"],
            sides["other_platform"],
            sides["other_account"],
            sides["other_username"],
        ),
        basis=basis,
        status="suggested",
        suggested_by_action_id=action_id,
        created_at=at,
    )
    session.add(link)
    session.flush()
    audit.append(
        session,
        actor=actor,
        action="moderation.link_suggested",
        subject=f"moderation-link:{link.id}",
        payload={"basis": basis, "platforms": [link.platform_a, link.platform_b], "action": action_id},
        at=at,
    )
    return link, True


def decide_link(
    session: Session, link_id: int, *, confirm: bool, by: str, at: datetime, actor: str
) -> tuple[ModerationLink, bool]:
    """A moderator confirms or rejects a link; returns the row and whether this call decided it
    (a second decision of a decided link changes nothing)."""
    link = session.get(ModerationLink, link_id)
    if link is None:
        raise NotFound(f"no moderation link {link_id}")
    if link.status != "suggested":
        return link, False
    link.status = "confirmed" if confirm else "rejected"
    link.decided_by, link.decided_at = by, at
    session.flush()
    audit.append(
        session,
        actor=actor,
        action=f"moderation.link_{link.status}",
        subject=f"moderation-link:{link.id}",
        payload={"status": link.status},
        at=at,
    )
    return link, True


def add_link(session: Session, *, by: str, at: datetime, actor: str, **sides: Unpack[LinkSides]) -> ModerationLink:
    """An operator or moderator links two accounts directly (confirmed at once)."""
    if sides["platform"] == sides["other_platform"]:
        raise Conflict("a link joins accounts on two different platforms")
    link, new = suggest_link(session, basis="moderator", action_id=None, at=at, actor=actor, **sides)
    if link.status == "suggested":
        link, _ = decide_link(session, link.id, confirm=True, by=by, at=at, actor=actor)
    return link


def links(session: Session, *, status: str | None = None) -> list[ModerationLink]:
    """Link rows (optionally of one status), newest first."""
    query = select(ModerationLink).order_by(ModerationLink.id.desc())
    if status is not None:
        if status not in LINK_STATUSES:
            raise ValueError(f"status must be one of {', '.join(LINK_STATUSES)}")
        query = query.where(ModerationLink.status == status)
    return list(session.scalars(query))


# --- alerts ---------------------------------------------------------------------------------------


def ensure_alert(
    session: Session,
    *,
    action_id: int,
    platform: str,
    linked_account: str | None,
    linked_username: str | None,
    at: datetime,
    actor: str = "flow:moderation-sync",
) -> ModerationAlert:
    """The alert of this action on ``platform``, created (with its audit entry) when new."""
    found = session.scalar(
        select(ModerationAlert).where(ModerationAlert.action_id == action_id, ModerationAlert.platform == platform)
    )
    if found is not None:
        return found
    alert = ModerationAlert(
        action_id=action_id,
        platform=platform,
        linked_account=linked_account,
        linked_username=linked_username,
        created_at=at,
    )
    session.add(alert)
    session.flush()
    audit.append(
        session,
        actor=actor,
        action="moderation.alert",
        subject=f"moderation-alert:{alert.id}",
        payload={"action": action_id, "platform": platform},
        at=at,
    )
    return alert


def mark_alert_posted(
    session: Session, alert_id: int, *, channel_id: str | None, message_id: str | None, at: datetime
) -> None:
    """Where the alert message landed."""
    alert = session.get(ModerationAlert, alert_id)
    if alert is not None and alert.posted_at is None:
        alert.channel_id, alert.message_id, alert.posted_at = channel_id, message_id, at


def acknowledge_alert(
    session: Session, alert_id: int, *, by: str, at: datetime, actor: str
) -> tuple[ModerationAlert, bool]:
    """A moderator acknowledges an alert; the first acknowledgement stands (returns whether this
    call was it)."""
    alert = session.get(ModerationAlert, alert_id)
    if alert is None:
        raise NotFound(f"no moderation alert {alert_id}")
    if alert.acknowledged_at is not None:
        return alert, False
    alert.acknowledged_by, alert.acknowledged_at = by, at
    session.flush()
    audit.append(
        session,
        actor=actor,
        action="moderation.alert_acknowledged",
        subject=f"moderation-alert:{alert.id}",
        payload={"platform": alert.platform},
        at=at,
    )
    return alert, True


def alerts_of(session: Session, action_id: int) -> list[ModerationAlert]:
    """The alerts raised about one action."""
    return list(
        session.scalars(
            select(ModerationAlert).where(ModerationAlert.action_id == action_id).order_by(ModerationAlert.id)
        )
    )
