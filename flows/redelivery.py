"""``hooks-redeliver``: what a platform failed to push to the gateway is pushed again.

The Forum sends a webhook once (Discourse retries only with ``retry_web_hook_events`` on, off
by default, and never a delivery that got no answer): a topic opened while the gateway was down
or restarting would never reach charterflow. Every two minutes, each platform whose connector is
a ``connectors.base.Redelivery`` is asked to send again the deliveries of the last
``LOOKBACK`` that failed and were not delivered since. A redelivery carries its first event id,
so the gateway takes it once however often it is asked for.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from prefect import flow

from connectors.base import Redelivery
from flows.kit import context

log = logging.getLogger("charterflow.redelivery")

LOOKBACK = timedelta(days=2)  # a weekend's outage; Discourse keeps its deliveries 30 days
INTERVAL_SECONDS = 120


@flow(name="hooks-redeliver", flow_run_name="hooks-redeliver")
def hooks_redeliver(now: datetime | None = None) -> dict[str, list[str]]:
    """Per platform, the event ids it was asked to send again. A platform that cannot be asked
    is logged and left for the next run; the others go on."""
    ctx = context(now)
    out: dict[str, list[str]] = {}
    for space, source in ctx.platforms.capable(Redelivery):
        try:
            out[space.platform] = source.redeliver_failed(since=ctx.now - LOOKBACK)
        except Exception as exc:  # noqa: BLE001 - one platform down must not stop the others
            log.warning("redelivery: %s not asked (%s: %s)", space.platform, type(exc).__name__, exc)
    return out


def deployments() -> list:
    """``hooks-redeliver/every-2-minutes`` (served by ``flows.serve``)."""
    return [
        hooks_redeliver.to_deployment(
            name="every-2-minutes",
            interval=INTERVAL_SECONDS,
            tags=["charterflow", "inbox"],
            description="Ask each platform to push again what it failed to push to the gateway (the Forum's webhooks).",
        )
    ]
