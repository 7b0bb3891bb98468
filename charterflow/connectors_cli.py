"""`charterflow sandbox|connectors` commands (the connectors' command line)."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import typer

from charterflow.cli_errors import fail as _fail
from connectors.errors import CharterflowError

connectors_app = typer.Typer(help="The platform connectors: list them, inspect load errors.", no_args_is_help=True)


def _read_seed(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        _fail(f"{path}: cannot read: {exc.strerror or exc}")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        _fail(f"{path}: not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")
    if not isinstance(data, dict):
        _fail(f"{path}: a seed is a JSON object")
    return data


def _bind(port: int) -> socket.socket:
    # IPPROTO_TCP explicitly: asyncio turns on TCP_NODELAY only for sockets whose proto is TCP.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as exc:
        sock.close()
        _fail(f"cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}")
    return sock


def sandbox(
    name: str = typer.Argument(..., help="The connector whose sandbox to serve, e.g. discourse."),
    port: int = typer.Option(0, "--port", help="Port on 127.0.0.1 (0: any free port)."),
    seed: Path | None = typer.Option(None, "--seed", help="A JSON seed file (default: the built-in seed)."),
) -> None:
    """Serve one connector's sandbox on 127.0.0.1 and print one JSON line describing it.

    The line holds the base URL and the credentials, secrets and keys a client needs. Stop with
    Ctrl-C.
    """
    import uvicorn  # lazy: start-up: uvicorn

    from connectors.registry import load_connector  # lazy: start-up: the connectors
    from connectors.sandboxkit import KEEP_ALIVE_SECONDS  # lazy: start-up: the sandbox kit (Starlette)

    if not 0 <= port <= 65535:
        _fail(f"--port must be between 0 and 65535, not {port}")
    seed_data = _read_seed(seed) if seed is not None else None
    try:
        cls = load_connector(name)
        box = cls.sandbox(seed=seed_data)
    except CharterflowError as exc:
        _fail(str(exc))
    sock = _bind(port)
    base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    typer.echo(json.dumps(box.client_info(base_url), ensure_ascii=False), nl=True)
    server = uvicorn.Server(
        uvicorn.Config(
            box.app, log_level="warning", access_log=False, lifespan="on", timeout_keep_alive=KEEP_ALIVE_SECONDS
        )
    )
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        # uvicorn has already shut down gracefully; it re-raises the captured SIGINT.
        pass
    finally:
        sock.close()


def list_connectors(
    as_json: bool = typer.Option(False, "--json", help="One JSON object per connector instead of a table."),
) -> None:
    """List the registered connectors: name, capabilities, docs URL, and load errors."""
    from connectors.registry import discover  # lazy: start-up: the connectors

    infos = discover()
    if as_json:
        for info in infos:
            typer.echo(json.dumps(info.as_dict(), ensure_ascii=False))
        return
    if not infos:
        typer.echo("no connectors registered (entry-point group charterflow.connectors)")
        return
    width = max(len(i.name) for i in infos)
    for info in infos:
        if info.loaded:
            typer.echo(f"{info.name:<{width}}  ok      {','.join(info.capabilities)}  {info.docs_url}")
        else:
            typer.echo(f"{info.name:<{width}}  FAILED  {info.error}")


# The commands this module adds to `charterflow`: charterflow/cli.py does
# `app.add_typer(connectors_cli.app)`.
app = typer.Typer()
app.command("sandbox")(sandbox)
connectors_app.command("list")(list_connectors)
app.add_typer(connectors_app, name="connectors")
