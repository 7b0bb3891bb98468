"""Fixtures of the moderation tests: their own ``world`` (Forum and Discord sandboxes seeded with
moderators and a moderation history; tests/support/moderation.py), overriding the membership one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.moderation import World, moderation_world


@pytest.fixture
def world(tmp_path: Path, prefect_server: None) -> Iterator[World]:
    """The moderation world; the flows of this process use its ledger and platforms."""
    with moderation_world(tmp_path) as world:
        yield world
