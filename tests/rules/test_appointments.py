"""rules/appointments.py: one case per ruling (R-ROLE-APPOINT checked against R-ROLE-*)."""

from __future__ import annotations

import pytest

from rules import WgRoles, default_charter
from rules.appointments import (
    check_appointment,
    check_ballot_proposer,
    check_ballot_role,
    check_nominee,
    recheck_pending,
    recorded_appointment,
    vacancies,
    vacancies_reported,
)

CHARTER = default_charter()
MEMBERS = {"avery_quill", "bram_tolliver", "cleo_marsh", "dario_fenwick"}
HOME = {"avery_quill": "discord", "bram_tolliver": "discord", "cleo_marsh": "discourse"}
BOARD = ("wren_halloway", "pella_marchetti")
SC = ("hana_pike",)
NOW = WgRoles(chair="avery_quill", coc_liaison="dario_fenwick")


def _check(role: str, nominee: str, current: WgRoles = NOW):
    return check_appointment(
        current,
        role=role,
        nominee=nominee,
        members=MEMBERS,
        home_platform=HOME,
        board_members=BOARD,
        steering_council=SC,
        charter=CHARTER,
    )


@pytest.mark.parametrize(
    ("role", "nominee", "allowed", "ruling", "warned"),
    [
        # R-ROLE-CHAIR: both chairs from Discord: a warning, not a refusal.
        ("co_chair", "bram_tolliver", True, "R-ROLE-APPOINT", ["R-ROLE-CHAIR"]),
        ("co_chair", "cleo_marsh", True, "R-ROLE-APPOINT", []),
        # R-ROLE-CHAIR: the Chair cannot also be Co-Chair (hard).
        ("co_chair", "avery_quill", False, "R-ROLE-CHAIR", []),
        # R-ROLE-BOARD: on the Board list, never the CoC Liaison.
        ("board_liaison", "wren_halloway", True, "R-ROLE-APPOINT", []),
        ("board_liaison", "cleo_marsh", False, "R-ROLE-BOARD", []),
        ("board_liaison", "dario_fenwick", False, "R-ROLE-BOARD", []),
        # R-ROLE-SC: on the Steering Council list.
        ("sc_liaison", "hana_pike", True, "R-ROLE-APPOINT", []),
        ("sc_liaison", "cleo_marsh", False, "R-ROLE-SC", []),
        # R-ROLE-APPOINT: Chair and Co-Chair are members; nobody takes a role they hold.
        ("co_chair", "wren_halloway", False, "R-ROLE-APPOINT", ["R-ROLE-CHAIR"]),  # no home known
        ("chair", "avery_quill", False, "R-ROLE-APPOINT", []),
    ],
)
def test_r_role_appoint_checks_against_r_role(role, nominee, allowed, ruling, warned):
    checked = _check(role, nominee)
    assert (checked.allowed, checked.ruling) == (allowed, ruling)
    assert [f.ruling for f in checked.warnings] == warned
    assert checked.explanation.startswith("Allowed" if allowed else f"Refused by {ruling}")
    if warned and allowed:
        assert "both come from discord" in checked.explanation


def test_r_role_board_coc_liaison_cannot_become_board_liaison_holder():
    # The CoC WG naming the sitting Board Liaison as its Liaison is refused too.
    checked = _check("coc_liaison", "wren_halloway", WgRoles(board_liaison="wren_halloway"))
    assert not checked.allowed and checked.ruling == "R-ROLE-BOARD"


def test_r_role_appoint_an_older_problem_elsewhere_does_not_block():
    # The Board Liaison left the Board list since; appointing a Co-Chair is still judged alone.
    current = WgRoles(chair="avery_quill", board_liaison="cleo_marsh")
    checked = _check("co_chair", "cleo_marsh", current)
    assert checked.allowed and not checked.violations


