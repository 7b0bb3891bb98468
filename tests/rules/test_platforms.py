"""R-PLATFORM: the approved platforms as data, one table per decision (rules/platforms.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from rules import check_admins
from rules.platforms import (
    APPROVED,
    RETIRING,
    TRIAL,
    PlatformState,
    Transition,
    admin_platforms,
    check_name,
    check_served,
    decide_migration,
    decide_proposal,
    decide_retirement,
    decide_trial,
    may_retire,
    seed,
    trials_ended,
)
from tests.support.rules import NOW


def states(**kw: str | tuple) -> dict[str, PlatformState]:
    """``discourse="approved", matrix=("trial", ends, first_admin)``."""
    out = {}
    for name, value in kw.items():
        state, ends, first = (value, None, None) if isinstance(value, str) else value
        out[name] = PlatformState(platform=name, state=state, trial_ends_at=ends, first_admin_at=first)
    return out


TODAY = states(discourse=APPROVED, discord=APPROVED)


def test_R_PLATFORM_seed_is_the_charter_files_list(charter):
    assert seed(charter.platforms) == TODAY


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("matrix", "matrix"),
        (" Matrix ", "matrix"),
        ("zulip-2", "zulip-2"),
        ("m", None),
        ("2chat", None),
        ("matrix chat", None),
        ("x" * 25, None),
        ("", None),
    ],
)
def test_R_PLATFORM_platform_names(name, ok):
    if ok is None:
        with pytest.raises(ValueError, match="not a platform name"):
            check_name(name)
    else:
        assert check_name(name) == ok


# --- trials ----------------------------------------------------------------------------------


def test_R_PLATFORM_trial_default_end_is_the_charters(charter):
    d = decide_trial(TODAY, platform="matrix", now=NOW, charter=charter)
    assert d.allowed and d.ruling == "R-PLATFORM"
    assert d.evidence["changes"] == [Transition(platform="matrix", state=TRIAL, trial_ends_at=NOW + timedelta(days=90))]


def test_R_PLATFORM_trial_end_from_the_proposal(charter):
    end = NOW + timedelta(days=30)
    d = decide_trial(TODAY, platform="matrix", now=NOW, ends_at=end, charter=charter)
    assert d.allowed and d.evidence["changes"][0].trial_ends_at == end
    assert "starts a trial until" in d.reason


@pytest.mark.parametrize(
    ("current", "ends_in", "why"),
    [
        (APPROVED, None, "discord is approved"),
        (RETIRING, None, "discord is retiring"),
        (None, -1, "is not after now"),
        (None, 400, "more than 365 days away"),
    ],
)
def test_R_PLATFORM_trial_refused(charter, current, ends_in, why):
    world = dict(TODAY)
    if current is None:
        world.pop("discord")
    else:
        world["discord"] = PlatformState(platform="discord", state=current)
    end = NOW + timedelta(days=ends_in) if ends_in is not None else None
    d = decide_trial(world, platform="discord", now=NOW, ends_at=end, charter=charter)
    assert not d.allowed and d.ruling == "R-PLATFORM" and why in d.reason
    assert d.evidence["field"] == ("platform" if current else "trial_ends")


def test_R_PLATFORM_keep_trialling_extends_the_end_date(charter):
    old_end = NOW + timedelta(days=2)
    world = {**TODAY, **states(matrix=(TRIAL, old_end, None))}
    d = decide_trial(world, platform="matrix", now=NOW, charter=charter)
    assert d.allowed and "keeps trialling" in d.reason
    assert d.evidence["changes"][0].trial_ends_at == old_end + timedelta(days=90)
    earlier = decide_trial(world, platform="matrix", now=NOW, ends_at=old_end, charter=charter)
    assert not earlier.allowed and "current end" in earlier.reason


def test_R_PLATFORM_keep_trialling_after_a_long_ended_trial_is_not_refused(charter):
    # The trial ended 100 days ago (the Board decided late): 90 days after the old end is in
    # the past, so the Board-approved extension runs 90 days from now instead of being refused.
    world = {**TODAY, **states(matrix=(TRIAL, NOW - timedelta(days=100), NOW - timedelta(days=150)))}
    d = decide_trial(world, platform="matrix", now=NOW, charter=charter)
    assert d.allowed and d.evidence["changes"][0].trial_ends_at == NOW + timedelta(days=90)


# --- migration and retirement ----------------------------------------------------------------


def test_R_PLATFORM_migration_approves_the_new_and_retires_the_old():
    world = {**TODAY, **states(matrix=(TRIAL, NOW, NOW))}
    d = decide_migration(world, platform="matrix", replaces="discord")
    assert d.allowed and d.evidence["changes"] == [
        Transition(platform="matrix", state=APPROVED),
        Transition(platform="discord", state=RETIRING),
    ]


@pytest.mark.parametrize(
    ("platform", "replaces", "why"),
    [
        ("matrix", "matrix", "replaces itself"),
        ("matrix", "irc", "irc is not a platform in use"),
        ("discourse", "discord", "discourse is approved"),
    ],
)
def test_R_PLATFORM_migration_refused(platform, replaces, why):
    d = decide_migration(TODAY, platform=platform, replaces=replaces)
    assert not d.allowed and d.ruling == "R-PLATFORM" and why in d.reason
    assert d.evidence["field"] == ("platform" if platform == "discourse" else "replaces")


def test_R_PLATFORM_retirement_marks_retiring():
    d = decide_retirement(TODAY, platform="discord")
    assert d.allowed and d.evidence["changes"] == [Transition(platform="discord", state=RETIRING)]


@pytest.mark.parametrize(
    ("world", "platform", "why"),
    [
        (TODAY, "myspace", "myspace is not a platform in use"),
        (states(discourse=APPROVED, discord="retired"), "discord", "not a platform in use"),
        (states(discourse=APPROVED, discord=RETIRING), "discourse", "last approved platform"),
        (states(discourse=APPROVED, matrix=TRIAL), "discourse", "last approved platform"),
    ],
)
def test_R_PLATFORM_retirement_refused(world, platform, why):
    d = decide_retirement(world, platform=platform)
    assert not d.allowed and d.ruling == "R-PLATFORM" and why in d.reason


def test_R_PLATFORM_a_trial_beside_the_last_approved_may_retire():
    d = decide_retirement(states(discourse=APPROVED, matrix=TRIAL), platform="matrix")
    assert d.allowed


def test_R_PLATFORM_decide_proposal_needs_its_names(charter):
    with pytest.raises(ValueError, match="names its platform"):
        decide_proposal(TODAY, kind="retire-platform", platform=None, now=NOW, charter=charter)
    with pytest.raises(ValueError, match="replaces"):
        decide_proposal(TODAY, kind="migrate-platform", platform="matrix", now=NOW, charter=charter)
    with pytest.raises(ValueError, match="not a platform proposal"):
        decide_proposal(TODAY, kind="budget", platform="matrix", now=NOW, charter=charter)


@pytest.mark.parametrize(
    ("state", "left", "unreachable", "allowed"),
    [
        (RETIRING, 0, False, True),
        (RETIRING, 2, False, False),
        (RETIRING, 1, True, False),
        (RETIRING, 0, True, True),
        (APPROVED, 0, False, False),
    ],
)
def test_R_PLATFORM_retired_only_after_its_roles_are_revoked(state, left, unreachable, allowed):
    d = may_retire(PlatformState(platform="discord", state=state), managed_roles_left=left, unreachable=unreachable)
    assert d.allowed is allowed and d.ruling == "R-PLATFORM"


# --- which platforms the admin invariants judge ----------------------------------------------


def test_R_PLATFORM_trial_counts_for_R_ADMIN_from_its_first_admin_grant():
    granted = NOW - timedelta(days=1)
    world = {
        **TODAY,
        **states(
            matrix=(TRIAL, NOW + timedelta(days=60), granted),
            zulip=(TRIAL, NOW + timedelta(days=60), None),
            irc=RETIRING,
        ),
    }
    assert admin_platforms(world, at=NOW) == ("discourse", "discord", "matrix")
    assert admin_platforms(world, at=granted - timedelta(seconds=1)) == ("discourse", "discord")


def test_R_ADMIN_1_over_three_platforms_once_the_trial_counts(charter):
    world = {**TODAY, **states(matrix=(TRIAL, NOW + timedelta(days=60), NOW))}
    admins = {"discourse": ["ash", "birch"], "discord": ["ash", "cedar"], "matrix": ["birch", "cedar"]}
    assert (
        check_admins(admins, platforms=admin_platforms(TODAY, at=NOW), charter=charter).ruling == "R-ADMIN-1"
    )  # ash is admin on both approved platforms
    three = check_admins(admins, platforms=admin_platforms(world, at=NOW), charter=charter)
    assert three.allowed  # over three platforms nobody is admin everywhere


# --- a trial's end ---------------------------------------------------------------------------


def test_R_PLATFORM_trial_end_asks_the_wg_once_per_end_date():
    end = NOW - timedelta(hours=1)
    world = {**TODAY, **states(matrix=(TRIAL, end, None), zulip=(TRIAL, NOW + timedelta(days=1), None))}
    [asked] = trials_ended(world, now=NOW)
    assert asked.platform == "matrix" and asked.decision.ruling == "R-PLATFORM"
    assert asked.decision.evidence["choices"] == ["migrate", "keep trialling", "retire"]
    extended = {**world, **states(matrix=(TRIAL, end + timedelta(days=30), None))}
    assert trials_ended(extended, now=NOW) == []
    later = {t.platform: t for t in trials_ended(extended, now=NOW + timedelta(days=31))}
    assert set(later) == {"matrix", "zulip"} and later["matrix"].key != asked.key


@pytest.mark.parametrize(
    ("case", "served", "sender_known", "allowed", "code", "said"),
    [
        ("a served platform's account", True, True, True, "served", "served"),
        ("a platform not served", False, True, False, "not-served", "not served"),
        ("no account said", True, False, False, "not-served", "which account"),
        ("not served is said first", False, False, False, "not-served", "not served"),
    ],
)
def test_R_PLATFORM_check_served(case, served, sender_known, allowed, code, said):
    decision = check_served(served=served, sender_known=sender_known)
    assert (decision.allowed, decision.ruling, decision.code) == (allowed, "R-PLATFORM", code), case
    assert said in decision.reason, case
