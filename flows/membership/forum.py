"""Applications opened as a Forum topic (R-APP-1): the applications category's topic template
asks the charter's three questions (``rules.applications.TOPIC_TEMPLATE``); the topic's first
post (``post_created``, and ``post_edited`` when the author edits it) carries the answers.

A topic missing an answer gets **one** reply saying what to add, and nothing else happens: the
application waits for the author's edit, whose ``post_edited`` webhook brings it back here. Every
event of one topic uses the same intake key (``forum-topic:<id>``), so the first complete version
makes the application and later edits change nothing.
"""

from __future__ import annotations

from typing import Any

from flows.kit import Ctx, log, once, render
from rules.applications import QUESTIONS, parse_forum_application

ACTOR = "flow:intake"


def _post(data: dict[str, Any]) -> dict[str, Any]:
    # A signed webhook may still hold odd shapes (a list where a name belongs): text only.
    found = data.get("post")
    post: dict[str, Any] = found if isinstance(found, dict) else {}
    return {k: (v if isinstance(v, (str, int)) and not isinstance(v, bool) else None) for k, v in post.items()}


def forum_waiting(ctx: Ctx, *, data: dict[str, Any]) -> str | None:
    """A result reference when the post is nothing to take in yet: not a first post, or answers
    missing (then **one** reply in the topic asks for them); None when it is an application."""
    post = _post(data)
    if str(post.get("post_number")) != "1" or not post.get("topic_id"):
        return "forum-topic:not-a-first-post"
    topic_id = str(post["topic_id"])
    answers = parse_forum_application(str(post.get("raw") or ""))
    if not answers.missing:
        return None
    _ask_for_answers(ctx, topic_id=topic_id, username=str(post.get("username") or ""), missing=answers.missing)
    return f"waiting:forum-topic:{topic_id}:missing-{'-'.join(answers.missing)}"


def forum_application(data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str], str]:
    """The intake's values, the proven Forum account and the source reference (one per topic)
    of a first post whose answers are complete (see :func:`forum_waiting`)."""
    post = _post(data)
    answers = parse_forum_application(str(post.get("raw") or ""))
    values = {
        "forum_username": post.get("username"),
        "discord_username": answers.discord,
        "motivation": answers.why,
        "experience": answers.experience,
        "nominator": answers.nominator,
        "email": None,
    }
    proven = {"discourse": str(post["user_id"])} if post.get("user_id") is not None else {}
    return values, proven, f"forum-topic:{post.get('topic_id')}"


def _ask_for_answers(ctx: Ctx, *, topic_id: str, username: str, missing: tuple[str, ...]) -> None:
    space = ctx.platforms.space("discourse")
    if space is None or space.messenger is None:
        return
    messenger = space.messenger
    _, text = render("forum_missing_answers", username=username, missing=[QUESTIONS[name] for name in missing])
    key = f"forum-application:{topic_id}:missing-answers"
    try:
        once(
            ctx,
            key=key,
            platform="discourse",
            actor=ACTOR,
            about=f"forum-topic:{topic_id}",
            act=lambda: messenger.reply(thread_id=topic_id, text=text, key=key),
        )
    except Exception as exc:  # raised again: the event stays unprocessed, retried
        log.warning("membership: could not ask forum-topic:%s for its answers: %s", topic_id, type(exc).__name__)
        raise
