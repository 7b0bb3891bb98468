"""The gateway hook: Synapse's appservice push, mounted by the gateway through the entry-point
group ``charterflow.gateway_hooks`` (the core never imports this module).

``PUT /hooks/matrix/_matrix/app/v1/transactions/{txnId}`` checks the ``hs_token``, then reads
a transaction as large as Synapse makes one (``TRANSACTION_MAX_BYTES``, or the gateway's
``max_body_bytes`` when larger), and stores every event of the transaction in the inbox under
its event id (a replayed transaction stores nothing twice); the bot's own events are not stored,
what is not an event is kept as ``malformed``. It answers ``{}`` only once every event is
stored, so Synapse resends after a ledger outage. Synapse resends a refused transaction forever
and sends none after it, so an authenticated push is never refused for its content: an event
the ledger can never take is kept as ``malformed`` (or, failing that, logged and dropped).
The user and room queries answer ``M_NOT_FOUND`` (we claim no namespace); ``ping`` answers ``{}``
(``doctor`` asks Synapse to ping us). https://spec.matrix.org/v1.11/application-service-api/
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from charterflow_matrix.homeserver import APPSERVICE_PATH
from charterflow_matrix.inbound import AppserviceVerifier
from charterflow_matrix.settings import MatrixSettings
from connectors.errors import ConfigError, InvalidSignature
from gateway.body import BodyTimeout, BodyTooLarge, read_limited

__all__ = ["TRANSACTION_MAX_BYTES", "appservice_router", "verifier_from_env"]

log = logging.getLogger("charterflow.gateway.matrix")
# Synapse puts up to 100 events in a transaction (MAX_PERSISTENT_EVENTS_PER_TRANSACTION), each up
# to 64 KiB (MAX_PDU_SIZE) and serialized with its unsigned data (prev_content, an invite's
# stripped room state): past 1 MiB in a busy room. A 413 would be resent forever
# (synapse/appservice/scheduler.py), so the bound is what Synapse can send, not the gateway's cap.
TRANSACTION_MAX_BYTES = 32 * 1024 * 1024
_ERRCODES = {400: "M_BAD_JSON", 401: "M_UNAUTHORIZED", 403: "M_FORBIDDEN", 404: "M_NOT_FOUND", 413: "M_TOO_LARGE"}


def _error(status: int, message: str, **headers: str) -> JSONResponse:
    return JSONResponse(
        {"errcode": _ERRCODES.get(status, "M_UNKNOWN"), "error": message},
        status_code=status,
        headers={"Cache-Control": "no-store", **headers},
    )


def verifier_from_env() -> AppserviceVerifier | None:
    """From ``CHARTERFLOW_MATRIX_*`` (hs_token, server name, bot); ``None`` when not configured."""
    try:
        settings = MatrixSettings.load()
    except ConfigError:
        return None
    own = [f"@{name}:{settings.server_name}" for name in (settings.bot_user, settings.appservice_sender)]
    return AppserviceVerifier(hs_token=settings.hs_token, server_name=settings.server_name, own_users=own)


def appservice_router(*, accept: Any, settings: Any, verifier: AppserviceVerifier | None = None) -> APIRouter:
    """The routes, storing through the gateway's ``accept``; ``verifier`` defaults to the
    environment's (read at each request until configured, so the gateway may start first)."""
    router = APIRouter(prefix=APPSERVICE_PATH)
    configured: list[AppserviceVerifier] = [verifier] if verifier is not None else []

    def current() -> AppserviceVerifier | None:
        if not configured:
            found = verifier_from_env()
            if found is None:
                return None
            configured.append(found)
        return configured[0]

    def authenticated(request: Request) -> AppserviceVerifier | Response:
        checker = current()
        if checker is None:
            return _error(503, "matrix connector not configured")
        try:
            checker.authenticate(request.headers)
        except InvalidSignature as exc:
            return _error(exc.status or 401, "bad homeserver token")
        return checker

    @router.put("/_matrix/app/v1/transactions/{txn_id}")
    async def transaction(txn_id: str, request: Request) -> Response:
        checker = authenticated(request)  # before reading a byte of the body
        if isinstance(checker, Response):
            return checker
        try:
            limit = max(settings.max_body_bytes, TRANSACTION_MAX_BYTES)  # only once authenticated
            body = await read_limited(request, limit, timeout=settings.body_timeout)
        except BodyTooLarge:
            return _error(413, "body too large")
        except BodyTimeout:
            return _error(408, "request body not received in time", Connection="close")
        try:
            events = checker.verify_transaction(headers=request.headers, body=body)
        except InvalidSignature as exc:
            return _error(exc.status or 400, str(exc))
        stored = 0
        for event in events:
            if event.attributes.get("own") == "true":
                continue
            raw = json.dumps(event.data, separators=(",", ":")).encode()
            accepted = await accept(event, raw)
            if isinstance(accepted, Response) and accepted.status_code == 400:
                # Never storable as it is (the gateway's 400): refusing it would stall every
                # later event behind it, so its text is kept as ``malformed``, or else dropped.
                log.error("gateway: matrix event %s cannot be stored; kept as malformed", event.dedupe_key[-80:])
                accepted = await accept(checker.malformed(raw), None)
                if isinstance(accepted, Response) and accepted.status_code == 400:
                    log.error("gateway: matrix event %s dropped: not storable as malformed", event.dedupe_key[-80:])
                    continue
            if isinstance(accepted, Response):
                return accepted  # not stored (the ledger is out): Synapse resends the transaction
            stored += bool(accepted[2])
        log.info("gateway: matrix transaction %s: %d events, %d new", txn_id[:64], len(events), stored)
        return JSONResponse({}, headers={"Cache-Control": "no-store"})

    @router.get("/_matrix/app/v1/users/{user_id}")
    @router.get("/_matrix/app/v1/rooms/{alias}")
    async def query(request: Request, user_id: str = "", alias: str = "") -> Response:
        checker = authenticated(request)
        if isinstance(checker, Response):
            return checker
        return _error(404, "no such user or room here")

    @router.post("/_matrix/app/v1/ping")
    async def ping(request: Request) -> Response:
        checker = authenticated(request)
        if isinstance(checker, Response):
            return checker
        return JSONResponse({})

    return router
