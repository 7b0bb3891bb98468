"""``/help [topic]`` (R-GUIDE): the best matching guides and their links on each platform,
answered through the inbox once per event. Discord's ``/help`` is answered privately (the gateway
deferred the interaction; this answers it, as ``/idea`` does); a Forum post starting ``/help``
(in a topic, or a private message to the system user) and a Matrix ``!help`` are answered in
the conversation they were said in (``Messenger.reply``). Read-only: nothing is decided, so only
the answer is keyed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from flows.guides.library import load_guides
from flows.kit import Ctx, answer_interaction, context, log, once
from flows.presentation import DISCORD_MESSAGE_LIMIT, label
from ledger import guides as shelf_ledger
from ledger.models import InboxEvent
from rules.guides import Guide, match_guides

ACTOR = "flow:guides-help"
MAX_TOPIC = 100
HELP_WORD = "/help"  # a Forum post's first word (flows.inbox_routing routes it here)
__all__ = ["HELP_WORD", "handle_help", "help_answer", "help_topic"]


def _links(ctx: Ctx, first: str | None) -> dict[str, list[tuple[str, str]]]:
    with ctx.ledger.read() as session:
        links: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for post in sorted(shelf_ledger.posts(session), key=lambda p: p.platform != first):
            if post.url:
                links[post.slug].append((label(post.platform), post.url))
    return links


def _guide_line(guide: Guide, where: Sequence[tuple[str, str]], *, plain: bool) -> str:
    if plain:
        return f"- {guide.title}: " + (" \u00b7 ".join(f"{name} {url}" for name, url in where) or "not published yet")
    shown = " \u00b7 ".join(f"[{name}](<{url}>)" for name, url in where)
    return f"- **{guide.title}**" + (f": {shown}" if shown else " (not published yet)")


def help_answer(
    ctx: Ctx, topic: str, guides: Sequence[Guide], *, limit: int = 3, plain: bool = False, first: str | None = None
) -> str:
    """The answer to ``/help topic``: the matching guides (best first) with a link on each
    platform where they are published; no match lists every guide's title. ``plain``: bare
    links (``Title: Forum https://…``), readable where Markdown is not rendered (Matrix);
    ``first``: that platform's link first (where the question was asked)."""
    topic = " ".join(topic.split())[:MAX_TOPIC]
    found = match_guides(topic, guides, limit=limit)
    links = _links(ctx, first)
    if not found:
        titles = "; ".join(g.title for g in guides) or "none yet"
        return f"No guide matches \u201c{topic}\u201d. The guides: {titles}."
    lines = [f"Guides about \u201c{topic}\u201d:" if topic else "Guides to start with:"]
    lines += [_guide_line(guide, links.get(guide.slug, []), plain=plain) for guide in found]
    text = "\n".join(lines)
    return text if len(text) <= DISCORD_MESSAGE_LIMIT else "\n".join(lines[:2])


def help_topic(attrs: Mapping[str, str]) -> str:
    """What a help request asks about: Discord's ``topic`` option, a Matrix command's arguments,
    or the rest of a Forum post's first line after ``/help``."""
    if "option.topic" in attrs or "args" in attrs:
        return attrs.get("option.topic") or attrs.get("args", "")
    first = attrs.get("raw", "").strip().split("\n", 1)[0]
    word, _, rest = first.partition(" ")
    return rest if word.casefold() == HELP_WORD else ""


def _reply(ctx: Ctx, *, source: str, thread: str, event_id: int, text: str) -> bool:
    """Answer in the conversation the request came from, once per event; ``False`` when that
    platform cannot (not served, no ``Messenger``, no thread)."""
    space = ctx.platforms.space(source)
    messenger = space.messenger if space is not None else None
    if messenger is None or not thread:
        log.info("help: inbox:%s has nowhere to be answered on %s", event_id, source)
        return False
    once(
        ctx,
        key=f"guides:help-answer:inbox:{event_id}",
        platform=source,
        actor=ACTOR,
        about=f"inbox:{event_id}",
        act=lambda: messenger.reply(thread_id=thread, text=text, key=f"guides-help-{event_id}"),
    )
    return True


def handle_help(*, ledger: Any, event: InboxEvent, now: datetime | None = None) -> str:
    """Inbox handler of route ``guides-help`` (Discord ``/help [topic]``, a Forum post
    ``/help <topic>``, Matrix ``!help <topic>``); returns ``help:<n>`` (the number of guides
    named)."""
    ctx = context(now, ledger=ledger)
    with ctx.ledger.read() as session:
        row = session.get_one(InboxEvent, event.id)
        payload = dict(row.payload or {})
        source = str(row.source)
    attrs = {str(k): str(v) for k, v in (payload.get("attributes") or {}).items()}
    guides, _ = load_guides()
    topic = help_topic(attrs)
    if attrs.get("interaction_token"):
        text = help_answer(ctx, topic, guides)
        answer_interaction(
            ctx,
            key=f"guides:help-answer:inbox:{event.id}",
            actor=ACTOR,
            about=f"inbox:{event.id}",
            attributes=attrs,
            text=text,
        )
    else:
        # Matrix clients show the plain body: bare links read (and open) there and on the Forum.
        text = help_answer(ctx, topic, guides, plain=True, first=source)
        if not _reply(
            ctx, source=source, thread=attrs.get("reply_to") or attrs.get("topic_id", ""), event_id=event.id, text=text
        ):
            return "help:unanswered"
    return f"help:{sum(line.startswith('- ') for line in text.splitlines())}"
