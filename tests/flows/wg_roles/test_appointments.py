"""WG role appointments end to end (R-ROLE-APPOINT, R-ROLE-CHAIR, R-ROLE-BOARD, R-ROLE-COC)
against the Discord, Discourse and Slack sandboxes on 127.0.0.1, the real gateway, the SMTP
sandbox and the session's Prefect server."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import httpx
from sqlalchemy import select
from typer.testing import CliRunner

from charterflow import wg_cli
from flows import inbox
from flows.kit import context
from flows.membership import ballot as ballots
from flows.membership.ballot import close_due_ballots
from flows.wg_roles.ballot import appoint_by_ballot
from flows.wg_roles.board import ask_board
from flows.wg_roles.coc import name_coc_liaison
from flows.wg_roles.vacancy import report_vacancies
from ledger import repo
from ledger.models import AuditEntry, InboxEvent, Platform, WgRole
from ledger.models_appointments import WgAppointment
from tests.support.board import OSSIAN, PELLA, WREN, Board
from tests.support.cli import cli_with
from tests.support.membership import CONFIRM_SECRET, NOW, World, press_vote
from tests.support.roles import followups

COC_CONTACT = "coc-contact@example.org"


def _set_roles(world: World, *, homes: dict[str, str], roles: dict[str, str]) -> None:
    with world.ledger.transaction() as session:
        for handle, home in homes.items():
            repo.update_person(
                session, repo.get_person(session, handle), actor="operator", home_platform=Platform(home), at=NOW
            )
        for role, handle in roles.items():
            repo.assign_wg_role(
                session, repo.get_person(session, handle), role, actor="operator", assigned_by="roster-import", at=NOW
            )


def _holders(world: World) -> dict[str, str]:
    with world.ledger.read() as session:
        return {
            role.value: repo.get_person(session, a.person_id).handle
            for role, a in repo.current_wg_roles(session).items()
        }


def _wg_text(world: World) -> str:
    return json.dumps(world.discord_state()) + json.dumps(world.discourse_state())


def _actions(world: World, subject: str) -> list[str]:
    with world.ledger.read() as session:
        return [
            e.action
            for e in session.scalars(select(AuditEntry).where(AuditEntry.subject == subject).order_by(AuditEntry.seq))
        ]


def test_co_chair_by_ballot_with_the_r_role_chair_warning(world: World):
    """R-ROLE-APPOINT + R-ROLE-CHAIR: both chairs from Discord is a warning, shown to the
    proposer and on the ballot; the ballot passes, the Co-Chair is recorded, then announced."""
    _set_roles(world, homes={"avery_quill": "discord", "bram_tolliver": "discord"}, roles={"chair": "avery_quill"})
    out = appoint_by_ballot(role="co_chair", nominee="bram_tolliver", proposed_by="cleo_marsh", now=NOW)
    assert out["status"] == "voting" and out["ruling"] == "R-ROLE-APPOINT"
    assert [w.split(":")[0] for w in out["warnings"]] == ["R-ROLE-CHAIR"]
    assert "Warning R-ROLE-CHAIR" in out["explanation"] and "both come from discord" in out["explanation"]
    assert out["platforms"] == ["discord", "discourse"] and out["electorate"] == 7
    assert "Appoint bram_tolliver as Co-Chair" in _wg_text(world)
    assert "both come from discord" in _wg_text(world), "the voters see the warning"
    # Asked again while it is open: the same ballot, nothing posted twice.
    before = world.writes()
    again = appoint_by_ballot(
        role="co_chair", nominee="bram_tolliver", proposed_by="cleo_marsh", now=NOW + timedelta(minutes=1)
    )
    assert again["ballot"] == out["ballot"] and world.writes() == before
    assert _holders(world) == {"chair": "avery_quill"}

    ref = ballots.refs(context(NOW), out["ballot"])["discord"]
    for name in ("avery_quill", "cleo_marsh", "dario_fenwick", "felix_oakes"):
        assert press_vote(world, ref, name, 0, now=NOW + timedelta(minutes=5)) == f"ballot:{out['ballot']}:vote"
    close_due_ballots(now=NOW + timedelta(minutes=10))
    with world.ledger.read() as session:
        row = session.get(WgAppointment, out["appointment"])
        assert (row.status, row.ruling) == ("appointed", None)
    assert _holders(world) == {"chair": "avery_quill", "co_chair": "bram_tolliver"}
    text = _wg_text(world)
    assert "bram_tolliver is now the working group's Co-Chair" in text
    actions = _actions(world, f"wg-appointment:{out['appointment']}")
    assert actions == ["wg-appointment.requested", "wg-appointment.voting", "wg-appointment.appointed"]
    with world.ledger.read() as session:
        row = session.get(WgAppointment, out["appointment"])
        assert row.status == "appointed" and row.rulings == {"warnings": ["R-ROLE-CHAIR"]}
        assigned = repo.current_wg_roles(session)[WgRole.CO_CHAIR]
        assert assigned.assigned_by == f"ballot:{out['ballot']}"
    # The closer again: nothing twice.
    before = world.writes()
    close_due_ballots(now=NOW + timedelta(minutes=20))
    assert world.writes() == before


def test_a_passed_ballot_refused_on_the_recheck_is_told_to_the_wg(world: World):
    """R-ROLE-APPOINT: the nominee became Chair while the Co-Chair ballot was open; the passed
    ballot is refused by R-ROLE-CHAIR when it is decided, and the WG, who saw it pass, is told."""
    _set_roles(world, homes={}, roles={"chair": "avery_quill"})
    out = appoint_by_ballot(role="co_chair", nominee="bram_tolliver", proposed_by="cleo_marsh", now=NOW)
    _set_roles(world, homes={}, roles={"chair": "bram_tolliver"})
    ref = ballots.refs(context(NOW), out["ballot"])["discord"]
    for name in ("avery_quill", "cleo_marsh", "dario_fenwick", "felix_oakes"):
        press_vote(world, ref, name, 0, now=NOW + timedelta(minutes=5))
    close_due_ballots(now=NOW + timedelta(minutes=10))
    with world.ledger.read() as session:
        assert session.get_one(WgAppointment, out["appointment"]).status == "refused"
    assert _holders(world) == {"chair": "bram_tolliver"}
    text = _wg_text(world)
    assert "bram_tolliver was not appointed Co-Chair: refused by R-ROLE-CHAIR" in text
    assert "cannot be both Chair and Co-Chair" in text
    before = world.writes()
    close_due_ballots(now=NOW + timedelta(minutes=20))
    assert world.writes() == before, "told once"


def test_a_hard_rule_is_refused_before_any_ballot_or_announcement(world: World):
    """R-ROLE-CHAIR (hard part): the Chair cannot also be Co-Chair; refused with the rule,
    recorded, nothing posted anywhere."""
    _set_roles(world, homes={}, roles={"chair": "avery_quill"})
    before = world.writes()
    out = appoint_by_ballot(role="co_chair", nominee="avery_quill", proposed_by="cleo_marsh", now=NOW)
    assert out["status"] == "refused" and out["ruling"] == "R-ROLE-CHAIR"
    assert out["explanation"].startswith("Refused by R-ROLE-CHAIR")
    assert world.writes() == before
    assert _actions(world, f"wg-appointment:{out['appointment']}") == ["wg-appointment.refused"]


def test_board_liaison_refused_when_not_on_the_board_list(board: Board):
    """R-ROLE-BOARD: a nominee not on the Board list is refused before the Board is asked; a
    click from someone not on the list is refused privately; Wren's Approve appoints."""
    world = board.world
    out = ask_board(nominee="ossian_bright", requested_by="cleo_marsh", now=NOW)
    assert out["status"] == "refused" and out["ruling"] == "R-ROLE-BOARD"
    assert "not on the list of active DSF Board members" in out["explanation"]
    assert board.board_messages() == [], "nothing posted to the Board"

    out = ask_board(nominee="pella_marchetti", requested_by="cleo_marsh", now=NOW)
    assert out["status"] == "pending"
    [message] = board.board_messages()
    assert "Name pella_marchetti as the WG's Board Liaison" in json.dumps(message["blocks"])
    ts = message["ts"]
    late = board.click(user=PELLA, ts=ts, action="reject")  # pressed after the decision

    event = board.deliver(board.click(user=OSSIAN, ts=ts, action="approve"))
    assert inbox.handle_event(world.ledger, event) == f"refused:not-on-board-list:wg-role:{out['appointment']}"
    [reply] = board.slack_state()["response_posts"]
    assert reply["to_user"] == OSSIAN and reply["response_type"] == "ephemeral"
    assert "board_liaison" not in _holders(world)

    event = board.deliver(board.click(user=WREN, ts=ts, action="approve"))
    assert inbox.handle_event(world.ledger, event) == f"wg-role:{out['appointment']}:appointed"
    assert _holders(world)["board_liaison"] == "pella_marchetti"
    [message] = board.board_messages()
    assert "Approved" in json.dumps(message["blocks"]) and f"<@{WREN}>" in json.dumps(message["blocks"])
    assert "pella_marchetti is now the working group's Board Liaison" in _wg_text(world)
    # A late click: refused kindly, nothing changed.
    event = board.deliver(late)
    assert inbox.handle_event(world.ledger, event) == f"refused:appointed:wg-role:{out['appointment']}"
    assert _holders(world)["board_liaison"] == "pella_marchetti"


