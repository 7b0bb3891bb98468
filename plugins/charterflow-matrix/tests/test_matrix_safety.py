"""Issue 22 point 2 on Matrix (R-SAFE-1): ``!report`` replies, the moderators' room, reply
commands in a report's thread, and the homeserver's own reports taken by a poll.

Real parts: a Synapse on loopback whose appservice pushes to the real gateway (the plugin's hook
mounted from its entry point), the Discord and Forum sandboxes, the session's Prefect server, a
SQLite ledger. Pushed events are handled with ``flows.inbox.handle_event``, as the task worker does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from matrix_served import PushingHomeserver, bot_connector, platforms_with, pushed, pushing_synapse, say_in, seed
from pydantic import SecretStr
from sqlalchemy import func, select

from charterflow_matrix.client import q
from charterflow_matrix.homeserver import APPSERVICE_PATH
from charterflow_matrix.inbound import AppserviceVerifier
from connectors.base import Role
from flows import inbox
from flows.platforms import use
from flows.safety.flows import safety_platform_reports
from ledger import repo
from ledger.models import InboxEvent, WgRole, WgRoleAssignment
from ledger.models_safety import SafetyReport
from tests.support.commons import discord_copies
from tests.support.membership import NOW, World, serve_gateway

pytestmark = pytest.mark.timeout(600)
PEOPLE = ["avery_quill", "bram_tolliver", "cleo_marsh", "dario_fenwick"]


@pytest.fixture
def reports(
    world: World, pushing_homeserver: PushingHomeserver, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, Any]]:
    """Synapse pushing to the gateway; avery_quill a moderator of the Matrix space; the
    moderators' room holds avery_quill and bram_tolliver (not a moderator)."""
    with serve_gateway(world) as gw, pushing_synapse(pushing_homeserver, gw.url, monkeypatch) as creds:
        users = seed(
            creds,
            {"members": PEOPLE, "rooms": {"general": PEOPLE, "moderators": ["avery_quill", "bram_tolliver"]}},
        )
        matrix = bot_connector(creds)
        matrix.grant(matrix.find_user("avery_quill"), Role.moderator(), reason="test: a Matrix moderator")
        with use(ledger=world.ledger, platforms=platforms_with(world, matrix)):
            yield {
                "creds": creds,
                "users": users,
                "matrix": matrix,
                "gateway": gw.url,
                "general": matrix.room_id("general"),
                "moderators": matrix.room_id("moderators"),
            }
        matrix.close()


def admin(b: dict[str, Any]) -> httpx.Client:
    """Synapse's APIs as the bot (a server admin), directly."""
    return httpx.Client(
        base_url=b["creds"].base_url,
        timeout=30,
        trust_env=False,
        headers={"Authorization": f"Bearer {b['creds'].bot_token}"},
    )


def messages(b: dict[str, Any], room: str) -> list[dict[str, Any]]:
    """The ``m.room.message`` events of ``room``, oldest first (admin API)."""
    with admin(b) as client:
        return (
            client.get(
                f"/_synapse/admin/v1/rooms/{q(room)}/messages",
                params={"dir": "f", "limit": 500, "filter": '{"types":["m.room.message"]}'},
            )
            .raise_for_status()
            .json()["chunk"]
        )


def dm_texts(b: dict[str, Any], username: str) -> list[str]:
    """The bodies of the bot's direct messages to ``username``."""
    room = b["matrix"]._dm_rooms().get(b["matrix"].user_id(username))
    return [e["content"].get("body", "") for e in messages(b, room)] if room else []


def handle(world: World, event_id: str, route: str) -> str:
    row = pushed(world, event_id)
    assert (row.source, row.route) == ("matrix", route), (row.source, row.route, row.kind)
    return inbox.handle_event(world.ledger, row.id)


def reply_command(b: dict[str, Any], who: str, root: str, body: str) -> str:
    """``who`` answers in the thread of the report post ``root`` in the moderators' room."""
    return say_in(b, who, b["moderators"], body, **{"m.relates_to": {"rel_type": "m.thread", "event_id": root}})


