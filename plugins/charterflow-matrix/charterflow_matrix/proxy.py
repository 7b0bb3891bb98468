"""A loopback proxy in front of the real homeserver that injects faults (DESIGN convention 7).

Every request is forwarded unchanged to Synapse except while a fault is set through
``POST /_sandbox/faults`` (the sandbox kit's fault settings): ``error_rate``/``error_status``
(a 5xx instead of forwarding), ``drop_rate``/``drop_phase`` (``before``: the request never
reaches Synapse; ``after``: Synapse applied it, the client loses the answer), ``latency``,
``storm`` ``{"count": N, "retry_after_ms": M}`` (N answers of 429 ``M_LIMIT_EXCEEDED`` in
Matrix's shape), ``methods`` (only those methods are faulted) and ``times`` (only the first N
requests that draw an error or a drop get it). ``GET /_sandbox/state``
counts requests by ``METHOD /path``. Synapse's own limits still give real 429s behind it.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from starlette.types import Receive, Scope, Send

from connectors.sandboxkit import check_faults, lifespan, read_body

__all__ = ["FaultProxy"]

_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "content-encoding"}


class FaultProxy:
    """An ASGI app forwarding to ``upstream`` (``http://127.0.0.1:PORT``)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.faults: dict[str, Any] = {}
        self.requests: Counter[str] = Counter()
        self.forwarded: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._rng = random.Random()

    def set_faults(self, data: dict[str, Any]) -> dict[str, Any]:
        """Validate and set (``{}`` clears); ``ValueError`` names a bad setting."""
        faults = check_faults(data, extra=("methods", "times"))
        storm = storm_settings(data, shape='{"count": N, "retry_after_ms": M}')
        if storm is not None:
            faults["storm"] = {
                "count": int(storm.get("count", 0)),
                "retry_after_ms": int(storm.get("retry_after_ms", 100)),
            }
        if "times" in data:
            faults["times"] = int(data["times"])
        if "methods" in data:
            faults["methods"] = [str(m).upper() for m in data["methods"]]
        with self._lock:
            self.faults = faults
            if "seed" in faults:
                self._rng = random.Random(faults["seed"])
        return faults

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = await read_request(scope, receive, send)
        if request is None:
            return
        body, headers = request
        method, path = scope["method"].upper(), scope["path"]
        if path.startswith("/_sandbox/"):
            await self._control(method, path, body, send)
            return
        draw = self._draw(method, path)
        if draw.faults.get("latency"):
            await asyncio.sleep(draw.faults["latency"])
        if await _answer_fault(send, draw):
            return
        response = await self._forward(scope, method, path, body, headers)
        if response is None:
            await _answer(send, 502, {"errcode": "M_UNKNOWN", "error": "homeserver unreachable"})
            return
        if draw.drop:
            await _drop(send)
            return
        out = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers.items() if k.lower() not in _HOP]
        out.append((b"content-length", str(len(response.content)).encode()))
        await send({"type": "http.response.start", "status": response.status_code, "headers": out})
        await send({"type": "http.response.body", "body": response.content})

    def _draw(self, method: str, path: str) -> _Draw:
        """Count the request and draw its fault (a storm's 429, an error, a drop) under the lock:
        the settings' counters (``storm.count``, ``times``) are shared by concurrent requests."""
        with self._lock:
            self.requests[f"{method} {path}"] += 1
            faults = self.faults
            applies = not faults.get("methods") or method in faults["methods"]
            storm: Any = faults.get("storm") if applies else None
            limited = bool(storm and storm["count"] > 0)
            if limited:
                storm["count"] -= 1
            drop = applies and self._rng.random() < faults.get("drop_rate", 0)
            error = applies and not drop and self._rng.random() < faults.get("error_rate", 0)
            if (drop or error) and "times" in faults:
                if faults["times"] <= 0:
                    drop = error = False
                else:
                    faults["times"] -= 1
        return _Draw(faults=faults, storm=storm if limited else None, drop=drop, error=error)

    async def _forward(
        self, scope: Scope, method: str, path: str, body: bytes, headers: Mapping[str, str]
    ) -> httpx.Response | None:
        """Synapse's answer, or ``None`` when it cannot be reached."""
        query = scope.get("query_string", b"").decode("latin-1")
        url = f"{self.upstream}{scope.get('raw_path', path.encode()).decode('latin-1')}" + (
            f"?{query}" if query else ""
        )
        forward = {k: v for k, v in headers.items() if k not in _HOP}
        try:
            async with httpx.AsyncClient(timeout=60, trust_env=False) as client:
                response = await client.request(method, url, content=body, headers=forward)
        except httpx.TransportError:
            return None
        with self._lock:
            self.forwarded[f"{method} {path}"] += 1
        return response

    async def _control(self, method: str, path: str, body: bytes, send: Send) -> None:
        if path == "/_sandbox/faults" and method == "POST":
            try:
                faults = self.set_faults(json.loads(body or b"{}"))
            except (ValueError, TypeError) as exc:
                await _answer(send, 400, {"error": str(exc)})
                return
            await _answer(send, 200, {"faults": faults})
        elif path == "/_sandbox/state" and method == "GET":
            with self._lock:
                state = {"requests": dict(self.requests), "forwarded": dict(self.forwarded), "faults": self.faults}
            await _answer(send, 200, state)
        else:
            await _answer(send, 501, {"error": f"not emulated by the sandbox: {method} {path}"})


@dataclass(frozen=True, kw_only=True)
class _Draw:
    """The fault one request drew."""

    faults: dict[str, Any]
    storm: dict[str, Any] | None  # set when this request gets the storm's 429
    drop: bool
    error: bool


async def _answer_fault(send: Send, draw: _Draw) -> bool:
    """Answer the fault that replaces forwarding (a storm's 429, an error, a drop before
    Synapse); ``False`` when the request goes on to Synapse."""
    if draw.storm is not None:
        await _answer(
            send,
            429,
            {
                "errcode": "M_LIMIT_EXCEEDED",
                "error": "Too Many Requests (storm)",
                "retry_after_ms": draw.storm["retry_after_ms"],
            },
        )
        return True
    if draw.error:
        await _answer(send, draw.faults.get("error_status", 502), {"errcode": "M_UNKNOWN", "error": "injected fault"})
        return True
    if draw.drop and draw.faults.get("drop_phase", "after") == "before":
        await _drop(send)
        return True
    return False


async def _answer(send: Send, status: int, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": data})


async def _drop(send: Send) -> None:
    # Start an answer and never finish it: the client sees the connection drop mid-response.
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"4096")],
        }
    )


def storm_settings(data: Mapping[str, Any], *, shape: str) -> Mapping[str, Any] | None:
    """The ``storm`` object if given (``shape`` describes it for the error message)."""
    if "storm" not in data:
        return None
    storm = data["storm"]
    if not isinstance(storm, Mapping):
        raise ValueError(f"storm must be an object {shape}")
    return storm


async def read_request(scope: Scope, receive: Receive, send: Send) -> tuple[bytes, dict[str, str]] | None:
    """Answer a lifespan scope and return ``None``; for an HTTP request its body and headers."""
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
        return None
    if scope["type"] != "http":
        return None
    body = await read_body(receive)
    return body, {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
