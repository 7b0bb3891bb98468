"""Intake paths and recovery, end to end:

- the Discord ``/apply`` modal and a Forum topic in the applications category reach the gateway as
  the sandboxes send them (signed with their own keys) and end in an application;
- the Forum account is confirmed through the gateway's confirmation page (GET shows, POST stores,
  the ``confirm`` handler confirms); the opt-in page renews a term the same way;
- an application not confirmed within 7 days expires, the applicant is told once, and its links
  stop working;
- a role granted on a platform by a run that died before recording it is not granted again: the
  next run reads the platform first.
"""

from __future__ import annotations

import re
import time
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select

from connectors.base import Role
from connectors.errors import PolicyViolation
from flows import inbox
from flows.kit import context
from flows.membership import ballot as ballots
from flows.membership.handlers import handle_intake, handle_optin
from flows.membership.intake import confirm_identity, expire_applications
from flows.membership.onboarding import onboard
from flows.membership.renewal import renewal
from ledger import repo
from ledger.models import Application, ApplicationStatus, Identity, InboxEvent, MembershipStatus, Person, Platform
from rules.applications import TOPIC_TEMPLATE
from tests.support.membership import (
    END_OF_FIRST_TERM,
    NOW,
    apply_proven,
    discord_dms,
    forum_pms,
    open_forum_topic,
    press_vote,
    put_event,
)


def _events(world, **where):
    with world.ledger.read() as session:
        rows = session.scalars(select(InboxEvent).order_by(InboxEvent.id))
        return [r.id for r in rows if all(getattr(r, k) == v for k, v in where.items())]


def _wait_for_event(world, **where):
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        found = _events(world, **where)
        if found:
            return found[-1]
        time.sleep(0.05)
    raise AssertionError(f"no inbox event {where}")


def _press_page_button(base, path):
    """Open a link page and press its button, as a browser does (cookie + hidden CSRF field)."""
    with httpx.Client(base_url=base, timeout=15) as browser:
        shown = browser.get(path)
        assert shown.status_code == 200, shown.text
        csrf = re.search(r'name="csrf" value="([^"]+)"', shown.text).group(1)
        return browser.post(path, data={"csrf": csrf})


def test_discord_modal_and_forum_topic_through_the_gateway_end_in_applications(world, gateway):
    # Discord: yara_penhale runs /apply and submits the modal; the sandbox signs and sends it.
    answer = world.discord_sb.submit_modal(
        world.discord_url,
        user="yara_penhale",
        custom_id="cf:apply",
        fields={
            "forum_username": "yara_penhale",
            "why": "I want newcomers to feel welcome.",
            "experience": "Three years of moderating a regional Django group.",
        },
    )
    assert answer["status"] == 200 and answer["response"]["type"] == 5  # deferred, answered later
    event_id = _wait_for_event(world, source="discord", kind="apply_submitted", route=inbox.Route.INTAKE)
    result = inbox.handle_event(world.ledger, event_id)  # what the task worker runs
    assert result.startswith("application:")
    app_id = int(result.split(":")[1])
    with world.ledger.read() as session:
        app = session.get(Application, app_id)
        assert app.status == ApplicationStatus.OPEN and app.source_platform == "discord"
        [proven] = [session.get(Identity, c.identity_id) for c in app.confirmations]
        assert proven.platform == Platform.DISCORD  # proven by the modal itself
    # The Forum account is asked on the Forum; the applicant opens the page and presses Confirm.
    [pm] = [m for m in forum_pms(world, "yara_penhale") if "/confirm/" in m]
    path = re.search(r"https?://[^/\s]+(/confirm/[\w.]+)", pm).group(1)
    done = _press_page_button(gateway.url, path)
    assert done.status_code == 200 and "your confirmation is received" in done.text
    confirm_id = _wait_for_event(world, source="form", kind="confirm", route=inbox.Route.CONFIRM)
    assert inbox.handle_event(world.ledger, confirm_id) == f"application:{app_id}:confirmed"
    with world.ledger.read() as session:
        assert session.get(Application, app_id).status == ApplicationStatus.VOTING  # eligible, ballot open
    # Once confirmed, the page says so and offers no button; nothing is stored.
    with httpx.Client(base_url=gateway.url, timeout=15) as browser:
        again = browser.get(path)
    assert again.status_code == 200 and "already confirmed" in again.text and "<form" not in again.text
    assert len(_events(world, source="form", kind="confirm")) == 1

    # The Forum: ivo_stone opens a topic in the applications category, answering the template's
    # questions; the sandbox's webhook sender delivers topic_created and post_created to the
    # gateway, signed with the shared secret. The answers come with the first post.

    raw = TOPIC_TEMPLATE.replace(
        "join the working group?\n", "join the working group?\nI have helped in the forum for two years.\n"
    ).replace("do you bring?\n", "do you bring?\nI moderate a meetup.\n")
    title = "Application to join the working group"
    open_forum_topic(world, "ivo_stone", title=title, category=gateway.applications_category, raw=raw)
    topic_event = _wait_for_event(world, source="discourse", kind="topic_created", route=inbox.Route.INTAKE)
    assert inbox.handle_event(world.ledger, topic_event) == "forum-topic:answers-come-with-its-first-post"
    post_event = _wait_for_event(world, source="discourse", kind="post_created", route=inbox.Route.INTAKE)
    result = inbox.handle_event(world.ledger, post_event)
    assert result.startswith("application:")
    with world.ledger.read() as session:
        app = session.get(Application, int(result.split(":")[1]))
        # The topic's author is proven: confirmed at once, eligible by Forum activity, voting.
        assert app.status == ApplicationStatus.VOTING and app.source_platform == "discourse"
        assert app.motivation == "I have helped in the forum for two years."
    assert inbox.handle_event(world.ledger, post_event) == "already-processed"


