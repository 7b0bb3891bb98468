"""Loopback networking of the tests: ``free_port`` and ``LoopbackServer``, an ASGI app served
on 127.0.0.1 from a background thread over real HTTP (uvicorn). The one copy of each."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Mapping
from typing import Any

import uvicorn

from connectors.ports import unused_port
from connectors.sandboxkit import KEEP_ALIVE_SECONDS


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing is bound to right now, for a process that binds it itself (a server of
    this process binds port 0 instead: ``LoopbackServer``). Below the kernel's ephemeral range,
    so the other test process's outgoing connections cannot take it before it is bound
    (``connectors.ports``)."""
    return unused_port(host)


async def request_of(scope: Mapping[str, Any], receive: Any) -> tuple[dict[str, str], bytes]:
    """An ASGI request's headers (latin-1, as HTTP carries them) and its whole body."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}, body


class LoopbackServer:
    """``with LoopbackServer(app) as server: server.url`` — a real uvicorn on a free port.

    ``port`` binds a given port instead (one chosen before the app existed); ``lifespan="on"``
    runs the app's startup and shutdown (a proxy whose client lives in between), within
    ``start_timeout`` seconds.
    """

    def __init__(
        self, app: Any, *, host: str = "127.0.0.1", port: int = 0, lifespan: str = "off", start_timeout: float = 10
    ) -> None:
        self.app = app
        self.host = host
        self.start_timeout = start_timeout
        # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets whose proto is TCP,
        # and without it every response waits ~40 ms for a delayed ACK.
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(
            app, log_level="critical", access_log=False, lifespan=lifespan, timeout_keep_alive=KEEP_ALIVE_SECONDS
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> LoopbackServer:
        # Dropped connections are injected on purpose; keep uvicorn's error log quiet about them.
        logging.getLogger("uvicorn.error").setLevel(logging.CRITICAL)
        self.thread.start()
        deadline = time.monotonic() + self.start_timeout
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the loopback server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()
