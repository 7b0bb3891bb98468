"""This package's Prefect deployments, with their schedules (served by ``flows.serve``)."""

from __future__ import annotations

from flows.reports.meetings import meetings_quarterly
from flows.reports.quarterly import reports_approve, reports_quarterly


def deployments() -> list:
    """The quarterly report and meeting deployments (R-REPORT, R-MEET)."""
    tags = ["charterflow", "reports"]
    return [
        reports_quarterly.to_deployment(
            name="quarterly",
            tags=tags,
            cron="0 9 1 1,4,7,10 *",
            description="Draft the report of the quarter just ended and ask the WG to approve it "
            "(R-REPORT); first day of each quarter, 09:00 UTC.",
        ),
        reports_quarterly.to_deployment(
            name="operator",
            tags=tags,
            description="Draft the report of a quarter (e.g. 2026Q3; empty: the quarter just "
            "ended) and ask the WG to approve it (R-REPORT).",
        ),
        reports_approve.to_deployment(
            name="operator",
            tags=tags,
            description="Approve a drafted report for a member (their WG handle) and publish it.",
        ),
        meetings_quarterly.to_deployment(
            name="daily",
            tags=tags,
            cron="0 7 * * *",
            description="Create the quarterly meeting's Discord event 21 days ahead and remind "
            "members 1 day ahead (R-MEET); daily 07:00 UTC.",
        ),
        meetings_quarterly.to_deployment(
            name="operator", tags=tags, description="Run the quarterly meeting step now (R-MEET)."
        ),
    ]
