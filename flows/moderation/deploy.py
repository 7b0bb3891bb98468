"""This package's Prefect deployments, with their schedules (served by ``flows.serve``)."""

from __future__ import annotations

from charterflow.charter import load_configured_charter
from flows.moderation.digest import moderation_digest
from flows.moderation.sync import moderation_sync
from rules import default_charter


def deployments() -> list:
    """``moderation-sync/every-15-minutes`` and ``moderation-digest/daily`` (at the charter's
    ``[moderation] digest_hour_utc``)."""
    hour = _digest_hour()
    return [
        moderation_sync.to_deployment(
            name="every-15-minutes",
            interval=900,
            tags=["charterflow", "moderation"],
            description="Read each platform's moderation log into the ledger; alert the other platforms' "
            "moderators about severe actions against linked accounts (issue 13).",
        ),
        moderation_digest.to_deployment(
            name="daily",
            cron=f"0 {hour} * * *",
            tags=["charterflow", "moderation"],
            description="Post yesterday's moderation actions on all platforms to each platform's "
            "moderator space, once per day (issue 13).",
        ),
    ]


def _digest_hour() -> int:
    try:
        return load_configured_charter().moderation.digest_hour_utc
    except Exception:  # noqa: BLE001 - a bad charter is reported by `rules check`; serve at the default
        return default_charter().moderation.digest_hour_utc
