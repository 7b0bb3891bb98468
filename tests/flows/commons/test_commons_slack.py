"""The common room with a Slack channel shared with the CoC committee (R-COMMS, issue 22 point 1.2):
Slack is not a community platform, it takes part because ``CHARTERFLOW_COMMONS_BRIDGES`` names a
channel there. Real parts: the Slack sandbox delivering signed Events API callbacks to the real
gateway's ``/hooks/slack``, the Discord and Forum sandboxes, Prefect, the ledger."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select

from connectors.errors import RetriableError
from connectors.slack.inbound import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign_request
from connectors.slack.sandbox import SlackSandbox, default_seed
from flows import inbox
from flows.commons import commons_poll
from flows.commons.bridges import use_room_connectors
from ledger import audit
from ledger.models import InboxEvent
from tests.support.commons import discord_copies, forum_copies, say
from tests.support.ideas import events, wait_for_event
from tests.support.membership import World, serve_gateway
from tests.support.net import LoopbackServer
from tests.support.slack import TIME_FACTOR

CHANNEL = "G0COCMODS"  # the private channel the moderators share with the CoC committee
WREN, JUNO = "U0WREN001", "U0JUNO005"
BRIDGES = f"moderators: discord=moderators, discourse=Moderators, slack={CHANNEL}"


@pytest.fixture
def shared(world: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """Discord, the Forum and a Slack channel bridged; Slack's events go to the gateway."""
    monkeypatch.setenv("CHARTERFLOW_COMMONS_BRIDGES", BRIDGES)
    seed = default_seed()
    seed["channels"] = [
        *seed["channels"],
        {"id": CHANNEL, "name": "coc-moderators", "is_private": True, "members": [WREN, JUNO]},
    ]
    sandbox = SlackSandbox(seed=seed, time_factor=TIME_FACTOR)
    category = next(c["id"] for c in world.discourse_state()["categories"] if c["name"] == "Moderators")
    with (
        LoopbackServer(sandbox.app) as s_srv,
        serve_gateway(
            world, commons_categories=str(category), slack_signing_secret=SecretStr(sandbox.signing_secret)
        ) as gw,
    ):
        slack = sandbox.connect(s_srv.url)
        httpx.post(
            f"{s_srv.url}/_sandbox/events_url", json={"url": f"{gw.url}/hooks/slack"}, timeout=10
        ).raise_for_status()
        with use_room_connectors(slack=slack):
            commons_poll()  # Discord's cursor starts at its newest message
            yield {"sandbox": sandbox, "url": s_srv.url, "gateway": gw.url, "slack": slack}


def slack_messages(s: dict[str, Any], containing: str) -> list[dict[str, Any]]:
    state = httpx.get(f"{s['url']}/_sandbox/state", timeout=10).json()
    return [m for m in state["messages"].get(CHANNEL, []) if containing in (m.get("text") or "")]


def slack_say(s: dict[str, Any], user: str, text: str, **extra: Any) -> dict[str, Any]:
    """``user`` writes in the shared channel; the sandbox delivers the event before answering."""
    reply = httpx.post(
        f"{s['url']}/_sandbox/messages", timeout=30, json={"user": user, "channel": CHANNEL, "text": text, **extra}
    )
    reply.raise_for_status()
    return reply.json()


def stored(world: World, event_id: str) -> InboxEvent:
    """The inbox row of a Slack event (keyed ``slack:<team>:<event id>``)."""
    with world.ledger.read() as session:
        [row] = session.scalars(select(InboxEvent).where(InboxEvent.dedupe_key.endswith(f":{event_id}"))).all()
        session.expunge(row)
        return row


