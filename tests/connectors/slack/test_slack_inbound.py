"""Slack request signing (v0, 300 s replay window) and parsing of Board clicks."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from connectors.base import InboundEvent
from connectors.errors import InvalidSignature
from connectors.slack.blocks import BoardDecision
from connectors.slack.inbound import (
    BoardAction,
    SlackRequestVerifier,
    check_board_member,
    parse_board_actions,
    sign_request,
)

SECRET = "8f2c1d0e9a7b6c5d4e3f2a1b0c9d8e7f"
NOW = 1_790_000_000


def verifier(now: float = NOW) -> SlackRequestVerifier:
    return SlackRequestVerifier(signing_secret=SecretStr(SECRET), clock=lambda: now)


def signed(
    body: bytes, *, ts: int = NOW, secret: str = SECRET, content_type: str = "application/x-www-form-urlencoded"
):
    return {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": str(ts),
        "X-Slack-Signature": sign_request(secret, timestamp=ts, body=body),
    }


def click_payload(*, user="U0WREN001", action_id="board_approve", value="prop-7", block_id="board_decision:prop-7"):
    return {
        "type": "block_actions",
        "team": {"id": "T0SANDBOX", "domain": "sandbox-foundation"},
        "user": {"id": user, "username": "wren.halloway", "team_id": "T0SANDBOX"},
        "container": {"type": "message", "message_ts": "1790000000.000100", "channel_id": "C0BOARD01"},
        "channel": {"id": "C0BOARD01", "name": "dsf-board"},
        "trigger_id": "123.456.abcdef",
        "response_url": "https://hooks.slack.com/actions/T0SANDBOX/1/xyz",
        "actions": [
            {
                "type": "button",
                "action_id": action_id,
                "block_id": block_id,
                "value": value,
                "action_ts": "1790000000.1",
            }
        ],
    }


def form(payload) -> bytes:
    return urlencode({"payload": json.dumps(payload)}).encode()


def test_a_signed_click_parses_to_who_which_button_which_proposal():
    body = form(click_payload())
    event = verifier().verify(headers=signed(body), body=body)
    assert isinstance(event, InboundEvent) and event.kind == "block_actions"
    assert event.dedupe_key == "slack:T0SANDBOX:123.456.abcdef" and event.actor == "U0WREN001"
    [action] = parse_board_actions(event)
    assert isinstance(action, BoardAction)
    assert (action.user_id, action.decision, action.proposal_id) == ("U0WREN001", BoardDecision.APPROVE, "prop-7")
    assert action.channel_id == "C0BOARD01" and action.message_ts == "1790000000.000100"
    assert action.response_url.startswith("https://hooks.slack.com/")


@pytest.mark.parametrize("age", [-300, 0, 299, 300])
def test_timestamps_within_300_seconds_are_accepted(age):
    body = form(click_payload())
    verifier(NOW + age).verify(headers=signed(body), body=body)


@pytest.mark.parametrize("age", [301, 3600, -301])
def test_stale_or_future_timestamps_are_rejected(age):
    body = form(click_payload())
    with pytest.raises(InvalidSignature, match="replay window") as err:
        verifier(NOW + age).verify(headers=signed(body), body=body)
    assert err.value.status == 401


def test_missing_wrong_or_malformed_signatures_and_changed_bodies_are_rejected():
    body = form(click_payload())
    good = signed(body)
    cases = {
        "no signature": {k: v for k, v in good.items() if k != "X-Slack-Signature"},
        "no timestamp": {k: v for k, v in good.items() if k != "X-Slack-Request-Timestamp"},
        "other secret": signed(body, secret="0" * 32),
        "not v0": {**good, "X-Slack-Signature": good["X-Slack-Signature"].replace("v0=", "v1=")},
        "upper hex": {**good, "X-Slack-Signature": good["X-Slack-Signature"].upper()},
        "ts not a number": {**good, "X-Slack-Request-Timestamp": "17e8"},
        "ts re-signed other": {**good, "X-Slack-Request-Timestamp": str(NOW - 1)},
    }
    for name, headers in cases.items():
        with pytest.raises(InvalidSignature):
            verifier().verify(headers=headers, body=body)
        assert name
    changed = form(click_payload(action_id="board_reject"))
    with pytest.raises(InvalidSignature, match="does not match"):
        verifier().verify(headers=good, body=changed)


def test_a_signed_non_ascii_body_verifies_through_slack_sdk():
    """slack_sdk signs the decoded text, the sandbox and Slack the raw bytes: the same for UTF-8."""
    proposal = "prop-\u00e9t\u00e9-\u2603"
    body = form(click_payload(value=proposal, block_id=f"board_decision:{proposal}"))
    event = verifier().verify(headers=signed(body), body=body)
    assert parse_board_actions(event)[0].proposal_id == proposal
    with pytest.raises(InvalidSignature, match="does not match"):
        verifier().verify(headers=signed(body, secret="0" * 32), body=body)


def test_a_replay_window_wider_than_slack_sdk_checks_is_refused():
    with pytest.raises(ValueError, match="replay window"):
        SlackRequestVerifier(signing_secret=SecretStr(SECRET), window=301)
    assert "8f2c" not in repr(SlackRequestVerifier(signing_secret=SecretStr(SECRET), window=60))


def test_a_signed_but_unreadable_body_is_a_400_invalid_signature():
    for body in (b"payload=%7Bnot-json", b"\xff\xfe", b"nothing=here", b"payload=%5B1%5D"):
        with pytest.raises(InvalidSignature) as err:
            verifier().verify(headers=signed(body), body=body)
        assert err.value.status == 400


def test_events_api_url_verification_and_slash_commands_parse():
    event = json.dumps(
        {
            "type": "event_callback",
            "team_id": "T0SANDBOX",
            "event_id": "Ev01",
            "event": {"type": "app_mention", "user": "U0OSSI004", "channel": "C0GENERAL"},
        }
    ).encode()
    parsed = verifier().verify(headers=signed(event, content_type="application/json"), body=event)
    assert (parsed.kind, parsed.dedupe_key, parsed.actor) == ("app_mention", "slack:T0SANDBOX:Ev01", "U0OSSI004")
    challenge = json.dumps({"type": "url_verification", "challenge": "c-42"}).encode()
    parsed = verifier().verify(headers=signed(challenge, content_type="application/json"), body=challenge)
    assert parsed.kind == "url_verification" and parsed.attributes["challenge"] == "c-42"
    command = urlencode(
        {"command": "/charter", "text": "status", "user_id": "U0JUNO005", "team_id": "T0SANDBOX", "trigger_id": "9.9.9"}
    ).encode()
    parsed = verifier().verify(headers=signed(command), body=command)
    assert parsed.kind == "slash_command" and parsed.attributes["command"] == "/charter"
    assert parse_board_actions(parsed) == []


def test_other_buttons_are_ignored_and_inconsistent_board_buttons_refused():
    body = form(click_payload(action_id="something_else"))
    assert parse_board_actions(verifier().verify(headers=signed(body), body=body)) == []
    for payload in (
        click_payload(action_id="board_maybe"),
        click_payload(value=""),
        click_payload(block_id="board_decision:prop-8"),
    ):
        body = form(payload)
        with pytest.raises(InvalidSignature) as err:
            parse_board_actions(verifier().verify(headers=signed(body), body=body))
        assert err.value.status == 400


def test_board_check_by_user_id_email_workspace_and_empty_list():
    body = form(click_payload(user="U0WREN001"))
    [action] = parse_board_actions(verifier().verify(headers=signed(body), body=body))
    assert check_board_member(action, board=["U0WREN001"]).allowed
    by_mail = check_board_member(
        action, board=["wren.halloway@example.org"], resolved={"Wren.Halloway@example.org": "U0WREN001"}
    )
    assert by_mail.allowed and by_mail.matched == "wren.halloway@example.org"
    denied = check_board_member(action, board=["U0TOBI002", "pella.marchetti@example.org"], resolved={})
    assert not denied.allowed and "not on the Board list" in denied.reason and "1 e-mail entry" in denied.reason
    assert not check_board_member(action, board=[]).allowed
    assert "empty" in check_board_member(action, board=["  "]).reason
    other_team = check_board_member(action, board=["U0WREN001"], team_id="T0ELSEWHERE")
    assert not other_team.allowed and "T0ELSEWHERE" in other_team.reason


header_values = st.one_of(st.text(max_size=80), st.sampled_from(["v0=" + "a" * 64, str(NOW), "", "v0="]))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    headers=st.dictionaries(
        st.one_of(
            st.sampled_from(["X-Slack-Signature", "X-Slack-Request-Timestamp", "x-slack-signature", "Content-Type"]),
            st.text(max_size=20),
        ),
        header_values,
        max_size=5,
    ),
    body=st.binary(max_size=600),
)
def test_fuzzed_unsigned_requests_only_ever_raise_invalid_signature(headers, body):
    with pytest.raises(InvalidSignature):
        verifier().verify(headers=headers, body=body)


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=30)),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=25,
)
payload_like = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["block_actions", "view_submission", "", "event_callback", "url_verification"]),
        "user": st.one_of(json_values, st.fixed_dictionaries({"id": st.text(max_size=12)})),
        "team": json_values,
        "trigger_id": json_values,
        "container": json_values,
        "actions": st.one_of(
            json_values,
            st.lists(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "action_id": st.sampled_from(
                            ["board_approve", "board_reject", "board_needs_info", "board_", "x"]
                        ),
                        "value": json_values,
                        "block_id": json_values,
                    },
                ),
                max_size=3,
            ),
        ),
        "event": json_values,
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=payload_like, shape=st.sampled_from(["form", "json", "raw"]), raw=st.binary(max_size=200))
def test_fuzzed_signed_bodies_parse_or_raise_only_invalid_signature(payload, shape, raw):
    if shape == "form":
        body, ctype = form(payload), "application/x-www-form-urlencoded"
    elif shape == "json":
        body, ctype = json.dumps(payload).encode(), "application/json"
    else:
        body, ctype = raw, "application/x-www-form-urlencoded"
    try:
        event = verifier().verify(headers=signed(body, content_type=ctype), body=body)
        actions = parse_board_actions(event)
    except InvalidSignature:
        return
    assert isinstance(event, InboundEvent) and event.dedupe_key.startswith("slack:")
    for action in actions:
        assert isinstance(action.decision, BoardDecision) and action.proposal_id and action.user_id
