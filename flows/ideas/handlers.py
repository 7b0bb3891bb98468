"""The inbox routes of this package (called by ``flows.inbox`` at import).

- ``idea``: Forum ``topic_created`` in an ideas category and Discord ``/idea``; both are routed
  by ``flows.inbox.route_for`` already, so only the handler is registered (no command, no
  button prefix; ``register_route`` then just sets the handler and the deferred answer);
- ``ideas-status``: Discord ``/idea-status`` and the digest's status buttons (``cfi:…``).
"""

from __future__ import annotations

from flows.ideas.common import BUTTON_PREFIX
from flows.ideas.intake import handle_idea
from flows.ideas.status import handle_status

STATUS_ROUTE = "ideas-status"


def register() -> None:
    """Register this package's routes with ``flows.inbox.register_route``."""
    # lazy: cycle: flows.inbox <-> flows.ideas.handlers (flows.inbox imports this to call register)
    from flows import inbox

    inbox.register_route(inbox.Route.IDEA, handle_idea)
    inbox.register_route(
        STATUS_ROUTE, handle_status, discord_command="idea-status", discord_component_prefix=BUTTON_PREFIX
    )
