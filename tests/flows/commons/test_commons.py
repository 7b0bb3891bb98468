"""The common room (R-COMMS) end to end: the Discord moderators' channel and the Forum's
Moderators category bridged through the real gateway, Prefect and the sandboxes over HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from connectors.errors import RetriableError
from flows import inbox
from flows.commons import commons_poll
from flows.commons.erase import commons_erase, has_bridged
from ledger import audit
from ledger.models_commons import CommonsMessage
from tests.support.commons import discord_copies, forum_copies, say
from tests.support.ideas import wait_for_event
from tests.support.membership import World, serve_gateway

BRIDGES = "moderators: discord=moderators, discourse=Moderators"


@pytest.fixture
def room(world: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The moderators' bridge configured, the gateway receiving the Forum's webhooks for the
    Moderators category, and the Discord room read once (its cursor starts at its newest)."""
    monkeypatch.setenv("CHARTERFLOW_COMMONS_BRIDGES", BRIDGES)
    category = next(c["id"] for c in world.discourse_state()["categories"] if c["name"] == "Moderators")
    with serve_gateway(world, commons_categories=str(category)) as gw:
        commons_poll()
        yield gw


def forum_post(world: World, user: str, **body: Any) -> dict[str, Any]:
    """``user`` posts on the Forum through its API (a reply: ``topic_id``)."""
    reply = httpx.post(
        f"{world.discourse_url}/posts.json",
        timeout=15,
        json=body,
        headers={"Api-Key": world.discourse_sb.api_key, "Api-Username": user},
    )
    assert reply.status_code == 200, reply.text
    return reply.json()


def handle_new_events(world: World, kind: str, count: int = 1) -> list[str]:
    event = wait_for_event(world, source="discourse", kind=kind, route="commons", count=count)
    return [inbox.handle_event(world.ledger, event)]


def test_a_discord_message_appears_once_on_the_forum_and_its_edit_follows(world: World, room: Any) -> None:
    """R-COMMS: author and platform shown, attachments as links, one topic however often the
    poll runs; the edit changes that one copy; the bridge's own posts are never relayed back."""
    sent = say(
        world, "avery_quill", "Spam wave in #help tonight, please keep an eye on it.", attachments=["screenshot.png"]
    )
    commons_poll()
    commons_poll()
    [copy] = forum_copies(world, "Spam wave in #help")
    assert copy["raw"].startswith("**avery_quill** (Discord): Spam wave")
    assert "[attachment] https://cdn.discordapp.com/" in copy["raw"]
    topic = next(t for t in world.discourse_state()["topics"] if t["id"] == copy["topic_id"])
    moderators = next(c["id"] for c in world.discourse_state()["categories"] if c["name"] == "Moderators")
    assert topic["category_id"] == moderators and "Spam wave" in topic["title"]
    httpx.post(
        f"{world.discord_url}/_sandbox/messages/edit",
        timeout=10,
        json={"message_id": sent["id"], "content": "Spam wave in #help tonight: it stopped at 22:00."},
    ).raise_for_status()
    commons_poll()
    commons_poll()
    [edited] = forum_copies(world, "Spam wave in #help")
    assert edited["id"] == copy["id"] and "stopped at 22:00" in edited["raw"]
    # The copy's own webhooks (system's post and edit) came back and were not relayed.
    assert len(discord_copies(world, "Spam wave")) == 1  # only avery's own message


def test_a_relayed_mention_pings_nobody_on_the_forum(world: World, room: Any) -> None:
    """A Discord name is not the Forum's person of that name, and "@here" would ping everyone in
    the topic: each mention is broken by a zero-width space, read the same; an e-mail is kept.
    So is a poll's markup: the copy is no poll anyone in the room could vote in."""
    say(
        world,
        "avery_quill",
        "@here the raid again; @cleo_marsh, @moderators see mods@example.org\n[poll]\n* ban\n* warn\n[/poll]",
    )
    commons_poll()
    [copy] = forum_copies(world, "the raid again")
    assert "@\u200bhere the raid again; @\u200bcleo_marsh, @\u200bmoderators" in copy["raw"]
    assert "mods@example.org" in copy["raw"]
    assert "[\u200bpoll]" in copy["raw"] and "[/\u200bpoll]" in copy["raw"]
    assert not [p for p in world.discourse_state()["polls"] if p["post_id"] == copy["id"]]


