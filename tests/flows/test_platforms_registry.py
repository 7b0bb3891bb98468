"""``flows.platforms`` builds any number of platform spaces from the connector registry, and
reads each platform's WG space from generic settings; bad configuration is refused or reported,
never a crash. Sandboxes over real HTTP; no Prefect needed."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.exc import StatementError

import flows.platforms as fp
from connectors.base import ButtonMessenger, Messenger, TallyDisplay, Uploader
from connectors.registry import community_connectors, load_connector
from flows.platforms import (
    MembershipSettings,
    Platforms,
    PlatformsSettings,
    configured_platforms,
    served_by_ledger,
    use,
)
from ledger import platforms as ledger_platforms
from ledger import repo
from ledger.db import Ledger
from ledger.migrate import upgrade
from ledger.models import Identity, Platform
from rules import default_charter
from tests.support.net import LoopbackServer


@pytest.fixture
def forum(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The Forum sandbox served on 127.0.0.1, its settings in the environment."""
    sandbox = load_connector("discourse").sandbox()
    with LoopbackServer(sandbox.app) as server:
        for name, value in sandbox.client_info(server.url).get("env", {}).items():
            monkeypatch.setenv(name, str(value))
        yield sandbox.connect(server.url)


def test_the_platform_list_is_read_generously_but_once_each():
    raw = PlatformsSettings.model_construct(platforms=" Discourse, discord ,discord,, matrix ")
    assert configured_platforms(raw) == ("discourse", "discord", "matrix")


def test_unset_means_every_registered_community_connector_forum_and_discord_first(monkeypatch):
    monkeypatch.delenv("CHARTERFLOW_PLATFORMS", raising=False)
    names = configured_platforms(PlatformsSettings(_env_file=None))
    assert names[:2] == ("discourse", "discord")
    assert set(names) == set(community_connectors())
    assert "slack" not in names  # the Board's channel, never a community platform


