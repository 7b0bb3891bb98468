"""Table-driven tests of rules/safety.py, one group per ruling (R-SAFE-1, R-SAFE-2, R-SAFE-3)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rules import default_charter
from rules.safety import (
    ReportTimes,
    Safety,
    can_claim,
    can_record_coc_outcome,
    can_refer,
    can_resolve,
    figures,
    intake_allowed,
    liaison_receives,
    percentile,
    public_figures,
    referral_facts,
    reminder_due,
)

NOW = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)
SAFETY = Safety(max_reports_per_window=3, window_minutes=60, remind_unclaimed_hours=24)


def test_r_safe_1_the_charter_file_sets_the_safety_numbers() -> None:
    assert default_charter().safety.remind_unclaimed_hours == 24
    assert default_charter().safety.max_reports_per_window == 5


@pytest.mark.parametrize(
    ("minutes_ago", "allowed"),
    [([], True), ([5, 10], True), ([5, 10, 20], False), ([5, 10, 61], True), ([61, 90, 120, 200], True)],
)
def test_r_safe_1_a_burst_from_one_reporter_is_refused(minutes_ago: list[int], allowed: bool) -> None:
    decision = intake_allowed(recent=[NOW - timedelta(minutes=m) for m in minutes_ago], now=NOW, safety=SAFETY)
    assert decision.allowed is allowed and decision.ruling == "R-SAFE-1"


@pytest.mark.parametrize(
    ("state", "moderator", "allowed"),
    [
        ("open", True, True),
        ("open", False, False),
        ("claimed", True, False),
        ("resolved", True, False),
        ("referred", True, False),
    ],
)
def test_r_safe_1_claim_once_and_only_by_a_moderator(state: str, moderator: bool, allowed: bool) -> None:
    assert can_claim(state=state, is_moderator=moderator).allowed is allowed


@pytest.mark.parametrize(
    ("state", "outcome", "moderator", "allowed"),
    [
        ("open", "warned", True, True),
        ("claimed", "no_action", True, True),
        ("claimed", "sanctioned", False, False),
        ("resolved", "warned", True, False),
        ("claimed", "banished", True, False),
        ("claimed", "referred", True, False),
    ],
)
def test_r_safe_1_resolve_once_with_a_known_outcome(state: str, outcome: str, moderator: bool, allowed: bool) -> None:
    assert can_resolve(state=state, outcome=outcome, is_moderator=moderator).allowed is allowed


def test_r_safe_1_an_unclaimed_report_is_reminded_every_n_hours() -> None:
    created = NOW - timedelta(hours=25)
    assert reminder_due(state="open", created_at=created, reminded_at=None, now=NOW, safety=SAFETY)
    assert not reminder_due(
        state="open", created_at=created, reminded_at=NOW - timedelta(hours=1), now=NOW, safety=SAFETY
    )
    assert not reminder_due(state="claimed", created_at=created, reminded_at=None, now=NOW, safety=SAFETY)
    assert not reminder_due(state="open", created_at=NOW - timedelta(hours=2), reminded_at=None, now=NOW, safety=SAFETY)


@pytest.mark.parametrize(
    ("state", "moderator", "reporter", "allowed"),
    [
        ("open", True, False, True),
        ("open", False, True, True),
        ("open", False, False, False),
        ("claimed", True, False, True),
        ("resolved", True, False, False),
    ],
)
def test_r_safe_2_referral(state: str, moderator: bool, reporter: bool, allowed: bool) -> None:
    decision = can_refer(state=state, is_moderator=moderator, by_reporter=reporter)
    assert decision.allowed is allowed and decision.ruling in ("R-SAFE-1", "R-SAFE-2")


def test_r_safe_2_only_the_liaison_records_the_coc_outcome() -> None:
    assert can_record_coc_outcome(state="referred", is_liaison=True).allowed
    assert not can_record_coc_outcome(state="referred", is_liaison=False).allowed
    assert not can_record_coc_outcome(state="claimed", is_liaison=True).allowed


def test_r_safe_1_the_reported_moderator_does_not_handle_their_own_report() -> None:
    for decision in (
        can_claim(state="open", is_moderator=True, is_subject=True),
        can_resolve(state="claimed", outcome="no_action", is_moderator=True, is_subject=True),
        can_refer(state="open", is_moderator=True, is_subject=True),
    ):
        assert not decision.allowed and decision.ruling == "R-SAFE-1" and decision.evidence["subject"]
    # The reporter's own CoC mark at intake is not a handling step.
    assert can_refer(state="open", is_moderator=False, by_reporter=True, is_subject=False).allowed


def test_r_safe_2_a_liaison_who_is_the_reported_person_gets_no_referral_and_records_no_outcome() -> None:
    assert liaison_receives(liaison_known=True, liaison_is_subject=False).allowed
    assert not liaison_receives(liaison_known=True, liaison_is_subject=True).allowed
    assert not liaison_receives(liaison_known=False, liaison_is_subject=False).allowed
    refused = can_record_coc_outcome(state="referred", is_liaison=True, is_subject=True)
    assert not refused.allowed and refused.ruling == "R-SAFE-2"


def test_r_safe_2_a_referral_carries_the_least_data() -> None:
    report = {
        "id": 4,
        "platform": "discord",
        "target_kind": "message",
        "target_username": "dario_fenwick",
        "target_link": "https://discord.com/channels/1/2/3",
        "content": "text",
        "reason": "why",
        "created_at": "2027-03-01 12:00 UTC",
        "reporter_username": "cleo_marsh",
        "claimed_by": "bram_tolliver",
        "reporter_account": "1234",
        "target_account": "5678",
        "state": "open",
    }
    facts = referral_facts(report)
    assert facts["reporter"] == "cleo_marsh"
    assert not {"claimed_by", "reporter_account", "target_account", "state"} & set(facts)


def test_r_safe_3_median_p90_per_platform_and_counts_by_outcome() -> None:
    assert percentile([], 0.5) is None
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert percentile(list(range(1, 11)), 0.9) == pytest.approx(9.1)
    rows = [
        ReportTimes(
            platform="discord",
            created_at=NOW,
            first_response_at=NOW + timedelta(hours=h),
            resolved_at=NOW + timedelta(hours=2 * h),
            outcome="warned",
        )
        for h in (1, 2, 3)
    ]
    rows.append(
        ReportTimes(platform="discourse", created_at=NOW, first_response_at=None, resolved_at=None, outcome=None)
    )
    rows.append(
        ReportTimes(
            platform="discord",
            created_at=NOW - timedelta(days=400),
            first_response_at=None,
            resolved_at=None,
            outcome=None,
        )
    )
    found = figures(rows, start=NOW - timedelta(days=90), end=NOW + timedelta(days=1))
    assert found["ruling"] == "R-SAFE-3"
    d = found["platforms"]["discord"]
    assert d["reports"] == 3 and d["outcomes"]["warned"] == 3 and d["open"] == 0
    assert d["first_response_hours"] == {"median": 2.0, "p90": pytest.approx(2.8)}
    assert d["resolution_hours"]["median"] == 4.0
    assert found["platforms"]["discourse"]["open"] == 1
    assert found["platforms"]["all"]["reports"] == 4
    public = public_figures(found)
    assert public == {
        "ruling": "R-SAFE-3",
        "reports": 4,
        "outcomes": {"no_action": 0, "warned": 3, "removed_content": 0, "sanctioned": 0, "referred": 0},
    }