def test_a_forum_reply_appears_in_the_discord_thread_and_back_nothing_loops(world: World, room: Any) -> None:
    sent = say(world, "cleo_marsh", "Should we pin the new code of conduct FAQ in #general?")
    commons_poll()
    [copy] = forum_copies(world, "pin the new code of conduct FAQ")
    forum_post(
        world, "bram_tolliver", topic_id=copy["topic_id"], raw="Yes, and link it from the welcome message as well."
    )
    assert handle_new_events(world, "post_created", count=1)[0].startswith("relayed")
    [reply] = discord_copies(world, "link it from the welcome message")
    assert reply["channel_id"] == sent["id"]  # the thread on cleo's message has its id
    assert reply["content"].startswith("**bram_tolliver** (Forum): Yes")
    # A Discord reply in that thread goes to the same Forum topic; the bridge's own copy in the
    # thread is read by the poll and passed over.
    say(world, "dario_fenwick", "Agreed, I will pin it tomorrow morning.", channel=sent["id"])
    commons_poll()
    commons_poll()
    [back] = forum_copies(world, "I will pin it tomorrow")
    assert back["topic_id"] == copy["topic_id"]
    assert len(discord_copies(world, "link it from the welcome message")) == 1
    assert len(forum_copies(world, "link it from the welcome message")) == 1
    # An idle poll costs two reads per polled room and conversation thread, nothing on the Forum.
    before = world.writes(), world.discord_state()["requests"], world.discourse_state()["requests"]
    commons_poll()
    after = world.writes(), world.discord_state()["requests"], world.discourse_state()["requests"]
    reads = "GET /channels/{channel_id}/messages"
    assert after[0] == before[0] and after[2] == before[2]
    assert after[1][reads] - before[1][reads] == 2 * 2  # the room and the thread on cleo's message
    # A deletion on the Forum follows to Discord.
    httpx.delete(
        f"{world.discourse_url}/posts/{forum_copies(world, 'welcome message')[0]['id']}.json",
        timeout=10,
        headers={"Api-Key": world.discourse_sb.api_key, "Api-Username": "bram_tolliver"},
    ).raise_for_status()
    assert handle_new_events(world, "post_destroyed")[0].startswith("deleted 1 copy")
    assert discord_copies(world, "link it from the welcome message") == []


def test_a_new_forum_topic_opens_a_discord_thread_and_a_deleted_discord_reply_follows(world: World, room: Any) -> None:
    moderators = next(c["id"] for c in world.discourse_state()["categories"] if c["name"] == "Moderators")
    forum_post(
        world,
        "felix_oakes",
        title="Holiday cover for the moderation queue",
        category=moderators,
        raw="Who can watch the queue between the 24th and the 2nd?",
    )
    handle_new_events(world, "post_created")
    [copy] = discord_copies(world, "Who can watch the queue")
    assert "Holiday cover for the moderation queue" in copy["content"]
    assert copy["content"].count("**felix_oakes** (Forum)") == 1
    answer = say(world, "gale_morrow", "I can take the first week.", channel=copy["id"])
    commons_poll()
    [relayed] = forum_copies(world, "I can take the first week")
    httpx.post(
        f"{world.discord_url}/_sandbox/messages/edit", timeout=10, json={"message_id": answer["id"], "content": None}
    ).raise_for_status()
    commons_poll()
    assert forum_copies(world, "I can take the first week") == []
    with world.ledger.read() as session:
        states = {r.message_id: r.state for r in session.scalars(select(CommonsMessage))}
    assert states[answer["id"]] == "deleted" and states[str(relayed["id"])] == "deleted"


def test_the_bridge_survives_a_forum_outage_without_loss_or_duplicates(world: World, room: Any) -> None:
    """Forum down (every request 503): the poll fails and its cursor stays; once the Forum is
    back the next poll posts each message once, and more polls post nothing more."""
    httpx.post(
        f"{world.discourse_url}/_sandbox/faults", json={"error_rate": 1.0, "error_status": 503}, timeout=10
    ).raise_for_status()
    try:
        say(world, "hana_pike", "First note while the Forum is down.")
        say(world, "hana_pike", "Second note while the Forum is down.")
        with pytest.raises(RuntimeError, match="left for the next run"):
            commons_poll()
    finally:
        httpx.post(f"{world.discourse_url}/_sandbox/faults", json={}, timeout=10).raise_for_status()
    assert forum_copies(world, "while the Forum is down") == []
    # Flaky afterwards: half the requests fail; runs go on until everything is across.
    httpx.post(
        f"{world.discourse_url}/_sandbox/faults", json={"error_rate": 0.5, "error_status": 502, "seed": 7}, timeout=10
    ).raise_for_status()
    for _ in range(6):
        try:
            commons_poll()
        except (RuntimeError, RetriableError):
            pass
    httpx.post(f"{world.discourse_url}/_sandbox/faults", json={}, timeout=10).raise_for_status()
    commons_poll()
    commons_poll()
    assert len(forum_copies(world, "First note while the Forum is down")) == 1
    assert len(forum_copies(world, "Second note while the Forum is down")) == 1


