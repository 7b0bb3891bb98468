"""R-IDEA-2 triage rules, table-driven: similarity, Board or WG, platform, untriaged flag; and
R-IDEA-1 transitions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rules import check_idea_transition, default_charter
from rules.triage import (
    classify_board,
    classify_platform,
    idea_text,
    most_similar,
    normalise,
    similarity,
    triage,
    untriaged_too_long,
)

CHARTER = default_charter()
NOW = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)


# ---- similarity -----------------------------------------------------------------------------

LIKELY_DUPLICATES = [
    ("Add a dark mode to the forum", "Dark mode for the Forum please"),
    ("Weekly office hours on Discord", "Hold weekly office hours in the Discord server"),
    ("A #help channel for beginners on Discord", "Beginner help channel on Discord"),
    ("Translate the code of conduct into Spanish", "Spanish translation of the Code of Conduct"),
    ("Migrate the forum to a new platform", "Migrating the Forum to a new platform soon"),
    ("Café meet-ups for newcomers", "cafe meetups for newcomers"),
]
DIFFERENT = [
    ("Weekly office hours on Discord", "Budget for conference stickers"),
    ("Dark mode for the forum", "Office hours on Discord"),
    ("Retire the IRC channel", "Retire the mailing list"),
    ("Welcome bot for new Discord members", "Welcome message for newcomers on the Forum"),
    ("Pin the code of conduct in every channel", "Translate the code of conduct"),
    ("", "Anything at all"),
]


@pytest.mark.parametrize(("a", "b"), LIKELY_DUPLICATES)
def test_r_idea_2_similar_texts_reach_the_charter_threshold(a: str, b: str) -> None:
    assert similarity(a, b) >= CHARTER.ideas.duplicate_similarity
    assert similarity(a, b) == similarity(b, a)


@pytest.mark.parametrize(("a", "b"), DIFFERENT)
def test_r_idea_2_different_texts_stay_below_the_threshold(a: str, b: str) -> None:
    assert similarity(a, b) < CHARTER.ideas.duplicate_similarity


def test_similarity_bounds_and_normalisation() -> None:
    assert similarity("Dark mode", "dark   MODE!") == 1.0
    assert similarity("Dark mode", "") == 0.0
    assert normalise("The channels of the Forums, please") == ["channel", "forum"]
    assert normalise("class status") == ["class", "status"]  # no plural cut on -ss / -us


def test_most_similar_returns_the_best_item_and_score_ties_to_the_oldest() -> None:
    items = [(3, "Budget for stickers"), (7, "Dark mode for the forum"), (9, "Dark mode for the forum")]
    best = most_similar("Forum dark mode", items)
    assert best is not None and best.id == 7 and best.score == 1.0
    assert most_similar("Forum dark mode", []) is None
    assert most_similar("zzz", [(1, "Dark mode")]) is None  # nothing in common


def test_idea_text_uses_the_body_when_it_repeats_the_title() -> None:
    assert idea_text("Office hours", "Office hours every Friday") == "Office hours every Friday"
    assert idea_text("Office hours", "Every Friday") == "Office hours\nEvery Friday"
    assert idea_text("Office hours", None) == "Office hours"


# ---- R-BOARD / R-DIRECT ---------------------------------------------------------------------

BOARD_CASES = [
    ("Migrate the forum to Zulip", "migrate-platform"),
    ("Move our chat from Slack to Discord", "migrate-platform"),
    ("Replace Slack with Matrix for the WG", "migrate-platform"),
    ("Retire the IRC channel", "retire-platform"),
    ("Shut down the Discord server and keep only the Forum", "retire-platform"),
    ("Let's trial Mastodon for announcements", "trial-platform"),
    ("We should evaluate a new platform for events", "trial-platform"),
    ("Budget for conference stickers", "budget"),
    ("Pay $300 for a Discord bot", "budget"),
    ("Ask the DSF for 500 EUR to run a sprint", "budget"),
    ("A sponsor for the moderators' training", "budget"),
]
DIRECT_CASES = [
    "Try a weekly voice channel on Discord",  # Discord is in use: not a platform trial
    "Add a #help channel on Discord",
    "Close the off-topic channel on Discord",
    "Open a new category on the forum for jobs",
    "Pin the code of conduct in every channel",
    "Move the meeting to Thursday",
]


@pytest.mark.parametrize(("text", "kind"), BOARD_CASES)
def test_r_board_kinds_need_the_board(text: str, kind: str) -> None:
    decision = classify_board(text, charter=CHARTER)
    assert not decision.allowed and decision.ruling == "R-BOARD"
    assert decision.evidence["kind"] == kind
    assert decision.evidence.get("matched") or decision.evidence.get("money")


@pytest.mark.parametrize("text", DIRECT_CASES)
def test_r_direct_everything_else_is_the_wgs(text: str) -> None:
    decision = classify_board(text, charter=CHARTER)
    assert decision.allowed and decision.ruling == "R-DIRECT"
    assert decision.evidence["kind"] == "idea"


def test_a_charter_without_budget_in_needs_board_does_not_escalate_money() -> None:
    board = CHARTER.board.model_copy(
        update={
            "needs_board": ["trial-platform", "migrate-platform", "retire-platform"],
            "direct": [*CHARTER.board.direct, "budget"],
        }
    )
    charter = CHARTER.model_copy(update={"board": board})
    assert classify_board("Budget for stickers", charter=charter).allowed


# ---- platform -------------------------------------------------------------------------------

PLATFORM_CASES = [
    ("Weekly office hours on Discord", "discord"),
    ("A slash command to look up the docs", "discord"),
    ("Dark mode for the forum", "discourse"),
    ("A Discourse badge for helpful answers", "discourse"),
    ("Tidy up the Slack workspace", "slack"),
    ("Translate the code of conduct", "general"),
    ("Move our chat from Slack to Discord", "general"),  # a tie
]


@pytest.mark.parametrize(("text", "platform"), PLATFORM_CASES)
def test_r_idea_2_platform(text: str, platform: str) -> None:
    assert classify_platform(text) == platform


# ---- untriaged for 30 days ------------------------------------------------------------------

FLAG_CASES = [
    ("new", 30, True),
    ("triaged", 45, True),
    ("new", 29, False),
    ("triaged", 3, False),
    ("accepted", 90, False),
    ("done", 400, False),
]


@pytest.mark.parametrize(("status", "days", "flagged"), FLAG_CASES)
def test_r_idea_2_flag_after_30_days_without_a_decision(status: str, days: int, flagged: bool) -> None:
    decision = untriaged_too_long(status=status, created_at=NOW - timedelta(days=days), now=NOW, charter=CHARTER)
    assert decision.allowed is flagged and decision.ruling == "R-IDEA-2"
    assert decision.evidence == {"status": status, "age_days": days, "limit_days": 30}


def test_untriaged_flag_needs_aware_times() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        untriaged_too_long(status="new", created_at=datetime(2026, 1, 1), now=NOW, charter=CHARTER)


# ---- the whole triage -----------------------------------------------------------------------


def test_triage_combines_duplicate_board_and_platform() -> None:
    existing = [(1, "Weekly office hours on Discord"), (2, "Dark mode for the forum")]
    result = triage("Hold weekly office hours in the Discord server", existing=existing, charter=CHARTER)
    assert result.is_duplicate and result.duplicate.id == 1 and result.duplicate.score >= 0.6
    assert not result.needs_board and result.kind == "idea" and result.platform == "discord"
    assert "resembles idea 1" in result.reasons[0]
    fresh = triage("Budget of 200 USD for Forum swag", existing=existing, charter=CHARTER)
    assert fresh.duplicate is None and fresh.needs_board and fresh.kind == "budget"
    assert fresh.platform == "discourse"


# ---- R-IDEA-1 transitions -------------------------------------------------------------------

TRANSITIONS = [
    ("new", "triaged", True),
    ("triaged", "accepted", True),
    ("triaged", "declined", True),
    ("triaged", "duplicate", True),
    ("accepted", "in-progress", True),
    ("in-progress", "done", True),
    ("new", "accepted", False),
    ("done", "new", False),
    ("declined", "accepted", False),
]


@pytest.mark.parametrize(("current", "new", "allowed"), TRANSITIONS)
def test_r_idea_1_transitions(current: str, new: str, allowed: bool) -> None:
    decision = check_idea_transition(current, new, charter=CHARTER)
    assert decision.allowed is allowed and decision.ruling == "R-IDEA-1"
    if not allowed:
        assert f"from {current} it may go to" in decision.reason


def test_r_idea_1_unknown_status_names_the_field() -> None:
    with pytest.raises(ValueError, match="new: unknown idea status 'shipped'"):
        check_idea_transition("triaged", "shipped", charter=CHARTER)
