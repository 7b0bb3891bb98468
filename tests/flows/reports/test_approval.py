"""The quarterly report's approval path end to end against the sandboxes (R-REPORT): the draft
is an artifact and nothing is published; a non-member's press is refused; a member's press
publishes the Forum post (with the chart uploads), the Discord announcement and the Board report
on Slack, each once; pressing again or re-running publishes nothing twice."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
from sqlalchemy import select

from connectors.errors import PolicyViolation
from flows import inbox
from flows.reports.handlers import ROUTE
from flows.reports.quarterly import approve, handle_report_approval, report_context, reports_approve, reports_quarterly
from ledger import repo
from ledger.models import AuditEntry, InboxEvent
from ledger.models_moderation import ModerationAction
from ledger.models_reports import Report, ReportStatus
from rules.reports import Quarter
from tests.support.membership import discord_event
from tests.support.reports import NOW, ReportWorld

Q = Quarter.just_ended(NOW)


def seed(world) -> None:
    with world.ledger.transaction() as s:
        idea = repo.add_idea(
            s,
            title="A help channel for newcomers on Discord",
            source="discord",
            actor="operator",
            platform="discord",
            at=Q.start + timedelta(days=3),
        )
        repo.set_idea_status(s, idea, "done", actor="operator", at=Q.start + timedelta(days=20))
        s.add(
            ModerationAction(
                platform="discord",
                entry_id="e1",
                action="ban",
                platform_action="MEMBER_BAN_ADD",
                target_username="noisy_visitor_77",
                occurred_at=Q.start + timedelta(days=5),
                recorded_at=Q.start + timedelta(days=5),
                raw={},
            )
        )


def press(world, user: str, custom_id: str) -> tuple[int, str]:
    """``user`` presses the button: a signed interaction stored as the gateway does, then
    handled as the inbox worker does (``flows.inbox.handle_event``)."""
    event_id = discord_event(world, kind="component", route=ROUTE, payload={"user": user, "custom_id": custom_id})
    return event_id, inbox.handle_event(world.ledger, event_id)


def press_on_discord(world, user: str, message: dict) -> tuple[int, str]:
    """``user`` presses the button of ``message`` in Discord: the sandbox sends the signed
    interaction to the gateway, which stores it (and answers "thinking…"); then the inbox
    worker's step handles it."""
    custom_id = message["components"][0]["components"][0]["custom_id"]
    sent = httpx.post(
        f"{world.discord_url}/_sandbox/interactions",
        timeout=30,
        json={
            "type": "component",
            "user": user,
            "message_id": message["id"],
            "channel_id": message["channel_id"],
            "custom_id": custom_id,
        },
    ).json()
    assert sent["status"] == 200 and not sent["failed"], sent
    with world.ledger.read() as s:
        event_id = s.scalars(
            select(InboxEvent.id).where(InboxEvent.route == ROUTE).order_by(InboxEvent.id.desc())
        ).first()
    return event_id, inbox.handle_event(world.ledger, event_id)


def answers(world) -> list[str]:
    """The private follow-ups the presser got."""
    return [
        m["content"]
        for m in world.discord_state()["messages"]
        if (m["content"] or "").startswith(("Not approved", "Thank you", "Already approved"))
    ]


def published(rw: ReportWorld) -> dict[str, list]:
    world = rw.world
    forum = [
        t for t in world.discourse_state()["topics"] if t["title"].startswith("Online Community Working Group report")
    ]
    announcements = [
        m for m in world.discord_state()["messages"] if "Online Community Working Group report" in (m["content"] or "")
    ]
    board = [m for m in rw.board_messages() if "OCWG quarterly report" in (m.get("text") or "")]
    return {"forum": forum, "discord": announcements, "slack": board}


def approval_requests(world) -> list[dict]:
    return [
        m
        for m in world.discord_state()["messages"]
        if any(
            b.get("custom_id", "").startswith("cfr:")
            for row in m.get("components") or []
            for b in row.get("components", [])
        )
    ]


def test_the_route_is_registered():
    assert inbox.HANDLERS[ROUTE] is handle_report_approval
    assert (
        inbox.route_for(
            source="discord",
            kind="component",
            attributes={"custom_id": f"cfr:{Q.label}:abc"},
            config=inbox.RoutingConfig(),
        )
        == ROUTE
    )


