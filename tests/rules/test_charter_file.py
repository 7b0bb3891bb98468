"""The charter file: the shipped one is valid and complete; a bad one names file and field."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from rules import RULINGS, CharterFileError, default_charter, load_charter, parse_charter

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "rules" / "charters" / "dsf-ocwg.toml"
# The rulings text, kept in the repository by scripts/refresh-vendored.py.
RULINGS_MD = ROOT / "tests" / "data" / "RULINGS.md"


def test_shipped_charter_holds_the_rulings_numbers():
    c = default_charter()
    assert c.platforms == ("discourse", "discord")
    assert c.eligibility.account_min_age_days == 90
    assert (c.eligibility.discourse.min_days_visited, c.eligibility.discourse.min_post_count) == (10, 5)
    assert c.eligibility.discord.min_messages == 5
    assert c.application.confirm_within_days == 7
    assert (c.ballots.approval.voting_days, c.ballots.removal.voting_days) == (7, 14)
    assert (c.terms.length_days, c.terms.opt_in_opens_days_before_end, c.terms.grace_days) == (365, 30, 7)
    assert c.terms.reminder_days_before_end == [30, 7, 1]
    assert c.admins.min_admins_per_platform == 2
    assert c.training.ack_reminder_after_days == 14
    assert c.board.reminder_after_days == 30
    assert c.ideas.flag_untriaged_after_days == 30
    assert (c.meetings.create_days_ahead, c.meetings.reminder_days_ahead) == (21, 1)


def _text(**replace: str) -> str:
    text = SHIPPED.read_text()
    for old, new in replace.items():
        assert old in text
        text = text.replace(old, new)
    return text


@pytest.mark.parametrize(
    "old,new,message",
    [
        ("length_days = 365", "length_days = -1", "terms.length_days: Input should be greater than 0"),
        ("length_days = 365", 'length_days = "a year"', "terms.length_days: Input should be a valid integer"),
        ("grace_days = 7\n", "", "terms.grace_days: required field is missing"),
        ("grace_days = 7", "grace_days = 7\ngrase_days = 8", "terms.grase_days: unknown field"),
        ("quorum_fraction = 0.5            #", "quorum_fraction = 2 #", "ballots.approval.quorum_fraction"),
        (
            'direct = ["moderator-change"',
            'direct = ["budget", "moderator-change"',
            "both needs_board and direct: budget",
        ),
        ('platform = "discord"', 'platform = "myspace"', "meetings.platform: myspace is not in charter.platforms"),
        ("[terms]", "[terms", "not valid TOML"),
    ],
    ids=[
        "negative",
        "wrong-type",
        "missing",
        "misspelt",
        "out-of-range",
        "contradiction",
        "unknown-platform",
        "bad-toml",
    ],
)
def test_bad_charter_names_file_and_field(tmp_path, old, new, message):
    path = tmp_path / "bad.toml"
    path.write_text(_text(**{old: new}))
    with pytest.raises(CharterFileError) as err:
        load_charter(path)
    assert str(err.value).startswith(f"{path}: ")
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_charter_file(tmp_path):
    with pytest.raises(CharterFileError, match="cannot read charter file"):
        load_charter(tmp_path / "nope.toml")


def test_another_community_can_change_the_numbers():
    other = parse_charter(_text(**{"length_days = 365": "length_days = 730"}), source="other.toml")
    assert other.terms.length_days == 730 and other.source == "other.toml"


def _cited_ids() -> set[str]:
    ids: set[str] = set()
    for path in (ROOT / "rules").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                ids.update(re.findall(r"\bR-[A-Z]+(?:-[A-Z0-9]+)*\b(?!-\*)", node.value))
    return ids


def test_every_cited_ruling_exists():
    assert _cited_ids() - set(RULINGS) == set()


def test_registry_matches_rulings_md():
    ids = re.findall(r"^- \*\*(R-[A-Z0-9-]+)", RULINGS_MD.read_text(), flags=re.M)
    assert ids and set(ids) == set(RULINGS)
