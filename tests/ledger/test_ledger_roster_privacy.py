"""Roster import/export (idempotent, checked by the rules) and R-PRIVACY-2 export/erasure."""

from __future__ import annotations

from pathlib import Path

import pytest
from ledger_helpers import NOW
from sqlalchemy import func, select

from ledger import Ledger, audit, repo
from ledger import ideas as backlog
from ledger.errors import ConfigError, PolicyViolation
from ledger.migrate import upgrade
from ledger.models import Application, AuditEntry, Identity, Membership, Person, WgRole
from ledger.models_moderation import ModerationAction
from ledger.models_roles import RoleDriftReport
from ledger.privacy import erase_person, export_person
from ledger.roster import export_roster, import_roster, load_roster, parse_roster
from rules import default_charter

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "roster.toml"
CHARTER = default_charter()
# The people the shipped charter names must never appear in examples or tests.
CHARTER_NAMES = ("Andrew Miller", "Tom Carrick", "Dan Ryan")


def _import(ledger: Ledger, text: str, **kw: object):
    roster = parse_roster(text, source="roster.toml", charter=CHARTER, **kw)
    with ledger.transaction() as s:
        return import_roster(s, roster, charter=CHARTER, actor="operator", at=NOW)


def _count(ledger: Ledger, model: type) -> int:
    with ledger.read() as s:
        return s.scalar(select(func.count()).select_from(model))


def test_example_roster_is_fictional() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    for name in CHARTER_NAMES:
        assert name not in text and name.split()[1] not in text


def test_import_twice_changes_nothing(ledger: Ledger) -> None:
    first = _import(ledger, EXAMPLE.read_text())
    assert len(first.created) == 6 and first.changes > 0
    with ledger.read() as s:
        before = export_roster(s)
        entries = audit.count(s)
    second = _import(ledger, EXAMPLE.read_text())
    assert second.changes == 0 and second.created == [] and second.updated == []
    with ledger.read() as s:
        assert export_roster(s) == before
        assert audit.count(s) == entries
        roles = repo.current_wg_roles(s)
        assert {r.value for r in roles} == {r.value for r in WgRole}
        assert s.get(Person, roles[WgRole.COC_LIAISON].person_id).handle == "cosima"
        assert roles[WgRole.COC_LIAISON].assigned_by == "coc-wg"  # R-ROLE-COC: who said so
        fenna = repo.get_person(s, "fenna")
        assert fenna.memberships[-1].status.value == "left"
        assert len(fenna.memberships[-1].terms) == 2
        assert audit.verify(s).ok


def test_export_round_trips(ledger: Ledger, tmp_path: Path) -> None:
    _import(ledger, EXAMPLE.read_text())
    with ledger.read() as s:
        exported = export_roster(s)
    for name in ("ada", "ada@example.org", "400000000000000002", "board_members"):
        assert name in exported
    # The export imports into the same ledger as "no change" ...
    assert _import(ledger, exported).changes == 0


def test_export_imports_into_an_empty_ledger_identically(ledger: Ledger, db_url: str) -> None:
    _import(ledger, EXAMPLE.read_text())
    with ledger.read() as s:
        exported = export_roster(s)

    other = Ledger(db_url)
    upgrade(other)
    _import(other, exported)
    with other.read() as s:
        assert export_roster(s) == exported
    other.dispose()


def test_hard_rule_violation_writes_nothing(ledger: Ledger) -> None:
    text = EXAMPLE.read_text().replace('board_members = ["hollis", ', "board_members = [")
    with pytest.raises(PolicyViolation) as info:
        _import(ledger, text)
    assert info.value.ruling == "R-ROLE-BOARD"
    assert "hollis" in str(info.value)
    assert _count(ledger, Person) == 0 and _count(ledger, AuditEntry) == 0


def test_board_liaison_cannot_be_coc_liaison(ledger: Ledger) -> None:
    text = EXAMPLE.read_text().replace('coc_liaison = { handle = "cosima"', 'coc_liaison = { handle = "hollis"')
    with pytest.raises(PolicyViolation) as info:
        _import(ledger, text)
    assert info.value.ruling == "R-ROLE-BOARD"
    assert _count(ledger, Person) == 0


def test_chair_recommendation_is_a_warning(ledger: Ledger) -> None:
    # Chair and Co-Chair from the same platform: R-ROLE-CHAIR warns, the import goes ahead.
    text = EXAMPLE.read_text().replace('co_chair = { handle = "bram"', 'co_chair = { handle = "gideon"')
    report = _import(ledger, text)
    assert any(w.startswith("R-ROLE-CHAIR") for w in report.warnings)
    assert _count(ledger, Person) == 6


