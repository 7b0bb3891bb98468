"""The inbox routes of this package (called by ``flows.inbox`` at import)."""

from __future__ import annotations


def register() -> None:
    """Register this package's routes with ``flows.inbox.register_route``."""
