"""What the guides tests share: the seeded channels the guides are published into, and a copy
of the shipped guides a test may edit as a WG member would."""

from __future__ import annotations

import shutil
from pathlib import Path

SHIPPED = Path(__file__).resolve().parents[2] / "rules" / "charters" / "guides"
# The `world` seed has no Guides category or resources channel: the tests publish into these.
CHANNELS = {"discourse": "General", "discord": "general"}


def copy_guides(folder: Path) -> Path:
    """The shipped guides copied to ``folder`` (point ``CHARTERFLOW_GUIDES_DIR`` at it)."""
    shutil.copytree(SHIPPED, folder)
    return folder
