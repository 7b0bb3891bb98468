"""This package's Prefect deployments, with their schedules (served by ``flows.serve``)."""

from __future__ import annotations

from flows.safety.flows import safety_figures, safety_platform_reports, safety_reminders


def deployments() -> list:
    """``safety-reminders/hourly``, ``safety-platform-reports/every-5-minutes`` and
    ``safety-figures/weekly``."""
    return [
        safety_reminders.to_deployment(
            name="hourly",
            interval=3600,
            tags=["charterflow", "safety"],
            description="Remind the moderators' rooms of community reports left unclaimed (R-SAFE-1).",
        ),
        safety_platform_reports.to_deployment(
            name="every-5-minutes",
            interval=300,
            tags=["charterflow", "safety"],
            description="Take reports made with a platform's own report button (Matrix), each once (R-SAFE-1).",
        ),
        safety_figures.to_deployment(
            name="weekly",
            cron="0 6 * * 1",
            tags=["charterflow", "safety"],
            description="Community report figures, last 90 days: counts and response times (R-SAFE-3).",
        ),
    ]
