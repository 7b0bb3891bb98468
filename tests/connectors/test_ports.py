"""``connectors.ports.unused_port``: ports for servers another process binds, chosen where the
kernel never puts an outgoing connection (a test once lost its Prefect port to one)."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import httpx

from connectors.ports import ephemeral_start, unused_port
from tests.support.net import LoopbackServer


async def _ok(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def test_the_ports_lie_below_the_ephemeral_range_and_can_be_bound() -> None:
    start = ephemeral_start()
    ports = {unused_port() for _ in range(20)}
    assert len(ports) > 10, "chosen at random, not one port handed to every caller"
    assert all(10_000 <= port < start for port in ports)
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))
            sock.listen(1)


def test_outgoing_connections_never_take_a_chosen_port() -> None:
    # What went wrong with ports from bind(0): a client's local port is from the same range.
    start = ephemeral_start()
    with LoopbackServer(_ok) as server, httpx.Client() as client:
        for _ in range(20):
            with client.stream("GET", server.url) as response:
                local = response.extensions["network_stream"].get_extra_info("client_addr")[1]
                assert local >= start
                assert response.status_code == 204


def test_the_range_is_read_from_the_kernel_and_defaults_when_unreadable(tmp_path: Path) -> None:
    linux = tmp_path / "range"
    linux.write_text("40000\t60999\n")
    assert ephemeral_start(linux) == 40_000
    garbled = tmp_path / "garbled"
    garbled.write_text("ports\n")
    assert ephemeral_start(garbled) == 32_768
    assert ephemeral_start(tmp_path / "missing") == 32_768
