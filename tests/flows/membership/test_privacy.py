"""R-PRIVACY-3 end to end: a person applies (with an e-mail and answers), confirms, is voted in
and onboarded, suggests an idea, is the subject of a moderation action and leaves; then
`charterflow person erase` leaves none of their handles, e-mail or answers in anything the
session's Prefect server returns: flow runs and task runs (names, parameters, state messages),
logs, artifacts, and the events Prefect keeps (which cannot be changed afterwards)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from prefect.settings import PREFECT_API_URL
from typer.testing import CliRunner

from charterflow import ledger_cli
from charterflow.settings import get_settings
from flows.ideas.intake import ideas_file
from flows.ideas.triage import ideas_triage
from flows.inbox import prefect_http
from flows.kit import context
from flows.membership.ballot import refs
from flows.membership.handlers import handle_confirm, handle_intake
from flows.membership.intake import confirm_identity
from flows.membership.leave import leave
from flows.moderation.digest import moderation_digest
from flows.privacy import find
from ledger.models import Application, ApplicationStatus, Person
from ledger.privacy import personal_values
from tests.flows.membership.test_join import _dm_button, _form, _forum_token
from tests.support.cli import cli_with
from tests.support.membership import NOW, press_button, press_vote

WHO = "yara_penhale"
EMAIL = "yara.penhale@example.org"
WHY = "I keep the lighthouse-keepers help desk open every Thursday evening."
EXPERIENCE = "Eleven years moderating the harbour-radio mailing list."


def _lifecycle(world) -> int:
    """Apply → confirm on both platforms → voted in → onboarded; returns the person id."""
    event = _form(
        world,
        "sub-yara-privacy",
        discourse_username=WHO,
        discord_username=WHO,
        email=EMAIL,
        why=WHY,
        experience=EXPERIENCE,
    )
    result = handle_intake(event_id=event, ledger=world.ledger, platforms=world.platforms, now=NOW)
    assert result.startswith("application:"), result
    app_id = int(result.split(":")[1])
    message, custom_id = _dm_button(world, WHO)
    press = press_button(world, WHO, message, custom_id)
    handle_confirm(event_id=press, ledger=world.ledger, platforms=world.platforms, now=NOW + timedelta(minutes=5))
    confirm_identity(token=_forum_token(world), now=NOW + timedelta(minutes=10))
    with world.ledger.read() as session:
        app = session.get(Application, app_id)
        ballot_id, person_id = app.ballot_id, app.person_id
    assert ballot_id is not None
    where = refs(context(NOW), ballot_id)["discord"]
    for voter in ("avery_quill", "bram_tolliver", "cleo_marsh", "dario_fenwick"):
        press_vote(world, where, voter, 0, now=NOW + timedelta(hours=1))
    # The fourth yes decided the ballot (R-VOTE-EARLY): closed and onboarded at once.
    with world.ledger.read() as session:
        assert session.get(Application, app_id).status == ApplicationStatus.APPROVED
    return person_id


def _idea_and_moderation(world) -> None:
    """An idea filed for them by an operator (their handle typed as a parameter), the backlog
    published, and a Forum moderator's action about them synced into the moderation tables."""
    ideas_file(
        title="A shared calendar of harbour events",
        body="One calendar for both platforms.",
        author=WHO,
        now=NOW + timedelta(hours=3),
    )
    ideas_triage(post_digest=False, now=NOW + timedelta(hours=3))
    httpx.post(
        f"{world.discourse_url}/_sandbox/staff_action",
        timeout=10,
        json={
            "action_name": "delete_post",
            "acting_user": "avery_quill",
            "target_user": WHO,
            "post_id": 4711,
            "topic_id": 88,
            "details": "off topic",
        },
    ).raise_for_status()
    moderation_digest(now=NOW + timedelta(hours=4), sync=True)


def _erase(world, person_id: int, monkeypatch) -> str:
    monkeypatch.setenv("CHARTERFLOW_DATABASE_URL", str(world.ledger.engine.url))
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(
            cli_with(ledger_cli.app), ["person", "erase", str(person_id), "--reason", "asked by e-mail"]
        )
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    return result.stdout


def test_erased_person_leaves_no_trace_in_prefect(world, monkeypatch):
    since = datetime.now(UTC)
    person_id = _lifecycle(world)
    _idea_and_moderation(world)
    with world.ledger.read() as session:
        values = set(personal_values(session, session.get(Person, person_id)))
    assert {WHO, EMAIL, WHY, EXPERIENCE} <= values
    values.add("Yara Penhale")  # the Forum's display name, wherever it may have been copied

    with prefect_http(str(PREFECT_API_URL.value()), timeout=30) as http:
        # By construction, runs and logs carry ledger ids: the only run that names them is
        # the one an operator started with their handle typed as a parameter.
        named = find(http, values, kinds=("flow_runs", "task_runs", "logs", "events"), since=since)
        assert len(named) == 1, named
        assert named[0].startswith("flow_runs ") and f'"author": "{WHO}"' in named[0], named
        # Artifacts are operators' views and do show them (the check below can fail).
        assert find(http, values, kinds=("artifacts",), since=since)

        leave(member=str(person_id), now=NOW + timedelta(hours=5))
        out = _erase(world, person_id, monkeypatch)
        assert f"person:{person_id} erased" in out and "Prefect (" in out, out

        assert find(http, values, since=since) == []
        backlog = http.post("artifacts/latest/filter", json={"artifacts": {"key": {"any_": ["ideas-backlog"]}}}).json()
        assert backlog and f"erased-{person_id}" in str(backlog[0]["data"])
    # Erasing again finds nothing left to change.
    again = _erase(world, person_id, monkeypatch)
    assert "redacted 0 artifact(s), 0 flow run(s), 0 task run(s)" in again
