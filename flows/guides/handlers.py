"""The inbox routes of this package (called by ``flows.inbox`` at import): ``guides-help``,
Discord ``/help [topic]`` (R-GUIDE). The Forum's ``/help`` posts reach the same route through
``flows.inbox_routing.route_for``, Matrix's ``!help`` through the plugin's route table."""

from __future__ import annotations

from flows.guides.help import handle_help

HELP_ROUTE = "guides-help"


def register() -> None:
    """Register this package's routes with ``flows.inbox.register_route``."""
    from flows import inbox  # lazy: cycle: flows.inbox imports this module to call register()

    inbox.register_route(
        HELP_ROUTE, handle_help, discord_command="help", condition="slash command /help (the matching guides, R-GUIDE)"
    )
