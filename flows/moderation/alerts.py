"""Cross-platform alerts and link suggestions (issue 13).

A severe action (``rules.moderation.is_severe``) on one platform against an account whose owner
has accounts on other platforms (the ledger's identities, or a link a moderator confirmed)
raises one alert in each of those platforms' moderator spaces: the facts, a link, and on Discord
an Acknowledge button (``cfm:ack:<alert id>``). Nothing is sanctioned automatically.

When the target has no linked account on another platform but an account there has the same
username, a link is *suggested* to the moderators (Discord buttons ``cfm:link:<id>:yes|no``, or
``charterflow moderation links confirm <id>``); it is never used before a moderator confirms it.
Once confirmed, the next sync (or the confirmation itself) raises the alert.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from connectors.errors import FatalError
from flows.kit import Ctx, done, once
from flows.moderation.common import ACTOR, ModeratorSpace, moderator_spaces, platform_name, render, settings
from ledger import moderation as modlog
from ledger import repo
from ledger.models_moderation import ModerationAction, ModerationAlert, ModerationLink
from ledger.moderation import LinkedAccount
from rules.moderation import is_severe

log = logging.getLogger("charterflow.moderation")


def describe(action: ModerationAction) -> dict[str, Any]:
    """The facts of an action as templates show them."""
    minutes = None if action.duration_seconds is None else round(action.duration_seconds / 60)
    return {
        "platform": platform_name(action.platform),
        "action": action.action,
        "platform_action": action.platform_action,
        "target": action.target_username or action.target_platform_id or "unknown account",
        "moderator": action.moderator_username or "unknown",
        "reason": action.reason or "(no reason given)",
        "minutes": minutes,
        "occurred_at": action.occurred_at.strftime("%Y-%m-%d %H:%M UTC"),
        "link": action.link,
    }


def raise_alerts(ctx: Ctx) -> dict[str, int]:
    """Alerts and link suggestions for the severe actions of the last ``LOOKBACK_DAYS`` days that
    still need them; safe to run again (each alert and suggestion is posted once)."""
    spaces = moderator_spaces(ctx)
    since = ctx.now - timedelta(days=settings().lookback_days)
    with ctx.ledger.read() as session:
        actions = list(
            session.scalars(
                select(ModerationAction).where(ModerationAction.occurred_at >= since).order_by(ModerationAction.id)
            )
        )
    counts = {"alerts": 0, "suggestions": 0}
    for action in actions:
        if not action.target_platform_id:
            continue
        if not is_severe(
            action=action.action, duration_seconds=action.duration_seconds, moderation=ctx.charter.moderation
        ).allowed:
            continue
        with ctx.ledger.read() as session:
            linked = modlog.linked_accounts(session, action.platform, action.target_platform_id)
        for platform, space in spaces.items():
            if platform == action.platform:
                continue
            account = next((a for a in linked if a["platform"] == platform), None)
            try:
                if account is not None:
                    counts["alerts"] += _alert(ctx, action, space, account)
                else:
                    counts["suggestions"] += _suggest(ctx, action, space, spaces)
            except Exception as exc:  # noqa: BLE001 - one platform down must not stop the other
                log.warning(
                    "moderation: alert/suggestion for action %s on %s not sent (%s)",
                    action.id,
                    platform,
                    type(exc).__name__,
                )
    return counts


def _alert(ctx: Ctx, action: ModerationAction, space: ModeratorSpace, account: LinkedAccount) -> int:
    with ctx.ledger.read() as session:
        if any(a.platform == space.platform and a.posted_at is not None for a in modlog.alerts_of(session, action.id)):
            return 0  # the usual case on later runs: nothing to write
    with ctx.ledger.transaction() as session:
        alert = modlog.ensure_alert(
            session,
            action_id=action.id,
            platform=space.platform,
            linked_account=account["account"],
            linked_username=account["username"],
            at=ctx.now,
        )
        alert_id, posted = alert.id, alert.posted_at is not None
    if posted:
        return 0
    title, text = render(
        "alert",
        a=describe(action),
        here=platform_name(space.platform),
        linked=account["username"] or account["account"],
        acknowledged=None,
        command=f"charterflow moderation ack {alert_id}",
        buttons=space.buttons,
    )
    ref = once(
        ctx,
        key=f"moderation:alert:{alert_id}",
        platform=space.platform,
        actor=ACTOR,
        about=f"moderation-alert:{alert_id}",
        act=lambda: space.send(
            title=title, text=text, key=f"moderation:alert:{alert_id}", buttons=[("Acknowledge", f"cfm:ack:{alert_id}")]
        ),
    )["ref"]
    with ctx.ledger.transaction() as session:
        modlog.mark_alert_posted(
            session, alert_id, channel_id=ref.get("thread_id"), message_id=ref.get("id"), at=ctx.now
        )
    return 1


def _suggest(ctx: Ctx, action: ModerationAction, space: ModeratorSpace, spaces: dict[str, ModeratorSpace]) -> int:
    username, account = action.target_username, action.target_platform_id
    there = ctx.platforms.space(space.platform)
    directory = there.directory if there is not None else None
    if not username or not account or directory is None:
        return 0
    # Looked up once per action and platform (recorded), not on every run of the look-back.
    checked = f"moderation:lookalike:{action.id}:{space.platform}"
    if done(ctx, checked) is not None:
        return 0
    try:
        other = directory.find_user(username)
    except FatalError:
        other = None  # no account of that name there: nothing to suggest
    if other is None:
        with ctx.ledger.transaction() as session:
            _looked_up(
                ctx, session, key=checked, platform=space.platform, found=False, about=f"moderation-action:{action.id}"
            )
        return 0
    with ctx.ledger.transaction() as session:
        link, _ = modlog.suggest_link(
            session,
            platform=action.platform,
            account=account,
            username=username,
            other_platform=space.platform,
            other_account=other.id,
            other_username=other.username,
            basis="username",
            action_id=action.id,
            at=ctx.now,
        )
        link_id, status = link.id, link.status
        _looked_up(ctx, session, key=checked, platform=space.platform, found=True, about=f"moderation-link:{link_id}")
    if status != "suggested":
        return 0
    post_suggestion(ctx, link_id, spaces)
    return 1


def _looked_up(ctx: Ctx, session: Any, *, key: str, platform: str, found: bool, about: str) -> None:
    """Record that the look-alike of an action was looked up on ``platform`` (once per key)."""
    repo.effect_record(session, key=key, platform=platform, actor=ACTOR, ref={"found": found}, about=about, at=ctx.now)


def link_facts(link: ModerationLink) -> dict[str, Any]:
    """A link as templates show it."""
    return {
        "id": link.id,
        "a": f"{link.username_a or link.account_a} on {platform_name(link.platform_a)}",
        "b": f"{link.username_b or link.account_b} on {platform_name(link.platform_b)}",
        "basis": link.basis,
        "status": link.status,
        "by": link.decided_by,
    }


def _link_once(ctx: Ctx, link_id: int, platform: str, *, key: str, act: Callable[..., Any]) -> dict[str, Any]:
    """A side effect about the moderation link ``link_id`` on ``platform``, once per ``key``."""
    return once(ctx, key=key, platform=platform, actor=ACTOR, about=f"moderation-link:{link_id}", act=act)


def post_suggestion(ctx: Ctx, link_id: int, spaces: dict[str, ModeratorSpace]) -> None:
    """Ask the moderators of both platforms of the link to confirm it (once per platform)."""
    with ctx.ledger.read() as session:
        link = session.get_one(ModerationLink, link_id)
        facts = link_facts(link)
        platforms = (link.platform_a, link.platform_b)
    for platform in platforms:
        space = spaces.get(platform)
        if space is None:
            continue
        title, text = render("link_suggestion", link=facts, buttons=space.buttons)
        key = f"moderation:link:{link_id}:{platform}"
        try:
            _link_once(
                ctx,
                link_id,
                platform,
                key=key,
                act=lambda s=space, t=title, b=text, k=key: s.send(
                    title=t,
                    text=b,
                    key=k,
                    buttons=[("Same person", f"cfm:link:{link_id}:yes"), ("Not the same", f"cfm:link:{link_id}:no")],
                ),
            )
        except Exception as exc:  # noqa: BLE001 - reported; the next sync does not repost (link row exists)
            log.warning("moderation: link suggestion %s not posted on %s (%s)", link_id, platform, type(exc).__name__)


def show_acknowledged(ctx: Ctx, alert_id: int) -> None:
    """Show on the posted alert who acknowledged it (Discord: edited, button dropped; Forum: a
    reply in the private message)."""
    with ctx.ledger.read() as session:
        alert = session.get_one(ModerationAlert, alert_id)
        action = session.get_one(ModerationAction, alert.action_id)
        facts = describe(action)
        who, when = alert.acknowledged_by, alert.acknowledged_at
        channel_id, message_id = alert.channel_id, alert.message_id
        linked = alert.linked_username or alert.linked_account
    space = moderator_spaces(ctx).get(alert.platform)
    if space is None or not channel_id or not message_id or who is None or when is None:
        return
    title, text = render(
        "alert",
        a=facts,
        here=platform_name(alert.platform),
        linked=linked,
        acknowledged={"by": who, "at": when.strftime("%Y-%m-%d %H:%M UTC")},
        command="",
        buttons=False,
    )
    note = f"Acknowledged by **{who}** at {when.strftime('%Y-%m-%d %H:%M UTC')}."
    key = f"moderation:alert:{alert_id}:ack"
    once(
        ctx,
        key=key,
        platform=alert.platform,
        actor=ACTOR,
        about=f"moderation-alert:{alert_id}",
        act=lambda: space.update(
            channel_id=channel_id, message_id=message_id, title=title, text=text, note=note, key=key
        ),
    )


def show_link_decision(ctx: Ctx, link_id: int) -> None:
    """Show the decision on each posted suggestion (Discord: edited; Forum: a reply)."""
    with ctx.ledger.read() as session:
        link = session.get_one(ModerationLink, link_id)
        facts = link_facts(link)
    for platform, space in moderator_spaces(ctx).items():
        with ctx.ledger.read() as session:
            posted = repo.effect_get(session, key=f"moderation:link:{link_id}:{platform}")
        ref = (posted or {}).get("ref") or {}
        if not ref.get("id"):
            continue
        title, text = render("link_suggestion", link=facts, buttons=False)
        note = f"Decision: **{facts['status']}**" + (f" by {facts['by']}." if facts["by"] else ".")
        key = f"moderation:link:{link_id}:{platform}:decided"
        _link_once(
            ctx,
            link_id,
            platform,
            key=key,
            act=lambda s=space, r=ref, t=title, b=text, n=note, k=key: s.update(
                channel_id=str(r.get("thread_id", "")), message_id=str(r["id"]), title=t, text=b, note=n, key=k
            ),
        )
