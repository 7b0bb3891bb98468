"""``POST /hooks/discourse``, ``/hooks/discord``, ``/hooks/slack``: every check before an event
may be trusted (gateway/README.md, "Order of checks on a hook"), then the inbox."""

from __future__ import annotations

import logging

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from connectors.base import InboundEvent
from connectors.discord import payloads
from connectors.errors import InvalidSignature
from flows import inbox_routing as inbox
from gateway.body import BadLength, BodyTimeout, BodyTooLarge, declared_length, read_limited
from gateway.metrics import Metrics
from gateway.settings import GatewaySettings
from gateway.state import GatewayDep, GatewayState, content_type, json_response
from gateway.verifiers import CONTENT_TYPES, SIGNATURE_HEADERS

log = logging.getLogger("charterflow.gateway")
router = APIRouter()
# A body this large is verified and parsed in a worker thread (a deeply nested document may
# take a second to read), so the event loop keeps answering the others.
BIG_BODY = 64 * 1024
# Discord routes answered "thinking…" at once; the flow replaces it with its answer.
DEFERRED = (
    inbox.Route.INTAKE,
    inbox.Route.IDEA,
    inbox.Route.OPT_IN,
    inbox.Route.LEAVE,
    inbox.Route.VOTE,
    inbox.Route.CONFIRM,
    inbox.Route.BOARD_PROPOSAL,
)


def refused_before_body(
    request: Request, platform: str, *, settings: GatewaySettings, metrics: Metrics
) -> Response | None:
    """The checks on the headers alone (framing, declared length, signature headers, content
    type): a Response when refused, else None."""
    try:
        length = declared_length(request)
    except BadLength as exc:
        return json_response(
            400,
            {"ok": False, "error": f"bad framing: {exc}" if "both" in str(exc) else "bad Content-Length"},
            Connection="close",
        )
    if length is not None and length > settings.max_body_bytes:
        return json_response(413, {"ok": False, "error": "body too large"})
    if not all(request.headers.get(h) for h in SIGNATURE_HEADERS[platform]):
        metrics.verification_failures.labels(platform=platform).inc()
        return json_response(401, {"ok": False, "error": "missing signature"})
    if content_type(request) not in CONTENT_TYPES[platform]:
        return json_response(
            415, {"ok": False, "error": f"content type must be {' or '.join(CONTENT_TYPES[platform])}"}
        )
    return None


async def read_body(request: Request, platform: str, settings: GatewaySettings) -> bytes | Response:
    """The body, cut off past ``MAX_BODY_BYTES`` (413) or ``BODY_TIMEOUT`` (408)."""
    try:
        return await read_limited(request, settings.max_body_bytes, timeout=settings.body_timeout)
    except BodyTooLarge:
        return json_response(413, {"ok": False, "error": "body too large"})
    except BodyTimeout:
        log.info("gateway: %s hook: the body did not arrive within %s s; 408", platform, settings.body_timeout)
        return json_response(408, {"ok": False, "error": "request body not received in time"}, Connection="close")


async def receive_hook(request: Request, platform: str, gateway: GatewayState) -> tuple[InboundEvent, bytes] | Response:
    """Every check before the event may be trusted: the event and the body as received,
    or a Response when refused."""
    settings, metrics = gateway.settings, gateway.metrics
    verifier = gateway.verifiers.get(platform)
    if verifier is None:
        return json_response(503, {"ok": False, "error": f"{platform} connector not configured"})
    refused = refused_before_body(request, platform, settings=settings, metrics=metrics)
    if refused is not None:
        return refused
    body = await read_body(request, platform, settings)
    if isinstance(body, Response):
        return body
    headers = {k: v for k, v in request.headers.items()}
    try:
        if len(body) > BIG_BODY:  # a deeply nested document takes a while to read
            return await run_in_threadpool(verifier.verify, headers=headers, body=body), body
        return verifier.verify(headers=headers, body=body), body
    except InvalidSignature as exc:
        status = exc.status if exc.status in (400, 401, 413) else 401
        if status == 401:
            metrics.verification_failures.labels(platform=platform).inc()
        return json_response(
            status,
            {
                "ok": False,
                "error": "invalid signature"
                if status == 401
                else "body too large"
                if status == 413
                else "malformed request",
            },
        )
    except Exception as exc:  # noqa: BLE001 - a verifier bug must not become a 500 probe answer
        log.warning("gateway: %s verifier raised %s", platform, type(exc).__name__)
        return json_response(400, {"ok": False, "error": "malformed request"})


@router.post("/hooks/discourse")
async def discourse_hook(request: Request, gateway: GatewayDep) -> Response:
    received = await receive_hook(request, "discourse", gateway)
    if isinstance(received, Response):
        return received
    accepted = await gateway.accept(*received)
    if isinstance(accepted, Response):
        return accepted
    route, event_id, created = accepted
    return json_response(200, {"ok": True, "inbox": event_id, "duplicate": not created, "route": route})


@router.post("/hooks/discord")
async def discord_hook(request: Request, gateway: GatewayDep) -> Response:
    received = await receive_hook(request, "discord", gateway)
    if isinstance(received, Response):
        return received
    event = received[0]
    if event.kind == "ping":
        return json_response(200, payloads.pong())
    accepted = await gateway.accept(*received)
    if isinstance(accepted, Response):
        return accepted
    route = accepted[0]
    if route == inbox.Route.APPLY_MODAL:
        return json_response(200, payloads.apply_modal())
    if route in DEFERRED or route in inbox.DEFERRED_ROUTES:
        # Within Discord's 3 s: "thinking…"; the flow replaces it with its answer (15 min).
        # Buttons too: a private "thinking…" (type 5), not a deferred update (type 6), whose
        # @original would be the message the button is on, edited by the answer.
        return json_response(200, payloads.deferred(ephemeral=True))
    if event.kind == "autocomplete":
        return json_response(200, {"type": 8, "data": {"choices": []}})
    return json_response(
        200, payloads.ephemeral("Sorry, this action is not known here. It was kept for the working group to look at.")
    )


@router.post("/hooks/slack")
async def slack_hook(request: Request, gateway: GatewayDep) -> Response:
    received = await receive_hook(request, "slack", gateway)
    if isinstance(received, Response):
        return received
    event = received[0]
    if event.kind == "url_verification":
        return json_response(200, {"challenge": str(event.attributes.get("challenge", ""))})
    accepted = await gateway.accept(*received)
    if isinstance(accepted, Response):
        return accepted
    # Slack wants a 200 within 3 s; the Board flow answers through response_url.
    return Response(status_code=200)
