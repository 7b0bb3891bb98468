"""``ledger.ideas`` on SQLite and PostgreSQL: filed once per source, triage, flags, status
history with notes, refusals; every write audited and the chain still verifies."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from ledger import audit, repo
from ledger import ideas as backlog
from ledger.errors import NotFound
from ledger.models import AuditEntry, IdeaStatus

AT = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def test_ideas_in_the_ledger(ledger):
    with ledger.transaction() as s:
        author = repo.create_person(s, handle="nell_ashby", actor="operator", at=AT)
        one, created = backlog.file_idea(
            s,
            title="Office hours",
            source="discord",
            source_key="discord:interaction:1",
            actor="flow:test",
            author=author,
            author_handle="discord:nell",
            at=AT,
        )
        same, again = backlog.file_idea(
            s, title="Something else", source="discord", source_key="discord:interaction:1", actor="flow:test", at=AT
        )
        two, _ = backlog.file_idea(
            s,
            title="Office hours on Fridays",
            source="forum",
            source_key="discourse:topic:7",
            actor="flow:test",
            author_handle="discourse:ivy_fern",
            at=AT + timedelta(days=1),
        )
        assert created and not again and same.id == one.id
        assert one.author_handle is None and two.author_handle == "discourse:ivy_fern"
        backlog.record_triage(
            s,
            one,
            actor="flow:test",
            needs_board=False,
            board_kind="idea",
            platform="discord",
            ruling="R-DIRECT",
            at=AT,
        )
        backlog.record_triage(
            s,
            two,
            actor="flow:test",
            needs_board=False,
            board_kind="idea",
            platform="discord",
            duplicate_of=one,
            similarity=0.8123,
            ruling="R-DIRECT",
            at=AT,
        )
        assert backlog.flag(s, two, actor="flow:test", age_days=31, at=AT)
        assert not backlog.flag(s, two, actor="flow:test", age_days=32, at=AT)
        change = backlog.change_status(s, one, "accepted", actor=f"person:{author.id}", note="Good one", at=AT)
        backlog.record_refused_change(
            s,
            idea_id=two.id,
            actor="flow:test",
            attempted="done",
            reason_code="transition",
            ruling="R-IDEA-1",
            person_id=author.id,
            event_ref="inbox:3",
            at=AT,
        )
        one_id, two_id, change_id = one.id, two.id, change.id
    with ledger.read() as s:
        assert [i.id for i in backlog.awaiting(s)] == [two_id]
        assert [i.id for i in backlog.list_ideas(s, status="accepted", platform="discord")] == [one_id]
        assert backlog.list_ideas(s, platform=["slack"]) == []
        two = backlog.get_idea(s, two_id)
        assert two.duplicate_of_id == one_id and str(two.similarity) == "0.812"
        assert two.status == IdeaStatus.TRIAGED and two.flagged_at is not None
        one = backlog.get_idea(s, one_id)
        assert [h.to_status for h in one.history] == [IdeaStatus.NEW, IdeaStatus.TRIAGED, IdeaStatus.ACCEPTED]
        assert one.history[-1].id == change_id and one.history[-1].note == "Good one"
        with pytest.raises(NotFound, match="idea 999"):
            backlog.get_idea(s, 999)
        actions = [
            (a, json.loads(p))
            for a, p in s.execute(select(AuditEntry.action, AuditEntry.payload_json).order_by(AuditEntry.seq))
        ]
        assert audit.verify(s).ok
    names = [a for a, _ in actions]
    assert names.count("idea.added") == 2 and names.count("idea.triaged") == 2
    assert names.count("idea.flagged") == 1 and names.count("idea.status-refused") == 1
    triaged = [p for a, p in actions if a == "idea.triaged"][1]
    assert triaged["similarity"] == "0.812" and triaged["duplicate_of"] == one_id
    # No text, note or handle reaches the log.
    flat = json.dumps(actions)
    for private in ("Office hours", "Good one", "ivy_fern", "nell"):
        assert private not in flat