def test_draft_then_member_approves_then_published_once(report_world: ReportWorld, gateway):
    world = report_world.world
    seed(world)
    state = reports_quarterly(quarter=Q.label, now=NOW, return_state=True)
    result = state.result()
    assert result["status"] == "awaiting-approval"

    # The draft is in the Prefect UI: a markdown artifact with the three texts and the charts.
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id]))
        )
    draft = next(a for a in artifacts if a.key == f"report-{Q.label.lower()}-draft")
    assert "A help channel for newcomers on Discord" in draft.data
    assert draft.data.count("data:image/png;base64,") == 3
    assert "noisy_visitor_77" not in draft.data

    # Nothing published before approval; the WG was asked once, with a cfr: button.
    assert published(report_world) == {"forum": [], "discord": [], "slack": []}
    asks = approval_requests(world)
    assert len(asks) == 1
    custom_id = asks[0]["components"][0]["components"][0]["custom_id"]
    assert custom_id == f"cfr:{Q.label}:{result['digest'][:12]}"
    # Running the draft again (nothing changed) asks nothing new.
    assert reports_quarterly(quarter=Q.label, now=NOW)["status"] == "awaiting-approval"
    assert len(approval_requests(world)) == 1

    # Someone who is not a WG member presses: refused, audited, told so, nothing published.
    _, outcome = press_on_discord(world, "ivo_stone", asks[0])
    assert outcome == "refused:not-a-member"
    assert answers(world) == ["Not approved: only active working group members may approve the quarterly report."]
    assert published(report_world) == {"forum": [], "discord": [], "slack": []}
    with world.ledger.read() as s:
        assert s.scalar(select(Report.status)) == ReportStatus.DRAFT
        refused = s.scalars(select(AuditEntry.payload_json).where(AuditEntry.action == "report.approval-refused")).all()
    assert len(refused) == 1 and "not-a-member" in refused[0]

    # A member presses: approved and published, each output once.
    _, outcome = press_on_discord(world, "cleo_marsh", asks[0])
    assert outcome == f"report:{Q.label}:published"
    assert answers(world)[-1].startswith("Thank you: the report is approved and published: http")
    out = published(report_world)
    assert [len(v) for v in out.values()] == [1, 1, 1]
    topic = out["forum"][0]
    raw = next(p["raw"] for p in world.discourse_state()["posts"] if p["topic_id"] == topic["id"])
    uploads = world.discourse_state()["uploads"]
    assert len(uploads) == 3 and all(u["filesize"] > 1000 and u["width"] > 0 for u in uploads)
    assert all(u["short_url"] in raw for u in uploads)
    assert "A help channel for newcomers on Discord" in raw and "noisy_visitor_77" not in raw
    general = next(c["id"] for c in world.discourse_state()["categories"] if c["name"] == "General")
    assert topic["category_id"] == general
    announcement = out["discord"][0]
    assert len(announcement["content"]) <= 2000 and f"/{topic['id']}/" in announcement["content"]
    channels = {c["id"]: c["name"] for c in world.discord_state()["channels"]}
    assert channels[announcement["channel_id"]] == "announcements"
    board = out["slack"][0]
    assert "Moderation workload" in str(board["blocks"])
    assert "A help channel for newcomers on Discord" in str(board["blocks"])
    with world.ledger.read() as s:
        row = s.scalar(select(Report))
        assert row.status == ReportStatus.PUBLISHED
        assert row.approved_by_person_id == world.people["cleo_marsh"]
    # The approval request lost its button.
    assert approval_requests(world) == []

    # A late press (sent before the button went), the quarterly run again, the operator's
    # approval: nothing twice.
    _, outcome = press(world, "dario_fenwick", custom_id)
    assert outcome == f"report:{Q.label}:already"
    assert reports_quarterly(quarter=Q.label, now=NOW)["status"] == "published"
    assert reports_approve(quarter=Q.label, approved_by="hana_pike", now=NOW)["approval"] == "already"
    assert [len(v) for v in published(report_world).values()] == [1, 1, 1]
    assert len(world.discourse_state()["uploads"]) == 3


def test_operator_approval_and_a_replaced_draft(report_world: ReportWorld):
    world = report_world.world
    first = reports_quarterly(quarter=Q.label, now=NOW)
    old_button = f"cfr:{Q.label}:{first['digest'][:12]}"
    seed(world)  # the facts change before anyone approved: a new draft replaces the old one
    second = reports_quarterly(quarter=Q.label, now=NOW)
    assert second["digest"] != first["digest"] and len(approval_requests(world)) == 2
    _, outcome = press(world, "cleo_marsh", old_button)
    assert outcome == "refused:draft-replaced"
    assert published(report_world)["forum"] == []

    with pytest.raises(ValueError, match="approved_by"):
        reports_approve(quarter=Q.label, approved_by="nobody_known", now=NOW)
    with pytest.raises(PolicyViolation, match="only active working group members"):
        _approve_as_non_member(world)
    result = reports_approve(quarter=Q.label, approved_by="avery_quill", now=NOW)
    assert result["status"] == "published" and result["approval"] == "approved"
    assert [len(v) for v in published(report_world).values()] == [1, 1, 1]


def _approve_as_non_member(world) -> None:
    with world.ledger.transaction() as s:
        outsider = repo.create_person(s, handle="outsider_quill", actor="operator", at=NOW)
        outsider_id = outsider.id
    approve(report_context(NOW), Q, person_id=outsider_id, source="operator")


def test_a_quarter_not_over_is_refused(report_world: ReportWorld):
    with pytest.raises(ValueError, match="has not ended yet"):
        reports_quarterly(quarter=Quarter.of(NOW).label, now=NOW)
    with pytest.raises(ValueError, match="quarter: 'Q5' is not a quarter"):
        reports_quarterly(quarter="Q5", now=NOW)


def test_a_draft_that_leaks_is_refused_and_nothing_stored(report_world: ReportWorld):
    world = report_world.world
    seed(world)
    with world.ledger.transaction() as s:
        idea = repo.add_idea(
            s,
            title="Why noisy_visitor_77 was banned",
            source="operator",
            actor="operator",
            at=Q.start + timedelta(days=6),
        )
        repo.set_idea_status(s, idea, "done", actor="operator", at=Q.start + timedelta(days=7))
    with pytest.raises(PolicyViolation, match="R-PRIVACY|a person a moderator acted on") as caught:
        reports_quarterly(quarter=Q.label, now=NOW)
    assert caught.value.ruling == "R-PRIVACY" and "noisy_visitor_77" not in str(caught.value)
    with world.ledger.read() as s:
        assert s.scalar(select(Report)) is None
    assert approval_requests(world) == [] and published(report_world)["forum"] == []
