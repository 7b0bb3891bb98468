"""Slack's Bolt for Python (slack_bolt), which we did not write, as a Slack app of the Slack
sandbox's workspace: its token and signing secret, its client on the sandbox's Web API, served on
127.0.0.1 (Bolt's Starlette adapter) as the app's Request URL. It judges what the sandbox sends an
app and answers it as Slack would:

- Bolt's start-up ``auth.test`` (token verification on), and the bot it learns from it;
- a button click (``block_actions``): acknowledged within Slack's 3 s (a later answer fails the
  click), ``respond()`` through the ``response_url``, the listener's ``chat.update`` and
  ``chat.postMessage``;
- the Events API: the signed ``url_verification`` handshake before a Request URL is kept, people's
  message events reaching ``@app.event("message")`` (the app's own acknowledged as Bolt's
  own), and Slack's retries (``X-Slack-Retry-Num``, ``X-Slack-Retry-Reason``) when the app fails
  or answers late;
- the sandbox's signatures: a sandbox-signed request tampered with, or signed too long ago, is
  refused by Bolt;
- Bolt's client on the Web API methods an app calls, cursor paging included; a method the sandbox
  does not emulate fails as ``not_emulated`` (HTTP 200, as Slack answers every failure), never as
  a refusal of Slack's.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from slack_bolt import App, BoltResponse
from slack_bolt.adapter.starlette import SlackRequestHandler
from slack_bolt.error import BoltError
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from connectors.slack.inbound import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign_request
from connectors.slack.sandbox import SlackSandbox, default_seed
from tests.procs import wait_for
from tests.support.net import LoopbackServer

BOARD, GENERAL, AGENDA = "C0BOARD01", "C0GENERAL", "C0AGENDA1"
WREN, TOBIN, OSSIAN = "U0WREN001", "U0TOBI002", "U0OSSI004"


@pytest.fixture
def bolt(slack: Any) -> Iterator[Callable[..., tuple[App, str]]]:
    """``bolt(**options)``: a Bolt ``App`` with the sandbox's credentials and its client on the
    sandbox's Web API (``options`` go to ``App``), and its Request URL on 127.0.0.1."""
    servers: list[LoopbackServer] = []

    def start(**options: Any) -> tuple[App, str]:
        info = slack.sandbox.client_info(slack.url)
        client = WebClient(token=info["credentials"]["bot_token"], base_url=info["base_url"])
        options.setdefault("signing_secret", info["credentials"]["signing_secret"])
        app = App(client=client, token_verification_enabled=True, **options)
        handler = SlackRequestHandler(app)

        async def endpoint(request: Request) -> Response:
            return await handler.handle(request)

        server = LoopbackServer(Starlette(routes=[Route("/slack/events", endpoint, methods=["POST"])])).__enter__()
        servers.append(server)
        return app, f"{server.url}/slack/events"

    yield start
    for server in reversed(servers):
        server.__exit__(None, None, None)


def _buttons(text: str, *action_ids: str) -> list[dict[str, Any]]:
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": text}},
        {
            "type": "actions",
            "block_id": "decision",
            "elements": [
                {"type": "button", "action_id": a, "value": "prop-7", "text": {"type": "plain_text", "text": a}}
                for a in action_ids
            ],
        },
    ]


def _set_events_url(slack: Any, url: str, **subscriptions: Any) -> httpx.Response:
    return httpx.post(f"{slack.url}/_sandbox/events_url", json={"url": url, **subscriptions}, timeout=10)


def _say(slack: Any, **message: Any) -> dict[str, Any]:
    """A person writes, edits or deletes (``/_sandbox/messages[/edit|/delete]``); the sandbox
    answers once the event is delivered, retries included."""
    path = message.pop("path", "messages")
    answer = httpx.post(f"{slack.url}/_sandbox/{path}", json=message, timeout=30)
    answer.raise_for_status()
    return dict(answer.json())


# ---- start-up ------------------------------------------------------------------------------------


def test_bolt_starts_after_the_sandboxes_auth_test_and_a_wrong_token_stops_it(
    bolt: Callable[..., tuple[App, str]], slack: Any
) -> None:
    bolt()
    assert slack.sandbox.responses["auth.test"] == {"ok": 1}
    with pytest.raises(BoltError, match="invalid_auth"):
        App(
            client=WebClient(token="xoxb-not-the-sandboxes-token", base_url=f"{slack.url}/api/"),
            signing_secret=slack.sandbox.signing_secret,
        )


