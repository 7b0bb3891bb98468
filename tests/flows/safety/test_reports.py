"""Community reports against the Forum and Discord sandboxes (issue 22, R-SAFE-1, R-SAFE-2,
R-SAFE-3): a Discord report shown in both moderators' rooms, claimed and resolved, the reporter
told; a CoC report reaching only the liaison; the rate limit; deleted messages; redeliveries;
erasure and export."""

from __future__ import annotations

import json
import queue as queues
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import httpx
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from typer.testing import CliRunner

from charterflow import safety_cli
from connectors.base import ModeratorsRoom
from connectors.discord.payloads import deferred
from connectors.email import SmtpMailer, SmtpSandbox, SmtpSettings
from flows import inbox
from flows.kit import context
from flows.safety import queue
from flows.safety.common import MESSAGE_COMMAND
from flows.safety.flows import safety_figures
from flows.safety.room import has_buttons, rooms
from ledger import audit, repo
from ledger import safety as queue_ledger
from ledger.models import AuditEntry, InboxEvent, Person, WgRole, WgRoleAssignment
from ledger.models_safety import SafetyReport
from ledger.privacy import erase_person, export_person
from rules.safety import referral_facts
from tests.support.cli import cli_with
from tests.support.moderation import NOW, World, buttons, press
from tests.support.net import LoopbackServer


def _store(world: World, event: Any, route: str) -> int:
    data = json.loads(json.dumps(dict(event.data), default=str))
    with world.ledger.transaction() as session:
        row, _ = repo.inbox_put(
            session,
            dedupe_key=event.dedupe_key,
            source=event.platform,
            kind=event.kind,
            route=route,
            payload={"data": data, "attributes": dict(event.attributes), "actor": event.actor},
            received_at=NOW,
        )
        return row.id


def report_message(
    world: World, *, reporter: str, author: str, content: str | None, message_id: str = "1300000000000000001"
) -> tuple[str, int]:
    """``reporter`` uses "Report to moderators" on a message of ``author``: the interaction as
    Discord sends it (signed by the sandbox's application key), verified, routed, stored and
    handled as the gateway and the worker do. ``content`` None: the message was deleted
    meanwhile (Discord's resolved data no longer holds it)."""
    headers, body = world.discord_sb.signed_request(kind=MESSAGE_COMMAND, payload={"user": reporter, "options": {}})
    interaction = json.loads(body)
    user = world.discord.find_user(author)
    resolved = (
        {}
        if content is None
        else {
            "messages": {
                message_id: {
                    "id": message_id,
                    "channel_id": interaction["channel_id"],
                    "content": content,
                    "type": 0,
                    "author": {"id": user.id, "username": user.username},
                }
            }
        }
    )
    interaction["data"] = {
        "id": interaction["data"]["id"],
        "name": MESSAGE_COMMAND,
        "type": 3,
        "target_id": message_id,
        "guild_id": interaction["guild_id"],
        "resolved": resolved,
    }
    body = json.dumps(interaction, separators=(",", ":")).encode()
    event = world.discord.verify(headers=world.discord_sb.sign(body), body=body)
    world.discord.callback(event, deferred(ephemeral=True))
    route = inbox.route_for(
        source="discord", kind=event.kind, attributes=event.attributes, config=inbox.RoutingConfig()
    )
    assert route == "safety-report"
    event_id = _store(world, event, route)
    return inbox.handle_event(world.ledger, event_id), event_id


def dms_to(world: World, username: str) -> list[str]:
    """The texts of the Discord direct messages ``username`` received."""
    state = world.discord_state()
    uid = world.discord.find_user(username).id
    channels = {c["id"] for c in state["channels"] if c.get("type") == 1 and c.get("recipient_id") == uid}
    return [m["content"] for m in state["messages"] if m["channel_id"] in channels]


def forum_pms_to(world: World, username: str) -> list[str]:
    """The posts (title, then text) of Forum private messages sent to ``username``."""
    state = world.forum_state()
    uid = next(u["id"] for u in state["users"] if u["username"] == username)
    topics = {
        t["id"]: t["title"]
        for t in state["topics"]
        if t["archetype"] == "private_message" and ["user", uid] in t["allowed"]
    }
    return [f"{topics[p['topic_id']]}\n{p['raw']}" for p in state["posts"] if p["topic_id"] in topics]


