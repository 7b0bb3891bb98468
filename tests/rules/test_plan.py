"""Plan, then apply (DESIGN convention 9) with the R-ADMIN-3 guardrails."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from rules import Assignment, Change, default_charter, diff, plan_roles


def a(platform, role, person):
    return Assignment(platform=platform, role=role, person=person)


BASE = {
    a("discourse", "admin", "ash"),
    a("discourse", "admin", "birch"),
    a("discord", "admin", "cedar"),
    a("discord", "admin", "dogwood"),
    a("discord", "moderator", "elm"),
}


def test_diff_lists_grants_before_revokes(charter):
    desired = (BASE - {a("discord", "admin", "cedar")}) | {a("discord", "admin", "fir")}
    changes = diff(desired, BASE)
    assert changes == (
        Change(action="grant", platform="discord", role="admin", person="fir"),
        Change(action="revoke", platform="discord", role="admin", person="cedar"),
    )


def test_no_change_is_an_empty_allowed_plan(charter):
    plan = plan_roles(BASE, BASE, charter=charter)
    assert plan.changes == () and plan.decision.allowed


def test_R_ADMIN_3_swap_of_admins_is_allowed(charter):
    desired = (BASE - {a("discord", "admin", "cedar")}) | {a("discord", "admin", "fir")}
    assert plan_roles(desired, BASE, charter=charter).decision.allowed


def test_R_ADMIN_3_plan_breaking_R_ADMIN_2_is_refused_before_sending(charter):
    plan = plan_roles(BASE - {a("discord", "admin", "cedar")}, BASE, charter=charter)
    assert not plan.decision.allowed and plan.decision.ruling == "R-ADMIN-2"
    assert plan.decision.evidence["admins_after"]["discord"] == ["dogwood"]


def test_R_ADMIN_3_plan_breaking_R_ADMIN_1_is_refused(charter):
    plan = plan_roles(BASE | {a("discord", "admin", "ash")}, BASE, charter=charter)
    assert not plan.decision.allowed and plan.decision.ruling == "R-ADMIN-1"


def test_R_ADMIN_3_override_is_recorded_with_its_reason(charter):
    plan = plan_roles(
        BASE | {a("discord", "admin", "ash")}, BASE, charter=charter, override_reason="incident 7: temporary cover"
    )
    assert plan.decision.allowed and plan.decision.warnings[0].ruling == "R-ADMIN-1"
    assert plan.decision.evidence["override"] == "incident 7: temporary cover"


def test_R_ADMIN_3_too_many_removals_in_one_run(charter):
    mods = {a("discord", "moderator", f"m{i}") for i in range(7)}
    plan = plan_roles(BASE, BASE | mods, charter=charter)
    assert len(plan.revokes) == 7 and not plan.decision.allowed
    assert "at most 5 per run" in plan.decision.reason


def test_change_key_is_stable_and_names_the_decision():
    change = Change(action="grant", platform="discord", role="moderator", person="elm")
    assert change.key("d-42") == "grant:discord:elm:moderator:d-42"


ASSIGNMENTS = st.builds(
    a,
    st.sampled_from(["discourse", "discord"]),
    st.sampled_from(["admin", "moderator", "wg-member"]),
    st.sampled_from(["ash", "birch", "cedar", "dogwood", "elm"]),
)


@settings(max_examples=200, deadline=None)
@given(st.sets(ASSIGNMENTS), st.sets(ASSIGNMENTS))
def test_applying_the_plan_reaches_the_desired_state(desired, observed):
    state = set(observed)
    for change in diff(desired, observed):
        item = a(change.platform, change.role, change.person)
        assert (item in state) == (change.action == "revoke")  # never a no-op change
        (state.add if change.action == "grant" else state.discard)(item)
    assert state == desired
    assert diff(desired, state) == ()


@settings(max_examples=200, deadline=None)
@given(st.sets(ASSIGNMENTS))
def test_a_valid_state_never_refuses_its_own_repair_plan(observed):
    charter = default_charter()
    plan = plan_roles(BASE, observed, charter=charter)
    if len(plan.revokes) <= charter.admins.max_removals_per_run:
        assert plan.decision.allowed


# --------------------------------------------------------------------------------------------
# Table-driven: plans checked on the resulting state, with two platforms and with three.

import pytest  # noqa: E402 - the table-driven half of the file

TWO = ("discourse", "discord")
THREE = ("discourse", "discord", "slack")


def state(admins: dict[str, list[str]]) -> set[Assignment]:
    return {a(p, "admin", who) for p, people in admins.items() for who in people}


CASES = [
    # (id, platforms, observed admins, desired admins, override, allowed, ruling)
    (
        "two: swap keeps two admins",
        TWO,
        {"discourse": ["ash", "birch"], "discord": ["cedar", "dogwood"]},
        {"discourse": ["ash", "birch"], "discord": ["cedar", "elm"]},
        None,
        True,
        "R-ADMIN-3",
    ),
    (
        "two: last but one admin removed",
        TWO,
        {"discourse": ["ash", "birch"], "discord": ["cedar", "dogwood"]},
        {"discourse": ["ash", "birch"], "discord": ["cedar"]},
        None,
        False,
        "R-ADMIN-2",
    ),
    (
        "two: one person admin everywhere",
        TWO,
        {"discourse": ["ash", "birch"], "discord": ["cedar", "dogwood"]},
        {"discourse": ["ash", "birch"], "discord": ["ash", "cedar", "dogwood"]},
        None,
        False,
        "R-ADMIN-1",
    ),
    (
        "two: override with a recorded reason",
        TWO,
        {"discourse": ["ash", "birch"], "discord": ["cedar", "dogwood"]},
        {"discourse": ["ash", "birch"], "discord": ["cedar"]},
        "dogwood leaves today; vote next week",
        True,
        "R-ADMIN-3",
    ),
    (
        "three: admin on two of three platforms is fine",
        THREE,
        {"discourse": ["ash", "birch"], "discord": ["cedar", "dogwood"], "slack": ["elm", "fir"]},
        {"discourse": ["ash", "birch"], "discord": ["ash", "cedar", "dogwood"], "slack": ["elm", "fir"]},
        None,
        True,
        "R-ADMIN-3",
    ),
    (
        "three: one person admin on all three",
        THREE,
        {"discourse": ["ash", "birch"], "discord": ["ash", "cedar"], "slack": ["elm", "fir"]},
        {"discourse": ["ash", "birch"], "discord": ["ash", "cedar"], "slack": ["ash", "elm", "fir"]},
        None,
        False,
        "R-ADMIN-1",
    ),
    (
        "three: last but one admin removed on the third",
        THREE,
        {"discourse": ["ash", "birch"], "discord": ["cedar", "dogwood"], "slack": ["elm", "fir"]},
        {"discourse": ["ash", "birch"], "discord": ["cedar", "dogwood"], "slack": ["fir"]},
        None,
        False,
        "R-ADMIN-2",
    ),
    (
        "three: repairing a broken platform is allowed",
        THREE,
        {"discourse": ["ash", "birch"], "discord": ["cedar", "dogwood"], "slack": ["elm"]},
        {"discourse": ["ash", "birch"], "discord": ["cedar", "dogwood"], "slack": ["elm", "fir"]},
        None,
        True,
        "R-ADMIN-3",
    ),
]


@pytest.mark.parametrize(
    "platforms, observed, desired, override, allowed, ruling", [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_R_ADMIN_table(platforms, observed, desired, override, allowed, ruling, charter):
    info = charter.charter.model_copy(update={"platforms": list(platforms)})
    local = charter.model_copy(update={"charter": info})
    assert local.platforms == platforms
    plan = plan_roles(state(desired), state(observed), charter=local, override_reason=override)
    assert plan.decision.allowed is allowed, plan.decision.reason
    assert plan.decision.ruling == ruling
    if override:
        assert plan.decision.evidence["override"] == override
        assert plan.decision.warnings and plan.decision.warnings[0].ruling == "R-ADMIN-2"
    if not allowed:  # the refusal shows the state it is about
        after = plan.decision.evidence["admins_after"]
        assert after == {p: sorted(v) for p, v in desired.items() if v}