# ---- interactivity -------------------------------------------------------------------------------


def test_bolt_acknowledges_a_click_in_time_and_its_listener_changes_the_message(
    bolt: Callable[..., tuple[App, str]], slack: Any
) -> None:
    app, url = bolt()
    seen: list[dict[str, Any]] = []
    errors: list[BaseException] = []
    done = threading.Semaphore(0)
    app.error(lambda error: errors.append(error))

    @app.action(re.compile(r"^board_"))
    def decide(ack: Any, action: Any, body: Any, respond: Any, client: Any, context: Any) -> None:
        ack()
        try:
            seen.append({"action": action["action_id"], "user": body["user"]["id"], "context": dict(context)})
            channel, ts, user = body["channel"]["id"], body["container"]["message_ts"], body["user"]["id"]
            if user == OSSIAN:
                respond(text="Only the Board decides.")  # ephemeral, to the clicker alone
            elif action["action_id"] == "board_approve":
                respond(replace_original=True, text="Approved", blocks=_buttons(f"*Approved* by <@{user}>")[:1])
            else:
                client.chat_update(channel=channel, ts=ts, text="More information requested")
            client.chat_postMessage(channel=channel, thread_ts=ts, text=f"<@{user}> pressed {action['action_id']}")
        finally:
            done.release()

    first = app.client.chat_postMessage(
        channel=BOARD, text="Proposal 7", blocks=_buttons("Proposal 7", "board_approve", "board_needs_info")
    )
    second = app.client.chat_postMessage(
        channel=BOARD, text="Proposal 8", blocks=_buttons("Proposal 8", "board_needs_info")
    )

    def click(user: str, ts: str, action_id: str) -> httpx.Response:
        answer = slack.sandbox.click(url, base_url=slack.url, user=user, channel=BOARD, ts=ts, action_id=action_id)
        assert done.acquire(timeout=10), "the listener ran"
        return answer

    refused = click(OSSIAN, first["ts"], "board_approve")
    approved = click(WREN, first["ts"], "board_approve")
    asked = click(TOBIN, second["ts"], "board_needs_info")
    assert errors == []
    for answer in (refused, approved, asked):
        assert answer.status_code == 200 and answer.elapsed.total_seconds() < 3  # Slack's 3 s
    assert [(s["user"], s["action"]) for s in seen] == [
        (OSSIAN, "board_approve"),
        (WREN, "board_approve"),
        (TOBIN, "board_needs_info"),
    ]
    # Bolt's context, from the sandbox's auth.test and the click
    box = slack.sandbox.seed
    assert {k: seen[1]["context"][k] for k in ("bot_user_id", "bot_id", "team_id", "channel_id", "user_id")} == {
        "bot_user_id": box.bot_user_id,
        "bot_id": box.bot_id,
        "team_id": box.team_id,
        "channel_id": BOARD,
        "user_id": WREN,
    }
    state = slack.state()
    assert state["ephemeral"] == [{"user": OSSIAN, "channel": BOARD, "text": "Only the Board decides.", "blocks": None}]
    top = [m for m in state["messages"][BOARD] if "thread_ts" not in m or m["thread_ts"] == m["ts"]]
    assert [(m["ts"], m["text"], "edited" in m) for m in top] == [
        (first["ts"], "Approved", True),
        (second["ts"], "More information requested", True),
    ]
    assert top[0]["blocks"] == _buttons(f"*Approved* by <@{WREN}>")[:1]  # the buttons replaced
    replies = [m["text"] for m in state["messages"][BOARD] if m.get("thread_ts") and m["ts"] != m["thread_ts"]]
    assert replies == [
        f"<@{OSSIAN}> pressed board_approve",
        f"<@{WREN}> pressed board_approve",
        f"<@{TOBIN}> pressed board_needs_info",
    ]
    assert [p["replace_original"] for p in state["response_posts"]] == [False, True]


