"""A command group alone on a Typer app, as the tests of each CLI group run it."""

from __future__ import annotations

from collections.abc import Callable

import typer


def cli_with(register: Callable[[typer.Typer], None]) -> typer.Typer:
    """A Typer app holding only the command group ``register`` adds (as ``charterflow`` does)."""
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """charterflow (test)."""

    register(app)
    return app
