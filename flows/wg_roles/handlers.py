"""The inbox routes of this package (called by ``flows.inbox`` at import).

* ``wg-role-confirm`` ← the button of the gateway's page ``/wg-role/<token>`` (a ``form`` event
  of kind ``wg_role_confirm``): :func:`flows.wg_roles.coc.handle_confirm`.

The Board Liaison's Slack buttons come on the ``board-decision`` route (their value is
``wg-role:<id>``): ``flows.board.decision`` hands them to ``flows.wg_roles.board``.
"""

from __future__ import annotations


def register() -> None:
    from flows.inbox import register_route
    from flows.wg_roles.coc import FORM_KIND, ROUTE, handle_confirm

    register_route(ROUTE, handle_confirm, form_kind=FORM_KIND,
                   condition="the CoC WG Liaison confirmation page's button (POST /wg-role/<token>)")