def test_a_discord_message_reaches_slack_and_a_slack_reply_its_discord_thread_once(
    world: World, shared: dict[str, Any]
) -> None:
    sent = say(world, "avery_quill", "Heads up: a report about **#general** went to the CoC committee.")
    commons_poll()
    commons_poll()
    [copy] = slack_messages(shared, "went to the CoC committee")
    assert "*avery_quill* (Discord): Heads up" in copy["text"] and "**" not in copy["text"]
    title = "*Heads up: a report about #general went to the CoC committee.*\n"
    assert copy["text"].startswith(title)
    assert len(forum_copies(world, "went to the CoC committee")) == 1
    # avery edits: the copy opens its thread still, under its title.
    httpx.post(
        f"{world.discord_url}/_sandbox/messages/edit",
        timeout=10,
        json={
            "message_id": sent["id"],
            "content": "Heads up: a report about **#general** went to the CoC committee today.",
        },
    ).raise_for_status()
    commons_poll()
    [copy] = slack_messages(shared, "went to the CoC committee today")
    assert copy["text"].startswith(f"{title}*avery_quill* (Discord): Heads up"), copy["text"]
    # The app's own post came back as an event: stored as the bot's own, never relayed.
    deadline = time.monotonic() + 10
    while not events(world, source="slack", route=inbox.Route.OWN) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert events(world, source="slack", route=inbox.Route.OWN)
    # Wren answers in the copy's thread on Slack: the reply reaches the Discord thread.
    answer = slack_say(shared, WREN, "Thanks, the committee has it on Thursday's agenda.", thread_ts=copy["ts"])
    assert answer["deliveries"] == [200]
    row = stored(world, answer["event_id"])
    assert (row.route, row.kind) == (inbox.Route.COMMONS, "message")
    assert inbox.handle_event(world.ledger, row.id) == "relayed: discord posted, discourse posted"
    [reply] = discord_copies(world, "Thursday's agenda")
    assert reply["channel_id"] == sent["id"]  # the thread on avery's message
    assert reply["content"].startswith("**wren.halloway** (Slack): Thanks")
    # Slack retries the same event (X-Slack-Retry-Num): stored once, relayed once.
    again = httpx.post(
        f"{shared['url']}/_sandbox/events/redeliver",
        timeout=30,
        json={"event_id": answer["event_id"], "reason": "http_timeout"},
    ).json()
    assert again == {"ok": True, "status": 200, "retry": 1}
    assert stored(world, answer["event_id"]).id == row.id
    assert inbox.handle_event(world.ledger, row.id) == "already-processed"
    assert len(discord_copies(world, "Thursday's agenda")) == 1
    assert len(forum_copies(world, "Thursday's agenda")) == 1


def test_a_slack_message_opens_conversations_and_its_edit_and_deletion_follow(
    world: World, shared: dict[str, Any]
) -> None:
    said = slack_say(shared, JUNO, "CoC committee note: please keep the appeal thread private.", files=["minutes.pdf"])
    assert inbox.handle_event(world.ledger, stored(world, said["event_id"]).id).startswith("relayed")
    [on_discord] = discord_copies(world, "keep the appeal thread private")
    assert "**juno.castellan** (Slack)" in on_discord["content"]
    assert "[attachment] https://sandbox-foundation.slack.com/files/" in on_discord["content"]
    [topic] = forum_copies(world, "keep the appeal thread private")
    assert topic["post_number"] == 1
    # A Forum reply comes to the Slack thread.
    httpx.post(
        f"{world.discourse_url}/posts.json",
        timeout=15,
        headers={"Api-Key": world.discourse_sb.api_key, "Api-Username": "bram_tolliver"},
        json={"topic_id": topic["topic_id"], "raw": "Understood, I closed the public one."},
    ).raise_for_status()
    forum_event = wait_for_event(world, source="discourse", kind="post_created", route="commons")
    assert inbox.handle_event(world.ledger, forum_event).startswith("relayed")
    [threaded] = slack_messages(shared, "I closed the public one")
    assert threaded["thread_ts"] == said["ts"]
    # Juno edits, then deletes her message: the copies follow.
    edit = httpx.post(
        f"{shared['url']}/_sandbox/messages/edit",
        timeout=30,
        json={
            "channel": CHANNEL,
            "ts": said["ts"],
            "text": "CoC committee note: keep the appeal thread private, please.",
        },
    )
    assert inbox.handle_event(world.ledger, stored(world, edit.json()["event_id"]).id) == "edited 2 copies"
    [edited] = discord_copies(world, "keep the appeal thread")
    assert "private, please" in edited["content"]
    # It still opens the Discord thread under the conversation's title (the first text's line).
    assert edited["content"].startswith(
        "**CoC committee note: please keep the appeal thread private.**\n**juno.castellan** (Slack)"
    ), edited["content"]
    gone = httpx.post(
        f"{shared['url']}/_sandbox/messages/delete", timeout=30, json={"channel": CHANNEL, "ts": said["ts"]}
    )
    assert inbox.handle_event(world.ledger, stored(world, gone.json()["event_id"]).id) == "deleted 2 copies"
    assert discord_copies(world, "keep the appeal thread") == []
    assert forum_copies(world, "keep the appeal thread") == []


