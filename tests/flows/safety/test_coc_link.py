"""The CoC Liaison records the CoC WG's outcome from any platform (R-SAFE-2, issue 22): where the
referral comes without buttons (the Forum's private message, the CoC WG's e-mail) it carries a
signed, expiring, single-use link to the gateway's page ``/coc-outcome/<token>``. Real parts: the
gateway served on loopback, the Forum and Discord sandboxes, an SMTP server on loopback, Prefect
and the ledger."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from connectors.email import SmtpMailer, SmtpSandbox, SmtpSettings
from flows import inbox
from flows.safety.links import PATH, make_link_token
from gateway.app import create_app
from gateway.dispatch import StoreOnlyDispatcher
from ledger import repo
from ledger.models import AuditEntry, InboxEvent
from tests.flows.safety.test_reports import _form_report, dms_to, forum_pms_to, only_report, room
from tests.support.gateway import gateway_settings
from tests.support.moderation import NOW, World
from tests.support.net import LoopbackServer

SECRET = "test-only-secret"  # the moderation world's confirmation secret
LINK = re.compile(r"http://gateway\.test/coc-outcome/(s\.\d+\.\d+\.\d+\.[0-9a-f]{32})")
PRIVATE = ("threatening", "rowan_vale", "cleo_marsh", "avery_quill")


@pytest.fixture
def gateway(world: World) -> Iterator[str]:
    """The real gateway app on loopback (store-only dispatch: the test runs each stored event as
    the task worker does), signing links with the world's secret."""
    app = create_app(
        settings=gateway_settings(),
        ledger=world.ledger,
        dispatcher=StoreOnlyDispatcher(),
        charter=world.platforms.charter,
        confirm_secret=SECRET,
    )
    with LoopbackServer(app) as server:
        yield server.url