def test_r_role_appoint_vacancies():
    found = vacancies(WgRoles(chair="avery_quill", coc_liaison="dario_fenwick"))
    assert [v.role for v in found] == ["co_chair", "board_liaison", "sc_liaison"]
    assert found[-1].optional and "optional" in found[-1].line
    assert "a WG ballot" in found[0].line


@pytest.mark.parametrize(
    ("known", "allowed", "code"),
    [(True, True, "known"), (False, False, "unknown")],
)
def test_r_role_appoint_nominee_is_a_person_in_the_ledger(known, allowed, code):
    decision = check_nominee("wren_halloway", known=known)
    assert (decision.allowed, decision.ruling, decision.code) == (allowed, "R-ROLE-APPOINT", code)
    if not allowed:
        assert decision.reason.startswith("'wren_halloway' is not a person in the ledger")


@pytest.mark.parametrize(
    ("voting", "allowed", "code"),
    [(True, True, "proposed"), (False, False, "not-voting")],
)
def test_r_role_appoint_only_a_voting_member_proposes(voting, allowed, code):
    decision = check_ballot_proposer("bram_tolliver", voting=voting)
    assert (decision.allowed, decision.ruling, decision.code) == (allowed, "R-ROLE-APPOINT", code)
    if not allowed:
        assert decision.reason == (
            "bram_tolliver is not a voting member: only a voting member may propose a Chair or Co-Chair"
        )


def test_r_role_appoint_recheck_pending():
    # Recorded before a crash: the nominee holds the role, so "already holds" is not a refusal.
    held = _check("chair", "avery_quill")
    assert not held.allowed
    again = recheck_pending(held, nominee_holds_role=True)
    assert (again.allowed, again.ruling, again.violations) == (True, "R-ROLE-APPOINT", ())
    # Otherwise the check stands as it is.
    assert recheck_pending(held, nominee_holds_role=False) is held
    fresh = _check("co_chair", "cleo_marsh")
    assert recheck_pending(fresh, nominee_holds_role=False) is fresh


@pytest.mark.parametrize(
    ("status", "ruling", "warnings", "allowed", "cited", "warned"),
    [
        ("refused", "R-ROLE-BOARD", [], False, "R-ROLE-BOARD", []),
        ("refused", None, [], False, "R-ROLE-APPOINT", []),
        ("appointed", None, ["R-ROLE-CHAIR"], True, "R-ROLE-APPOINT", ["R-ROLE-CHAIR"]),
        ("rejected", None, [], True, "R-ROLE-APPOINT", []),
    ],
)
def test_r_role_appoint_recorded_appointment(status, ruling, warnings, allowed, cited, warned):
    checked = recorded_appointment(
        role="co_chair", nominee="cleo_marsh", status=status, ruling=ruling, warnings=warnings
    )
    assert (checked.allowed, checked.ruling) == (allowed, cited)
    assert [f.ruling for f in checked.warnings] == warned
    assert [f.ruling for f in checked.violations] == ([] if allowed else [cited])


def test_r_role_appoint_vacancies_reported():
    decision = vacancies_reported(vacancies(WgRoles(chair="avery_quill")))
    assert (decision.allowed, decision.ruling) == (True, "R-ROLE-APPOINT")
    assert decision.reason == "4 role(s) vacant, reported to the WG"


@pytest.mark.parametrize(
    ("role", "allowed", "code"),
    [
        ("chair", True, "by-ballot"),
        ("co_chair", True, "by-ballot"),
        ("coc_liaison", False, "not-by-ballot"),
        ("board_liaison", False, "not-by-ballot"),
        ("sc_liaison", False, "not-by-ballot"),
        ("treasurer", False, "not-by-ballot"),
    ],
)
def test_r_role_appoint_a_ballot_fills_the_chairs_only(role, allowed, code):
    decision = check_ballot_role(role)
    assert (decision.allowed, decision.ruling, decision.code) == (allowed, "R-ROLE-APPOINT", code)
