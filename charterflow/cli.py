"""The `charterflow` command line. Each ``charterflow/*_cli.py`` module holds its commands in a
module-level Typer ``app``; this one adds them with ``add_typer``."""

from __future__ import annotations

import json
import sys
from importlib.metadata import version as dist_version
from pathlib import Path

import typer

from charterflow import (
    budget_cli,
    connectors_cli,
    demo_cli,
    discord_cli,
    gateway_cli,
    guides_cli,
    ideas_cli,
    ledger_cli,
    moderation_cli,
    ops_cli,
    platforms_cli,
    reports_cli,
    roles_cli,
    safety_cli,
    wg_cli,
)
from charterflow.cli_errors import fail
from charterflow.stack import STACK_COMMANDS, use_running

app = typer.Typer(
    name="charterflow",
    help="Run a community working group's charter as Prefect flows.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def main_options(ctx: typer.Context) -> None:
    """Run a community working group's charter as Prefect flows."""
    if ctx.invoked_subcommand not in STACK_COMMANDS:
        return
    # A command acting on the platforms or the ledger uses the running `up`'s (charterflow/stack.py).
    from charterflow.settings import get_settings  # lazy: start-up: pydantic-settings, for the stack commands only

    settings = get_settings()
    line = use_running(settings.home.resolve(), enabled=settings.use_up)
    get_settings.cache_clear()
    if line:
        typer.echo(line, err=True)


rules_app = typer.Typer(help="Ask the charter: validate a charter file, evaluate a what-if case.", no_args_is_help=True)
app.add_typer(rules_app, name="rules")


@rules_app.command("what-if")
def what_if(
    case_file: Path = typer.Argument(..., help="A JSON case file, or - for standard input."),
    charter: Path | None = typer.Option(None, "--charter", help="Charter TOML (default: settings)."),
) -> None:
    """Evaluate one case against the charter and print one JSON object."""
    # lazy: start-up: the charter loader and rules (pydantic)
    from charterflow.charter import load_configured_charter
    from rules import CaseError, CharterFileError, evaluate_case

    try:
        loaded = load_configured_charter(charter)
    except CharterFileError as exc:
        fail(str(exc))
    try:
        # Bytes: the case reader checks they are UTF-8 (and says which byte is not).
        raw = sys.stdin.buffer.read() if str(case_file) == "-" else case_file.read_bytes()
    except OSError as exc:
        fail(f"{case_file}: cannot read: {exc.strerror}")
    try:
        result = evaluate_case(raw, charter=loaded)
    except CaseError as exc:
        # One line, whatever the case file's keys hold.
        fail(f"{'<stdin>' if str(case_file) == '-' else case_file}: {' '.join(str(exc).splitlines())}")
    typer.echo(json.dumps(result, ensure_ascii=False))


@rules_app.command("check")
def check(
    charter: Path | None = typer.Argument(None, help="Charter TOML (default: settings)."),
) -> None:
    """Validate a charter file and print a summary of its numbers."""
    # lazy: start-up: the charter loader and rules (pydantic)
    from charterflow.charter import load_configured_charter
    from rules import CharterFileError

    try:
        loaded = load_configured_charter(charter)
    except CharterFileError as exc:
        fail(str(exc))
    typer.echo(json.dumps({"ok": True, "charter": loaded.summary()}, ensure_ascii=False))


@app.command()
def up() -> None:
    """Start the whole stack: Prefect server, the flows; stop with Ctrl-C."""
    from charterflow.up import run_up  # lazy: start-up: the supervisor and its settings (pydantic)

    raise typer.Exit(run_up())


@app.command()
def status(as_json: bool = typer.Option(False, "--json", help="The status file as JSON.")) -> None:
    """Each child of the running `up`: state, pid, restarts, last exit (exit 1: up is not running)."""
    from charterflow.status import status_command  # lazy: start-up: pydantic-settings

    raise typer.Exit(status_command(as_json=as_json))


@app.command()
def serve() -> None:
    """Serve every deployment (with its schedules) from one process, against PREFECT_API_URL."""
    from charterflow.workers import serve_deployments  # lazy: start-up: Prefect and every flow

    raise typer.Exit(serve_deployments())


@app.command("settings")
def settings_reference() -> None:
    """Print every setting (environment variable), its default and what it does, as Markdown."""
    from charterflow.settings_reference import table  # lazy: start-up: every package's settings (pydantic)

    typer.echo(table())


@app.command()
def version() -> None:
    """Print charterflow's version."""
    typer.echo(dist_version("charterflow"))


# Each module's commands and groups live in its module-level Typer ``app``; a new module is
# one line here.
app.add_typer(ledger_cli.app)  # db, audit, roster, person
app.add_typer(connectors_cli.app)  # sandbox, connectors
app.add_typer(gateway_cli.app)  # gateway, inbox
app.add_typer(discord_cli.app)
app.add_typer(roles_cli.app)
app.add_typer(platforms_cli.app)
app.add_typer(ideas_cli.app)
app.add_typer(budget_cli.app)
app.add_typer(reports_cli.app)
app.add_typer(moderation_cli.app)
app.add_typer(safety_cli.app)  # community reports (R-SAFE-1..3)
app.add_typer(guides_cli.app)  # guides, training (R-GUIDE)
app.add_typer(wg_cli.app)  # wg roles, wg appoint (R-ROLE-APPOINT)
app.add_typer(ops_cli.app)  # doctor, deploy
app.add_typer(demo_cli.app)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
