"""`charterflow sandbox|connectors` commands (the connectors' command line)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the connectors' commands to the main CLI."""
