"""`charterflow discord ...` commands (wired into the CLI with ``register(app)``)."""

from __future__ import annotations

import json

import typer

from charterflow.cli_errors import fail as _fail
from connectors.errors import CharterflowError

__all__ = ["app", "discord_app"]

discord_app = typer.Typer(help="The Discord connector: register slash commands.", no_args_is_help=True)


@discord_app.command("register-commands")
def register_commands(
    scope: str = typer.Option("guild", "--scope", help="guild: this server only, at once; global: every server."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the command definitions without sending them."),
) -> None:
    """Register /apply, /idea, /optin and /leave for the bot (re-running replaces them).

    Reads CHARTERFLOW_DISCORD_TOKEN, _APPLICATION_ID, _GUILD_ID and _PUBLIC_KEY (and .env).
    Prints one JSON line: the scope and the registered command names and ids.
    """
    from connectors.discord import payloads  # lazy: start-up: the connectors

    if scope not in ("guild", "global"):
        _fail(f"--scope must be 'guild' or 'global', not {scope!r}")
    if dry_run:
        typer.echo(json.dumps({"scope": scope, "commands": list(payloads.COMMANDS)}, ensure_ascii=False))
        return
    from connectors.discord.connector import DiscordConnector  # lazy: start-up: the connectors

    try:
        connector = DiscordConnector.from_env()
    except CharterflowError as exc:
        _fail(str(exc))
    try:
        with connector:
            rows = connector.register_commands(scope=scope)
    except CharterflowError as exc:
        _fail(" ".join(str(exc).split()))
    except Exception as exc:  # noqa: BLE001 - one line, no traceback, whatever went wrong
        _fail(f"{type(exc).__name__}: {connector.client.redact(exc)}")
    typer.echo(
        json.dumps(
            {
                "scope": scope,
                "guild_id": connector.settings.guild_id if scope == "guild" else None,
                "commands": [{"name": r.get("name"), "id": r.get("id")} for r in rows],
            },
            ensure_ascii=False,
        )
    )


# The commands this module adds to `charterflow`: charterflow/cli.py does
# `app.add_typer(discord_cli.app)`.
app = typer.Typer()
app.add_typer(discord_app, name="discord")