def room(world: World) -> list[dict[str, Any]]:
    """The Discord moderators' channel without the private (ephemeral) answers to presses."""
    return [m for m in world.moderators_channel() if not int(m.get("flags") or 0) & 64]


def only_report(world: World) -> SafetyReport:
    with world.ledger.read() as session:
        (report,) = session.scalars(select(SafetyReport)).all()
        session.expunge(report)
        return report


def test_r_safe_1_a_discord_report_is_claimed_and_resolved_and_the_reporter_told(world: World) -> None:
    result, event_id = report_message(
        world, reporter="cleo_marsh", author="rowan_vale", content="an unkind remark about a newcomer"
    )
    report = only_report(world)
    assert result == f"taken:{report.id}" and report.state == "open" and report.content_gone is False
    assert report.target_username == "rowan_vale" and report.reporter_person_id == world.people["cleo_marsh"]
    # The same interaction delivered again: stored once by the inbox, and no second report.
    assert inbox.handle_event(world.ledger, event_id) == "already-processed"
    # Shown in the Discord moderators' channel with buttons, and to the Forum's moderators group.
    (message,) = room(world)
    assert f"Report #{report.id}" in message["content"] and "an unkind remark" in message["content"]
    assert buttons(message)[0] == f"cfs:claim:{report.id}"
    assert f"cfs:resolve:{report.id}:warned" in buttons(message)
    assert f"Report #{report.id}: a message on Discord" in [t["title"] for t in world.forum_state()["topics"]]
    (pm,) = world.forum_moderator_pms()
    assert f"charterflow safety claim {report.id}" in pm["raw"]
    # A member who is not a moderator cannot claim it.
    assert (
        press(world, user="cleo_marsh", message=message, custom_id=f"cfs:claim:{report.id}")
        == "refused:not-a-moderator"
    )
    assert only_report(world).state == "open"
    # A moderator claims (once), then resolves.
    assert (
        press(world, user="bram_tolliver", message=message, custom_id=f"cfs:claim:{report.id}")
        == f"claimed:{report.id}"
    )
    assert press(world, user="bram_tolliver", message=message, custom_id=f"cfs:claim:{report.id}") == "refused:claimed"
    (message,) = room(world)
    assert "claimed by bram_tolliver" in message["content"] and buttons(message)
    assert (
        press(world, user="bram_tolliver", message=message, custom_id=f"cfs:resolve:{report.id}:warned")
        == f"resolved:{report.id}:warned"
    )
    assert (
        press(world, user="bram_tolliver", message=message, custom_id=f"cfs:resolve:{report.id}:sanctioned")
        == "refused:resolved"
    )
    done = only_report(world)
    assert (done.state, done.outcome, done.claimed_by) == ("resolved", "warned", "bram_tolliver")
    assert done.first_response_at is not None and done.resolved_at is not None
    (message,) = room(world)
    assert "(resolved by bram_tolliver: Warned)" in message["content"] and message["components"] == []
    # The reporter is told it was handled, once, never the outcome; the reported person nothing.
    (told,) = [t for t in dms_to(world, "cleo_marsh") if f"#{report.id}" in t]
    assert "handled" in told and "warn" not in told.lower()
    assert dms_to(world, "rowan_vale") == []
    with world.ledger.read() as session:
        actions = [
            a
            for (a,) in session.execute(
                select(AuditEntry.action).where(AuditEntry.subject == f"safety-report:{report.id}")
            )
        ]
    assert {"safety.reported", "safety.claimed", "safety.resolved"} <= set(actions)


def test_r_safe_1_a_deleted_message_is_kept_with_what_the_platform_gave(world: World) -> None:
    result, _ = report_message(world, reporter="cleo_marsh", author="rowan_vale", content=None)
    report = only_report(world)
    assert result == f"taken:{report.id}" and report.content_gone and report.content is None
    assert report.target_message_id == "1300000000000000001" and report.target_link
    (message,) = room(world)
    assert "deleted before the report was made" in message["content"]


