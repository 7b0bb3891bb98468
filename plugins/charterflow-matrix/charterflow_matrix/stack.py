"""The homeserver under ``charterflow up`` (entry-point group ``charterflow.stack``).

``up_service(home=..., gateway_url=...)`` starts Synapse with its data in ``<home>/matrix`` (kept
across runs: the same port when free, the same bot token and rooms), its appservice registration
pointing at the gateway, seeds the community once (space, ``general``, ``working-group``,
``moderators``, the invented members), and returns the ``CHARTERFLOW_MATRIX_*`` settings the
stack's processes get. ``None`` when a real homeserver is configured
(``CHARTERFLOW_MATRIX_ACCESS_TOKEN`` set) or ``CHARTERFLOW_MATRIX_UP=0``.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from charterflow_matrix.client import q
from charterflow_matrix.homeserver import APPSERVICE_PATH, Homeserver, free_port

__all__ = ["MatrixService", "up_service"]


@dataclass
class MatrixService:
    """What ``up`` keeps: the settings for its processes, links for its banner, ``stop()``, and
    ``supervised``: the running Synapse for ``up``'s supervisor to watch and restart if it dies
    (name, command, environment, process)."""

    homeserver: Homeserver
    env: dict[str, str] = field(repr=False)
    links: dict[str, str]

    @property
    def supervised(self) -> dict[str, Any]:
        """``{"name", "argv", "env", "process"}`` of the homeserver's process."""
        server = self.homeserver
        return {
            "name": "matrix-homeserver",
            "argv": server.command(),
            "env": server.environment(),
            "process": server.process,
        }

    def stop(self) -> None:
        """Stop Synapse (SIGTERM, then SIGKILL)."""
        self.homeserver.stop()


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        # As Synapse binds: connections of the last run in TIME_WAIT do not make the port busy.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def up_service(*, home: Path, gateway_url: str) -> MatrixService | None:
    """Start the loopback homeserver for ``up`` (see the module docstring)."""
    if os.environ.get("CHARTERFLOW_MATRIX_ACCESS_TOKEN") or os.environ.get("CHARTERFLOW_MATRIX_UP") == "0":
        return None
    # lazy: start-up: the sandbox (connector, fault proxy) loads only when up starts the homeserver
    from charterflow_matrix.sandbox import DEFAULT_SEED, seed_community

    workdir = Path(home) / "matrix"
    workdir.mkdir(parents=True, exist_ok=True)
    saved = workdir / "port"
    port = int(saved.read_text()) if saved.exists() else 0
    if not port or not _port_free(port):
        port = free_port()
    saved.write_text(str(port))
    server = Homeserver(
        workdir, port=port, appservice_url=gateway_url.rstrip("/") + APPSERVICE_PATH, die_with_parent=True
    )
    creds = server.start()
    seeded = workdir / "community.json"
    try:
        if not seeded.exists():
            seed_community(creds.base_url, creds.bot_token, creds.server_name, prefix="", seed=DEFAULT_SEED)
            seeded.write_text(json.dumps({"space": f"#community:{creds.server_name}"}))
    except Exception:
        server.stop()
        raise
    env = {
        "CHARTERFLOW_MATRIX_HOMESERVER_URL": creds.base_url,
        "CHARTERFLOW_MATRIX_SERVER_NAME": creds.server_name,
        "CHARTERFLOW_MATRIX_ACCESS_TOKEN": creds.bot_token,
        "CHARTERFLOW_MATRIX_HS_TOKEN": creds.hs_token,
        "CHARTERFLOW_MATRIX_AS_TOKEN": creds.as_token,
    }
    space = f"#community:{creds.server_name}"
    links = {
        "Matrix": f"{creds.base_url}  (Synapse {server.started_in:.1f} s; space {space}, "
        f"https://matrix.to/#/{q(space)})"
    }
    return MatrixService(homeserver=server, env=env, links=links)
