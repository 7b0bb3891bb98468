"""The confirmation and opt-in pages (R-APP-2, R-TERM-2): ``GET|POST /confirm/<token>`` and
``GET|POST /optin/<token>``.

A GET shows what the link stands for and a button; only the button's POST (CSRF-checked)
stores an inbox event, so a link preview or a mail scanner opening the link consumes nothing.
The handlers (flows.membership.handlers) check the token again when they act.
"""

from __future__ import annotations

import hashlib
from typing import Literal
from urllib.parse import parse_qs

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from connectors.base import InboundEvent
from flows.membership.links import LinkView, describe_link
from flows.membership.tokens import normalise_token
from gateway import form as forms
from gateway.body import BadLength, BodyTimeout, BodyTooLarge, read_limited
from gateway.state import GatewayDep, GatewayState, content_type
from ledger.types import utcnow

router = APIRouter()
Purpose = Literal["confirm", "optin"]
LINK_PAGES: dict[Purpose, dict[str, str]] = {
    "confirm": {
        "heading": "Confirm your application",
        "button": "Confirm my application",
        "done": "Thank you, your confirmation is received",
        "event_kind": "confirm",
    },
    "optin": {
        "heading": "Opt in for another year",
        "button": "Opt in for another year",
        "done": "Thank you, your opt-in is received",
        "event_kind": "optin",
    },
}


def link_token(raw: str) -> str:
    """The token as pasted, normalised (a trailing full stop is the same link)."""
    return normalise_token(raw[:200])


def token_digest(token: str) -> str:
    # The CSRF token is bound to this link (a button from one link cannot post another), and
    # the dedupe key is one per token.
    return hashlib.sha256(token.encode("utf-8")).hexdigest()[:40]


def describe(gateway: GatewayState, purpose: Purpose, token: str) -> LinkView:
    return describe_link(
        ledger=gateway.ledger, purpose=purpose, token=token, secret=gateway.link_secret(), now=utcnow()
    )


def link_refused(gateway: GatewayState, purpose: Purpose, view: LinkView) -> HTMLResponse:
    if view.state == "invalid":
        heading, status = "This link cannot be used", 400
        text = (
            f"Sorry: {view.reason}. Please use the newest message we sent you, or ask the working group for a new link."
        )
    else:  # closed
        heading, status = "Nothing to do here any more", 410
        text = f"{view.reason[0].upper()}{view.reason[1:]}."
        if purpose == "confirm":
            text += " You are welcome to apply again."
    return gateway.page(
        "message.html", status=status, heading=heading, message=text, link="/apply" if purpose == "confirm" else None
    )


def link_page(
    gateway: GatewayState,
    request: Request,
    purpose: Purpose,
    token: str,
    view: LinkView,
    *,
    status: int = 200,
    error: str | None = None,
) -> HTMLResponse:
    texts = LINK_PAGES[purpose]
    return gateway.page(
        "link.html",
        status=status,
        cookie_path=f"/{purpose}",
        heading=texts["heading"],
        button=texts["button"],
        view=view,
        error=error,
        action=f"/{purpose}/{token}",
        **gateway.csrf_fields(request, token_digest(token)),
    )


def link_done(gateway: GatewayState, purpose: Purpose, *, reference: str | None, note: str | None) -> HTMLResponse:
    return gateway.page(
        "link_done.html",
        heading=LINK_PAGES[purpose]["done"]
        if reference
        else ("Already confirmed" if purpose == "confirm" else "Already opted in"),
        purpose=purpose,
        reference=reference,
        note=note,
    )


def not_pressable(gateway: GatewayState, purpose: Purpose, view: LinkView) -> HTMLResponse | None:
    """The page for a link that has no button (refused, or nothing more to do), else None."""
    if view.state in ("invalid", "closed"):
        return link_refused(gateway, purpose, view)
    if view.state == "done":
        return link_done(gateway, purpose, reference=None, note=f"Nothing more to do: {view.reason}.")
    return None


async def show_link(request: Request, gateway: GatewayState, purpose: Purpose, token: str) -> Response:
    token = link_token(token)
    view = await run_in_threadpool(describe, gateway, purpose, token)
    gateway.metrics.form.labels(outcome=f"{purpose}-page-{view.state}").inc()
    return not_pressable(gateway, purpose, view) or link_page(gateway, request, purpose, token, view)


async def posted_fields(request: Request, gateway: GatewayState) -> dict[str, str]:
    """The button's small form (empty when unreadable: the CSRF check then refuses it)."""
    if content_type(request) != "application/x-www-form-urlencoded":
        return {}
    try:
        raw = await read_limited(request, 4096, timeout=gateway.settings.body_timeout)
        return {
            k: v[0] for k, v in parse_qs(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=10).items() if v
        }
    except (BodyTooLarge, BodyTimeout, BadLength, UnicodeDecodeError, ValueError):
        return {}


async def press_link(request: Request, gateway: GatewayState, purpose: Purpose, token: str) -> Response:
    metrics = gateway.metrics
    # Normalised before anything (a link copied with a trailing full stop is the same
    # link), so the dedupe key below is one per token, however it was pasted.
    token = link_token(token)
    view = await run_in_threadpool(describe, gateway, purpose, token)
    if view.state in ("invalid", "closed"):
        metrics.form.labels(outcome=f"{purpose}-{view.state}").inc()
    refused = not_pressable(gateway, purpose, view)
    if refused is not None:
        return refused
    posted = await posted_fields(request, gateway)
    if not gateway.csrf.check(
        cookie=request.cookies.get(forms.CSRF_COOKIE), submission=token_digest(token), token=posted.get("csrf", "")
    ):
        metrics.form.labels(outcome=f"{purpose}-csrf").inc()
        return link_page(
            gateway,
            request,
            purpose,
            token,
            view,
            status=403,
            error=("This page had expired or was opened elsewhere, so nothing was recorded yet."),
        )
    event = InboundEvent(
        platform="form",
        dedupe_key=f"form:{purpose}:{token_digest(token)}",
        kind=LINK_PAGES[purpose]["event_kind"],
        actor=None,
        attributes={},
        data={"token": token, "submitted_at": utcnow().isoformat()},
    )
    accepted = await gateway.accept(event)
    if isinstance(accepted, Response):
        return gateway.page(
            "message.html",
            status=503,
            heading="Please try again",
            link=None,
            message="Your answer could not be saved just now. Please go back and press the button again in a minute.",
        )
    metrics.form.labels(outcome=f"{purpose}-{'stored' if accepted[2] else 'duplicate'}").inc()
    return link_done(gateway, purpose, reference=f"inbox:{accepted[1]}", note=None)


@router.get("/confirm/{token}")
async def confirm_page(request: Request, token: str, gateway: GatewayDep) -> Response:
    return await show_link(request, gateway, "confirm", token)


@router.post("/confirm/{token}")
async def confirm_submit(request: Request, token: str, gateway: GatewayDep) -> Response:
    return await press_link(request, gateway, "confirm", token)


@router.get("/optin/{token}")
async def optin_page(request: Request, token: str, gateway: GatewayDep) -> Response:
    return await show_link(request, gateway, "optin", token)


@router.post("/optin/{token}")
async def optin_submit(request: Request, token: str, gateway: GatewayDep) -> Response:
    return await press_link(request, gateway, "optin", token)