def test_r_safe_1_a_burst_from_one_account_is_refused_and_noted(world: World) -> None:
    results = [
        report_message(
            world,
            reporter="cleo_marsh",
            author="rowan_vale",
            content=f"spam {i}",
            message_id=f"13000000000000000{i:02d}",
        )[0]
        for i in range(7)
    ]
    assert [r.split(":")[0] for r in results] == ["taken"] * 5 + ["refused"] * 2
    with world.ledger.read() as session:
        assert len(session.scalars(select(SafetyReport)).all()) == 5
        noted = session.scalars(select(AuditEntry).where(AuditEntry.action == "safety.report_refused")).all()
    assert len(noted) == 2 and "cleo_marsh" not in noted[0].payload_json
    # cleo is in the ledger: the digest is salted with her salt, which her erasure drops, so her
    # public account id cannot be confirmed against the (never erased) log (R-PRIVACY-2).
    unsalted = audit.content_digest(f"discord:{world.discord.find_user('cleo_marsh').id}")
    assert unsalted not in noted[0].payload_json
    assert len(room(world)) == 5


def _form_report(world: World, **fields: str) -> str:
    values = {
        "platform": "discord",
        "target_kind": "person",
        "target": "rowan_vale",
        "reason": "threatening messages sent to me privately",
        "reporter": "",
        **fields,
    }
    with world.ledger.transaction() as session:
        row, _ = repo.inbox_put(
            session,
            dedupe_key=f"form:report:sub{len(values['reason'])}xxxxxxxxxxxxxx",
            source="form",
            kind="report",
            route="safety-form",
            payload={"data": values, "attributes": {"ip_digest": "abc123"}},
            received_at=NOW,
        )
        event_id = row.id
    return inbox.handle_event(world.ledger, event_id)


def test_r_safe_2_a_coc_report_reaches_only_the_liaison(world: World) -> None:
    result = _form_report(world, coc="yes")
    report = only_report(world)
    assert result == f"taken:{report.id}" and report.state == "referred" and report.coc
    # The liaison (avery_quill) gets the facts privately, on both platforms.
    dm, buttons_dm = dms_to(world, "avery_quill")  # the referral, then the outcome buttons
    assert "threatening" not in buttons_dm and f"report #{report.id}" in buttons_dm
    assert "threatening messages" in dm and "rowan_vale" in dm and "R-SAFE-2" in dm
    assert any("threatening messages" in p for p in forum_pms_to(world, "avery_quill"))
    # Other moderators see only that it was referred: no name, no content, no buttons.
    (message,) = room(world)
    assert "referred to the CoC WG" in message["content"] and message["components"] == []
    assert "threatening" not in message["content"] and "rowan_vale" not in message["content"]
    for pm in world.forum_moderator_pms():
        assert "threatening" not in pm["raw"]
    assert dms_to(world, "bram_tolliver") == [] and dms_to(world, "rowan_vale") == []
    # Only the liaison records the CoC WG's outcome.
    ctx = context(None)
    assert queue.record_coc_outcome(ctx, report.id, by_handle="cleo_marsh", outcome="x")[0] == "refused"
    assert (
        queue.record_coc_outcome(ctx, report.id, by_handle="avery_quill", outcome="a private warning")[0]
        == f"coc-outcome:{report.id}"
    )
    assert only_report(world).coc_outcome == "a private warning"


def test_r_safe_2_a_moderator_refers_a_report_from_discord(world: World) -> None:
    report_message(world, reporter="cleo_marsh", author="rowan_vale", content="a slur")
    report = only_report(world)
    (message,) = room(world)
    assert (
        press(world, user="bram_tolliver", message=message, custom_id=f"cfs:refer:{report.id}")
        == f"referred:{report.id}"
    )
    (message,) = room(world)
    assert message["content"].startswith(f"**Report #{report.id}: referred to the CoC WG**")
    assert "a slur" not in message["content"] and message["components"] == []
    assert any("a slur" in t for t in dms_to(world, "avery_quill"))
    assert only_report(world).outcome == "referred"