def test_slack_events_are_verified_and_url_verification_is_answered(world: World, shared: dict[str, Any]) -> None:
    """Unsigned, wrongly signed, stale, malformed and oversized Events API requests are refused;
    the URL check echoes its challenge; a message in a channel no bridge holds is kept, not relayed."""
    sandbox, url = shared["sandbox"], f"{shared['gateway']}/hooks/slack"
    headers, body = sandbox.signed_request(kind="url_verification", payload={})
    answer = httpx.post(url, content=body, headers=headers, timeout=10)
    assert answer.status_code == 200 and answer.json() == {"challenge": json.loads(body)["challenge"]}
    headers, body = sandbox.signed_request(
        kind="message",
        payload={"channel": CHANNEL, "user": WREN, "text": "Signed by someone else.", "ts": "1700000000.000100"},
    )
    forged = {
        **headers,
        SIGNATURE_HEADER: sign_request("not-the-secret", timestamp=headers[TIMESTAMP_HEADER], body=body),
    }
    assert httpx.post(url, content=body, headers=forged, timeout=10).status_code == 401
    unsigned = {k: v for k, v in headers.items() if k != SIGNATURE_HEADER}
    assert httpx.post(url, content=body, headers=unsigned, timeout=10).status_code == 401
    stale = str(int(time.time()) - 600)
    old = {
        **headers,
        TIMESTAMP_HEADER: stale,
        SIGNATURE_HEADER: sign_request(sandbox.signing_secret, timestamp=stale, body=body),
    }
    assert httpx.post(url, content=body, headers=old, timeout=10).status_code == 401
    bad = b"{not json"
    now = str(int(time.time()))
    assert (
        httpx.post(
            url,
            content=bad,
            timeout=10,
            headers={
                **headers,
                TIMESTAMP_HEADER: now,
                SIGNATURE_HEADER: sign_request(sandbox.signing_secret, timestamp=now, body=bad),
            },
        ).status_code
        == 400
    )
    huge = b'{"type":"event_callback","event":{"type":"message","text":"' + b"x" * 2_000_000 + b'"}}'
    assert httpx.post(url, content=huge, headers=headers, timeout=30).status_code == 413
    assert events(world, source="slack", route=inbox.Route.COMMONS) == []
    # A message in the Board's channel (not bridged) is stored and left alone.
    headers, body = sandbox.signed_request(
        kind="message",
        payload={"channel": "C0BOARD01", "user": WREN, "text": "Board-only remark.", "ts": "1700000000.000200"},
    )
    assert httpx.post(url, content=body, headers=headers, timeout=10).status_code == 200
    [row] = events(world, source="slack", route=inbox.Route.COMMONS)
    assert inbox.handle_event(world.ledger, row) == "skipped: room not bridged"


def slack_faults(s: dict[str, Any], **faults: Any) -> None:
    """Inject faults on the Slack sandbox (none: Slack is back)."""
    httpx.post(f"{s['url']}/_sandbox/faults", json=faults, timeout=10).raise_for_status()


