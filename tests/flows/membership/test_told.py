"""R-APP-1 on the Forum and R-APP-4: every applicant hears every outcome where they applied.

- A Forum topic in the applications category starts from the charter's three questions (the
  category's topic template); a topic missing answers gets one reply saying what to add and waits
  for the author's edit (``post_edited``), which then makes the application.
- Refusals at intake (an account that does not exist, already a member, a duplicate) are told on
  Discord (DM), on the Forum (PM) and on the form's page.
- Every later outcome (waiting, ineligible, expired, approved, not approved) is shown on the
  form's status page, and sent as DM and PM on the accounts named.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import select

from flows import inbox
from flows.kit import context
from flows.membership import ballot as ballots
from flows.membership.intake import confirm_identity, expire_applications
from ledger.models import Application, ApplicationStatus, InboxEvent
from rules.applications import TOPIC_TEMPLATE
from tests.support.membership import NOW, discord_dms, forum_pms, open_forum_topic, press_vote


def _events(world, **where):
    with world.ledger.read() as session:
        rows = session.scalars(select(InboxEvent).order_by(InboxEvent.id))
        return [r.id for r in rows if all(getattr(r, k) == v for k, v in where.items())]


def _next_event(world, seen, **where):
    """The first event matching ``where`` that is not in ``seen`` (waits for the webhook)."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        fresh = [e for e in _events(world, **where) if e not in seen]
        if fresh:
            seen.add(fresh[0])
            return fresh[0]
        time.sleep(0.05)
    raise AssertionError(f"no new inbox event {where}")


def _topic(world, gateway, author, raw):
    # Each applicant's own title: the Forum takes a topic title once per site.
    title = f"Application to join the working group from {author}"
    return open_forum_topic(world, author, title=title, category=gateway.applications_category, raw=raw)


def _answered(why="", experience="", discord="", nominator=""):
    """The category's template as an applicant fills it in (an empty answer stays as shipped)."""
    text = TOPIC_TEMPLATE
    for heading, answer in (
        ("## Discord username", discord),
        ("## Why do you want to join the working group?", why),
        ("## What experience and skills do you bring?", experience),
        ("## Nominated by", nominator),
    ):
        if answer:
            text = text.replace(heading, f"{heading}\n{answer}")
    return text


def _handle_forum_post(world, seen, kind="post_created"):
    event = _next_event(world, seen, source="discourse", kind=kind, route=inbox.Route.INTAKE)
    return inbox.handle_event(world.ledger, event)


def _edit_post(world, post, raw: str) -> httpx.Response:
    """ivo_stone, the post's author, edits it on the Forum to ``raw``."""
    return httpx.put(
        f"{world.discourse_url}/posts/{post['id']}.json",
        timeout=15,
        headers={"Api-Key": world.discourse_sb.api_key, "Api-Username": "ivo_stone"},
        json={"post": {"raw": raw}},
    )


def _topic_posts(world, topic_id):
    return [p for p in world.discourse_state()["posts"] if p["topic_id"] == topic_id]