def test_r_safe_1_and_2_the_reported_moderator_or_liaison_never_handles_nor_receives_their_report(
    world: World,
) -> None:
    # A moderator (bram_tolliver, not in the ledger: matched by account) is reported.
    report_message(world, reporter="cleo_marsh", author="bram_tolliver", content="a sneer", message_id="13" + "0" * 17)
    (message,) = room(world)
    report_id = int(buttons(message)[0].rsplit(":", 1)[1])
    for custom_id in (f"cfs:claim:{report_id}", f"cfs:resolve:{report_id}:no_action", f"cfs:refer:{report_id}"):
        assert press(world, user="bram_tolliver", message=message, custom_id=custom_id) == "refused:subject"
    # The CoC Liaison (avery_quill, a Discord admin) is reported: they cannot claim it, and a
    # referral does not reach them (it names the reporter and quotes the report).
    report_message(world, reporter="cleo_marsh", author="avery_quill", content="a jeer", message_id="13" + "1" * 17)
    message = room(world)[-1]
    liaison_report = int(buttons(message)[0].rsplit(":", 1)[1])
    assert press(world, user="avery_quill", message=message, custom_id=f"cfs:claim:{liaison_report}") == (
        "refused:subject"
    )
    assert press(world, user="bram_tolliver", message=message, custom_id=f"cfs:refer:{liaison_report}") == (
        f"referred:{liaison_report}"
    )
    assert not any("a jeer" in t or "cleo_marsh" in t for t in dms_to(world, "avery_quill"))
    assert not any("a jeer" in p or "cleo_marsh" in p for p in forum_pms_to(world, "avery_quill"))
    ctx = context(None)
    assert queue.record_coc_outcome(ctx, liaison_report, by_handle="avery_quill", outcome="none")[0] == "refused"


def test_r_privacy_2_the_audit_log_names_who_handled_a_report_by_person_id_never_by_account(world: World) -> None:
    report_message(world, reporter="cleo_marsh", author="rowan_vale", content="a taunt")
    report = only_report(world)
    (message,) = room(world)
    assert press(world, user="bram_tolliver", message=message, custom_id=f"cfs:claim:{report.id}").startswith("claimed")
    assert press(world, user="avery_quill", message=message, custom_id=f"cfs:resolve:{report.id}:warned") == (
        f"resolved:{report.id}:warned"
    )
    with world.ledger.read() as session:
        entries = session.scalars(select(AuditEntry).where(AuditEntry.subject == f"safety-report:{report.id}")).all()
        actors = {e.action: e.actor for e in entries}
        logged = json.dumps([(e.actor, e.payload_json) for e in entries])
    # The audit log is never erased (R-PRIVACY-2): a ledger person's id, or the platform only.
    assert actors["safety.claimed"] == "discord:unlinked"
    assert actors["safety.resolved"] == f"person:{world.people['avery_quill']}"
    for name in ("bram_tolliver", "avery_quill"):
        assert world.discord.find_user(name).id not in logged


def test_r_safe_2_a_referral_that_reached_nobody_is_sent_when_a_liaison_is_named(world: World) -> None:
    # A CoC report about the liaison herself, and no CoC WG address: nobody may receive it yet.
    result = _form_report(world, coc="yes", target="avery_quill", reason="the liaison insulted me in a thread")
    report = only_report(world)
    assert result == f"taken:{report.id}" and report.state == "referred"
    assert not any("insulted" in t for t in dms_to(world, "avery_quill"))
    assert queue.resend_unreached_referrals(context(None)) == []  # still nobody: not lost, waiting
    # The CoC WG names another liaison: the next reminder run sends it to them, once.
    with world.ledger.transaction() as session:
        for held in session.scalars(select(WgRoleAssignment).where(WgRoleAssignment.role == WgRole.COC_LIAISON)):
            held.ends_at = NOW
        session.add(
            WgRoleAssignment(
                person_id=world.people["cleo_marsh"], role=WgRole.COC_LIAISON, assigned_by="coc-wg", starts_at=NOW
            )
        )
    assert queue.resend_unreached_referrals(context(None)) == [report.id]
    assert queue.resend_unreached_referrals(context(None)) == []
    assert len([t for t in dms_to(world, "cleo_marsh") if "insulted" in t]) == 1