def test_list_files_relative_to_the_roster(ledger: Ledger, tmp_path: Path) -> None:
    (tmp_path / "board.toml").write_text('members = [{ handle = "hollis" }]\n')
    (tmp_path / "sc.csv").write_text("handle,email\ngideon,g@example.org\n")
    text = (
        EXAMPLE.read_text()
        .replace('board_members = ["hollis", "marisol-board", "teodor-board"]', 'board_members_file = "board.toml"')
        .replace('steering_council = ["gideon", "yusra-sc", "pim-sc"]', 'steering_council_file = "sc.csv"')
    )
    path = tmp_path / "roster.toml"
    path.write_text(text)
    roster = load_roster(path, charter=CHARTER)
    assert roster.lists == {"board_members": ("hollis",), "steering_council": ("gideon",)}
    with ledger.transaction() as s:
        import_roster(s, roster, charter=CHARTER, actor="operator", at=NOW)


@pytest.mark.parametrize(
    "change, message",
    [
        (('handle = "bram"', 'handle = "ada"'), "appears twice"),
        (('home_platform = "discord"', 'home_platform = "myspace"'), "home_platform"),
        (("start = 2025-02-01 }", "start = 2025-02-01T10:00:00 }"), "time zone"),
        (('username = "cosima" }', 'username = "BRAM.T" }'), "already given"),
        (("[roles]", '[roles]\nwizard = "ada"'), "unknown role"),
        (('sc_liaison = { handle = "gideon"', 'sc_liaison = { handle = "nobody"'), "not a person"),
    ],
)
def test_bad_files_are_refused_with_the_field(ledger: Ledger, change: tuple[str, str], message: str) -> None:
    text = EXAMPLE.read_text().replace(*change, 1)
    with pytest.raises(ConfigError, match=message):
        _import(ledger, text)
    assert _count(ledger, Person) == 0


def test_changed_file_updates_only_what_changed(ledger: Ledger) -> None:
    _import(ledger, EXAMPLE.read_text())
    text = EXAMPLE.read_text().replace('username = "bram.t"', 'username = "bram.tollervey"')
    report = _import(ledger, text)
    assert report.updated == ["bram"] and report.changes == 1
    with ledger.read() as s:
        assert repo.find_person_by_identity(s, platform="discord", username="bram.tollervey").handle == "bram"


# --- R-PRIVACY-2 -----------------------------------------------------------------------------


def _applicant(ledger: Ledger) -> int:
    with ledger.transaction() as s:
        p = repo.create_person(
            s, handle="juniper", actor="operator", display_name="Juniper Kestrelby", home_platform="discourse"
        )
        ident = repo.add_identity(
            s, p, platform="discourse", username="juniper_k", external_id="4815162342", actor="operator"
        )
        repo.add_identity(s, p, platform="email", username="juniper@example.net", actor="operator")
        app = repo.submit_application(
            s,
            p,
            actor="person:1",
            source_platform="discourse",
            motivation="I love tidy forums",
            experience="Ten years of moderating a gardening board",
            nominator_handle="quentin",
        )
        repo.confirm_application(s, app, ident, actor=f"person:{p.id}")
        repo.record_eligibility(
            s,
            app,
            outcome="yes",
            ruling="R-ELIG-1",
            reason="active",
            evidence={"discourse": {"post_count": 42}},
            actor="flow:intake",
        )
        event, _ = repo.inbox_put(
            s,
            dedupe_key="form:1",
            source="form",
            kind="application",
            payload={"email": "juniper@example.net"},
            raw=b'{"email": "juniper@example.net"}',
        )
        repo.inbox_mark_processed(s, event, actor="flow:intake", result_ref=f"application:{app.id}", person=p)
        return p.id


def test_person_export_holds_everything(ledger: Ledger) -> None:
    pid = _applicant(ledger)
    with ledger.read() as s:
        data = export_person(s, s.get(Person, pid))
    assert data["person"]["display_name"] == "Juniper Kestrelby"
    assert {i["platform"] for i in data["identities"]} == {"discourse", "email"}
    assert data["applications"][0]["motivation"] == "I love tidy forums"
    assert data["applications"][0]["eligibility"][0]["evidence"]["discourse"]["post_count"] == 42
    assert data["inbox_events"][0]["payload"] == {"email": "juniper@example.net"}
    assert data["inbox_events"][0]["raw"] == '{"email": "juniper@example.net"}'  # the body as received
    assert {e["action"] for e in data["audit_entries"]} >= {"person.created", "application.submitted"}
    assert "salt" not in data["person"]


