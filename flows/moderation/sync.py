"""The ``moderation-sync`` flow: read each platform's moderation log from its cursor, store the
actions normalised, then raise the cross-platform alerts and link suggestions.

Each page of entries is stored in one ledger transaction together with the cursor, so a crash
leaves the cursor at the last stored entry: the next run reads on from there, and an entry read
twice is stored once (unique platform + entry id). A platform that does not answer is reported
and skipped; the next run catches up from its cursor.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from connectors.base import Instanced, ModerationEntry, ModerationLog
from flows.kit import Ctx, context
from flows.moderation.alerts import raise_alerts
from flows.moderation.common import logs
from ledger import moderation as modlog
from rules.moderation import normalise, parse_time

log = logging.getLogger("charterflow.moderation")
PAGE = 100
# The Forum's log pages newest first, so each read walks down to the cursor: read more per call.
PAGE_SIZES = {"discourse": 1000}
MAX_PAGES = 200  # per platform and run: a long outage is caught up over a few runs


def entry_row(entry: ModerationEntry) -> dict[str, Any]:
    """The ``ModerationAction`` fields of one platform entry (pure)."""
    meaning = normalise(platform=entry.platform, kind=entry.kind, changes=entry.changes, occurred_at=entry.occurred_at)
    return {
        "entry_id": entry.id,
        "action": meaning.action,
        "platform_action": entry.kind[:80],
        "target_platform_id": entry.target.id if entry.target else None,
        "target_username": (entry.target.username or None) if entry.target else None,
        "moderator_platform_id": entry.moderator.id if entry.moderator else None,
        "moderator_username": (entry.moderator.username or None) if entry.moderator else None,
        "reason": entry.reason,
        "duration_seconds": meaning.duration_seconds,
        "link": (entry.link or None) and entry.link[:500],
        "occurred_at": entry.occurred_at,
        "raw": _jsonable(dict(entry.raw)),
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def read_platform(ctx: Ctx, platform: str, source: ModerationLog) -> dict[str, Any]:
    """Read ``platform``'s log from its cursor to the end (at most ``MAX_PAGES`` pages)."""
    stored = seen = 0
    size = PAGE_SIZES.get(platform, PAGE)
    # "-": a connector that cannot name its instance (its entries are still told apart from
    # every named instance's).
    instance = (source.instance if isinstance(source, Instanced) else "") or "-"
    for _ in range(MAX_PAGES):
        with ctx.ledger.read() as session:
            after = modlog.cursor(session, platform, instance)
        page = source.moderation_entries(after=after, limit=size)
        if not page:
            break
        rows = [entry_row(entry) for entry in page]
        with ctx.ledger.read() as session:
            for row in rows:
                row["target_person_id"] = modlog.person_of_account(session, platform, row["target_platform_id"])
        with ctx.ledger.transaction() as session:
            stored += len(
                modlog.store_entries(
                    session, platform=platform, instance=instance, rows=rows, last_entry_id=page[-1].id, at=ctx.now
                )
            )
        seen += len(page)
        if len(page) < size:
            break
    return {"seen": seen, "stored": stored}


@task(name="moderation-read", retries=0, cache_policy=NO_CACHE)  # reads must never be served from a cache
def read_task(platform: str, now: datetime | None = None) -> dict[str, Any]:
    """One platform's log, as a task (its failure is reported, not fatal to the run)."""
    ctx = context(now)
    return read_platform(ctx, platform, logs(ctx)[platform])


@flow(name="moderation-sync", log_prints=False)
def moderation_sync(now: datetime | None = None) -> dict[str, Any]:
    """Read every platform's moderation log, then raise alerts and link suggestions."""
    ctx = context(now)
    result: dict[str, Any] = {}
    for platform in sorted(logs(ctx)):
        try:
            result[platform] = read_task(platform, now=ctx.now)
        except Exception as exc:  # noqa: BLE001 - one platform down must not stop the other
            log.warning(
                "moderation-sync: %s not read (%s); the next run catches up from its cursor",
                platform,
                type(exc).__name__,
            )
            result[platform] = {"error": type(exc).__name__}
    result["alerts"] = raise_alerts(ctx)
    return result


def parse_since(text: str) -> datetime:
    """A ``--since``/``--until`` value: ``YYYY-MM-DD`` or an ISO time (UTC when no zone)."""
    value = parse_time(text) or parse_time(f"{text}T00:00:00+00:00")
    if value is None:
        try:
            value = datetime.fromisoformat(text).replace(tzinfo=UTC)
        except ValueError:
            raise ValueError(f"not a date: {text!r} (use YYYY-MM-DD)") from None
    return value.astimezone(UTC)