def test_a_click_bolt_acknowledges_after_slacks_3_seconds_fails(
    bolt: Callable[..., tuple[App, str]], slack: Any
) -> None:
    # https://api.slack.com/interactivity/handling#acknowledgment_response: Slack shows the user
    # an error; the sandbox once waited 10 s and took the late answer as a success.
    app, url = bolt(process_before_response=True)  # Bolt answers only when the listener returns

    @app.action("board_approve")
    def slow(ack: Any) -> None:
        time.sleep(3.5)
        ack()

    posted = app.client.chat_postMessage(channel=BOARD, text="Proposal 9", blocks=_buttons("P9", "board_approve"))
    started = time.monotonic()
    late = httpx.post(
        f"{slack.url}/_sandbox/interact",
        json={"url": url, "user": WREN, "channel": BOARD, "ts": posted["ts"], "action_id": "board_approve"},
        timeout=30,
    )
    assert late.status_code == 502 and late.json()["error"] == "ReadTimeout"
    assert time.monotonic() - started > 2.9  # Slack's 3 s, not less
    # The failed click is on record (the inspector shows it), with no status: nothing answered in time.
    [click] = slack.sandbox.state()["interactions"]
    assert (click["status"], click["error"], click["action_id"]) == (None, "ReadTimeout", "board_approve")


# ---- the Events API ------------------------------------------------------------------------------


def test_the_events_url_is_kept_once_bolt_answers_the_signed_challenge(
    bolt: Callable[..., tuple[App, str]], slack: Any
) -> None:
    # https://api.slack.com/apis/events-api#handshake: Slack sends url_verification when the
    # Request URL is set and keeps the URL only once it answers with the challenge.
    _, other_secret = bolt(signing_secret="0123456789abcdef0123456789abcdef")
    app, url = bolt()
    for wrong in (other_secret, url.replace("/slack/events", "/elsewhere")):  # Bolt: 401, Starlette: 404
        refused = _set_events_url(slack, wrong)
        assert refused.status_code == 400 and "challenge" in refused.json()["error"]
        assert slack.sandbox.events_url is None
    kept = {"ok": True, "url": url, "bot_events": ["message.channels", "message.groups"]}  # charterflow's
    assert _set_events_url(slack, url).json() == kept
    assert slack.sandbox.events_url == url


def test_bolt_receives_peoples_message_events_and_acknowledges_its_own(
    bolt: Callable[..., tuple[App, str]], slack: Any
) -> None:
    app, url = bolt()
    seen: list[tuple[dict[str, Any], Any, Any]] = []

    @app.event("message")
    def on_message(event: Any, context: Any, say: Any) -> None:
        seen.append((event, context.channel_id, context.user_id))
        if "subtype" not in event:
            say(text="Noted for the agenda.", thread_ts=event["ts"])  # chat.postMessage in the channel

    _set_events_url(slack, url).raise_for_status()
    said = _say(slack, user=WREN, channel=BOARD, text="Shall we meet on Thursday?")
    edited = _say(slack, path="messages/edit", channel=BOARD, ts=said["ts"], text="Shall we meet on Friday?")
    assert wait_for(lambda: any(m.get("thread_ts") == said["ts"] for m in slack.sandbox.messages[BOARD]), 10, step=0.02)
    deleted = _say(slack, path="messages/delete", channel=BOARD, ts=said["ts"])
    assert [said["deliveries"], edited["deliveries"], deleted["deliveries"]] == [[200], [200], [200]]
    assert wait_for(lambda: len(seen) == 3, 10, step=0.02)
    (message, channel, user), (changed, _, _), (gone, _, _) = seen
    assert (message["text"], message["user"], message["channel_type"], channel, user) == (
        "Shall we meet on Thursday?",
        WREN,
        "group",
        BOARD,
        WREN,
    )
    assert (changed["subtype"], changed["message"]["text"]) == ("message_changed", "Shall we meet on Friday?")
    # It had the app's reply: Slack keeps it as a tombstone and says so with a message_changed
    # (https://github.com/42wim/matterbridge/issues/600), not a message_deleted.
    assert (gone["subtype"], gone["message"]["subtype"], gone["message"]["ts"]) == (
        "message_changed",
        "tombstone",
        said["ts"],
    )
    # The app's reply came back as an event too: Bolt, knowing its bot from auth.test, answered
    # it 200 without running the listener.
    [reply] = [m for m in slack.sandbox.messages[BOARD] if m.get("thread_ts") == said["ts"] != m["ts"]]
    assert reply["text"] == "Noted for the agenda." and reply["bot_id"] == slack.sandbox.seed.bot_id
    # An app's bot user posts as a user, no legacy "bot_message" subtype (Bolt knows it by bot_id).
    assert "subtype" not in reply and reply["bot_profile"]["app_id"] == slack.sandbox.seed.app_id
    bot = slack.sandbox.seed.bot_user_id
    assert wait_for(lambda: any(d["user"] == bot for d in slack.sandbox.deliveries), 10, step=0.02)
    assert [d["status"] for d in slack.sandbox.deliveries if d["user"] == bot] == [200]
    time.sleep(0.2)  # time for a listener Bolt would have run after its answer
    assert len(seen) == 3