def test_coc_liaison_confirmed_through_the_signed_link(world: World, gateway, monkeypatch):
    """R-ROLE-COC + R-ROLE-APPOINT: the CoC WG's choice is confirmed by its contact through a
    signed link; a GET acts on nothing, the button once; a replayed link does nothing more; a
    tampered one is refused and stores nothing."""
    monkeypatch.setenv("CHARTERFLOW_WG_ROLES_COC_CONTACT", COC_CONTACT)
    monkeypatch.setenv("CHARTERFLOW_MEMBERSHIP_CONFIRM_SECRET", CONFIRM_SECRET)
    out = name_coc_liaison(nominee="dario_fenwick", now=NOW)
    assert out["status"] == "pending"
    [mail] = world.mails(COC_CONTACT)
    token = re.search(r"/wg-role/(r\.\d+\.\d+\.[0-9a-f]{32})", json.dumps(mail)).group(1)
    url = f"{gateway.url}/wg-role/{token}"
    assert "CoC WG Liaison" not in _wg_text(world), "not announced before the confirmation"

    def events() -> list[int]:
        with world.ledger.read() as session:
            return list(session.scalars(select(InboxEvent.id).where(InboxEvent.route == "wg-role-confirm")))

    tampered = token[:-1] + ("0" if token[-1] != "0" else "1")
    assert httpx.get(f"{gateway.url}/wg-role/{tampered}", timeout=10).status_code == 400
    assert httpx.post(f"{gateway.url}/wg-role/{tampered}", timeout=10).status_code == 400
    assert events() == []
    page = httpx.get(url, timeout=10)
    assert page.status_code == 200 and "<button" in page.text and events() == []

    assert "received" in httpx.post(url, timeout=10).text
    [event] = events()
    assert inbox.handle_event(world.ledger, event) == f"wg-appointment:{out['appointment']}:appointed"
    assert _holders(world)["coc_liaison"] == "dario_fenwick"
    assert "dario_fenwick is now the working group's CoC WG Liaison" in _wg_text(world)
    with world.ledger.read() as session:
        assert repo.current_wg_roles(session)[WgRole.COC_LIAISON].assigned_by == "coc-wg"

    before = world.writes()
    assert "Already confirmed" in httpx.post(url, timeout=10).text
    assert events() == [event], "a replayed link stores nothing new"
    # Even a second event carrying the same token acts once only.
    with world.ledger.transaction() as session:
        row, _ = repo.inbox_put(
            session,
            dedupe_key="form:wg-role:replayed",
            source="form",
            kind="wg_role_confirm",
            route="wg-role-confirm",
            payload={"data": {"token": token}, "attributes": {}, "actor": None},
            received_at=NOW,
        )
        replay = row.id
    assert inbox.handle_event(world.ledger, replay) == f"wg-appointment:{out['appointment']}:already-appointed"
    assert world.writes() == before
    assert _actions(world, f"wg-appointment:{out['appointment']}") == [
        "wg-appointment.requested",
        "wg-appointment.appointed",
    ]