def test_r_safe_1_an_unclaimed_report_is_reminded_once_per_period(world: World) -> None:
    report_message(world, reporter="cleo_marsh", author="rowan_vale", content="rude")
    report = only_report(world)
    later = report.created_at + timedelta(hours=25)
    assert queue.remind_unclaimed(context(later)) == [report.id]
    assert queue.remind_unclaimed(context(later + timedelta(hours=1))) == []
    reminders = [m for m in room(world) if "still unclaimed" in m["content"]]
    assert len(reminders) == 1


def test_r_privacy_2_export_and_erasure_cover_reports(world: World) -> None:
    report_message(world, reporter="cleo_marsh", author="rowan_vale", content="rude words")
    report = only_report(world)
    with world.ledger.read() as session:
        about = export_person(session, session.get(Person, world.people["rowan_vale"]))["safety_reports"]
        made = export_person(session, session.get(Person, world.people["cleo_marsh"]))["safety_reports"]
    # The reported person's export never says who reported (R-SAFE-1).
    assert about["made"] == [] and about["about"][0]["content"] == "rude words"
    assert "reporter_username" not in about["about"][0] and "cleo_marsh" not in json.dumps(about)
    assert made["made"][0]["id"] == report.id
    with world.ledger.transaction() as session:
        erase_person(session, session.get(Person, world.people["rowan_vale"]), reason="asked", actor="operator")
        erase_person(session, session.get(Person, world.people["cleo_marsh"]), reason="asked", actor="operator")
    erased = only_report(world)
    assert erased.content is None and erased.target_username is None and erased.target_account is None
    assert erased.reporter_username is None and erased.reporter_account is None and erased.reporter_person_id is None
    assert erased.created_at == report.created_at and erased.state == "open"  # kept for the figures


def test_r_privacy_2_erasure_reaches_form_reports_the_reporters_words_handlers_and_inbox_copies(
    world: World,
) -> None:
    _, event_id = report_message(world, reporter="cleo_marsh", author="rowan_vale", content="rude words")
    # A web-form report names people only by what was typed (cleo as reporter, rowan as target).
    _form_report(world, reporter="Cleo_Marsh", target="@rowan_vale", reason="he mocked my accent in voice chat")
    with world.ledger.read() as session:
        first, form = session.scalars(select(SafetyReport).order_by(SafetyReport.id)).all()
        form_event = session.scalar(select(InboxEvent.id).where(InboxEvent.dedupe_key == form.source_key))
    # cleo_marsh handled the form report by an operator's hand (their handle as --by).
    assert queue.claim(context(None), form.id, by="cleo_marsh", actor="operator", is_moderator=True)[0] == (
        f"claimed:{form.id}"
    )
    with world.ledger.transaction() as session:
        erase_person(session, session.get(Person, world.people["cleo_marsh"]), reason="asked", actor="operator")
        erase_person(session, session.get(Person, world.people["rowan_vale"]), reason="asked", actor="operator")
    with world.ledger.read() as session:
        first, form = session.scalars(select(SafetyReport).order_by(SafetyReport.id)).all()
        events = [session.get(InboxEvent, e).payload for e in (event_id, form_event)]
    assert form.reporter_username is None and "cleo" not in form.reporter_key.casefold()
    assert form.reason is None and form.target_username is None
    assert form.claimed_by == f"erased-{world.people['cleo_marsh']}" and first.content is None
    assert events == [{"erased": True}, {"erased": True}]


