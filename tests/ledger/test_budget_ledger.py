"""Budget requests in the ledger (R-BUDGET), on SQLite and PostgreSQL: a request's state and
figures as they stood at a date (the quarterly report's view), which requests a quarter shows,
spending once per reference, exact sums in Decimal, and the audit entries without the texts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from ledger import audit, repo
from ledger import budget as store
from ledger.db import Ledger
from ledger.errors import Conflict, NotFound
from ledger.models import AuditEntry

T0 = datetime(2026, 4, 2, 9, 0, tzinfo=UTC)


def _request(session, *, title: str, amount: str, at: datetime):
    proposal = repo.create_proposal(
        session,
        kind="budget",
        title=title,
        actor="operator",
        amount=Decimal(amount),
        currency="EUR",
        purpose="p",
        at=at,
    )
    repo.escalate_proposal(
        session,
        proposal,
        actor="operator",
        endorsement_ballot_id=None,
        escalation_ref="C0BOARD01:1.1",
        at=at + timedelta(days=1),
    )
    return proposal


def test_states_and_figures_as_they_stood(ledger: Ledger):
    with ledger.transaction() as s:
        member = repo.create_person(s, handle="cleo_marsh", actor="operator", at=T0)
        hosting = _request(s, title="Forum hosting", amount="1200", at=T0)
        repo.record_board_decision(
            s,
            hosting,
            decision="approved",
            decided_by="U0WREN001",
            source="slack",
            actor="operator",
            at=T0 + timedelta(days=10),
        )
        store.set_approved_amount(s, hosting, amount=Decimal("1000"), actor="operator", at=T0 + timedelta(days=10))
        # Cents that a float would not add up exactly.
        for n, cents in enumerate(("0.10", "0.20", "333.30")):
            row, created = store.add_spending(
                s,
                hosting,
                amount=Decimal(cents),
                currency="EUR",
                reference=f"INV-{n}",
                person=member,
                reason=None,
                flagged=False,
                actor="operator",
                at=T0 + timedelta(days=20 + n),
            )
            assert created
        again, created = store.add_spending(
            s,
            hosting,
            amount=Decimal("0.10"),
            currency="EUR",
            reference=" inv-0 ",
            person=member,
            reason=None,
            flagged=False,
            actor="operator",
            at=T0 + timedelta(days=30),
        )
        assert not created and again.reference == "INV-0"
        with pytest.raises(Conflict, match="already recorded"):
            store.add_spending(
                s,
                hosting,
                amount=Decimal("9"),
                currency="EUR",
                reference="INV-0",
                person=member,
                reason=None,
                flagged=False,
                actor="operator",
                at=T0 + timedelta(days=30),
            )
        store.close_request(s, hosting, actor="operator", person_id=member.id, at=T0 + timedelta(days=100))
        rejected = _request(s, title="Sticker budget", amount="80", at=T0)
        repo.record_board_decision(
            s,
            rejected,
            decision="rejected",
            decided_by="U0WREN001",
            source="slack",
            actor="operator",
            at=T0 + timedelta(days=5),
        )
        with pytest.raises(NotFound):
            store.get_request(s, 9999)

    def state_at(days: float) -> dict:
        with ledger.read() as s:
            rows = store.request_rows(s, until=T0 + timedelta(days=days))
        return {r["title"]: (r["state"], r["approved"], r["spent"], r["left"]) for r in rows}

    assert state_at(0) == {}
    assert state_at(0.5)["Forum hosting"] == ("requested", None, "0.00", None)
    assert state_at(2)["Forum hosting"] == ("with-board", None, "0.00", None)
    assert state_at(11)["Forum hosting"] == ("approved", "1000.00", "0.00", "1000.00")
    assert state_at(21.5)["Forum hosting"] == ("approved", "1000.00", "0.30", "999.70")
    assert state_at(60)["Forum hosting"] == ("approved", "1000.00", "333.60", "666.40")
    assert state_at(101)["Forum hosting"] == ("closed", "1000.00", "333.60", "666.40")
    assert state_at(60)["Sticker budget"] == ("rejected", None, "0.00", None)

    # A quarter shows what was open during it: not what was closed or rejected before it.
    with ledger.read() as s:
        later = store.request_rows(s, since=T0 + timedelta(days=120), until=T0 + timedelta(days=200))
        during = store.request_rows(s, since=T0 - timedelta(days=1), until=T0 + timedelta(days=90))
        assert later == []
        assert [r["title"] for r in during] == ["Forum hosting", "Sticker budget"]
        assert store.summary(during) == {
            "EUR": {"requested": "1280.00", "approved": "1000.00", "spent": "333.60", "left": "666.40"}
        }
        entries = [
            e for e in s.scalars(select(AuditEntry).where(AuditEntry.action.like("budget.%")).order_by(AuditEntry.seq))
        ]
        assert [e.action for e in entries] == ["budget.approved-amount"] + ["budget.spending-recorded"] * 3 + [
            "budget.closed"
        ]
        assert not any("INV-" in e.payload_json for e in entries)
        assert json.loads(entries[1].payload_json)["reference"].startswith("sha256:")
        assert audit.verify(s).ok


def test_a_request_withdrawn_in_a_later_quarter_shows_in_it(ledger: Ledger):
    # Filed on T0, not endorsed and withdrawn 5 days later (R-BUDGET: each request's status).
    with ledger.transaction() as s:
        proposal = repo.create_proposal(
            s, kind="budget", title="Bot hosting", actor="operator", amount=Decimal("40"), currency="EUR", at=T0
        )
        repo.withdraw_proposal(s, proposal, reason_code="not-endorsed", actor="operator", at=T0 + timedelta(days=5))
    with ledger.read() as s:
        # As it stood before the withdrawal: still requested, not withdrawn.
        assert [r["state"] for r in store.request_rows(s, until=T0 + timedelta(days=2))] == ["requested"]
        # A quarter that began after it was filed and saw it withdrawn shows it.
        during = store.request_rows(s, since=T0 + timedelta(days=3), until=T0 + timedelta(days=30))
        assert [(r["title"], r["state"]) for r in during] == [("Bot hosting", "withdrawn")]
        assert store.request_rows(s, since=T0 + timedelta(days=6), until=T0 + timedelta(days=30)) == []
