"""Reports handled where the moderators are (issue 22, R-SAFE-1, R-SAFE-2): a Discord report
claimed and resolved by replies in its Forum private message (the ``post_created`` webhook the
Forum sandbox sends, verified, routed and handled), and the CoC Liaison's outcome buttons."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select

from flows import inbox
from ledger.models import AuditEntry
from tests.flows.safety.test_reports import _form_report, _receiver, _store, dms_to, only_report, report_message
from tests.support.moderation import World, buttons, press


def _reply(world: World, *, user: str, topic_id: int, raw: str) -> tuple[dict[str, str], bytes]:
    """``user`` replies ``raw`` in Forum topic ``topic_id`` through the Forum's API; returns the
    ``post_created`` webhook the Forum sent for it (headers, raw body)."""
    with _receiver() as (url, received):
        world.forum_sb.webhook.url = url
        posted = httpx.post(
            f"{world.forum_url}/posts.json",
            timeout=10,
            json={"topic_id": topic_id, "raw": raw},
            headers={"Api-Key": world.forum_sb.api_key, "Api-Username": user},
        )
        assert posted.status_code == 200, posted.text
        while True:
            headers, body = received.get(timeout=10)
            if headers.get("x-discourse-event") == "post_created" and str(posted.json()["id"]).encode() in body:
                world.forum_sb.webhook.url = None
                return headers, body


def _handle(world: World, headers: dict[str, str], body: bytes) -> str:
    """As the gateway and the worker: verify, route, store (once per delivery), handle."""
    event = world.forum.verify(headers=headers, body=body)
    route = inbox.route_for(
        source="discourse",
        kind=event.kind,
        attributes=event.attributes,
        config=inbox.RoutingConfig(),
        actor=event.actor,
    )
    assert route == "safety-command", route
    return inbox.handle_event(world.ledger, _store(world, event, route))


def _answers(world: World, topic_id: int) -> list[str]:
    """The bot's replies in a Forum topic (after its first post)."""
    state = world.forum_state()
    system = next(u["id"] for u in state["users"] if u["username"] == "system")
    return [
        p["raw"]
        for p in state["posts"]
        if p["topic_id"] == topic_id and p["post_number"] > 1 and p["user_id"] == system
    ]


def test_r_safe_1_a_discord_report_is_claimed_and_resolved_from_the_forum_the_reporter_told(world: World) -> None:
    report_message(world, reporter="cleo_marsh", author="rowan_vale", content="an unkind remark about a newcomer")
    report = only_report(world)
    (pm,) = world.forum_moderator_pms()
    topic = pm["topic_id"]
    assert "Reply here with `claim`" in pm["raw"]
    # A member who is not a Forum moderator cannot claim it; the reply says so.
    assert (
        _handle(world, *_reply(world, user="cleo_marsh", topic_id=topic, raw="claim this one please"))
        == "refused:not-a-moderator"
    )
    assert only_report(world).state == "open"
    assert any("only moderators handle reports" in a for a in _answers(world, topic))
    # The moderator claims; the same delivery replayed acts once; a second claim is refused.
    claimed = _reply(world, user="bram_tolliver", topic_id=topic, raw="Claim, looking at it now")
    assert _handle(world, *claimed) == f"claimed:{report.id}"
    assert _handle(world, *claimed) == "already-processed"
    assert (
        _handle(world, *_reply(world, user="bram_tolliver", topic_id=topic, raw="claim it again")) == "refused:claimed"
    )
    assert only_report(world).claimed_by == "bram_tolliver"
    # Discord's moderators' channel follows (the same report, claimed, its buttons kept).
    (message,) = [m for m in world.moderators_channel() if f"Report #{report.id}" in m["content"]]
    assert "claimed by bram_tolliver" in message["content"] and buttons(message)
    # An outcome that does not exist changes nothing; then resolved as warned.
    assert (
        _handle(world, *_reply(world, user="bram_tolliver", topic_id=topic, raw="resolve shouted")) == "refused:claimed"
    )
    assert (
        _handle(
            world, *_reply(world, user="bram_tolliver", topic_id=topic, raw="resolve warned\nSpoke to them privately.")
        )
        == f"resolved:{report.id}:warned"
    )
    done = only_report(world)
    assert (done.state, done.outcome, done.resolved_by) == ("resolved", "warned", "bram_tolliver")
    answers = _answers(world, topic)
    for said in (f"Report #{report.id} is yours.", f"Report #{report.id} resolved: Warned."):
        assert len([a for a in answers if a.startswith(said)]) == 1, said  # replies end with a key marker
    (message,) = [m for m in world.moderators_channel() if f"Report #{report.id}" in m["content"]]
    assert "(resolved by bram_tolliver: Warned)" in message["content"] and message["components"] == []
    # The Discord reporter is told it was handled, once, never the outcome.
    (told,) = [t for t in dms_to(world, "cleo_marsh") if f"#{report.id}" in t]
    assert "handled" in told and "warn" not in told.lower()
    assert dms_to(world, "rowan_vale") == []
    with world.ledger.read() as session:
        actors = {
            a
            for (a,) in session.execute(
                select(AuditEntry.actor).where(AuditEntry.action.in_(["safety.claimed", "safety.resolved"]))
            )
        }
    # bram_tolliver is not in the ledger: the audit log names the platform, never the account
    # id (R-PRIVACY-2: the log is never erased); the report's row says who.
    assert actors == {"discourse:unlinked"}