def test_slack_retries_an_event_bolt_fails_or_answers_late_with_its_retry_headers(
    bolt: Callable[..., tuple[App, str]], slack: Any
) -> None:
    # https://api.slack.com/apis/events-api#retries: a failure, then a timeout (3 s), then 2xx.
    app, url = bolt(process_before_response=True)  # the listener's outcome is the answer
    attempts: list[tuple[str | None, str | None, str]] = []

    @app.event("message")
    def flaky(body: Any, request: Any) -> None:
        headers = request.headers
        retry = (headers.get("x-slack-retry-num") or [None])[0], (headers.get("x-slack-retry-reason") or [None])[0]
        attempts.append((*retry, body["event_id"]))
        if len(attempts) == 1:
            raise RuntimeError("the app fails")
        if len(attempts) == 2:
            time.sleep(3.5)

    _set_events_url(slack, url).raise_for_status()
    said = _say(slack, user=WREN, channel=BOARD, text="Is the budget ready?")
    assert said["deliveries"] == [500, "http_timeout", 200]
    event_id = said["event_id"]
    assert attempts == [(None, None, event_id), ("1", "http_error", event_id), ("2", "http_timeout", event_id)]


def test_an_app_answering_x_slack_no_retry_is_not_sent_the_event_again(
    bolt: Callable[..., tuple[App, str]], slack: Any
) -> None:
    # https://api.slack.com/apis/events-api#retries: "X-Slack-No-Retry: 1" on a failed answer.
    app, url = bolt()
    attempts: list[str] = []

    @app.middleware
    def refuse(body: Any, next: Callable[[], Any]) -> BoltResponse:
        attempts.append(body["event_id"])
        return BoltResponse(status=503, body="", headers={"X-Slack-No-Retry": "1"})

    _set_events_url(slack, url).raise_for_status()  # the handshake is Bolt's own, before middleware
    said = _say(slack, user=WREN, channel=BOARD, text="Is the budget ready?")
    assert said["deliveries"] == [503] and attempts == [said["event_id"]]


def _with_agenda() -> dict[str, Any]:
    """The default workspace and a public channel the bot is in (it is not in #general)."""
    seed = default_seed()
    seed["channels"] = [*seed["channels"], {"id": AGENDA, "name": "agenda", "members": [WREN, TOBIN]}]
    return seed


@pytest.mark.parametrize("slack", [_with_agenda()], indirect=True)
def test_bolt_hears_only_the_conversations_its_bot_is_in_and_the_kinds_it_subscribes_to(
    bolt: Callable[..., tuple[App, str]], slack: Any
) -> None:
    # https://api.slack.com/events/message.channels, /events/message.groups: a bot's message
    # events come from the conversations it is in, each kind by its own subscription.
    app, url = bolt()
    heard: list[tuple[str, str]] = []
    app.event("message")(lambda event: heard.append((event["channel"], event["channel_type"])))
    _set_events_url(slack, url).raise_for_status()
    outside = _say(slack, user=WREN, channel=GENERAL, text="The bot is not in #general")
    assert (outside["event_id"], outside["deliveries"], outside["events"]) == (None, [], [])
    assert outside["ts"] in [m["ts"] for m in slack.sandbox.messages[GENERAL]]  # written all the same
    public = _say(slack, user=WREN, channel=AGENDA, text="A public channel the bot is in")
    private = _say(slack, user=WREN, channel=BOARD, text="A private one")
    assert [e["deliveries"] for e in public["events"] + private["events"]] == [[200], [200]]
    assert wait_for(lambda: len(heard) == 2, 10, step=0.02)
    assert heard == [(AGENDA, "channel"), (BOARD, "group")]

    # The app unsubscribes from private channels' messages (message.groups): those stop coming.
    kept = _set_events_url(slack, url, bot_events=["message.channels"]).json()
    assert kept["bot_events"] == slack.sandbox.bot_events == ["message.channels"]
    assert _say(slack, user=WREN, channel=BOARD, text="Not sent")["events"] == []
    assert [e["deliveries"] for e in _say(slack, user=TOBIN, channel=AGENDA, text="Sent")["events"]] == [[200]]
    assert wait_for(lambda: len(heard) == 3, 10, step=0.02) and heard[2] == (AGENDA, "channel")
    events = httpx.get(f"{slack.url}/_sandbox/state", timeout=10).json()["events"]  # what the inspector shows
    assert (events["url"], events["bot_events"]) == (url, ["message.channels"])
    assert [d["status"] for d in events["deliveries"]] == [200, 200, 200]


