"""`charterflow db|audit|roster|person` commands (the ledger's command line)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the ledger's command groups to the main CLI."""
