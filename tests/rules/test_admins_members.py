"""R-ADMIN-2 counts WG members only; R-ADMIN-4 ends a membership's roles (admin waits when the
platform would be left short; moderator stays, R-MOD). Table tests, one row per reading."""

from __future__ import annotations

import pytest

from rules import (
    Assignment,
    admin_revocation,
    check_admins,
    count_admins,
    end_of_membership,
    evaluate_case,
    plan_roles,
    short_if_gone,
)

PLATFORMS = ["discourse", "discord"]
MEMBERS = ["ash", "birch", "cedar", "dogwood", "elm"]
SYSTEM = "discourse:system"


# (id, admins, members, platform accounts, counted per platform, not counted, R-ADMIN-2 broken on)
COUNT_CASES = [
    (
        "members count",
        {"discourse": ["ash", "birch"], "discord": ["cedar", "dogwood"]},
        MEMBERS,
        [],
        {"discourse": 2, "discord": 2},
        {},
        [],
    ),
    (
        "system does not count",
        {"discourse": ["ash", SYSTEM], "discord": ["cedar", "dogwood"]},
        MEMBERS,
        [SYSTEM],
        {"discourse": 1, "discord": 2},
        {"discourse": {SYSTEM: "platform account"}},
        ["discourse"],
    ),
    (
        "non-member does not count",
        {"discourse": ["ash", "oak"], "discord": ["cedar", "dogwood"]},
        MEMBERS,
        [],
        {"discourse": 1, "discord": 2},
        {"discourse": {"oak": "not a WG member"}},
        ["discourse"],
    ),
    (
        "both left out, two members still count",
        {"discourse": ["ash", "birch", "oak", SYSTEM], "discord": ["cedar", "dogwood"]},
        MEMBERS,
        [SYSTEM],
        {"discourse": 2, "discord": 2},
        {"discourse": {SYSTEM: "platform account", "oak": "not a WG member"}},
        [],
    ),
    (
        "roster unknown: everyone but platform accounts counts",
        {"discourse": ["ash", "oak", SYSTEM], "discord": ["cedar", "dogwood"]},
        None,
        [SYSTEM],
        {"discourse": 2, "discord": 2},
        {"discourse": {SYSTEM: "platform account"}},
        [],
    ),
    (
        "a bot on Discord does not count",
        {"discourse": ["ash", "birch"], "discord": ["cedar", "discord:helperbot"]},
        MEMBERS,
        ["discord:helperbot"],
        {"discourse": 2, "discord": 1},
        {"discord": {"discord:helperbot": "platform account"}},
        ["discord"],
    ),
]


@pytest.mark.parametrize(
    "admins, members, accounts, counted, not_counted, short",
    [c[1:] for c in COUNT_CASES],
    ids=[c[0] for c in COUNT_CASES],
)
def test_R_ADMIN_2_counts_wg_members_only(admins, members, accounts, counted, not_counted, short, charter):
    counts = count_admins(admins, members=members, platform_accounts=accounts, platforms=PLATFORMS, charter=charter)
    assert {p: c.count for p, c in counts.items()} == counted
    assert {p: dict(c.not_counted) for p, c in counts.items() if c.not_counted} == not_counted
    d = check_admins(admins, members=members, platform_accounts=accounts, platforms=PLATFORMS, charter=charter)
    assert [v.subject for v in d.violations if v.ruling == "R-ADMIN-2"] == short
    assert d.allowed is (not short)


def test_R_ADMIN_2_line_says_who_counts_and_who_does_not(charter):
    counts = count_admins(
        {"discourse": ["ash", "birch", "oak", SYSTEM]},
        members=MEMBERS,
        platform_accounts=[SYSTEM],
        platforms=["discourse"],
        charter=charter,
    )
    assert counts["discourse"].line() == (
        "Forum: 2 admins count (ash, birch); not counted: discourse:system (platform account), oak (not a WG member)"
    )


def test_R_ADMIN_2_plan_refuses_a_revocation_that_leaves_system_as_second_admin(charter):
    def a(p, who):
        return Assignment(platform=p, role="admin", person=who)

    observed = {
        a("discourse", "ash"),
        a("discourse", "birch"),
        a("discourse", SYSTEM),
        a("discord", "cedar"),
        a("discord", "dogwood"),
    }
    plan = plan_roles(
        observed - {a("discourse", "birch")}, observed, charter=charter, members=MEMBERS, platform_accounts=[SYSTEM]
    )
    assert not plan.decision.allowed and plan.decision.ruling == "R-ADMIN-2"
    assert "not counted: discourse:system (platform account)" in plan.decision.reason
    # Granting admin to a non-member does not make a short platform "worse": not refused.
    short = {a("discourse", "ash"), a("discord", "cedar"), a("discord", "dogwood")}
    assert plan_roles(short | {a("discourse", "oak")}, short, charter=charter, members=MEMBERS).decision.allowed


def test_R_ADMIN_2_what_if_shows_who_counts(charter):
    out = evaluate_case(
        {
            "case": "admins",
            "platforms": PLATFORMS,
            "admins": {"discourse": ["ash", "birch", "system", "oak"], "discord": ["cedar", "dogwood"]},
            "members": MEMBERS,
            "platform_accounts": ["system"],
        },
        charter=charter,
    )
    assert out["allowed"] is True
    assert out["lines"][0] == (
        "Forum: 2 admins count (ash, birch); not counted: system (platform account), oak (not a WG member)"
    )
    assert out["counts"]["discourse"]["not_counted"] == [
        {"holder": "system", "why": "platform account"},
        {"holder": "oak", "why": "not a WG member"},
    ]
    short = evaluate_case(
        {
            "case": "admins",
            "platforms": PLATFORMS,
            "admins": {"discourse": ["ash", "system"], "discord": ["cedar", "dogwood"]},
            "members": MEMBERS,
            "platform_accounts": ["system"],
        },
        charter=charter,
    )
    assert short["allowed"] is False and short["violations"][0]["ruling"] == "R-ADMIN-2"


