"""`charterflow rules what-if`: the stable contract, through the real command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

CHARTERFLOW = str(Path(sys.executable).with_name("charterflow"))
T0 = "2026-01-10T12:00:00+00:00"


def run(*args: str, stdin: str | None = None, env: dict | None = None):
    return subprocess.run(
        [CHARTERFLOW, *args], input=stdin, capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})}
    )


def what_if(case: dict | str, tmp_path: Path, *extra: str):
    path = tmp_path / "case.json"
    path.write_text(case if isinstance(case, str) else json.dumps(case))
    return run("rules", "what-if", str(path), *extra)


CASES = [
    (
        "eligibility-active-forum",
        {
            "case": "eligibility",
            "now": "2026-06-01T00:00:00Z",
            "application": {"forum": "quill", "discord": None, "nominator": None},
            "evidence": {
                "discourse": {"created_at": "2026-01-01T00:00:00Z", "days_visited": 30, "post_count": 2},
                "discord": None,
            },
            "dsf_members": [],
        },
        {"allowed": True, "ruling": "R-ELIG-1"},
    ),
    (
        "eligibility-discord-search-unknown",
        {
            "case": "eligibility",
            "now": "2026-06-01T00:00:00Z",
            "application": {"forum": None, "discord": "quill", "nominator": None},
            "evidence": {"discourse": None, "discord": {"joined_at": "2025-01-01T00:00:00Z", "messages_90d": None}},
            "dsf_members": [],
        },
        {"allowed": False, "ruling": "R-ELIG-1", "status": "unknown"},
    ),
    (
        "eligibility-nominated",
        {
            "case": "eligibility",
            "now": "2026-06-01T00:00:00Z",
            "application": {"forum": "quill", "discord": None, "nominator": "marlow"},
            "evidence": {"discourse": None, "discord": None},
            "dsf_members": ["marlow"],
        },
        {"allowed": True, "ruling": "R-ELIG-2"},
    ),
    (
        "approval-4-of-7-early",
        {
            "case": "approval",
            "electorate": ["a", "b", "c", "d", "e", "f", "g"],
            "subject": None,
            "votes": {"a": "yes", "b": "yes", "c": "yes", "d": "yes", "zed": "no"},
            "opened_at": T0,
            "now": "2026-01-11T12:00:00+00:00",
        },
        {
            "outcome": "passed",
            "yes": 4,
            "no": 0,
            "abstain": 0,
            "electorate": 7,
            "needed": 4,
            "ruling": "R-VOTE-EARLY",
            "refused": [
                {
                    "voter": "zed",
                    "ruling": "R-ELECTORATE",
                    "reason": "zed is not in the electorate snapshotted when the ballot opened",
                }
            ],
        },
    ),
    (
        "approval-open",
        {
            "case": "approval",
            "electorate": ["a", "b", "c"],
            "subject": None,
            "votes": {"a": "yes"},
            "opened_at": T0,
            "now": T0,
        },
        {"outcome": "open", "needed": 2, "ruling": "R-VOTE-APPROVE", "refused": []},
    ),
    (
        "removal-subject-excluded",
        {
            "case": "removal",
            "electorate": ["a", "b", "c", "d", "e"],
            "subject": "a",
            "votes": {"a": "no", "b": "yes", "c": "yes"},
            "opened_at": T0,
            "now": "2026-01-24T12:00:00+00:00",
        },
        {"outcome": "failed", "yes": 2, "electorate": 4, "needed": 3, "ruling": "R-REMOVE"},
    ),
    (
        "admins-violations",
        {
            "case": "admins",
            "platforms": ["discourse", "discord"],
            "admins": {"discourse": ["a", "b"], "discord": ["a"]},
        },
        {
            "allowed": False,
            "violations": [
                {
                    "ruling": "R-ADMIN-2",
                    "subject": "discord",
                    "reason": "discord has 1 admin (a); at least 2 are required",
                },
                {
                    "ruling": "R-ADMIN-1",
                    "subject": "a",
                    "reason": "a is admin on every approved platform (discourse, discord); no single member may be",
                },
            ],
        },
    ),
    (
        "roles-warning-and-violation",
        {
            "case": "roles",
            "roles": {"chair": "a", "co_chair": "b", "coc_liaison": "c", "board_liaison": "c", "sc_liaison": None},
            "home_platform": {"a": "discord", "b": "discord"},
            "board_members": ["c"],
            "steering_council": [],
        },
        {"allowed": False},
    ),
    (
        "term-grace",
        {"case": "term", "term_start": "2025-01-01T00:00:00Z", "now": "2026-01-03T00:00:00Z", "opted_in": False},
        {"status": "grace", "term_end": "2026-01-01T00:00:00+00:00", "ruling": "R-TERM-2"},
    ),
    (
        "term-renewed",
        {"case": "term", "term_start": "2025-01-01T00:00:00Z", "now": "2025-12-20T00:00:00Z", "opted_in": True},
        {"status": "renewed", "new_term_end": "2027-01-01T00:00:00+00:00"},
    ),
    ("board-budget", {"case": "board", "proposal": {"kind": "budget"}}, {"needs_board": True, "ruling": "R-BOARD"}),
    (
        "board-direct",
        {"case": "board", "proposal": {"kind": "moderator-change"}},
        {"needs_board": False, "ruling": "R-DIRECT"},
    ),
]


@pytest.mark.parametrize("name,case,expected", CASES, ids=[c[0] for c in CASES])
def test_every_case_kind_answers_with_one_json_object(name, case, expected, tmp_path):
    result = what_if(case, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("\n") == 1
    answer = json.loads(result.stdout)
    assert {k: answer[k] for k in expected} == expected
    assert isinstance(answer.get("reason", ""), str)
    if "ruling" in answer:
        assert answer["ruling"].startswith("R-")
    if name == "roles-warning-and-violation":
        assert [v["ruling"] for v in answer["violations"]] == ["R-ROLE-BOARD"]
        assert [w["ruling"] for w in answer["warnings"]] == ["R-ROLE-CHAIR"]


BAD = [
    ("unknown-kind", {"case": "horoscope"}, "case: unknown kind 'horoscope'"),
    ("no-kind", {"now": T0}, "case: required field is missing"),
    ("missing-field", {"case": "term", "now": T0, "opted_in": False}, "term_start: required field is missing"),
    (
        "bad-date",
        {"case": "term", "term_start": "last spring", "now": T0, "opted_in": False},
        "term_start: not an ISO 8601 date-time with a zone",
    ),
    (
        "date-without-zone",
        {"case": "term", "term_start": "2025-01-01T00:00:00", "now": T0, "opted_in": False},
        "term_start: not an ISO 8601 date-time with a zone",
    ),
    (
        "bad-choice",
        {"case": "approval", "electorate": ["a"], "votes": {"a": "maybe"}, "opened_at": T0, "now": T0},
        "votes.a: Input should be 'yes', 'no' or 'abstain'",
    ),
    (
        "removal-without-subject",
        {"case": "removal", "electorate": ["a"], "votes": {}, "opened_at": T0, "now": T0},
        "subject: a removal ballot needs",
    ),
    (
        "now-before-opening",
        {"case": "approval", "electorate": ["a"], "votes": {}, "opened_at": T0, "now": "2020-01-01T00:00:00Z"},
        "now: earlier than opened_at",
    ),
    ("unknown-field", {"case": "board", "proposal": {"kind": "budget"}, "extra": 1}, "extra: unknown field"),
    (
        "unknown-proposal-kind",
        {"case": "board", "proposal": {"kind": "pizza"}},
        "proposal.kind: unknown proposal kind 'pizza'",
    ),
    (
        "admins-unknown-platform",
        {"case": "admins", "platforms": ["discord"], "admins": {"myspace": ["a"]}},
        "admins.myspace: not one of the platforms",
    ),
    (
        "negative-count",
        {
            "case": "eligibility",
            "now": T0,
            "application": {"forum": "q", "discord": None, "nominator": None},
            "evidence": {"discourse": {"created_at": T0, "days_visited": -3, "post_count": 0}, "discord": None},
        },
        "evidence.discourse.days_visited: Input should be greater than or equal to 0",
    ),
    (
        "nested-100000-deep",
        '{"case": "board", "proposal": ' + "[" * 100_000 + "]" * 100_000 + "}",
        "proposal: nested deeper than 32 levels",
    ),
    (
        "5000-digit-integer",
        '{"case": "eligibility", "now": "%s", "application": {"forum": "q"}, '
        '"evidence": {"discourse": {"created_at": "%s", "days_visited": 1%s, "post_count": 0}}}' % (T0, T0, "0" * 5000),
        "evidence.discourse.days_visited: Input should be a finite number",
    ),
    (
        "count-beyond-any-real-one",
        {
            "case": "eligibility",
            "now": T0,
            "application": {"forum": "q"},
            "evidence": {"discourse": {"created_at": T0, "days_visited": 10**17, "post_count": 0}},
        },
        "evidence.discourse.days_visited: Input should be less than or equal to 1000000000",
    ),
    (
        "year-9999",
        {"case": "term", "term_start": "9999-12-01T00:00:00Z", "now": "9999-12-31T00:00:00Z", "opted_in": False},
        "term_start: year 9999 is outside 1900-9000",
    ),
    (
        "year-1",
        {"case": "approval", "electorate": ["a"], "votes": {}, "opened_at": "0001-01-01T00:00:00Z", "now": T0},
        "opened_at: year 1 is outside",
    ),
    (
        "lone-surrogate",
        '{"case": "board", "proposal": {"kind": "budget", "title": "x\\ud800"}}',
        "proposal.title: holds a lone surrogate",
    ),
    (
        "removal-subject-outside-electorate",
        {
            "case": "removal",
            "electorate": ["a", "b", "c"],
            "subject": "zed",
            "votes": {"a": "yes"},
            "opened_at": T0,
            "now": T0,
        },
        "subject: 'zed' is not in the electorate; a removal vote is about a member of it (R-REMOVE)",
    ),
    ("newline-in-a-key", {"case": "board", "proposal": {"kind": "budget"}, "x\ny": 1}, "unknown field"),
    ("not-json", "{nope", "not valid JSON"),
    ("not-an-object", "[1, 2]", "a case must be a JSON object"),
    ("empty", "", "not valid JSON"),
]


@pytest.mark.parametrize("name,case,message", BAD, ids=[c[0] for c in BAD])
def test_malformed_case_exits_2_with_one_line(name, case, message, tmp_path):
    result = what_if(case, tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"error: {tmp_path / 'case.json'}: ")
    assert message in result.stderr


def test_a_file_that_is_not_utf8_exits_2_naming_the_byte(tmp_path):
    path = tmp_path / "case.json"
    path.write_bytes('{"case": "board", "proposal": {"kind": "budget", "title": "caf\u00e9"}}'.encode("latin-1"))
    result = run("rules", "what-if", str(path))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == f"error: {path}: not UTF-8 text (byte 62 is 0xe9)\n"
    from_stdin = subprocess.run(
        [CHARTERFLOW, "rules", "what-if", "-"],
        capture_output=True,
        timeout=60,
        input='{"case": "board", "proposal": {"kind": "budget"}}'.encode("utf-16"),
    )
    assert from_stdin.returncode == 2 and b"<stdin>: not UTF-8 text" in from_stdin.stderr


def test_case_from_stdin():
    result = run("rules", "what-if", "-", stdin='{"case":"board","proposal":{"kind":"budget"}}')
    assert result.returncode == 0 and json.loads(result.stdout)["needs_board"] is True


def test_missing_case_file(tmp_path):
    result = run("rules", "what-if", str(tmp_path / "nope.json"))
    assert result.returncode == 2 and "cannot read" in result.stderr
    assert result.stderr.count("\n") == 1


def test_oversized_case_is_refused(tmp_path):
    big = json.dumps({"case": "board", "proposal": {"kind": "budget", "title": "x" * 1_100_000}})
    result = what_if(big, tmp_path)
    assert result.returncode == 2 and "larger than" in result.stderr


def test_other_charter_changes_the_answer(tmp_path):
    shipped = (Path(__file__).resolve().parents[2] / "rules/charters/dsf-ocwg.toml").read_text()
    other = tmp_path / "other.toml"
    other.write_text(shipped.replace("length_days = 365", "length_days = 730"))
    case = {"case": "term", "term_start": "2025-01-01T00:00:00Z", "now": "2026-01-03T00:00:00Z", "opted_in": False}
    assert json.loads(what_if(case, tmp_path, "--charter", str(other)).stdout)["status"] == "active"
    via_env = tmp_path / "c2.json"
    via_env.write_text(json.dumps(case))
    result = run("rules", "what-if", str(via_env), env={"CHARTERFLOW_CHARTER_FILE": str(other)})
    assert json.loads(result.stdout)["status"] == "active"


def test_bad_charter_file_is_one_line_naming_file_and_field(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[charter]\nid = 'x'\n")
    result = what_if({"case": "board", "proposal": {"kind": "budget"}}, tmp_path, "--charter", str(bad))
    assert result.returncode == 2 and result.stderr.startswith(f"error: {bad}: ")
    assert result.stderr.count("\n") == 1
    check = run("rules", "check", str(bad))
    assert check.returncode == 2 and str(bad) in check.stderr


def test_rules_check_summarises_the_shipped_charter():
    result = run("rules", "check")
    assert result.returncode == 0
    assert json.loads(result.stdout)["charter"]["id"] == "dsf-ocwg"
