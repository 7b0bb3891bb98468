"""Ideas arrive (R-IDEA-1): a new topic in a Forum ideas category (webhook), Discord ``/idea``,
or an operator (flow ``ideas-file``). Each becomes one backlog item, status ``new``, with its
source, source link and author, filed once per source (``Idea.source_key``): a replayed webhook
or interaction, or a handler run again after a crash, finds the item already filed.

The Discord member gets a private follow-up with the item's number; a Forum topic gets a reply
with it. Both are side effects done once (``flows.kit.once``), after the item is
in the ledger.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from prefect import flow
from prefect.runtime import flow_run

from connectors.base import Links, instance_key
from connectors.errors import FatalError
from flows.ideas.common import IdeaInput, InvalidIdea, render, validate_idea
from flows.kit import Ctx, answer_interaction, artifact, context, log, once, run_note
from ledger import ideas as backlog
from ledger import repo
from ledger.errors import NotFound
from ledger.models import InboxEvent, Person, Platform

ACTOR = "flow:ideas-intake"
__all__ = ["check_url", "file_step", "handle_idea", "ideas_file", "operator_key"]


def file_step(
    ctx: Ctx,
    *,
    idea: IdeaInput,
    source: str,
    source_key: str,
    source_url: str | None,
    author_id: int | None,
    author_handle: str | None,
    identity: tuple[Platform, str] | None = None,
) -> tuple[int, bool]:
    """Record the idea once per ``source_key``: (idea id, filed now). ``identity`` (platform,
    account id): the author is the person linked to it, looked up in the filing's own
    transaction (a read fewer per idea, issue 19 point 7); ``author_handle`` when none is."""
    # The charter file's sources: the platforms in force (R-PLATFORM) do not change them, and
    # reading those costs a transaction.
    sources = ctx.platforms.charter.ideas.sources
    if source not in sources:
        raise InvalidIdea("source", f"{source!r} is not one of the charter's sources ({', '.join(sources)})")
    with ctx.ledger.transaction() as session:
        author = session.get(Person, author_id) if author_id else None
        if author is None and identity is not None and identity[1]:
            author = repo.find_person_by_identity(session, platform=identity[0], external_id=identity[1])
        row, created = backlog.file_idea(
            session,
            title=idea.title,
            body=idea.body,
            source=source,
            source_key=source_key,
            source_url=source_url,
            author=author,
            author_handle=None if author is not None else author_handle,
            actor=ACTOR,
            at=ctx.now,
        )
        return row.id, created


def _show(idea_id: int, created: bool, *, source: str, idea: IdeaInput) -> None:
    """An operator's filing: an artifact on its run (one request, no collection)."""
    artifact(
        key=f"idea-{idea_id}-filed",
        title=f"Idea {idea_id} {'filed' if created else 'already filed'}",
        rows={"source": source, "title": idea.title, "status": "new"},
        note="Triage (flow `ideas-triage`) classifies it; members decide its status (R-IDEA-1).",
        keyed=False,
    )


def _note(idea_id: int, created: bool, *, source: str) -> None:
    """An idea from the inbox: a line in its run's log, not an artifact (one per event: the
    Prefect server's largest cost per event). Ids only; the idea is in the ledger
    (``charterflow ideas show``)."""
    run_note("idea:%s %s (source %s)", idea_id, "filed, status new" if created else "already filed", source)


# --------------------------------------------------------------------------------------------
# The gateway's ``idea`` route


def _forum_url(ctx: Ctx, topic: dict[str, Any]) -> str | None:
    space = ctx.platforms.space("discourse")
    links = space.capable(Links) if space is not None else None
    if links is None or not topic.get("id"):
        return None
    return links.thread_url(str(topic["id"]), slug=str(topic.get("slug") or ""))


def handle_idea(*, ledger: Any, event: InboxEvent, now: datetime | None = None) -> str:
    """Inbox handler of route ``idea``: a Forum ``topic_created`` in an ideas category, or a
    Discord ``/idea`` (option ``text``). Returns ``idea:<id>`` or ``refused:invalid:<field>``."""
    ctx = context(now, ledger=ledger)
    # The event as the inbox read it a moment ago: not read again (a transaction fewer per idea).
    source, kind, payload = event.source, event.kind, dict(event.payload or {})
    data = dict(payload.get("data") or {})
    attrs = {str(k): str(v) for k, v in (payload.get("attributes") or {}).items()}
    instance = ctx.platforms.instance_of(source, payload.get("instance"))
    if source in ("discord", "discourse") and not instance:
        # Ids without their Forum or guild would merge two sites' items (issue 19).
        log.warning("ideas: inbox event %s names no %s instance and none is served; kept", event.id, source)
        return "refused:no-instance"
    if source == "discord":
        return _from_discord(ctx, event.id, attrs, instance)
    if source == "discourse" and kind == "topic_created":
        return _from_forum(ctx, dict(data.get("topic") or {}), attrs, instance)
    log.info("ideas: inbox event %s (%s/%s) is not an idea source; kept", event.id, source, kind)
    return "refused:not-an-idea"


