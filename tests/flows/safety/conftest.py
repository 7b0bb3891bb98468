"""Fixtures of the community report tests (issue 22): the moderation tests' seeded Forum and
Discord sandboxes (tests/support/moderation.py), with cleo_marsh, avery_quill (the CoC Liaison)
and rowan_vale in the ledger."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ledger.models import WgRole, WgRoleAssignment
from tests.support.moderation import NOW, World, moderation_world


def _coc_liaison(session: Any, people: dict[str, int]) -> None:
    session.add(
        WgRoleAssignment(person_id=people["avery_quill"], role=WgRole.COC_LIAISON, assigned_by="coc-wg", starts_at=NOW)
    )


@pytest.fixture
def world(tmp_path: Path, prefect_server: None) -> Iterator[World]:
    """The world; the flows of this process use its ledger and platforms."""
    with moderation_world(tmp_path, names=("cleo_marsh", "avery_quill", "rowan_vale"), extra=_coc_liaison) as world:
        yield world