def test_forum_topic_asks_the_three_questions_and_waits_for_the_edit(world, gateway):
    listed = httpx.get(
        f"{world.discourse_url}/categories.json",
        timeout=15,
        headers={"Api-Key": world.discourse_sb.api_key, "Api-Username": "system"},
    ).json()
    [category] = [c for c in listed["category_list"]["categories"] if c["name"] == "Applications"]
    assert category["topic_template"] == TOPIC_TEMPLATE  # the composer starts with the questions

    seen: set[int] = set()
    post = _topic(world, gateway, "ivo_stone", _answered(why="I want newcomers to feel at home here."))
    topic_id = post["topic_id"]
    opened = _next_event(world, seen, source="discourse", kind="topic_created", route=inbox.Route.INTAKE)
    assert inbox.handle_event(world.ledger, opened).startswith("forum-topic:")
    assert _handle_forum_post(world, seen) == f"waiting:forum-topic:{topic_id}:missing-experience"
    [reply] = [p for p in _topic_posts(world, topic_id) if p["post_number"] == 2]
    assert "Hello @ivo_stone" in reply["raw"] and "**what experience and skills you bring**" in reply["raw"]
    assert "edit the first post of this topic" in reply["raw"] and "why you want" not in reply["raw"]
    with world.ledger.read() as session:
        assert session.scalars(select(Application)).all() == []  # nothing goes on with it

    # An edit that still leaves the answer out: no second reply.
    edit = _edit_post(world, post, _answered(why="I want newcomers to feel at home here, truly."))
    assert edit.status_code == 200, edit.text
    assert _handle_forum_post(world, seen, "post_edited").startswith("waiting:")
    assert len(_topic_posts(world, topic_id)) == 2

    # The author edits the first post and answers: the application is made from the answers.
    edit = _edit_post(
        world,
        post,
        _answered(
            why="I want newcomers to feel at home here.",
            experience="Two years moderating a regional meetup forum.",
            discord="ivo_stone",
        ),
    )
    assert edit.status_code == 200, edit.text
    result = _handle_forum_post(world, seen, "post_edited")
    assert result.startswith("application:")
    with world.ledger.read() as session:
        app = session.get(Application, int(result.split(":")[1]))
        assert app.motivation == "I want newcomers to feel at home here."
        assert app.experience == "Two years moderating a regional meetup forum."
        assert app.source_platform == "discourse" and app.status == ApplicationStatus.OPEN
    # The Discord account it names is asked to confirm; the Forum author is proven.
    assert any("cfc:" in str(m["components"]) for m in discord_dms(world, "ivo_stone"))
    # A later edit changes nothing: the same application, no new message.
    before = world.writes()
    _edit_post(
        world,
        post,
        _answered(
            why="Changed my mind about the wording.",
            experience="Two years moderating a regional meetup forum.",
            discord="ivo_stone",
        ),
    ).raise_for_status()
    assert _handle_forum_post(world, seen, "post_edited") == result
    after = world.writes()
    assert {k: v for k, v in after.items() if "posts/{id}" not in k} == {
        k: v for k, v in before.items() if "posts/{id}" not in k
    }


def _form(gateway, **fields):
    """Fill in and send the public form over HTTP; (response, status page path)."""
    with httpx.Client(base_url=gateway.url, timeout=20) as browser:
        page = browser.get("/apply").text
        data = {name: re.search(rf'name="{name}" value="([^"]*)"', page).group(1) for name in ("submission", "csrf")}
        sent = browser.post(
            "/apply",
            data={
                **data,
                "why": "I want to help the community grow.",
                "experience": "Event organising.",
                "discourse_username": "",
                "discord_username": "",
                "nominator": "",
                "email": "",
                "website": "",
                **fields,
            },
        )
    found = re.search(r'id="status-link" href="([^"]+)"', sent.text)
    return sent, found.group(1) if found else None


def _status(gateway, path):
    page = httpx.get(f"{gateway.url}{path}", timeout=15)
    assert page.status_code == 200, page.text
    return re.search(r'data-state="([^"]+)"', page.text).group(1), page.text


def _handle_form(world, seen):
    event = _next_event(world, seen, source="form", kind="application", route=inbox.Route.INTAKE)
    return inbox.handle_event(world.ledger, event)


def _modal(world, seen, user, **fields):
    answer = world.discord_sb.submit_modal(
        world.discord_url,
        user=user,
        custom_id="cf:apply",
        fields={"why": "I want newcomers to feel welcome.", "experience": "Moderation.", **fields},
    )
    assert answer["status"] == 200
    event = _next_event(world, seen, source="discord", kind="apply_submitted", route=inbox.Route.INTAKE)
    return inbox.handle_event(world.ledger, event)


