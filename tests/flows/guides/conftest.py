"""Fixtures of the guides tests: the seeded working group (``world``, tests/support/membership.py)
with the shipped guides copied to a folder of the test's own (``CHARTERFLOW_GUIDES_DIR``), so a
test can change a guide's text as a WG member would."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.guides import copy_guides

SHIPPED = Path(__file__).resolve().parents[3] / "rules" / "charters" / "guides"


@pytest.fixture
def guides_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = copy_guides(tmp_path / "guides")
    monkeypatch.setenv("CHARTERFLOW_GUIDES_DIR", str(folder))
    return folder