def test_r_safe_1_a_command_in_another_topic_is_ignored(world: World) -> None:
    report_message(world, reporter="cleo_marsh", author="rowan_vale", content="rude")
    report = only_report(world)
    # A look-alike private message titled as the report, opened by someone else.
    made = httpx.post(
        f"{world.forum_url}/posts.json",
        timeout=10,
        json={
            "title": f"Report #{report.id}: a look-alike",
            "raw": "A private message of my own.",
            "archetype": "private_message",
            "target_recipients": "bram_tolliver",
        },
        headers={"Api-Key": world.forum_sb.api_key, "Api-Username": "dario_fenwick"},
    )
    assert made.status_code == 200, made.text
    assert (
        _handle(
            world, *_reply(world, user="bram_tolliver", topic_id=made.json()["topic_id"], raw="claim this one here")
        )
        == "ignored:not-a-report-topic"
    )
    assert only_report(world).state == "open"


def _liaison_buttons_message(world: World, username: str) -> dict[str, Any] | None:
    state = world.discord_state()
    uid = world.discord.find_user(username).id
    channels = {c["id"] for c in state["channels"] if c.get("type") == 1 and c.get("recipient_id") == uid}
    found = [m for m in state["messages"] if m["channel_id"] in channels and m.get("components")]
    return found[0] if found else None


def test_r_safe_2_only_the_liaison_records_the_coc_outcome_with_a_button(world: World) -> None:
    _form_report(world, coc="yes")
    report = only_report(world)
    message = _liaison_buttons_message(world, "avery_quill")
    assert message is not None and f"report #{report.id}" in message["content"]
    assert buttons(message) == [f"cfs:coc:{report.id}:{o}" for o in ("no_violation", "warning", "suspension", "ban")]
    # Nobody else got the buttons.
    assert _liaison_buttons_message(world, "bram_tolliver") is None
    # A moderator pressing the liaison's button (a forged press) is refused; nothing recorded.
    assert (
        press(world, user="bram_tolliver", message=message, custom_id=f"cfs:coc:{report.id}:ban")
        == "refused:not-the-liaison"
    )
    assert only_report(world).coc_outcome is None
    assert (
        press(world, user="avery_quill", message=message, custom_id=f"cfs:coc:{report.id}:made-up")
        == "refused:unknown-outcome"
    )
    assert (
        press(world, user="avery_quill", message=message, custom_id=f"cfs:coc:{report.id}:warning")
        == f"coc-outcome:{report.id}"
    )
    assert only_report(world).coc_outcome == "A private warning"
