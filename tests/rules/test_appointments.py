"""rules/appointments.py: one case per ruling (R-ROLE-APPOINT checked against R-ROLE-*)."""

from __future__ import annotations

import pytest

from rules import WgRoles, default_charter
from rules.appointments import check_appointment, vacancies

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
