"""Every deployment of charterflow, with its schedules (:func:`deployments`). `charterflow up`'s
workers process and `charterflow serve` serve them (``charterflow.workers.serve_deployments``,
:mod:`flows.serving`); `charterflow deploy` puts them in a work pool."""

from __future__ import annotations

from datetime import UTC, datetime
from types import ModuleType

from prefect.client.schemas.schedules import IntervalSchedule

from flows import platforms_state, redelivery
from flows.board.decision import record_decision
from flows.board.escalation import board_escalation
from flows.board.reminders import board_reminders
from flows.commons import deploy as commons_deploy
from flows.guides import deploy as guides_deploy
from flows.ideas import deploy as ideas_deploy
from flows.membership.approval import open_approval_ballot
from flows.membership.ballot import close_due_ballots
from flows.membership.eligibility import check_eligibility
from flows.membership.intake import expire_applications, intake
from flows.membership.leave import leave
from flows.membership.onboarding import onboard
from flows.membership.removal import open_removal_ballot
from flows.membership.renewal import opt_in, renewal
from flows.moderation import deploy as moderation_deploy
from flows.reports import deploy as reports_deploy
from flows.roles import deploy as roles_deploy
from flows.roles.change import roles_change
from flows.safety import deploy as safety_deploy
from flows.wg_roles import deploy as wg_roles_deploy
from flows.whatif import what_if

# Interval schedules count from one fixed moment. Prefect anchors an interval at the time the
# deployment object is made, and serving it again replaces the schedule: each restart of the
# workers put every interval run off by up to a whole interval (hooks-redeliver ran 2 minutes
# after the last restart, not at its next slot), and a process restarted more often than an
# interval would never run that deployment. Every interval here divides a day: runs fall on round
# clock times (every 5 minutes at :00, :05, ...), whenever the process started.
INTERVAL_ANCHOR = datetime(2026, 1, 1, tzinfo=UTC)


def anchored(served: list) -> list:
    """``served`` with each interval schedule anchored at :data:`INTERVAL_ANCHOR`."""
    for deployment in served:
        for entry in deployment.schedules or ():
            if isinstance(entry.schedule, IntervalSchedule):
                entry.schedule = IntervalSchedule(
                    interval=entry.schedule.interval, anchor_date=INTERVAL_ANCHOR, timezone=entry.schedule.timezone
                )
    return served


def deployments() -> list:
    """Every deployment, with its schedules (intervals :func:`anchored`). The runner is made with
    ``pause_on_shutdown=False`` (flows/serving.py): the schedules stay active while it restarts."""
    rules_tags, tags = ["charterflow", "rules"], ["charterflow", "membership"]
    board_tags, roles_tags = ["charterflow", "board"], ["charterflow", "roles"]
    served = [
        what_if.to_deployment(
            name="operator", tags=rules_tags, description="Ask the charter a what-if question (see rules/README.md)."
        ),
        intake.to_deployment(name="operator", tags=tags, description="File an application (R-APP-1..3)."),
        check_eligibility.to_deployment(name="operator", tags=tags, description="(Re)check eligibility (R-ELIG-1..4)."),
        open_approval_ballot.to_deployment(name="operator", tags=tags, description="Open or show an approval ballot."),
        onboard.to_deployment(name="operator", tags=tags, description="Onboard an approved applicant."),
        opt_in.to_deployment(name="operator", tags=tags, description="Record an opt-in (R-TERM-2)."),
        leave.to_deployment(name="operator", tags=tags, description="A member leaves (R-LEAVE)."),
        open_removal_ballot.to_deployment(name="operator", tags=tags, description="Open a removal ballot (R-REMOVE)."),
        renewal.to_deployment(
            name="daily",
            tags=tags,
            cron="0 9 * * *",
            description="Opt-in reminders and lapses, daily at 09:00 UTC (R-TERM-2).",
        ),
        close_due_ballots.to_deployment(
            name="every-5-minutes", tags=tags, interval=300, description="Close decided or due ballots (R-VOTE-EARLY)."
        ),
        expire_applications.to_deployment(
            name="hourly", tags=tags, interval=3600, description="Expire unconfirmed applications (R-APP-2)."
        ),
        roles_change.to_deployment(
            name="operator",
            tags=roles_tags,
            description="Grant or revoke a platform role to a person (R-MOD, R-ADMIN-1..3).",
        ),
        board_escalation.to_deployment(
            name="operator",
            tags=board_tags,
            description="File or continue a proposal for the DSF Board (R-BOARD, R-DIRECT).",
        ),
        record_decision.to_deployment(
            name="operator", tags=board_tags, description="Record the Board's decision on a proposal (R-BOARD)."
        ),
        board_reminders.to_deployment(
            name="daily",
            tags=board_tags,
            cron="0 8 * * *",
            description="Remind the Board of undecided proposals (30 days, then every 14).",
        ),
        *capability_deployments(),
    ]
    return anchored(served)


# Each capability package declares its deployments in ``deploy.deployments()``.
CAPABILITIES: tuple[ModuleType, ...] = (
    roles_deploy,
    ideas_deploy,
    reports_deploy,
    moderation_deploy,
    platforms_state,
    wg_roles_deploy,
    guides_deploy,
    commons_deploy,
    safety_deploy,
    redelivery,
)


def capability_deployments() -> list:
    """The deployments each capability package declares in its ``deploy.deployments()``."""
    return [d for module in CAPABILITIES for d in module.deployments()]
