"""This package's Prefect deployment (served by ``flows.serve``): ``commons-poll/every-minute``."""

from __future__ import annotations

from flows.commons.poll import commons_poll

POLL_SECONDS = 60  # two reads per polled room and thread a minute: far inside Discord's limits


def deployments() -> list:
    """``commons-poll/every-minute``: the common room's polled rooms (R-COMMS)."""
    return [
        commons_poll.to_deployment(
            name="every-minute",
            interval=POLL_SECONDS,
            tags=["charterflow", "commons"],
            description="Relay new, edited and deleted messages of the bridged rooms that are polled "
            "(Discord channels and their threads) to the other platforms (R-COMMS, issue 22).",
        )
    ]