def forum_flag(
    world: World, *, flagger: str, author: str, raw: str | None, message: str = "", kind: str = "reviewable_created"
) -> tuple[str, int]:
    """``flagger`` flags a post of ``author`` on the Forum: the Reviewable webhook as Discourse
    sends it (``{"reviewable": {...}}``, ReviewableFlaggedPostSerializer; Discourse has no flag
    webhook), signed by the Forum sandbox, verified, routed and handled. ``raw`` None: the post
    was deleted meanwhile (``blank_post``)."""
    by, to = world.forum.find_user(flagger), world.forum.find_user(author)
    flagger_json = {"id": int(by.id), "username": by.username, "name": None, "avatar_template": ""}
    post = {"raw": raw, "cooked": f"<p>{raw}</p>"} if raw is not None else {"blank_post": True}
    conversation = {"id": 9, "has_more": False, "conversation_posts": [{"id": 12, "excerpt": message}]}
    headers, body = world.forum_sb.signed_request(
        kind=kind,
        payload={
            "reviewable": {
                "id": 55,
                "type": "ReviewableFlaggedPost",
                "target_type": "Post",
                "target_id": 4321,
                "post_id": 4321,
                "topic_id": 77,
                "topic_url": "https://forum.example.org/t/welcome/77",
                "target_url": "https://forum.example.org/t/welcome/77/3",
                "status": 0,
                "created_by": flagger_json,
                "target_created_by": {"id": int(to.id), "username": to.username},
                **post,
                "reviewable_scores": [
                    {
                        "id": 91,
                        "user": flagger_json,
                        "score_type": {"id": 4, "title": "Inappropriate", "type": "inappropriate"},
                        "created_at": NOW.isoformat(),
                        "reviewable_conversation": conversation if message else None,
                    }
                ],
            }
        },
    )
    event = world.forum.verify(headers=headers, body=body)
    route = inbox.route_for(
        source="discourse", kind=event.kind, attributes=event.attributes, config=inbox.RoutingConfig()
    )
    assert route == "safety-flag"
    event_id = _store(world, event, route)
    return inbox.handle_event(world.ledger, event_id), event_id


def test_r_safe_1_a_forum_flag_is_a_report_resolved_from_the_forum_side(world: World) -> None:
    result, event_id = forum_flag(world, flagger="cleo_marsh", author="rowan_vale", raw="you people are idiots")
    report = only_report(world)
    assert result == f"taken:{report.id}" and report.via == "discourse" and report.target_kind == "post"
    assert report.target_link and report.target_link.endswith("/77/3")
    (message,) = room(world)
    assert "you people are idiots" in message["content"] and "Forum flag: inappropriate" in message["content"]
    # A Forum moderator has no buttons: the CLI the Forum message names claims and resolves.
    cli = cli_with(safety_cli.app)
    runner = CliRunner()
    out = runner.invoke(cli, ["safety", "claim", str(report.id), "--by", "bram_tolliver"])
    assert out.exit_code == 0 and "is yours" in out.output
    out = runner.invoke(
        cli, ["safety", "resolve", str(report.id), "--outcome", "removed_content", "--by", "bram_tolliver"]
    )
    assert out.exit_code == 0, out.output
    out = runner.invoke(cli, ["safety", "resolve", str(report.id), "--outcome", "warned", "--by", "bram_tolliver"])
    assert out.exit_code != 0 and "already resolved" in out.output
    (message,) = room(world)
    assert "resolved by bram_tolliver: Removed content" in message["content"]
    # The flagger is told on the Forum, privately, without the outcome.
    (told,) = [t for t in forum_pms_to(world, "cleo_marsh") if f"#{report.id}" in t]
    assert "handled" in told and "removed" not in told.lower()
    # The figures (R-SAFE-3): counts and hours, no names.
    out = runner.invoke(cli, ["safety", "report", "--json"])
    found = json.loads(out.output)
    assert found["platforms"]["discourse"]["outcomes"]["removed_content"] == 1
    assert "bram_tolliver" not in out.output and "rowan_vale" not in out.output
    # The same figures as the safety-figures flow's table artifact.

    assert safety_figures()["platforms"]["discourse"]["reports"] == 1
    with get_client(sync_client=True) as client:
        # By key: the session's server holds every test's artifacts, more than one page.
        (artifact,) = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["safety-figures"])), limit=1
        )
    assert "rowan_vale" not in json.dumps(artifact.data) and "removed_content" in json.dumps(artifact.data)


def test_r_safe_1_a_flag_on_a_deleted_post_keeps_what_the_webhook_gave(world: World) -> None:
    result, _ = forum_flag(world, flagger="cleo_marsh", author="rowan_vale", raw=None, message="it was a threat")
    report = only_report(world)
    assert result.startswith("taken:") and report.content_gone and report.reason.endswith("it was a threat")


