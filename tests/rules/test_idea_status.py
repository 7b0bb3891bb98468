"""R-IDEA-1 for a status request (rules/ideas.py ``decide_status_change``): one row per outcome."""

from __future__ import annotations

import pytest

from rules.ideas import StatusRequest, decide_status_change


@pytest.mark.parametrize(
    ("case", "request_", "allowed", "code"),
    [
        ("a member triages a new idea", StatusRequest(member=True, current="new", new="triaged"), True, "change"),
        ("not a member", StatusRequest(member=False, current="new", new="triaged"), False, "not-a-member"),
        (
            "membership is checked before the idea",
            StatusRequest(member=False, current=None, new="bogus"),
            False,
            "not-a-member",
        ),
        ("no such idea", StatusRequest(member=True, current=None, new="triaged"), False, "no-such-idea"),
        ("unknown status", StatusRequest(member=True, current="new", new="shelved"), False, "unknown-status"),
        ("no status given", StatusRequest(member=True, current="new", new=""), False, "unknown-status"),
        ("already there", StatusRequest(member=True, current="triaged", new="triaged"), True, "unchanged"),
        (
            "a move the charter does not allow",
            StatusRequest(member=True, current="new", new="done"),
            False,
            "transition",
        ),
        ("a final status stays", StatusRequest(member=True, current="done", new="new"), False, "transition"),
    ],
)
def test_R_IDEA_1_decide_status_change(charter, case, request_, allowed, code):
    decision = decide_status_change(request_, charter=charter)
    assert (decision.allowed, decision.ruling, decision.code) == (allowed, "R-IDEA-1", code), case


def test_R_IDEA_1_refused_move_names_the_allowed_ones(charter):
    decision = decide_status_change(StatusRequest(member=True, current="new", new="done"), charter=charter)
    assert decision.reason.startswith("an idea cannot go from new to done; from new it may go to")