def test_refusals_are_told_where_the_person_applied(world, gateway):
    seen: set[int] = set()
    # An account that does not exist.
    # The form: answered on the page at once (looked up on the platform).
    sent, _ = _form(gateway, discourse_username="no_such_forum_user")
    assert sent.status_code == 422 and "There is no Forum account called" in sent.text
    # Discord: the /apply modal names a Forum account that does not exist: a DM says so.
    assert (
        _modal(world, seen, "quinn_harbor", forum_username="no_such_forum_user")
        == "refused:R-APP-1:discourse-unknown-user"
    )
    [dm] = discord_dms(world, "quinn_harbor")
    assert "was not accepted: there is no Forum account called 'no_such_forum_user'" in dm["content"]
    # The Forum: the topic names a Discord account that does not exist: a PM says so.
    _topic(
        world,
        gateway,
        "yara_penhale",
        _answered(why="To help.", experience="Moderation for years.", discord="no.such.discord"),
    )
    assert _handle_forum_post(world, seen) == "refused:R-APP-1:discord-unknown-user"
    [pm] = forum_pms(world, "yara_penhale")
    assert "there is no Discord account called 'no.such.discord'" in pm

    # Already a member: on each channel.
    assert _modal(world, seen, "cleo_marsh") == "refused:R-APP-3:already-member"
    assert any("already a member" in m["content"] for m in discord_dms(world, "cleo_marsh"))
    _topic(world, gateway, "dario_fenwick", _answered(why="To help more.", experience="Already serving."))
    assert _handle_forum_post(world, seen) == "refused:R-APP-3:already-member"
    assert any("already a member" in m for m in forum_pms(world, "dario_fenwick"))
    sent, status_path = _form(gateway, discourse_username="hana_pike", email="hana@example.org")
    assert sent.status_code == 200
    assert _handle_form(world, seen) == "refused:R-APP-3:already-member"
    state, page = _status(gateway, status_path)
    assert state == "refused" and "already an active member" in page and "R-APP-3" in page
    [mail] = world.mails("hana@example.org")  # and by e-mail, over SMTP
    assert mail["from"] == "wg@example.org" and "already an active member" in mail["text"]

    # A duplicate: quinn_harbor's form application is open; applying again anywhere points to it.
    sent, first_path = _form(
        gateway, discourse_username="quinn_harbor", discord_username="quinn_harbor", email="quinn@example.org"
    )
    open_id = int(_handle_form(world, seen).split(":")[1])
    assert _status(gateway, first_path)[0] == "waiting"
    sent, second_path = _form(gateway, discord_username="quinn_harbor")
    assert _handle_form(world, seen) == "refused:R-APP-3:duplicate"
    state, page = _status(gateway, second_path)
    assert state == "refused" and f"Your open application is application {open_id}" in page
    [mail] = world.mails("quinn@example.org")
    assert f"(application {open_id}, open)" in mail["text"]
    assert _modal(world, seen, "quinn_harbor") == "refused:R-APP-3:duplicate"
    assert any(f"(application {open_id}, open)" in m["content"] for m in discord_dms(world, "quinn_harbor"))
    _topic(world, gateway, "quinn_harbor", _answered(why="Applying again.", experience="Event organising."))
    assert _handle_forum_post(world, seen) == "refused:R-APP-3:duplicate"
    assert any(f"(application {open_id}, open)" in m for m in forum_pms(world, "quinn_harbor"))


def _confirm_from_pm(world, username):
    [pm] = [m for m in forum_pms(world, username) if "/confirm/" in m]
    token = re.search(r"/confirm/([\w.]+)", pm).group(1)
    return confirm_identity(token=token, now=NOW)


def _confirm_from_dm(world, username):
    """The applicant's Confirm button in the Discord DM (pressed by that account)."""
    [custom_id] = [
        c["custom_id"]
        for m in discord_dms(world, username)
        for row in m["components"]
        for c in row["components"]
        if str(c.get("custom_id", "")).startswith("cfc:")
    ]
    user = world.platforms.space("discord").directory.find_user(username)
    return confirm_identity(token=custom_id.removeprefix("cfc:"), now=NOW, pressed_by=user.id)


