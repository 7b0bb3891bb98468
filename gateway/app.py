"""The gateway's ASGI app: signed webhooks, Discord interactions, Slack actions, the public
application form, /healthz and /metrics. ``create_app()`` builds the shared state
(``gateway.state``) and includes the routers of ``gateway/routers/`` (``ROUTERS``) and the
plugins' hooks; see ``gateway/README.md``.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import SecretStr
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from charterflow.charter import load_configured_charter
from charterflow.settings import get_settings
from connectors.email import SmtpSettings

# Routing and dispatch only: no Prefect and no flow in the gateway process.
from flows import inbox_routing as inbox
from flows.forking import forked
from flows.platforms import Platforms
from gateway import form as forms
from gateway.dispatch import Dispatcher, PrefectDispatcher, StoreOnlyDispatcher
from gateway.metrics import Metrics
from gateway.routers import coc_outcome, health, hooks, links, report
from gateway.routers import form as form_routes
from gateway.settings import GatewaySettings

# _payload: named by flows.membership.handlers as where the inbox's payload is built.
from gateway.state import GatewayState, _payload, inbox_counts  # noqa: F401 - re-exported
from gateway.verifiers import build_verifiers
from ledger.db import Ledger

log = logging.getLogger("charterflow.gateway")
HERE = Path(__file__).parent
# The built-in routes, in the order they are included. A new route group is one module under
# gateway/routers/ with a module-level ``router`` and one entry here.
ROUTERS: tuple[APIRouter, ...] = (
    hooks.router,
    form_routes.router,
    links.router,
    health.router,
    report.router,  # the public report form (R-SAFE-1)
    coc_outcome.router,  # the CoC Liaison's outcome page (R-SAFE-2)
)


class MetricsMiddleware:
    """Counts every response by route and status and times it (pure ASGI: no body buffering)."""

    def __init__(self, app: Any, *, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def sending(message: dict) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except ClientDisconnect:
            # The client left before sending its whole body: nothing was stored, nobody is
            # there to answer. One line, not a traceback per hanging client.
            status["code"] = 499
            log.info(
                "gateway: %s %s: the client disconnected before sending the whole body",
                scope.get("method", "?"),
                Metrics.route_label(scope.get("path", "")),
            )
        finally:
            route = Metrics.route_label(scope.get("path", ""))
            self.metrics.requests.labels(route=route, status=str(status["code"])).inc()
            self.metrics.ack_seconds.labels(route=route).observe(time.perf_counter() - started)


def create_app(
    *,
    settings: GatewaySettings | None = None,
    ledger: Ledger | None = None,
    dispatcher: Dispatcher | None = None,
    charter: Any = None,
    prefect_api_url: str | None = None,
    confirm_secret: SecretStr | str | None = None,
    lookup: forms.UsernameLookup | None = None,
    email_outcomes: bool | None = None,
) -> FastAPI:
    """The gateway app. Defaults: settings from the environment, the configured ledger, a
    Prefect dispatcher for ``PREFECT_API_URL`` (store-only when dispatch is off), the
    configured charter, and the membership token secret the worker uses
    (``flows.platforms.resolve_confirm_secret``, read at the first confirmation or opt-in
    page). The dispatcher starts and stops with the app's lifespan. ``lookup`` checks the
    form's usernames on their platforms (none: the intake flow checks them later);
    :func:`served_app` builds it from the configured connectors. ``email_outcomes`` says
    whether the form promises outcome e-mails (default: ``CHARTERFLOW_SMTP_HOST`` is set)."""
    settings = settings or GatewaySettings()
    inbox.ensure_routes()
    if ledger is None:
        ledger = Ledger(get_settings().ledger_url())
    if charter is None:
        charter = load_configured_charter()
    if email_outcomes is None:
        email_outcomes = bool(SmtpSettings().host)
    state = build_state(
        settings=settings,
        ledger=ledger,
        dispatcher=dispatcher,
        charter=charter,
        prefect_api_url=prefect_api_url,
        confirm_secret=confirm_secret,
        lookup=lookup,
        email_outcomes=email_outcomes,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.dispatcher.start()
        try:
            yield
        finally:
            await run_in_threadpool(state.dispatcher.stop)

    app = FastAPI(title="charterflow gateway", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.gateway = state
    app.state.settings, app.state.ledger, app.state.dispatcher = settings, ledger, state.dispatcher
    app.state.metrics, app.state.verifiers, app.state.limits = state.metrics, state.verifiers, state.limits
    app.add_middleware(MetricsMiddleware, metrics=state.metrics)
    for router in ROUTERS:
        app.include_router(router)
    # Plugins' routes (a Matrix appservice push...), mounted without the core importing them.
    for name, factory in gateway_hooks():
        try:
            app.include_router(factory(accept=state.accept, settings=settings))
        except Exception as exc:  # noqa: BLE001 - a broken plugin is reported, never fatal
            log.error("gateway: hook %r not mounted: %s: %s", name, type(exc).__name__, exc)
    return app


def build_state(
    *,
    settings: GatewaySettings,
    ledger: Ledger,
    dispatcher: Dispatcher | None,
    charter: Any,
    prefect_api_url: str | None,
    confirm_secret: SecretStr | str | None,
    lookup: forms.UsernameLookup | None,
    email_outcomes: bool,
) -> GatewayState:
    """Everything the routers share (see :func:`create_app` for the defaults)."""
    limits = forms.Limits(
        max_handle_chars=charter.application.max_handle_chars,
        max_answer_chars=charter.application.max_answer_chars,
        confirm_within_days=charter.application.confirm_within_days,
    )
    routing = inbox.RoutingConfig(
        discourse_applications_categories=settings.applications_categories(),
        discourse_ideas_categories=settings.ideas_categories(),
        discourse_commons_categories=settings.commons_categories(),
        discourse_own_usernames=settings.own_usernames(),
    )
    metrics = Metrics(inbox_counts=partial(inbox_counts, ledger))
    if dispatcher is None:
        if settings.dispatch and get_settings().inbox_dispatch == "pull":
            dispatcher = StoreOnlyDispatcher(detail="the workers take stored events from the ledger (pull)")
        elif settings.dispatch:
            if prefect_api_url is None:
                prefect_api_url = inbox.prefect_setting("PREFECT_API_URL")
            dispatcher = PrefectDispatcher(
                ledger=ledger,
                api_url=prefect_api_url,
                metrics=metrics,
                drain_interval=settings.drain_interval,
                stale_after=settings.stale_after,
                threads=settings.dispatch_threads,
            )
        else:
            dispatcher = StoreOnlyDispatcher()
    return GatewayState(
        settings=settings,
        ledger=ledger,
        dispatcher=dispatcher,
        metrics=metrics,
        verifiers=build_verifiers(settings),
        limits=limits,
        routing=routing,
        templates=Environment(
            loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]), auto_reload=False
        ),
        csrf=forms.CsrfTokens(secret=settings.form_secret, max_age=settings.form_token_max_age),
        limiter=forms.RateLimiter(limit=settings.apply_rate_limit, window=settings.apply_rate_window),
        lookup_limiter=forms.RateLimiter(
            limit=settings.apply_rate_limit * forms.LOOKUPS_PER_APPLICATION, window=settings.apply_rate_window
        ),
        report_limiter=forms.RateLimiter(limit=report.REPORT_RATE_LIMIT, window=report.REPORT_RATE_WINDOW),
        report_max_text=charter.safety.max_text_chars,
        lookup=lookup,
        email_outcomes=email_outcomes,
        confirm_secret=confirm_secret,
    )


HOOK_GROUP = "charterflow.gateway_hooks"


def gateway_hooks(group: str = HOOK_GROUP) -> list[tuple[str, Any]]:
    """The router factories of the entry-point group ``charterflow.gateway_hooks``, by name.

    Each is called as ``factory(accept=..., settings=...)`` and returns a FastAPI ``APIRouter``;
    ``accept(event, raw)`` (async) stores one verified ``InboundEvent`` in the inbox exactly as
    the built-in hooks do: ``(route, inbox id, created)``, or a ``Response`` (503) when the
    ledger cannot store it. One that fails to import is logged and skipped."""
    found = []
    for ep in sorted(entry_points(group=group), key=lambda e: e.name):
        try:
            found.append((ep.name, ep.load()))
        except Exception as exc:  # noqa: BLE001 - reported, never fatal
            log.error("gateway: hook %r cannot load: %s: %s", ep.name, type(exc).__name__, exc)
    return found


def served_app() -> FastAPI:
    """The app as ``uvicorn gateway.app:served_app --factory`` serves it: the form's usernames
    are looked up with the configured connectors (built at the first submission)."""
    load_routes_apart()
    return create_app(lookup=configured_lookup())


def load_routes_apart() -> None:
    """Fill the inbox's route registry from a forked child that imports :mod:`flows.inbox` (so
    Prefect and every flow), so that this process never does: the served gateway stays about
    40 MiB smaller and starts 2-3 s sooner (bench/startup.py). Call it before any thread starts."""
    if inbox.routes_loaded():
        return
    # `charterflow up` names the snapshot it keeps while the code it came from is unchanged.
    kept = os.environ.get("CHARTERFLOW_GATEWAY_ROUTES_FILE")
    if kept:
        try:
            inbox.load_routes(json.loads(Path(kept).read_text(encoding="utf-8")))
            return
        except (OSError, ValueError, KeyError, TypeError):
            log.warning("gateway: the kept inbox routes in %s cannot be read; taking them anew", kept)
    inbox.load_routes(forked(inbox.full_routes_snapshot).result(timeout=300))


def configured_lookup() -> forms.UsernameLookup:
    """The form's username lookup through the configured connectors (built at first use)."""
    return forms.UsernameLookup(_configured_directories)


def _configured_directories() -> dict[str, Any]:
    platforms = Platforms.from_settings()
    return {name: space.directory for name, space in platforms.spaces.items() if space.directory is not None}


__all__ = ["configured_lookup", "create_app", "load_routes_apart", "served_app"]
