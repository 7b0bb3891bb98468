"""The weekly digest's Discord messages (pure): Discord's limits hold however long the backlog."""

from __future__ import annotations

import pytest

from flows.ideas.common import InvalidIdea, parse_button_id, validate_idea
from flows.ideas.deploy import weekly_cron
from flows.ideas.digest import PER_MESSAGE, digest_messages, ideas_in, shown_after_change


def item(n: int, *, status: str = "triaged", title: str | None = None, **extra) -> dict:
    return {
        "id": n,
        "status": status,
        "title": title or f"Idea number {n}",
        "platform": "discord",
        "board": "WG",
        "duplicate_of": None,
        "similarity": None,
        "source": "discord",
        "link": f"https://discord.com/channels/1/{n}",
        "duplicate_link": "",
        "author": "cleo_marsh",
        "age_days": n,
        "flagged": False,
        **extra,
    }


def test_long_backlog_is_split_within_discords_limits():
    items = [item(n, title="word " * 70) for n in range(1, 13)]  # 350-character titles
    items[3]["flagged"] = True
    messages = digest_messages(items, week="2026-W48", counts={"triaged": 12}, flag_days=30)
    assert len(messages) == 3  # 5 + 5 + 2
    for m in messages:
        assert len(m["content"]) <= 2000
        assert len(m.get("components", [])) <= PER_MESSAGE
        for row in m["components"]:
            assert len(row["components"]) <= 5
            assert all(len(b["label"]) <= 80 and len(b["custom_id"]) <= 100 for b in row["components"])
    assert "12 ideas waiting" in messages[0]["content"] and "1 flagged" in messages[0]["content"]
    assert messages[2]["content"].startswith("**Ideas digest 2026-W48** (3/3)")
    assert "allowed_mentions" in messages[0]  # no pings from titles


def test_only_triaged_items_get_buttons_and_an_empty_week_says_so():
    [message] = digest_messages(
        [item(1, status="new"), item(2, duplicate_of=1, similarity=0.8)],
        week="2026-W48",
        counts={"new": 1, "triaged": 1},
        flag_days=30,
    )
    ids = [b["custom_id"] for row in message["components"] for b in row["components"]]
    assert ids == ["cfi:2:accepted", "cfi:2:declined", "cfi:2:duplicate"]
    assert "likely duplicate of #1 (0.80)" in message["content"]
    [empty] = digest_messages([], week="2026-W49", counts={"done": 3}, flag_days=30)
    assert "Nothing is waiting" in empty["content"] and "components" not in empty


def test_buttons_and_input_checks():
    assert parse_button_id("cfi:12:accepted") == (12, "accepted")
    assert parse_button_id("cfo:12:accepted") is None and parse_button_id("cfi:x:y") is None
    long_line = "Office hours " + "every week " * 30
    checked = validate_idea(text=long_line)
    assert len(checked.title) <= 121 and checked.title.endswith("…") and checked.body == long_line.strip()
    with pytest.raises(InvalidIdea, match="^body: "):
        validate_idea(title="Fine", body="x" * 20_001)


@pytest.mark.parametrize(
    ("weekday", "cron"), [("monday", "0 7 * * 1"), ("sunday", "0 7 * * 0"), ("saturday", "0 7 * * 6")]
)
def test_weekly_cron_follows_the_charter_weekday(weekday, cron):
    assert weekly_cron(weekday) == cron


def test_a_posted_digest_message_shows_the_statuses_now():
    items = [
        {
            "id": i,
            "title": f"Idea number {i} (draft)",
            "status": status,
            "platform": None,
            "board": None,
            "age_days": 2,
            "flagged": i == 1,
            "link": None,
            "duplicate_of": None,
            "similarity": None,
            "duplicate_link": None,
        }
        for i, status in ((1, "triaged"), (2, "triaged"), (3, "new"))
    ]
    [posted] = digest_messages(items, week="2026-W48", counts={"triaged": 2, "new": 1}, flag_days=30)
    assert ideas_in(posted) == {1, 2, 3}
    assert shown_after_change(posted, {1: "triaged", 2: "triaged", 3: "new"}) is None
    new = shown_after_change(posted, {1: "accepted", 2: "triaged", 3: "triaged"})
    assert "⚠️ **#1** Idea number 1 (draft) (accepted)" in new["content"]
    assert "**#3** Idea number 3 (draft) (triaged)" in new["content"]
    assert [b["custom_id"] for r in new["components"] for b in r["components"]] == [
        "cfi:2:accepted",
        "cfi:2:declined",
        "cfi:2:duplicate",
    ]
    # An idea the ledger does not know keeps what the message showed.
    assert shown_after_change(posted, {}) is None
