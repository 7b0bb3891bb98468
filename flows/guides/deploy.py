"""This package's Prefect deployments (served by ``flows.serve``): ``guides-publish/daily``
(publish changed guides, 06:00 UTC) and ``/operator``, ``training-schedule/operator`` (an
operator schedules a session from the Prefect UI) and ``training-reminders/hourly``."""

from __future__ import annotations

from flows.guides.publish import guides_publish
from flows.guides.training import training_reminders, training_schedule


def deployments() -> list:
    """The deployments above."""
    tags = ["charterflow", "guides"]
    return [
        guides_publish.to_deployment(
            name="daily",
            tags=tags,
            cron="0 6 * * *",
            description="Publish the community guides whose text changed (R-GUIDE).",
        ),
        guides_publish.to_deployment(
            name="operator", tags=tags, description="Publish the community guides now (R-GUIDE)."
        ),
        training_schedule.to_deployment(
            name="operator", tags=tags, description="Schedule a community training session on a guide (R-GUIDE)."
        ),
        training_reminders.to_deployment(
            name="hourly",
            tags=tags,
            interval=3600,
            description="Remind each platform of training sessions a day ahead.",
        ),
    ]
