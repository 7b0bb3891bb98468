"""This package's Prefect deployments, with their schedules (served by ``flows.serve``)."""

from __future__ import annotations

from flows.roles.drift import roles_drift_audit
from flows.roles.revocations import roles_admin_revocations
from flows.roles.training import roles_training_reminders


def deployments() -> list:
    """The deployments of this package: the hourly drift audit (R-ADMIN-3: drift reported
    within the hour) the daily training reminders (R-TRAIN) and the daily pass over admin revocations that wait
    (R-ADMIN-4). (``roles-change/operator`` is
    declared in ``flows.serve``.)"""
    return [
        roles_drift_audit.to_deployment(
            name="hourly",
            interval=3600,
            tags=["charterflow", "roles"],
            description="Observed platform roles vs the ledger and the admin invariants; "
            "reports drift once to the WG's admins with a repair plan (R-ADMIN-3).",
        ),
        roles_training_reminders.to_deployment(
            name="daily",
            cron="30 9 * * *",
            tags=["charterflow", "roles"],
            description="Reminds new moderators to acknowledge their moderation guide (R-TRAIN).",
        ),
        roles_admin_revocations.to_deployment(
            name="daily",
            cron="45 9 * * *",
            tags=["charterflow", "roles"],
            description="Applies admin revocations that waited for a second counted admin, or "
            "reminds the WG which platform needs one (R-ADMIN-4).",
        ),
    ]