WG = {"discourse": ["group:working-group"], "discord": ["group:wg-member"]}
THREE = {"discourse": ["ash", "birch", "elm", SYSTEM], "discord": ["cedar", "dogwood"]}
TWO = {"discourse": ["ash", "birch", SYSTEM], "discord": ["cedar", "dogwood"]}

# (id, person, holds, admins, revoked, kept, waiting platforms)
END_CASES = [
    (
        "lapse of an admin where three count: admin and WG role go, moderator stays",
        "elm",
        {"discourse": ["admin", "moderator", "group:working-group"], "discord": ["group:wg-member"]},
        THREE,
        [("discord", "group:wg-member"), ("discourse", "admin"), ("discourse", "group:working-group")],
        [("discourse", "moderator")],
        [],
    ),
    (
        "leave that would leave one counted admin: admin waits",
        "birch",
        {"discourse": ["admin", "group:working-group"]},
        TWO,
        [("discourse", "group:working-group")],
        [],
        ["discourse"],
    ),
    (
        "system is no second admin: admin waits",
        "birch",
        {"discourse": ["admin"]},
        {"discourse": ["birch", "ash", SYSTEM]},
        [],
        [],
        ["discourse"],
    ),
    (
        "non-member member's roles: other groups stay (R-MOD)",
        "ash",
        {"discourse": ["group:translators", "group:working-group"]},
        TWO,
        [("discourse", "group:working-group")],
        [("discourse", "group:translators")],
        [],
    ),
    ("no roles: nothing to do", "ash", {}, TWO, [], [], []),
]


@pytest.mark.parametrize(
    "person, holds, admins, revoked, kept, waiting", [c[1:] for c in END_CASES], ids=[c[0] for c in END_CASES]
)
def test_R_ADMIN_4_ending_a_membership(person, holds, admins, revoked, kept, waiting, charter):
    end = end_of_membership(
        person,
        holds=holds,
        membership_roles=WG,
        admins=admins,
        members=MEMBERS,
        platform_accounts=[SYSTEM],
        charter=charter,
    )
    assert sorted(end.revoke) == sorted(revoked)
    assert sorted(end.keep) == sorted(kept)
    assert [c.platform for c in end.waiting] == waiting
    assert end.decision.ruling == "R-ADMIN-4"
    if waiting:
        assert "the Forum needs a new admin" in end.decision.reason


def test_R_ADMIN_4_revocation_waits_until_a_second_counted_admin(charter):
    waits = admin_revocation(
        "birch",
        platform="discourse",
        admins=TWO,
        members=["ash", "cedar", "dogwood"],
        platform_accounts=[SYSTEM],
        charter=charter,
    )
    assert not waits.allowed and waits.ruling == "R-ADMIN-4"
    assert waits.evidence["count"].counted == ("ash",)
    # A non-member appointed does not end the wait; a member does.
    later = {**TWO, "discourse": TWO["discourse"] + ["oak"]}
    assert not admin_revocation(
        "birch",
        platform="discourse",
        admins=later,
        members=["ash", "cedar"],
        platform_accounts=[SYSTEM],
        charter=charter,
    ).allowed
    later = {**TWO, "discourse": TWO["discourse"] + ["fir"]}
    assert admin_revocation(
        "birch", platform="discourse", admins=later, members=["ash", "fir"], platform_accounts=[SYSTEM], charter=charter
    ).allowed


def test_R_ADMIN_4_advance_warning_names_the_short_platform(charter):
    short = short_if_gone("birch", admins=TWO, members=MEMBERS, platform_accounts=[SYSTEM], charter=charter)
    assert [c.platform for c in short] == ["discourse"] and short[0].counted == ("ash",)
    assert short_if_gone("elm", admins=THREE, members=MEMBERS, platform_accounts=[SYSTEM], charter=charter) == []
    assert short_if_gone("oak", admins=TWO, members=MEMBERS, charter=charter) == []


def test_R_ADMIN_4_a_retiring_platform_needs_no_new_admin(charter):
    # R-PLATFORM: Discord is retiring (a migration), so R-ADMIN-2 judges the Forum only: a
    # lapsing admin's Discord admin is revoked, not kept waiting for an appointment there.
    in_force = charter.model_copy(update={"charter": charter.charter.model_copy(update={"platforms": ["discourse"]})})
    admins = {"discourse": ["ash", "birch", "elm"], "discord": ["elm", "cedar"]}
    end = end_of_membership(
        "elm",
        holds={"discord": ["admin"], "discourse": ["admin"]},
        membership_roles={},
        admins=admins,
        members=MEMBERS,
        charter=in_force,
    )
    assert sorted(end.revoke) == [("discord", "admin"), ("discourse", "admin")] and end.waiting == ()
    assert short_if_gone("cedar", admins=admins, members=MEMBERS, charter=in_force) == []
    # On an approved platform the revocation still waits.
    assert [c.platform for c in short_if_gone("cedar", admins=admins, members=MEMBERS, charter=charter)] == ["discord"]
