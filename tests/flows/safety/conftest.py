"""Fixtures of the community report tests (issue 22): the moderation tests' seeded Forum and
Discord sandboxes (tests/support/moderation.py), with cleo_marsh, avery_quill (the CoC Liaison)
and rowan_vale in the ledger."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from flows.platforms import Platforms, use
from ledger import repo
from ledger.db import Ledger
from ledger.migrate import upgrade
from ledger.models import WgRole, WgRoleAssignment
from rules import default_charter
from tests.support.moderation import NOW, World, discord_seed, forum_seed
from tests.support.net import LoopbackServer


@pytest.fixture
def world(tmp_path: Path, prefect_server: None) -> Iterator[World]:
    """The world; the flows of this process use its ledger and platforms."""
    from connectors.discord.connector import DiscordConnector
    from connectors.discourse.connector import DiscourseConnector

    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    upgrade(ledger)
    fsb = DiscourseConnector.sandbox(seed=forum_seed())
    dsb = DiscordConnector.sandbox(seed=discord_seed())
    with LoopbackServer(fsb.app) as f_srv, LoopbackServer(dsb.app) as d_srv:
        forum = fsb.connect(f_srv.url, max_retries=1)
        discord = dsb.connect(d_srv.url, max_retries=1)
        platforms = Platforms.build(charter=default_charter(), discourse=forum, discord=discord,
                                    confirm_secret="test-only-secret", gateway_url="http://gateway.test")
        people = {}
        with ledger.transaction() as session:
            for name in ("cleo_marsh", "avery_quill", "rowan_vale"):
                person = repo.create_person(session, handle=name, actor="operator", at=NOW)
                for platform, conn in (("discourse", forum), ("discord", discord)):
                    user = conn.find_user(name)
                    repo.add_identity(session, person, platform=platform, actor="operator",
                                      external_id=user.id, username=user.username, at=NOW)
                people[name] = person.id
            session.add(WgRoleAssignment(person_id=people["avery_quill"], role=WgRole.COC_LIAISON,
                                         assigned_by="coc-wg", starts_at=NOW))
        with use(ledger=ledger, platforms=platforms):
            yield World(ledger=ledger, platforms=platforms, forum_sb=fsb, forum_url=f_srv.url, discord_sb=dsb,
                        discord_url=d_srv.url, people=people)
        forum.close()
        discord.close()
    ledger.dispose()
