"""Which charter this installation runs: ``--charter``, else ``CHARTERFLOW_CHARTER_FILE``, else
the shipped DSF Online Community WG charter."""

from __future__ import annotations

from pathlib import Path

from charterflow.settings import get_settings
from rules import Charter, default_charter, load_charter


def load_configured_charter(path: Path | None = None) -> Charter:
    """Load the charter in force; raises ``rules.CharterFileError`` naming file and field."""
    chosen = path if path is not None else get_settings().charter_file
    return load_charter(chosen) if chosen is not None else default_charter()
