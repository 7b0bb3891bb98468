"""R-ROLE-*, R-ADMIN-1/2/3, R-BOARD / R-DIRECT and R-IDEA-1."""

from __future__ import annotations

import pytest

from rules import WgRoles, check_admin_change, check_admins, check_idea_transition, check_roles, needs_board
from rules.board import BoardAttempt, board_decided, check_board_decision, endorsement_opened, escalated, not_on_board

HOME = {"ash": "discord", "birch": "discourse", "cedar": "discord", "dogwood": "discourse"}
BOARD = ["dogwood", "elm"]
SC = ["fir"]


def roles(charter, **kw):
    return check_roles(WgRoles(**kw), home_platform=HOME, board_members=BOARD, steering_council=SC, charter=charter)


def rulings(findings):
    return [f.ruling for f in findings]


def test_R_ROLE_CHAIR_separate_platforms_is_fine(charter):
    d = roles(charter, chair="ash", co_chair="birch")
    assert d.allowed and not d.warnings


def test_R_ROLE_CHAIR_same_platform_is_a_warning_not_a_refusal(charter):
    d = roles(charter, chair="ash", co_chair="cedar")
    assert d.allowed and rulings(d.warnings) == ["R-ROLE-CHAIR"] and not d.violations


def test_R_ROLE_CHAIR_unknown_home_platform_warns(charter):
    d = roles(charter, chair="ash", co_chair="zinnia")
    assert d.allowed and d.warnings[0].subject == "zinnia"


def test_R_ROLE_CHAIR_charter_may_make_it_a_refusal(charter):
    strict = charter.model_copy(
        update={"roles": charter.roles.model_copy(update={"chair_cochair_separate_platforms": "refuse"})}
    )
    d = roles(strict, chair="ash", co_chair="cedar")
    assert not d.allowed and rulings(d.violations) == ["R-ROLE-CHAIR"]


def test_R_ROLE_CHAIR_one_person_cannot_hold_both(charter):
    d = roles(charter, chair="ash", co_chair="ash")
    assert not d.allowed and rulings(d.violations) == ["R-ROLE-CHAIR"]


@pytest.mark.parametrize(
    "kw,allowed,violations",
    [
        ({"board_liaison": "dogwood"}, True, []),
        ({"board_liaison": "ash"}, False, ["R-ROLE-BOARD"]),  # not on the Board
        ({"board_liaison": "dogwood", "coc_liaison": "dogwood"}, False, ["R-ROLE-BOARD"]),
        ({"board_liaison": "ash", "coc_liaison": "ash"}, False, ["R-ROLE-BOARD", "R-ROLE-BOARD"]),
        ({"chair": "dogwood", "board_liaison": "dogwood"}, True, []),  # may be the Chair
        ({"co_chair": "dogwood", "board_liaison": "dogwood"}, True, []),  # or the Co-Chair
    ],
    ids=[
        "board-member-ok",
        "not-board-member",
        "also-coc-liaison",
        "both-wrong",
        "chair-may-be-board-liaison",
        "cochair-may-be-board-liaison",
    ],
)
def test_R_ROLE_BOARD(kw, allowed, violations, charter):
    kw = {"chair": "ash", **kw}
    d = roles(charter, **kw)
    assert d.allowed is allowed and rulings(d.violations) == violations


@pytest.mark.parametrize("who,allowed", [("fir", True), ("ash", False), (None, True)])
def test_R_ROLE_SC(who, allowed, charter):
    d = roles(charter, chair="fir", sc_liaison=who)
    assert d.allowed is allowed
    if not allowed:
        assert rulings(d.violations) == ["R-ROLE-SC"]


def test_R_ROLE_COC_liaison_is_recorded_as_given(charter):
    d = roles(charter, chair="ash", coc_liaison="gorse")
    assert d.allowed and d.evidence["roles"]["coc_liaison"] == "gorse"


PLATFORMS = ["discourse", "discord"]


@pytest.mark.parametrize(
    "admins,violations",
    [
        ({"discourse": ["ash", "birch"], "discord": ["cedar", "dogwood"]}, []),
        ({"discourse": ["ash", "birch"], "discord": ["ash", "cedar"]}, ["R-ADMIN-1"]),
        ({"discourse": ["ash"], "discord": ["cedar", "dogwood"]}, ["R-ADMIN-2"]),
        ({"discourse": [], "discord": ["cedar", "dogwood"]}, ["R-ADMIN-2"]),
        ({"discord": ["cedar", "dogwood"]}, ["R-ADMIN-2"]),
        ({"discourse": ["ash", "birch"], "discord": ["ash", "birch"]}, ["R-ADMIN-1", "R-ADMIN-1"]),
        ({"discourse": ["ash", "ash"], "discord": ["ash", "cedar"]}, ["R-ADMIN-2", "R-ADMIN-1"]),
    ],
    ids=[
        "ok",
        "admin-everywhere",
        "one-admin",
        "no-admin",
        "platform-missing",
        "two-admins-everywhere",
        "duplicate-handle-counts-once",
    ],
)
def test_R_ADMIN_1_and_2(admins, violations, charter):
    d = check_admins(admins, platforms=PLATFORMS, charter=charter)
    assert rulings(d.violations) == violations and d.allowed is (not violations)


