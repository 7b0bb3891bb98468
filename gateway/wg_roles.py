"""The CoC WG contact's confirmation page, ``/wg-role/<token>`` (R-ROLE-APPOINT, R-ROLE-COC).

Mounted through the ``charterflow.gateway_hooks`` entry point (``wg-roles`` in pyproject.toml),
like a plugin's routes. A GET checks the link's signature and expiry and shows one button; it
never acts (a link preview or a mail scanner opening it consumes nothing: DESIGN, "Approvals are
never consumed by a GET request"). The button's POST checks the token again and stores one
inbox event (kind ``wg_role_confirm``, deduplicated by the token), whose handler
(``flows.wg_roles.coc.handle_confirm``) acts once. A tampered or expired link is refused here
and stores nothing. No CSRF token: the link's signed token is itself the authority, and a page
that does not hold it cannot post it.
"""

from __future__ import annotations

import hashlib
import html
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, Response

from connectors.base import InboundEvent
from connectors.errors import PolicyViolation
from flows.platforms import resolve_confirm_secret

# Not flows.wg_roles.coc: the served gateway holds no Prefect (tests/gateway/test_light_start.py).
from flows.wg_roles.links import FORM_KIND, PATH, read_link_token
from ledger.types import utcnow

__all__ = ["router"]

_secret: dict[str, Any] = {}


def _link_secret() -> Any:
    if "value" not in _secret:  # the worker's secret (CHARTERFLOW_MEMBERSHIP_CONFIRM_SECRET)
        _secret["value"] = resolve_confirm_secret()
    return _secret["value"]


def _page(status: int, heading: str, text: str, *, button: str | None = None) -> HTMLResponse:
    form = f'<form method="post"><button type="submit">{html.escape(button)}</button></form>' if button else ""
    return HTMLResponse(
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(heading)}'
        f'</title><meta name="robots" content="noindex"></head><body><main><h1>{html.escape(heading)}'
        f"</h1><p>{html.escape(text)}</p>{form}</main></body></html>",
        status_code=status,
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )


def router(*, accept: Callable[..., Awaitable[Any]], settings: Any = None) -> APIRouter:
    """The page's routes; ``accept(event)`` stores an event as the gateway's hooks do."""
    routes = APIRouter()

    def claims(token: str) -> Any:
        try:
            return read_link_token(token[:200], secret=_link_secret(), now=utcnow())
        except PolicyViolation as exc:
            return exc

    @routes.get(PATH + "/{token}")
    async def show(token: str) -> Response:
        found = await run_in_threadpool(claims, token)
        if isinstance(found, PolicyViolation):
            return _page(400, "This link cannot be used", f"Sorry: {found.reason}.")
        return _page(
            200,
            "Confirm the CoC WG Liaison",
            f"The CoC WG's choice of Liaison (appointment {found.appointment_id}) waits "
            "for your confirmation as the CoC WG's contact.",
            button="Confirm",
        )

    @routes.post(PATH + "/{token}")
    async def press(token: str) -> Response:
        found = await run_in_threadpool(claims, token)
        if isinstance(found, PolicyViolation):
            return _page(400, "This link cannot be used", f"Sorry: {found.reason}.")
        token = token.strip()
        digest = hashlib.sha256(token.encode("utf-8")).hexdigest()[:40]
        event = InboundEvent(
            platform="form",
            dedupe_key=f"form:wg-role:{digest}",
            kind=FORM_KIND,
            actor=None,
            attributes={},
            data={"token": token, "submitted_at": utcnow().isoformat()},
        )
        accepted = await accept(event)
        if isinstance(accepted, Response):
            return _page(503, "Please try again", "Your confirmation could not be saved just now.")
        if not accepted[2]:
            return _page(200, "Already confirmed", "This link was used before; nothing more to do.")
        return _page(
            200,
            "Thank you, your confirmation is received",
            f"The working group will be told once it is recorded (inbox:{accepted[1]}).",
        )

    return routes
