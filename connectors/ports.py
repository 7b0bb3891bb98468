"""``unused_port()``: a loopback port for a server another process (or a later step) binds.

A port the kernel hands out for ``bind(("127.0.0.1", 0))`` comes from its ephemeral range, the
range every outgoing connection's local port comes from too: between choosing such a port and a
child process binding it, any client on the machine may connect from it, and the server then
fails with "address already in use". The ports chosen here lie below that range, where the kernel
never puts a connection on its own, so only another explicit choice can take one.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

__all__ = ["ephemeral_start", "unused_port"]

# Linux keeps its range in this file (32768-60999 by default); other systems start it higher
# (macOS and Windows: 49152), so 32768 is below it everywhere when the file is missing.
_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LOWEST = 10_000  # above the well-known and most registered services' ports
_ATTEMPTS = 200


def ephemeral_start(range_file: Path = _RANGE_FILE) -> int:
    """The first port of the kernel's ephemeral range (32768 where it cannot be read)."""
    try:
        return int(range_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def unused_port(host: str = "127.0.0.1") -> int:
    """A port of ``host`` nothing is bound to now, chosen at random below the ephemeral range."""
    start = ephemeral_start()
    candidates = range(_LOWEST, start) if start - _LOWEST >= 1_000 else range(1_024, start)
    rng = random.SystemRandom()
    for _ in range(_ATTEMPTS):
        port = rng.choice(candidates)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return port
    # Every try taken (a machine using thousands of fixed ports): fall back on the kernel's choice.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
