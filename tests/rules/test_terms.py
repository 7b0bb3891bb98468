"""R-TERM-1 and R-TERM-2."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rules import check_opt_in, next_term, reminders, reminders_due, term_status, term_window

START = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
END = START + timedelta(days=365)


def test_R_TERM_1_a_term_is_365_days_from_approval(charter):
    w = term_window(START, charter=charter)
    assert w.end == END == datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


# (id, now, opted_in, status)
R_TERM_2 = [
    ("day-before-opt-in-opens-active", END - timedelta(days=30, seconds=1), False, "active"),
    ("opt-in-opens-30-days-before-end", END - timedelta(days=30), False, "opt-in-open"),
    ("last-second-of-term-opt-in-open", END - timedelta(seconds=1), False, "opt-in-open"),
    ("term-end-starts-grace", END, False, "grace"),
    ("last-moment-of-grace", END + timedelta(days=7), False, "grace"),
    ("after-grace-lapsed", END + timedelta(days=7, seconds=1), False, "lapsed"),
    ("opted-in-is-renewed", END - timedelta(days=2), True, "renewed"),
    ("opted-in-after-grace-still-renewed", END + timedelta(days=100), True, "renewed"),
]


@pytest.mark.parametrize("name,now,opted_in,status", R_TERM_2, ids=[c[0] for c in R_TERM_2])
def test_R_TERM_2_status(name, now, opted_in, status, charter):
    got, decision = term_status(START, now=now, opted_in=opted_in, charter=charter)
    assert got == status
    assert decision.ruling in {"R-TERM-1", "R-TERM-2"}


def test_R_TERM_2_opt_in_on_the_last_day_of_grace_is_accepted(charter):
    last_day = END + timedelta(days=6, hours=23)
    decision = check_opt_in(START, at=last_day, charter=charter)
    assert decision.allowed
    status, _ = term_status(
        START, now=last_day + timedelta(days=30), opted_in=True, opted_in_at=last_day, charter=charter
    )
    assert status == "renewed"


@pytest.mark.parametrize(
    "at,allowed",
    [
        (END - timedelta(days=31), False),
        (END - timedelta(days=30), True),
        (END + timedelta(days=7), True),
        (END + timedelta(days=7, seconds=1), False),
    ],
)
def test_R_TERM_2_opt_in_window(at, allowed, charter):
    assert check_opt_in(START, at=at, charter=charter).allowed is allowed


def test_R_TERM_2_opt_in_outside_the_window_does_not_count(charter):
    status, decision = term_status(
        START, now=END + timedelta(days=8), opted_in=True, opted_in_at=END + timedelta(days=8), charter=charter
    )
    assert status == "lapsed" and "does not count" in decision.reason


def test_R_TERM_2_new_term_starts_at_old_end_no_gap_no_overlap(charter):
    renewed = next_term(START, charter=charter)
    assert renewed.start == END and renewed.end == END + timedelta(days=365)
    late = check_opt_in(START, at=END + timedelta(days=5), charter=charter)
    assert late.evidence["new_term_end"] == renewed.end.isoformat()


def test_R_TERM_2_reminders_at_30_7_1_days(charter):
    assert [d for d, _ in reminders(START, charter=charter)] == [30, 7, 1]
    assert reminders(START, charter=charter)[1][1] == END - timedelta(days=7)


@pytest.mark.parametrize(
    "now,sent,due",
    [
        (END - timedelta(days=31), set(), ()),
        (END - timedelta(days=30), set(), (30,)),
        (END - timedelta(days=20), {30}, ()),
        (END - timedelta(days=7), {30}, (7,)),
        (END - timedelta(days=3), set(), (7,)),  # a late run sends only the latest due
        (END - timedelta(days=3), {7}, ()),  # ... and never the older one afterwards
        (END - timedelta(hours=1), {30, 7}, (1,)),
        (END + timedelta(days=1), set(), ()),  # no reminders once the term is over
    ],
)
def test_R_TERM_2_reminders_due(now, sent, due, charter):
    assert reminders_due(START, now=now, already_sent=sent, charter=charter) == due
