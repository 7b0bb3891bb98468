"""A command group alone on a Typer app, as the tests of each CLI group run it."""

from __future__ import annotations

import typer


def cli_with(group: typer.Typer) -> typer.Typer:
    """A Typer app holding only ``group`` (a ``charterflow/*_cli.py`` module's ``app``), added
    as ``charterflow`` adds it."""
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """charterflow (test)."""

    app.add_typer(group)
    return app