def test_bolt_hears_a_mention_of_its_bot_as_app_mention_when_it_subscribes(
    bolt: Callable[..., tuple[App, str]], slack: Any
) -> None:
    # https://api.slack.com/events/app_mention: sent besides the message event when the app
    # subscribes to it; never from a DM (message.im carries those).
    app, url = bolt()
    mentions: list[dict[str, Any]] = []
    messages: list[dict[str, Any]] = []

    @app.event("app_mention")
    def on_mention(event: Any, say: Any) -> None:
        mentions.append(event)
        say(text="Added to the agenda.", thread_ts=event["ts"])

    app.event("message")(lambda event: messages.append(event))
    bot = slack.sandbox.seed.bot_user_id
    _set_events_url(slack, url, bot_events=["message.groups", "message.im", "app_mention"]).raise_for_status()
    said = _say(slack, user=WREN, channel=BOARD, text=f"<@{bot}> please add the budget")
    assert [(e["type"], e["deliveries"]) for e in said["events"]] == [("message", [200]), ("app_mention", [200])]
    assert said["event_id"] == said["events"][0]["event_id"]
    assert wait_for(
        lambda: mentions and any(m.get("thread_ts") == said["ts"] for m in slack.sandbox.messages[BOARD]), 10, step=0.02
    )
    [mention] = mentions
    assert (mention["type"], mention["user"], mention["channel"]) == ("app_mention", WREN, BOARD)
    assert mention["ts"] == said["ts"]
    assert mention["text"] == f"<@{bot}> please add the budget" and "channel_type" not in mention

    # In a DM the bot is mentioned as a message only; without the subscription, as a message too.
    dm = app.client.conversations_open(users=WREN)["channel"]["id"]
    in_dm = _say(slack, user=WREN, channel=dm, text=f"<@{bot}> a word in private")
    assert [e["type"] for e in in_dm["events"]] == ["message"]
    _set_events_url(slack, url, bot_events=["message.groups"]).raise_for_status()
    unsubscribed = _say(slack, user=TOBIN, channel=BOARD, text=f"<@{bot}> and the minutes")
    assert [e["type"] for e in unsubscribed["events"]] == ["message"]
    time.sleep(0.2)  # time for a listener Bolt would have run
    assert len(mentions) == 1 and [m["channel_type"] for m in messages] == ["group", "im", "group"]


@pytest.mark.parametrize(
    "bot_events", [["reaction_added"], "app_mention", [1]], ids=["unknown-event", "not-a-list", "not-a-name"]
)
def test_an_events_subscription_the_sandbox_does_not_know_is_refused_and_changes_nothing(
    slack: Any, bot_events: Any
) -> None:
    refused = _set_events_url(slack, "http://127.0.0.1:9/never-called", bot_events=bot_events)
    assert refused.status_code == 400 and "bot_events must be a list of" in refused.json()["error"]
    assert "app_mention" in refused.json()["error"]
    assert (slack.sandbox.events_url, slack.sandbox.bot_events) == (None, ["message.channels", "message.groups"])


# ---- signatures ----------------------------------------------------------------------------------