def test_a_copy_the_platform_refuses_is_noted_in_the_common_room_and_audited(world: World, room: Any) -> None:
    """A copy the Forum refuses for good (422: here a body too short for its minimum) is never
    dropped silently: the source's thread on Discord says so, the ledger and audit record it."""
    world.discourse_sb.settings.min_post_length = 5000
    world.discourse_sb.settings.min_first_post_length = 5000
    sent = say(world, "avery_quill", "Short note the Forum will not take.")
    commons_poll()
    commons_poll()
    assert forum_copies(world, "Short note the Forum") == []
    [note] = discord_copies(world, "could not copy this message to Forum")
    assert note["channel_id"] == sent["id"]
    with world.ledger.read() as session:
        refused = session.scalars(select(CommonsMessage).where(CommonsMessage.state == "refused")).all()
        entries = [e for e in audit.iter_records(session) if e["action"] == "commons.refused"]
    assert len(refused) == 1 and "too short" in refused[0].note and len(entries) == 1
    assert entries[0]["payload"]["ruling"] == "R-COMMS"


def test_an_edit_a_platform_refuses_for_good_is_audited_once_and_the_next_one_follows(world: World, room: Any) -> None:
    """An edit the Forum refuses (422: here shorter than its minimum) would be refused on every
    retry: the poll records it (audit, the copy's note) and goes on, instead of failing for ever;
    the copy stays, and a later edit the Forum takes follows to it."""

    def edit(message_id: str, content: str) -> None:
        httpx.post(
            f"{world.discord_url}/_sandbox/messages/edit",
            timeout=10,
            json={"message_id": message_id, "content": content},
        ).raise_for_status()

    sent = say(world, "avery_quill", "Slow mode is on in #help until the raid is over.")
    commons_poll()
    [copy] = forum_copies(world, "Slow mode is on in #help")
    world.discourse_sb.settings.min_first_post_length = 5000  # the copy opened a topic
    edit(sent["id"], "Slow mode is on in #help: lifted at noon.")
    commons_poll()  # refused, recorded: the run completes
    commons_poll()  # and is not asked again
    world.discourse_sb.settings.min_first_post_length = 20
    with world.ledger.read() as session:
        entries = [e for e in audit.iter_records(session) if e["action"] == "commons.edit_refused"]
        note = session.scalars(select(CommonsMessage).where(CommonsMessage.message_id == str(copy["id"]))).one()
    assert len(entries) == 1 and entries[0]["payload"]["target"] == "discourse"
    assert note.state == "live" and "edit refused on discourse" in note.note
    assert "lifted at noon" not in forum_copies(world, "Slow mode is on in #help")[0]["raw"]
    edit(sent["id"], "Slow mode is off in #help again, thanks everyone.")
    commons_poll()
    [followed] = forum_copies(world, "Slow mode is off in #help")
    assert followed["id"] == copy["id"]


def test_erasure_deletes_the_bridged_copies_of_a_persons_messages(world: World, room: Any) -> None:
    """R-PRIVACY-2: the copies the bridge made of avery's messages are deleted on the Forum; her
    own message stays on Discord (hers to delete); the ledger forgets who wrote it."""
    say(world, "avery_quill", "A note from avery that will be erased from the copies.")
    say(world, "bram_tolliver", "A note from bram that stays where it was copied.")
    commons_poll()
    assert len(forum_copies(world, "will be erased from the copies")) == 1
    with world.ledger.read() as session:
        assert has_bridged(session, world.people["avery_quill"])
    result = commons_erase(world.people["avery_quill"])
    assert result == {"sources": 1, "copies_deleted": 1, "refused": []}
    assert forum_copies(world, "will be erased from the copies") == []
    assert len(forum_copies(world, "stays where it was copied")) == 1
    assert len(discord_copies(world, "will be erased from the copies")) == 1
    with world.ledger.read() as session:
        assert not has_bridged(session, world.people["avery_quill"])
        rows = session.scalars(select(CommonsMessage).where(CommonsMessage.state == "erased")).all()
        assert len(rows) == 2 and all(r.author_username is None for r in rows)
        assert [e for e in audit.iter_records(session) if e["action"] == "commons.erased"]


