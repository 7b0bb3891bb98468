"""Reading a request body with a size cap, while it streams in (413 before reading it all)."""

from __future__ import annotations

import asyncio

from starlette.requests import Request


class BodyTooLarge(Exception):
    """The body is (or says it is) longer than allowed."""


class BodyTimeout(Exception):
    """The whole body did not arrive in time."""


class BadLength(Exception):
    """The Content-Length header is not a number, or comes with a Transfer-Encoding."""


def declared_length(request: Request) -> int | None:
    """The Content-Length, or None when absent; ``BadLength`` when it is not a number, or when
    the request also has a Transfer-Encoding: two framings of one body are how requests are
    smuggled past a proxy, so such a request is refused (RFC 9112, section 6.3)."""
    raw = request.headers.get("content-length")
    if raw is not None and "transfer-encoding" in request.headers:
        raise BadLength("both Content-Length and Transfer-Encoding")
    if raw is None:
        return None
    raw = raw.strip()
    if not raw.isdigit() or len(raw) > 18:
        raise BadLength(raw[:20])
    return int(raw)


async def read_limited(request: Request, limit: int, *, timeout: float = 30.0) -> bytes:
    """The whole body, or ``BodyTooLarge`` as soon as more than ``limit`` bytes are announced
    or have arrived (a chunked upload without Content-Length is cut off while streaming), or
    ``BodyTimeout`` when it has not all arrived within ``timeout`` seconds."""
    length = declared_length(request)
    if length is not None and length > limit:
        raise BodyTooLarge()
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise BodyTooLarge()
                chunks.append(chunk)
    except TimeoutError:
        raise BodyTimeout() from None
    return b"".join(chunks)
