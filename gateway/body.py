"""Reading a request body with a size cap, while it streams in (413 before reading it all)."""

from __future__ import annotations

from starlette.requests import Request


class BodyTooLarge(Exception):
    """The body is (or says it is) longer than allowed."""


class BadLength(Exception):
    """The Content-Length header is not a number."""


def declared_length(request: Request) -> int | None:
    """The Content-Length, or None when absent; ``BadLength`` when it is not a number."""
    raw = request.headers.get("content-length")
    if raw is None:
        return None
    raw = raw.strip()
    if not raw.isdigit() or len(raw) > 18:
        raise BadLength(raw[:20])
    return int(raw)


async def read_limited(request: Request, limit: int) -> bytes:
    """The whole body, or ``BodyTooLarge`` as soon as more than ``limit`` bytes are announced
    or have arrived (a chunked upload without Content-Length is cut off while streaming)."""
    length = declared_length(request)
    if length is not None and length > limit:
        raise BodyTooLarge()
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge()
        chunks.append(chunk)
    return b"".join(chunks)