def test_forum_pushes_are_verified_deduplicated_and_a_replay_copies_nothing_twice(world: World, room: Any) -> None:
    """The Forum's webhooks into the common room: unsigned or wrongly signed is refused (401),
    a redelivery is stored once, a replay under a new event id finds the copy already made, and
    an event without a post is kept without acting."""
    moderators = next(c["id"] for c in world.discourse_state()["categories"] if c["name"] == "Moderators")
    bram = next(u for u in world.discourse_state()["users"] if u["username"] == "bram_tolliver")
    post = {
        "post": {
            "id": 990_001,
            "topic_id": 990_002,
            "post_number": 1,
            "category_id": moderators,
            "username": "bram_tolliver",
            "user_id": bram["id"],
            "name": "Bram Tolliver",
            "topic_title": "Pushed straight to the gateway",
            "raw": "A topic pushed by a webhook only.",
        }
    }
    headers, body = world.discourse_sb.signed_request(kind="post_created", payload=post)
    url = f"{room.url}/hooks/discourse"
    assert (
        httpx.post(
            url, content=body, headers={**headers, "X-Discourse-Event-Signature": "sha256=" + "0" * 64}, timeout=10
        ).status_code
        == 401
    )
    unsigned = {k: v for k, v in headers.items() if k != "X-Discourse-Event-Signature"}
    assert httpx.post(url, content=body, headers=unsigned, timeout=10).status_code == 401
    for _ in range(2):  # a redelivery of the same event
        assert httpx.post(url, content=body, headers=headers, timeout=10).status_code == 200
    event = wait_for_event(world, source="discourse", kind="post_created", route="commons")
    assert inbox.handle_event(world.ledger, event).startswith("relayed")
    headers2, body2 = world.discourse_sb.signed_request(kind="post_created", payload=post)  # new event id
    assert httpx.post(url, content=body2, headers=headers2, timeout=10).status_code == 200
    replay = wait_for_event(world, source="discourse", kind="post_created", route="commons", count=2)
    assert replay != event
    assert inbox.handle_event(world.ledger, replay) == "relayed: discord already"
    assert len(discord_copies(world, "A topic pushed by a webhook only")) == 1
    headers3, body3 = world.discourse_sb.signed_request(
        kind="post_destroyed", payload={"post": {"category_id": moderators}}
    )
    assert httpx.post(url, content=body3, headers=headers3, timeout=10).status_code == 200
    empty = wait_for_event(world, source="discourse", kind="post_destroyed", route="commons")
    assert inbox.handle_event(world.ledger, empty) == "refused:not-a-room-message"


def test_a_discord_mention_reaches_the_forum_as_people_read_it(world: World, room: Any) -> None:
    """Discord sends mentions, channels and roles as ids (``<@id>``, ``<#id>``, ``<@&id>``) with
    the mentioned people in the message's ``mentions``; the copy names them as Discord shows them
    (and a name still pings nobody on the Forum)."""
    state = world.discord_state()
    cleo = next(u for u in state["members"] if u["username"] == "cleo_marsh")
    general = next(c for c in state["channels"] if c["name"] == "general")
    moderators = next(r for r in state["roles"] if r["name"] == "moderator")
    say(world, "avery_quill", f"Raid in <#{general['id']}>: <@{cleo['id']}> and <@&{moderators['id']}> please look")
    commons_poll()
    [copy] = forum_copies(world, "please look")
    assert f"Raid in #general: @\u200bcleo_marsh and @\u200b{moderators['name']} please look" in copy["raw"]
    assert "<@" not in copy["raw"] and "<#" not in copy["raw"]


