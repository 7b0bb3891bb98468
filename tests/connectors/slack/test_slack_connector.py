"""The Slack connector against the Slack sandbox over real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from connectors.errors import ConfigError, FatalError, InvalidSignature, RetriableError
from connectors.slack.blocks import BoardEscalation, Endorsement, SlackMessage
from connectors.slack.client import SlackConfigError, SlackFatalError, SlackRetriableError
from connectors.slack.connector import SlackConnector, split_ref
from connectors.slack.sandbox import SlackSandbox
from tests.support.slack import TIME_FACTOR, MiniGateway

BOARD = "C0BOARD01"


def escalation(pid: str = "prop-2026-040") -> BoardEscalation:
    return BoardEscalation(
        proposal_id=pid,
        kind="migrate-platform",
        title="Move the chat bridge to a new host",
        summary="The WG endorses moving the chat bridge.",
        endorsement=Endorsement(result="endorsed", yes=5, no=0),
        full_text_url="https://forum.example.org/t/chat-bridge/90",
    )


def messages(box, channel=BOARD):
    return box.state()["messages"].get(channel, [])


# ---- Messenger -----------------------------------------------------------------------------


def test_post_reply_update_and_dm_land_where_expected(slack):
    connector = slack.connect()
    first = connector.post(channel=BOARD, title="Quarterly meeting", text="Agenda & <notes> follow.")
    channel, ts = split_ref(first)
    assert channel == BOARD and first.thread_id == first.id
    assert first.url == f"https://sandbox-foundation.slack.com/archives/{BOARD}/p{ts.replace('.', '')}"
    reply = connector.reply(thread_id=first.thread_id, text="Minutes are in the forum.")
    assert reply.thread_id == first.thread_id and reply.id != first.id
    stored = messages(slack)
    assert stored[0]["text"].startswith("Quarterly meeting: Agenda &amp; &lt;notes&gt;")
    assert stored[0]["reply_count"] == 1 and stored[1]["thread_ts"] == ts
    dm = connector.direct_message(
        recipients=["U0TOBI002", "pella.marchetti@example.org"], title="Private note", text="For the Board only."
    )
    dm_channel, _ = split_ref(dm)
    assert dm_channel.startswith("G") and len(messages(slack, dm_channel)) == 1
    one = connector.direct_message(recipients=["U0TOBI002"], title="Hello", text="Just you.")
    assert split_ref(one)[0].startswith("D")


def test_a_key_makes_posts_and_replies_happen_once(slack):
    connector = slack.connect()
    first = connector.post(channel=BOARD, title="Report", text="Once.", key="report:2026-Q3")
    assert connector.post(channel=BOARD, title="Report", text="Once.", key="report:2026-Q3") == first
    r1 = connector.reply(thread_id=first.thread_id, text="Reminder.", key="reminder:1")
    assert connector.reply(thread_id=first.thread_id, text="Reminder.", key="reminder:1") == r1
    # a fresh connector (a restarted worker) finds them too
    again = slack.connect()
    assert again.post(channel=BOARD, title="Report", text="Once.", key="report:2026-Q3") == first
    assert len(messages(slack)) == 2
    assert "metadata" not in messages(slack)[0]  # only with include_all_metadata


def test_find_user_by_email_and_its_failures(slack):
    connector = slack.connect()
    user = connector.find_user_by_email("Wren.Halloway@example.org")
    assert (user.id, user.username, user.display_name) == ("U0WREN001", "wren.halloway", "Wren Halloway")
    with pytest.raises(SlackFatalError) as missing:
        connector.find_user_by_email("nobody.here@example.org")
    assert missing.value.slack_error == "users_not_found" and "nobody.here@example.org" in str(missing.value)
    with pytest.raises(FatalError):
        connector.find_user_by_email("former.member@example.org")  # deactivated
    assert connector.resolve_board(["U0WREN001", "tobin.ashgrove@example.org", "ghost@example.org"]) == {
        "tobin.ashgrove@example.org": "U0TOBI002"
    }


@pytest.mark.parametrize(
    ("channel", "message", "code"),
    [
        ("C0NOSUCH1", None, "channel_not_found"),
        ("C0GENERAL", None, "not_in_channel"),
        ("C0OLDBRD1", None, "is_archived"),
        (
            BOARD,
            SlackMessage(text="x", blocks=({"type": "section", "text": {"type": "mrkdwn", "text": "y" * 3001}},)),
            "invalid_blocks",
        ),
        (BOARD, SlackMessage(text="z" * 40001), "msg_too_long"),
        (BOARD, SlackMessage(text=""), "no_text"),
    ],
)
def test_ok_false_answers_become_fatal_errors_with_slacks_code(slack, channel, message, code):
    connector = slack.connect()
    with pytest.raises(SlackFatalError) as err:
        connector.send(channel=channel, message=message or SlackMessage(text="hello"))
    assert isinstance(err.value, FatalError) and err.value.slack_error == code and code in str(err.value)
    assert err.value.method == "chat.postMessage"
    assert slack.state()["outcomes"]["chat.postMessage"][code] == 1  # asked once, not retried


def test_invalid_auth_is_a_config_error_and_names_the_setting(slack):
    connector = slack.connect(bot_token="xoxb-not-the-sandbox-token-0000")
    with pytest.raises(SlackConfigError) as err:
        connector.post(channel=BOARD, title="t", text="x")
    assert isinstance(err.value, ConfigError) and err.value.slack_error == "invalid_auth"
    assert "CHARTERFLOW_SLACK_BOT_TOKEN" in str(err.value)
    assert "xoxb-not-the-sandbox-token-0000" not in str(err.value)


def test_channel_names_are_refused_before_any_call(slack):
    connector = slack.connect()
    with pytest.raises(FatalError, match="not a channel ID"):
        connector.post(channel="#dsf-board", title="t", text="x")
    assert slack.state()["requests"] == {}


# ---- rate limits and faults ----------------------------------------------------------------


def test_retry_after_is_honoured_through_the_injected_sleep(slack):
    slept: list[float] = []
    connector = slack.connect(sleep=slept.append)
    slack.faults(storm={"count": 2, "retry_after": 3, "method": "chat.postMessage"})
    connector.send(channel=BOARD, message=SlackMessage(text="after the storm"))
    assert len(slept) == 2 and all(3 <= s < 4 for s in slept)  # Retry-After + up to 1 s jitter
    assert len(messages(slack)) == 1


def test_a_retry_after_longer_than_max_wait_is_raised_not_slept(slack):
    slept: list[float] = []
    connector = slack.connect(sleep=slept.append, max_wait=60)
    slack.faults(storm={"count": 1, "retry_after": 600})
    with pytest.raises(SlackRetriableError) as err:
        connector.send(channel=BOARD, message=SlackMessage(text="later"))
    assert err.value.status == 429 and err.value.retry_after == 600 and err.value.slack_error == "ratelimited"
    assert slept == [] and messages(slack) == []


def test_a_429_storm_on_the_board_channel_delays_but_never_loses_or_duplicates(slack, report):
    """12 messages from 3 threads through a storm plus the ~1/s per-channel limit (scaled)."""
    connector = slack.connect()
    slack.faults(storm={"count": 8, "retry_after": 1, "channel": BOARD})
    texts = [f"board note {i:02d}" for i in range(12)]
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=3) as pool:
        refs = list(pool.map(lambda t: connector.send(channel=BOARD, message=SlackMessage(text=t)), texts))
    elapsed = time.monotonic() - started
    state = slack.state()
    posted = [m["text"] for m in state["messages"][BOARD]]
    assert sorted(posted) == texts  # each message exactly once
    assert len({r.id for r in refs}) == 12
    limited = state["rate_limited"]
    assert sum(1 for e in limited if e["kind"] == "storm") == 8
    # 12 messages, burst 3, 1 per (scaled) second: at least 9 scaled seconds of waiting.
    minimum = 9 * TIME_FACTOR
    assert elapsed >= minimum * 0.9
    assert elapsed < 15  # generous: a loaded shared machine
    report(
        "slack_storm",
        f"slack 429 storm: 12 posts, {len(limited)} 429s "
        f"({sum(1 for e in limited if e['kind'] == 'channel')} per-channel), {elapsed:.2f}s "
        f"(limit allows {minimum:.2f}s); delivered {len(posted)}, duplicates 0",
    )


def test_server_errors_on_reads_are_retried_then_raised(slack):
    connector = slack.connect(max_retries=2)
    slack.faults(error_rate=1.0, error_status=503)
    with pytest.raises(SlackRetriableError) as err:
        connector.find_user_by_email("wren.halloway@example.org")
    assert err.value.status == 503 and not err.value.ambiguous
    assert slack.state()["requests"]["users.lookupByEmail"] == 3
    slack.faults(error_rate=0.5, error_status=500, seed=7)
    for _ in range(5):
        try:
            assert connector.find_user_by_email("wren.halloway@example.org").id == "U0WREN001"
        except SlackRetriableError:
            pass  # three 500s in a row can happen at 50 %


def test_a_post_is_never_repeated_blindly_after_a_5xx(slack):
    connector = slack.connect()
    slack.faults(error_rate=1.0, error_status=500)
    with pytest.raises(RetriableError) as err:
        connector.send(channel=BOARD, message=SlackMessage(text="unkeyed"))
    assert err.value.ambiguous
    assert slack.state()["requests"]["chat.postMessage"] == 1


def test_dropped_connections_with_keys_deliver_each_message_exactly_once(slack, report):
    connector = slack.connect(max_retries=6)
    slack.faults(drop_rate=0.35, drop_phase="after", seed=11)
    delivered, failed = 0, 0
    for i in range(10):
        try:
            connector.send(channel=BOARD, message=SlackMessage(text=f"keyed {i}"), key=f"k{i}")
            delivered += 1
        except RetriableError:
            failed += 1
    slack.faults()
    for i in range(10):  # the caller retries what failed, with the same key
        connector.send(channel=BOARD, message=SlackMessage(text=f"keyed {i}"), key=f"k{i}")
    posted = [m["text"] for m in messages(slack)]
    assert sorted(posted) == sorted(f"keyed {i}" for i in range(10))
    report(
        "slack_drops", f"slack drops 35%: {delivered} delivered first time, {failed} raised; 10 stored, 0 duplicates"
    )


# ---- the Board decision round trip ---------------------------------------------------------


def test_board_click_round_trip_updates_the_message_or_answers_not_allowed(slack, serve):
    connector = slack.connect()
    e = escalation()
    ref = connector.escalate(e)
    assert connector.escalate(e) == ref  # at most once per proposal
    gateway = MiniGateway(
        connector=connector, board=["U0WREN001", "tobin.ashgrove@example.org"], escalations={e.proposal_id: e}
    )
    hook = serve(gateway)
    channel, ts = split_ref(ref)

    # someone not on the Board list: ephemeral "not allowed", message untouched, attempt audited
    answer = slack.sandbox.click(
        f"{hook.url}/hooks/slack",
        base_url=slack.url,
        user="U0OSSI004",
        channel=channel,
        ts=ts,
        action_id="board_approve",
    )
    assert answer.status_code == 200
    state = slack.state()
    assert state["ephemeral"][-1]["user"] == "U0OSSI004" and "not allowed" in state["ephemeral"][-1]["text"]
    assert any(b["type"] == "actions" for b in state["messages"][BOARD][0]["blocks"])
    assert gateway.audit[-1] == {
        "user": "U0OSSI004",
        "decision": "approve",
        "proposal": e.proposal_id,
        "allowed": False,
        "reason": "U0OSSI004 is not on the Board list",
    }

    # a Board member listed by e-mail: the message shows who decided, and the buttons are gone
    answer = slack.sandbox.click(
        f"{hook.url}/hooks/slack",
        base_url=slack.url,
        user="U0TOBI002",
        channel=channel,
        ts=ts,
        action_id="board_reject",
    )
    assert answer.status_code == 200
    message = slack.state()["messages"][BOARD][0]
    assert not any(b["type"] == "actions" for b in message["blocks"]) and "edited" in message
    assert "*Rejected* by <@U0TOBI002>" in json.dumps(message["blocks"])
    assert gateway.audit[-1]["allowed"] is True

    # the decided message has no buttons left to click
    gone = httpx.post(
        f"{slack.url}/_sandbox/interact",
        json={
            "url": f"{hook.url}/hooks/slack",
            "user": "U0JUNO005",
            "channel": channel,
            "ts": ts,
            "action_id": "board_needs_info",
        },
        timeout=10,
    )
    assert gone.status_code == 400 and "no button" in gone.json()["error"]

    # a click through the control route on a second proposal: "needs more information" keeps the buttons
    e2 = escalation("prop-2026-041")
    gateway.escalations[e2.proposal_id] = e2
    ch2, ts2 = split_ref(connector.escalate(e2))
    control = httpx.post(
        f"{slack.url}/_sandbox/interact",
        json={
            "url": f"{hook.url}/hooks/slack",
            "user": "U0WREN001",
            "channel": ch2,
            "ts": ts2,
            "action_id": "board_needs_info",
        },
        timeout=10,
    )
    assert control.json()["status"] == 200
    second = slack.state()["messages"][BOARD][1]
    assert "More information requested* by <@U0WREN001>" in json.dumps(second["blocks"])
    assert any(b["type"] == "actions" for b in second["blocks"])
    assert [a["allowed"] for a in gateway.audit] == [False, True, True]

    # a forged click (body changed after signing) is refused before anything is parsed
    headers, body = slack.sandbox.signed_request(kind="block_actions", payload={"user": {"id": "U0WREN001"}})
    forged = httpx.post(f"{hook.url}/hooks/slack", content=body.replace(b"U0WREN001", b"U0JUNO005"), headers=headers)
    assert forged.status_code == 401


def test_response_urls_are_single_host_and_limited_to_five_uses(slack):
    connector = slack.connect()
    ref = connector.escalate(escalation("prop-9"))
    channel, ts = split_ref(ref)
    payload = slack.sandbox.block_actions_payload(
        slack.url, user="U0JUNO005", channel=channel, ts=ts, action_id="board_approve"
    )
    url = payload["response_url"]
    for _ in range(5):
        connector.respond(url, {"response_type": "ephemeral", "text": "noted"})
    with pytest.raises(SlackFatalError) as err:
        connector.respond(url, {"text": "sixth"})
    assert err.value.slack_error == "used_url"
    with pytest.raises(FatalError, match="not a Slack host"):
        connector.respond("https://attacker.example.net/actions/T/1/x", {"text": "x"})
    with pytest.raises(FatalError, match="not a Slack host"):
        connector.respond(url.replace(slack.url, "http://127.0.0.2:1"), {"text": "x"})
    assert len(slack.state()["response_posts"]) == 5


def test_verify_without_a_signing_secret_refuses_everything(slack):
    connector = slack.connect(signing_secret=None)
    headers, body = slack.sandbox.signed_request(kind="app_mention", payload={"user": "U0OSSI004"})
    with pytest.raises(ConfigError, match="CHARTERFLOW_SLACK_SIGNING_SECRET"):
        connector.verify(headers=headers, body=body)


# ---- settings and secrets ------------------------------------------------------------------


def test_from_env_names_what_is_missing_or_wrong(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no .env here
    for var in ("CHARTERFLOW_SLACK_BOT_TOKEN", "CHARTERFLOW_SLACK_BOARD_CHANNEL", "CHARTERFLOW_SLACK_SIGNING_SECRET"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(ConfigError) as err:
        SlackConnector.from_env()
    assert "CHARTERFLOW_SLACK_BOT_TOKEN is not set" in str(err.value)
    assert "CHARTERFLOW_SLACK_BOARD_CHANNEL is not set" in str(err.value)
    monkeypatch.setenv("CHARTERFLOW_SLACK_BOT_TOKEN", "xoxb-env-token-123456")
    monkeypatch.setenv("CHARTERFLOW_SLACK_BOARD_CHANNEL", "#dsf-board")
    with pytest.raises(ConfigError, match="CHARTERFLOW_SLACK_BOARD_CHANNEL is invalid"):
        SlackConnector.from_env()
    monkeypatch.setenv("CHARTERFLOW_SLACK_BOARD_CHANNEL", "C0BOARD01")
    connector = SlackConnector.from_env()
    assert connector.settings.base_url == "https://slack.com/api/"
    assert "xoxb-env-token-123456" not in repr(connector.settings) + repr(connector) + str(connector.settings)


def test_secrets_never_appear_in_logs_errors_reprs_or_state(serve, caplog):
    box = serve(SlackSandbox(time_factor=TIME_FACTOR))
    sandbox = box.sandbox
    token, secret = sandbox.bot_token, sandbox.signing_secret
    caplog.set_level(logging.DEBUG)
    logging.getLogger("slack_sdk").setLevel(logging.DEBUG)
    seen: list[str] = []
    connector = box.connect()
    sdk_logger = logging.getLogger("charterflow.connectors.slack.sdk")
    sdk_logger.setLevel(logging.DEBUG)

    def attempt(fn):
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - collecting every error's text
            seen.extend([str(exc), repr(exc), repr(exc.args)])

    attempt(lambda: connector.post(channel=BOARD, title="t", text="hello"))
    attempt(lambda: connector.post(channel="C0NOSUCH1", title="t", text="x"))
    attempt(lambda: connector.find_user_by_email("ghost@example.org"))
    box.faults(error_rate=1.0, error_status=503)
    attempt(lambda: connector.find_user_by_email("wren.halloway@example.org"))
    box.faults(drop_rate=1.0)
    attempt(lambda: connector.send(channel=BOARD, message=SlackMessage(text="drop")))
    box.faults()
    headers, body = sandbox.signed_request(kind="app_mention", payload={"user": "U0OSSI004"})
    attempt(lambda: connector.verify(headers={**headers, "X-Slack-Signature": "v0=" + "0" * 64}, body=body))
    attempt(lambda: connector.verify(headers=headers, body=body + b" "))
    wrong = box.connect(bot_token=token[:-4] + "abcd")
    attempt(lambda: wrong.post(channel=BOARD, title="t", text="x"))
    seen += [
        repr(connector),
        str(connector.settings),
        repr(connector.settings),
        repr(connector.client),
        repr(connector._verifier),
        repr(sandbox),
        json.dumps(box.state()),
        httpx.get(f"{box.url}/_sandbox/state").text,
    ]
    seen += [r.getMessage() for r in caplog.records]
    text = "\n".join(seen)
    assert "chat.postMessage" in text and "invalid_auth" in text  # the collection did capture things
    assert token not in text and token[:-4] not in text
    assert secret not in text
    with pytest.raises(InvalidSignature):
        connector.verify(headers=headers, body=body + b" ")


def test_sandbox_control_routes_and_client_info(slack):
    info = slack.sandbox.client_info(slack.url)
    assert info["env"]["CHARTERFLOW_SLACK_BOARD_CHANNEL"] == BOARD and info["base_url"].endswith("/api/")
    bad = httpx.post(f"{slack.url}/_sandbox/faults", json={"unknown": 1}, timeout=10)
    assert bad.status_code == 400
    raw = httpx.post(f"{slack.url}/api/auth.test", timeout=10).json()
    assert raw == {"ok": False, "error": "not_authed"}
    assert slack.faults(storm={"count": 1})["faults"]["storm"]["count"] == 1
    ok = httpx.post(f"{slack.url}/api/auth.test", headers=info["headers"], timeout=10)
    assert ok.status_code == 429 and ok.headers["Retry-After"] == "1"  # the storm
    assert (
        httpx.post(f"{slack.url}/api/auth.test", headers=info["headers"], timeout=10).json()["team_id"] == "T0SANDBOX"
    )
    assert httpx.post(f"{slack.url}/_sandbox/reset", timeout=10).json() == {"ok": True}
    assert slack.state()["requests"] == {}


def test_threads_share_one_connector_safely(slack):
    connector = slack.connect()
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            connector.post(channel=BOARD, title=f"t{i}", text="x", key=f"thread-{i}")
        except BaseException as exc:  # noqa: BLE001 - the main thread asserts on what was caught
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(messages(slack)) == 6


def test_a_token_without_a_scope_the_call_needs_is_a_config_error_naming_the_scope(serve):
    # The common room's channel check (conversations.info on a private channel) with a token
    # lacking groups:read, as an app configured without the common room's scopes is refused.
    seed = SlackSandbox().seed.model_dump()
    seed["bot_scopes"] = [s for s in seed["bot_scopes"] if s != "groups:read"]
    box = serve(SlackSandbox(seed=seed, time_factor=TIME_FACTOR))
    connector = box.connect()
    with pytest.raises(ConfigError) as refused:
        connector.room_key(BOARD)
    message = str(refused.value)
    assert "missing_scope (needs groups:read; the token has chat:write," in message
    assert "reinstall" in message and box.sandbox.bot_token not in message
    assert connector.room_key("C0GENERAL") == "C0GENERAL"  # a public channel needs channels:read only