def test_the_bridge_survives_a_slack_outage_without_loss_or_duplicates(world: World, shared: dict[str, Any]) -> None:
    """Slack down (every Web API call 503): a Discord message and a Forum topic written meanwhile
    reach the Forum and Discord at once; their Slack copies fail, each failure is noted
    (``commons.delayed``, audited) and retried (the poll's cursor stays, the inbox event stays
    unprocessed); once Slack is back each reaches Slack once, and more runs add nothing."""
    category = next(c["id"] for c in world.discourse_state()["categories"] if c["name"] == "Moderators")
    slack_faults(shared, error_rate=1.0, error_status=503)
    try:
        say(world, "avery_quill", "Discord note while Slack is down.")
        with pytest.raises(RuntimeError, match="left for the next run"):
            commons_poll()
        httpx.post(
            f"{world.discourse_url}/posts.json",
            timeout=15,
            headers={"Api-Key": world.discourse_sb.api_key, "Api-Username": "bram_tolliver"},
            json={
                "title": "Forum note while Slack is down",
                "raw": "Forum note while Slack is down, details here.",
                "category": category,
            },
        ).raise_for_status()
        topic = wait_for_event(world, source="discourse", kind="post_created", route="commons")
        with pytest.raises(RetriableError):
            inbox.handle_event(world.ledger, topic)
        with pytest.raises(RuntimeError, match="left for the next run"):
            commons_poll()  # the next poll during the outage: still nothing lost
    finally:
        slack_faults(shared)
    assert slack_messages(shared, "while Slack is down") == []
    # The other rooms got theirs at once, once.
    assert len(forum_copies(world, "Discord note while Slack is down")) == 1
    assert len(discord_copies(world, "Forum note while Slack is down")) == 1
    with world.ledger.read() as session:
        delayed = [e for e in audit.iter_records(session) if e["action"] == "commons.delayed"]
    assert {e["payload"]["target"] for e in delayed} == {"slack"} and len(delayed) >= 3
    assert all(e["payload"]["ruling"] == "R-COMMS" for e in delayed)
    # Slack is back: the poll and the inbox's retry copy each message once; more runs add nothing.
    commons_poll()
    assert inbox.handle_event(world.ledger, topic) == "relayed: discord already, slack posted"
    commons_poll()
    assert inbox.handle_event(world.ledger, topic) == "already-processed"
    assert len(slack_messages(shared, "Discord note while Slack is down")) == 1
    assert len(slack_messages(shared, "Forum note while Slack is down")) == 1
    assert len(forum_copies(world, "Discord note while Slack is down")) == 1
    assert len(discord_copies(world, "Forum note while Slack is down")) == 1


def test_slack_text_arrives_as_people_read_it_and_a_deleted_thread_parent_takes_its_copies(
    world: World, shared: dict[str, Any]
) -> None:
    """Slack sends what people typed escaped and mentions as ``<…>`` sequences; deleting a message
    that has replies sends a ``message_changed`` to a tombstone (matterbridge#600), which is a
    deletion here, never an edit to "This message was deleted." by slackbot."""
    said = slack_say(shared, JUNO, "Ask <@U0WREN001>: is a &lt; b &amp; c? See <https://wg.example.org/coc|the CoC>")
    assert inbox.handle_event(world.ledger, stored(world, said["event_id"]).id).startswith("relayed")
    [on_discord] = discord_copies(world, "is a < b & c?")
    # Named as Slack shows the person (its events give the ID alone: users.info, cached).
    assert "Ask @wren.halloway: is a < b & c? See the CoC (https://wg.example.org/coc)" in on_discord["content"]
    assert len(forum_copies(world, "is a < b & c?")) == 1
    reply = slack_say(shared, WREN, "Yes, on Thursday.", thread_ts=said["ts"])
    assert inbox.handle_event(world.ledger, stored(world, reply["event_id"]).id).startswith("relayed")
    gone = httpx.post(
        f"{shared['url']}/_sandbox/messages/delete", timeout=30, json={"channel": CHANNEL, "ts": said["ts"]}
    ).json()
    assert inbox.handle_event(world.ledger, stored(world, gone["event_id"]).id) == "deleted 2 copies"
    assert discord_copies(world, "is a < b & c?") == [] and forum_copies(world, "is a < b & c?") == []
    assert discord_copies(world, "This message was deleted") == []
