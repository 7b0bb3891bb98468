"""R-IDEA-1 intake: a Forum topic in the ideas category, Discord /idea, an operator; each files
one idea once, however often the event is replayed or handled."""

from __future__ import annotations

import json
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, select

from ledger.models import AuditEntry, Idea, IdeaStatus, InboxEvent

from flows import inbox
from flows.ideas.intake import handle_idea, ideas_file
from tests.flows.ideas.conftest import NOW, bot_messages, events, wait_for_event


def _ideas(world) -> list[Idea]:
    with world.ledger.read() as session:
        return list(session.scalars(select(Idea).order_by(Idea.id)))


def test_the_idea_route_has_the_real_handler():
    assert inbox.HANDLERS[inbox.Route.IDEA] is handle_idea
    assert inbox.Route.IDEA in inbox.DEFERRED_ROUTES
    assert inbox.route_for(source="discord", kind="idea-status", attributes={},
                           config=inbox.RoutingConfig()) == "ideas-status"
    assert inbox.route_for(source="discord", kind="component",
                           attributes={"custom_id": "cfi:3:accepted"},
                           config=inbox.RoutingConfig()) == "ideas-status"


def test_forum_topic_in_the_ideas_category_files_one_idea_even_when_replayed(world, gateway):
    # A member opens a topic in the ideas category; the sandbox's webhook reaches the gateway.
    created = httpx.post(f"{world.discourse_url}/posts.json", timeout=15, headers={
        "Api-Key": world.discourse_sb.api_key, "Api-Username": "felix_oakes"}, json={
        "title": "Office hours for newcomers every Friday", "category": gateway.ideas_category,
        "raw": "A voice call where newcomers can ask the moderators anything."})
    assert created.status_code == 200, created.text
    topic_id = created.json()["topic_id"]
    event_id = wait_for_event(world, source="discourse", kind="topic_created", route="idea")
    result = inbox.handle_event(world.ledger, event_id)
    assert result.startswith("idea:")
    idea_id = int(result.split(":")[1])
    [idea] = _ideas(world)
    assert (idea.id, idea.source, idea.status) == (idea_id, "forum", IdeaStatus.NEW)
    assert idea.title == "Office hours for newcomers every Friday"
    assert idea.author_person_id == world.people["felix_oakes"] and idea.author_handle is None
    assert idea.source_url.endswith(f"/{topic_id}") and idea.source_key == f"discourse:topic:{topic_id}"
    # The topic gets one reply with the number.
    replies = [p for p in world.discourse_state()["posts"]
               if p["topic_id"] == topic_id and f"#{idea_id}" in p["raw"]]
    assert len(replies) == 1

    # Replays: the same delivery again (stored once), and the same topic under a new event id
    # (Discourse's "redeliver"): neither files a second idea nor replies again.
    topic = {"topic": {"id": topic_id, "title": idea.title, "category_id": gateway.ideas_category,
                       "created_by": {"id": 99, "username": "felix_oakes"}}}
    headers, body = world.discourse_sb.signed_request(kind="topic_created", payload=topic)
    for _ in range(2):
        answer = httpx.post(f"{gateway.url}/hooks/discourse", content=body, headers=headers,
                            timeout=10)
        assert answer.status_code == 200 and answer.json()["route"] == "idea"
    assert answer.json()["duplicate"] is True
    second = events(world, source="discourse", kind="topic_created", route="idea")
    assert len(second) == 2
    assert inbox.handle_event(world.ledger, second[-1]) == f"idea:{idea_id}"
    assert inbox.handle_event(world.ledger, event_id) == "already-processed"
    assert len(_ideas(world)) == 1
    assert len([p for p in world.discourse_state()["posts"] if f"#{idea_id}" in p["raw"]]) == 1


def test_a_topic_outside_the_ideas_category_is_not_an_idea(world, gateway):
    created = httpx.post(f"{world.discourse_url}/posts.json", timeout=15, headers={
        "Api-Key": world.discourse_sb.api_key, "Api-Username": "felix_oakes"}, json={
        "title": "Hello from a newcomer to the working group", "raw": "Just saying hello to all of you.",
        "category": next(c["id"] for c in world.discourse_state()["categories"]
                         if c["name"] == "Working Group")})
    assert created.status_code == 200, created.text
    wait_for_event(world, source="discourse", kind="topic_created")
    assert events(world, route="idea") == [] and _ideas(world) == []


