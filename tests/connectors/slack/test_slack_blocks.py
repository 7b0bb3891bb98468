"""The Block Kit builders are pure and always within Slack's limits (truncate, never fail)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.slack.blocks import (
    ACTION_IDS,
    MAX_BLOCKS,
    MAX_BLOCKS_TEXT,
    MAX_SECTION_TEXT,
    BoardDecision,
    BoardEscalation,
    Endorsement,
    Link,
    ReportSection,
    blocks_text_length,
    board_escalation,
    decision_update,
    escape,
    not_allowed_reply,
    plain_message,
    quarterly_report,
    truncate,
)
from connectors.slack.sandbox import validate_blocks

FULL = "https://forum.example.org/t/forum-hosting-budget/812"


def escalation(**overrides):
    values = dict(
        proposal_id="prop-2026-031",
        kind="budget",
        title="Hosting budget for the forum mirror",
        summary="The WG proposes a yearly hosting budget for a read-only mirror of the forum.",
        endorsement=Endorsement(result="endorsed", yes=6, no=1, abstain=0, url="https://forum.example.org/t/800"),
        amount=1200,
        currency="USD",
        links=(Link(label="Quote", url="https://hosting.example.net/q/55"),),
        full_text_url=FULL,
        requested_by="Wren Halloway",
        decide_by=datetime(2026, 12, 15, tzinfo=UTC),
    )
    values.update(overrides)
    return BoardEscalation(**values)


def texts(blocks):
    """Every text string in the blocks, with its limit."""
    for block in blocks:
        if block["type"] == "section":
            if "text" in block:
                yield block["text"]["text"], 3000
            for f in block.get("fields", []):
                yield f["text"], 2000
        elif block["type"] == "header":
            yield block["text"]["text"], 150
        elif block["type"] == "context":
            for el in block["elements"]:
                yield el["text"], 3000


def assert_within_limits(message):
    payload = message.payload()
    assert len(payload["blocks"]) <= MAX_BLOCKS
    assert validate_blocks(payload["blocks"]) == []
    assert blocks_text_length(payload["blocks"]) <= MAX_BLOCKS_TEXT  # else Slack's msg_blocks_too_long
    for text, limit in texts(payload["blocks"]):
        assert 0 < len(text) <= limit
    assert 0 < len(payload["text"]) <= 3000
    json.dumps(payload)  # JSON-ready


def test_escalation_has_the_three_decision_buttons_carrying_the_proposal_id():
    message = board_escalation(escalation())
    assert_within_limits(message)
    actions = [b for b in message.blocks if b["type"] == "actions"]
    assert len(actions) == 1
    buttons = actions[0]["elements"]
    assert [b["action_id"] for b in buttons] == [ACTION_IDS[d] for d in BoardDecision]
    assert [b["text"]["text"] for b in buttons] == ["Approve", "Reject", "Needs more information"]
    assert {b["value"] for b in buttons} == {"prop-2026-031"}
    assert actions[0]["block_id"] == "board_decision:prop-2026-031"
    assert buttons[0]["style"] == "primary" and buttons[1]["style"] == "danger"
    assert "confirm" in buttons[0] and "confirm" in buttons[1] and "confirm" not in buttons[2]


def test_escalation_shows_kind_amount_endorsement_and_links():
    message = board_escalation(escalation())
    everything = json.dumps(message.payload())
    assert "1,200 USD" in everything
    assert "*endorsed* (6 yes, 1 no, 0 abstain)" in everything
    assert "<https://hosting.example.net/q/55|Quote>" in everything
    assert f"<{FULL}|Full proposal>" in everything
    assert "<!date^" in everything  # decide-by rendered in the reader's time zone
    assert message.text.startswith("Board decision needed: budget proposal")


def test_budget_without_amount_says_so_and_other_kinds_show_none():
    assert "_not stated_" in json.dumps(board_escalation(escalation(amount=None)).payload())
    other = board_escalation(escalation(kind="trial-platform", amount=None, endorsement="endorsed"))
    assert "Amount" not in json.dumps(other.payload())


def test_long_summary_is_truncated_with_a_link_to_the_full_text():
    message = board_escalation(escalation(summary="Budget line & <detail> " * 400))
    assert_within_limits(message)
    summary = next(
        b for b in message.blocks if b["type"] == "section" and "Budget line" in b.get("text", {}).get("text", "")
    )
    text = summary["text"]["text"]
    assert len(text) <= MAX_SECTION_TEXT
    assert text.endswith(f"<{FULL}|Read the full text>")
    assert "&amp;" in text and "<detail>" not in text  # people's text is escaped


def test_truncate_never_cuts_inside_an_entity_or_a_link():
    text = "a" * 2990 + " &amp; <https://example.org/x|label> tail"
    out = truncate(text, 3000, more_url=FULL)
    assert len(out) <= 3000
    head = out.rsplit(" … ", 1)[0]
    assert head.count("<") == head.count(">")
    assert not head.endswith(("&", "&a", "&am", "&amp"))


@settings(max_examples=150, deadline=None)
@given(
    summary=st.text(alphabet=st.sampled_from("ab &<>|*_\n:é🙂"), max_size=9000),
    title=st.text(min_size=1, max_size=400),
    kind=st.text(min_size=1, max_size=60),
    link_count=st.integers(min_value=0, max_value=120),
)
def test_any_escalation_stays_within_slack_limits(summary, title, kind, link_count):
    links = tuple(Link(label=f"doc {i} <&>", url=f"https://example.org/{i}") for i in range(link_count))
    e = escalation(summary=summary, title=title, kind=kind, links=links)
    assert_within_limits(board_escalation(e))
    for decision in BoardDecision:
        assert_within_limits(
            decision_update(
                e, decision=decision, decided_by="U0WREN001", decided_at=datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
            )
        )


def test_report_with_many_long_sections_keeps_to_the_text_cap_and_links_to_the_full_report():
    sections = [ReportSection(title=f"Platform {i}", body="Activity notes. " * 50) for i in range(80)]
    message = quarterly_report(quarter="2026-Q3", summary="A busy quarter.", sections=sections, full_text_url=FULL)
    assert_within_limits(message)
    assert len(message.blocks) < MAX_BLOCKS  # the text ran out first: 80 sections of 800 characters
    assert blocks_text_length(message.blocks) > MAX_BLOCKS_TEXT - 1000  # filled, not emptied
    notice = message.blocks[-1]["text"]["text"]
    assert "more report blocks not shown" in notice and FULL in notice


def test_report_with_many_sections_keeps_50_blocks_and_links_to_the_full_report():
    sections = [ReportSection(title=f"Platform {i}", body="Activity notes.") for i in range(80)]
    message = quarterly_report(
        quarter="2026-Q3",
        summary="A calm quarter.",
        figures={"New members": 41, "Reports": 3},
        sections=sections,
        full_text_url="https://wg.example.org/reports/2026-q3",
    )
    assert_within_limits(message)
    assert len(message.blocks) == MAX_BLOCKS
    notice = message.blocks[-1]["text"]["text"]
    assert "more report blocks not shown" in notice and "https://wg.example.org/reports/2026-q3" in notice
    assert message.blocks[0]["text"]["text"] == "Quarterly report: 2026-Q3"
    assert "Private report for the DSF Board" in message.blocks[1]["elements"][0]["text"]


@settings(max_examples=60, deadline=None)
@given(
    figures=st.dictionaries(st.text(min_size=1, max_size=50), st.text(max_size=3000), max_size=40),
    bodies=st.lists(st.text(max_size=5000), max_size=60),
)
def test_any_report_stays_within_slack_limits(figures, bodies):
    sections = [ReportSection(title=f"S{i}", body=b) for i, b in enumerate(bodies)]
    assert_within_limits(
        quarterly_report(quarter="2026-Q4", summary="x" * 5000, figures=figures, sections=sections, full_text_url=FULL)
    )


def test_decision_update_shows_who_and_when_and_removes_buttons_only_when_final():
    at = datetime(2026, 12, 2, 14, 5, tzinfo=UTC)
    approved = decision_update(escalation(), decision=BoardDecision.APPROVE, decided_by="U0WREN001", decided_at=at)
    assert_within_limits(approved)
    assert not [b for b in approved.blocks if b["type"] == "actions"]
    outcome = json.dumps(approved.payload())
    assert "*Approved* by <@U0WREN001>" in outcome and f"<!date^{int(at.timestamp())}^" in outcome
    assert approved.blocks[0]["text"]["text"].startswith("Approved: ")
    assert "2026-12-02 14:05 UTC" in approved.text
    more = decision_update(
        escalation(),
        decision=BoardDecision.NEEDS_INFO,
        decided_by="U0TOBI002",
        decided_at=at,
        note="Which region hosts the mirror?",
    )
    assert [b for b in more.blocks if b["type"] == "actions"]
    assert "More information requested" in json.dumps(more.payload())
    assert "Which region hosts the mirror?" in json.dumps(more.payload())


def test_builders_refuse_bad_inputs_that_are_programming_errors():
    with pytest.raises(ValueError):
        escalation(proposal_id="has spaces")
    with pytest.raises(ValueError):
        escalation(proposal_id="x" * 201)
    with pytest.raises(ValueError):
        decision_update(
            escalation(), decision=BoardDecision.REJECT, decided_by="U0WREN001", decided_at=datetime(2026, 12, 2)
        )  # naive


def test_not_allowed_reply_is_ephemeral_and_leaves_the_original():
    reply = not_allowed_reply()
    assert reply["response_type"] == "ephemeral" and reply["replace_original"] is False
    assert "not allowed" in reply["text"]


def test_plain_message_splits_long_text_then_truncates():
    message = plain_message(title="Notes", text=("paragraph " * 200 + "\n\n") * 10, more_url=FULL)
    assert_within_limits(message)
    assert 2 <= len(message.blocks) <= 5
    assert escape("<&>") == "&lt;&amp;&gt;"
