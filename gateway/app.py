"""The gateway's ASGI app: signed webhooks, Discord interactions, Slack actions, the public
application form, /healthz and /metrics. ``create_app()`` builds it; see ``gateway/README.md``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import SecretStr
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from connectors.base import InboundEvent
from connectors.errors import InvalidSignature
# Routing and dispatch only: no Prefect and no flow in the gateway process.
from flows import inbox_routing as inbox
from gateway import form as forms
from gateway.body import BadLength, BodyTimeout, BodyTooLarge, declared_length, read_limited
from gateway.dispatch import Dispatcher, PrefectDispatcher, StoreOnlyDispatcher
from gateway.metrics import Metrics
from gateway.settings import GatewaySettings
from gateway.verifiers import CONTENT_TYPES, SIGNATURE_HEADERS, Verifiers, build_verifiers
from ledger import repo
from ledger.db import Ledger
from ledger.types import utcnow

log = logging.getLogger("charterflow.gateway")
HERE = Path(__file__).parent
GROUP_NAME = "Online Community Working Group"
# Security headers for every HTML page: no scripts at all, no framing, nothing sent elsewhere.
# A body this large is verified and parsed in a worker thread (a deeply nested document may
# take a second to read), so the event loop keeps answering the others.
BIG_BODY = 64 * 1024
HTML_HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; style-src 'self'; img-src 'self'; "
                                "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _json(status: int, body: dict[str, Any] | None = None, **headers: str) -> JSONResponse:
    return JSONResponse(body if body is not None else {"ok": status < 400}, status_code=status,
                        headers={"Cache-Control": "no-store", **headers})


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
            log.info("gateway: %s %s: the client disconnected before sending the whole body",
                     scope.get("method", "?"), Metrics.route_label(scope.get("path", "")))
        finally:
            route = Metrics.route_label(scope.get("path", ""))
            self.metrics.requests.labels(route=route, status=str(status["code"])).inc()
            self.metrics.ack_seconds.labels(route=route).observe(time.perf_counter() - started)


def create_app(*, settings: GatewaySettings | None = None, ledger: Ledger | None = None,
               dispatcher: Dispatcher | None = None, charter: Any = None,
               prefect_api_url: str | None = None,
               confirm_secret: SecretStr | str | None = None,
               lookup: forms.UsernameLookup | None = None,
               email_outcomes: bool | None = None) -> FastAPI:
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
        from charterflow.settings import get_settings

        ledger = Ledger(get_settings().ledger_url())
    if charter is None:
        from charterflow.charter import load_configured_charter

        charter = load_configured_charter()
    limits = forms.Limits(max_handle_chars=charter.application.max_handle_chars,
                          max_answer_chars=charter.application.max_answer_chars,
                          confirm_within_days=charter.application.confirm_within_days)
    verifiers = build_verifiers(settings)
    routing = inbox.RoutingConfig(discourse_applications_categories=settings.applications_categories(),
                                  discourse_ideas_categories=settings.ideas_categories(),
                                  discourse_own_usernames=settings.own_usernames())

    def inbox_counts() -> dict[str, int]:
        with ledger.read() as session:
            return repo.inbox_counts(session)

    metrics = Metrics(inbox_counts=inbox_counts)
    if dispatcher is None:
        if settings.dispatch:
            if prefect_api_url is None:
                prefect_api_url = inbox.prefect_setting("PREFECT_API_URL")
            dispatcher = PrefectDispatcher(ledger=ledger, api_url=prefect_api_url, metrics=metrics,
                                           drain_interval=settings.drain_interval,
                                           stale_after=settings.stale_after,
                                           threads=settings.dispatch_threads)
        else:
            dispatcher = StoreOnlyDispatcher()
    templates = Environment(loader=FileSystemLoader(HERE / "templates"),
                            autoescape=select_autoescape(["html"]), auto_reload=False)
    csrf = forms.CsrfTokens(secret=settings.form_secret, max_age=settings.form_token_max_age)
    limiter = forms.RateLimiter(limit=settings.apply_rate_limit, window=settings.apply_rate_window)
    if email_outcomes is None:
        from connectors.email import SmtpSettings

        email_outcomes = bool(SmtpSettings().host)
    lookup_limiter = forms.RateLimiter(limit=settings.apply_rate_limit * forms.LOOKUPS_PER_APPLICATION,
                                       window=settings.apply_rate_window)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        dispatcher.start()
        try:
            yield
        finally:
            await run_in_threadpool(dispatcher.stop)

    app = FastAPI(title="charterflow gateway", docs_url=None, redoc_url=None, openapi_url=None,
                  lifespan=lifespan)
    app.state.settings, app.state.ledger, app.state.dispatcher = settings, ledger, dispatcher
    app.state.metrics, app.state.verifiers, app.state.limits = metrics, verifiers, limits
    app.add_middleware(MetricsMiddleware, metrics=metrics)

    # ---- storing ------------------------------------------------------------------------------

    def store(event: InboundEvent, route: str, raw: bytes | None) -> tuple[int, bool, bool]:
        """Store once under its dedupe key; (id, created, processed). The Discord /apply
        command needs nothing but the modal we answer with: stored already processed."""
        def work(session: Any) -> tuple[int, bool, bool]:
            row, created = repo.inbox_put(session, dedupe_key=_text(event.dedupe_key, 300),
                                          source=event.platform, kind=_text(event.kind, 80),
                                          payload=_payload(event), route=route, raw=raw)
            if created and route == inbox.Route.APPLY_MODAL:
                repo.inbox_mark_processed(session, row, actor="gateway", result_ref="discord:modal-shown")
            elif created and route == inbox.Route.OWN:  # the bot's own post: nothing to do
                repo.inbox_mark_processed(session, row, actor="gateway", result_ref="discourse:own-post")
            return row.id, created, row.processed_at is not None
        return ledger.run(work)

    async def accept(event: InboundEvent, raw: bytes | None = None
                     ) -> tuple[str, int | None, bool] | Response:
        route = inbox.route_for(source=event.platform, kind=event.kind,
                                attributes=event.attributes, config=routing, actor=event.actor)
        try:
            event_id, created, processed = await run_in_threadpool(store, event, route, raw)
        except Exception as exc:  # noqa: BLE001 - not stored, so never a 2xx
            if not _ledger_outage(exc):
                # Our bug, not the platform's: a retry would fail the same way forever.
                log.error("gateway: a %s event could not be stored (%s); refused with 400",
                          event.platform, type(exc).__name__)
                return _json(400, {"ok": False, "error": "this event cannot be stored"})
            # The platform must retry.
            log.error("gateway: could not store a %s event: %s", event.platform, type(exc).__name__)
            return _json(503, {"ok": False, "error": "ledger unavailable; retry later"}, **{"Retry-After": "5"})
        if created:
            metrics.stored.labels(source=event.platform, route=route).inc()
            if route == inbox.Route.UNKNOWN:
                log.info("gateway: %s event %r has no route; kept as inbox:%s", event.platform,
                         event.kind[:80], event_id)
            if not processed:
                dispatcher.notify(event_id)
        else:
            metrics.duplicates.labels(source=event.platform).inc()
        return route, event_id, created

    # ---- hooks --------------------------------------------------------------------------------

    async def receive_hook(request: Request, platform: str) -> tuple[InboundEvent, bytes] | Response:
        """Every check before the event may be trusted: the event and the body as received,
        or a Response when refused."""
        verifier = verifiers.get(platform)
        if verifier is None:
            return _json(503, {"ok": False, "error": f"{platform} connector not configured"})
        try:
            length = declared_length(request)
        except BadLength as exc:
            return _json(400, {"ok": False, "error": f"bad framing: {exc}" if "both" in str(exc)
                               else "bad Content-Length"}, Connection="close")
        if length is not None and length > settings.max_body_bytes:
            return _json(413, {"ok": False, "error": "body too large"})
        if not all(request.headers.get(h) for h in SIGNATURE_HEADERS[platform]):
            metrics.verification_failures.labels(platform=platform).inc()
            return _json(401, {"ok": False, "error": "missing signature"})
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type not in CONTENT_TYPES[platform]:
            return _json(415, {"ok": False, "error": f"content type must be {' or '.join(CONTENT_TYPES[platform])}"})
        try:
            body = await read_limited(request, settings.max_body_bytes, timeout=settings.body_timeout)
        except BodyTooLarge:
            return _json(413, {"ok": False, "error": "body too large"})
        except BodyTimeout:
            log.info("gateway: %s hook: the body did not arrive within %s s; 408", platform,
                     settings.body_timeout)
            return _json(408, {"ok": False, "error": "request body not received in time"},
                         Connection="close")
        headers = {k: v for k, v in request.headers.items()}
        try:
            if len(body) > BIG_BODY:  # a deeply nested document takes a while to read
                return await run_in_threadpool(verifier.verify, headers=headers, body=body), body
            return verifier.verify(headers=headers, body=body), body
        except InvalidSignature as exc:
            status = exc.status if exc.status in (400, 401, 413) else 401
            if status == 401:
                metrics.verification_failures.labels(platform=platform).inc()
            return _json(status, {"ok": False, "error": "invalid signature" if status == 401 else
                                  "body too large" if status == 413 else "malformed request"})
        except Exception as exc:  # noqa: BLE001 - a verifier bug must not become a 500 probe answer
            log.warning("gateway: %s verifier raised %s", platform, type(exc).__name__)
            return _json(400, {"ok": False, "error": "malformed request"})

    @app.post("/hooks/discourse")
    async def discourse_hook(request: Request) -> Response:
        received = await receive_hook(request, "discourse")
        if isinstance(received, Response):
            return received
        event, raw = received
        accepted = await accept(event, raw)
        if isinstance(accepted, Response):
            return accepted
        route, event_id, created = accepted
        return _json(200, {"ok": True, "inbox": event_id, "duplicate": not created, "route": route})

    @app.post("/hooks/discord")
    async def discord_hook(request: Request) -> Response:
        received = await receive_hook(request, "discord")
        if isinstance(received, Response):
            return received
        event, raw = received
        from connectors.discord import payloads

        if event.kind == "ping":
            return _json(200, payloads.pong())
        accepted = await accept(event, raw)
        if isinstance(accepted, Response):
            return accepted
        route = accepted[0]
        if route == inbox.Route.APPLY_MODAL:
            return _json(200, payloads.apply_modal())
        if route in (inbox.Route.INTAKE, inbox.Route.IDEA, inbox.Route.OPT_IN, inbox.Route.LEAVE,
                     inbox.Route.VOTE, inbox.Route.CONFIRM, inbox.Route.BOARD_PROPOSAL) \
                or route in inbox.DEFERRED_ROUTES:
            # Within Discord's 3 s: "thinking…"; the flow replaces it with its answer (15 min).
            # Buttons too: a private "thinking…" (type 5), not a deferred update (type 6), whose
            # @original would be the message the button is on, edited by the answer.
            return _json(200, payloads.deferred(ephemeral=True))
        if event.kind == "autocomplete":
            return _json(200, {"type": 8, "data": {"choices": []}})
        return _json(200, payloads.ephemeral("Sorry, this action is not known here. "
                                             "It was kept for the working group to look at."))

    @app.post("/hooks/slack")
    async def slack_hook(request: Request) -> Response:
        received = await receive_hook(request, "slack")
        if isinstance(received, Response):
            return received
        event, raw = received
        if event.kind == "url_verification":
            return _json(200, {"challenge": str(event.attributes.get("challenge", ""))})
        accepted = await accept(event, raw)
        if isinstance(accepted, Response):
            return accepted
        # Slack wants a 200 within 3 s; the Board flow answers through response_url.
        return Response(status_code=200)

    # ---- the application form ---------------------------------------------------------------

    def page(name: str, *, status: int = 200, cookie: str | None = None, secure: bool = False,
             cookie_path: str = "/apply", **context: Any) -> HTMLResponse:
        html = templates.get_template(name).render(group_name=GROUP_NAME, limits=limits,
                                                   email_outcomes=email_outcomes, **context)
        response = HTMLResponse(html, status_code=status, headers=HTML_HEADERS)
        if cookie is not None:
            response.set_cookie(forms.CSRF_COOKIE, cookie, httponly=True, samesite="strict",
                                secure=secure, path=cookie_path, max_age=settings.form_token_max_age)
        return response

    def form_page(request: Request, *, values: dict[str, str] | None = None,
                  errors: dict[str, str] | None = None, status: int = 200,
                  submission: str | None = None) -> HTMLResponse:
        cookie = request.cookies.get(forms.CSRF_COOKIE)
        new_cookie = None
        if not cookie or len(cookie) > 100:
            cookie = new_cookie = forms.CsrfTokens.new_cookie()
        submission = submission or forms.CsrfTokens.new_submission()
        return page("apply.html", status=status, cookie=new_cookie, secure=request.url.scheme == "https",
                    values={name: "" for name in forms.FIELDS} | (values or {}),
                    errors=errors or {}, submission=submission,
                    csrf=csrf.issue(cookie, submission), honeypot=forms.HONEYPOT)

    def message(heading: str, text: str, *, status: int, **headers: str) -> HTMLResponse:
        response = page("message.html", status=status, heading=heading, message=text, link="/apply")
        response.headers.update(headers)
        return response

    @app.get("/apply")
    async def apply_form(request: Request) -> Response:
        return form_page(request)

    @app.get("/")
    async def root() -> Response:
        return Response(status_code=303, headers={"Location": "/apply"})

    @app.get("/static/form.css")
    async def stylesheet() -> Response:
        return Response((HERE / "static" / "form.css").read_bytes(), media_type="text/css",
                        headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"})

    @app.post("/apply")
    async def apply_submit(request: Request) -> Response:
        # Only accepted applications count toward the limit (a person correcting mistakes is
        # never locked out); lookups on the platforms have their own, larger allowance.
        client_ip = request.client.host if request.client else "unknown"
        wait = limiter.wait(client_ip)
        if wait:
            return too_many(wait)
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/x-www-form-urlencoded":
            return message("Unsupported form", "Please send the form from the application page.", status=415)
        try:
            raw = await read_limited(request, settings.max_form_bytes, timeout=settings.body_timeout)
            fields = parse_qs(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=40)
        except BodyTooLarge:
            return message("Too long", "The form is too long. Please shorten your answers.", status=413)
        except BodyTimeout:
            return message("Too slow", "The form did not arrive in time. Please send it again.",
                           status=408)
        except (BadLength, UnicodeDecodeError, ValueError):
            return message("Unreadable form", "Please send the form from the application page.", status=400)
        posted = {name: values[0] for name, values in fields.items() if values}
        submission = posted.get("submission", "")
        if not csrf.check(cookie=request.cookies.get(forms.CSRF_COOKIE), submission=submission,
                          token=posted.get("csrf", "")):
            metrics.form.labels(outcome="csrf").inc()
            # What was typed is kept; a fresh token lets the person simply send it again.
            checked = forms.validate(posted, limits=limits)
            return form_page(request, values=checked.values, status=403, errors={
                "form": "This form had expired or was opened elsewhere. Please check your "
                        "answers and send it again."})
        if posted.get(forms.HONEYPOT, "").strip():
            metrics.form.labels(outcome="honeypot").inc()
            limiter.hit(client_ip)
            log.info("gateway: /apply honeypot filled; not stored")
            return page("applied.html", accounts=[], confirm_days=limits.confirm_within_days,
                        reference="-", status_url=None, email=False)
        checked = forms.validate(posted, limits=limits)
        if checked.ok and lookup is not None:
            lookup_wait = lookup_limiter.hit(client_ip)
            if lookup_wait:
                return too_many(lookup_wait)
            checked.errors.update(await run_in_threadpool(lookup.errors, checked.values))
        if not checked.ok:
            metrics.form.labels(outcome="invalid").inc()
            return form_page(request, values=checked.values, errors=checked.errors, status=422,
                             submission=submission)
        return await store_application(request, client_ip, submission, checked.values)

    def too_many(wait: float) -> HTMLResponse:
        metrics.form.labels(outcome="rate-limited").inc()
        return message("Too many attempts", "Too many applications were sent from your network "
                       f"just now. Please try again in {int(wait // 60) + 1} minutes.",
                       status=429, **{"Retry-After": str(int(wait) + 1)})

    def stored_data(event_id: int) -> dict[str, Any]:
        with ledger.read() as session:
            from ledger.models import InboxEvent

            row = session.get(InboxEvent, event_id)
            return dict((row.payload or {}).get("data") or {}) if row else {}

    async def store_application(request: Request, client_ip: str, submission: str,
                                values: dict[str, str]) -> Response:
        event = InboundEvent(
            platform="form", dedupe_key=f"form:{submission}", kind="application",
            actor=values["discourse_username"] or values["discord_username"],
            attributes={}, data={"submission_id": submission, "submitted_at": utcnow().isoformat(),
                                 **{name: values[name] for name in forms.FIELDS if values[name]}})
        accepted = await accept(event)
        if isinstance(accepted, Response):
            return message("Please try again", "Your application could not be saved just now. "
                           "Please go back and send it again in a minute.", status=503,
                           **{"Retry-After": "30"})
        route, event_id, created = accepted
        metrics.form.labels(outcome="stored" if created else "duplicate").inc()
        status_url = f"/apply/status/{submission}"
        if created:
            limiter.hit(client_ip)
        else:
            stored = await run_in_threadpool(stored_data, event_id)
            changed = forms.kept_changes(stored, values)
            if changed:
                # The same form sent again with other answers (the back button): the first stays.
                return page("kept.html", status=409, reference=f"inbox:{event_id}",
                            status_url=status_url, confirm_days=limits.confirm_within_days,
                            changed=[forms.LABELS[name] for name in changed])
            values = {name: str(stored.get(name) or "") for name in forms.FIELDS}
        accounts = [(label, values[name]) for name, label in
                    (("discourse_username", "Forum"), ("discord_username", "Discord")) if values[name]]
        return page("applied.html", accounts=accounts, confirm_days=limits.confirm_within_days,
                    reference=f"inbox:{event_id}", status_url=status_url,
                    email=bool(values["email"]) and email_outcomes)

    @app.get("/apply/status/{submission}")
    async def apply_status(submission: str) -> Response:
        from flows.membership.status import describe_submission

        if not forms.valid_submission(submission):
            view = None
        else:
            view = await run_in_threadpool(lambda: describe_submission(
                ledger, submission=submission, confirm_days=limits.confirm_within_days))
        if view is None:
            return page("message.html", status=404, heading="No such application",
                        message="This link does not belong to an application. Please use the "
                                "link shown after you sent the form.", link="/apply")
        return page("status.html", view=view, reference=submission)

    # ---- confirmation and opt-in pages (R-APP-2, R-TERM-2) -----------------------------------
    # A GET shows what the link stands for and a button; only the button's POST (CSRF-checked)
    # stores an inbox event, so a link preview or a mail scanner opening the link consumes
    # nothing. The handlers (flows.membership.handlers) check the token again when they act.

    token_secret: dict[str, SecretStr | str | None] = {"value": confirm_secret}

    def link_secret() -> SecretStr | str:
        if token_secret["value"] is None:
            from flows.platforms import resolve_confirm_secret

            token_secret["value"] = resolve_confirm_secret()
        return token_secret["value"]  # type: ignore[return-value]

    link_pages = {
        "confirm": {"heading": "Confirm your application", "button": "Confirm my application",
                    "done": "Thank you, your confirmation is received", "event_kind": "confirm"},
        "optin": {"heading": "Opt in for another year", "button": "Opt in for another year",
                  "done": "Thank you, your opt-in is received", "event_kind": "optin"},
    }

    def describe(purpose: str, token: str) -> Any:
        from flows.membership.links import describe_link

        return describe_link(ledger=ledger, purpose=purpose, token=token, secret=link_secret(),
                             now=utcnow())

    def link_submission(token: str) -> str:
        # The CSRF token is bound to this link: a button from one link cannot post another.
        return hashlib.sha256(token.encode("utf-8")).hexdigest()[:40]

    def link_refused(purpose: str, view: Any) -> HTMLResponse:
        if view.state == "invalid":
            heading, status = "This link cannot be used", 400
            text = (f"Sorry: {view.reason}. Please use the newest message we sent you, or ask "
                    "the working group for a new link.")
        else:  # closed
            heading, status = "Nothing to do here any more", 410
            text = f"{view.reason[0].upper()}{view.reason[1:]}."
            if purpose == "confirm":
                text += " You are welcome to apply again."
        return page("message.html", status=status, heading=heading, message=text,
                    link="/apply" if purpose == "confirm" else None)

    def link_page(request: Request, purpose: str, token: str, view: Any, *, status: int = 200,
                  error: str | None = None) -> HTMLResponse:
        cookie = request.cookies.get(forms.CSRF_COOKIE)
        new_cookie = None
        if not cookie or len(cookie) > 100:
            cookie = new_cookie = forms.CsrfTokens.new_cookie()
        texts = link_pages[purpose]
        return page("link.html", status=status, cookie=new_cookie, cookie_path=f"/{purpose}",
                    secure=request.url.scheme == "https", heading=texts["heading"],
                    button=texts["button"], view=view, error=error, action=f"/{purpose}/{token}",
                    csrf=csrf.issue(cookie, link_submission(token)))

    def link_done(purpose: str, *, reference: str | None, note: str | None) -> HTMLResponse:
        return page("link_done.html", heading=link_pages[purpose]["done"] if reference else
                    ("Already confirmed" if purpose == "confirm" else "Already opted in"),
                    purpose=purpose, reference=reference, note=note)

    async def show_link(request: Request, purpose: str, token: str) -> Response:
        token = _link_token(token)
        view = await run_in_threadpool(describe, purpose, token)
        metrics.form.labels(outcome=f"{purpose}-page-{view.state}").inc()
        if view.state in ("invalid", "closed"):
            return link_refused(purpose, view)
        if view.state == "done":
            return link_done(purpose, reference=None, note=f"Nothing more to do: {view.reason}.")
        return link_page(request, purpose, token, view)

    async def press_link(request: Request, purpose: str, token: str) -> Response:
        # Normalised before anything (a link copied with a trailing full stop is the same
        # link), so the dedupe key below is one per token, however it was pasted.
        token = _link_token(token)
        view = await run_in_threadpool(describe, purpose, token)
        if view.state in ("invalid", "closed"):
            metrics.form.labels(outcome=f"{purpose}-{view.state}").inc()
            return link_refused(purpose, view)
        if view.state == "done":
            return link_done(purpose, reference=None, note=f"Nothing more to do: {view.reason}.")
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        posted: dict[str, str] = {}
        if content_type == "application/x-www-form-urlencoded":
            try:
                raw = await read_limited(request, 4096, timeout=settings.body_timeout)
                posted = {k: v[0] for k, v in parse_qs(raw.decode("utf-8"), keep_blank_values=True,
                                                        max_num_fields=10).items() if v}
            except (BodyTooLarge, BodyTimeout, BadLength, UnicodeDecodeError, ValueError):
                posted = {}
        if not csrf.check(cookie=request.cookies.get(forms.CSRF_COOKIE),
                          submission=link_submission(token), token=posted.get("csrf", "")):
            metrics.form.labels(outcome=f"{purpose}-csrf").inc()
            return link_page(request, purpose, token, view, status=403, error=(
                "This page had expired or was opened elsewhere, so nothing was recorded yet."))
        digest = hashlib.sha256(token.encode("utf-8")).hexdigest()[:40]
        event = InboundEvent(platform="form", dedupe_key=f"form:{purpose}:{digest}",
                             kind=link_pages[purpose]["event_kind"], actor=None, attributes={},
                             data={"token": token, "submitted_at": utcnow().isoformat()})
        accepted = await accept(event)
        if isinstance(accepted, Response):
            return page("message.html", status=503, heading="Please try again", link=None,
                        message="Your answer could not be saved just now. Please go back and "
                                "press the button again in a minute.")
        metrics.form.labels(outcome=f"{purpose}-{'stored' if accepted[2] else 'duplicate'}").inc()
        return link_done(purpose, reference=f"inbox:{accepted[1]}", note=None)

    @app.get("/confirm/{token}")
    async def confirm_page(request: Request, token: str) -> Response:
        return await show_link(request, "confirm", token)

    @app.post("/confirm/{token}")
    async def confirm_submit(request: Request, token: str) -> Response:
        return await press_link(request, "confirm", token)

    @app.get("/optin/{token}")
    async def optin_page(request: Request, token: str) -> Response:
        return await show_link(request, "optin", token)

    @app.post("/optin/{token}")
    async def optin_submit(request: Request, token: str) -> Response:
        return await press_link(request, "optin", token)

    # ---- operations -------------------------------------------------------------------------

    def health() -> tuple[bool, dict[str, Any]]:
        report: dict[str, Any] = {}
        ok = True
        try:
            report["inbox"] = inbox_counts()
            report["ledger"] = {"reachable": True}
        except Exception as exc:  # noqa: BLE001 - reported, never raised
            ok = False
            report["ledger"] = {"reachable": False, "error": type(exc).__name__}
        prefect = dispatcher.status()
        report["prefect"] = prefect
        if prefect.get("prefect_reachable") is False:
            ok = False
        report["connectors"] = {name: ("configured" if verifiers.get(name) else
                                       f"not configured: {verifiers.problems.get(name, '?')}")
                                for name in ("discourse", "discord", "slack")}
        report["status"] = "ok" if ok else "degraded"
        return ok, report

    @app.get("/healthz")
    async def healthz() -> Response:
        ok, report = await run_in_threadpool(health)
        return _json(200 if ok else 503, report)

    @app.get("/metrics")
    async def metrics_endpoint() -> Response:
        body = await run_in_threadpool(metrics.render)
        return Response(body, media_type=Metrics.content_type, headers={"Cache-Control": "no-store"})

    # Plugins' routes (a Matrix appservice push...), mounted without the core importing them.
    for name, factory in gateway_hooks():
        try:
            app.include_router(factory(accept=accept, settings=settings))
        except Exception as exc:  # noqa: BLE001 - a broken plugin is reported, never fatal
            log.error("gateway: hook %r not mounted: %s: %s", name, type(exc).__name__, exc)
    from gateway import report_form

    app.state.report_max_text = charter.safety.max_text_chars
    app.include_router(report_form.router)  # the public report form (R-SAFE-1)
    return app


HOOK_GROUP = "charterflow.gateway_hooks"


def gateway_hooks(group: str = HOOK_GROUP) -> list[tuple[str, Any]]:
    """The router factories of the entry-point group ``charterflow.gateway_hooks``, by name.

    Each is called as ``factory(accept=..., settings=...)`` and returns a FastAPI ``APIRouter``;
    ``accept(event, raw)`` (async) stores one verified ``InboundEvent`` in the inbox exactly as
    the built-in hooks do: ``(route, inbox id, created)``, or a ``Response`` (503) when the
    ledger cannot store it. One that fails to import is logged and skipped."""
    from importlib.metadata import entry_points

    hooks = []
    for ep in sorted(entry_points(group=group), key=lambda e: e.name):
        try:
            hooks.append((ep.name, ep.load()))
        except Exception as exc:  # noqa: BLE001 - reported, never fatal
            log.error("gateway: hook %r cannot load: %s: %s", ep.name, type(exc).__name__, exc)
    return hooks


def _payload(event: InboundEvent) -> dict[str, Any]:
    """What the inbox keeps: the verified payload plus the parsed attributes, as JSON (and,
    for an unusual body, the notes on what its parsed view changed)."""
    data = json.loads(json.dumps(dict(event.data), default=str))
    payload = {"data": data, "attributes": {str(k): _text(v) for k, v in event.attributes.items()},
               "actor": event.actor, "instance": event.instance}
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


def _link_token(raw: str) -> str:
    from flows.membership.tokens import normalise_token

    return normalise_token(raw[:200])


def _ledger_outage(exc: BaseException) -> bool:
    """Whether a failed store means the ledger cannot be reached (the platform should retry),
    rather than an event it can never take (a DataError, or a bug of ours)."""
    from sqlalchemy.exc import DataError, SQLAlchemyError

    from ledger.errors import LedgerUnavailable

    if isinstance(exc, DataError):
        return False
    return isinstance(exc, (LedgerUnavailable, SQLAlchemyError, OSError, TimeoutError))


def served_app() -> FastAPI:
    """The app as ``uvicorn gateway.app:served_app --factory`` serves it: the form's usernames
    are looked up with the configured connectors (built at the first submission)."""
    load_routes_apart()
    return create_app(lookup=configured_lookup())


def load_routes_apart() -> None:
    """Fill the inbox's route registry from a forked child that imports :mod:`flows.inbox` (so
    Prefect and every flow), so that this process never does: the served gateway stays about
    40 MiB smaller and starts 2-3 s sooner (bench/startup.py). Call it before any thread starts."""
    from flows.forking import forked

    if not inbox.routes_loaded():
        inbox.load_routes(forked(inbox.full_routes_snapshot).result(timeout=300))


def configured_lookup() -> forms.UsernameLookup:
    """The form's username lookup through the configured connectors (built at first use)."""
    return forms.UsernameLookup(_configured_directories)


def _configured_directories() -> dict[str, Any]:
    from flows.platforms import Platforms

    platforms = Platforms.from_settings()
    return {name: space.directory for name, space in platforms.spaces.items()
            if space.directory is not None}


__all__ = ["configured_lookup", "create_app", "load_routes_apart", "served_app"]
