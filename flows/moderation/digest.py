"""The ``moderation-digest`` flow: the previous day's moderation actions on every platform,
posted to each platform's moderator space once per day (a second run that day finds the posts
recorded and sends nothing), and the ``moderation-consistency`` table artifact.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, time, timedelta
from itertools import groupby
from typing import Any

from prefect import flow

from flows.kit import Ctx, context, once
from flows.moderation.common import ACTOR, moderator_spaces, platform_name, render
from flows.moderation.figures import figures_between, table_rows
from flows.moderation.sync import moderation_sync
from flows.privacy import publish_artifact
from ledger import moderation as modlog

log = logging.getLogger("charterflow.moderation")
REPORT_DAYS = 90  # the artifact covers about a quarter


MAX_LINES = 150  # per platform: a Forum post and a few Discord messages, not a flood


def digest_rows(actions: list[Any]) -> list[tuple[str, list[dict[str, Any]], int]]:
    """The digest's lines grouped by platform, at most ``MAX_LINES`` each, with how many more
    there were (pure over the ledger rows)."""
    lines = []
    for a in sorted(actions, key=lambda a: (a.platform, a.occurred_at, a.id)):
        lines.append(
            {
                "platform": platform_name(a.platform),
                "time": a.occurred_at.strftime("%H:%M"),
                "action": a.action if a.action != "other" else f"other ({a.platform_action})",
                "minutes": None if a.duration_seconds is None else round(a.duration_seconds / 60),
                "target": a.target_username or a.target_platform_id or "-",
                "moderator": a.moderator_username or "-",
                "reason": a.reason or "no reason given",
            }
        )
    grouped = [(p, list(rows)) for p, rows in groupby(lines, key=lambda r: r["platform"])]
    return [(p, rows[:MAX_LINES], max(len(rows) - MAX_LINES, 0)) for p, rows in grouped]


def post_digest(ctx: Ctx, day: date) -> dict[str, Any]:
    """Post the digest of ``day`` (UTC) to every moderator space, once per day and platform."""
    start = datetime.combine(day, time(0), tzinfo=UTC)
    with ctx.ledger.read() as session:
        actions = modlog.actions_between(session, start, start + timedelta(days=1))
    title, text = render("digest", day=day.isoformat(), actions=actions, by_platform=digest_rows(actions))
    posted: dict[str, Any] = {}
    for platform, space in moderator_spaces(ctx).items():
        key = f"moderation:digest:{day.isoformat()}:{platform}"
        try:
            posted[platform] = once(
                ctx,
                key=key,
                platform=platform,
                actor=ACTOR,
                about=f"moderation-digest:{day}",
                act=lambda s=space, k=key: s.send(title=title, text=text, key=k),
            )["ref"]
        except Exception as exc:  # noqa: BLE001 - one platform down must not stop the other
            log.warning("moderation-digest: %s not posted on %s (%s)", day, platform, type(exc).__name__)
    return {"day": day.isoformat(), "actions": len(actions), "posted": sorted(posted)}


def consistency_artifact(ctx: Ctx) -> None:
    """The ``moderation-consistency`` table artifact of the last ``REPORT_DAYS`` days (no names:
    people appear as ledger references)."""
    figures = figures_between(ctx.ledger, ctx.now - timedelta(days=REPORT_DAYS), ctx.now)
    try:
        publish_artifact(
            key="moderation-consistency",
            kind="table",
            content=table_rows(figures),
            description=f"Moderation consistency, last {REPORT_DAYS} days (moderators and WG only)",
        )
    except Exception as exc:  # noqa: BLE001 - an artifact is a view, never a reason to fail
        log.warning("moderation: artifact not created (%s)", type(exc).__name__)


@flow(name="moderation-digest")
def moderation_digest(day: date | None = None, now: datetime | None = None, sync: bool = True) -> dict[str, Any]:
    """Post the digest of ``day`` (default: yesterday, UTC); with ``sync`` read the logs first
    so the day is complete."""
    ctx = context(now)
    if sync:
        try:
            moderation_sync(now=ctx.now)
        except Exception as exc:  # noqa: BLE001 - the digest shows what the ledger holds
            log.warning("moderation-digest: sync first failed (%s)", type(exc).__name__)
    result = post_digest(ctx, day or (ctx.now.date() - timedelta(days=1)))
    consistency_artifact(ctx)
    return result
