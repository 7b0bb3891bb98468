"""End to end: apply via the form → confirm on Discord and the Forum → eligible by Forum activity
→ members vote across both platforms → onboarded with roles on both; re-runs change nothing."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import select

from flows.kit import context
from flows.membership import ballot as ballots
from flows.membership.ballot import close_due_ballots
from flows.membership.handlers import handle_confirm, handle_intake
from flows.membership.intake import confirm_identity
from flows.membership.onboarding import onboard
from ledger import audit, repo
from ledger.models import Application, ApplicationStatus, AuditEntry, Ballot, BallotOutcome, MembershipStatus, Person
from tests.support.membership import NOW, discord_event, press_button, put_event
from tests.support.membership import press_vote as vote_on_discord


def _form(world, key, **fields):
    data = {
        "submission_id": key,
        "why": "I moderate a local meetup forum and want to help.",
        "experience": "Five years of community moderation.",
        **fields,
    }
    return put_event(world, source="form", kind="application", route="intake", data=data, key=f"form:{key}")


def _dm_button(world, username):
    state = world.discord_state()
    for message in state["messages"]:
        for row in message.get("components") or []:
            for comp in row.get("components", []):
                if str(comp.get("custom_id", "")).startswith("cfc:"):
                    return message, comp["custom_id"]
    raise AssertionError("no confirmation DM with a button")


def _forum_token(world):
    for post in world.discourse_state()["posts"]:
        found = re.search(r"/confirm/([\w.]+)", post["raw"])
        if found:
            return found.group(1)
    raise AssertionError("no confirmation PM on the Forum")


def test_apply_confirm_vote_onboard(world):
    event = _form(world, "sub-quinn-0001", discourse_username="quinn_harbor", discord_username="quinn_harbor")
    result = handle_intake(event_id=event, ledger=world.ledger, platforms=world.platforms, now=NOW)
    assert result.startswith("application:")
    app_id = int(result.split(":")[1])

    # Discord: the applicant presses Confirm in the DM.
    message, custom_id = _dm_button(world, "quinn_harbor")
    press = press_button(world, "quinn_harbor", message, custom_id)
    assert (
        handle_confirm(event_id=press, ledger=world.ledger, platforms=world.platforms, now=NOW + timedelta(minutes=5))
        == f"application:{app_id}:waiting"
    )
    # Someone else pressing it is refused (R-APP-2).
    other = discord_event(
        world,
        kind="component",
        route="confirm",
        payload={"user": "ivo_stone", "custom_id": custom_id, "message_id": message["id"]},
    )
    assert (
        handle_confirm(event_id=other, ledger=world.ledger, platforms=world.platforms, now=NOW + timedelta(minutes=5))
        == "refused:R-APP-2"
    )

    # Forum: the gateway's confirmation page POSTs the token.
    token = _forum_token(world)
    assert confirm_identity(token=token, now=NOW + timedelta(minutes=10)) == f"application:{app_id}:confirmed"

    with world.ledger.read() as session:
        app = session.get(Application, app_id)
        assert app.status == ApplicationStatus.VOTING
        assert app.eligibility[-1].outcome.value == "yes"
        ballot_id = app.ballot_id
        assert len(session.get(Ballot, ballot_id).electors) == 7

    ctx = context(NOW)
    where = ballots.refs(ctx, ballot_id)
    assert set(where) == {"discourse", "discord"}

    # A non-member presses a ballot button on Discord: refused and audited.
    dref = where["discord"]

    def press_vote(user, option):
        return vote_on_discord(world, dref, user, option, now=NOW + timedelta(hours=1))

    assert press_vote("ivo_stone", 0) == f"ballot:{ballot_id}:refused"
    # Two yes on Discord, one of them changed from no.
    assert press_vote("cleo_marsh", 1) == f"ballot:{ballot_id}:vote"
    assert press_vote("cleo_marsh", 0) == f"ballot:{ballot_id}:vote"
    assert press_vote("dario_fenwick", 0) == f"ballot:{ballot_id}:vote"
    # Three yes on the Forum poll.
    fballot = ballots.platform_ballot("discourse", where["discourse"])
    for voter in ("avery_quill", "bram_tolliver", "felix_oakes"):
        world.discourse_sb.cast_vote(world.discourse_url, fballot, voter=voter, option_index=0)

    closed = close_due_ballots(now=NOW + timedelta(hours=2))
    # Five said yes; the fourth yes already decided it (R-VOTE-EARLY: 4 of 7 meets the quorum
    # and no later vote can change it), so the fifth is refused as cast on a decided ballot.
    assert closed[0]["outcome"] == "passed" and closed[0]["yes"] == 4

    with world.ledger.read() as session:
        ballot = session.get(Ballot, ballot_id)
        assert ballot.outcome == BallotOutcome.PASSED and ballot.ruling == "R-VOTE-EARLY"
        app = session.get(Application, app_id)
        assert app.status == ApplicationStatus.APPROVED

        person = session.get(Person, app.person_id)
        membership = repo.open_membership(session, person)
        assert membership.status == MembershipStatus.ACTIVE
        refused = list(session.scalars(select(AuditEntry).where(AuditEntry.action == "vote.refused")))
        assert len(refused) == 2, "the non-member's vote and the vote after the decision are audited"
        assert audit.verify(session).ok
    forum = world.discourse_state()
    assert "quinn_harbor" in next(g for g in forum["groups"] if g["name"] == "working-group")["members"]
    discord = world.discord_state()
    assert any(c["action"] == "grant" for c in discord["role_changes"])

    # Every flow again with the same input: no new write on either platform.
    before = world.writes()
    assert (
        handle_intake(event_id=event, ledger=world.ledger, platforms=world.platforms, now=NOW + timedelta(hours=3))
        == result
    )
    assert confirm_identity(token=token, now=NOW + timedelta(hours=3)) == f"application:{app_id}:already"
    close_due_ballots(now=NOW + timedelta(hours=3))
    onboard(application_id=app_id, now=NOW + timedelta(hours=3))
    assert world.writes() == before
