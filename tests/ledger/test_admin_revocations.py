"""R-ADMIN-4's waiting admin revocations in the ledger (SQLite and PostgreSQL): recorded once,
reminded once per number, ended once; every step audited with ids only."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from ledger import repo
from ledger import roles as roles_ledger
from ledger.models import AuditEntry

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def test_a_waiting_revocation_is_recorded_reminded_and_ended_once(ledger):
    with ledger.transaction() as session:
        person = repo.create_person(session, handle="wren_alder", actor="operator", at=NOW)
        membership = repo.start_membership(
            session, person, actor="operator", starts_at=NOW, ends_at=NOW + timedelta(days=365), origin="import", at=NOW
        )
        repo.end_membership(session, membership, status="left", actor="operator", at=NOW, keep=[("discord", "admin")])
        row, created = roles_ledger.wait_revocation(
            session, person_id=person.id, platform="discord", membership_id=membership.id, actor="flow:leave", at=NOW
        )
        again, created_again = roles_ledger.wait_revocation(
            session, person_id=person.id, platform="discord", membership_id=membership.id, actor="flow:leave", at=NOW
        )
        assert created and not created_again and again.id == row.id
        assert [r.id for r in roles_ledger.revocations(session)] == [row.id]
        assert roles_ledger.record_revocation_reminder(
            session, row, number=1, actor="flow:x", at=NOW + timedelta(days=7)
        )
        assert not roles_ledger.record_revocation_reminder(session, row, number=1, actor="flow:x", at=NOW)
        assert roles_ledger.resolve_revocation(
            session, row, status="done", actor="flow:x", reason_code="admins-enough", at=NOW
        )
        assert not roles_ledger.resolve_revocation(
            session, row, status="cancelled", actor="flow:x", reason_code="again", at=NOW
        )
        with pytest.raises(ValueError, match="'done' or 'cancelled'"):
            roles_ledger.resolve_revocation(session, row, status="waiting", actor="flow:x", reason_code="x")
        assert roles_ledger.revocations(session) == []
        assert (row.status, row.reminders) == ("done", 1)
    with ledger.read() as session:
        entries = session.scalars(
            select(AuditEntry).where(AuditEntry.action.like("roles.admin-revocation-%")).order_by(AuditEntry.seq)
        ).all()
        assert [e.action for e in entries] == [
            "roles.admin-revocation-waits",
            "roles.admin-revocation-reminded",
            "roles.admin-revocation-done",
        ]
        assert all("wren_alder" not in e.payload_json for e in entries)
        assert json.loads(entries[0].payload_json)["ruling"] == "R-ADMIN-4"