def test_r_safe_1_the_same_flag_in_the_reviews_next_delivery_is_one_report(world: World) -> None:
    # Discourse sends a review's creation and each score added, every delivery with all scores.
    first, _ = forum_flag(world, flagger="cleo_marsh", author="rowan_vale", raw="you people are idiots")
    again, _ = forum_flag(
        world, flagger="cleo_marsh", author="rowan_vale", raw="you people are idiots", kind="reviewable_score_updated"
    )
    report = only_report(world)
    assert (first, again) == (f"taken:{report.id}", f"duplicate:{report.id}")
    assert len(room(world)) == 1


def test_r_safe_1_a_review_that_is_no_flag_is_not_a_report() -> None:
    # A queued post or a user awaiting approval is a review too, and not a community report.
    config = inbox.RoutingConfig()
    queued = {"reviewable_type": "ReviewableQueuedPost", "event_type": "reviewable"}
    assert (
        inbox.route_for(source="discourse", kind="reviewable_created", attributes=queued, config=config)
        != "safety-flag"
    )


def test_r_comms_each_platform_has_a_moderators_room(world: World) -> None:
    found = rooms(context(None))
    assert set(found) == {"discourse", "discord"}
    assert all(isinstance(r, ModeratorsRoom) for r in found.values())
    assert has_buttons(found["discord"]) and not has_buttons(found["discourse"])


