"""What the gateway's routers share, kept on ``app.state``: the settings, the ledger, the
metrics, the dispatcher and the form's helpers (:class:`GatewayState`), the inbox's one way in
(:meth:`GatewayState.accept`), and the FastAPI dependencies that hand them to a route.

A router declares what it uses (``settings: SettingsDep``, ``ledger: LedgerDep``,
``metrics: MetricsDep``, ``gateway: GatewayDep``); ``gateway.app.create_app`` builds the state
once and includes the routers.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends
from jinja2 import Environment
from pydantic import SecretStr
from sqlalchemy.exc import DataError, SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from connectors.base import InboundEvent

# Routing and dispatch only: no Prefect and no flow in the gateway process.
from flows import inbox_routing as inbox
from flows.platforms import resolve_confirm_secret
from gateway import form as forms
from gateway.dispatch import Dispatcher
from gateway.metrics import Metrics
from gateway.settings import GatewaySettings
from gateway.verifiers import Verifiers
from ledger import repo
from ledger.db import Ledger
from ledger.errors import LedgerUnavailable

log = logging.getLogger("charterflow.gateway")
GROUP_NAME = "Online Community Working Group"
# Security headers for every HTML page: no scripts at all, no framing, nothing sent elsewhere.
HTML_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def json_response(status: int, body: dict[str, Any] | None = None, **headers: str) -> JSONResponse:
    """A JSON answer that no cache keeps (``{"ok": status < 400}`` when no body is given)."""
    return JSONResponse(
        body if body is not None else {"ok": status < 400},
        status_code=status,
        headers={"Cache-Control": "no-store", **headers},
    )


@dataclass(kw_only=True)
class GatewayState:
    """One gateway app's collaborators (built by ``create_app``, read through the dependencies
    below). ``confirm_secret`` None: resolved at the first link page (``link_secret``)."""

    settings: GatewaySettings
    ledger: Ledger
    dispatcher: Dispatcher
    metrics: Metrics
    verifiers: Verifiers
    limits: forms.Limits
    routing: inbox.RoutingConfig
    templates: Environment
    csrf: forms.CsrfTokens
    limiter: forms.RateLimiter
    lookup_limiter: forms.RateLimiter
    lookup: forms.UsernameLookup | None = None
    # The public report form's per-IP limit and the charter's longest report (R-SAFE-1).
    report_limiter: forms.RateLimiter | None = None
    report_max_text: int = 4000
    email_outcomes: bool = False
    confirm_secret: SecretStr | str | None = field(default=None, repr=False)

    # ---- storing ------------------------------------------------------------------------------

    def inbox_counts(self) -> dict[str, int]:
        return inbox_counts(self.ledger)

    def store(self, event: InboundEvent, route: str, raw: bytes | None) -> tuple[int, bool, bool]:
        """Store once under its dedupe key; (id, created, processed). The Discord /apply
        command needs nothing but the modal we answer with: stored already processed."""

        def work(session: Any) -> tuple[int, bool, bool]:
            row, created = repo.inbox_put(
                session,
                dedupe_key=_text(event.dedupe_key, 300),
                source=event.platform,
                kind=_text(event.kind, 80),
                payload=_payload(event),
                route=route,
                raw=raw,
                record_receipt=False,
            )
            if created and route == inbox.Route.APPLY_MODAL:
                repo.inbox_mark_processed(session, row, actor="gateway", result_ref="discord:modal-shown")
            elif created and route == inbox.Route.OWN:  # the bot's own post: nothing to do
                repo.inbox_mark_processed(session, row, actor="gateway", result_ref="discourse:own-post")
            return row.id, created, row.processed_at is not None

        # Without the writers' lock: the acknowledgement never waits for the handlers' writes;
        # the receipt's audit entry comes with the event's claim (repo.note_receipt).
        return self.ledger.run(work, lock=False)

    async def accept(self, event: InboundEvent, raw: bytes | None = None) -> tuple[str, int | None, bool] | Response:
        """Route and store one verified event, then tell the dispatcher: ``(route, inbox id,
        created)``, or a Response (400 never storable, 503 ledger unavailable). The plugins'
        hooks get this as ``accept``."""
        route = inbox.route_for(
            source=event.platform, kind=event.kind, attributes=event.attributes, config=self.routing, actor=event.actor
        )
        try:
            event_id, created, processed = await run_in_threadpool(self.store, event, route, raw)
        except Exception as exc:  # noqa: BLE001 - not stored, so never a 2xx
            if not _ledger_outage(exc):
                # Our bug, not the platform's: a retry would fail the same way forever.
                log.error(
                    "gateway: a %s event could not be stored (%s); refused with 400", event.platform, type(exc).__name__
                )
                return json_response(400, {"ok": False, "error": "this event cannot be stored"})
            # The platform must retry.
            log.error("gateway: could not store a %s event: %s", event.platform, type(exc).__name__)
            return json_response(503, {"ok": False, "error": "ledger unavailable; retry later"}, **{"Retry-After": "5"})
        if created:
            self.metrics.stored.labels(source=event.platform, route=route).inc()
            if route == inbox.Route.UNKNOWN:
                log.info(
                    "gateway: %s event %r has no route; kept as inbox:%s", event.platform, event.kind[:80], event_id
                )
            if not processed:
                self.dispatcher.notify(event_id)
        else:
            self.metrics.duplicates.labels(source=event.platform).inc()
        return route, event_id, created

    # ---- pages --------------------------------------------------------------------------------

    def page(
        self,
        name: str,
        *,
        status: int = 200,
        cookie: str | None = None,
        secure: bool = False,
        cookie_path: str = "/apply",
        **context: Any,
    ) -> HTMLResponse:
        """A template of ``gateway/templates`` as an HTML answer with the security headers; with
        ``cookie``, the CSRF cookie set on ``cookie_path``."""
        html = self.templates.get_template(name).render(
            group_name=GROUP_NAME, limits=self.limits, email_outcomes=self.email_outcomes, **context
        )
        response = HTMLResponse(html, status_code=status, headers=HTML_HEADERS)
        if cookie is not None:
            response.set_cookie(
                forms.CSRF_COOKIE,
                cookie,
                httponly=True,
                samesite="strict",
                secure=secure,
                path=cookie_path,
                max_age=self.settings.form_token_max_age,
            )
        return response

    def form_page(
        self,
        name: str,
        request: Request,
        *,
        values: dict[str, str],
        errors: dict[str, str] | None = None,
        submission: str | None = None,
        **context: Any,
    ) -> HTMLResponse:
        """A form's template (:meth:`page`) with what was typed, its errors, the honeypot and a
        CSRF token bound to ``submission`` (a new one when None); a CSRF cookie when the browser
        has none."""
        submission = submission or forms.CsrfTokens.new_submission()
        return self.page(
            name,
            values=values,
            errors=errors or {},
            submission=submission,
            honeypot=forms.HONEYPOT,
            **context,
            **self.csrf_fields(request, submission),
        )

    def csrf_fields(self, request: Request, bound_to: str) -> dict[str, Any]:
        """:meth:`page`'s arguments for a form whose CSRF token is bound to ``bound_to``:
        ``cookie`` (a new one when the browser sent none, or an oversized one), ``secure`` and
        ``csrf``."""
        cookie = request.cookies.get(forms.CSRF_COOKIE)
        new_cookie = None
        if not cookie or len(cookie) > 100:
            cookie = new_cookie = forms.CsrfTokens.new_cookie()
        return {
            "cookie": new_cookie,
            "secure": request.url.scheme == "https",
            "csrf": self.csrf.issue(cookie, bound_to),
        }

    def link_secret(self) -> SecretStr | str:
        """The membership tokens' secret, the worker's (read at the first link page)."""
        if self.confirm_secret is None:
            self.confirm_secret = resolve_confirm_secret()
        return self.confirm_secret


# ---- dependencies ---------------------------------------------------------------------------
# Async, so FastAPI calls them on the event loop instead of a worker thread.


async def gateway_state(request: Request) -> GatewayState:
    return request.app.state.gateway


async def gateway_settings(request: Request) -> GatewaySettings:
    return request.app.state.settings


async def gateway_ledger(request: Request) -> Ledger:
    return request.app.state.ledger


async def gateway_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


GatewayDep = Annotated[GatewayState, Depends(gateway_state)]
SettingsDep = Annotated[GatewaySettings, Depends(gateway_settings)]
LedgerDep = Annotated[Ledger, Depends(gateway_ledger)]
MetricsDep = Annotated[Metrics, Depends(gateway_metrics)]


# ---- helpers --------------------------------------------------------------------------------


def inbox_counts(ledger: Ledger) -> dict[str, int]:
    """The inbox's counts by state (for /healthz and the depth gauge)."""
    with ledger.read() as session:
        return repo.inbox_counts(session)


