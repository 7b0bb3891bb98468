"""Serve the gateway: ``charterflow gateway``, and ``python -m gateway.serve`` (how `charterflow
up` starts it: without the CLI's typer, click and rich, a few MiB less in a process that lives
as long as the stack)."""

from __future__ import annotations

import argparse
import socket
import sys

import uvicorn

from connectors.errors import CharterflowError
from gateway.app import configured_lookup, create_app, load_routes_apart
from gateway.settings import GatewaySettings


def serve(host: str | None = None, port: int | None = None) -> int:
    """Serve until Ctrl-C and print the form's URL; the exit code (1: the port is taken, 2: the
    settings are wrong). ``host``/``port`` default to ``CHARTERFLOW_GATEWAY_HOST``/``_PORT``."""
    settings = GatewaySettings()
    host = host or settings.host
    port = settings.port if port is None else port
    try:
        load_routes_apart()  # before uvicorn starts a thread: it forks
        # The form looks usernames up with the configured connectors (R-APP-4).
        application = create_app(settings=settings, lookup=configured_lookup())
    except CharterflowError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        print(
            f"error: cannot listen on {host}:{port}: {exc.strerror}; set CHARTERFLOW_GATEWAY_PORT or --port",
            file=sys.stderr,
        )
        return 1
    # Listening before the URLs are printed: a client that reads them and connects at once
    # waits in the backlog while uvicorn starts, instead of being refused.
    sock.listen(2048)
    bound = sock.getsockname()[1]
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    base = (settings.public_url or f"http://{shown}:{bound}").rstrip("/")
    print(f"charterflow gateway on {host}:{bound}")
    print(f"  Application form  {base}/apply")
    print(f"  Health            {base}/healthz", flush=True)
    config = uvicorn.Config(
        application,
        log_level="warning",
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        access_log=False,
    )
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it handled: a requested stop
        pass
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway.serve", description="Serve the gateway until Ctrl-C.")
    parser.add_argument("--host", default=None, help="interface (default CHARTERFLOW_GATEWAY_HOST, 0.0.0.0)")
    parser.add_argument("--port", type=int, default=None, help="port (default CHARTERFLOW_GATEWAY_PORT, 8080; 0 = any)")
    args = parser.parse_args(argv)
    return serve(args.host, args.port)


if __name__ == "__main__":
    sys.exit(main())