def test_vacant_roles_reported_monthly_until_filled(world: World):
    """R-ROLE-APPOINT: the initial charter leaves the Co-Chair and the SC Liaison open; they are
    reported to the WG once a month until filled."""
    _set_roles(
        world, homes={}, roles={"chair": "avery_quill", "coc_liaison": "dario_fenwick", "board_liaison": "cleo_marsh"}
    )
    out = report_vacancies(now=NOW)
    assert out["vacant"] == ["co_chair", "sc_liaison"] and out["posted"] == ["discord", "discourse"]
    assert "Co-Chair: vacant; appointed by a WG ballot" in _wg_text(world)
    before = world.writes()
    report_vacancies(now=NOW + timedelta(days=1))
    assert world.writes() == before, "once a month"
    later = report_vacancies(now=NOW + timedelta(days=32))
    assert later["posted"] == ["discord", "discourse"] and world.writes() != before
    _set_roles(world, homes={}, roles={"co_chair": "bram_tolliver", "sc_liaison": "hana_pike"})
    assert report_vacancies(now=NOW + timedelta(days=64))["vacant"] == []


def test_wg_roles_cli_shows_holders_vacancies_and_requests(world: World):
    _set_roles(world, homes={}, roles={"chair": "avery_quill"})
    appoint_by_ballot(role="co_chair", nominee="bram_tolliver", proposed_by="cleo_marsh", now=NOW)
    runner = CliRunner()
    result = runner.invoke(cli_with(wg_cli.app), ["wg", "roles"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[1].split()[:3] == ["Chair", "avery_quill", NOW.date().isoformat()]
    assert "Co-Chair        (vacant)" in result.output
    assert "SC Liaison      (vacant, optional)" in result.output
    assert "#1 Co-Chair: bram_tolliver (voting, via ballot, ballot 1)" in result.output
    assert lines[-1] == "vacant: co_chair, coc_liaison, board_liaison, sc_liaison"
    refused = runner.invoke(cli_with(wg_cli.app), ["wg", "appoint", "co-chair", "avery_quill", "--by", "cleo_marsh"])
    assert refused.exit_code == 2 and "Refused by R-ROLE-CHAIR" in refused.output
    bad = runner.invoke(cli_with(wg_cli.app), ["wg", "appoint", "treasurer", "avery_quill"])
    assert bad.exit_code == 2 and "treasurer" in bad.output


def test_discord_appoint_answers_privately_with_the_explanation(world: World, gateway):
    """/appoint: the proposer hears the R-ROLE-* explanation in an ephemeral answer: a warning
    with the ballot, or the refusal with its rule (and then nothing is posted)."""
    _set_roles(world, homes={"avery_quill": "discord", "bram_tolliver": "discord"}, roles={"chair": "avery_quill"})

    def appoint(user: str, **options: str) -> str:
        world.discord_sb.command(world.discord_url, user=user, name="appoint", options=options)
        with world.ledger.read() as session:
            event = session.scalars(
                select(InboxEvent.id).where(InboxEvent.route == "wg-role-appoint").order_by(InboxEvent.id.desc())
            ).first()
        return inbox.handle_event(world.ledger, event)

    before = world.writes()
    assert re.fullmatch(r"wg-appointment:\d+:refused", appoint("cleo_marsh", role="co_chair", member="avery_quill"))
    refused = [a for a in followups(world) if a.startswith("Refused by R-ROLE-CHAIR")]
    assert refused and "Nothing was announced" in refused[0]
    assert "Appoint avery_quill" not in _wg_text(world)
    assert {k: v for k, v in world.writes().items() if "interactions" not in k and "webhooks" not in k} == {
        k: v for k, v in before.items() if "interactions" not in k and "webhooks" not in k
    }

    result = appoint("cleo_marsh", role="co_chair", member="bram_tolliver")
    assert re.fullmatch(r"wg-appointment:\d+:voting", result)
    answer = next(a for a in followups(world) if "bram_tolliver as Co-Chair" in a)
    assert "Warning R-ROLE-CHAIR" in answer and "is open on discord, discourse" in answer
    assert "Appoint bram_tolliver as Co-Chair" in _wg_text(world)
