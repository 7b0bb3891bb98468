"""The private answer to a Discord ``/idea`` after the run that answered it was killed
(issue 19, the chaos test's lost/doubled answer): the retry of the inbox event sends no second
message, whatever point of the answer the killed run had reached.

The killed run's steps are replayed as it did them (the real connector against the Discord
sandbox, the ledger's own writes): the first run is failed by the sandbox (503), which leaves the
idea filed and the event unprocessed, as a worker killed after filing it does."""

from __future__ import annotations

import hashlib

import httpx
import pytest

from connectors.base import InteractionResponder
from connectors.errors import RetriableError
from flows import inbox
from flows.ideas.common import render
from flows.kit import answer_interaction, context
from ledger import repo
from ledger.models import Idea, InboxEvent
from tests.support.ideas import bot_messages, wait_for_event


def _filed_unanswered(world) -> tuple[int, int, str]:
    """An ``/idea`` filed whose answer was not sent: (event id, idea id, interaction token)."""
    world.discord_sb.command(
        world.discord_url, user="quinn_harbor", name="idea", options={"text": "A rota of greeters for newcomers"}
    )
    event_id = wait_for_event(world, source="discord", kind="idea", route="idea")
    faults = f"{world.discord_url}/_sandbox/faults"
    httpx.post(faults, json={"error_rate": 1.0, "error_status": 503}, timeout=10).raise_for_status()
    try:
        with pytest.raises(RetriableError):
            inbox.handle_event(world.ledger, event_id)
    finally:
        httpx.post(faults, json={}, timeout=10).raise_for_status()
    with world.ledger.read() as session:
        [idea_id] = [i.id for i in session.query(Idea)]
        event = session.get_one(InboxEvent, event_id)
        assert event.processed_at is None
        token = event.payload["attributes"]["interaction_token"]
    return event_id, idea_id, token


def _first_key(token: str) -> str:
    return f"interaction-original:{hashlib.sha256(token.encode()).hexdigest()[:24]}"


def _answers(world, idea_id: int) -> list[dict]:
    return bot_messages(world, f"**#{idea_id}**")


@pytest.mark.parametrize("recorded", [False, True], ids=["edited-not-recorded", "first-answer-recorded"])
def test_a_retry_after_the_answering_run_was_killed_answers_once(world, gateway, recorded):
    """Killed after the @original edit reached Discord, before (``edited-not-recorded``) or
    after (``first-answer-recorded``) the first answer was recorded but before its key was (the
    two were separate writes; a retry then saw "answered already" and sent a follow-up: two
    messages). The retry edits again (the same text) or sends nothing: one message."""
    event_id, idea_id, token = _filed_unanswered(world)
    key = f"ideas:answer:inbox:{event_id}"
    responder = world.platforms.space("discord").capable(InteractionResponder)
    responder.edit_original(token, render("filed", idea_id=idea_id, created=True))
    if recorded:
        with world.ledger.transaction() as session:
            repo.effect_record(
                session, key=_first_key(token), platform="discord", actor="test", ref={"key": key}, about="t"
            )
    assert len(_answers(world, idea_id)) == 1

    assert inbox.handle_event(world.ledger, event_id) == f"idea:{idea_id}"
    [answer] = _answers(world, idea_id)
    assert answer["edited"], answer  # the deferred "thinking…" message, edited: no follow-up
    with world.ledger.read() as session:
        assert repo.effect_get(session, key=key) is not None
        assert repo.effect_get(session, key=_first_key(token))["ref"] == {"key": key}
    assert inbox.handle_event(world.ledger, event_id) == "already-processed"
    assert len(_answers(world, idea_id)) == 1


def test_a_later_answer_to_the_same_interaction_is_a_follow_up(world, gateway):
    """A second answer (another key) to an interaction already answered is a follow-up, once."""
    event_id, idea_id, token = _filed_unanswered(world)
    assert inbox.handle_event(world.ledger, event_id) == f"idea:{idea_id}"
    ctx = context(None, ledger=world.ledger, platforms=world.platforms)
    attrs = {"interaction_token": token}
    for _ in range(2):
        answer_interaction(
            ctx, key=f"test:later:{event_id}", actor="test", about="t", attributes=attrs, text=f"About **#{idea_id}**."
        )
    messages = _answers(world, idea_id)
    assert [bool(m["edited"]) for m in messages] == [True, False], messages
    assert messages[1]["content"] == f"About **#{idea_id}**."
