"""The public report form (R-SAFE-1): ``GET /report`` and ``POST /report``, no sign-in.

It reuses the application form's mechanisms (``gateway.form``): the signed double-submit CSRF
token with its ``cf_csrf`` cookie (path ``/report``), a server-generated submission id that is
the inbox dedupe key (a double click stores one report), the honeypot field, and an in-memory
per-IP rate limit (``REPORT_RATE_LIMIT`` per ``REPORT_RATE_WINDOW``). The per-account limit
(the charter's ``[safety]`` burst limit) is the queue's, applied when the report is taken.
A report is stored in the inbox (source ``form``, kind ``report``, route ``safety-form``) and
handled by ``flows.safety`` like any platform's report; the client address is kept only as a
keyed digest (for the per-reporter limit), never as is.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from gateway import form as forms
from gateway.body import BadLength, BodyTimeout, BodyTooLarge, read_limited
from gateway.state import GatewayDep, GatewayState
from ledger import repo

router = APIRouter()
FORM_ROUTE = "safety-form"  # flows.safety.handlers.FORM_ROUTE; inbox_routing.route_for(source="form", kind="report")
PATH = "/report"
TARGET_KINDS = ("message", "post", "person")
PLATFORMS = {"discourse": "the Forum (Discourse)", "discord": "Discord", "other": "somewhere else"}
MAX_TARGET = 500
REPORT_RATE_LIMIT = 5  # per client IP
REPORT_RATE_WINDOW = 3600.0


def validate(posted: dict[str, str], *, max_text: int) -> tuple[dict[str, str], dict[str, str]]:
    """The form's values (cleaned) and its errors by field (pure)."""
    values = {
        name: forms._clean(posted.get(name, "")) for name in ("platform", "target_kind", "target", "reason", "reporter")
    }
    values["coc"] = "yes" if posted.get("coc") else ""
    errors: dict[str, str] = {}
    if values["platform"] not in PLATFORMS:
        errors["platform"] = "Choose where it happened."
    if values["target_kind"] not in TARGET_KINDS:
        errors["target_kind"] = "Choose what you are reporting."
    if not values["target"]:
        errors["target"] = "Give a link to the message or post, or the person's username."
    elif len(values["target"]) > MAX_TARGET:
        errors["target"] = f"Keep this under {MAX_TARGET} characters (a link or a username)."
    if not values["reason"]:
        errors["reason"] = "Tell the moderators what happened."
    elif len(values["reason"]) > max_text:
        errors["reason"] = (
            f"Your report is {len(values['reason'])} characters long; the limit is {max_text}. Please shorten it."
        )
    if len(values["reporter"]) > 64:
        errors["reporter"] = "A username is at most 64 characters."
    return values, errors


def _page(
    gateway: GatewayState,
    name: str,
    *,
    status: int = 200,
    cookie: str | None = None,
    secure: bool = False,
    **context: Any,
) -> HTMLResponse:
    return gateway.page(
        name,
        status=status,
        cookie=cookie,
        secure=secure,
        cookie_path=PATH,
        platforms=PLATFORMS,
        kinds=TARGET_KINDS,
        **context,
    )


def _form(
    gateway: GatewayState, request: Request, *, values: dict[str, str] | None = None, **shown: Any
) -> HTMLResponse:
    """The report form with what was typed and ``shown`` (``errors``, ``status``, ``submission``)."""
    return gateway.form_page(
        "report.html",
        request,
        values=values or {},
        max_text=gateway.report_max_text,
        cookie_path=PATH,
        platforms=PLATFORMS,
        kinds=TARGET_KINDS,
        **shown,
    )


def _message(gateway: GatewayState, heading: str, text: str, *, status: int, **headers: str) -> HTMLResponse:
    response = _page(gateway, "message.html", status=status, heading=heading, message=text, link=None)
    response.headers.update(headers)
    return response


@router.get(PATH)
async def report_form(request: Request, gateway: GatewayDep) -> Response:
    """The empty form."""
    return _form(gateway, request)


@router.post(PATH)
async def report_submit(request: Request, gateway: GatewayDep) -> Response:
    """Check, store once in the inbox, answer with the reference."""
    csrf, limiter, max_text = gateway.csrf, gateway.report_limiter, gateway.report_max_text
    if limiter is None:  # create_app always builds one; a bare GatewayState has no report form
        raise RuntimeError("the report form needs GatewayState.report_limiter")
    settings = gateway.settings
    client_ip = request.client.host if request.client else "unknown"
    wait = limiter.wait(client_ip)
    if wait:
        return _message(
            gateway,
            "Too many reports",
            "Too many reports were sent from your network just now. Please try "
            f"again in {int(wait // 60) + 1} minutes.",
            status=429,
            **{"Retry-After": str(int(wait) + 1)},
        )
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/x-www-form-urlencoded":
        return _message(gateway, "Unsupported form", "Please send the report from the report page.", status=415)
    try:
        raw = await read_limited(request, settings.max_form_bytes, timeout=settings.body_timeout)
        fields = parse_qs(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=20)
    except BodyTooLarge:
        return _message(
            gateway, "Too long", f"The report is too long. Please keep it under {max_text} characters.", status=413
        )
    except BodyTimeout:
        return _message(gateway, "Too slow", "The report did not arrive in time. Please send it again.", status=408)
    except (BadLength, UnicodeDecodeError, ValueError):
        return _message(gateway, "Unreadable form", "Please send the report from the report page.", status=400)
    posted = {name: values[0] for name, values in fields.items() if values}
    submission = posted.get("submission", "")
    values, errors = validate(posted, max_text=max_text)
    if not csrf.check(
        cookie=request.cookies.get(forms.CSRF_COOKIE), submission=submission, token=posted.get("csrf", "")
    ):
        return _form(
            gateway,
            request,
            values=values,
            status=403,
            errors={"form": "This form had expired or was opened elsewhere. Please check it and send it again."},
        )
    if posted.get(forms.HONEYPOT, "").strip():
        limiter.hit(client_ip)
        return _page(gateway, "reported.html", reference="-")
    if errors:
        return _form(
            gateway,
            request,
            values=values,
            errors=errors,
            status=422 if "reason" not in errors or "limit" not in errors["reason"] else 413,
            submission=submission,
        )
    key = settings.form_secret
    secret = key.get_secret_value().encode() if key else b"charterflow-report"
    ip_digest = hmac.new(secret, client_ip.encode(), hashlib.sha256).hexdigest()[:24]
    payload = {
        "data": {**values, "submission_id": submission},
        "attributes": {"ip_digest": ip_digest},
        "actor": values["reporter"] or None,
    }
    stored = await run_in_threadpool(_store, gateway, submission, payload)
    if stored is None:
        return _message(
            gateway,
            "Please try again",
            "Your report could not be saved just now. Please send it again in a minute.",
            status=503,
            **{"Retry-After": "30"},
        )
    event_id, created = stored
    if created:
        limiter.hit(client_ip)
        gateway.dispatcher.notify(event_id)
    return _page(gateway, "reported.html", reference=f"inbox:{event_id}")


def _store(gateway: GatewayState, submission: str, payload: dict[str, Any]) -> tuple[int, bool] | None:
    def work(session: Any) -> tuple[int, bool]:
        row, created = repo.inbox_put(
            session,
            dedupe_key=f"form:report:{submission}",
            source="form",
            kind="report",
            payload=json.loads(json.dumps(payload)),
            route=FORM_ROUTE,
        )
        return row.id, created

    try:
        return gateway.ledger.run(work)
    except Exception:  # noqa: BLE001 - not stored: the person is asked to send it again
        return None
