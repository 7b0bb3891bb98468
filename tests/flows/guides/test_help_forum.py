"""R-GUIDE: ``/help <topic>`` on the Forum. A member's post starting ``/help`` (a reply in a
topic, or a private message to the system user) reaches the gateway as the Forum's signed
``post_created`` webhook and is answered in that conversation with the matching guides and their
links on each platform, the Forum's first; once per event. Forged, replayed and oversized
requests are covered too. Matrix's ``!help`` is tested with the plugin (real Synapse)."""

from __future__ import annotations

import json
import time

import httpx

from flows import inbox
from flows.guides.handlers import HELP_ROUTE
from flows.guides.publish import guides_publish
from tests.support.gateway import discourse_request, inbox_rows
from tests.support.guides import CHANNELS
from tests.support.ideas import wait_for_event
from tests.support.membership import FORUM_HOOK_SECRET, NOW, serve_gateway


def _post(world, author, **body):
    created = httpx.post(
        f"{world.discourse_url}/posts.json",
        timeout=15,
        json=body,
        headers={"Api-Key": world.discourse_sb.api_key, "Api-Username": author},
    )
    assert created.status_code == 200, created.text
    return created.json()


def _answers(world, topic_id):
    return [
        p["raw"]
        for p in world.discourse_state()["posts"]
        if p["topic_id"] == topic_id and p["raw"].startswith(("Guides about", "No guide matches"))
    ]


def test_r_guide_help_on_the_forum_answers_in_the_topic_and_in_a_private_message(world, guides_folder):
    out = guides_publish(channels=CHANNELS, now=NOW)
    links = {r["platform"]: r["url"] for r in out["guides"] if r["guide"] == "reporting-a-problem"}
    general = next(c["id"] for c in world.discourse_state()["categories"] if c["name"] == "General")
    with serve_gateway(world):
        topic = _post(
            world,
            "quinn_harbor",
            title="Someone keeps posting ads in my topic",
            category=general,
            raw="Every day new replies with ads appear under my question. What can I do?",
        )["topic_id"]
        _post(world, "quinn_harbor", topic_id=topic, raw="/help how do I report spam")
        event_id = wait_for_event(world, source="discourse", kind="post_created", route=HELP_ROUTE)
        assert inbox.handle_event(world.ledger, event_id) == "help:1"
        [answer] = _answers(world, topic)
        assert "- Reporting a problem: Forum " in answer
        # Every platform's link, the Forum's (where it was asked) first.
        assert answer.index(links["discourse"]) < answer.index(links["discord"])
        # The task runs again (a retry): no second answer.
        assert inbox.handle_event(world.ledger, event_id) == "already-processed"
        assert len(_answers(world, topic)) == 1

        # A private message to the system user: answered in it, for the member alone.
        pm = _post(
            world,
            "rowan_vale",
            title="Help",
            archetype="private_message",
            target_recipients="system",
            raw="/help where do I start",
        )["topic_id"]
        event_id = wait_for_event(world, source="discourse", kind="post_created", route=HELP_ROUTE, count=2)
        assert inbox.handle_event(world.ledger, event_id).startswith("help:")
        [answer] = _answers(world, pm)
        assert "Welcome to the Django community" in answer

        # An oversized topic is read as its first 100 characters; the answer stays one post.
        _post(world, "quinn_harbor", topic_id=topic, raw="/help " + "report spam " * 2000)
        event_id = wait_for_event(world, source="discourse", kind="post_created", route=HELP_ROUTE, count=3)
        assert inbox.handle_event(world.ledger, event_id) == "help:1"
        assert len(_answers(world, topic)) == 2 and len(_answers(world, topic)[1]) < 2000

        # Posts that only look like it are not help requests.
        _post(world, "quinn_harbor", topic_id=topic, raw="/helpful tips are welcome in this thread too")
        deadline = time.monotonic() + 20
        while not (
            found := [
                r
                for r in inbox_rows(world.ledger)
                if str((r.payload or {}).get("attributes", {}).get("raw", "")).startswith("/helpful")
            ]
        ):
            assert time.monotonic() < deadline, "the Forum did not deliver the post"
            time.sleep(0.05)
        assert found[0].route == inbox.Route.UNKNOWN


def test_r_guide_forum_help_forged_or_replayed_is_refused_or_stored_once(world, guides_folder):
    body = json.dumps(
        {"post": {"id": 901, "topic_id": 77, "post_number": 2, "username": "quinn_harbor", "raw": "/help report spam"}}
    ).encode()
    with serve_gateway(world) as gateway:
        forged = discourse_request(5001, event="post_created", secret="not-the-forum-secret", body=body)
        assert httpx.post(
            f"{gateway.url}/hooks/discourse", headers=forged[0], content=forged[1], timeout=10
        ).status_code in (401, 403)
        assert not [r for r in inbox_rows(world.ledger) if r.route == HELP_ROUTE]
        signed = discourse_request(5002, event="post_created", secret=FORUM_HOOK_SECRET, body=body)
        for _ in range(2):  # Discourse redelivers with the same event id
            assert (
                httpx.post(
                    f"{gateway.url}/hooks/discourse", headers=signed[0], content=signed[1], timeout=10
                ).status_code
                == 200
            )
        [row] = [r for r in inbox_rows(world.ledger) if r.route == HELP_ROUTE]
        assert row.kind == "post_created"


def test_r_guide_forum_pm_help_reply_lost_in_transit_is_posted_once(world, guides_folder):
    # The answer's POST is applied but its response never arrives (the connection drops after the
    # sandbox produced it): the retry finds the reply among the PM's posts and does not post again.
    guides_publish(channels=CHANNELS, now=NOW)
    with serve_gateway(world):
        pm = _post(
            world,
            "rowan_vale",
            title="Where to begin",
            archetype="private_message",
            target_recipients="system",
            raw="/help how do I report spam",
        )["topic_id"]
        event_id = wait_for_event(world, source="discourse", kind="post_created", route=HELP_ROUTE)
        posted = world.discourse_state()["requests"].get("POST /posts.json", 0)
        faults = {"drop_rate": 1.0, "drop_phase": "after", "drop_times": 1, "methods": ["POST"]}
        httpx.post(f"{world.discourse_url}/_sandbox/faults", json=faults, timeout=10).raise_for_status()
        try:
            assert inbox.handle_event(world.ledger, event_id) == "help:1"
        finally:
            left = httpx.post(f"{world.discourse_url}/_sandbox/faults", json={}, timeout=10).json()
        assert left["faults"] == {}
        assert len(_answers(world, pm)) == 1
        # Sent once, its answer lost; the retry read the PM's posts and found it.
        requests = world.discourse_state()["requests"]
        assert requests["POST /posts.json"] == posted + 1 and requests["GET /t/{topic_id}/posts.json"] >= 2
