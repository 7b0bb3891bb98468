"""The public application form (R-APP-1): ``GET /``, ``GET|POST /apply``,
``GET /apply/status/<submission>`` (R-APP-4) and its optional stylesheet."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from connectors.base import InboundEvent
from flows.membership.status import describe_submission
from gateway import form as forms
from gateway.body import BadLength, BodyTimeout, BodyTooLarge, read_limited
from gateway.state import GatewayDep, GatewayState, LedgerDep, MetricsDep, content_type
from ledger.db import Ledger
from ledger.models import InboxEvent
from ledger.types import utcnow

log = logging.getLogger("charterflow.gateway")
router = APIRouter()
STYLESHEET = Path(__file__).resolve().parents[1] / "static" / "form.css"


def form_page(
    gateway: GatewayState, request: Request, *, values: dict[str, str] | None = None, **shown: Any
) -> HTMLResponse:
    """The form, with what was typed and ``shown`` (``errors``, ``status``, ``submission``:
    ``GatewayState.form_page``); a CSRF cookie when the browser has none."""
    return gateway.form_page(
        "apply.html", request, values={name: "" for name in forms.FIELDS} | (values or {}), **shown
    )


def message(gateway: GatewayState, heading: str, text: str, *, status: int, **headers: str) -> HTMLResponse:
    """A page with one message and a link back to the form."""
    response = gateway.page("message.html", status=status, heading=heading, message=text, link="/apply")
    response.headers.update(headers)
    return response


def too_many(gateway: GatewayState, wait: float) -> HTMLResponse:
    gateway.metrics.form.labels(outcome="rate-limited").inc()
    return message(
        gateway,
        "Too many attempts",
        "Too many applications were sent from your network "
        f"just now. Please try again in {int(wait // 60) + 1} minutes.",
        status=429,
        **{"Retry-After": str(int(wait) + 1)},
    )


@router.get("/apply")
async def apply_form(request: Request, gateway: GatewayDep) -> Response:
    return form_page(gateway, request)


@router.get("/")
async def root() -> Response:
    return Response(status_code=303, headers={"Location": "/apply"})


@router.get("/static/form.css")
async def stylesheet() -> Response:
    return Response(
        STYLESHEET.read_bytes(),
        media_type="text/css",
        headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )


async def read_form(request: Request, gateway: GatewayState) -> dict[str, str] | Response:
    """The posted fields (first value of each), or the page refusing an unreadable form."""
    if content_type(request) != "application/x-www-form-urlencoded":
        return message(gateway, "Unsupported form", "Please send the form from the application page.", status=415)
    settings = gateway.settings
    try:
        raw = await read_limited(request, settings.max_form_bytes, timeout=settings.body_timeout)
        fields = parse_qs(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=40)
    except BodyTooLarge:
        return message(gateway, "Too long", "The form is too long. Please shorten your answers.", status=413)
    except BodyTimeout:
        return message(gateway, "Too slow", "The form did not arrive in time. Please send it again.", status=408)
    except (BadLength, UnicodeDecodeError, ValueError):
        return message(gateway, "Unreadable form", "Please send the form from the application page.", status=400)
    return {name: values[0] for name, values in fields.items() if values}


@router.post("/apply")
async def apply_submit(request: Request, gateway: GatewayDep, metrics: MetricsDep) -> Response:
    # Only accepted applications count toward the limit (a person correcting mistakes is
    # never locked out); lookups on the platforms have their own, larger allowance.
    client_ip = request.client.host if request.client else "unknown"
    wait = gateway.limiter.wait(client_ip)
    if wait:
        return too_many(gateway, wait)
    posted = await read_form(request, gateway)
    if isinstance(posted, Response):
        return posted
    submission = posted.get("submission", "")
    limits = gateway.limits
    if not gateway.csrf.check(
        cookie=request.cookies.get(forms.CSRF_COOKIE), submission=submission, token=posted.get("csrf", "")
    ):
        metrics.form.labels(outcome="csrf").inc()
        # What was typed is kept; a fresh token lets the person simply send it again.
        checked = forms.validate(posted, limits=limits)
        return form_page(
            gateway,
            request,
            values=checked.values,
            status=403,
            errors={
                "form": "This form had expired or was opened elsewhere. Please check your answers and send it again."
            },
        )
    if posted.get(forms.HONEYPOT, "").strip():
        metrics.form.labels(outcome="honeypot").inc()
        gateway.limiter.hit(client_ip)
        log.info("gateway: /apply honeypot filled; not stored")
        return gateway.page(
            "applied.html",
            accounts=[],
            confirm_days=limits.confirm_within_days,
            reference="-",
            status_url=None,
            email=False,
        )
    checked = forms.validate(posted, limits=limits)
    if checked.ok and gateway.lookup is not None:
        lookup_wait = gateway.lookup_limiter.hit(client_ip)
        if lookup_wait:
            return too_many(gateway, lookup_wait)
        checked.errors.update(await run_in_threadpool(gateway.lookup.errors, checked.values))
    if not checked.ok:
        metrics.form.labels(outcome="invalid").inc()
        return form_page(
            gateway, request, values=checked.values, errors=checked.errors, status=422, submission=submission
        )
    return await store_application(gateway, client_ip, submission, checked.values)


def stored_data(ledger: Ledger, event_id: int | None) -> dict[str, Any]:
    """The answers stored under an inbox event (empty when it is gone)."""
    if event_id is None:
        return {}
    with ledger.read() as session:
        row = session.get(InboxEvent, event_id)
        return dict((row.payload or {}).get("data") or {}) if row else {}


async def store_application(gateway: GatewayState, client_ip: str, submission: str, values: dict[str, str]) -> Response:
    """Store the application once per submission id; the same form sent again with other
    answers keeps the first (409)."""
    limits = gateway.limits
    event = InboundEvent(
        platform="form",
        dedupe_key=f"form:{submission}",
        kind="application",
        actor=values["discourse_username"] or values["discord_username"],
        attributes={},
        data={
            "submission_id": submission,
            "submitted_at": utcnow().isoformat(),
            **{name: values[name] for name in forms.FIELDS if values[name]},
        },
    )
    accepted = await gateway.accept(event)
    if isinstance(accepted, Response):
        return message(
            gateway,
            "Please try again",
            "Your application could not be saved just now. Please go back and send it again in a minute.",
            status=503,
            **{"Retry-After": "30"},
        )
    route, event_id, created = accepted
    gateway.metrics.form.labels(outcome="stored" if created else "duplicate").inc()
    status_url = f"/apply/status/{submission}"
    if created:
        gateway.limiter.hit(client_ip)
    else:
        stored = await run_in_threadpool(stored_data, gateway.ledger, event_id)
        changed = forms.kept_changes(stored, values)
        if changed:
            # The same form sent again with other answers (the back button): the first stays.
            return gateway.page(
                "kept.html",
                status=409,
                reference=f"inbox:{event_id}",
                status_url=status_url,
                confirm_days=limits.confirm_within_days,
                changed=[forms.LABELS[name] for name in changed],
            )
        values = {name: str(stored.get(name) or "") for name in forms.FIELDS}
    accounts = [
        (label, values[name])
        for name, label in (("discourse_username", "Forum"), ("discord_username", "Discord"))
        if values[name]
    ]
    return gateway.page(
        "applied.html",
        accounts=accounts,
        confirm_days=limits.confirm_within_days,
        reference=f"inbox:{event_id}",
        status_url=status_url,
        email=bool(values["email"]) and gateway.email_outcomes,
    )


@router.get("/apply/status/{submission}")
async def apply_status(submission: str, gateway: GatewayDep, ledger: LedgerDep) -> Response:
    view = None
    if forms.valid_submission(submission):
        confirm_days = gateway.limits.confirm_within_days
        view = await run_in_threadpool(
            lambda: describe_submission(ledger, submission=submission, confirm_days=confirm_days)
        )
    if view is None:
        return gateway.page(
            "message.html",
            status=404,
            heading="No such application",
            message="This link does not belong to an application. Please use the link shown after you sent the form.",
            link="/apply",
        )
    return gateway.page("status.html", view=view, reference=submission)