def report_reply(b: dict[str, Any], reporter: str, target: str, quoted: str, reason: str) -> str:
    """``reporter`` replies to ``target`` with ``!report`` (with the rich-reply fallback that
    clients still send)."""
    server = b["creds"].server_name
    body = f"> <@dario_fenwick:{server}> {quoted}\n\n!report {reason}"
    return say_in(b, reporter, b["general"], body, **{"m.relates_to": {"m.in_reply_to": {"event_id": target}}})


def only_report(world: World) -> SafetyReport:
    with world.ledger.read() as session:
        (report,) = session.scalars(select(SafetyReport)).all()
        session.expunge(report)
        return report


def test_r_safe_1_a_matrix_report_is_shown_claimed_and_resolved_from_matrix(
    world: World, reports: dict[str, Any]
) -> None:
    b = reports
    target = say_in(b, "dario_fenwick", b["general"], "newcomers should just read the docs and stop asking")
    event_id = report_reply(
        b, "cleo_marsh", target, "newcomers should just read the docs and stop asking", "dismissive to a newcomer"
    )
    result = handle(world, event_id, inbox.Route.SAFETY_REPORT)
    report = only_report(world)
    assert result == f"taken:{report.id}"
    assert (report.via, report.platform, report.target_username) == ("matrix", "matrix", "dario_fenwick")
    assert report.target_message_id == target and report.reason == "dismissive to a newcomer"
    assert "stop asking" in (report.content or "") and q(target) in (report.target_link or "")
    # The command is redacted from the room (nobody there sees who reported); the reporter is
    # answered privately, never in the room.
    (command,) = [e for e in messages(b, b["general"]) if e["event_id"] == event_id]
    assert command["content"] == {} and "redacted_because" in command.get("unsigned", {})
    assert any(f"#{report.id}" in t for t in dm_texts(b, "cleo_marsh"))
    # Shown once in the Matrix moderators' room (the text names the reply commands) and on Discord.
    (post,) = [
        e
        for e in messages(b, b["moderators"])
        if f"Report #{report.id}" in e["content"]["body"]
        and "m.new_content" not in e["content"]
        and "m.relates_to" not in e["content"]
    ]
    assert "Reply here with `claim`" in post["content"]["body"] and post["sender"] == b["matrix"].me
    assert len(discord_copies(world, f"Report #{report.id}")) == 1
    # The same push replayed by the homeserver: stored once, no second report.
    with admin(b) as client:
        raw = client.get(f"/_matrix/client/v3/rooms/{q(b['general'])}/event/{q(event_id)}").raise_for_status().json()
    replay = httpx.put(
        f"{b['gateway']}{APPSERVICE_PATH}/_matrix/app/v1/transactions/replay-{report.id}",
        content=json.dumps({"events": [raw]}).encode(),
        timeout=30,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {b['creds'].hs_token}"},
    )
    assert replay.status_code == 200
    with world.ledger.read() as session:
        assert (
            session.scalar(select(func.count()).select_from(InboxEvent).where(InboxEvent.dedupe_key.endswith(event_id)))
            == 1
        )
    assert inbox.handle_event(world.ledger, pushed(world, event_id).id) == "already-processed"
    only_report(world)
    # A member of the room who is not a moderator cannot claim it.
    refused = reply_command(b, "bram_tolliver", post["event_id"], "claim")
    assert handle(world, refused, inbox.Route.SAFETY_COMMAND) == "refused:not-a-moderator"
    assert only_report(world).state == "open"
    # The moderator claims, and the post and Discord's copy say so; a second claim is refused.
    claimed = reply_command(b, "avery_quill", post["event_id"], "Claim")
    assert handle(world, claimed, inbox.Route.SAFETY_COMMAND) == f"claimed:{report.id}"
    again = reply_command(b, "avery_quill", post["event_id"], "claim")
    assert handle(world, again, inbox.Route.SAFETY_COMMAND) == "refused:claimed"
    edits = [
        e for e in messages(b, b["moderators"]) if e["content"].get("m.relates_to", {}).get("rel_type") == "m.replace"
    ]
    assert any("claimed by avery_quill" in e["content"]["m.new_content"]["body"] for e in edits)
    assert "claimed by avery_quill" in discord_copies(world, f"Report #{report.id}")[0]["content"]
    # Each command is answered in the report's thread.
    answers = [
        e
        for e in messages(b, b["moderators"])
        if e["sender"] == b["matrix"].me and e["content"].get("m.relates_to", {}).get("rel_type") == "m.thread"
    ]
    assert answers and all(e["content"]["m.relates_to"]["event_id"] == post["event_id"] for e in answers)
    # Resolved from Matrix; the reporter told it was handled, never the outcome.
    resolved = reply_command(b, "avery_quill", post["event_id"], "resolve warned")
    assert handle(world, resolved, inbox.Route.SAFETY_COMMAND) == f"resolved:{report.id}:warned"
    done = only_report(world)
    assert (done.state, done.outcome, done.claimed_by) == ("resolved", "warned", "avery_quill")
    told = [t for t in dm_texts(b, "cleo_marsh") if "was handled" in t]
    assert len(told) == 1 and "warn" not in told[0].lower()
    assert dm_texts(b, "dario_fenwick") == []  # the reported person learns nothing


