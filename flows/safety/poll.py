"""Reports made with a platform's own report button (R-SAFE-1), read by a poll: each platform
whose connector is a ``connectors.base.PlatformReports`` (Matrix: Synapse's event reports) gives
its reports, and each becomes one report of the queue, once per platform report id (a
``once(...)`` effect, so a report refused for a burst is not retried and noted on every poll)."""

from __future__ import annotations

import logging

from connectors.base import PlatformReport, PlatformReports
from flows.kit import Ctx, done, once
from flows.safety.common import ACTOR
from flows.safety.queue import Incoming, take_report

log = logging.getLogger("charterflow.safety")


def incoming_from_platform_report(report: PlatformReport) -> Incoming:
    """The queue's report for one platform report (pure)."""
    who, target = report.reporter, report.target
    return Incoming(
        source_key=f"{report.platform}:platform-report:{report.id}",
        via=report.platform,
        platform=report.platform,
        reporter_key=f"{report.platform}:{who.id if who else 'unknown'}",
        reporter_account=who.id if who else None,
        reporter_username=who.username if who else None,
        target_kind="message" if report.message_id else "person",
        target_account=target.id if target else None,
        target_username=target.username if target else None,
        target_message_id=report.message_id,
        target_channel_id=report.channel_id,
        target_link=report.link,
        reason=report.reason,
    )


def take_platform_reports(ctx: Ctx) -> dict[str, list[str]]:
    """Take every served platform's own reports; per platform, what became of the new ones
    (``taken:<id>``, ``refused``…). A platform that cannot be read is logged and left for the
    next poll."""
    out: dict[str, list[str]] = {}
    for space, source in ctx.platforms.capable(PlatformReports):
        name = space.platform
        try:
            found = source.platform_reports()
        except Exception as exc:  # noqa: BLE001 - one platform down must not stop the others
            log.warning("safety: reports of %s not read (%s)", name, type(exc).__name__)
            continue
        out[name] = []
        for report in found:
            key = f"safety:platform-report:{name}:{report.id}"
            if done(ctx, key) is None:
                recorded = once(
                    ctx, key=key, platform=name, actor=ACTOR, about=None, act=lambda r=report: {"result": _take(ctx, r)}
                )
                out[name].append(str((recorded.get("ref") or {}).get("result", "")))
    return out


def _take(ctx: Ctx, report: PlatformReport) -> str:
    taken = take_report(ctx, incoming_from_platform_report(report))
    return f"{taken.status}:{taken.report_id}" if taken.report_id else taken.status
