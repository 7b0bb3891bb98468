"""Budget requests end to end (R-BUDGET, issue 23): the charter's budget ideas in the backlog, a
request filed from one, the WG's endorsement, the escalation, a signed Slack Approve click
through the real gateway, spending recorded by members (over the amount only with a reason,
flagged), to the Budgets section of the Board's quarterly report on Slack; against the Slack,
Discord and Discourse sandboxes on 127.0.0.1 and the session's Prefect server."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from charterflow.cli import app as cli
from connectors.errors import PolicyViolation
from flows import inbox
from flows.board.budget import close_request, link_idea, list_requests, record_spending
from flows.board.decision import record_decision
from flows.board.escalation import board_escalation
from flows.ideas.triage import seed_charter_ideas
from flows.kit import context
from flows.membership import ballot as ballots
from flows.reports.quarterly import reports_approve, reports_quarterly
from ledger import audit
from ledger.errors import Conflict, NotFound
from ledger.models import AuditEntry, Idea, Proposal
from ledger.models_budget import BudgetSpending
from rules.reports import Quarter
from tests.support.board import WREN, Board, without_endorsement
from tests.support.membership import NOW


def _actions(board: Board, action: str) -> list[dict]:
    with board.world.ledger.read() as session:
        return [
            json.loads(e.payload_json)
            for e in session.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.seq))
        ]


def _request(board: Board, proposal_id: int) -> dict:
    return next(r for r in list_requests(board.world.ledger)["requests"] if r["id"] == proposal_id)


def _endorse(board: Board, ballot_id: int) -> None:
    """Four WG members vote yes on Discord: the endorsement passes early (R-VOTE-EARLY)."""
    ctx = context(NOW)
    discord = board.world.platforms.space("discord").connector
    for name in ("avery_quill", "bram_tolliver", "cleo_marsh", "dario_fenwick"):
        accepted, _ = ballots.cast(
            ctx,
            ballot_id=ballot_id,
            platform="discord",
            external_id=discord.find_user(name).id,
            choice="yes",
            at=NOW + timedelta(minutes=30),
        )
        assert accepted


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"reference": "x" * 501}, "reference: at most 500 characters"),
        ({"reason": "why " * 600}, "reason: at most 2000 characters"),
        ({"amount": 12.5}, "amount: give money as text or Decimal"),
        ({"amount": "1e12"}, "amount: at most two decimals"),
        ({"currency": "EURO"}, "currency: 'EURO' is not a known ISO 4217 currency"),
    ],
)
def test_malformed_or_oversized_spending_is_refused_before_the_ledger(fields, problem):
    good = {"proposal_id": 1, "amount": "5", "reference": "INV-1", "by": "cleo_marsh"}
    with pytest.raises(ValueError, match=problem):
        record_spending(None, **{**good, **fields}, now=NOW)  # no ledger: nothing is read


def test_budget_request_from_slack_approval_to_spending_in_the_board_report(board: Board):
    world = board.world
    ledger = world.ledger

    # The charter's own budget ideas start in the backlog, once.
    seeded = seed_charter_ideas(ledger, now=NOW)
    assert [r["filed"] for r in seeded] == [True] * 5
    assert [r["filed"] for r in seed_charter_ideas(ledger, now=NOW)] == [False] * 5
    with ledger.read() as session:
        assert {(i.source, i.author_handle) for i in session.scalars(select(Idea))} == {("charter", "charter")}
    forum_idea = next(r["idea"] for r in seeded if "Forum" in r["title"])

    # A budget request filed from that idea goes to the WG's endorsement vote first.
    filed = board_escalation(
        kind="budget",
        title="Forum hosting for a year",
        summary="A managed host for the Forum.",
        amount=Decimal("1200"),
        currency="EUR",
        purpose="twelve months of hosting",
        proposed_by="avery_quill",
        from_idea=forum_idea,
        now=NOW,
    )
    proposal_id, ballot_id = filed["proposal"], filed["ballot"]
    assert filed["status"] == "endorsing"
    row = _request(board, proposal_id)
    assert (row["state"], row["asked"], row["ideas"]) == ("requested", "1200.00", [forum_idea])
    ideas = json.loads(CliRunner().invoke(cli, ["ideas", "list", "--json"]).output)
    assert {r["id"]: r["budget_request"] for r in ideas}[forum_idea] == proposal_id
    with pytest.raises(PolicyViolation, match="not approved by the Board"):
        record_spending(ledger, proposal_id=proposal_id, amount="10", reference="EARLY-1", by="cleo_marsh", now=NOW)

    _endorse(board, ballot_id)
    escalated = board_escalation(proposal_id=proposal_id, now=NOW + timedelta(hours=1))
    assert escalated["status"] == "escalated"
    assert _request(board, proposal_id)["state"] == "with-board"

    # A Board member presses Approve in Slack: a signed request through the real gateway.
    with ledger.read() as session:
        ts = session.get(Proposal, proposal_id).escalation_ref.split(":")[1]
    event = board.deliver(board.click(user=WREN, ts=ts, action="approve"))
    assert inbox.handle_event(ledger, event) == f"proposal:{proposal_id}:approved"
    row = _request(board, proposal_id)
    assert (row["state"], row["approved"], row["spent"], row["left"]) == ("approved", "1200.00", "0.00", "1200.00")
    [approved] = _actions(board, "budget.approved-amount")
    assert approved["amount"] == "1200.00" and approved["currency"] == "EUR"

    # Members record spending with a reference.
    at = NOW + timedelta(hours=2)
    out = record_spending(
        ledger, proposal_id=proposal_id, amount="700", reference="INV-2026-001", by="cleo_marsh", now=at
    )
    assert out["recorded"] and (out["spent"], out["left"], out["flagged"]) == ("700.00", "500.00", False)
    # The same reference again (spelt differently): recorded once, not counted twice.
    again = record_spending(
        ledger, proposal_id=proposal_id, amount="700.00", reference="  inv-2026-001 ", by="bram_tolliver", now=at
    )
    assert not again["recorded"] and again["spent"] == "700.00"
    with pytest.raises(Conflict, match="already recorded"):
        record_spending(ledger, proposal_id=proposal_id, amount="70", reference="INV-2026-001", by="cleo_marsh", now=at)
    # Over the approved amount: refused without a reason, recorded and flagged with one.
    with pytest.raises(PolicyViolation, match="R-BUDGET: not recorded: .*give a reason"):
        record_spending(
            ledger, proposal_id=proposal_id, amount="550", reference="INV-2026-002", by="dario_fenwick", now=at
        )
    out = record_spending(
        ledger,
        proposal_id=proposal_id,
        amount="550",
        reference="INV-2026-002",
        reason="The host raised its yearly price",
        by="dario_fenwick",
        now=at,
    )
    assert out["recorded"] and out["flagged"] and (out["spent"], out["left"]) == ("1250.00", "-50.00")

    # Bad input: refused before anything is recorded, or refused and audited with the ruling.
    for amount, problem in (("-5", "more than zero"), ("12.345", "two decimals"), ("ten", "not a number")):
        with pytest.raises(ValueError, match=f"amount: .*{problem}"):
            record_spending(ledger, proposal_id=proposal_id, amount=amount, reference="X-1", by="cleo_marsh", now=at)
    with pytest.raises(ValueError, match="reference: is required"):
        record_spending(ledger, proposal_id=proposal_id, amount="1", reference=" ", by="cleo_marsh", now=at)
    with pytest.raises(PolicyViolation, match="the request is in EUR"):
        record_spending(
            ledger,
            proposal_id=proposal_id,
            amount="5",
            currency="usd",
            reference="X-2",
            reason="any",
            by="cleo_marsh",
            now=at,
        )
    with pytest.raises(PolicyViolation, match="proposal 9999 is not a budget request"):
        record_spending(ledger, proposal_id=9999, amount="5", reference="X-3", by="cleo_marsh", now=at)
    for outsider in ("wren_halloway", "nobody_at_all"):  # a Board member; not a person at all
        with pytest.raises(PolicyViolation, match="only active working group members"):
            record_spending(ledger, proposal_id=proposal_id, amount="5", reference="X-4", by=outsider, now=at)
    refused = [(r["attempted"], r["reason"], r["ruling"]) for r in _actions(board, "budget.refused")]
    assert refused == [
        ("spend", "not-approved", "R-BUDGET"),
        ("spend", "over-without-reason", "R-BUDGET"),
        ("spend", "wrong-currency", "R-BUDGET"),
        ("spend", "unknown-proposal", "R-BUDGET"),
        ("spend", "not-a-member", "R-BUDGET"),
        ("spend", "not-a-member", "R-BUDGET"),
    ]
    with ledger.read() as session:
        amounts = [r.amount for r in session.scalars(select(BudgetSpending))]
        assert sorted(amounts) == [Decimal("550.00"), Decimal("700.00")]
        recorded = session.scalars(
            select(AuditEntry.payload_json).where(AuditEntry.action == "budget.spending-recorded")
        ).all()
        assert len(recorded) == 2
        assert not any("INV-2026" in p or "raised its" in p for p in recorded), (
            "the audit log holds digests, not the reference or the reason"
        )
        assert audit.verify(session).ok

    # The Board's quarterly report, approved by a member and sent to the Board's Slack channel.
    q = Quarter.of(at)
    after = q.end + timedelta(hours=1)
    assert reports_quarterly(quarter=q.label, now=after)["status"] == "awaiting-approval"
    assert reports_approve(quarter=q.label, approved_by="avery_quill", now=after)["status"] == "published"
    [report] = [m for m in board.board_messages() if "OCWG quarterly report" in (m.get("text") or "")]
    blocks = json.dumps(report["blocks"], ensure_ascii=False)
    assert "*Budgets*" in blocks
    assert (
        f"#{proposal_id} Forum hosting for a year: approved, asked 1200.00 EUR, approved "
        "1200.00, spent 1250.00, left -50.00, 1 flagged"
    ) in blocks
    assert "550.00 EUR over the approved amount, ref INV-2026-002: The host raised its yearly price" in blocks
    assert "*Total EUR:* asked 1200.00, approved 1200.00, spent 1250.00, left -50.00" in blocks
    # The public report (Forum and Discord) says nothing of the budgets.
    public = json.dumps([world.discourse_state()["posts"], world.discord_state()["messages"]])
    assert "INV-2026-002" not in public and "raised its yearly price" not in public
    assert "Budgets" not in json.dumps([p["raw"] for p in world.discourse_state()["posts"]])


def test_operator_approves_another_amount_then_a_member_closes(board: Board):
    world = board.world
    ledger = world.ledger
    # A charter that asks for no endorsement vote: the request goes straight to the Board.
    with without_endorsement(world):
        filed = board_escalation(
            kind="budget",
            title="Discord Nitro for the server",
            summary="Boosts for better audio.",
            amount=Decimal("500"),
            currency="USD",
            purpose="server boosts",
            now=NOW,
        )
        proposal_id = filed["proposal"]
        assert filed["status"] == "escalated"

        with pytest.raises(ValueError, match="approved_amount: only an approval"):
            record_decision(
                proposal_id=proposal_id,
                decision="rejected",
                decided_by="wren_halloway",
                approved_amount=Decimal("300"),
                now=NOW,
            )
        with pytest.raises(ValueError, match="approved_amount: .*two decimals"):
            record_decision(
                proposal_id=proposal_id,
                decision="approved",
                decided_by="wren_halloway",
                approved_amount=Decimal("300.125"),
                now=NOW,
            )
        assert _actions(board, "proposal.decided") == [], "bad input records nothing"
        out = record_decision(
            proposal_id=proposal_id,
            decision="approved",
            decided_by="wren_halloway",
            note="Half a year for now.",
            approved_amount=Decimal("300"),
            now=NOW + timedelta(minutes=5),
        )
        assert out["result"] == f"proposal:{proposal_id}:approved"
        row = _request(board, proposal_id)
        assert (row["asked"], row["approved"], row["left"]) == ("500.00", "300.00", "300.00")
        # The WG is told the amount approved, not only that it was approved (R-BOARD, R-BUDGET).
        told = "Amount approved: 300.00 USD (asked 500.00 USD)"
        assert told in json.dumps(world.discord_state()) and told in json.dumps(world.discourse_state())

        # Spending exactly the approved amount is within it; then the request is closed.
        at = NOW + timedelta(hours=1)
        assert not record_spending(
            ledger,
            proposal_id=proposal_id,
            amount="300",
            reference="https://billing.example.org/r/88",
            by="hana_pike",
            now=at,
        )["flagged"]
        with pytest.raises(PolicyViolation, match="only active working group members"):
            close_request(ledger, proposal_id=proposal_id, by="wren_halloway", now=at)
        closed = close_request(ledger, proposal_id=proposal_id, by="gale_morrow", now=at)
        assert closed["closed"] and closed["state"] == "closed" and closed["spent"] == "300.00"
        assert close_request(ledger, proposal_id=proposal_id, by="gale_morrow", now=at)["closed"] is False
        with pytest.raises(PolicyViolation, match="it was closed"):
            record_spending(
                ledger,
                proposal_id=proposal_id,
                amount="1",
                reference="LATE-1",
                reason="late invoice",
                by="hana_pike",
                now=at,
            )

        # The CLI: an idea linked by hand, the list with its totals, a refusal in one line.
        seeded = seed_charter_ideas(ledger, now=NOW)
        nitro = next(r["idea"] for r in seeded if "Nitro" in r["title"])
        runner = CliRunner()
        result = runner.invoke(cli, ["budget", "link", str(nitro), str(proposal_id)])
        assert result.exit_code == 0, result.output
        assert f"idea #{nitro} linked to proposal #{proposal_id}" in result.output
        with pytest.raises(NotFound):
            link_idea(ledger, idea_id=99999, proposal_id=proposal_id, now=at)
        result = runner.invoke(cli, ["budget", "list"])
        assert result.exit_code == 0, result.output
        line = next(x for x in result.output.splitlines() if x.startswith(f"#{proposal_id}"))
        assert line.split()[:7] == [f"#{proposal_id}", "closed", "USD", "500.00", "300.00", "300.00", "0.00"]
        assert "total USD: asked 500.00, approved 300.00, spent 300.00, left 0.00" in result.output
        result = runner.invoke(
            cli, ["budget", "spend", str(proposal_id), "5", "--reference", "R-9", "--by", "ivo_stone"]
        )
        assert result.exit_code == 2
        assert "error: R-BUDGET: not recorded: only active working group members record spending" in result.output
        result = runner.invoke(
            cli, ["budget", "spend", str(proposal_id), "5.001", "--reference", "R-9", "--by", "hana_pike"]
        )
        assert result.exit_code == 2 and "amount: at most two decimals" in result.output
        result = runner.invoke(cli, ["budget", "seed"])
        assert result.exit_code == 0 and result.output.count("already filed") == 5
