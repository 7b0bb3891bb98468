"""R-GUIDE as pure functions: front matter errors by name and line, /help matching, and how a
guide fits a platform (whole, split in marked parts, or linked; never cut)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rules.guides import (
    GuideError,
    check_guides,
    fit_guide,
    match_guides,
    parse_guide,
    split_text,
    without_connector,
)

GOOD = """---
title: How to ask a good question
platforms: discourse, discord
audience: everyone
keywords: question, ask
---
Search first, then ask with the full error message.
"""


def test_r_guide_parses_front_matter():
    guide = parse_guide("asking.md", GOOD)
    assert (guide.slug, guide.title, guide.platforms, guide.audience, guide.keywords) == (
        "asking",
        "How to ask a good question",
        ("discourse", "discord"),
        "everyone",
        ("question", "ask"),
    )
    assert guide.body.startswith("Search first")
    changed = parse_guide("asking.md", GOOD.replace("Search first", "Search the Forum first"))
    assert changed.digest != guide.digest


@pytest.mark.parametrize(
    "text, line, words",
    [
        ("no front matter\n", 1, "starts with front matter"),
        ("---\ntitle: T\n", 2, "not closed"),
        (
            "---\ntitle: T\nplatforms: discord\naudience: everyone\ncolour: red\n---\nText\n",
            5,
            "unknown field 'colour'",
        ),
        (
            "---\ntitle: T\ntitle: U\nplatforms: discord\naudience: everyone\n---\nText\n",
            3,
            "given twice (first on line 2)",
        ),
        ("---\ntitle: T\naudience: everyone\n---\nText\n", 4, "no 'platforms'"),
        ("---\ntitle:\nplatforms: discord\naudience: everyone\n---\nText\n", 2, "title is empty"),
        (
            "---\ntitle: T\nplatforms: discord, my space!\naudience: everyone\n---\nText\n",
            3,
            "malformed platform name 'my space!'",
        ),
        ("---\ntitle: T\nplatforms: discord\naudience: robots\n---\nText\n", 4, "unknown audience 'robots'"),
        ("---\ntitle T\nplatforms: discord\naudience: everyone\n---\nText\n", 2, "expected 'field: value'"),
        ("---\ntitle: T\nplatforms: discord\naudience: everyone\n---\n\n", 6, "no text"),
    ],
)
def test_r_guide_broken_front_matter_names_file_and_line(text, line, words):
    with pytest.raises(GuideError) as caught:
        parse_guide("broken.md", text)
    assert caught.value.name == "broken.md" and caught.value.line == line
    assert words in str(caught.value) and str(caught.value).startswith(f"broken.md:{line}: ")


def test_r_guide_a_platform_without_connector_is_kept_and_named():
    text = GOOD.replace("platforms: discourse, discord", "platforms: discourse, matrix, mastodon")
    guide = parse_guide("asking.md", text)
    assert guide.platforms == ("discourse", "matrix", "mastodon")
    other = parse_guide("other.md", GOOD.replace("platforms: discourse, discord", "platforms: mastodon"))
    assert without_connector([guide, other], {"discourse", "discord", "matrix"}) == {"mastodon": ("asking", "other")}
    assert without_connector([guide], {"discourse", "matrix", "mastodon"}) == {}


def test_r_guide_one_broken_guide_does_not_stop_the_others():
    guides, errors = check_guides({"a.md": GOOD, "b.md": "oops"})
    assert [g.slug for g in guides] == ["a"] and [e.name for e in errors] == ["b.md"]


def test_r_guide_shipped_guides_are_valid():
    folder = Path(__file__).resolve().parents[2] / "rules" / "charters" / "guides"
    files = {p.name: p.read_text() for p in folder.glob("*.md")}
    guides, errors = check_guides(files)
    assert not errors and len(guides) >= 3


def _guides():
    def g(slug, title, body, keywords="", audience="everyone"):
        text = f"---\ntitle: {title}\nplatforms: discord\naudience: {audience}\nkeywords: {keywords}\n---\n{body}\n"
        return parse_guide(f"{slug}.md", text)

    return [
        g("asking", "How to ask a good question", "Search first. Show the error.", "question"),
        g("report", "Reporting a problem", "Flag the post; moderators read every report.", "abuse, spam"),
        g("welcome", "Welcome", "Where things are.", audience="newcomers"),
    ]


def test_r_guide_help_matches_best_first():
    guides = _guides()
    assert [g.slug for g in match_guides("how do I ask questions", guides)] == ["asking"]
    assert [g.slug for g in match_guides("spam", guides)] == ["report"]
    assert match_guides("kubernetes", guides) == []
    assert [g.slug for g in match_guides("", guides)][0] == "welcome"  # no topic: where to start
    assert match_guides("spam", guides, platform="discourse") == []


def test_r_guide_fit_whole_split_or_linked_never_cut():
    guide = _guides()[0]
    assert fit_guide(guide, limit=2000, max_pieces=4).mode == "whole"
    long = parse_guide("long.md", GOOD.replace("Search first", "\n\n".join(["word " * 60] * 12)))
    split = fit_guide(long, limit=500, max_pieces=10, title_in_text=True)
    assert split.mode == "split" and len(split.pieces) > 1 and all(len(p) <= 500 for p in split.pieces)
    assert split.pieces[0].startswith(f"**{long.title}**")
    assert split.pieces[-1].endswith(f"(part {len(split.pieces)} of {len(split.pieces)})")
    joined = " ".join(p.rsplit("\n\n(part", 1)[0] for p in split.pieces)
    assert joined.split() == f"**{long.title}**\n\n{long.body}".split()  # nothing dropped
    linked = fit_guide(long, limit=500, max_pieces=2, link="https://forum.example.org/t/long/7")
    assert linked.mode == "linked" and len(linked.pieces) == 1
    assert "https://forum.example.org/t/long/7" in linked.pieces[0] and len(linked.pieces[0]) <= 500
    assert linked.decision.ruling == "R-GUIDE" and "a summary links to it" in linked.decision.reason
    unlinked = fit_guide(long, limit=500, max_pieces=2)  # no whole copy to link to: split anyway
    assert unlinked.mode == "split" and len(unlinked.pieces) > 2


def test_r_guide_a_linked_summary_fits_the_limit_whatever_the_links_length():
    # One long first paragraph and a Forum link of a long title.
    body = "word " * 1000 + "\n\nMore."
    long = parse_guide("long.md", GOOD.replace("Search first, then ask with the full error message.", body))
    link = "https://forum.example.org/t/" + "how-to-ask-a-good-question-" * 4 + "and-get-an-answer/12345"
    linked = fit_guide(long, limit=2000, max_pieces=1, link=link, title_in_text=True)
    assert linked.mode == "linked" and linked.pieces[0].endswith(link)
    assert len(linked.pieces[0]) <= 2000  # a Discord message refuses 2001 characters


def test_split_text_cuts_between_paragraphs():
    assert split_text("a" * 30 + "\n\n" + "b" * 30, 40) == ["a" * 30, "b" * 30]
    with pytest.raises(ValueError):
        split_text("x", 5)
