"""Ballot invariants that must hold for every electorate and every set of votes."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from rules import default_charter, snapshot_electorate, tally
from tests.support.rules import NOW

CHARTER = default_charter()
NAMES = [f"m{i}" for i in range(15)]
CHOICE = st.sampled_from(["yes", "no", "abstain"])


@st.composite
def ballots(draw):
    kind = draw(st.sampled_from(["approval", "removal"]))
    size = draw(st.integers(min_value=1, max_value=15))
    members = NAMES[:size]
    subject = draw(st.sampled_from(members)) if kind == "removal" else None
    voters = draw(st.lists(st.sampled_from(members), unique=True))
    votes = {v: draw(CHOICE) for v in voters if v != subject}
    return kind, members, subject, votes


def run(kind, members, subject, votes, *, deadline):
    days = 14 if kind == "removal" else 7
    now = NOW + timedelta(days=days if deadline else 1)
    return tally(kind, electorate=members, votes=votes, subject=subject, opened_at=NOW, now=now, charter=CHARTER)


@settings(max_examples=300, deadline=None)
@given(ballots(), st.data())
def test_adding_a_yes_vote_never_turns_passed_into_failed(ballot, data):
    kind, members, subject, votes = ballot
    silent = [m for m in members if m not in votes and m != subject]
    if not silent:
        return
    newcomer = data.draw(st.sampled_from(silent))
    for deadline in (False, True):
        before = run(kind, members, subject, votes, deadline=deadline)
        after = run(kind, members, subject, {**votes, newcomer: "yes"}, deadline=deadline)
        if before.outcome == "passed":
            assert after.outcome == "passed"


@settings(max_examples=300, deadline=None)
@given(ballots(), st.data())
def test_early_decision_never_disagrees_with_the_deadline(ballot, data):
    kind, members, subject, votes = ballot
    early = run(kind, members, subject, votes, deadline=False)
    if early.outcome == "open":
        return
    silent = [m for m in members if m not in votes and m != subject]
    # The rest vote any way (or not at all); the deadline tally must agree.
    rest = {m: c for m in silent if (c := data.draw(st.sampled_from(["yes", "no", "abstain", None])))}
    final = run(kind, members, subject, {**votes, **rest}, deadline=True)
    assert final.outcome == early.outcome


@settings(max_examples=200, deadline=None)
@given(ballots())
def test_removal_electorate_never_includes_the_subject(ballot):
    kind, members, subject, votes = ballot
    electorate = snapshot_electorate(members, kind=kind, subject=subject, charter=CHARTER)
    if kind == "removal":
        assert subject not in electorate
        result = run(kind, members, subject, {**votes, subject: "yes"}, deadline=False)
        assert subject not in result.counted
        assert result.electorate == len(members) - 1


@settings(max_examples=200, deadline=None)
@given(ballots())
def test_counts_add_up_and_outcome_is_final_at_deadline(ballot):
    kind, members, subject, votes = ballot
    result = run(kind, members, subject, votes, deadline=True)
    assert result.yes + result.no + result.abstain == len(result.counted) <= result.electorate
    assert result.outcome in {"passed", "failed"}
