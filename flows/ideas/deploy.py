"""This package's Prefect deployments, with their schedules (served by ``flows.serve``)."""

from __future__ import annotations

from charterflow.charter import load_configured_charter
from flows.ideas.intake import ideas_file
from flows.ideas.triage import ideas_triage

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def weekly_cron(weekday: str, *, hour: int = 7) -> str:
    """The cron line of the weekly triage: ``0 7 * * 1`` for Monday (cron: Sunday = 0)."""
    return f"0 {hour} * * {(WEEKDAYS.index(weekday) + 1) % 7}"


def deployments() -> list:
    """``ideas-file/operator``, ``ideas-triage/operator`` and ``ideas-triage/weekly`` (on the
    charter's ``ideas.digest_weekday``, 07:00 UTC)."""
    weekday = load_configured_charter().ideas.digest_weekday
    tags = ["charterflow", "ideas"]
    # R-BUDGET: the first triage of a new ledger files the charter's budget ideas (once each).
    seed = {"charter_ideas": True}
    return [
        ideas_file.to_deployment(
            name="operator", tags=tags, description="File an idea for the backlog as an operator (R-IDEA-1)."
        ),
        ideas_triage.to_deployment(
            name="operator",
            tags=tags,
            parameters=seed,
            description="Triage the ideas backlog now: duplicates, Board or WG, platform, "
            "flags, the week's digest and the backlog table (R-IDEA-2).",
        ),
        ideas_triage.to_deployment(
            name="weekly",
            tags=tags,
            cron=weekly_cron(weekday),
            parameters=seed,
            description=f"Weekly triage and digest of the ideas backlog, {weekday} 07:00 UTC (R-IDEA-2).",
        ),
    ]
