"""The sandbox inspector: server-rendered pages showing the sandboxes as people see the platforms,
and buttons that act as any seeded person through the requests the platforms send.

Reads only each sandbox's ``GET /_sandbox/state``. Acting goes through the sandboxes' own
controls, which sign as the platform does: Discord's ``POST /_sandbox/interactions`` (an
Ed25519-signed interaction delivered to the gateway), Slack's ``POST /_sandbox/interact`` (a
signed ``block_actions`` request to the gateway's ``/hooks/slack``), and the Forum's poll API as
the voter (``PUT /polls/vote`` with the sandbox's all-users key). Every page is a GET that
changes nothing; every action is a POST accepted only from this origin (``Origin``, else
``Referer``, must be the inspector itself) and answered with a redirect back to the page.

Every request must name an allowed host (``Host``): the address the inspector is bound to,
``localhost``, and the names the operator lists in ``CHARTERFLOW_INSPECTOR_ALLOWED_HOSTS``;
anything else is 403, so a page on another site that rebinds its own name to 127.0.0.1 (DNS
rebinding) can neither read the pages nor act. The redirect after an action goes to one of the
inspector's own pages, built from the ``Referer``'s page name, never to the ``Referer`` as is.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import httpx
from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, Response

from charterflow.inspector import actions, pages, safety
from charterflow.inspector.actions import BadNumber
from charterflow.inspector.markup import discord_markup, forum_markup, slack_markup, when
from charterflow.inspector.state import InspectorState, page_templates

__all__ = ["allowed_host", "create_app", "discord_markup", "forum_markup", "slack_markup", "when"]
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
# The inspector's routes: a new group is a module with a module-level ``router`` and one entry.
ROUTERS: tuple[APIRouter, ...] = (pages.router, actions.router, safety.router)


def allowed_host(host: str, *, port: int | None, names: tuple[str, ...]) -> bool:
    """Whether a ``Host`` header names this inspector: a loopback name or a listed ``name`` on
    the bound ``port`` (any port when None), or a listed ``name:port`` exactly."""
    host = host.strip().lower()
    name, _, given = host.rpartition(":") if not host.endswith("]") else (host, "", "")
    if not name:
        name, given = host, ""
    if given and not given.isdigit():
        return False
    for entry in (*LOOPBACK_NAMES, *names):
        entry = entry.strip().lower()
        if not entry:
            continue
        if entry == host:
            return True
        if entry == name and (port is None or given == str(port)):
            return True
    return False


def same_origin(request: Request) -> bool:
    """Whether a request comes from the inspector's own pages (``Origin``, else ``Referer``)."""
    own = f"{request.url.scheme}://{request.headers.get('host', '')}"
    origin = request.headers.get("origin")
    if origin:
        return origin == own
    referer = request.headers.get("referer")
    if not referer:
        return False
    parts = urlsplit(referer)
    return f"{parts.scheme}://{parts.netloc}" == own


def create_app(
    *,
    running: Any,
    prefect_ui: str | None = None,
    port: int | None = None,
    allowed_hosts: tuple[str, ...] | list[str] = (),
    ledger_url: str | None = None,
) -> FastAPI:
    """The inspector for ``running`` (a ``charterflow.inspector.serve.Running``), bound to
    ``port`` on loopback; ``allowed_hosts`` are the other host names it answers to;
    ``ledger_url``: the ledger its reports page reads (None: no such page)."""
    state = InspectorState(
        running=running,
        prefect_ui=prefect_ui,
        templates=page_templates(),
        client=httpx.AsyncClient(timeout=20.0),
        ledger_url=ledger_url,
    )
    names = tuple(h for h in allowed_hosts if h.strip())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await state.client.aclose()

    app = FastAPI(
        title="charterflow sandbox inspector", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan
    )
    app.state.inspector = state

    @app.middleware("http")
    async def actions_from_own_pages(request: Request, call_next: Any) -> Response:
        # Only requests naming this inspector (DNS rebinding), and every action (POST /act/...)
        # from the inspector's own pages.
        if not allowed_host(request.headers.get("host", ""), port=port, names=names):
            return HTMLResponse(
                "Refused: this inspector does not answer to that host name. "
                "List it in CHARTERFLOW_INSPECTOR_ALLOWED_HOSTS.",
                403,
            )
        if request.method == "POST" and not same_origin(request):
            return HTMLResponse("Refused: actions are accepted from the inspector's own pages only.", 403)
        return await call_next(request)

    app.add_exception_handler(BadNumber, bad_number)
    app.add_exception_handler(RequestValidationError, bad_query)
    for router in ROUTERS:
        app.include_router(router)
    return app


async def bad_number(request: Request, exc: Exception) -> Response:
    return HTMLResponse(f"Refused: {exc}.", 400)


async def bad_query(request: Request, exc: Exception) -> Response:
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    fields = ", ".join(str(e.get("loc", ["?"])[-1]) for e in errors) or "the request"
    return HTMLResponse(f"Refused: {fields} is not valid.", 400)
