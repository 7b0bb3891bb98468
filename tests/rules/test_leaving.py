"""R-LEAVE, R-REMOVE and the endings of a membership (rules/leaving.py), and the opt-in
decisions of R-TERM-1/2 (rules/terms.py): one table row per decision."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rules.leaving import (
    LEAVE_REASON_CHARS,
    MembershipFacts,
    RemovalProposal,
    check_ending,
    check_leaver,
    check_removal_proposal,
    ended,
    leave_reason,
    removal_opened,
)
from rules.terms import OptInRequest, check_opt_in_sender, decide_opt_in, term_started

START = datetime(2025, 3, 1, tzinfo=UTC)
END = START + timedelta(days=365)  # the end of the term that started at START


@pytest.mark.parametrize(
    ("case", "facts", "ending", "allowed", "ruling", "code"),
    [
        ("a member leaves", MembershipFacts(person="person:3", active=True), "left", True, "R-LEAVE", "end"),
        (
            "left already: finish the revocations",
            MembershipFacts(person="person:3", active=False, last_status="left"),
            "left",
            True,
            "R-LEAVE",
            "already",
        ),
        (
            "never a member cannot leave",
            MembershipFacts(person="person:3", active=False),
            "left",
            False,
            "R-LEAVE",
            "not-a-member",
        ),
        (
            "lapsed, then asks to leave",
            MembershipFacts(person="person:3", active=False, last_status="lapsed"),
            "left",
            False,
            "R-LEAVE",
            "not-a-member",
        ),
        ("removed by a ballot", MembershipFacts(person="person:3", active=True), "removed", True, "R-REMOVE", "end"),
        (
            "left before the removal ballot closed",
            MembershipFacts(person="person:3", active=False, last_status="left"),
            "removed",
            False,
            "R-REMOVE",
            "not-a-member",
        ),
        (
            "lapse after the grace period",
            MembershipFacts(person="person:3", active=True),
            "lapsed",
            True,
            "R-TERM-2",
            "end",
        ),
    ],
)
def test_R_LEAVE_check_ending(case, facts, ending, allowed, ruling, code):
    decision = check_ending(facts, ending=ending)
    assert (decision.allowed, decision.ruling, decision.code) == (allowed, ruling, code), case


def test_R_LEAVE_refusal_names_the_person():
    decision = check_ending(MembershipFacts(person="person:9", active=False), ending="left")
    assert decision.reason == "person:9 is not an active member"


@pytest.mark.parametrize(
    ("ending", "waiting", "ruling", "reason"),
    [
        ("left", (), "R-LEAVE", "membership left"),
        ("removed", (), "R-REMOVE", "membership removed"),
        (
            "lapsed",
            ("discourse", "discord"),
            "R-ADMIN-4",
            "membership lapsed; admin revocation waits on discourse, discord",
        ),
    ],
)
def test_R_ADMIN_4_ended_records_a_waiting_revocation(ending, waiting, ruling, reason):
    decision = ended(ending=ending, waiting=waiting)
    assert (decision.allowed, decision.ruling, decision.reason) == (True, ruling, reason)


def test_R_LEAVE_reason_is_kept_short():
    assert leave_reason(None) == ""
    assert leave_reason("moving on") == "moving on"
    assert len(leave_reason("x" * 1000)) == LEAVE_REASON_CHARS


@pytest.mark.parametrize(
    ("case", "proposal", "allowed", "code"),
    [
        (
            "a voter proposes another member",
            RemovalProposal(proposer_votes=True, subject_active=True, own_removal=False),
            True,
            "open",
        ),
        (
            "not a voter",
            RemovalProposal(proposer_votes=False, subject_active=True, own_removal=False),
            False,
            "proposer-not-voting",
        ),
        (
            "subject not a member",
            RemovalProposal(proposer_votes=True, subject_active=False, own_removal=False),
            False,
            "subject-not-member",
        ),
        (
            "own removal: leave instead",
            RemovalProposal(proposer_votes=True, subject_active=True, own_removal=True),
            False,
            "own-removal",
        ),
        (
            "voter check comes first",
            RemovalProposal(proposer_votes=False, subject_active=False, own_removal=True),
            False,
            "proposer-not-voting",
        ),
    ],
)
def test_R_REMOVE_check_removal_proposal(case, proposal, allowed, code):
    decision = check_removal_proposal(proposal)
    assert (decision.allowed, decision.ruling, decision.code) == (allowed, "R-REMOVE", code), case


def test_R_REMOVE_opened_says_what_passes():
    assert removal_opened(needed=4, electorate=6).reason == ("opened; 4 yes of 6 needed, subject excluded")


@pytest.mark.parametrize(
    ("case", "request_", "allowed", "person"),
    [
        ("command by a member", OptInRequest(sent_by=5, sender_known=True), True, 5),
        ("command by a stranger", OptInRequest(sent_by=None, sender_known=True), False, None),
        ("web link (the page does not say who)", OptInRequest(link_for=5), True, 5),
        ("button pressed by the member", OptInRequest(link_for=5, sent_by=5, sender_known=True), True, 5),
        ("button pressed by another member", OptInRequest(link_for=5, sent_by=6, sender_known=True), False, None),
        ("button pressed by a stranger", OptInRequest(link_for=5, sender_known=True), False, None),
    ],
)
def test_R_TERM_2_check_opt_in_sender(case, request_, allowed, person):
    decision = check_opt_in_sender(request_)
    assert decision.allowed is allowed and decision.ruling == "R-TERM-2", case
    assert decision.evidence.get("person") == person


@pytest.mark.parametrize(
    ("case", "start", "at", "allowed", "code"),
    [
        ("not a member", None, START, False, "not-a-member"),
        ("in the window", START, START + timedelta(days=350), True, "renew"),
        ("before the window", START, START + timedelta(days=100), False, "closed"),
        ("after the grace period", START, START + timedelta(days=400), False, "closed"),
        (
            "opted in already: the coming term",
            START + timedelta(days=365),
            START + timedelta(days=360),
            True,
            "already",
        ),
    ],
)
def test_R_TERM_2_decide_opt_in(charter, case, start, at, allowed, code):
    decision = decide_opt_in(start, at=at, charter=charter)
    assert (decision.allowed, decision.ruling, decision.code) == (allowed, "R-TERM-2", code), case


@pytest.mark.parametrize(
    ("case", "renewed", "at", "allowed", "code"),
    [
        # An opt-in during the grace period started the new term at the old end (in the past):
        # opting in again in that grace period is "already", not "opt-in opens in a year".
        ("again in the grace period", True, END + timedelta(days=5), True, "already"),
        ("again on the grace period's last day", True, END + timedelta(days=7), True, "already"),
        ("a week after the grace period", True, END + timedelta(days=14), False, "closed"),
        # A first term (approval) started at END: not an opt-in, nothing was renewed.
        ("a term started by approval", False, END + timedelta(days=5), False, "closed"),
    ],
)
def test_R_TERM_2_opt_in_again_after_renewing_in_the_grace_period(charter, case, renewed, at, allowed, code):
    decision = decide_opt_in(END, at=at, charter=charter, renewed=renewed)
    assert (decision.allowed, decision.ruling, decision.code) == (allowed, "R-TERM-2", code), case


def test_R_TERM_1_and_2_term_started():
    end = START + timedelta(days=365)
    assert term_started(start=START, end=end, first=True).ruling == "R-TERM-1"
    renewed = term_started(start=START, end=end, first=False)
    assert (renewed.ruling, renewed.reason) == ("R-TERM-2", "new term 2025-03-01 to 2026-03-01")


@pytest.mark.parametrize(
    ("case", "person", "allowed", "code", "reason"),
    [
        ("an account mapped to a person", "person:3", True, "known", "person:3 asks to leave"),
        ("an account mapped to nobody", None, False, "not-a-member", "this account is not a working group member's"),
    ],
)
def test_R_LEAVE_check_leaver(case, person, allowed, code, reason):
    decision = check_leaver(person=person)
    assert (decision.allowed, decision.ruling, decision.code, decision.reason) == (allowed, "R-LEAVE", code, reason)