@pytest.fixture
def mailbox(world: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The CoC WG's address configured, its mail delivered to an SMTP server on loopback."""
    monkeypatch.setenv("CHARTERFLOW_SAFETY_COC_EMAIL", "coc-wg@example.org")
    with SmtpSandbox() as box:
        world.platforms.mailer = SmtpMailer(
            settings=SmtpSettings(_env_file=None, host=box.host, port=box.port, tls="none")
        )
        try:
            yield box
        finally:
            world.platforms.mailer = None


def link_events(world: World) -> list[InboxEvent]:
    with world.ledger.read() as session:
        rows = list(session.scalars(select(InboxEvent).where(InboxEvent.kind == "coc_outcome")))
        session.expunge_all()
        return rows


def rooms_now(world: World) -> tuple[list[str], list[str]]:
    """What the moderators see: the Discord room's texts and the Forum moderators' messages."""
    return [m["content"] for m in room(world)], [p["raw"] for p in world.forum_moderator_pms()]


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


def test_r_safe_2_the_liaison_records_the_outcome_through_the_signed_link(
    world: World, gateway: str, mailbox: Any
) -> None:
    _form_report(world, coc="yes")
    report = only_report(world)
    assert report.state == "referred"
    # The Forum has no buttons: the liaison's private message carries the link; so does the CoC
    # WG's e-mail. Discord's DM has the buttons and no link.
    [pm] = [p for p in forum_pms_to(world, "avery_quill") if "CoC referral" in p]
    token = LINK.search(pm).group(1)
    [mail] = mailbox.messages()
    assert LINK.search(mail["text"]).group(1) == token
    assert not any(LINK.search(t) for t in dms_to(world, "avery_quill"))
    before = rooms_now(world)
    url = f"{gateway}{PATH}/{token}"

    with httpx.Client(timeout=30) as liaison:
        page = liaison.get(url)
        assert page.status_code == 200 and f"report #{report.id}" in page.text
        assert page.headers["cache-control"] == "no-store" and page.headers["referrer-policy"] == "no-referrer"
        for outcome in ("no_violation", "warning", "suspension", "ban"):
            assert f'value="{outcome}"' in page.text
        for private in PRIVATE:
            assert private not in page.text, private
        assert link_events(world) == [], "a GET changes nothing"
        csrf = csrf_of(page.text)
        # No CSRF token, or one of another link: refused, nothing stored.
        assert liaison.post(url, data={"outcome": "warning"}).status_code == 403
        other = make_link_token(secret=SECRET, report_id=report.id + 1, person_id=1, expires_at=NOW + timedelta(days=1))
        assert liaison.post(f"{gateway}{PATH}/{other}", data={"csrf": csrf, "outcome": "warning"}).status_code == 400
        assert liaison.post(url, data={"csrf": csrf, "outcome": "exile"}).status_code == 422
        assert link_events(world) == []

        done = liaison.post(url, data={"csrf": csrf, "outcome": "warning"})
        assert done.status_code == 200 and "received" in done.text
        [event] = link_events(world)
        assert inbox.handle_event(world.ledger, event.id) == f"coc-outcome:{report.id}"
        assert only_report(world).coc_outcome == "A private warning"
        with world.ledger.read() as session:
            [entry] = session.scalars(select(AuditEntry).where(AuditEntry.action == "safety.coc_outcome")).all()
        assert entry.subject == f"safety-report:{report.id}" and entry.actor == f"person:{world.people['avery_quill']}"
        # The rooms show what they showed: only that it was referred.
        assert rooms_now(world) == before

        # Replayed: the page and its form say the link was used; nothing is stored or changed.
        again = liaison.post(url, data={"csrf": csrf, "outcome": "ban"})
        assert again.status_code == 409 and "used" in again.text
        assert liaison.get(url).status_code == 409
        assert [e.id for e in link_events(world)] == [event.id]
        # The token is a secret: the metrics label the page by its route, never by the token.
        metrics = liaison.get(f"{gateway}/metrics").text
        assert token not in metrics and 'route="/coc-outcome/{token}"' in metrics
    # The same token in another event (not the page's one use) changes nothing.
    with world.ledger.transaction() as session:
        row, _ = repo.inbox_put(
            session,
            dedupe_key="form:coc-outcome:replayed",
            source="form",
            kind="coc_outcome",
            route="safety-coc-link",
            payload={"data": {"token": token, "outcome": "ban"}, "attributes": {}, "actor": None},
            received_at=NOW,
        )
        replay = row.id
    assert inbox.handle_event(world.ledger, replay) == "refused:not-the-links-use"
    assert only_report(world).coc_outcome == "A private warning"


def test_r_safe_2_a_tampered_expired_or_foreign_link_gets_a_clear_page_and_changes_nothing(
    world: World, gateway: str
) -> None:
    _form_report(world, coc="yes")
    report = only_report(world)
    [pm] = [p for p in forum_pms_to(world, "avery_quill") if "CoC referral" in p]
    token = LINK.search(pm).group(1)
    liaison_id, cleo = world.people["avery_quill"], world.people["cleo_marsh"]
    tampered = token[:-1] + ("0" if token[-1] != "0" else "1")
    expired = make_link_token(secret=SECRET, report_id=report.id, person_id=liaison_id, expires_at=NOW - timedelta(1))
    foreign = make_link_token(secret=SECRET, report_id=report.id, person_id=cleo, expires_at=NOW + timedelta(days=1))
    forged = make_link_token(secret="guess", report_id=report.id, person_id=liaison_id, expires_at=NOW + timedelta(1))
    cases = {
        tampered: "not valid",
        expired: "expired",
        foreign: "another CoC Liaison",
        forged: "not valid",
        "s.1.2.3": "not valid",
        "x" * 300: "not valid",
    }
    with httpx.Client(timeout=30) as client:
        for bad, says in cases.items():
            for answer in (client.get(f"{gateway}{PATH}/{bad}"), client.post(f"{gateway}{PATH}/{bad}")):
                assert answer.status_code == 400 and says in answer.text, (bad, answer.text)
                assert "<form" not in answer.text
    assert link_events(world) == []
    assert only_report(world).coc_outcome is None
    # A link whose report is no longer referred (resolved meanwhile by the CLI's hand) is closed.
    with world.ledger.transaction() as session:
        session.get(type(report), report.id).state = "resolved"
    assert httpx.get(f"{gateway}{PATH}/{token}", timeout=30).status_code == 410