def test_bolt_refuses_a_sandbox_signed_request_tampered_with_or_signed_too_long_ago(
    bolt: Callable[..., tuple[App, str]], slack: Any
) -> None:
    app, url = bolt()
    clicks: list[str] = []

    @app.action("board_approve")
    def approve(ack: Any, body: Any) -> None:
        ack()
        clicks.append(body["user"]["id"])

    ts = app.client.chat_postMessage(channel=BOARD, text="Proposal 10", blocks=_buttons("P10", "board_approve"))["ts"]
    payload = slack.sandbox.block_actions_payload(
        slack.url, user=TOBIN, channel=BOARD, ts=ts, action_id="board_approve"
    )
    headers, body = slack.sandbox.signed_request(kind="block_actions", payload=payload)
    stamp = int(headers[TIMESTAMP_HEADER])

    def signed(secret: str, at: int) -> dict[str, str]:
        return {**headers, TIMESTAMP_HEADER: str(at), SIGNATURE_HEADER: sign_request(secret, timestamp=at, body=body)}

    for forged_headers, forged_body in [
        (headers, body.replace(TOBIN.encode(), WREN.encode())),  # the body changed after signing
        (signed("another-apps-secret", stamp), body),
        (signed(slack.sandbox.signing_secret, stamp - 301), body),  # past Slack's (and Bolt's) 5 minutes
    ]:
        assert httpx.post(url, content=forged_body, headers=forged_headers, timeout=10).status_code == 401
    assert clicks == []
    assert httpx.post(url, content=body, headers=headers, timeout=10).status_code == 200
    assert wait_for(lambda: clicks == [TOBIN], 10, step=0.02)
    # An Events API request too: the envelope the sandbox signs, its event changed.
    headers, body = slack.sandbox.signed_request(
        kind="message", payload={"user": TOBIN, "text": "hello", "channel": BOARD}
    )
    assert httpx.post(url, content=body.replace(b"hello", b"HELLO"), headers=headers, timeout=10).status_code == 401


# ---- Bolt's client on the Web API ----------------------------------------------------------------


def test_bolts_client_runs_an_apps_web_api_calls(bolt: Callable[..., tuple[App, str]], slack: Any) -> None:
    app, _ = bolt()
    client = app.client
    blocks = _buttons("Agenda for Thursday", "board_approve")
    posted = client.chat_postMessage(channel=BOARD, text="Agenda for Thursday", blocks=blocks)
    assert posted["channel"] == BOARD and posted["message"]["blocks"] == blocks
    updated = client.chat_update(channel=BOARD, ts=posted["ts"], text="Agenda for Friday", blocks=blocks[:1])
    assert updated["message"]["text"] == "Agenda for Friday" and updated["message"]["blocks"] == blocks[:1]
    channel = client.conversations_info(channel=BOARD, include_num_members=True)["channel"]
    members = sorted(slack.sandbox.channels[BOARD]["members"])
    assert (channel["name"], channel["is_private"], channel["num_members"]) == ("dsf-board", True, len(members))
    assert client.conversations_members(channel=BOARD)["members"] == members
    assert client.users_info(user=WREN)["user"]["real_name"] == "Wren Halloway"
    # slack_sdk pages by the answers' response_metadata.next_cursor (a page is the same object,
    # refilled), one channel a page
    pages = [page["channels"] for page in client.conversations_list(types="public_channel,private_channel", limit=1)]
    names = [c["name"] for page in pages for c in page]
    assert len(pages) == len(names) == len(set(names)) > 1 and {"dsf-board", "general"} <= set(names)
    assert slack.sandbox.requests["conversations.list"] == len(pages)


def test_bolts_client_sees_unemulated_methods_fail_loudly_and_slacks_refusals_as_such(
    bolt: Callable[..., tuple[App, str]], slack: Any
) -> None:
    client = bolt()[0].client
    for call in (
        lambda: client.chat_postEphemeral(channel=BOARD, user=WREN, text="Only you can see this"),
        lambda: client.reactions_add(channel=BOARD, name="eyes", timestamp="1790000000.000100"),
    ):
        with pytest.raises(SlackApiError) as unemulated:
            call()
        assert unemulated.value.response.status_code == 200
        assert unemulated.value.response["error"] == "not_emulated"
    with pytest.raises(SlackApiError) as missing:
        client.conversations_info(channel="C0NOSUCH99")
    assert (missing.value.response.status_code, missing.value.response["error"]) == (200, "channel_not_found")


def _granted(*scopes: str) -> dict[str, Any]:
    """The default workspace, its app's token holding only ``scopes``."""
    return {**default_seed(), "bot_scopes": list(scopes)}


