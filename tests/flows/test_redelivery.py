"""``hooks-redeliver``: an application topic opened on the Forum while the gateway was down
reaches the inbox once the flow asks the Forum to send it again (Discourse never sends a
delivery that got no answer a second time). The real gateway, the Forum sandbox, Prefect."""

from __future__ import annotations

import time

from sqlalchemy import select

from flows.redelivery import hooks_redeliver
from ledger.models import InboxEvent
from tests.support.membership import open_forum_topic
from tests.support.net import free_port


def _forum_events(world) -> list[InboxEvent]:
    with world.ledger.read() as session:
        return list(session.scalars(select(InboxEvent).where(InboxEvent.source == "discourse")))


def test_a_topic_opened_while_the_gateway_was_down_reaches_the_inbox_once(world, gateway):
    up = world.discourse_sb.webhook.url
    world.discourse_sb.webhook.url = f"http://127.0.0.1:{free_port()}/hooks/discourse"  # the gateway down
    open_forum_topic(
        world,
        "ivo_stone",
        title="Application to join the working group from ivo_stone",
        category=gateway.applications_category,
        raw="I would like to help welcome newcomers on the Forum.",
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and (world.discourse_state()["webhook_pending"] or not _delivered(world)):
        time.sleep(0.1)
    failed = _delivered(world)
    assert failed and all(d["status"] is None for d in failed)  # no answer: Discourse gives up
    assert _forum_events(world) == []

    world.discourse_sb.webhook.url = up  # the gateway is back
    asked = hooks_redeliver()
    assert sorted(asked["discourse"]) == sorted(d["event_id"] for d in failed)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and len(_forum_events(world)) < len(failed):
        time.sleep(0.1)
    stored = _forum_events(world)
    assert sorted(e.kind for e in stored) == ["post_created", "topic_created"]
    assert all(any(d["event_id"] in e.dedupe_key for d in failed) for e in stored)  # the first ids

    # Asked again (the next run): nothing failed any more, nothing is stored twice.
    assert hooks_redeliver() == {"discourse": []}
    time.sleep(0.5)
    assert len(_forum_events(world)) == len(stored)


def _delivered(world) -> list[dict]:
    return list(world.discourse_state()["webhook_deliveries"])
