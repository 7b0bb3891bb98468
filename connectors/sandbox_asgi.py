"""The plain-ASGI plumbing every sandbox shares: lifespan, and reading one whole request."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Any]]
Send = Callable[[Any], Awaitable[None]]


async def read_request(scope: Scope, receive: Receive, send: Send, *,
                       on_shutdown: Callable[[], None] | None = None,
                       ) -> tuple[bytes, dict[str, str]] | None:
    """Answer a lifespan scope (calling ``on_shutdown`` at shutdown) and return ``None``; for an
    HTTP request return its whole body and its headers (lower-case names)."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if on_shutdown is not None:
                    on_shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return None
    if scope["type"] != "http":
        return None
    body = await read_body(receive)
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
    return body, headers


async def read_body(receive: Receive) -> bytes:
    """The whole body of an HTTP request, however many messages it came in."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body