def test_r_safe_2_the_coc_wg_address_gets_the_referral_by_real_smtp(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHARTERFLOW_SAFETY_COC_EMAIL", "coc-wg@example.org")
    with SmtpSandbox() as mailbox:
        world.platforms.mailer = SmtpMailer(
            settings=SmtpSettings(_env_file=None, host=mailbox.host, port=mailbox.port, tls="none")
        )
        try:
            _form_report(world, coc="yes", reason="a private threat, details inside")
            report = only_report(world)
            # Referred again (a retried run): nothing is sent twice.

            with world.ledger.read() as session:
                facts = referral_facts(queue_ledger.facts(queue_ledger.get(session, report.id)))
            queue.send_to_liaison(context(None), report.id, facts)
            (mail,) = mailbox.messages()
        finally:
            world.platforms.mailer = None
    assert mail["to"] == ["coc-wg@example.org"] and f"report #{report.id}" in mail["subject"]
    assert "a private threat" in mail["text"] and "R-SAFE-2" in mail["text"]


@contextmanager
def _receiver(answer: dict[str, Any] | None = None) -> Iterator[tuple[str, queues.Queue[tuple[dict[str, str], bytes]]]]:
    """A loopback endpoint standing for the gateway: (its URL, the requests it received as
    (headers, body)); it answers 200 with ``answer`` (JSON) or an empty body."""
    received: queues.Queue[tuple[dict[str, str], bytes]] = queues.Queue()

    async def endpoint(request: Request) -> Response:
        received.put((dict(request.headers), await request.body()))
        return JSONResponse(answer) if answer is not None else Response(status_code=200)

    with LoopbackServer(Starlette(routes=[Route("/hook", endpoint, methods=["POST"])])) as server:
        yield f"{server.url}/hook", received


def _take(world: World, platform: Any, *, source: str, headers: dict[str, str], body: bytes, route: str) -> str:
    """Verify a delivery as the gateway does, check its route, store it and handle it."""
    event = platform.verify(headers=headers, body=body)
    assert (
        inbox.route_for(source=source, kind=event.kind, attributes=event.attributes, config=inbox.RoutingConfig())
        == route
    )
    return inbox.handle_event(world.ledger, _store(world, event, route))


def test_r_safe_1_flags_raised_on_the_forum_arrive_as_its_review_and_each_becomes_one_report(world: World) -> None:
    """Two members flag a post through the Forum's own API (``POST /post_actions.json``). The
    Forum has no flag webhook: it sends the post's review opening (``reviewable_created``) and
    each flag added (``reviewable_score_updated``, every delivery with all the flags so far);
    verified, routed and taken, they make one report per flag, whatever the deliveries' order or
    repeats. The same flag again is refused by the Forum."""

    def as_user(user: str) -> dict[str, str]:
        return {"Api-Key": world.forum_sb.api_key, "Api-Username": user}

    with _receiver() as (url, received):
        world.forum_sb.webhook.url = url
        posted = httpx.post(
            f"{world.forum_url}/posts.json",
            headers=as_user("rowan_vale"),
            timeout=10,
            json={
                "title": "Nobody here knows anything at all",
                "category": "General",
                "raw": "Everyone who answered me here is useless and should leave.",
            },
        )
        assert posted.status_code == 200, posted.text
        post_id = posted.json()["id"]
        for flagger, kind in (("cleo_marsh", 4), ("avery_quill", 8)):
            flag = {"id": post_id, "post_action_type_id": kind}
            flagged = httpx.post(
                f"{world.forum_url}/post_actions.json", headers=as_user(flagger), json=flag, timeout=10
            )
            assert flagged.status_code == 200, flagged.text
        again = httpx.post(
            f"{world.forum_url}/post_actions.json",
            headers=as_user("cleo_marsh"),
            json={"id": post_id, "post_action_type_id": 4},
            timeout=10,
        )
        assert again.status_code == 403
        deliveries = []
        while len(deliveries) < 3:  # topic_created and post_created come first
            headers, body = received.get(timeout=10)
            if headers.get("x-discourse-event-type") == "reviewable":
                deliveries.append((headers, body))
    assert [h["x-discourse-event"] for h, _ in deliveries] == [
        "reviewable_created",
        "reviewable_score_updated",
        "reviewable_score_updated",
    ]
    results = [
        _take(world, world.forum, source="discourse", headers=h, body=b, route="safety-flag") for h, b in deliveries
    ]
    with world.ledger.read() as session:
        first, second = session.scalars(select(SafetyReport).order_by(SafetyReport.id)).all()
    assert results == [f"taken:{first.id}", f"duplicate:{first.id}", f"duplicate:{first.id} taken:{second.id}"]
    assert (first.reporter_username, second.reporter_username) == ("cleo_marsh", "avery_quill")
    assert first.via == "discourse" and first.target_kind == "post" and first.target_username == "rowan_vale"
    assert first.target_link and first.target_link.endswith(f"/{first.target_channel_id}/1")
    assert "Forum flag: inappropriate" in first.reason and "Forum flag: spam" in second.reason
    assert [f["type"] for f in world.forum_sb.state()["flags"]] == [4, 8]


def test_r_safe_1_the_message_command_from_a_messages_apps_menu_becomes_one_report(world: World) -> None:
    """A member writes in a channel, another picks "Report to moderators" in that message's Apps
    menu: Discord sends a type-3 command naming the message, with the message resolved; it is
    verified, routed and taken as one report carrying what the message said."""
    written = httpx.post(
        f"{world.discord_url}/_sandbox/messages",
        timeout=10,
        json={"user": "rowan_vale", "channel": "general", "content": "Nobody wants you here, go away."},
    )
    assert written.status_code == 200, written.text
    message_id = written.json()["id"]
    with _receiver({"type": 5, "data": {"flags": 64}}) as (url, received):
        world.discord_sb.interactions_url = url
        sent = httpx.post(
            f"{world.discord_url}/_sandbox/interactions",
            timeout=10,
            json={"type": "message_command", "user": "cleo_marsh", "name": MESSAGE_COMMAND, "message_id": message_id},
        )
        assert sent.status_code == 200, sent.text
        headers, body = received.get(timeout=10)
        unknown = httpx.post(
            f"{world.discord_url}/_sandbox/interactions",
            timeout=10,
            json={"type": "message_command", "user": "cleo_marsh", "name": MESSAGE_COMMAND, "message_id": "1"},
        )
        assert unknown.status_code == 400 and unknown.json()["code"] == 10008
    interaction = json.loads(body)
    assert interaction["data"]["type"] == 3 and interaction["data"]["target_id"] == message_id
    result = _take(world, world.discord, source="discord", headers=headers, body=body, route="safety-report")
    report = only_report(world)
    assert result == f"taken:{report.id}" and report.via == "discord" and report.target_kind == "message"
    assert any("Nobody wants you here" in m["content"] for m in room(world))