def test_every_later_outcome_is_on_the_form_page_and_in_messages(world, gateway):
    seen: set[int] = set()
    paths = {}
    for name in ("quinn_harbor", "rowan_vale", "yara_penhale", "ivo_stone"):
        # All but rowan_vale (not on Discord) name their Discord account too.
        discord = "" if name == "rowan_vale" else name
        sent, paths[name] = _form(
            gateway, discourse_username=name, discord_username=discord, email=f"{name}@example.org"
        )
        assert sent.status_code == 200 and "follow your application" in sent.text
        assert _handle_form(world, seen).startswith("application:")
        assert _status(gateway, paths[name])[0] == "waiting"

    # Ineligible (a 60-day-old account): the page says what was missing; so does the PM.
    _confirm_from_pm(world, "rowan_vale")
    state, page = _status(gateway, paths["rowan_vale"])
    assert state == "refused" and "not active enough yet" in page and "R-ELIG-1" in page
    assert any("(R-ELIG-1)" in m and "not met yet" in m for m in forum_pms(world, "rowan_vale"))
    [mail] = world.mails("rowan_vale@example.org")
    assert "(R-ELIG-1)" in mail["text"] and mail["subject"] == "About your application to the working group"

    # Approved and not approved: the members vote on Discord.
    for name, choice in (("yara_penhale", 0), ("ivo_stone", 1)):
        assert _confirm_from_dm(world, name).endswith(":waiting")
        _confirm_from_pm(world, name)
        assert _status(gateway, paths[name])[0] == "voting"
        with world.ledger.read() as session:
            app_id = session.scalar(
                select(Application.id).where(Application.ballot_id.is_not(None)).order_by(Application.id.desc())
            )
            ballot_id = session.get(Application, app_id).ballot_id
        where = ballots.refs(context(NOW), ballot_id)
        for voter in ("avery_quill", "bram_tolliver", "cleo_marsh", "dario_fenwick"):
            press_vote(world, where["discord"], voter, choice, now=NOW + timedelta(hours=1))
    state, page = _status(gateway, paths["yara_penhale"])
    assert state == "approved" and "approved your application" in page
    assert any("your application was approved" in m for m in forum_pms(world, "yara_penhale"))
    assert any("your application was approved" in m["content"] for m in discord_dms(world, "yara_penhale"))
    assert any("not approved this time" in m["content"] for m in discord_dms(world, "ivo_stone"))
    state, page = _status(gateway, paths["ivo_stone"])
    assert state == "not-approved" and "not approved this time" in page
    assert any("not approved this time" in m for m in forum_pms(world, "ivo_stone"))
    assert [m["subject"] for m in world.mails("yara_penhale@example.org")] == ["Welcome to the working group"]
    [mail] = world.mails("ivo_stone@example.org")
    assert "not approved this time" in mail["text"]

    # Unconfirmed for seven days (the form's events ran on the real clock): expired, on the page
    # and in the PM.
    assert len(expire_applications(now=datetime.now(UTC) + timedelta(days=7, minutes=1))) == 1
    state, page = _status(gateway, paths["quinn_harbor"])
    assert state == "expired" and "within 7 days" in page
    assert any("has expired (R-APP-2)" in m for m in forum_pms(world, "quinn_harbor"))
    assert any("has expired (R-APP-2)" in m["content"] for m in discord_dms(world, "quinn_harbor"))
    [mail] = world.mails("quinn_harbor@example.org")
    assert "has expired (R-APP-2)" in mail["text"]
    # Each e-mail was sent once: running the expiry again sends nothing more.
    expire_applications(now=datetime.now(UTC) + timedelta(days=8))
    assert len(world.mails("quinn_harbor@example.org")) == 1