def test_erasure_removes_personal_data_keeps_decisions_and_verifies(ledger: Ledger) -> None:
    pid = _applicant(ledger)
    with ledger.transaction() as s:
        erase_person(s, s.get(Person, pid), reason="asked on 2025-05-01", actor="operator")
    with ledger.read() as s:
        person = s.get(Person, pid)
        data = export_person(s, person)
        app = s.scalars(select(Application)).one()
        result = audit.verify(s)
        last = s.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc())).first()
    assert result.ok, result.message()
    assert last.action == "person.erased"
    assert person.handle == f"erased-{pid}" and person.display_name is None
    assert person.salt is None and person.erased_at is not None
    assert app.status.value == "withdrawn" and app.motivation is None
    assert app.answers_erased_at is not None
    flat = repr(data)
    for personal in (
        "Juniper",
        "juniper",
        "tidy forums",
        "gardening",
        "quentin",
        "4815162342",  # long: a 4-digit id can occur in a hash by chance
        "example.net",
    ):
        assert personal not in flat
    assert data["applications"][0]["eligibility"][0]["outcome"] == "yes"  # decision kept
    assert data["erasures"][0]["reason"] == "asked on 2025-05-01"


def test_erasure_refused_for_an_active_member(ledger: Ledger) -> None:
    _import(ledger, EXAMPLE.read_text())
    with pytest.raises(PolicyViolation) as info:
        with ledger.transaction() as s:
            erase_person(s, repo.get_person(s, "bram"), reason="asked", actor="operator")
    assert info.value.ruling == "R-PRIVACY-2"
    with ledger.read() as s:
        assert (
            s.scalar(
                select(func.count())
                .select_from(Identity)
                .where(Identity.username.is_(None), Identity.external_id.is_(None))
            )
            == 0
        )
        assert s.scalar(select(func.count()).select_from(Membership)) == 6


def test_erasure_drops_the_notes_a_person_wrote_on_ideas(ledger: Ledger) -> None:
    pid = _applicant(ledger)
    with ledger.transaction() as s:
        idea, _ = backlog.file_idea(
            s, title="A quieter #general", source="operator", source_key="operator:1", actor="operator"
        )
        backlog.change_status(s, idea, "triaged", actor="operator", at=NOW)
        backlog.change_status(
            s, idea, "accepted", actor=f"person:{pid}", note="juniper thinks it helps newcomers", at=NOW
        )
    with ledger.read() as s:
        assert export_person(s, s.get(Person, pid))["idea_status_changes"][0]["note"].startswith("juniper")
    with ledger.transaction() as s:
        erase_person(s, s.get(Person, pid), reason="asked", actor="operator")
    with ledger.read() as s:
        changes = export_person(s, s.get(Person, pid))["idea_status_changes"]
        assert audit.verify(s).ok
    assert [(c["to_status"], c["note"]) for c in changes] == [("accepted", None)]  # decision kept


def test_erasure_clears_the_moderation_log_about_the_person(ledger: Ledger) -> None:
    pid = _applicant(ledger)  # Forum account 4815162342
    with ledger.transaction() as s:
        s.add(
            ModerationAction(
                platform="discourse",
                entry_id="77",
                action="suspend",
                platform_action="suspend_user",
                target_platform_id="4815162342",
                target_username="juniper_k",
                reason="juniper_k spammed twice",
                occurred_at=NOW,
                recorded_at=NOW,
                raw={"target": "juniper_k"},
            )
        )
    with ledger.transaction() as s:
        erase_person(s, s.get(Person, pid), reason="asked", actor="operator")
    with ledger.read() as s:
        row = s.scalars(select(ModerationAction)).one()
        assert audit.verify(s).ok
    assert (row.action, row.entry_id) == ("suspend", "77")  # the decision and its key are kept
    assert "juniper" not in repr((row.target_username, row.reason, row.raw, row.target_platform_id))


def test_erasure_replaces_the_handle_in_drift_reports(ledger: Ledger) -> None:
    pid = _applicant(ledger)
    with ledger.transaction() as s:
        s.add(
            RoleDriftReport(
                status="drift",
                fingerprint="f1",
                reported_at=NOW,
                findings=1,
                summary={"lines": ["juniper: moderator on discord, not in the ledger"]},
            )
        )
    with ledger.transaction() as s:
        erase_person(s, s.get(Person, pid), reason="asked", actor="operator")
    with ledger.read() as s:
        report = s.scalars(select(RoleDriftReport)).one()
    assert report.summary == {"lines": [f"erased-{pid}: moderator on discord, not in the ledger"]}