@pytest.mark.parametrize("slack", [_granted("chat:write", "channels:history", "channels:read")], indirect=True)
def test_bolts_client_is_refused_what_its_tokens_scopes_do_not_cover_as_slack_refuses_it(
    bolt: Callable[..., tuple[App, str]], slack: Any
) -> None:
    # Slack's missing_scope names the scope needed and those granted; for a conversation, the
    # one of its kind (https://api.slack.com/scopes). The sandbox had served every call.
    client = bolt()[0].client
    provided = "chat:write,channels:history,channels:read"
    for call, needed in (
        (lambda: client.conversations_history(channel=BOARD, limit=1), "groups:history"),  # private
        (lambda: client.conversations_info(channel=BOARD), "groups:read"),
        (lambda: client.conversations_members(channel=BOARD), "groups:read"),
        (lambda: client.conversations_list(types="public_channel,private_channel"), "groups:read"),
        (lambda: client.conversations_list(types="im"), "im:read"),
        (lambda: client.conversations_open(users=WREN), "im:write"),
        (lambda: client.conversations_open(users=[WREN, TOBIN]), "mpim:write"),
        (lambda: client.users_info(user=WREN), "users:read"),
        (lambda: client.users_lookupByEmail(email="wren.halloway@example.org"), "users:read.email"),
        (lambda: client.users_list(limit=10), "users:read"),
    ):
        with pytest.raises(SlackApiError) as refused:
            call()
        answer = refused.value.response
        assert (answer.status_code, answer["error"], answer["needed"], answer["provided"]) == (
            200,
            "missing_scope",
            needed,
            provided,
        )
    # Not in #general, the bot may not post there without chat:write.public.
    with pytest.raises(SlackApiError) as outside:
        client.chat_postMessage(channel=GENERAL, text="Hello #general")
    assert outside.value.response["error"] == "not_in_channel"
    # What the scopes cover is served: a public channel's details, the public list, posting; a
    # public channel's history is refused for the bot's membership, no longer for a scope.
    assert client.conversations_info(channel=GENERAL)["channel"]["is_member"] is False
    assert "general" in {c["name"] for c in client.conversations_list()["channels"]}
    assert client.chat_postMessage(channel=BOARD, text="Posting needs chat:write only")["ok"] is True
    # A method's own scope is asked before its lookup; a conversation kind's, once it is found.
    for call, error in (
        (lambda: client.conversations_history(channel=GENERAL, limit=1), "not_in_channel"),
        (lambda: client.users_info(user="U0NOSUCH99"), "missing_scope"),
        (lambda: client.conversations_info(channel="C0NOSUCH99"), "channel_not_found"),
    ):
        with pytest.raises(SlackApiError) as refused:
            call()
        assert refused.value.response["error"] == error


@pytest.mark.parametrize("slack", [_granted("chat:write", "chat:write.public")], indirect=True)
def test_chat_write_public_lets_the_app_post_in_a_public_channel_it_is_not_in(
    bolt: Callable[..., tuple[App, str]], slack: Any
) -> None:
    client = bolt()[0].client
    assert client.chat_postMessage(channel=GENERAL, text="Hello #general")["ok"] is True
    assert slack.sandbox.seed.bot_user_id not in slack.sandbox.channels[GENERAL]["members"]


def test_a_methods_tier_lets_a_minutes_burst_through_then_paces_it_as_slack_does(serve: Any) -> None:
    # users.list is Tier 2, 20 a minute (https://api.slack.com/apis/rate-limits): 20 at once, then
    # 429 with Retry-After until the tier's pace frees one; another method is counted apart. Real
    # time here (a sandbox second is a second), so the burst cannot earn a token back meanwhile.
    box = serve(SlackSandbox())
    client = WebClient(token=box.sandbox.bot_token, base_url=f"{box.url}/api/")  # no retry handler
    started = time.monotonic()
    for _ in range(20):
        client.users_list(limit=1)
    with pytest.raises(SlackApiError) as limited:
        client.users_list(limit=1)
    answer = limited.value.response
    assert (answer.status_code, answer["error"]) == (429, "ratelimited")
    if time.monotonic() - started < 1:  # a token every 3 s: none earned back yet
        assert answer.headers["retry-after"] == "3"
    assert client.users_info(user=WREN)["ok"] is True  # Tier 4, its own count
    assert [e["method"] for e in box.sandbox.state()["rate_limited"] if e["kind"] == "tier"] == ["users.list"]
    # slack_sdk's rate-limit retry handler waits Retry-After and goes on.
    patient = WebClient(
        token=box.sandbox.bot_token, base_url=f"{box.url}/api/", retry_handlers=[RateLimitErrorRetryHandler()]
    )
    assert patient.users_list(limit=1)["ok"] is True
