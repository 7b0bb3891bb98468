"""`charterflow gateway`: serve the gateway alone (webhooks, interactions, the /apply form)."""

from __future__ import annotations

from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    """Add the ``gateway`` command to the ``charterflow`` CLI."""

    @app.command("gateway")
    def gateway(
        host: Optional[str] = typer.Option(None, "--host", help="Interface (default CHARTERFLOW_GATEWAY_HOST, 0.0.0.0)."),
        port: Optional[int] = typer.Option(None, "--port", help="Port (default CHARTERFLOW_GATEWAY_PORT, 8080; 0 = any free port)."),
    ) -> None:
        """Serve the gateway until Ctrl-C; prints the form URL. Prefect: PREFECT_API_URL."""
        import socket

        import uvicorn

        from connectors.errors import CharterflowError
        from gateway.app import create_app
        from gateway.settings import GatewaySettings

        settings = GatewaySettings()
        host = host or settings.host
        port = settings.port if port is None else port
        try:
            application = create_app(settings=settings)
        except CharterflowError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2)
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            typer.echo(f"error: cannot listen on {host}:{port}: {exc.strerror}; set "
                       "CHARTERFLOW_GATEWAY_PORT or --port", err=True)
            raise typer.Exit(1)
        bound = sock.getsockname()[1]
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        base = (settings.public_url or f"http://{shown}:{bound}").rstrip("/")
        typer.echo(f"charterflow gateway on {host}:{bound}")
        typer.echo(f"  Application form  {base}/apply")
        typer.echo(f"  Health            {base}/healthz")
        config = uvicorn.Config(application, log_level="warning", proxy_headers=True,
                                forwarded_allow_ips=settings.forwarded_allow_ips, access_log=False)
        server = uvicorn.Server(config)
        try:
            server.run(sockets=[sock])
        except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it handled: a requested stop
            pass
