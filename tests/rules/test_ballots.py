"""R-VOTE-APPROVE, R-VOTE-EARLY, R-REMOVE and R-ELECTORATE, one table per ruling."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from rules import check_vote, majority, quorum, snapshot_electorate, tally, voting_members
from rules.ballots import approval_opened, check_ballot_found, decide_vote
from tests.support.rules import NOW

MEMBERS7 = ["ash", "birch", "cedar", "dogwood", "elm", "fir", "gorse"]
OPENED = NOW


def votes(yes=0, no=0, abstain=0, members=MEMBERS7):
    choices = ["yes"] * yes + ["no"] * no + ["abstain"] * abstain
    return dict(zip(members, choices, strict=False))  # fewer votes than members: the rest did not vote


def approval(v, *, now=OPENED + timedelta(days=1), members=MEMBERS7, charter):
    return tally("approval", electorate=members, votes=v, subject=None, opened_at=OPENED, now=now, charter=charter)


DEADLINE = OPENED + timedelta(days=7)

# (id, yes, no, abstain, at deadline?, outcome, ruling)
R_VOTE_APPROVE = [
    ("quorum-exactly-met-passes", 2, 1, 1, True, "passed", "R-VOTE-APPROVE"),  # 4 = ceil(7/2)
    ("quorum-one-short-fails", 2, 1, 0, True, "failed", "R-VOTE-APPROVE"),
    ("tie-fails", 2, 2, 1, True, "failed", "R-VOTE-APPROVE"),
    ("abstentions-count-for-quorum", 1, 0, 3, True, "passed", "R-VOTE-APPROVE"),
    ("no-votes-at-all-fails", 0, 0, 0, True, "failed", "R-VOTE-APPROVE"),
    ("undecided-before-deadline-is-open", 2, 1, 1, False, "open", "R-VOTE-APPROVE"),
]


@pytest.mark.parametrize(
    "name,yes,no,abstain,at_deadline,outcome,ruling", R_VOTE_APPROVE, ids=[c[0] for c in R_VOTE_APPROVE]
)
def test_R_VOTE_APPROVE(name, yes, no, abstain, at_deadline, outcome, ruling, charter):
    now = DEADLINE if at_deadline else OPENED + timedelta(days=6, hours=23)
    t = approval(votes(yes, no, abstain), now=now, charter=charter)
    assert (t.outcome, t.ruling) == (outcome, ruling)
    assert t.needed == 4 and t.electorate == 7
    assert t.closes_at == DEADLINE


@pytest.mark.parametrize("size,expected", [(1, 1), (2, 1), (6, 3), (7, 4), (8, 4), (0, 0)])
def test_R_VOTE_APPROVE_quorum_is_ceil_half(size, expected, charter):
    assert quorum(size, kind="approval", charter=charter) == expected


# (id, yes, no, abstain, outcome)
R_VOTE_EARLY = [
    ("4-yes-of-7-passes-early", 4, 0, 0, "passed"),
    ("4-no-of-7-fails-early", 0, 4, 0, "failed"),
    ("3-yes-1-no-of-7-still-open", 3, 1, 0, "open"),  # 3 outstanding could make it 3-4
    ("5-yes-1-no-of-7-passes-early", 5, 1, 0, "passed"),
    ("3-yes-of-7-below-quorum-open", 3, 0, 0, "open"),
    ("1-yes-3-abstain-open", 1, 0, 3, "open"),  # 3 outstanding no would win
]


@pytest.mark.parametrize("name,yes,no,abstain,outcome", R_VOTE_EARLY, ids=[c[0] for c in R_VOTE_EARLY])
def test_R_VOTE_EARLY_approval(name, yes, no, abstain, outcome, charter):
    t = approval(votes(yes, no, abstain), charter=charter)
    assert t.outcome == outcome
    assert t.decided_early == (outcome != "open")
    assert t.ruling == ("R-VOTE-EARLY" if outcome != "open" else "R-VOTE-APPROVE")


def test_R_VOTE_EARLY_no_vote_after_early_close(charter):
    def vote_an_hour_in(voter: str):
        """``voter`` votes an hour after the ballot opened, four yes votes already in."""
        return check_vote(
            "approval",
            voter=voter,
            electorate=MEMBERS7,
            votes=votes(4),
            subject=None,
            opened_at=OPENED,
            now=OPENED + timedelta(hours=1),
            charter=charter,
        )

    decision = vote_an_hour_in("elm")
    assert (decision.allowed, decision.ruling) == (False, "R-VOTE-EARLY")
    changed = vote_an_hour_in("ash")
    assert not changed.allowed  # a vote already cast cannot be changed either


def test_R_VOTE_EARLY_charter_may_disable_early_close(charter):
    ballots = charter.ballots.model_copy(
        update={"approval": charter.ballots.approval.model_copy(update={"early_close": False})}
    )
    late = charter.model_copy(update={"ballots": ballots})
    assert approval(votes(7), charter=late).outcome == "open"
    assert approval(votes(7), now=DEADLINE, charter=late).outcome == "passed"


def removal(members, subject, v, *, now=OPENED + timedelta(days=1), charter):
    return tally("removal", electorate=members, votes=v, subject=subject, opened_at=OPENED, now=now, charter=charter)


REMOVAL_DEADLINE = OPENED + timedelta(days=14)


# (id, electorate incl. subject, yes, no, at deadline, outcome, needed)
R_REMOVE = [
    # 7 members, subject excluded: E = 6 (even), needed = floor(6/2)+1 = 4
    ("even-E6-exactly-4-yes-passes", 7, 4, 0, False, "passed", 4),
    ("even-E6-3-yes-at-deadline-fails", 7, 3, 0, True, "failed", 4),
    ("even-E6-3-yes-3-no-fails-early", 7, 3, 3, False, "failed", 4),
    # 8 members: E = 7 (odd), needed = floor(7/2)+1 = 4
    ("odd-E7-exactly-4-yes-passes", 8, 4, 3, False, "passed", 4),
    ("odd-E7-3-yes-at-deadline-fails", 8, 3, 0, True, "failed", 4),
    ("odd-E7-3-yes-4-no-fails-early", 8, 3, 4, False, "failed", 4),
    ("odd-E7-3-yes-open", 8, 3, 1, False, "open", 4),
    # Not voting counts against: 3 yes of E=6 with 3 silent fails at the deadline.
    ("silence-counts-against", 7, 3, 0, True, "failed", 4),
]

NAMES = ["ash", "birch", "cedar", "dogwood", "elm", "fir", "gorse", "hazel"]


@pytest.mark.parametrize("name,size,yes,no,at_deadline,outcome,needed", R_REMOVE, ids=[c[0] for c in R_REMOVE])
def test_R_REMOVE(name, size, yes, no, at_deadline, outcome, needed, charter):
    members = NAMES[:size]
    subject = members[0]
    voters = members[1:]
    v = votes(yes, no, 0, members=voters)
    t = removal(
        members, subject, v, now=REMOVAL_DEADLINE if at_deadline else OPENED + timedelta(days=1), charter=charter
    )
    assert (t.outcome, t.needed, t.electorate) == (outcome, needed, size - 1)
    assert t.closes_at == REMOVAL_DEADLINE


@pytest.mark.parametrize("size,expected", [(0, 1), (1, 1), (2, 2), (3, 2), (6, 4), (7, 4), (10, 6)])
def test_R_REMOVE_majority_is_floor_half_plus_one(size, expected, charter):
    assert majority(size, charter=charter) == expected


def test_R_REMOVE_subject_voting_on_own_removal_is_refused(charter):
    members = NAMES[:5]
    t = removal(members, "ash", {"ash": "no", "birch": "yes", "cedar": "yes", "dogwood": "yes"}, charter=charter)
    assert t.electorate == 4 and t.no == 0 and t.yes == 3
    assert [r.voter for r in t.refused] == ["ash"] and t.refused[0].ruling == "R-REMOVE"
    assert t.outcome == "passed"  # 3 >= floor(4/2)+1
    decision = check_vote(
        "removal",
        voter="ash",
        electorate=members,
        votes={},
        subject="ash",
        opened_at=OPENED,
        now=OPENED,
        charter=charter,
    )
    assert (decision.allowed, decision.ruling) == (False, "R-REMOVE")


def test_R_REMOVE_empty_electorate_cannot_pass(charter):
    t = removal(["ash"], "ash", {}, charter=charter)
    assert t.outcome == "failed" and t.electorate == 0 and "empty" in t.reason


def test_R_ELECTORATE_outsiders_are_refused_and_listed(charter):
    t = approval({"ash": "yes", "stranger": "yes"}, charter=charter)
    assert t.yes == 1
    assert [(r.voter, r.ruling) for r in t.refused] == [("stranger", "R-ELECTORATE")]
    d = check_vote(
        "approval",
        voter="stranger",
        electorate=MEMBERS7,
        votes={},
        subject=None,
        opened_at=OPENED,
        now=OPENED,
        charter=charter,
    )
    assert (d.allowed, d.ruling) == (False, "R-ELECTORATE")


def test_R_ELECTORATE_snapshot_dedupes_and_excludes_removal_subject(charter):
    assert snapshot_electorate(["ash", "birch", "ash"], kind="approval", subject=None, charter=charter) == (
        "ash",
        "birch",
    )
    assert snapshot_electorate(["ash", "birch", "cedar"], kind="removal", subject="birch", charter=charter) == (
        "ash",
        "cedar",
    )


def test_R_ELECTORATE_later_vote_replaces_earlier_until_close(charter):
    vote: dict[str, Any] = {
        "voter": "ash",
        "electorate": MEMBERS7,
        "votes": {"ash": "no"},
        "subject": None,
        "opened_at": OPENED,
        "charter": charter,
    }
    d = check_vote("approval", now=OPENED + timedelta(days=1), **vote)
    assert d.allowed and d.evidence["replaces"] == "no"
    closed = check_vote("approval", now=DEADLINE, **vote)
    assert not closed.allowed and "closed" in closed.reason


def test_R_ELECTORATE_coc_liaison_votes(charter):
    assert voting_members(["ash", "birch"], coc_liaison="cedar") == ("ash", "birch", "cedar")
    assert voting_members(["ash", "birch"], coc_liaison="ash") == ("ash", "birch")


# (case, voter, votes, subject, kind, ballot open in the ledger?, code, ruling)
DECIDE_VOTE = [
    ("a member votes", "ash", {}, None, "approval", True, "cast", "R-ELECTORATE"),
    ("the ledger closed it first", "ash", {}, None, "approval", False, "closed", "R-VOTE-EARLY"),
    ("a stranger", "stranger", {}, None, "approval", True, "not-in-electorate", "R-ELECTORATE"),
    ("the subject of a removal", "ash", {}, "ash", "removal", True, "not-in-electorate", "R-REMOVE"),
    ("decided early by the figures", "gorse", votes(4), None, "approval", True, "closed", "R-VOTE-EARLY"),
]


@pytest.mark.parametrize(("case", "voter", "cast", "subject", "kind", "is_open", "code", "ruling"), DECIDE_VOTE)
def test_R_ELECTORATE_decide_vote(case, voter, cast, subject, kind, is_open, code, ruling, charter):
    decision = decide_vote(
        check_vote(
            kind,
            voter=voter,
            electorate=MEMBERS7,
            votes=cast,
            subject=subject,
            opened_at=OPENED,
            now=OPENED + timedelta(hours=1),
            charter=charter,
        ),
        ballot_open=is_open,
    )
    assert (decision.code, decision.ruling, decision.allowed) == (code, ruling, code == "cast"), case


def test_R_VOTE_APPROVE_approval_opened():
    opened = approval_opened(12)
    assert (opened.allowed, opened.ruling, opened.reason) == (
        True,
        "R-VOTE-APPROVE",
        "ballot opened for application 12",
    )


@pytest.mark.parametrize(
    ("case", "found", "allowed", "code"),
    [
        ("a vote on an open ballot", True, True, "open"),
        ("a vote on a ballot closed early, at its deadline, or never ours", False, False, "no-open-ballot"),
    ],
)
def test_R_VOTE_EARLY_check_ballot_found(case, found, allowed, code):
    decision = check_ballot_found(found=found)
    assert (decision.allowed, decision.ruling, decision.code) == (allowed, "R-VOTE-EARLY", code), case
    assert allowed or decision.reason == "this ballot is closed or not known"
