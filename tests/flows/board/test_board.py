"""The Board escalation end to end (R-BOARD, R-DIRECT, R-RECORD) against the Slack, Discord and
Discourse sandboxes on 127.0.0.1, the real gateway, and the session's Prefect server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from flows import inbox
from flows.board.common import InvalidProposal, validate_proposal
from flows.board.decision import handle_board_decision, record_decision
from flows.board.escalation import board_escalation, handle_board_proposal
from flows.board.reminders import board_reminders, due_number
from flows.kit import context
from flows.membership import ballot as ballots
from ledger import audit, repo
from ledger.models import AuditEntry, Ballot, BallotOutcome, BoardDecision, InboxEvent, Proposal, ProposalStatus
from rules import default_charter
from tests.support.board import BOARD_CHANNEL, OSSIAN, PELLA, TOBIN, WREN, Board, without_endorsement
from tests.support.membership import NOW, discord_event

ROOT = Path(__file__).resolve().parents[3]


def _wg_mentions(board: Board, needle: str) -> dict[str, bool]:
    return {
        "discord": needle in json.dumps(board.world.discord_state()),
        "discourse": needle in json.dumps(board.world.discourse_state()),
    }


def _attempts(board: Board) -> list[AuditEntry]:
    with board.world.ledger.read() as session:
        return list(
            session.scalars(
                select(AuditEntry).where(AuditEntry.action == "proposal.decision-attempt").order_by(AuditEntry.seq)
            )
        )


# --------------------------------------------------------------------------------------------
# Input checks (pure)


@pytest.mark.parametrize(
    ("fields", "culprit"),
    [
        ({"amount": None}, "amount"),
        ({"amount": "-5"}, "amount"),
        ({"amount": "12.345"}, "amount"),
        ({"currency": "XYZ"}, "currency"),
        ({"currency": ""}, "currency"),
        ({"purpose": " "}, "purpose"),
        ({"title": ""}, "title"),
        ({"kind": "bake-cake"}, "kind"),
        ({"links": ["javascript:alert(1)"]}, "links"),
    ],
)
def test_bad_budget_proposal_is_refused_with_the_field_named(fields, culprit):
    good = {
        "kind": "budget",
        "title": "Forum hosting",
        "summary": "Six months of hosting.",
        "amount": "1200",
        "currency": "EUR",
        "purpose": "hosting",
        "links": [],
    }
    with pytest.raises(InvalidProposal) as caught:
        validate_proposal(**{**good, **fields}, charter=default_charter())
    assert caught.value.field == culprit


def test_reminder_schedule_is_30_then_every_14_days():
    at = NOW
    assert [
        due_number(escalated_at=at, now=at + timedelta(days=d), after_days=30, every_days=14)
        for d in (0, 29, 30, 43, 44, 57, 58)
    ] == [0, 0, 1, 1, 2, 2, 3]


# --------------------------------------------------------------------------------------------
# R-DIRECT


def test_wg_direct_proposal_is_not_escalated(board: Board):
    result = board_escalation(
        kind="moderator-change", title="Add a Discord moderator", summary="cleo_marsh as moderator", now=NOW
    )
    assert result["escalated"] is False and result["ruling"] == "R-DIRECT"
    assert "directly" in result["reason"]
    with board.world.ledger.read() as session:
        assert session.scalars(select(Proposal)).first() is None
    assert board.board_messages() == []


# --------------------------------------------------------------------------------------------
# Endorsement → escalation → clicks → decision


def test_budget_proposal_endorsed_escalated_and_decided_in_slack(board: Board):
    world = board.world
    result = board_escalation(
        kind="budget",
        title="Forum search upgrade",
        summary="A hosted search index for the Forum.",
        amount=Decimal("1200"),
        currency="eur",
        purpose="six months of hosting",
        links=["https://forum.example.org/t/search/123"],
        proposed_by="avery_quill",
        now=NOW,
    )
    assert result["status"] == "endorsing" and result["electorate"] == 7
    assert set(result["platforms"]) == {"discourse", "discord"}
    proposal_id, ballot_id = result["proposal"], result["ballot"]
    assert board.board_messages() == [], "nothing goes to the Board before the WG endorses it"

    # The same input again files nothing new.
    again = board_escalation(
        kind="budget",
        title="Forum search upgrade",
        summary="A hosted search index for the Forum.",
        amount=Decimal("1200"),
        currency="EUR",
        purpose="six months of hosting",
        links=["https://forum.example.org/t/search/123"],
        proposed_by="avery_quill",
        now=NOW + timedelta(minutes=1),
    )
    assert again["proposal"] == proposal_id and again["filed"] is False

    # Three yes on the Forum poll, two on Discord (through the ballot machinery's cast).
    ctx = context(NOW)
    where = ballots.refs(ctx, ballot_id)
    fballot = ballots.platform_ballot("discourse", where["discourse"])
    for voter in ("avery_quill", "bram_tolliver", "felix_oakes"):
        world.discourse_sb.cast_vote(world.discourse_url, fballot, voter=voter, option_index=0)
    discord = world.platforms.space("discord").connector
    for name in ("cleo_marsh", "dario_fenwick"):
        user = discord.find_user(name)
        accepted, _ = ballots.cast(
            ctx,
            ballot_id=ballot_id,
            platform="discord",
            external_id=user.id,
            choice="yes",
            at=NOW + timedelta(minutes=30),
        )
        assert accepted

    escalated = board_escalation(proposal_id=proposal_id, now=NOW + timedelta(hours=1))
    assert escalated["status"] == "escalated" and escalated["endorsement"] == "passed"
    with world.ledger.read() as session:
        ballot = session.get(Ballot, ballot_id)
        assert ballot.outcome == BallotOutcome.PASSED and ballot.ruling == "R-VOTE-EARLY"
        proposal = session.get(Proposal, proposal_id)
        assert proposal.status == ProposalStatus.ESCALATED
        assert proposal.endorsement_ballot_id == ballot_id
        channel, ts = proposal.escalation_ref.split(":")
        assert channel == BOARD_CHANNEL
        # Recorded before announced: the escalation's audit entry precedes the message's.
        actions = [
            e.action
            for e in session.scalars(
                select(AuditEntry).where(AuditEntry.subject == f"proposal:{proposal_id}").order_by(AuditEntry.seq)
            )
        ]
        assert actions.index("proposal.escalated") < actions.index("proposal.escalation-posted")
    [message] = board.board_messages()
    buttons = [e["action_id"] for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert buttons == ["board_approve", "board_reject", "board_needs_info"]
    assert "1,200 EUR" in json.dumps(message["blocks"])
    assert "endorsed by the WG" in json.dumps(message["blocks"])
    assert _wg_mentions(board, f"Proposal {proposal_id} went to the DSF Board") == {"discord": True, "discourse": True}

    # Re-run: no second Slack message, no new write anywhere.
    before = (board.slack_writes(), world.writes())
    board_escalation(proposal_id=proposal_id, now=NOW + timedelta(hours=2))
    assert (board.slack_writes(), world.writes()) == before
    assert len(board.board_messages()) == 1

    # A stale button Pella will press after the decision (Slack keeps old clients around).
    late = board.click(user=PELLA, ts=ts, action="reject")

    # Ossian is in the workspace but not on the Board list: refused, ephemeral, audited.
    event = board.deliver(board.click(user=OSSIAN, ts=ts, action="approve"))
    assert inbox.handle_event(world.ledger, event) == f"refused:not-on-board-list:proposal:{proposal_id}"
    replies = board.slack_state()["response_posts"]
    assert len(replies) == 1 and "not allowed" in replies[0]["text"]
    assert replies[0]["response_type"] == "ephemeral" and replies[0]["to_user"] == OSSIAN
    assert replies[0]["replace_original"] is False
    [refused] = _attempts(board)
    payload = json.loads(refused.payload_json)
    assert payload["allowed"] is False and payload["reason"] == "not-on-board-list"
    assert OSSIAN not in refused.payload_json and "ossian" not in refused.payload_json.lower()
    with world.ledger.read() as session:
        assert session.get(Proposal, proposal_id).status == ProposalStatus.ESCALATED

    # Tobin (on the list by e-mail) asks for more information: recorded, buttons stay.
    event = board.deliver(board.click(user=TOBIN, ts=ts, action="needs_info"))
    assert inbox.handle_event(world.ledger, event) == f"proposal:{proposal_id}:needs-info"
    [message] = board.board_messages()
    assert any(b["type"] == "actions" for b in message["blocks"])
    assert "More information requested" in json.dumps(message["blocks"])
    # R-BOARD: the WG is told by whom, also for a Board member known by e-mail only.
    assert _wg_mentions(board, "Tobin Ashgrove") == {"discord": True, "discourse": True}

    # Wren approves; the same delivery arrives twice (Slack retries).
    request = board.click(user=WREN, ts=ts, action="approve")
    event = board.deliver(request)
    assert board.deliver(request) == event, "a redelivery is the same inbox event"
    assert inbox.handle_event(world.ledger, event) == f"proposal:{proposal_id}:approved"
    with world.ledger.read() as session:
        proposal = session.get(Proposal, proposal_id)
        assert proposal.status == ProposalStatus.DECIDED
        assert proposal.decision == BoardDecision.APPROVED
        assert proposal.decided_by == WREN and proposal.decision_source == "slack"
    [message] = board.board_messages()
    blocks = json.dumps(message["blocks"])
    assert "Approved" in blocks and f"<@{WREN}>" in blocks
    assert not any(b["type"] == "actions" for b in message["blocks"])
    history = board.thread(ts)
    assert len(history) == 2 and f"<@{WREN}>" in json.dumps(history[-1])
    assert _wg_mentions(board, f"The DSF Board approved proposal {proposal_id}") == {"discord": True, "discourse": True}

    # Nothing twice: the processed event, the handler run again on it, the redelivery.
    before = (board.slack_writes(), world.writes())
    assert inbox.handle_event(world.ledger, event) == "already-processed"
    with world.ledger.read() as session:
        row = session.get(InboxEvent, event)
    assert handle_board_decision(ledger=world.ledger, event=row) == f"proposal:{proposal_id}:approved"
    assert (board.slack_writes(), world.writes()) == before

    # Pella's late press: refused kindly with who decided.
    event = board.deliver(late)
    assert inbox.handle_event(world.ledger, event) == f"refused:already-decided:proposal:{proposal_id}"
    last = board.slack_state()["response_posts"][-1]
    assert last["to_user"] == PELLA and last["response_type"] == "ephemeral"
    assert "already decided: approved by" in last["text"] and f"<@{WREN}>" in last["text"]
    with world.ledger.read() as session:
        assert session.get(Proposal, proposal_id).decision == BoardDecision.APPROVED
    codes = [json.loads(a.payload_json)["reason"] for a in _attempts(board)]
    assert codes == ["not-on-board-list", "allowed", "allowed", "already-decided"]

    _audit_verify_cli(world)


# --------------------------------------------------------------------------------------------
# Reminders and the operator's decision


def test_reminders_at_30_and_44_days_then_operator_decides(board: Board):
    world = board.world
    # A charter that does not ask for an endorsement vote: the proposal goes straight up.
    with without_endorsement(world):
        result = board_escalation(
            kind="migrate-platform",
            title="Move the chat bridge",
            summary="Retire the IRC bridge for a Matrix one.",
            platform="matrix",
            replaces="discord",
            now=NOW,
        )
        assert result["status"] == "escalated"
        proposal_id = result["proposal"]
        [message] = board.board_messages()
        assert "not required by the charter" in json.dumps(message["blocks"])

        sent = {}
        for days in (29, 30, 30.5, 43, 44, 44.5):
            out = board_reminders(now=NOW + timedelta(days=days))
            sent[days] = [r["reminder"] for r in out["reminders"]]
        assert sent == {29: [], 30: [1], 30.5: [], 43: [], 44: [2], 44.5: []}
        replies = board.thread(message["ts"])
        assert len(replies) == 2 and "Reminder 2" in json.dumps(replies[-1])
        with world.ledger.read() as session:
            reminded = list(session.scalars(select(AuditEntry).where(AuditEntry.action == "proposal.reminded")))
            assert [json.loads(e.payload_json)["number"] for e in reminded] == [1, 2]

        # An operator records the Board's rejection taken in a meeting.
        out = record_decision(
            proposal_id=proposal_id,
            decision="rejected",
            decided_by="wren_halloway",
            note="Not before the next budget year.",
            now=NOW + timedelta(days=45),
        )
        assert out["result"] == f"proposal:{proposal_id}:rejected"
        [message] = board.board_messages()
        assert "Rejected" in json.dumps(message["blocks"])
        assert "Not before the next budget year." in json.dumps(message["blocks"])
        assert _wg_mentions(board, f"The DSF Board rejected proposal {proposal_id}") == {
            "discord": True,
            "discourse": True,
        }
        before = (board.slack_writes(), world.writes())
        again = record_decision(
            proposal_id=proposal_id,
            decision="rejected",
            decided_by="wren_halloway",
            note="Not before the next budget year.",
            now=NOW + timedelta(days=45, hours=1),
        )
        assert again["result"] == out["result"]
        assert board_reminders(now=NOW + timedelta(days=58))["reminders"] == []
        assert (board.slack_writes(), world.writes()) == before
        with world.ledger.read() as session:
            proposal = session.get(Proposal, proposal_id)
            assert proposal.decision_source == "operator"
            assert audit.verify(session).ok


# --------------------------------------------------------------------------------------------
# The membership closer settles endorsement ballots too


def test_membership_closer_escalates_an_endorsed_proposal(board: Board):
    world = board.world
    result = board_escalation(
        kind="retire-platform",
        title="Retire the Discord server",
        summary="Nobody posted there in a year.",
        platform="discord",
        now=NOW,
    )
    ctx = context(NOW)
    fballot = ballots.platform_ballot("discourse", ballots.refs(ctx, result["ballot"])["discourse"])
    for voter in ("avery_quill", "bram_tolliver", "cleo_marsh", "dario_fenwick"):
        world.discourse_sb.cast_vote(world.discourse_url, fballot, voter=voter, option_index=0)
    ballots.close_due_ballots(now=NOW + timedelta(hours=1))
    with world.ledger.read() as session:
        assert session.get(Proposal, result["proposal"]).status == ProposalStatus.ESCALATED
    assert len(board.board_messages()) == 1


def test_two_deciding_votes_at_once_escalate_once(board: Board):
    """The deciding vote's handler and another settling run (a second vote's handler on the
    inbox worker's other thread, the scheduled closer) settle the ballot side by side; one
    closes it, and the Board still gets one message, the WG one announcement."""
    world = board.world
    result = board_escalation(
        kind="migrate-platform",
        title="Move the chat to a new server",
        summary="The old server is full.",
        platform="matrix",
        replaces="discord",
        now=NOW,
    )
    ballot_id = result["ballot"]
    ctx = context(NOW)
    discord = world.platforms.space("discord").connector
    at = NOW + timedelta(minutes=30)
    # The fourth yes decides it (R-VOTE-EARLY); its handler and the scheduled closer both settle.
    for name in ("avery_quill", "bram_tolliver", "cleo_marsh", "dario_fenwick"):
        accepted, _ = ballots.cast(
            ctx, ballot_id=ballot_id, platform="discord", external_id=discord.find_user(name).id, choice="yes", at=at
        )
        assert accepted
    # Slack answers slowly, so both finishers reach the Board post while one is in flight.
    httpx.post(f"{board.slack_url}/_sandbox/faults", json={"latency": 0.4}).raise_for_status()
    start = threading.Barrier(2)
    outcomes: list[dict] = []
    errors: list[BaseException] = []

    def settle():
        try:
            start.wait()
            outcomes.append(ballots.settle(context(at), ballot_id=ballot_id))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=settle) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    httpx.post(f"{board.slack_url}/_sandbox/faults", json={}).raise_for_status()
    assert errors == []
    assert [o["outcome"] for o in outcomes] == ["passed", "passed"]
    assert {o["applied"] for o in outcomes} == {"escalated"}
    assert len(board.board_messages()) == 1
    with world.ledger.read() as session:
        assert session.get(Proposal, result["proposal"]).status == ProposalStatus.ESCALATED
    discord_posts = [
        m
        for m in world.discord_state()["messages"]
        if f"Proposal {result['proposal']} went to the DSF Board" in (m["content"] or "")
    ]
    assert len(discord_posts) == 1


def _audit_verify_cli(world) -> None:
    """``charterflow audit verify`` on the test ledger exits 0."""
    url = str(world.ledger.engine.url)
    env = {**os.environ, "CHARTERFLOW_DATABASE_URL": url}
    cli = Path(sys.executable).with_name("charterflow")
    done = subprocess.run([str(cli), "audit", "verify"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    with world.ledger.read() as session:
        assert repo.inbox_counts(session)["pending"] == 0


# --------------------------------------------------------------------------------------------
# A member files a proposal from Discord (the ``/propose`` command the lead registers)


def test_member_files_a_proposal_from_discord(board: Board):
    world = board.world

    def propose(user: str, **options: str) -> str:
        event_id = discord_event(
            world, kind="propose", route="board-proposal", payload={"user": user, "options": options}
        )
        with world.ledger.read() as session:
            row = session.get(InboxEvent, event_id)
        return handle_board_proposal(ledger=world.ledger, event=row, now=NOW)

    # Not a WG member: refused. A bad amount: refused with the field. R-DIRECT: not escalated.
    assert (
        propose("ivo_stone", kind="trial-platform", title="Try a wiki", summary="A wiki for the guides.")
        == "refused:R-BOARD:not-a-member"
    )
    assert (
        propose(
            "cleo_marsh",
            kind="budget",
            title="Stickers",
            summary="For sprints.",
            amount="0",
            currency="USD",
            purpose="swag",
        )
        == "refused:invalid:amount"
    )
    assert (
        propose("cleo_marsh", kind="process", title="Weekly triage", summary="Triage on Mondays.")
        == "not-escalated:R-DIRECT"
    )
    result = propose(
        "cleo_marsh",
        kind="trial-platform",
        title="Try a wiki",
        summary="A wiki for the moderation guides.",
        platform="wiki",
        links="https://wiki.example.org https://forum.example.org/t/wiki/9",
    )
    assert result.startswith("proposal:")
    with world.ledger.read() as session:
        proposal = session.get(Proposal, int(result.split(":")[1]))
        assert proposal.status == ProposalStatus.ENDORSING
        assert proposal.body.endswith("- https://forum.example.org/t/wiki/9")
        assert repo.endorsement_ballot_of(session, proposal) is not None
    assert board.board_messages() == []
