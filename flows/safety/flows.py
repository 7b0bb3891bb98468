"""The safety flows: ``safety-reminders`` (unclaimed reports reminded, R-SAFE-1),
``safety-platform-reports`` (reports made with a platform's own report button, R-SAFE-1) and
``safety-figures`` (R-SAFE-3: counts and response times per platform, never names; a table
artifact ``safety-figures``)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from prefect import flow

from flows.kit import context
from flows.privacy import publish_artifact
from flows.safety.poll import take_platform_reports
from flows.safety.queue import remind_unclaimed, resend_unreached_referrals
from ledger import safety as queue_ledger
from rules.safety import figures

log = logging.getLogger("charterflow.safety")
FIGURES_DAYS = 90  # the artifact covers about a quarter


def figures_between(ledger: Any, start: datetime | None, end: datetime | None) -> dict[str, Any]:
    """``rules.safety.figures`` of the reports made in ``[start, end)``, with the period."""
    with ledger.read() as session:
        rows = queue_ledger.times(session, start=start, end=end)
    out = figures(rows)
    out["period"] = {"start": start.isoformat() if start else None, "end": end.isoformat() if end else None}
    return out


def table_rows(found: dict[str, Any]) -> list[dict[str, Any]]:
    """The figures as one table (platform, figure, value) for an artifact or the CLI."""
    rows: list[dict[str, Any]] = []
    for platform, f in found["platforms"].items():
        rows.append({"platform": platform, "figure": "reports", "value": f["reports"]})
        rows.append({"platform": platform, "figure": "still open", "value": f["open"]})
        for what in ("first_response_hours", "resolution_hours"):
            for q in ("median", "p90"):
                rows.append({"platform": platform, "figure": f"{what.replace('_', ' ')} ({q})", "value": f[what][q]})
        for outcome, n in f["outcomes"].items():
            rows.append({"platform": platform, "figure": f"outcome: {outcome}", "value": n})
    return rows


@flow(name="safety-reminders", flow_run_name="safety-reminders")
def safety_reminders(now: datetime | None = None) -> list[int]:
    """Remind the moderators' rooms of reports unclaimed for the charter's
    ``[safety] remind_unclaimed_hours`` (R-SAFE-1), and send again each referral that reached
    nobody yet (R-SAFE-2). Returns the report ids reminded."""
    ctx = context(now)
    resend_unreached_referrals(ctx)
    return remind_unclaimed(ctx)


@flow(name="safety-platform-reports", flow_run_name="safety-platform-reports")
def safety_platform_reports(now: datetime | None = None) -> dict[str, list[str]]:
    """Take the reports made with a platform's own report button (Matrix's), each once
    (R-SAFE-1; ``flows.safety.poll``). Returns, per platform, what became of the new ones."""
    return take_platform_reports(context(now))


@flow(name="safety-figures", flow_run_name="safety-figures")
def safety_figures(now: datetime | None = None, days: int = FIGURES_DAYS) -> dict[str, Any]:
    """R-SAFE-3 figures of the last ``days`` days, as the ``safety-figures`` table artifact."""
    ctx = context(now)
    found = figures_between(ctx.ledger, ctx.now - timedelta(days=days), ctx.now)
    try:
        publish_artifact(
            key="safety-figures",
            kind="table",
            content=table_rows(found),
            description=f"Community reports, last {days} days (R-SAFE-3): counts and hours, no names.",
        )
    except Exception as exc:  # noqa: BLE001 - an artifact is a view, never a reason to fail
        log.warning("safety: artifact not created (%s)", type(exc).__name__)
    return found
