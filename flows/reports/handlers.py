"""The inbox routes of this package (called by ``flows.inbox`` at import)."""

from __future__ import annotations

from flows.reports.quarterly import APPROVE_PREFIX, handle_report_approval

ROUTE = "reports-approve"


def register() -> None:
    """Route the report approval button (``custom_id`` ``cfr:<quarter>:<digest12>``) to
    :func:`flows.reports.quarterly.handle_report_approval`."""
    # lazy: cycle: flows.inbox <-> flows.reports.handlers (flows.inbox imports this to call register)
    from flows import inbox

    inbox.register_route(
        ROUTE,
        handle_report_approval,
        discord_component_prefix=APPROVE_PREFIX,
        condition="the quarterly report's Approve button (custom_id cfr:…)",
    )