def test_opt_in_page_renews_from_the_old_end_date(world, gateway):
    at30 = END_OF_FIRST_TERM - timedelta(days=30) + timedelta(hours=1)
    renewal(now=at30)
    [pm] = [m for m in forum_pms(world, "felix_oakes") if "/optin/" in m]
    path = re.search(r"https?://[^/\s]+(/optin/[\w.]+)", pm).group(1)
    assert any(
        c.get("custom_id", "").startswith("cfo:")
        for m in discord_dms(world, "felix_oakes")
        for row in m["components"]
        for c in row["components"]
    )
    done = _press_page_button(gateway.url, path)
    assert done.status_code == 200 and "your opt-in is received" in done.text
    event_id = _wait_for_event(world, source="form", kind="optin", route=inbox.Route.OPT_IN)
    # The handler runs on the scenario's clock (the reminder's window), as the worker would then.
    result = handle_optin(
        event_id=event_id, ledger=world.ledger, platforms=world.platforms, now=at30 + timedelta(hours=1)
    )
    assert result.startswith("term:")
    with world.ledger.read() as session:
        membership = repo.open_membership(session, session.get(Person, world.people["felix_oakes"]))
        assert membership.terms[-1].starts_at == END_OF_FIRST_TERM
    with httpx.Client(base_url=gateway.url, timeout=15) as browser:
        assert "already opted in" in browser.get(path).text


def test_unconfirmed_application_expires_after_seven_days(world, gateway):
    event = put_event(
        world,
        source="form",
        kind="application",
        route="intake",
        key="form:sub-quinn-exp",
        data={
            "submission_id": "sub-quinn-exp",
            "discourse_username": "quinn_harbor",
            "discord_username": "quinn_harbor",
            "why": "To help the community grow.",
            "experience": "Event organising.",
        },
    )
    app_id = int(handle_intake(event_id=event, ledger=world.ledger, platforms=world.platforms, now=NOW).split(":")[1])
    [pm] = [m for m in forum_pms(world, "quinn_harbor") if "/confirm/" in m]
    token = re.search(r"/confirm/([\w.]+)", pm).group(1)
    assert expire_applications(now=NOW + timedelta(days=7) - timedelta(minutes=1)) == []
    assert expire_applications(now=NOW + timedelta(days=7)) == [app_id]
    with world.ledger.read() as session:
        assert session.get(Application, app_id).status == ApplicationStatus.EXPIRED
    assert any("has expired (R-APP-2)" in m for m in forum_pms(world, "quinn_harbor"))
    assert any("has expired (R-APP-2)" in m["content"] for m in discord_dms(world, "quinn_harbor"))
    before = world.writes()
    assert expire_applications(now=NOW + timedelta(days=8)) == []
    assert world.writes() == before
    # Its links no longer confirm anything: the page says so (410), the flow refuses.
    with httpx.Client(base_url=gateway.url, timeout=15) as browser:
        gone = browser.get(f"/confirm/{token}")
    assert gone.status_code == 410 and "expired" in gone.text

    with pytest.raises(PolicyViolation) as refused:
        confirm_identity(token=token, now=NOW + timedelta(days=7, hours=1))
    assert refused.value.ruling == "R-APP-2"


def test_a_grant_done_before_a_crash_is_not_sent_again(world):
    result = apply_proven(world, "yara_penhale", discord=True)  # names both accounts
    app_id = result["application"]
    with world.ledger.read() as session:
        ballot_id = session.get(Application, app_id).ballot_id
    discord = world.platforms.space("discord")
    user = discord.directory.find_user("yara_penhale")
    # A run that died after its grant reached Discord and before the ledger recorded it: the
    # platform shows the role, the ledger knows nothing of it.
    discord.roles.grant(user, Role.group("wg-member"), reason="charterflow grant (run killed before its record)")
    grants = [c for c in world.discord_state()["role_changes"] if c["action"] == "grant"]
    requests_before = dict(world.discord_state()["requests"])

    where = ballots.refs(context(NOW), ballot_id)
    for voter in ("avery_quill", "bram_tolliver", "cleo_marsh", "dario_fenwick"):
        press_vote(world, where["discord"], voter, 0, now=NOW + timedelta(hours=1))
    with world.ledger.read() as session:
        app = session.get(Application, app_id)
        assert app.status == ApplicationStatus.APPROVED
        person = session.get(Person, app.person_id)
        assert repo.open_membership(session, person).status == MembershipStatus.ACTIVE
        roles = {(r.platform.value, r.role): (r.desired, r.observed) for r in repo.platform_roles_of(session, person)}
    assert roles[("discord", "group:wg-member")] == (True, True)  # observed on the platform, recorded
    assert roles[("discourse", "group:working-group")] == (True, True)
    # No second grant request reached Discord; the Forum grant was made once.
    after = world.discord_state()
    assert [c for c in after["role_changes"] if c["action"] == "grant"] == grants
    role_put = "PUT /guilds/{guild_id}/members/{user_id}/roles/{role_id}"
    assert after["requests"].get(role_put, 0) == requests_before.get(role_put, 0)
    assert (
        "yara_penhale" in next(g for g in world.discourse_state()["groups"] if g["name"] == "working-group")["members"]
    )
    # And once more, the whole onboarding: nothing is sent.

    before = world.writes()
    onboard(application_id=app_id, now=NOW + timedelta(hours=2))
    assert world.writes() == before
