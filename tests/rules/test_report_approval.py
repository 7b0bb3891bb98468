"""R-REPORT: approving and publishing a quarterly report (rules/reports.py), one row per outcome."""

from __future__ import annotations

import pytest

from rules.reports import ReportApproval, check_publish, check_report_approval, is_empty


@pytest.mark.parametrize(
    ("case", "approval", "allowed", "code"),
    [
        (
            "a member approves the draft",
            ReportApproval(quarter="2026-Q1", member=True, status="draft"),
            True,
            "approve",
        ),
        ("not a member", ReportApproval(quarter="2026-Q1", member=False, status="draft"), False, "not-a-member"),
        (
            "membership first, even when approved",
            ReportApproval(quarter="2026-Q1", member=False, status="approved"),
            False,
            "not-a-member",
        ),
        ("no draft", ReportApproval(quarter="2026-Q1", member=True, status=None), False, "no-draft"),
        ("approved before", ReportApproval(quarter="2026-Q1", member=True, status="approved"), True, "already"),
        (
            "published before, shown an old draft",
            ReportApproval(quarter="2026-Q1", member=True, status="published", same_draft=False),
            True,
            "already",
        ),
        (
            "the draft was replaced",
            ReportApproval(quarter="2026-Q1", member=True, status="draft", same_draft=False),
            False,
            "draft-replaced",
        ),
    ],
)
def test_R_REPORT_check_report_approval(case, approval, allowed, code):
    decision = check_report_approval(approval)
    assert (decision.allowed, decision.ruling, decision.code) == (allowed, "R-REPORT", code), case


def test_R_REPORT_no_draft_names_the_quarter():
    decision = check_report_approval(ReportApproval(quarter="2026-Q1", member=True, status=None))
    assert decision.reason == "there is no draft of the 2026-Q1 report to approve"


@pytest.mark.parametrize(
    ("status", "allowed"), [(None, False), ("draft", False), ("approved", True), ("published", True)]
)
def test_R_REPORT_check_publish(status, allowed):
    decision = check_publish("2026-Q1", status=status)
    assert decision.allowed is allowed and decision.ruling == "R-REPORT"
    if not allowed:
        assert decision.reason == "report 2026-Q1 is not approved"


def test_R_BUDGET_a_quarter_with_a_budget_request_is_not_empty():
    # The Board's report opened with "Nothing this quarter ... no proposal is waiting for the
    # Board" above a Budgets section showing a request approved and spent on in the quarter.
    quiet = {"membership": {"joined": 0}, "ideas_done": [], "moderation": [], "escalations": []}
    assert is_empty(quiet)
    budgets = {"requests": [{"id": 3, "state": "approved", "spent": "120.00"}], "totals": {}}
    assert not is_empty({**quiet, "budgets": budgets})