def test_R_ADMIN_1_needs_two_platforms_to_apply(charter):
    d = check_admins({"discourse": ["ash", "birch"]}, platforms=["discourse"], charter=charter)
    assert d.allowed


def test_R_ADMIN_3_change_checked_on_resulting_state(charter):
    state = {"discourse": ["ash", "birch"], "discord": ["cedar", "dogwood"]}
    revoke = check_admin_change(state, platform="discord", person="cedar", grant=False, charter=charter)
    assert not revoke.allowed and revoke.ruling == "R-ADMIN-2"
    assert revoke.evidence["after"]["discord"] == ["dogwood"]
    grant = check_admin_change(state, platform="discord", person="ash", grant=True, charter=charter)
    assert not grant.allowed and grant.ruling == "R-ADMIN-1"
    ok = check_admin_change(state, platform="discord", person="elm", grant=True, charter=charter)
    assert ok.allowed and ok.ruling == "R-ADMIN-3"


def test_R_ADMIN_3_repairing_a_broken_state_is_allowed_but_worsening_is_not(charter):
    broken = {"discourse": ["ash"], "discord": ["cedar", "dogwood"]}
    repair = check_admin_change(broken, platform="discourse", person="birch", grant=True, charter=charter)
    assert repair.allowed
    worse = check_admin_change(broken, platform="discourse", person="ash", grant=False, charter=charter)
    assert not worse.allowed and worse.ruling == "R-ADMIN-2"


@pytest.mark.parametrize("kind", ["trial-platform", "migrate-platform", "retire-platform", "budget"])
def test_R_BOARD(kind, charter):
    d = needs_board(kind, charter=charter)
    assert (d.allowed, d.ruling) == (False, "R-BOARD")


@pytest.mark.parametrize("kind", ["moderator-change", "process", "training", "idea"])
def test_R_DIRECT(kind, charter):
    d = needs_board(kind, charter=charter)
    assert (d.allowed, d.ruling) == (True, "R-DIRECT")


def test_R_BOARD_unknown_kind_is_an_error(charter):
    with pytest.raises(ValueError, match="unknown proposal kind 'pizza'"):
        needs_board("pizza", charter=charter)


@pytest.mark.parametrize(
    "current,new,allowed",
    [
        ("new", "triaged", True),
        ("triaged", "duplicate", True),
        ("accepted", "in-progress", True),
        ("in-progress", "done", True),
        ("new", "done", False),
        ("done", "new", False),
        ("declined", "in-progress", False),
    ],
)
def test_R_IDEA_1_status_flow(current, new, allowed, charter):
    assert check_idea_transition(current, new, charter=charter).allowed is allowed


def test_R_IDEA_1_unknown_status(charter):
    with pytest.raises(ValueError, match="unknown idea status"):
        check_idea_transition("new", "shelved", charter=charter)


@pytest.mark.parametrize(
    ("case", "attempt", "code"),
    [
        (
            "a Board member decides an escalated proposal",
            BoardAttempt(proposal_status="escalated", on_board=True),
            "allowed",
        ),
        ("no such proposal", BoardAttempt(proposal_status=None, on_board=True), "unknown-proposal"),
        ("not on the Board list", BoardAttempt(proposal_status="escalated", on_board=False), "not-on-board-list"),
        (
            "another workspace",
            BoardAttempt(proposal_status="escalated", on_board=False, refused_code="other-workspace"),
            "other-workspace",
        ),
        ("decided already", BoardAttempt(proposal_status="decided", on_board=True), "already-decided"),
        ("not sent to the Board yet", BoardAttempt(proposal_status="endorsing", on_board=True), "not-escalated"),
        ("unknown before the Board list", BoardAttempt(proposal_status=None, on_board=False), "unknown-proposal"),
    ],
)
def test_R_BOARD_check_board_decision(case, attempt, code):
    decision = check_board_decision(attempt)
    assert (decision.ruling, decision.code, decision.allowed) == ("R-BOARD", code, code == "allowed"), case


def test_R_BOARD_records():
    assert not_on_board("other-workspace").reason == "the clicker is not on the Board list"
    assert board_decided("approved").reason == "the Board approved the proposal"
    assert not escalated("budget").allowed
    assert "proposal 7" in endorsement_opened(7).reason
