"""Ballots end to end: an approval that does not reach its quorum by the deadline is rejected
(R-VOTE-APPROVE) and the closed Discord message shows the ledger's counts; a removal fails one
vote short of floor(E/2)+1 at its deadline and passes with exactly floor(E/2)+1, the subject
excluded from the electorate and told (R-REMOVE, R-ELECTORATE, R-VOTE-EARLY)."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select

from connectors.errors import RetriableError
from flows.kit import context
from flows.membership import ballot as ballots
from flows.membership.approval import open_approval_ballot
from flows.membership.ballot import close_due_ballots
from flows.membership.leave import leave
from flows.membership.removal import open_removal_ballot
from ledger import repo
from ledger.models import (
    Application,
    ApplicationStatus,
    AuditEntry,
    Ballot,
    BallotOutcome,
    BallotStatus,
    MembershipStatus,
    Person,
)
from tests.support.membership import NOW, apply_proven, discord_dms, forum_pms, press_vote


def _discord_message(world, message_id):
    return next(m for m in world.discord_state()["messages"] if m["id"] == message_id)


def test_quorum_not_reached_at_the_deadline_rejects(world):
    result = apply_proven(world, "yara_penhale")
    app_id = result["application"]
    with world.ledger.read() as session:
        app = session.get(Application, app_id)
        assert app.status == ApplicationStatus.VOTING
        ballot_id, closes = app.ballot_id, session.get(Ballot, app.ballot_id).closes_at
    where = ballots.refs(context(NOW), ballot_id)
    # Two yes on Discord, one no on the Forum: 3 of 7 voted, the quorum is 4.
    soon = NOW + timedelta(hours=1)
    assert press_vote(world, where["discord"], "cleo_marsh", 0, now=soon) == f"ballot:{ballot_id}:vote"
    assert press_vote(world, where["discord"], "dario_fenwick", 0, now=soon) == f"ballot:{ballot_id}:vote"
    world.discourse_sb.cast_vote(
        world.discourse_url,
        ballots.platform_ballot("discourse", where["discourse"]),
        voter="avery_quill",
        option_index=1,
    )
    assert close_due_ballots(now=soon)[0]["outcome"] == "open"  # the others may still vote

    [closed] = close_due_ballots(now=closes + timedelta(minutes=1))
    assert (closed["outcome"], closed["yes"], closed["no"]) == ("failed", 2, 1)
    with world.ledger.read() as session:
        ballot = session.get(Ballot, ballot_id)
        assert ballot.status == BallotStatus.CLOSED and ballot.outcome == BallotOutcome.FAILED
        assert ballot.ruling == "R-VOTE-APPROVE" and "quorum" in ballot.tally["reason"]
        assert session.get(Application, app_id).status == ApplicationStatus.REJECTED
    [told] = [m for m in forum_pms(world, "yara_penhale") if "voted on your application" in m]
    assert "not approved this time (R-VOTE-APPROVE)" in told
    # The closed Discord ballot shows the ledger's tally (votes merged across both platforms).
    message = _discord_message(world, where["discord"]["message_id"])
    assert message["content"].startswith("**Ballot closed:**")
    assert "Closed: failed, 2 yes, 1 no, 0 abstain of 7 (Discord 2, Forum 1)" in message["content"]
    assert message["components"] == []
    # Closing again changes nothing anywhere.
    before = world.writes()
    close_due_ballots(now=closes + timedelta(hours=1))
    assert world.writes() == before


def test_removal_fails_one_short_and_passes_with_exactly_the_majority(world):
    # Seven members: a removal's electorate is the six others, so floor(6/2)+1 = 4 yes are needed.
    opened = open_removal_ballot(member="hana_pike", proposed_by="avery_quill", now=NOW)
    assert (opened["electorate"], opened["needed"]) == (6, 4)
    ballot_id = opened["ballot"]
    with world.ledger.read() as session:
        ballot = session.get(Ballot, ballot_id)
        assert world.people["hana_pike"] not in {e.person_id for e in ballot.electors}
        closes = ballot.closes_at
    assert closes == NOW + timedelta(days=14)
    where = ballots.refs(context(NOW), ballot_id)
    [opened_dm] = [m for m in discord_dms(world, "hana_pike") if "opened a vote on removing you" in m["content"]]
    assert any("opened a vote on removing you" in m for m in forum_pms(world, "hana_pike"))

    soon = NOW + timedelta(hours=2)
    # The subject cannot vote on their own removal: refused and audited.
    assert press_vote(world, where["discord"], "hana_pike", 1, now=soon) == f"ballot:{ballot_id}:refused"
    # Three yes (two on Discord, one on the Forum) and nobody else: one short of four.
    press_vote(world, where["discord"], "cleo_marsh", 0, now=soon)
    press_vote(world, where["discord"], "dario_fenwick", 0, now=soon)
    world.discourse_sb.cast_vote(
        world.discourse_url,
        ballots.platform_ballot("discourse", where["discourse"]),
        voter="bram_tolliver",
        option_index=0,
    )
    assert close_due_ballots(now=soon)[0]["outcome"] == "open"
    [failed] = close_due_ballots(now=closes + timedelta(minutes=5))
    assert (failed["outcome"], failed["yes"], failed["electorate"]) == ("failed", 3, 6)
    with world.ledger.read() as session:
        person = session.get(Person, world.people["hana_pike"])
        assert repo.open_membership(session, person).status == MembershipStatus.ACTIVE
        refused = list(session.scalars(select(AuditEntry).where(AuditEntry.action == "vote.refused")))
        assert len(refused) == 1
    assert any("did not pass: you remain a member" in m["content"] for m in discord_dms(world, "hana_pike"))
    assert "hana_pike" in next(g for g in world.discourse_state()["groups"] if g["name"] == "working-group")["members"]

    # Another removal: exactly four yes of six passes, at the fourth vote (R-VOTE-EARLY).
    later = closes + timedelta(days=1)
    second = open_removal_ballot(member="gale_morrow", proposed_by="bram_tolliver", now=later)
    assert (second["electorate"], second["needed"]) == (6, 4)
    where = ballots.refs(context(later), second["ballot"])
    for voter in ("avery_quill", "cleo_marsh", "dario_fenwick"):
        assert press_vote(world, where["discord"], voter, 0, now=later) == f"ballot:{second['ballot']}:vote"
    with world.ledger.read() as session:
        assert session.get(Ballot, second["ballot"]).status == BallotStatus.OPEN  # 3 yes: not yet
    press_vote(world, where["discord"], "hana_pike", 0, now=later)
    with world.ledger.read() as session:
        ballot = session.get(Ballot, second["ballot"])
        assert ballot.outcome == BallotOutcome.PASSED and ballot.tally["yes"] == 4
        assert ballot.ruling == "R-VOTE-EARLY"
        person = session.get(Person, world.people["gale_morrow"])
        assert person.memberships[-1].status == MembershipStatus.REMOVED
    assert (
        "gale_morrow"
        not in next(g for g in world.discourse_state()["groups"] if g["name"] == "working-group")["members"]
    )
    gale_id = next(m["id"] for m in world.discord_state()["members"] if m["username"] == "gale_morrow")
    assert any(c["action"] == "revoke" and c["user_id"] == gale_id for c in world.discord_state()["role_changes"])
    assert any("passed: your membership has ended" in m["content"] for m in discord_dms(world, "gale_morrow"))
    message = _discord_message(world, where["discord"]["message_id"])
    assert "Closed: passed, 4 yes, 0 no, 0 abstain of 6 (Discord 4)" in message["content"]
    before = world.writes()
    close_due_ballots(now=later + timedelta(hours=1))
    assert world.writes() == before


def test_a_ballot_not_shown_on_one_platform_fails_its_run_and_the_rerun_shows_it_once(world):
    """Discord down while the ballot is posted: the Forum still shows it, the run fails (it does
    not pass with the ballot missing on Discord), and running it again posts it on Discord only."""
    httpx.post(
        f"{world.discord_url}/_sandbox/faults", json={"error_rate": 1.0, "error_status": 503}, timeout=10
    ).raise_for_status()
    try:
        with pytest.raises(RetriableError):
            apply_proven(world, "yara_penhale")
    finally:
        httpx.post(f"{world.discord_url}/_sandbox/faults", json={}, timeout=10).raise_for_status()
    with world.ledger.read() as session:
        app = session.scalars(select(Application).order_by(Application.id.desc())).first()
        assert app.status == ApplicationStatus.VOTING
        app_id, ballot_id = app.id, app.ballot_id
    assert set(ballots.refs(context(NOW), ballot_id)) == {"discourse"}
    polls = len(world.discourse_state()["polls"])

    again = open_approval_ballot(application_id=app_id, now=NOW)
    assert again["ballot"] == ballot_id and again["platforms"] == ["discord", "discourse"]
    where = ballots.refs(context(NOW), ballot_id)
    assert set(where) == {"discord", "discourse"}
    shown = [m for m in world.discord_state()["messages"] if m["id"] == where["discord"]["message_id"]]
    assert len(shown) == 1
    assert len(world.discourse_state()["polls"]) == polls  # the Forum's poll not posted twice


def test_a_charter_edited_while_a_ballot_is_open_changes_neither_its_deadline_nor_its_threshold(world):
    # Opened under the charter file: 14 days, floor(6/2)+1 = 4 yes of the six others (R-REMOVE).
    opened = open_removal_ballot(member="hana_pike", proposed_by="avery_quill", now=NOW)
    ballot_id = opened["ballot"]
    where = ballots.refs(context(NOW), ballot_id)
    # Then the operators edit the file: 7 days and a majority fraction of 0 (1 yes would do).
    charter = world.platforms.charter
    removal = charter.ballots.removal.model_copy(update={"voting_days": 7, "majority_fraction": 0.0})
    world.platforms.charter = charter.model_copy(
        update={"ballots": charter.ballots.model_copy(update={"removal": removal})}
    )
    # One yes does not remove the member, and on day 8 the ballot (shown as closing on day 14)
    # is still open; it is tallied with its own numbers at its own deadline.
    soon = NOW + timedelta(hours=2)
    assert press_vote(world, where["discord"], "cleo_marsh", 0, now=soon) == f"ballot:{ballot_id}:vote"
    [tallied] = close_due_ballots(now=NOW + timedelta(days=8))
    assert tallied["outcome"] == "open"
    [closed] = close_due_ballots(now=NOW + timedelta(days=14, minutes=5))
    assert (closed["outcome"], closed["yes"], closed["electorate"]) == ("failed", 1, 6)
    with world.ledger.read() as session:
        assert session.get(Ballot, ballot_id).tally["needed"] == 4
        person = session.get(Person, world.people["hana_pike"])
        assert repo.open_membership(session, person).status == MembershipStatus.ACTIVE


def test_a_removal_ballot_cancelled_because_its_subject_left_is_closed_on_the_platforms(world):
    opened = open_removal_ballot(member="hana_pike", proposed_by="avery_quill", now=NOW)
    where = ballots.refs(context(NOW), opened["ballot"])
    soon = NOW + timedelta(hours=1)
    press_vote(world, where["discord"], "cleo_marsh", 0, now=soon)
    # The subject leaves (R-LEAVE): the ballot is cancelled in the ledger; the next closer run
    # closes it on both platforms, saying why, so nobody is left voting on a ballot that is gone.
    leave(member="hana_pike", reason="moving on", now=soon)
    with world.ledger.read() as session:
        assert session.get(Ballot, opened["ballot"]).status == BallotStatus.CANCELLED
    close_due_ballots(now=soon + timedelta(minutes=5))
    message = _discord_message(world, where["discord"]["message_id"])
    assert "Cancelled before it was decided: the membership under vote ended." in message["content"]
    assert not message.get("components")
    [poll] = [p for p in world.discourse_state()["polls"] if str(p["post_id"]) == str(where["discourse"]["message_id"])]
    assert poll["status"] == "closed"
    before = world.writes()
    close_due_ballots(now=soon + timedelta(minutes=10))
    assert world.writes() == before


def test_a_refused_forum_vote_is_refused_and_audited_once_not_at_every_read(world):
    # The member under vote is in the WG group, so the Forum lets her vote in the poll; her vote
    # is refused (R-REMOVE) and kept in the audit log once (R-ELECTORATE), not every 5 minutes.
    opened = open_removal_ballot(member="hana_pike", proposed_by="avery_quill", now=NOW)
    where = ballots.refs(context(NOW), opened["ballot"])
    poll = ballots.platform_ballot("discourse", where["discourse"])
    world.discourse_sb.cast_vote(world.discourse_url, poll, voter="hana_pike", option_index=1)
    for minutes in (5, 10, 15):
        close_due_ballots(now=NOW + timedelta(minutes=minutes))

    def refused():
        with world.ledger.read() as session:
            return len(list(session.scalars(select(AuditEntry).where(AuditEntry.action == "vote.refused"))))

    assert refused() == 1
    # A changed choice is a new vote: refused and audited once more.
    world.discourse_sb.cast_vote(world.discourse_url, poll, voter="hana_pike", option_index=0)
    close_due_ballots(now=NOW + timedelta(minutes=20))
    close_due_ballots(now=NOW + timedelta(minutes=25))
    assert refused() == 2
