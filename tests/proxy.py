"""A small loopback HTTP proxy for the tests: round-robin over upstreams (two gateways behind one
address, as a load balancer would put them), with an optional delay on chosen requests (a slow
Prefect API: a real server cannot be made slow on cue). Served by uvicorn on a thread."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
from starlette.requests import Request
from starlette.responses import Response

from tests.support.net import LoopbackServer, free_port

HOP_HEADERS = {"host", "content-length", "transfer-encoding", "connection", "keep-alive"}


class Proxy:
    """Forwards every request to the next of ``upstreams`` (base URLs, no trailing slash).
    ``slow(request)`` true: the request waits ``delay`` seconds first. Counts what it forwarded
    by upstream and the most requests it held at once."""

    def __init__(
        self, upstreams: list[str], *, delay: float = 0.0, slow: Callable[[Request], bool] = lambda request: False
    ) -> None:
        self.upstreams = [u.rstrip("/") for u in upstreams]
        self.delay, self.slow = delay, slow
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.forwarded = {u: 0 for u in self.upstreams}
        self.in_flight = self.max_in_flight = 0
        self._next = itertools.cycle(self.upstreams)
        self._client: httpx.AsyncClient | None = None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":  # uvicorn's startup/shutdown: the client lives in between
            await receive()  # startup
            self._client = httpx.AsyncClient(timeout=30)
            await send({"type": "lifespan.startup.complete"})
            await receive()  # shutdown
            await self._client.aclose()
            await send({"type": "lifespan.shutdown.complete"})
            return
        request = Request(scope, receive)
        upstream = next(self._next)
        self.forwarded[upstream] += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.slow(request):
                await asyncio.sleep(self.delay)
            path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            answer = await self._client.request(
                request.method,
                upstream + path,
                content=await request.body(),
                headers={k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS},
            )
        finally:
            self.in_flight -= 1
        headers = {k: v for k, v in answer.headers.items() if k.lower() not in HOP_HEADERS | {"content-encoding"}}
        await Response(answer.content, status_code=answer.status_code, headers=headers)(scope, receive, send)


@contextmanager
def serve(proxy: Proxy) -> Iterator[Proxy]:
    """Serve ``proxy`` on its port for the block."""
    with LoopbackServer(proxy, port=proxy.port, lifespan="on"):
        yield proxy
