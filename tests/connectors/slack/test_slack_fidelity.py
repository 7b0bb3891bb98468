"""Where the Slack sandbox answers as Slack does and our builders keep to it, on the paths the
Board's messages take (a long quarterly report, a long post, a Board list naming a deactivated
account): the connector against the sandbox over real HTTP on 127.0.0.1."""

from __future__ import annotations

import pytest

from connectors.errors import FatalError
from connectors.slack.blocks import BoardDecision, BoardEscalation, ReportSection, SlackMessage, quarterly_report
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


def test_a_board_click_carries_the_fields_slack_documents(slack):
    # https://api.slack.com/reference/interaction-payloads/block-actions: a button in a message
    connector = slack.connect()
    escalation = BoardEscalation(
        proposal_id="prop-2026-077", kind="budget", title="Mirror hosting", summary="A mirror.", endorsement="endorsed"
    )
    channel, ts = split_ref(connector.escalate(escalation))
    payload = slack.sandbox.block_actions_payload(
        slack.url, user="U0PELL003", channel=channel, ts=ts, action_id="board_reject"
    )
    assert set(payload) == {
        *("type", "user", "api_app_id", "token", "container", "trigger_id", "team", "enterprise"),
        *("is_enterprise_install", "channel", "message", "state", "response_url", "actions"),
    }
    assert set(payload["user"]) == {"id", "username", "name", "team_id"} and payload["enterprise"] is None
    assert set(payload["actions"][0]) >= {"action_id", "block_id", "text", "value", "type", "action_ts"}
    headers, body = slack.sandbox.signed_request(kind="block_actions", payload=payload)
    [action] = connector.board_actions(headers=headers, body=body)
    assert (action.user_id, action.decision, action.proposal_id) == ("U0PELL003", BoardDecision.REJECT, "prop-2026-077")
    assert (action.channel_id, action.message_ts, action.team_id) == (channel, ts, "T0SANDBOX")
