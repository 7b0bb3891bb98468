"""``/help [topic]`` (R-GUIDE): the best matching guides and their links on each platform,
answered privately through the inbox (the gateway deferred the interaction; this answers it,
once per event, as ``/idea`` does). Read-only: nothing is decided, so only the answer is keyed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from ledger import guides as shelf_ledger
from ledger.models import InboxEvent
from rules.guides import Guide, match_guides

from flows.guides.library import load_guides
from flows.guides.publish import known_platforms
from flows.kit import Ctx, answer_interaction, context
from flows.presentation import DISCORD_MESSAGE_LIMIT, label

ACTOR = "flow:guides-help"
MAX_TOPIC = 100
__all__ = ["handle_help", "help_answer"]


def help_answer(ctx: Ctx, topic: str, guides: Sequence[Guide], *, limit: int = 3) -> str:
    """The answer to ``/help topic``: the matching guides (best first) with a link on each
    platform where they are published; no match lists every guide's title."""
    topic = " ".join(topic.split())[:MAX_TOPIC]
    found = match_guides(topic, guides, limit=limit)
    with ctx.ledger.read() as session:
        links: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for post in shelf_ledger.posts(session):
            if post.url:
                links[post.slug].append((label(post.platform), post.url))
    if not found:
        titles = "; ".join(g.title for g in guides) or "none yet"
        return f"No guide matches \u201c{topic}\u201d. The guides: {titles}."
    lines = [f"Guides about \u201c{topic}\u201d:" if topic else "Guides to start with:"]
    for guide in found:
        where = " \u00b7 ".join(f"[{name}](<{url}>)" for name, url in links.get(guide.slug, []))
        lines.append(f"- **{guide.title}**" + (f": {where}" if where else " (not published yet)"))
    text = "\n".join(lines)
    return text if len(text) <= DISCORD_MESSAGE_LIMIT else "\n".join(lines[:2])


def handle_help(*, ledger: Any, event: InboxEvent, now: datetime | None = None) -> str:
    """Inbox handler of route ``guides-help`` (Discord ``/help [topic]``); returns
    ``help:<n>`` (the number of guides named)."""
    ctx = context(now, ledger=ledger)
    with ctx.ledger.read() as session:
        row = session.get_one(InboxEvent, event.id)
        payload = dict(row.payload or {})
    attrs = {str(k): str(v) for k, v in (payload.get("attributes") or {}).items()}
    guides, _ = load_guides(known_platforms=known_platforms(ctx))
    text = help_answer(ctx, attrs.get("option.topic", ""), guides)
    answer_interaction(ctx, key=f"guides:help-answer:inbox:{event.id}", actor=ACTOR,
                       about=f"inbox:{event.id}", attributes=attrs, text=text)
    return f"help:{text.count(chr(10) + '- **')}"