def test_r_safe_1_a_command_outside_a_report_thread_and_a_report_replying_to_nothing_do_nothing(
    world: World, reports: dict[str, Any]
) -> None:
    b = reports
    root = say_in(b, "avery_quill", b["moderators"], "Who takes the weekend shift?")
    elsewhere = reply_command(b, "avery_quill", root, "claim")
    assert handle(world, elsewhere, inbox.Route.SAFETY_COMMAND) == "ignored:not-a-report-topic"
    bare = say_in(b, "cleo_marsh", b["general"], "!report someone was rude")
    assert handle(world, bare, inbox.Route.SAFETY_REPORT) == "refused:no-target"
    with world.ledger.read() as session:
        assert session.scalars(select(SafetyReport)).all() == []
    assert any("reply to it with `!report" in t for t in dm_texts(b, "cleo_marsh"))


def test_r_safe_1_a_report_made_with_the_homeservers_report_api_becomes_one_report_after_the_poll(
    world: World, reports: dict[str, Any]
) -> None:
    b = reports
    target = say_in(b, "dario_fenwick", b["general"], "a link to a scam site, click it")
    # cleo_marsh uses her client's report button (the spec's report endpoint, with her token).
    with b["users"].client(b["creds"].base_url, "cleo_marsh") as client:
        client.post(
            f"/_matrix/client/v3/rooms/{q(b['general'])}/report/{q(target)}",
            json={"reason": "spam link", "score": -100},
        ).raise_for_status()
    assert safety_platform_reports() == {"matrix": [f"taken:{only_report(world).id}"]}
    report = only_report(world)
    assert (report.via, report.platform, report.target_message_id) == ("matrix", "matrix", target)
    assert (report.target_username, report.reason) == ("dario_fenwick", "spam link")
    assert report.reporter_username == "cleo_marsh" and report.state == "open"
    (post,) = [e for e in messages(b, b["moderators"]) if f"Report #{report.id}" in e["content"]["body"]]
    assert "Reply here with `claim`" in post["content"]["body"]
    # Polled again: still one report, shown once.
    assert safety_platform_reports() == {"matrix": []}
    only_report(world)
    assert len([e for e in messages(b, b["moderators"]) if f"Report #{report.id}" in e["content"]["body"]]) == 1


def _parsed(content: dict[str, Any]) -> Any:
    verifier = AppserviceVerifier(hs_token=SecretStr("t"), server_name="localhost")
    return verifier.parse_event(
        {
            "type": "m.room.message",
            "event_id": "$e1",
            "room_id": "!r:localhost",
            "sender": "@cleo_marsh:localhost",
            "content": content,
        }
    )


