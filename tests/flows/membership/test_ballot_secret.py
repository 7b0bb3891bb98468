"""R-VOTE-SECRET end to end: a removal ballot shows no voter anywhere a member (or the subject)
can see. The Forum poll is not public (no one, staff included, can list its voters) and shows no
counts until it is closed; Discord button answers go to the voter only; no message names a voter;
once closed every platform shows the one merged tally. The ledger still counts each person once,
the Forum votes read per voter with the operator's key."""

from __future__ import annotations

import time
from datetime import timedelta

import httpx
from sqlalchemy import select

from flows import inbox
from flows.kit import context
from flows.membership import ballot as ballots
from flows.membership.ballot import close_due_ballots
from flows.membership.removal import open_removal_ballot
from ledger.models import Ballot, BallotOutcome, InboxEvent
from tests.support.membership import NOW

VOTERS = ("bram_tolliver", "cleo_marsh", "dario_fenwick", "felix_oakes")


def _as(world, username, method, path, **kw):
    """A request to the Forum as ``username`` would make it (the all-users key acting as them)."""
    return httpx.request(
        method,
        f"{world.discourse_url}{path}",
        timeout=10,
        headers={"Api-Key": world.discourse_sb.api_key, "Api-Username": username},
        **kw,
    )


def _vote_events(world):
    with world.ledger.read() as session:
        return [
            e.id
            for e in session.scalars(
                select(InboxEvent).where(InboxEvent.route == inbox.Route.VOTE).order_by(InboxEvent.id)
            )
        ]


def _press_through_gateway(world, ref, user):
    """``user`` presses Yes on the Discord ballot: the sandbox signs the interaction and sends it
    to the gateway, which stores it; the worker's handler then runs it."""
    before = set(_vote_events(world))
    pressed = world.discord_sb.press(
        world.discord_url, user=user, channel_id=ref["thread_id"], message_id=ref["message_id"], option_index=0
    )
    # Within Discord's 3 s: a private "thinking…", never a message everyone sees.
    assert pressed["status"] == 200 and pressed["response"] == {"type": 5, "data": {"flags": 64}}
    deadline = time.monotonic() + 15
    while not (new := set(_vote_events(world)) - before):
        assert time.monotonic() < deadline, "the gateway stored no vote"
        time.sleep(0.05)
    return inbox.handle_event(world.ledger, new.pop())


def _forum_poll(world, username, post_id):
    shown = _as(world, username, "GET", f"/posts/{post_id}.json")
    assert shown.status_code == 200, shown.text
    return shown.json()


def test_removal_ballot_names_no_voter_anywhere_and_shows_counts_once_closed(world, gateway):
    opened = open_removal_ballot(member="hana_pike", proposed_by="avery_quill", now=NOW)
    ballot_id = opened["ballot"]
    where = ballots.refs(context(NOW), ballot_id)
    post_id = int(where["discourse"]["ballot_id"])
    [poll] = [p for p in world.discourse_state()["polls"] if p["post_id"] == post_id]
    assert poll["public"] is False and poll["results"] == "on_close"

    # Bram votes in the Forum poll; the closer reads it (per voter) into the ledger.
    world.discourse_sb.cast_vote(
        world.discourse_url,
        ballots.platform_ballot("discourse", where["discourse"]),
        voter="bram_tolliver",
        option_index=0,
    )
    assert close_due_ballots(now=NOW + timedelta(minutes=5))[0]["yes"] == 1
    # Nobody can list the voters: not a member, not the voter, not the subject, not the admin API user.
    for reader in ("felix_oakes", "bram_tolliver", "hana_pike", "system"):
        listed = _as(world, reader, "GET", "/polls/voters.json", params={"post_id": post_id, "poll_name": "vote"})
        assert listed.status_code == 400 and listed.json()["error_type"] == "invalid_parameters"
        # While open the poll shows no counts and is not public; a reader sees only their own vote.
        shown = _forum_poll(world, reader, post_id)
        [open_poll] = shown["polls"]
        assert "public" not in open_poll and all("votes" not in o for o in open_poll["options"])
        assert shown.get("polls_votes", {}) == (
            {"vote": [open_poll["options"][0]["id"]]} if reader == "bram_tolliver" else {}
        )

    # Three members press Yes on Discord: each answer is private to its voter.
    discord_ids = {m["username"]: m["id"] for m in world.discord_state()["members"]}
    for voter in ("cleo_marsh", "dario_fenwick", "felix_oakes"):
        assert _press_through_gateway(world, where["discord"], voter) == f"ballot:{ballot_id}:vote"
        [answer] = [
            m
            for m in world.discord_state()["messages"]
            if m["visible_to"] == discord_ids[voter] and "Your vote" in m["content"]
        ]
        assert answer["flags"] & 64 and "yes" in answer["content"]
    with world.ledger.read() as session:  # the fourth yes of six decided it (R-VOTE-EARLY)
        assert session.get(Ballot, ballot_id).outcome == BallotOutcome.PASSED

    # Closed: the Forum poll is closed and shows its counts; its topic and the Discord ballot
    # message state the one merged tally.
    merged = "Closed: passed, 4 yes, 0 no, 0 abstain of 6 (Discord 3, Forum 1)"
    [closed] = _forum_poll(world, "felix_oakes", post_id)["polls"]
    assert closed["status"] == "closed" and [o["votes"] for o in closed["options"]] == [1, 0, 0]
    topic = int(where["discourse"]["thread_id"])
    forum_posts = world.discourse_state()["posts"]
    assert any(merged in p["raw"] for p in forum_posts if p["topic_id"] == topic)
    message = next(m for m in world.discord_state()["messages"] if m["id"] == where["discord"]["message_id"])
    assert merged in message["content"] and message["components"] == []

    # No message anyone else can read names a voter (ephemeral answers are their voter's own).
    dm_channels = {c["id"] for c in world.discord_state()["channels"] if c["type"] == 1}
    private_topics = {t["id"] for t in world.discourse_state()["topics"] if t["archetype"] == "private_message"}
    shown_to_others = [
        m["content"]
        for m in world.discord_state()["messages"]
        if m["visible_to"] is None and m["channel_id"] not in dm_channels
    ]
    shown_to_others += [p["raw"] for p in world.discourse_state()["posts"] if p["topic_id"] not in private_topics]
    assert shown_to_others and not [t for t in shown_to_others for v in VOTERS if v in t]
