"""A second pass over where the Forum sandbox had let the connector pass and a current Discourse
would not (posting validations, group membership): each test names the Discourse source it
follows. The connector runs against the sandbox on 127.0.0.1; nothing of ours is patched."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from connectors.base import Role
from connectors.discourse import doctor
from connectors.discourse.sandbox import DiscourseSandbox, default_seed
from connectors.errors import ConfigError


def _as(box: Any, username: str, method: str, path: str, **kw: Any) -> httpx.Response:
    """A request as ``username`` makes it (the sandbox's all-users key acting as them)."""
    headers = {"Api-Key": box.sandbox.api_key, "Api-Username": username}
    return httpx.request(method, f"{box.url}{path}", timeout=10, headers=headers, **kw)


def _topic(box: Any, title: str, **more: Any) -> httpx.Response:
    body = {"title": title, "raw": "A body long enough to pass.", **more}
    return _as(box, "system", "POST", "/posts.json", json=body)


def _raw(box: Any, post_id: str) -> str:
    return next(p["raw"] for p in box.state()["posts"] if p["id"] == int(post_id))


def test_a_short_reply_is_filled_as_discourse_does_not_count_the_marker(discourse):
    # StrippedLengthValidator.get_sanitized_value drops HTML comments before the minimum
    # (min_post_length 20), so our invisible marker made no reply long enough; an emoji code
    # counts one character.
    c = discourse.connect()
    topic = c.post(channel="Working Group", title="A topic for short replies", text="The first post of this topic.")
    marked = f"**al** (Slack): ok\n\n<!-- cf:{'0' * 40} -->"
    for raw in (marked, "**al** (Slack): :smile::smile::tada:"):
        refused = _as(discourse, "system", "POST", "/posts.json", json={"topic_id": int(topic.thread_id), "raw": raw})
        assert refused.status_code == 422
        assert refused.json()["errors"] == ["Body is too short (minimum is 20 characters)"]
    reply = c.reply(thread_id=topic.thread_id, text="**al** (Slack): ok", key="short:1")
    raw = _raw(discourse, reply.id)
    # Filled with zero-width spaces, which Discourse keeps and no reader sees; found again by its key.
    assert raw.startswith("**al** (Slack): ok\u200b\u200b\n\n<!-- cf:") and raw.count("\u200b") == 2
    assert c.reply(thread_id=topic.thread_id, text="**al** (Slack): ok", key="short:1") == reply
    # A new topic's first post and a message are filled as well (20 and 10 characters).
    short = c.post(channel="Working Group", title="A topic with a short body", text="ok")
    assert _raw(discourse, short.id) == "ok" + "\u200b" * 18
    pm = c.direct_message(recipients=["cleo_marsh"], title="Short", text="ok")
    assert _raw(discourse, pm.id) == "ok" + "\u200b" * 8


def test_titles_discourse_finds_unclear_or_too_long_are_refused_and_the_connector_fits_ours(discourse):
    # TopicTitleLengthValidator: at most max_topic_title_length (255); QualityTitleValidator
    # (TextSentinel.title_sentinel, lib/text_sentinel.rb) on a topic, not a message: 10 distinct
    # bytes, a letter or digit, no run of more than title_max_word_length (30) letters or digits.
    unclear = "Title seems unclear, is it a complete sentence?"
    for title, error in (
        ("lol lol lol lol lol lol", unclear),
        ("!?! " * 6, unclear),
        (f"Notes on {'x' * 31}", unclear),
        ("A title of " + "many quite long words " * 12, "Title is too long (maximum is 255 characters)"),
    ):
        refused = _topic(discourse, title, category=5)
        assert (refused.status_code, refused.json()["errors"]) == (422, [error]), title
    # title_prettify lowers an all-caps title (lib/text_cleaner.rb): not refused.
    assert _topic(discourse, "URGENT: THE SERVER IS DOWN", category=5).status_code == 200
    # A message's title is only held to its length.
    message = {"archetype": "private_message", "target_recipients": "cleo_marsh"}
    assert _topic(discourse, f"Notes on {'y' * 31}", **message).status_code == 200
    c = discourse.connect()
    word = "a" * 40
    long = c.post(
        channel="Working Group", title=f"Meeting notes about {word}", text="A topic with a very long word in its title."
    )
    too_long = c.post(channel="Working Group", title="Long title " * 30, text="A topic whose title is far too long.")
    titles = {str(t["id"]): t["title"] for t in discourse.state()["topics"]}
    assert titles[long.thread_id] == f"Meeting notes about {'a' * 30}-{'a' * 10}"
    assert len(titles[too_long.thread_id]) == 255 and titles[too_long.thread_id].endswith("…")


def test_the_admin_api_user_may_repeat_a_body_a_member_may_not(discourse):
    # PostValidator#unique_post_validator returns for staff (lib/validators/post_validator.rb).
    body = {"raw": "Exactly the same words, twice over.", "category": 4}
    for n in (1, 2):
        staff = _as(discourse, "system", "POST", "/posts.json", json={**body, "title": f"Staff topic {n} here"})
        assert staff.status_code == 200
    first = _as(discourse, "cleo_marsh", "POST", "/posts.json", json={**body, "title": "A member's topic here"})
    again = _as(discourse, "cleo_marsh", "POST", "/posts.json", json={**body, "title": "A member's topic again"})
    assert first.status_code == 200 and again.json()["errors"] == ["Body is too similar to what you recently posted"]


def test_an_automatic_group_is_refused_by_the_connector_and_the_doctor(discourse):
    # Guardian#can_edit_group? is false for an automatic group (lib/guardian/group_guardian.rb):
    # GroupsController#add_members answers 403. `moderators` is one (Group::AUTO_GROUPS).
    moderators = next(g for g in discourse.state()["groups"] if g["name"] == "moderators")
    put = _as(discourse, "system", "PUT", f"/groups/{moderators['id']}/members.json", json={"usernames": "cleo_marsh"})
    assert put.status_code == 403
    c = discourse.connect()
    with pytest.raises(ConfigError, match="'moderators' is automatic"):
        c.grant(c.find_user("cleo_marsh"), Role.group("moderators"), reason="R-MOD-1")
    assert next(g for g in discourse.state()["groups"] if g["name"] == "moderators")["members"] == ["bram_tolliver"]
    [check] = [k for k in doctor.check(c.settings, group="moderators") if k.name == "group moderators"]
    assert not check.ok and "automatic" in check.detail and "CHARTERFLOW_DISCOURSE_GROUP" in check.fix
    [ours] = [k for k in doctor.check(c.settings) if k.name == "group working-group"]
    assert ours.ok


def test_a_renamed_member_is_changed_by_id_never_whoever_took_their_name(serve):
    # users_from_params finds `usernames` by name (app/controllers/groups_controller.rb), and a
    # name freed by a rename may be taken: the connector names the account as its id reads now.
    seed = default_seed()
    box = serve(DiscourseSandbox(seed=seed))
    c = box.connect()
    cleo = c.find_user("cleo_marsh")
    box.sandbox.users[int(cleo.id)]["username"] = "cleo_renamed"
    newcomer = {**box.sandbox.users[int(cleo.id)], "id": 900, "username": "cleo_marsh", "name": "Someone Else"}
    box.sandbox.users[900] = newcomer
    assert c.grant(cleo, Role.group("board"), reason="R-BOARD-1").status.value == "applied"
    board = next(g for g in box.state()["groups"] if g["name"] == "board")
    assert "cleo_renamed" in board["members"] and "cleo_marsh" not in board["members"]
    c.revoke(cleo, Role.group("board"), reason="R-BOARD-2")
    board = next(g for g in box.state()["groups"] if g["name"] == "board")
    assert "cleo_renamed" not in board["members"]


def test_a_relayed_text_at_the_post_limit_stays_within_it_with_its_mentions_broken(discourse):
    # A copy is fitted to max_post_length (32,000) before the zero-width spaces that break its
    # mentions are added: a text full of "@name" went past it and Discourse refused it (422).
    c = discourse.connect()
    text = "@ab " * 8000
    assert len(text) == c.room_text_limit()
    ref = c.room_post(room="Working Group", text=text, title="A copy full of mentions")
    raw = _raw(discourse, ref.id)
    assert len(raw) <= c.room_text_limit() and raw.startswith("@\u200bab @\u200bab")
    assert raw.endswith("characters left out]")