def test_the_parser_gives_neutral_report_and_command_attributes() -> None:
    reply = _parsed(
        {
            "msgtype": "m.text",
            "body": "> <@dario_fenwick:localhost> rude words\n> more\n\n!report  rude",
            "m.relates_to": {"m.in_reply_to": {"event_id": "$t1"}},
        }
    )
    assert reply.kind == "report" and reply.attributes["report.reason"] == "rude"
    assert (reply.attributes["report.target_message_id"], reply.attributes["report.target_username"]) == (
        "$t1",
        "dario_fenwick",
    )
    assert reply.attributes["report.content"] == "rude words\nmore"
    assert reply.attributes["report.target_link"] == "https://matrix.to/#/%21r%3Alocalhost/%24t1"
    bare = _parsed({"msgtype": "m.text", "body": "!report rude"})
    assert bare.kind == "report" and "report.target_message_id" not in bare.attributes
    # A reply without the fallback: the target is known, its author and text are not.
    modern = _parsed(
        {"msgtype": "m.text", "body": "!report rude", "m.relates_to": {"m.in_reply_to": {"event_id": "$t2"}}}
    )
    assert modern.attributes["report.target_message_id"] == "$t2" and "report.target_account" not in modern.attributes
    command = _parsed(
        {"msgtype": "m.text", "body": "Resolve warned", "m.relates_to": {"rel_type": "m.thread", "event_id": "$root"}}
    )
    assert command.kind == "room_command"
    assert command.attributes["command.thread_id"] == "!r:localhost/$root"
    # Outside a thread, `claim` is an ordinary message (bridged by the common room).
    assert _parsed({"msgtype": "m.text", "body": "claim"}).kind == "message"


def test_r_safe_2_the_liaison_records_the_coc_outcome_from_matrix_through_the_signed_link(
    world: World, reports: dict[str, Any]
) -> None:
    """R-SAFE-2 where there are no buttons: avery_quill, the CoC Liaison, gets a moderator's
    referral in a Matrix direct message carrying the signed link; its page (the real gateway)
    records the CoC WG's outcome once; the moderators' room still shows only the referral."""
    b = reports
    with world.ledger.transaction() as session:
        person = repo.get_person(session, "avery_quill")
        user = b["matrix"].find_user("avery_quill")
        repo.add_identity(
            session, person, platform="matrix", actor="operator", external_id=user.id, username=user.username, at=NOW
        )
        session.add(WgRoleAssignment(person_id=person.id, role=WgRole.COC_LIAISON, assigned_by="coc-wg", starts_at=NOW))
    target = say_in(b, "dario_fenwick", b["general"], "a veiled threat")
    handle(world, report_reply(b, "cleo_marsh", target, "a veiled threat", "this reads as a threat"), "safety-report")
    report = only_report(world)
    (post,) = [
        e
        for e in messages(b, b["moderators"])
        if f"Report #{report.id}" in e["content"]["body"] and "m.relates_to" not in e["content"]
    ]
    referred = reply_command(b, "avery_quill", post["event_id"], "refer")
    assert handle(world, referred, inbox.Route.SAFETY_COMMAND) == f"referred:{report.id}"
    [dm] = [t for t in dm_texts(b, "avery_quill") if "CoC referral" in t]
    token = re.search(r"/coc-outcome/(s\.\d+\.\d+\.\d+\.[0-9a-f]{32})", dm).group(1)
    url = f"{b['gateway']}/coc-outcome/{token}"
    before = [(e["event_id"], e["content"]) for e in messages(b, b["moderators"])]
    with httpx.Client(timeout=30) as liaison:
        page = liaison.get(url)
        assert page.status_code == 200 and "veiled threat" not in page.text and "dario_fenwick" not in page.text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        assert liaison.post(url, data={"csrf": csrf, "outcome": "suspension"}).status_code == 200
        assert liaison.post(url, data={"csrf": csrf, "outcome": "ban"}).status_code == 409
    with world.ledger.read() as session:
        [event] = session.scalars(select(InboxEvent.id).where(InboxEvent.kind == "coc_outcome")).all()
    assert inbox.handle_event(world.ledger, event) == f"coc-outcome:{report.id}"
    assert only_report(world).coc_outcome == "A temporary suspension"
    # Recording the outcome posts nothing: the room shows what it showed.
    assert [(e["event_id"], e["content"]) for e in messages(b, b["moderators"])] == before
    assert any(f"Report #{report.id}: referred to the CoC WG" in content.get("body", "") for _, content in before)