def test_discord_idea_files_once_and_the_member_is_told_its_number(world, gateway):
    sent = world.discord_sb.command(world.discord_url, user="quinn_harbor", name="idea",
                                    options={"text": "A #help channel for beginners\nWith a pinned FAQ."})
    assert sent["status"] == 200 and sent["response"]["type"] == 5  # deferred "thinking…"
    event_id = wait_for_event(world, source="discord", kind="idea", route="idea")
    result = inbox.handle_event(world.ledger, event_id)
    idea_id = int(result.split(":")[1])
    [idea] = _ideas(world)
    # quinn_harbor is on Discord but not a person in the ledger: the platform handle is kept.
    assert idea.source == "discord" and idea.author_person_id is None
    assert idea.author_handle == "discord:quinn_harbor"
    assert idea.title == "A #help channel for beginners"
    assert idea.body == "A #help channel for beginners\nWith a pinned FAQ."
    assert idea.source_url.startswith("https://discord.com/channels/")
    [followup] = bot_messages(world, f"**#{idea_id}**")
    assert "filed" in followup["content"]

    # Discord retries the same interaction: stored once, answered deferred again; the handler
    # run again (a crash before the event was marked) files nothing and says nothing twice.
    with world.ledger.read() as session:
        payload = session.get(InboxEvent, event_id).payload
    body = json.dumps(payload["data"], separators=(",", ":")).encode()
    replay = httpx.post(f"{gateway.url}/hooks/discord", content=body,
                        headers=world.discord_sb.sign(body), timeout=10)
    assert replay.status_code == 200 and replay.json()["type"] == 5
    assert events(world, source="discord", kind="idea") == [event_id]
    with world.ledger.read() as session:
        event = session.get(InboxEvent, event_id)
    assert handle_idea(ledger=world.ledger, event=event) == f"idea:{idea_id}"
    assert len(_ideas(world)) == 1 and len(bot_messages(world, f"**#{idea_id}**")) == 1


def test_discord_idea_from_a_member_links_the_person_and_empty_text_is_refused(world, gateway):
    world.discord_sb.command(world.discord_url, user="cleo_marsh", name="idea",
                             options={"text": "Weekly office hours on Discord"})
    event_id = wait_for_event(world, source="discord", kind="idea")
    idea_id = int(inbox.handle_event(world.ledger, event_id).split(":")[1])
    with world.ledger.read() as session:
        idea = session.get(Idea, idea_id)
        assert idea.author_person_id == world.people["cleo_marsh"] and idea.body is None
    world.discord_sb.command(world.discord_url, user="cleo_marsh", name="idea",
                             options={"text": "   "})
    blank = wait_for_event(world, source="discord", kind="idea", count=2)
    assert inbox.handle_event(world.ledger, blank) == "refused:invalid:text"
    assert len(_ideas(world)) == 1
    assert bot_messages(world, "Your idea was not filed: text: is empty")


def test_operator_files_an_idea_once_and_bad_input_names_the_field(world):
    first = ideas_file(title="Translate the code of conduct into Spanish",
                       body="Many members read Spanish first.", author="avery_quill",
                       source_url="https://forum.example.org/t/42", now=NOW)
    assert first["filed"] is True
    again = ideas_file(title="Translate the code of conduct into Spanish",
                       body="Many members read Spanish first.", author="avery_quill", now=NOW)
    assert again == {**first, "filed": False}
    by_mail = ideas_file(title="A mentoring programme", author="someone_by_mail",
                         source_ref="mail-2026-11-20", now=NOW + timedelta(minutes=1))
    with world.ledger.read() as session:
        idea = session.get(Idea, first["idea"])
        assert idea.source == "operator" and idea.author_person_id == world.people["avery_quill"]
        other = session.get(Idea, by_mail["idea"])
        assert other.author_person_id is None and other.author_handle == "someone_by_mail"
        added = session.scalar(select(func.count()).select_from(AuditEntry)
                               .where(AuditEntry.action == "idea.added"))
    assert added == 2
    for fields, culprit in (({"title": " "}, "title"), ({"title": "x" * 301}, "title"),
                            ({"title": "Fine", "source_url": "ftp://x"}, "source_url")):
        with pytest.raises(ValueError, match=f"^{culprit}: "):
            ideas_file(**fields, now=NOW)
    assert len(_ideas(world)) == 2