def test_a_platform_not_registered_or_not_configured_is_left_out_and_reported(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("CHARTERFLOW_HOME", str(tmp_path))
    for name in ("CHARTERFLOW_DISCORD_TOKEN", "CHARTERFLOW_DISCORD_GUILD_ID"):
        monkeypatch.delenv(name, raising=False)
    with caplog.at_level(logging.WARNING, logger="charterflow.membership"):
        platforms = Platforms.from_settings(names=["no-such-platform", "discord"])
    assert platforms.names() == ()
    logged = caplog.text
    assert "no-such-platform is not served (ConfigError)" in logged
    assert "discord is not served" in logged


def test_each_space_reads_generic_settings_then_older_names_then_the_connector(forum, monkeypatch):
    charter = default_charter()
    built = Platforms.build(
        charter=charter, settings=MembershipSettings(_env_file=None), discourse=forum, parlor_like=None
    )
    space = built.space("discourse")
    assert built.names() == ("discourse",)  # None: not served
    assert (space.wg_channel, space.wg_role.name) == forum.working_group_space()
    older = MembershipSettings(_env_file=None, discourse_category="WG Private", discourse_group="wg-team")
    space = Platforms.build(charter=charter, settings=older, discourse=forum).space("discourse")
    assert (space.wg_channel, space.wg_role.name) == ("WG Private", "wg-team")
    monkeypatch.setenv("CHARTERFLOW_MEMBERSHIP_DISCOURSE_CHANNEL", "Working Group Lounge")
    monkeypatch.setenv("CHARTERFLOW_MEMBERSHIP_DISCOURSE_ROLE", "wg-lounge")
    space = Platforms.build(charter=charter, settings=older, discourse=forum).space("discourse")
    assert (space.wg_channel, space.wg_role.name) == ("Working Group Lounge", "wg-lounge")


def test_a_space_answers_only_for_the_protocols_its_connector_implements(forum):
    space = Platforms.build(charter=default_charter(), discourse=forum).space("discourse")
    assert space.capable(Messenger) is forum and space.capable(Uploader) is forum
    assert space.capable(ButtonMessenger) is None and space.capable(TallyDisplay) is None


def test_the_ledger_stores_any_connector_name_and_refuses_a_malformed_one(tmp_path):
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    upgrade(ledger)
    try:
        with ledger.transaction() as session:
            person = repo.create_person(session, handle="nell_bracken", actor="operator")
            repo.add_identity(
                session, person, platform="parlor", actor="operator", external_id="7", username="nell_bracken"
            )
        with ledger.read() as session:
            [identity] = session.query(Identity).all()
            assert identity.platform is Platform("parlor") and identity.platform.value == "parlor"
        for bad in ("Parlor Site", "x" * 30, "", "../etc"):
            with pytest.raises(ValueError):
                Platform(bad)
        with pytest.raises((ValueError, StatementError)):
            with ledger.transaction() as session:
                person = repo.create_person(session, handle="otto_pell", actor="operator")
                repo.add_identity(
                    session, person, platform="Parlor Site", actor="operator", external_id="8", username="otto_pell"
                )
    finally:
        ledger.dispose()


def set_state(
    session, platform: str, state: str, charter_platforms, *, decided_by: str = "board:slack", **extra
) -> None:
    """The ledger's platform list: ``platform`` is now ``state`` (by the Board's Slack button unless
    ``decided_by`` says otherwise)."""
    ledger_platforms.record_state(
        session,
        platform=platform,
        state=state,
        actor="test",
        decided_by=decided_by,
        charter_platforms=charter_platforms,
        **extra,
    )


def test_only_platforms_on_the_ledgers_list_are_served(tmp_path):
    """R-PLATFORM: a connector installed and configured is not served before the Board approves
    its platform; a trial or retiring one is (a retiring one's roles are still to revoke), a
    retired one is not."""
    charter = default_charter()
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    upgrade(ledger)
    asked = ["discourse", "discord", "matrix", "parlor"]
    try:
        with use(ledger=ledger, platforms=Platforms.build(charter=charter)):
            assert served_by_ledger(asked, charter) == ["discourse", "discord"]  # the charter's seed
            now = datetime.now(UTC)
            with ledger.transaction() as session:
                set_state(session, "matrix", "trial", charter.platforms, at=now, trial_ends_at=now + timedelta(days=90))
                set_state(session, "discord", "retiring", charter.platforms, at=now)
            assert served_by_ledger(asked, charter) == ["discourse", "discord", "matrix"]
            with ledger.transaction() as session:
                set_state(session, "discord", "retired", charter.platforms, decided_by="flow:retire", at=now)
            assert served_by_ledger(asked, charter) == ["discourse", "matrix"]
    finally:
        ledger.dispose()


def test_a_long_running_process_follows_the_ledgers_platform_list_without_a_restart(forum, tmp_path, monkeypatch):
    """The inbox worker builds its platforms once; when the Board's decision changes which the
    ledger serves (R-PLATFORM), the next use after ``REFRESH_SECONDS`` builds them again."""
    monkeypatch.setenv("CHARTERFLOW_HOME", str(tmp_path))
    monkeypatch.setenv("CHARTERFLOW_PLATFORMS", "discourse,discord")
    monkeypatch.setattr(fp, "REFRESH_SECONDS", 0.0)
    monkeypatch.setattr(fp, "_latest", None)  # this process's last build: restored after the test
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    upgrade(ledger)
    try:
        with fp.use(ledger=ledger, platforms=Platforms.build(charter=default_charter())):
            # A test's own platforms (installed with use) are never replaced.
            installed = fp.current_platforms()
            assert fp.current_platforms() is installed and not installed.built_from_settings
        first = Platforms.from_settings()
        assert first.served_from == ("discourse", "discord") and first.names() == ("discourse",)
        with fp.use(ledger=ledger, platforms=first):
            assert fp.current_platforms() is first  # the list did not change
            with ledger.transaction() as session:
                set_state(session, "discord", "retired", ("discourse", "discord"))
            again = fp.current_platforms()
            assert again is not first and again.served_from == ("discourse",)
            with fp.use(ledger=ledger, platforms=first):  # another thread's block, begun before
                assert fp.current_platforms() is again  # never the older build
        again.close()
        first.close()
    finally:
        ledger.dispose()
