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


# A route the sandbox does not emulate must not look like the platform's "not found": a connector
# calling a new endpoint would pass its tests for the wrong reason. Every sandbox answers it with
# this status and message (in its platform's error shape); a known route with an unknown id keeps
# the platform's real 404.
NOT_EMULATED_STATUS = 501


def not_emulated(method: str, path: str) -> str:
    """The message of a sandbox's answer to a route it does not emulate."""
    return f"not emulated by the sandbox: {method.upper()} {path}"
