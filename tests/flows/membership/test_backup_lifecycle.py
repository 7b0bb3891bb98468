"""Issue 19: the ledger backed up in the middle of a membership lifecycle (an application filed
and confirmed, its ballot open) and restored into a fresh database carries the lifecycle on:
members vote on Discord and the Forum, the ballot closes, the applicant is onboarded on both
sandboxes; the audit chain runs on from the head witnessed at the backup. SQLite and
PostgreSQL."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path

import pytest

from flows.kit import context
from flows.membership import ballot as ballots
from flows.membership.ballot import close_due_ballots
from flows.membership.handlers import handle_confirm, handle_intake
from flows.membership.intake import confirm_identity
from flows.platforms import use
from ledger import audit
from ledger.backup import backup, restore
from ledger.db import Ledger
from ledger.models import Application, ApplicationStatus, Ballot, BallotOutcome
from tests.flows.membership.test_join import _dm_button, _forum_token
from tests.support.ledger import create_database
from tests.support.membership import (
    NOW,
    World,
    press_button,
    press_vote,
    put_event,
    serve_world,
)


def _ledger_url(backend: str, request: pytest.FixtureRequest, path: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{path}"
    server = request.getfixturevalue("postgres_server")
    return server.url(create_database(server))


def _filed_and_confirmed(world: World) -> tuple[int, int]:
    """quinn_harbor applies through the form and confirms on Discord and the Forum."""
    event = put_event(
        world,
        source="form",
        kind="application",
        route="intake",
        key="form:q-1",
        data={
            "submission_id": "q-1",
            "why": "I moderate a local meetup forum.",
            "experience": "Five years of community moderation.",
            "discourse_username": "quinn_harbor",
            "discord_username": "quinn_harbor",
        },
    )
    app_id = int(handle_intake(event_id=event, ledger=world.ledger, platforms=world.platforms, now=NOW).split(":")[1])
    message, custom_id = _dm_button(world, "quinn_harbor")
    press = press_button(world, "quinn_harbor", message, custom_id)
    handle_confirm(event_id=press, ledger=world.ledger, platforms=world.platforms, now=NOW + timedelta(minutes=5))
    assert (
        confirm_identity(token=_forum_token(world), now=NOW + timedelta(minutes=10))
        == f"application:{app_id}:confirmed"
    )
    with world.ledger.read() as session:
        app = session.get(Application, app_id)
        assert app.status == ApplicationStatus.VOTING
        return app_id, app.ballot_id


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_restored_backup_carries_the_lifecycle_on(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, prefect_server: None
) -> None:
    original = Ledger(_ledger_url(backend, request, tmp_path / "ledger.db"))
    fresh = Ledger(_ledger_url(backend, request, tmp_path / "restored.db"))
    file = tmp_path / "mid-lifecycle.backup"
    with serve_world(original) as world:
        app_id, ballot_id = _filed_and_confirmed(world)
        witnessed = backup(original, file)
        original.dispose()

        # The system of record is lost; a fresh database gets the backup.
        restored = restore(fresh, file)
        assert restored.verify.ok and restored.head == witnessed
        assert restored.witnessed == str(witnessed)
        world = dataclasses.replace(world, ledger=fresh)
        with use(ledger=fresh, platforms=world.platforms):
            where = ballots.refs(context(NOW), ballot_id)  # the ballot's messages, restored
            dref = where["discord"]
            for user in ("cleo_marsh", "dario_fenwick"):
                assert press_vote(world, dref, user, 0, now=NOW + timedelta(hours=1)) == f"ballot:{ballot_id}:vote"
            poll = ballots.platform_ballot("discourse", where["discourse"])
            for voter in ("avery_quill", "bram_tolliver"):
                world.discourse_sb.cast_vote(world.discourse_url, poll, voter=voter, option_index=0)
            closed = close_due_ballots(now=NOW + timedelta(hours=2))
        assert closed[0]["outcome"] == "passed" and closed[0]["yes"] == 4

        with fresh.read() as session:
            assert session.get(Ballot, ballot_id).outcome == BallotOutcome.PASSED
            assert session.get(Application, app_id).status == ApplicationStatus.APPROVED
            check = audit.verify(session, expect_head=str(witnessed))
            assert check.ok and audit.head(session).seq > witnessed.seq
        forum = world.discourse_state()
        assert "quinn_harbor" in next(g for g in forum["groups"] if g["name"] == "working-group")["members"]
        assert any(c["action"] == "grant" for c in world.discord_state()["role_changes"])
    fresh.dispose()