def content_type(request: Request) -> str:
    """The request's media type, lower case, without parameters."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def _payload(event: InboundEvent) -> dict[str, Any]:
    """What the inbox keeps: the verified payload plus the parsed attributes, as JSON (and,
    for an unusual body, the notes on what its parsed view changed)."""
    data = json.loads(json.dumps(dict(event.data), default=str))
    payload = {
        "data": data,
        "attributes": {str(k): _text(v) for k, v in event.attributes.items()},
        "actor": event.actor,
        "instance": event.instance,
    }
    if event.notes:
        payload["notes"] = list(event.notes)
    return payload


def _text(value: Any, limit: int | None = None) -> str:
    """``value`` as text a database column takes: no NUL (PostgreSQL refuses it), no lone
    surrogate (not encodable as UTF-8)."""
    text = str(value)[:limit] if limit else str(value)
    if "\x00" in text or any("\ud800" <= c <= "\udfff" for c in text):
        text = "".join("\ufffd" if c == "\x00" or "\ud800" <= c <= "\udfff" else c for c in text)
    return text


def _ledger_outage(exc: BaseException) -> bool:
    """Whether a failed store means the ledger cannot be reached (the platform should retry),
    rather than an event it can never take (a DataError, or a bug of ours)."""
    if isinstance(exc, DataError):
        return False
    return isinstance(exc, (LedgerUnavailable, SQLAlchemyError, OSError, TimeoutError))
