"""Moderator training (R-TRAIN): the moderation guide of each platform, sent to a new moderator
with an Acknowledge button; the press recorded; reminders; who has and has not acknowledged.

* :func:`start_training` runs when a moderator role is granted (``roles-change``, ``/role``,
  ``roles apply``): the guide (``templates/roles/training/<platform>.md.j2``) is recorded in the
  ledger (``role_training``, with the digest of the text sent) and then sent once by Discord DM
  with a button ``cft:<training id>``; a person without a Discord account gets it as a Forum
  private message (no button: an operator records the acknowledgement,
  ``charterflow roles training ack``).
* :func:`handle_training_ack` is the inbox handler of the button (route ``roles-training-ack``):
  only the moderator themself can acknowledge; the first press is recorded (who, when).
* The ``roles-training-reminders`` flow (daily) sends again a guide whose sending failed, and
  reminds a moderator every
  ``charter.training.ack_reminder_after_days`` (14) days, at most :data:`MAX_REMINDERS` times,
  while they have not acknowledged and still should hold the moderator role.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime, timedelta
from typing import Any

from prefect import flow
from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.base import UserRef
from flows.kit import Ctx, answer_interaction, artifact, context, once, user_ref
from flows.presentation import TEMPLATES
from flows.presentation import templates as _env
from ledger import repo
from ledger import roles as roles_ledger
from ledger.models import Identity, InboxEvent, Person, Platform, PlatformRoleAssignment
from ledger.models_roles import RoleTraining

log = logging.getLogger("charterflow.roles")

PREFIX = "cft:"
ROUTE = "roles-training-ack"
MAX_REMINDERS = 3
ACTOR = "flow:roles-training"


def guide_platforms() -> tuple[str, ...]:
    """The platforms that have a moderation guide in the repository."""
    folder = TEMPLATES / "roles" / "training"
    return tuple(sorted(p.name.removesuffix(".md.j2") for p in folder.glob("*.md.j2")))


def render_guide(platform: str, **values: Any) -> tuple[str, str]:
    """The guide of ``platform`` as (title, text); pure. ``values``: ``username``,
    ``decision_ref``, ``button`` (whether the message carries the Acknowledge button)."""
    if platform not in guide_platforms():
        raise LookupError(f"no moderation guide for {platform!r} (templates/roles/training/{platform}.md.j2)")
    text = _env.get_template(f"roles/training/{platform}.md.j2").render(**values).strip()
    title, _, body = text.partition("\n")
    return title.strip(), body.strip()


def _render(name: str, **values: Any) -> tuple[str, str]:
    text = _env.get_template(f"roles/{name}.md.j2").render(**values).strip()
    title, _, body = text.partition("\n")
    return title.strip(), body.strip()


def digest(title: str, text: str) -> str:
    """``sha256:<hex>`` of a guide as sent."""
    return "sha256:" + hashlib.sha256(f"{title}\n{text}".encode()).hexdigest()


def _identity(ctx: Ctx, person_id: int, platform: str) -> Identity | None:
    with ctx.ledger.read() as session:
        return session.scalar(
            select(Identity).where(
                Identity.person_id == person_id,
                Identity.platform == Platform(platform),
                Identity.external_id.is_not(None),
            )
        )


def start_training(ctx: Ctx, *, person_id: int, platform: str, decision_ref: str, actor: str) -> dict[str, Any]:
    """Record and send the moderation guide of ``platform`` to a new moderator (once per person
    and platform; a re-run sends nothing). Returns ``{"training": id, "sent_via": platform |
    None, "created": bool}``."""
    if platform not in guide_platforms():
        log.warning("roles: no moderation guide for %s; none sent", platform)
        return {"training": None, "sent_via": None, "created": False}
    discord = _identity(ctx, person_id, "discord")
    space = ctx.platforms.space("discord") if discord is not None else None
    via = "discord" if space is not None else "discourse"
    target = discord if via == "discord" else _identity(ctx, person_id, "discourse")
    if via == "discourse":
        space = ctx.platforms.space("discourse")
    username = (target.username if target is not None else None) or "there"
    title, text = render_guide(platform, username=username, decision_ref=decision_ref, button=via == "discord")
    with ctx.ledger.transaction() as session:
        row, created = roles_ledger.start_training(
            session,
            person_id=person_id,
            platform=platform,
            decision_ref=decision_ref,
            guide_digest=digest(title, text),
            actor=actor,
            at=ctx.now,
        )
        training_id, sent = row.id, row.sent_at is not None
    if sent or target is None or space is None:
        return {"training": training_id, "sent_via": None, "created": created}
    key = f"roles-training:{training_id}"
    user = UserRef(platform=via, id=str(target.external_id), username=str(target.username or ""))
    try:
        ref = once(
            ctx,
            key=key,
            platform=via,
            actor=actor,
            about=f"person:{person_id}",
            act=lambda: space.prompt(
                user=user,
                title=title,
                text=text,
                button_label="Acknowledge",
                custom_id=f"{PREFIX}{training_id}",
                key=key,
            ),
        )
    except Exception as exc:  # noqa: BLE001 - e.g. Discord 50007 (DMs closed): reported, kept
        log.warning("roles: training guide for person:%s not sent on %s: %s", person_id, via, type(exc).__name__)
        return {"training": training_id, "sent_via": None, "created": created, "error": type(exc).__name__}
    with ctx.ledger.transaction() as session:
        row = session.get_one(RoleTraining, training_id)
        roles_ledger.record_training_sent(
            session, row, message_ref=str(ref["ref"].get("id", "")), actor=actor, at=ctx.now
        )
    return {"training": training_id, "sent_via": via, "created": created}


def handle_training_ack(*, ledger: Any, event: InboxEvent, now: datetime | None = None) -> str:
    """Inbox handler of the Acknowledge button (``custom_id`` ``cft:<training id>``): records the
    first press by the moderator themself; anyone else is told it is not theirs. Returns
    ``training:<id>:acknowledged`` (also on a replay), ``refused:not-yours`` or
    ``refused:unknown``."""
    ctx = context(now, ledger=ledger)
    with ctx.ledger.read() as session:
        row = session.get_one(InboxEvent, event.id)
        attrs = {str(k): str(v) for k, v in ((row.payload or {}).get("attributes") or {}).items()}
    custom = attrs.get("custom_id", "")
    answer_key = f"roles-training-ack-answer:{event.id}"
    try:
        training_id = int(custom.removeprefix(PREFIX))
    except ValueError:
        training_id = 0
    with ctx.ledger.transaction() as session:
        training = session.get(RoleTraining, training_id) if training_id else None
        presser = repo.find_person_by_identity(session, platform=Platform.DISCORD, external_id=attrs.get("user_id", ""))
        if training is None:
            outcome, text = "refused:unknown", "This guide is not known any more; nothing recorded."
        elif presser is None or presser.id != training.person_id:
            outcome, text = (
                "refused:not-yours",
                ("This moderation guide was sent to someone else; only they can acknowledge it."),
            )
        else:
            roles_ledger.acknowledge_training(session, training, actor=f"person:{presser.id}", at=ctx.now)
            when = training.acknowledged_at
            outcome = f"training:{training.id}:acknowledged"
            text = (
                f"Thank you: your acknowledgement of the {training.platform} moderation "
                f"guide is recorded ({when:%Y-%m-%d %H:%M} UTC)."
            )
    answer_interaction(ctx, key=answer_key, actor=ACTOR, about=f"inbox:{event.id}", attributes=attrs, text=text)
    return outcome


def due_reminder(sent_at: datetime, reminders: int, *, now: datetime, every_days: int) -> int:
    """The reminder number due at ``now`` (0: none): reminder n is due ``n × every_days`` after
    the guide was sent, at most :data:`MAX_REMINDERS`; pure."""
    elapsed = now - sent_at
    due = min(MAX_REMINDERS, int(elapsed / timedelta(days=every_days)))
    return due if due > reminders else 0


def _desired_moderators(session: Session) -> set[tuple[int, str]]:
    # (person id, platform) of every moderator role the ledger wants held.
    rows = session.execute(
        select(PlatformRoleAssignment.person_id, PlatformRoleAssignment.platform).where(
            PlatformRoleAssignment.role == "moderator", PlatformRoleAssignment.desired
        )
    )
    return {(pid, plat.value) for pid, plat in rows}


def _resend_unsent(ctx: Ctx, moderators: set[tuple[int, str]], *, actor: str) -> list[str]:
    """R-TRAIN: a guide whose sending failed (a platform error, DMs closed then) is sent again,
    once it can be, to each moderator still wanted there; returns the training ids sent."""
    with ctx.ledger.read() as session:
        unsent = [
            (r.id, r.person_id, r.platform, r.decision_ref)
            for r in session.scalars(
                select(RoleTraining).where(RoleTraining.acknowledged_at.is_(None), RoleTraining.sent_at.is_(None))
            )
        ]
    sent = []
    for training_id, person_id, platform, ref in unsent:
        if (person_id, platform) in moderators:
            started = start_training(ctx, person_id=person_id, platform=platform, decision_ref=ref, actor=actor)
            if started["sent_via"]:
                sent.append(f"roles-training:{training_id}")
    return sent


def send_reminders(ctx: Ctx, *, actor: str = ACTOR) -> dict[str, Any]:
    """Send again a guide that could not be sent, and remind every moderator whose guide is
    unacknowledged and a reminder is due (once per reminder: recorded first, then sent under a
    key)."""
    every = ctx.charter.training.ack_reminder_after_days
    with ctx.ledger.read() as session:
        moderators = _desired_moderators(session)
    resent = _resend_unsent(ctx, moderators, actor=actor)
    with ctx.ledger.read() as session:
        rows = [
            (r.id, r.person_id, r.platform, r.sent_at, r.reminders)
            for r in session.scalars(
                select(RoleTraining).where(RoleTraining.acknowledged_at.is_(None), RoleTraining.sent_at.is_not(None))
            )
        ]
    sent: list[str] = []
    for training_id, person_id, platform, sent_at, reminders in rows:
        if (person_id, platform) not in moderators or sent_at is None:  # sent_at: never, by the query
            continue  # no longer a moderator there: nothing to acknowledge
        number = due_reminder(sent_at, reminders, now=ctx.now, every_days=every)
        if not number:
            continue
        with ctx.ledger.transaction() as session:
            row = session.get_one(RoleTraining, training_id)
            roles_ledger.record_training_reminder(session, row, number=number, actor=actor, at=ctx.now)
        discord = _identity(ctx, person_id, "discord")
        via = "discord" if discord is not None and ctx.platforms.space("discord") else "discourse"
        target = discord if via == "discord" else _identity(ctx, person_id, "discourse")
        space = ctx.platforms.space(via)
        if target is None or space is None or space.messenger is None or not target.username:
            continue
        title, text = _render(
            "training_reminder",
            username=target.username,
            target_platform=platform,
            sent_on=f"{sent_at:%Y-%m-%d}",
            number=number,
            button=via == "discord",
        )
        key = f"roles-training-reminder:{training_id}:{number}"
        account = user_ref(target)
        try:
            once(
                ctx,
                key=key,
                platform=via,
                actor=actor,
                about=f"person:{person_id}",
                act=lambda s=space, u=account, t=title, b=text, k=key: s.direct_message(u, title=t, text=b, key=k),
            )
            sent.append(key)
        except Exception as exc:  # noqa: BLE001 - reported; the record says it was due
            log.warning("roles: reminder %s not sent: %s", key, type(exc).__name__)
    artifact(
        key="roles-training-reminders",
        title="Moderator training reminders",
        rows={
            "guides sent again": len(resent),
            "reminders sent": len(sent),
            "every (days)": every,
            "at most": MAX_REMINDERS,
        },
    )
    return {"sent": sent, "resent": resent}


def training_status(ctx: Ctx) -> list[dict[str, Any]]:
    """Who has and has not acknowledged, per platform: handle, platform, sent, acknowledged,
    reminders, and whether they still should hold the moderator role."""
    with ctx.ledger.read() as session:
        moderators = _desired_moderators(session)
        out = []
        for row, handle in roles_ledger.training_rows(session):
            out.append(
                {
                    "handle": handle,
                    "platform": row.platform,
                    "sent_at": row.sent_at,
                    "acknowledged_at": row.acknowledged_at,
                    "reminders": row.reminders,
                    "moderator": (row.person_id, row.platform) in moderators,
                    "since": row.acknowledged_at or row.sent_at or row.created_at,
                }
            )
        # Moderators the ledger wants who were never sent a guide (e.g. from before R-TRAIN).
        known = {(r["handle"], r["platform"]) for r in out}
        for pid, platform in sorted(moderators):
            person = session.get(Person, pid)
            if person is not None and (person.handle, platform) not in known:
                out.append(
                    {
                        "handle": person.handle,
                        "platform": platform,
                        "sent_at": None,
                        "acknowledged_at": None,
                        "reminders": 0,
                        "moderator": True,
                        "since": None,
                    }
                )
    return sorted(out, key=lambda r: (r["platform"], r["handle"]))


def acknowledge_by_operator(ctx: Ctx, *, person: str, platform: str, actor: str) -> bool:
    """Record an acknowledgement an operator received another way (e.g. a Forum reply)."""
    with ctx.ledger.transaction() as session:
        found = repo.get_person(session, person)
        row = roles_ledger.training_of(session, person_id=found.id, platform=platform)
        if row is None:
            raise LookupError(f"{found.handle} was not sent the {platform} moderation guide")
        return roles_ledger.acknowledge_training(session, row, actor=actor, at=ctx.now)


@flow(name="roles-training-reminders", log_prints=True)
def roles_training_reminders(now: datetime | None = None) -> dict[str, Any]:
    """Remind new moderators who have not acknowledged their platform's moderation guide
    (R-TRAIN), every ``training.ack_reminder_after_days`` days, at most three times."""
    return send_reminders(context(now))