def _from_discord(ctx: Ctx, event_id: int, attrs: dict[str, str], instance: str) -> str:
    def answer(text: str) -> None:
        answer_interaction(
            ctx,
            key=f"ideas:answer:inbox:{event_id}",
            actor=ACTOR,
            about=f"inbox:{event_id}",
            attributes=attrs,
            text=text,
        )

    try:
        idea = validate_idea(text=attrs.get("option.text", ""))
    except InvalidIdea as exc:
        answer(f"Your idea was not filed: {exc}.")
        return f"refused:invalid:{exc.field}"
    user_id = attrs.get("user_id", "")
    handle = f"discord:{attrs.get('username') or user_id}"[:120]
    guild, channel = attrs.get("guild_id", ""), attrs.get("channel_id", "")
    url = f"https://discord.com/channels/{guild}/{channel}" if guild and channel else None
    key = instance_key("discord", instance, "interaction", attrs.get("interaction_id") or event_id)
    idea_id, created = file_step(
        ctx,
        idea=idea,
        source="discord",
        source_key=key,
        source_url=url,
        author_id=None,
        author_handle=handle,
        identity=(Platform.DISCORD, user_id),
    )
    _note(idea_id, created, source="discord")
    answer(render("filed", idea_id=idea_id, created=True))
    return f"idea:{idea_id}"


def _from_forum(ctx: Ctx, topic: dict[str, Any], attrs: dict[str, str], instance: str) -> str:
    try:
        idea = validate_idea(
            title=str(topic.get("title") or attrs.get("title") or ""), body=str(topic.get("excerpt") or "") or None
        )
    except InvalidIdea as exc:
        return f"refused:invalid:{exc.field}"
    author = dict(topic.get("created_by") or {})
    handle = f"discourse:{author.get('username') or 'unknown'}"[:120]
    topic_id = str(topic.get("id") or attrs.get("topic_id") or "")
    if not topic_id:
        return "refused:invalid:topic.id"
    idea_id, created = file_step(
        ctx,
        idea=idea,
        source="forum",
        source_key=instance_key("discourse", instance, "topic", topic_id),
        source_url=_forum_url(ctx, topic),
        author_id=None,
        author_handle=handle,
        identity=(Platform.DISCOURSE, str(author.get("id", ""))),
    )
    _note(idea_id, created, source="forum")
    space = ctx.platforms.space("discourse")
    if space is not None and space.messenger is not None and space.instance != instance:
        # Topic ids are per Forum: replying on the Forum we talk to would answer someone else.
        log.warning(
            "ideas: idea:%s came from Forum %s, not the one served (%s); no reply", idea_id, instance, space.instance
        )
    elif space is not None and space.messenger is not None:
        messenger = space.messenger
        text = render("filed", idea_id=idea_id, created=True)
        try:
            once(
                ctx,
                key=f"ideas:forum-reply:{idea_id}",
                platform="discourse",
                actor=ACTOR,
                about=f"idea:{idea_id}",
                act=lambda: messenger.reply(thread_id=topic_id, text=text, key=f"ideas-filed-{idea_id}"),
            )
        except FatalError as exc:
            # The topic is gone (deleted, or never on this Forum): a retry cannot reply.
            log.warning("ideas: no reply on Forum topic for idea:%s (%s)", idea_id, type(exc).__name__)
        except Exception as exc:
            # The idea is filed (keyed); failing the run makes the inbox try again, so the
            # author is not left without the reply when the Forum was down for a moment.
            log.warning("ideas: no reply on Forum topic for idea:%s yet (%s); retrying", idea_id, type(exc).__name__)
            raise
    return f"idea:{idea_id}"


# --------------------------------------------------------------------------------------------
# An operator files an idea


def operator_key(idea: IdeaInput, source_ref: str) -> str:
    if source_ref.strip():
        return f"operator:{source_ref.strip()[:180]}"
    digest = hashlib.sha256(f"{idea.title}\n{idea.body or ''}".encode()).hexdigest()[:24]
    return f"operator:{digest}"


def check_url(url: str) -> str | None:
    url = (url or "").strip()
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or len(url) > 500:
        raise InvalidIdea("source_url", "must be an http(s) URL of at most 500 characters")
    return url


def _file_run_name() -> str:
    title = str((flow_run.parameters or {}).get("title") or "")
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:40].rstrip("-")
    return f"ideas-file-{slug}" if slug else "ideas-file"


@flow(name="ideas-file", flow_run_name=_file_run_name, log_prints=True)
def ideas_file(
    title: str,
    body: str = "",
    author: str = "",
    source_url: str = "",
    source_ref: str = "",
    now: datetime | None = None,
) -> dict[str, Any]:
    """File an idea for the backlog as an operator (R-IDEA-1, source ``operator``).

    ``title``: one line (at most 300 characters). ``body``: the details. ``author``: the WG
    handle of the person it comes from (a handle not in the ledger is kept as given; empty:
    the operator). ``source_url``: where it was suggested (http/https). ``source_ref``: your own
    reference (a mail id…): filing the same reference again files nothing new; empty = the same
    title and body file nothing new. A bad field fails the run naming it, before anything is
    recorded."""
    ctx = context(now)
    idea = validate_idea(title=title, body=body)
    url = check_url(source_url)
    author = (author or "").strip()
    if len(author) > 100:
        raise InvalidIdea("author", "has more than 100 characters")
    person_id = None
    if author:
        with ctx.ledger.read() as session:
            try:
                person_id = repo.get_person(session, author).id
            except NotFound:  # not a person in the ledger: kept as a handle
                person_id = None
    idea_id, created = file_step(
        ctx,
        idea=idea,
        source="operator",
        source_key=operator_key(idea, source_ref),
        source_url=url,
        author_id=person_id,
        author_handle=(author or None) if person_id is None else None,
    )
    _show(idea_id, created, source="operator", idea=idea)
    return {"idea": idea_id, "filed": created, "status": "new"}
