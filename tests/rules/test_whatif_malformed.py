"""What-if cases the rules cannot compute with are refused with a CaseError naming the field
(issue 19), never an exception of another kind: one case per shape."""

from __future__ import annotations

import json

import pytest

from rules import default_charter
from rules.errors import CaseError
from rules.whatif import evaluate_case

T0 = "2026-01-10T12:00:00+00:00"


def eligibility(days_visited: str) -> str:
    return (
        '{"case": "eligibility", "now": "%s", "application": {"forum": "q"}, "evidence": '
        '{"discourse": {"created_at": "%s", "days_visited": %s, "post_count": 0}}}' % (T0, T0, days_visited)
    )


@pytest.mark.parametrize(
    "raw, field",
    [
        ('{"case": "board", "proposal": {"kind": ' + "[" * 100_000 + "]" * 100_000 + "}}", "proposal: nested"),
        ('{"case": "roles", "roles": ' + '{"a": ' * 50 + "1" + "}" * 50 + "}", "roles: nested"),
        (eligibility("9" * 5000), "evidence.discourse.days_visited"),
        (eligibility("-" + "9" * 5000), "evidence.discourse.days_visited"),
        (eligibility("NaN"), "evidence.discourse.days_visited"),
        (eligibility("Infinity"), "evidence.discourse.days_visited"),
        (
            json.dumps(
                {
                    "case": "term",
                    "term_start": "9999-12-31T00:00:00Z",
                    "now": "9999-12-31T00:00:00Z",
                    "opted_in": True,
                    "opted_in_at": "9999-12-31T00:00:00Z",
                }
            ),
            "term_start: year 9999",
        ),
        (
            json.dumps(
                {"case": "approval", "electorate": ["a"], "votes": {}, "opened_at": T0, "now": "9999-01-01T00:00:00Z"}
            ),
            "now: year 9999",
        ),
        (b'{"case": "board", "proposal": {"kind": "budget"}, "x": "\xff"}', "not UTF-8 text (byte 56 is 0xff)"),
        (
            '{"case": "approval", "electorate": ["a\\udc00"], "votes": {}, "opened_at": "%s", "now": "%s"}' % (T0, T0),
            "electorate.0: ",
        ),
    ],
)
def test_malformed_cases_name_the_field(raw, field):
    with pytest.raises(CaseError) as refused:
        evaluate_case(raw, charter=default_charter())
    assert field in str(refused.value) and "\n" not in str(refused.value)


def test_a_removal_about_someone_outside_the_electorate_is_refused_citing_r_remove():
    case = {
        "case": "removal",
        "electorate": ["a", "b", "c"],
        "subject": "zed",
        "votes": {"a": "yes", "b": "yes"},
        "opened_at": T0,
        "now": T0,
    }
    with pytest.raises(CaseError, match=r"^subject: 'zed' is not in the electorate.*\(R-REMOVE\)$"):
        evaluate_case(json.dumps(case), charter=default_charter())
    case["subject"] = "c"
    assert evaluate_case(json.dumps(case), charter=default_charter())["ruling"].startswith("R-")