def test_a_forum_upload_reaches_discord_as_a_link_that_opens_it(world: World, room: Any) -> None:
    """A file in a Forum post is ``upload://<base62>.<ext>`` in its raw, which only the Forum's
    composer resolves; the copy links the site's ``/uploads/short-url/`` path, as the upload's
    own ``short_path`` names it."""
    moderators = next(c["id"] for c in world.discourse_state()["categories"] if c["name"] == "Moderators")
    upload = httpx.post(
        f"{world.discourse_url}/uploads.json",
        timeout=10,
        data={"upload_type": "composer", "synchronous": "true"},
        files={"file": ("raid.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 32, "image/png")},
        headers={"Api-Key": world.discourse_sb.api_key, "Api-Username": "felix_oakes"},
    )
    assert upload.status_code == 200, upload.text
    shot = upload.json()
    forum_post(
        world,
        "felix_oakes",
        title="Screenshot of the raid in the help channel",
        category=moderators,
        raw=f"This is what they posted:\n\n![raid|690x388]({shot['short_url']})",
    )
    handle_new_events(world, "post_created")
    [copy] = discord_copies(world, "This is what they posted")
    assert f"![raid|690x388]({world.discourse_url}{shot['short_path']})" in copy["content"]
    assert "upload://" not in copy["content"]


def test_a_long_forum_topic_is_one_discord_message_and_its_deletion_leaves_nothing(world: World, room: Any) -> None:
    """A topic's copy carries its title above the text in one Discord message of at most 2,000
    characters: shortened with the link to the original, never split into a second message that
    the edit, the deletion and an erasure would not know of."""
    moderators = next(c["id"] for c in world.discourse_state()["categories"] if c["name"] == "Moderators")
    words = " ".join(f"incident{i:04d}" for i in range(220))  # 2,639 characters
    first = forum_post(
        world, "felix_oakes", title="A long report about the weekend spam wave", category=moderators, raw=words
    )
    handle_new_events(world, "post_created")
    copies = discord_copies(world, "incident0")
    assert len(copies) == 1 and len(copies[0]["content"]) <= 2000
    assert copies[0]["content"].startswith("**A long report about the weekend spam wave**\n**felix_oakes** (Forum)")
    assert "read it all at" in copies[0]["content"] and len(discord_copies(world, "read it all at")) == 1
    httpx.delete(
        f"{world.discourse_url}/posts/{first['id']}.json",
        timeout=10,
        headers={"Api-Key": world.discourse_sb.api_key, "Api-Username": "felix_oakes"},
    ).raise_for_status()
    handle_new_events(world, "post_destroyed")
    assert discord_copies(world, "incident0") == [] and discord_copies(world, "read it all at") == []


def test_a_discord_attachment_signed_again_is_no_edit(world: World, room: Any) -> None:
    """Discord signs an attachment's CDN URL (``ex``, ``is``, ``hm``) and gives a new signature
    once it expired: the same file under a new signature is not an edit to relay to every copy."""
    world.discord_sb.settings.cdn_url_lifetime = 1
    say(world, "avery_quill", "The raid's screenshot is attached here.", attachments=["raid.png"])
    commons_poll()
    [copy] = forum_copies(world, "screenshot is attached")
    assert "/raid.png?ex=" in copy["raw"] and "&hm=" in copy["raw"]
    time.sleep(1.2)
    assert commons_poll()["moderators:discord:room"]["edited"] == 0
    assert forum_copies(world, "screenshot is attached") == [copy]


def test_an_edit_reaches_a_copy_in_an_archived_discord_thread(world: World, room: Any) -> None:
    """Discord archives a thread once idle (7 days here) and then refuses to edit its messages
    (400, 50083; only deletions happen there): the copy's edit unarchives the thread first."""
    sent = say(world, "cleo_marsh", "Who reviews the appeal queue this month?")
    commons_poll()
    [topic] = forum_copies(world, "Who reviews the appeal queue")
    answer = forum_post(world, "bram_tolliver", topic_id=topic["topic_id"], raw="I will take the appeals this month.")
    handle_new_events(world, "post_created")
    [copy] = discord_copies(world, "I will take the appeals")
    headers = world.discord_sb.client_info(world.discord_url)["headers"]
    httpx.patch(
        f"{world.discord_url}/api/v10/channels/{sent['id']}", json={"archived": True}, headers=headers, timeout=10
    ).raise_for_status()
    httpx.put(
        f"{world.discourse_url}/posts/{answer['id']}.json",
        json={"post": {"raw": "I will take the appeals this month and the next."}},
        headers={"Api-Key": world.discourse_sb.api_key, "Api-Username": "bram_tolliver"},
        timeout=10,
    ).raise_for_status()
    assert handle_new_events(world, "post_edited")[0] == "edited 1 copy"
    [edited] = discord_copies(world, "I will take the appeals")
    assert edited["id"] == copy["id"] and "and the next" in edited["content"]
