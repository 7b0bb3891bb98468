"""Repository functions: each change is written with its audit entry, atomically."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone

import ledger_workers
import pytest
from ledger_helpers import NOW, make_people
from sqlalchemy import func, select

from ledger import Conflict, Ledger, audit, repo
from ledger.errors import PolicyViolation
from ledger.models import (
    AuditEntry,
    BallotKind,
    IdeaStatus,
    InboxEvent,
    MembershipStatus,
    Person,
    Vote,
    WgRole,
)


def _actions(ledger: Ledger) -> list[str]:
    with ledger.read() as s:
        return list(s.scalars(select(AuditEntry.action).order_by(AuditEntry.seq)))


def test_person_and_identities(ledger: Ledger) -> None:
    with ledger.transaction() as s:
        p = repo.create_person(
            s, handle="wren", actor="operator", display_name="Wren Ashdown", home_platform="discord", at=NOW
        )
        repo.add_identity(
            s, p, platform="discord", external_id=400000000000000009, username="Wren.A", actor="operator", at=NOW
        )
        repo.add_identity(s, p, platform="email", username="wren@example.org", actor="operator")
        # Adding the same account again (any case) is a no-op.
        repo.add_identity(s, p, platform="discord", username="wren.a", actor="operator")
    with ledger.read() as s:
        found = repo.find_person_by_identity(s, platform="discord", username="WREN.A")
        assert found is not None and found.handle == "wren"
        entries = s.scalars(select(AuditEntry).order_by(AuditEntry.seq)).all()
    assert [e.action for e in entries] == ["person.created", "identity.added", "identity.added"]
    # The audit log refers by id and salted hash, never by name, handle or address.
    dump = " ".join(e.payload_json + e.subject + e.actor for e in entries)
    for personal in ("wren", "Wren", "Ashdown", "example.org", "400000000000000009"):
        assert personal not in dump


def test_identity_belongs_to_one_person(ledger: Ledger) -> None:
    with ledger.transaction() as s:
        a = repo.create_person(s, handle="ash", actor="operator")
        b = repo.create_person(s, handle="birch", actor="operator")
        repo.add_identity(s, a, platform="discourse", external_id="77", actor="operator")
    with pytest.raises(Conflict):
        with ledger.transaction() as s:
            repo.add_identity(s, s.get(Person, b.id), platform="discourse", external_id="77", actor="operator")
    with pytest.raises(Conflict):
        with ledger.transaction() as s:
            repo.create_person(s, handle="ash", actor="operator")
    assert _actions(ledger).count("identity.added") == 1


def test_failed_audit_append_leaves_no_change(ledger: Ledger) -> None:
    # A change without its entry must be impossible: when the entry cannot be written
    # (here: an actor that is not a reference), the change goes too.
    with pytest.raises(ValueError):
        with ledger.transaction() as s:
            repo.create_person(s, handle="ghost", actor="Not A Reference")
    with ledger.read() as s:
        assert s.scalar(select(func.count()).select_from(Person)) == 0
        assert audit.count(s) == 0


def test_membership_terms_roles_and_leaving(ledger: Ledger) -> None:
    ids = make_people(ledger, "ada", "bram")
    with ledger.transaction() as s:
        ada = s.get(Person, ids[0])
        m = repo.start_membership(s, ada, actor="operator", starts_at=NOW, ends_at=NOW + timedelta(days=365), at=NOW)
        term = repo.renew(
            s, m, actor="person:1", opted_in_at=NOW + timedelta(days=340), source="discord", term_days=365
        )
        assert term.starts_at == NOW + timedelta(days=365)  # R-TERM-2: no gap, no overlap
        assert term.number == 2 and term.opted_in_at is not None
        repo.assign_wg_role(s, ada, WgRole.CHAIR, actor="operator", assigned_by="wg-vote", starts_at=NOW)
        repo.set_desired_platform_role(
            s, ada, platform="discourse", role="moderator", desired=True, actor="operator", decision_ref="ballot:1"
        )
        repo.record_observed_platform_role(
            s, ada, platform="discourse", role="moderator", observed=True, actor="flow:reconcile"
        )
        repo.record_observed_platform_role(
            s, ada, platform="discourse", role="moderator", observed=True, actor="flow:reconcile"
        )
    with ledger.transaction() as s:
        ada = s.get(Person, ids[0])
        m = repo.open_membership(s, ada)
        repo.end_membership(s, m, status="left", actor="person:1", at=NOW + timedelta(days=400))
    with ledger.read() as s:
        ada = s.get(Person, ids[0])
        assert repo.open_membership(s, ada) is None
        assert repo.current_wg_roles(s) == {}
        assert ada.memberships[-1].status == MembershipStatus.LEFT
        assert audit.verify(s).ok
    actions = _actions(ledger)
    assert actions.count("platform-role.observed") == 1  # the repeat observation is no change
    # Leaving ends the WG roles and un-wants the platform roles in the same transaction.
    assert actions[-3:] == ["membership.ended", "wg-role.ended", "platform-role.desired"]


def test_wg_role_has_one_holder(ledger: Ledger) -> None:
    ids = make_people(ledger, "ada", "bram")
    with ledger.transaction() as s:
        first = repo.assign_wg_role(
            s, s.get(Person, ids[0]), "co_chair", actor="operator", assigned_by="wg-vote", starts_at=NOW
        )
        again = repo.assign_wg_role(s, s.get(Person, ids[0]), "co_chair", actor="operator", assigned_by="wg-vote")
        assert again.id == first.id
        second = repo.assign_wg_role(
            s,
            s.get(Person, ids[1]),
            "co_chair",
            actor="operator",
            assigned_by="wg-vote",
            starts_at=NOW + timedelta(days=1),
        )
        assert first.ends_at == second.starts_at
        assert repo.current_wg_roles(s)[WgRole.CO_CHAIR].person_id == ids[1]


def test_application_flow_and_duplicates(ledger: Ledger) -> None:
    ids = make_people(ledger, "cleo")
    with ledger.transaction() as s:
        cleo = s.get(Person, ids[0])
        ident = repo.add_identity(s, cleo, platform="discourse", username="cleo", actor="operator")
        app = repo.submit_application(
            s,
            cleo,
            actor="person:1",
            source_platform="discourse",
            motivation="I moderate a lot",
            experience="Years of it",
            nominator_handle="someone",
        )
        repo.confirm_application(s, app, ident, actor="person:1")
        repo.confirm_application(s, app, ident, actor="person:1")  # idempotent
        repo.record_eligibility(
            s,
            app,
            outcome="yes",
            ruling="R-ELIG-1",
            reason="active",
            evidence={"discourse": {"post_count": 12, "fraction": 0.5}},
            actor="flow:intake",
        )
    with pytest.raises(PolicyViolation) as info:
        with ledger.transaction() as s:
            repo.submit_application(
                s,
                s.get(Person, ids[0]),
                actor="person:1",
                source_platform="discord",
                motivation="again",
                experience="again",
            )
    assert info.value.ruling == "R-APP-3"
    actions = _actions(ledger)
    assert actions.count("application.submitted") == 1
    assert actions.count("application.confirmed") == 1
    with ledger.read() as s:
        dump = " ".join(s.scalars(select(AuditEntry.payload_json)))
    assert "moderate" not in dump and "someone" not in dump and "post_count" not in dump


def test_ballot_votes_replacement_and_electorate(ledger: Ledger) -> None:
    ids = make_people(ledger, "ada", "bram", "cleo", "dov")
    with ledger.transaction() as s:
        ballot = repo.open_ballot(
            s,
            kind=BallotKind.REMOVAL,
            subject_ref="person:4",
            subject_person=s.get(Person, ids[3]),
            electorate=ids[:3],
            opens_at=NOW,
            closes_at=NOW + timedelta(days=14),
            rule_params={"majority_fraction": 0.5},
            actor="person:1",
            at=NOW,
        )
        bid = ballot.id
        repo.cast_vote(
            s,
            ballot,
            s.get(Person, ids[0]),
            choice="yes",
            source_platform="discord",
            actor="person:1",
            at=NOW + timedelta(hours=1),
        )
        repo.cast_vote(
            s,
            ballot,
            s.get(Person, ids[0]),
            choice="no",
            source_platform="discourse",
            actor="person:1",
            at=NOW + timedelta(hours=2),
        )
    with pytest.raises(PolicyViolation) as info:
        with ledger.transaction() as s:
            repo.cast_vote(
                s,
                s.get(repo.Ballot, bid),
                s.get(Person, ids[3]),
                choice="no",
                source_platform="discord",
                actor="person:4",
                at=NOW + timedelta(hours=3),
            )
    assert info.value.ruling == "R-ELECTORATE"
    with ledger.transaction() as s:
        ballot = s.get(repo.Ballot, bid)
        repo.record_refused_vote(
            s,
            ballot,
            voter_person_id=ids[3],
            ruling="R-ELECTORATE",
            reason_code="not-in-electorate",
            source_platform="discord",
            actor="gateway",
            at=NOW + timedelta(hours=3),
        )
        votes = repo.current_votes(s, ballot)
        assert [(v.voter_person_id, v.choice.value) for v in votes] == [(ids[0], "no")]
        old = s.scalars(select(Vote).where(Vote.replaced_at.is_not(None))).one()
        assert old.replaced_by_id == votes[0].id
        repo.close_ballot(
            s,
            ballot,
            outcome="failed",
            ruling="R-REMOVE",
            tally={"yes": 0, "no": 1, "electorate": 3},
            actor="flow:tally",
            at=NOW + timedelta(days=14),
        )
    with pytest.raises(PolicyViolation) as info:
        with ledger.transaction() as s:
            repo.cast_vote(
                s,
                s.get(repo.Ballot, bid),
                s.get(Person, ids[1]),
                choice="yes",
                source_platform="discord",
                actor="person:2",
                at=NOW + timedelta(days=1),
            )
    assert info.value.ruling == "R-VOTE-EARLY"
    actions = _actions(ledger)
    assert actions[-5:] == ["ballot.opened", "vote.cast", "vote.cast", "vote.refused", "ballot.closed"]


def test_proposals_and_ideas(ledger: Ledger) -> None:
    ids = make_people(ledger, "ada")
    with ledger.transaction() as s:
        p = repo.create_proposal(
            s,
            kind="budget",
            title="Forum hosting",
            amount=120,
            currency="USD",
            purpose="a year of hosting",
            actor="person:1",
            proposed_by=s.get(Person, ids[0]),
        )
        repo.escalate_proposal(
            s, p, actor="flow:escalate", endorsement_ballot_id=None, escalation_ref="slack:1700000000.000100"
        )
        repo.record_board_decision(s, p, decision="approved", decided_by="board-chair", source="slack", actor="gateway")
        idea = repo.add_idea(s, title="Dark mode", source="forum", actor="person:1", author=s.get(Person, ids[0]))
        repo.set_idea_status(s, idea, "triaged", actor="person:1", needs_board=False, platform="discourse")
        repo.set_idea_status(s, idea, IdeaStatus.ACCEPTED, actor="person:1")
        assert [h.to_status.value for h in idea.history] == ["new", "triaged", "accepted"]
    assert _actions(ledger)[-6:] == [
        "proposal.created",
        "proposal.escalated",
        "proposal.decided",
        "idea.added",
        "idea.status",
        "idea.status",
    ]


def test_inbox_dedupes(ledger: Ledger) -> None:
    with ledger.transaction() as s:
        first, created = repo.inbox_put(
            s, dedupe_key="discord:interaction:1", source="discord", kind="interaction", payload={"a": 1}
        )
        assert created
    with ledger.transaction() as s:
        again, created = repo.inbox_put(
            s, dedupe_key="discord:interaction:1", source="discord", kind="interaction", payload={"a": 2}
        )
        assert not created and again.id == first.id and again.payload == {"a": 1}
        assert [e.id for e in repo.inbox_pending(s)] == [first.id]
        repo.inbox_mark_processed(s, again, actor="flow:intake", result_ref="application:1")
        assert repo.inbox_pending(s) == []
    assert _actions(ledger) == ["inbox.received", "inbox.processed"]


def test_a_receipt_stored_without_its_entry_is_logged_once_by_whoever_takes_the_event(ledger: Ledger) -> None:
    """The gateway stores with ``record_receipt=False`` (no place in the audit chain, so no
    writers' lock); the first claim, processing or retry appends ``inbox.received``, once, as
    the gateway's at the receipt's time; an event stored with its entry never gets a second."""
    events = {}
    for name, record in (("claimed", False), ("processed", False), ("retried", False), ("logged", True)):
        with ledger.transaction(lock=False) as s:
            row, _ = repo.inbox_put(
                s,
                dedupe_key=f"discord:interaction:{name}",
                source="discord",
                kind="interaction",
                payload={"n": name},
                received_at=NOW,
                raw=b'{"n":1}',
                record_receipt=record,
            )
            events[name] = row.id
    assert _actions(ledger) == ["inbox.received"]  # only the one stored with its entry
    later = NOW + timedelta(seconds=5)
    with ledger.transaction() as s:
        for name in ("claimed", "logged"):
            assert repo.inbox_claim(s, events[name], actor="workers", at=later) is not None
            assert repo.inbox_claim(s, events[name], actor="workers", stale_before=later + timedelta(1), at=later)
        repo.inbox_mark_processed(
            s, s.get(InboxEvent, events["processed"]), actor="flow:intake", result_ref="x", at=later
        )
        repo.inbox_retry(s, events["retried"], actor="operator", at=later)
        repo.inbox_retry(s, events["retried"], actor="operator", at=later)
    with ledger.read() as s:
        received = list(s.scalars(select(AuditEntry).where(AuditEntry.action == "inbox.received")))
    assert sorted(e.subject for e in received) == sorted(f"inbox:{i}" for i in events.values())
    late = [e for e in received if e.subject != f"inbox:{events['logged']}"]
    assert {(e.actor, e.at) for e in late} == {("gateway", NOW)}
    assert all(json.loads(e.payload_json)["raw"] == hashlib.sha256(b'{"n":1}').hexdigest() for e in late)
    with ledger.read() as s:
        assert audit.verify(s).ok


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_store_without_the_lock_does_not_wait_for_a_writer(ledger: Ledger) -> None:
    """While a writer holds the writers' lock (a handler's transaction), the gateway's store
    goes through: its acknowledgement never queues behind the handlers (issue 19)."""
    with ledger.transaction() as held:
        held.execute(select(1))  # the transaction begins: the advisory lock is taken
        with ThreadPoolExecutor(1) as pool:
            stored = pool.submit(
                ledger.run,
                lambda s: (
                    repo.inbox_put(
                        s,
                        dedupe_key="discord:interaction:l",
                        source="discord",
                        kind="i",
                        payload={},
                        record_receipt=False,
                    )[0].id
                ),
                lock=False,
            )
            event_id = stored.result(timeout=15)  # with the lock it would wait for this block
        with ledger.read() as s:
            assert s.get(InboxEvent, event_id) is not None


def test_inbox_stalled_counts_unclaimed_events_only_when_the_workers_pull(ledger: Ledger) -> None:
    """The stall watch of `up`: an event waiting ``after`` while nothing was processed. A pump
    that pulls (`up`'s default) may be stuck before it claims, so then unclaimed events count."""
    with ledger.transaction() as s:
        event, _ = repo.inbox_put(
            s, dedupe_key="discord:interaction:stall", source="discord", kind="interaction", payload={}, received_at=NOW
        )
    later = NOW + timedelta(minutes=10)
    with ledger.read() as s:
        assert repo.inbox_stalled(s, now=later, after=timedelta(minutes=5)) == []
        assert repo.inbox_stalled(s, now=later, after=timedelta(minutes=5), pulled=True) == [event.id]
        assert repo.inbox_stalled(s, now=NOW + timedelta(minutes=1), after=timedelta(minutes=5), pulled=True) == []


def test_inbox_dedupes_across_processes(ledger_url: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    workers = 4
    barrier, results = ctx.Barrier(workers), ctx.Queue()
    procs = [
        ctx.Process(target=ledger_workers.put_inbox, args=(ledger_url, "slack:action:42", barrier, results))
        for _ in range(workers)
    ]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert all(isinstance(o, tuple) for o in outcomes), outcomes
    assert len({event_id for event_id, _ in outcomes}) == 1
    assert sum(created for _, created in outcomes) == 1
    lg = Ledger(ledger_url)
    with lg.read() as s:
        assert s.scalar(select(func.count()).select_from(InboxEvent)) == 1
        assert audit.verify(s).count == 1
    lg.dispose()


def test_timestamps_are_utc_aware(ledger: Ledger) -> None:
    berlin = timezone(timedelta(hours=2))
    with ledger.transaction() as s:
        p = repo.create_person(s, handle="tz", actor="operator", at=datetime(2025, 6, 1, 14, 0, tzinfo=berlin))
        pid = p.id
    with ledger.read() as s:
        p = s.get(Person, pid)
        assert p.created_at == datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
        assert p.created_at.utcoffset() == timedelta(0)
    with pytest.raises(ValueError, match="timezone-aware"):
        with ledger.transaction() as s:
            repo.create_person(s, handle="naive", actor="operator", at=datetime(2025, 6, 1, 14, 0))
