"""The CoC Liaison's outcome page (R-SAFE-2): ``GET|POST /coc-outcome/<token>``.

The link comes with a CoC referral where the liaison has no buttons (a Forum or Matrix direct
message, the CoC WG's e-mail; ``flows/safety/links.py``). A GET shows the report's number and
the CoC WG's outcomes, never a name or a word of the report, and changes nothing (a link preview
or a mail scanner consumes nothing). The form's POST is CSRF-checked (the signed double-submit
token of ``gateway.form``, bound to this link), then stored once in the inbox (source ``form``,
kind ``coc_outcome``, dedupe key one per token: the link is single use); the handler
(``flows.safety.handlers.handle_coc_link``) checks the token again and records the outcome. A
tampered, expired, replaced-liaison or used link gets a page that says so and stores nothing.
"""

from __future__ import annotations

import hashlib

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from connectors.base import InboundEvent
from flows.safety.links import FORM_KIND, PATH, LinkView, dedupe_key, describe_link, normalise
from gateway import form as forms
from gateway.routers.links import posted_fields
from gateway.state import GatewayDep, GatewayState
from ledger.types import utcnow

router = APIRouter()
_REFUSED = {"invalid": ("This link cannot be used", 400), "closed": ("Nothing to do here any more", 410)}


def _describe(gateway: GatewayState, token: str) -> LinkView:
    return describe_link(ledger=gateway.ledger, token=token, secret=gateway.link_secret(), now=utcnow())


def _message(gateway: GatewayState, heading: str, text: str, *, status: int) -> HTMLResponse:
    return gateway.page("message.html", status=status, heading=heading, message=text, link=None)


def _not_pressable(gateway: GatewayState, view: LinkView) -> HTMLResponse | None:
    if view.state in _REFUSED:
        heading, status = _REFUSED[view.state]
        return _message(gateway, heading, f"Sorry: {view.reason}. Nothing was recorded.", status=status)
    if view.state == "used":
        return _message(gateway, "This link was used", f"Nothing changed: {view.reason}.", status=409)
    return None


def _form(
    gateway: GatewayState, request: Request, token: str, view: LinkView, *, status: int = 200, error: str | None = None
) -> HTMLResponse:
    cookie = request.cookies.get(forms.CSRF_COOKIE)
    new_cookie = None
    if not cookie or len(cookie) > 100:
        cookie = new_cookie = forms.CsrfTokens.new_cookie()
    return gateway.page(
        "coc_outcome.html",
        status=status,
        cookie=new_cookie,
        cookie_path=PATH,
        secure=request.url.scheme == "https",
        view=view,
        error=error,
        action=f"{PATH}/{token}",
        csrf=gateway.csrf.issue(cookie, _submission(token)),
    )


def _submission(token: str) -> str:
    # The CSRF token is bound to this link: a form from one link cannot post another.
    return hashlib.sha256(token.encode("utf-8")).hexdigest()[:40]


@router.get(PATH + "/{token}")
async def coc_outcome_page(request: Request, token: str, gateway: GatewayDep) -> Response:
    token = normalise(token)
    view = await run_in_threadpool(_describe, gateway, token)
    gateway.metrics.form.labels(outcome=f"coc-outcome-page-{view.state}").inc()
    return _not_pressable(gateway, view) or _form(gateway, request, token, view)


@router.post(PATH + "/{token}")
async def coc_outcome_submit(request: Request, token: str, gateway: GatewayDep) -> Response:
    token = normalise(token)
    view = await run_in_threadpool(_describe, gateway, token)
    refused = _not_pressable(gateway, view)
    if refused is not None:
        gateway.metrics.form.labels(outcome=f"coc-outcome-{view.state}").inc()
        return refused
    posted = await posted_fields(request, gateway)
    if not gateway.csrf.check(
        cookie=request.cookies.get(forms.CSRF_COOKIE), submission=_submission(token), token=posted.get("csrf", "")
    ):
        gateway.metrics.form.labels(outcome="coc-outcome-csrf").inc()
        error = "This page had expired or was opened elsewhere, so nothing was recorded yet."
        return _form(gateway, request, token, view, status=403, error=error)
    outcome = posted.get("outcome", "")
    if outcome not in dict(view.outcomes):
        return _form(gateway, request, token, view, status=422, error="Choose one of the outcomes below.")
    event = InboundEvent(
        platform="form",
        dedupe_key=dedupe_key(token),
        kind=FORM_KIND,
        actor=None,
        attributes={},
        data={"token": token, "outcome": outcome, "submitted_at": utcnow().isoformat()},
    )
    accepted = await gateway.accept(event)
    if isinstance(accepted, Response):
        return _message(
            gateway, "Please try again", "The outcome could not be saved just now; nothing was recorded.", status=503
        )
    if not accepted[2]:  # a second press raced the first: the first one counts
        gateway.metrics.form.labels(outcome="coc-outcome-duplicate").inc()
        return _message(gateway, "This link was used", "Nothing changed: the first answer counts.", status=409)
    gateway.metrics.form.labels(outcome="coc-outcome-stored").inc()
    return _message(
        gateway,
        "Thank you, the outcome is received",
        f"The CoC WG's outcome of report #{view.report_id} will be recorded in a moment (reference "
        f"inbox:{accepted[1]}). The moderators' rooms keep showing only that it was referred.",
        status=200,
    )
