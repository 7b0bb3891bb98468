"""Where the Slack sandbox answers as Slack does and our builders keep to it, on the paths the
Board's messages take (a long quarterly report, a long post, a Board list naming a deactivated
account): the connector against the sandbox over real HTTP on 127.0.0.1."""

from __future__ import annotations

import pytest

from connectors.errors import FatalError
from connectors.slack.blocks import ReportSection, SlackMessage, quarterly_report
from connectors.slack.client import SlackFatalError
from connectors.slack.connector import split_ref

BOARD = "C0BOARD01"


def _section(text: str) -> dict[str, object]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def test_blocks_holding_too_much_text_in_all_are_refused_as_slack_does(slack):
    # Each section is within its 3,000 characters; together they pass Slack's ~12,000
    # (https://github.com/slackapi/bolt-js/issues/2509).
    connector = slack.connect()
    message = SlackMessage(text="Report", blocks=tuple(_section("x" * 2600) for _ in range(5)))
    with pytest.raises(SlackFatalError) as err:
        connector.send(channel=BOARD, message=message)
    assert err.value.slack_error == "msg_blocks_too_long" and "builder bug" in str(err.value)
    assert slack.state()["messages"].get(BOARD, []) == []
    # 4 of them (10,400 characters) are taken
    connector.send(channel=BOARD, message=SlackMessage(text="Report", blocks=message.blocks[:4]))
    assert len(slack.state()["messages"][BOARD]) == 1


def test_a_long_quarterly_report_and_a_long_post_reach_the_board_channel(slack):
    connector = slack.connect()
    sections = [ReportSection(title=f"Platform {i}", body="Activity notes. " * 50) for i in range(80)]
    report = quarterly_report(
        quarter="2026-Q3", summary="A busy quarter.", sections=sections, full_text_url="https://wg.example.org/r/q3"
    )
    ref = connector.send(channel=BOARD, message=report, key="report:2026-Q3:slack")
    post = connector.post(channel=BOARD, title="Minutes of the Board meeting " * 5, text="word " * 5000)
    stored = {m["ts"]: m for m in slack.state()["messages"][BOARD]}
    assert "more report blocks not shown" in stored[split_ref(ref)[1]]["blocks"][-1]["text"]["text"]
    assert stored[split_ref(post)[1]]["blocks"][-1]["text"]["text"].endswith("(truncated)")


def test_a_deactivated_accounts_email_is_not_found_as_on_slack(slack):
    # https://api.slack.com/methods/users.lookupByEmail: "If the user has been deactivated,
    # users_not_found will be returned instead of a user object."
    connector = slack.connect()
    with pytest.raises(FatalError) as err:
        connector.find_user_by_email("former.member@example.org")
    assert isinstance(err.value, SlackFatalError) and err.value.slack_error == "users_not_found"
    assert connector.resolve_board(["former.member@example.org", "tobin.ashgrove@example.org"]) == {
        "tobin.ashgrove@example.org": "U0TOBI002"
    }
