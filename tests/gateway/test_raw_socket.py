"""Clients that break HTTP framing, over a raw socket against a real `charterflow gateway`
(uvicorn): a request with both Content-Length and Transfer-Encoding is refused with 400 and the
connection closed (two framings of one body are how requests get smuggled); a client that
leaves half-way through its body, or stops sending it, costs one log line at most (INFO, not
shown at the gateway's default level), never a traceback, and never holds the connection past
CHARTERFLOW_GATEWAY_BODY_TIMEOUT (408)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

SIGNED = (
    b"POST /hooks/discourse HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
    b"X-Discourse-Event-Signature: sha256=00\r\n"
)


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[tuple[int, subprocess.Popen, Path]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "CHARTERFLOW_"))}
    env.update(
        CHARTERFLOW_HOME=str(tmp_path),
        CHARTERFLOW_GATEWAY_DISPATCH="false",
        CHARTERFLOW_DISCOURSE_WEBHOOK_SECRET="whsec_raw_socket_invented",
        CHARTERFLOW_GATEWAY_BODY_TIMEOUT="2",
    )
    charterflow = str(Path(sys.executable).with_name("charterflow"))
    subprocess.run([charterflow, "db", "upgrade"], env=env, check=True, capture_output=True, timeout=120)
    log = tmp_path / "gateway.log"
    with log.open("w") as sink:
        process = subprocess.Popen(
            [charterflow, "gateway", "--host", "127.0.0.1", "--port", "0"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=sink,
            text=True,
        )
    try:
        deadline, port = time.monotonic() + 90, None
        while port is None and time.monotonic() < deadline:
            line = process.stdout.readline()
            if line.startswith("charterflow gateway on"):
                port = int(line.rsplit(":", 1)[1])
        assert port, log.read_text()
        while time.monotonic() < deadline:  # bound before uvicorn listens: wait for it
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        yield port, process, log
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=15)


def exchange(port: int, head: bytes, body: bytes, *, then: str, wait: float = 0.5) -> bytes:
    """Send ``head`` + ``body``; then ``close`` (leave) or ``read`` what the gateway answers
    until it closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head + b"\r\n" + body)
        if then == "close":
            time.sleep(wait)
            return b""
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return received


def test_broken_framing_is_refused_or_ends_quietly(gateway):
    port, process, log = gateway
    for _ in range(3):
        both = exchange(port, SIGNED + b"Content-Length: 10\r\nTransfer-Encoding: chunked\r\n", b"5\r\nab", then="read")
        assert both.startswith(b"HTTP/1.1 400 ") and b"both Content-Length and Transfer-Encoding" in both
        # Chunked, left half-way: the client disconnects before the body is complete.
        exchange(port, SIGNED + b"Transfer-Encoding: chunked\r\n", b"5\r\nab", then="close")
        exchange(port, SIGNED + b"Content-Length: 100\r\n", b'{"a":', then="close")
    started = time.monotonic()
    hanging = exchange(port, SIGNED + b"Transfer-Encoding: chunked\r\n", b"5\r\nab", then="read")
    assert hanging.startswith(b"HTTP/1.1 408 ") and 1.5 < time.monotonic() - started < 10
    time.sleep(1)
    assert process.poll() is None
    text = log.read_text()
    assert "Traceback" not in text and "ClientDisconnect" not in text, text[:3000]
    assert len(text.splitlines()) <= 2, text
