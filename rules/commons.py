"""The common room (R-COMMS): what the bridge relays, where, and how a relayed message reads.

Pure functions over plain values (no connector types: ``rules`` never imports ``connectors``).
The flows (``flows/commons``) read the rooms, ask these functions, and act.

How R-COMMS is read here:

- A message is relayed unless the bridge wrote it (its own account, or a copy the ledger knows),
  or it holds nothing (no text, no attachment): that is what keeps the bridge from looping.
- One message becomes exactly one message on each other platform (edits and deletions then map
  one to one): a text longer than the platform's limit is shortened with a link to the original.
- A copy names its author and platform first (``**avery_quill** (Discord): ...``); attachments
  become links under the text.
- A conversation (a Forum topic, a Discord message and its thread) opened on one platform opens
  one on each other; its title comes from the source's title, else from the text's first line.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence

from rules.decision import Decision

__all__ = [
    "RULING",
    "content_hash",
    "conversation_title",
    "deleted_ids",
    "fit",
    "relay_decision",
    "relay_text",
    "targets",
]

RULING = "R-COMMS"
TITLE_MIN = 15  # Discourse's default min_topic_title_length
TITLE_MAX = 100  # a Discord thread name's limit, shorter than a Forum title's


def relay_decision(*, own: bool, is_copy: bool, text: str, attachments: Sequence[str] = ()) -> Decision:
    """Whether a message read from a bridged room is relayed (R-COMMS: nothing loops)."""
    if own:
        return Decision(allowed=False, ruling=RULING, reason="written by the bridge's own account")
    if is_copy:
        return Decision(allowed=False, ruling=RULING, reason="a copy the bridge made")
    if not text.strip() and not attachments:
        return Decision(allowed=False, ruling=RULING, reason="nothing to relay (no text, no attachment)")
    return Decision(allowed=True, ruling=RULING, reason="a person's message in a bridged room")


def targets(platforms: Iterable[str], source: str) -> list[str]:
    """The platforms of a bridge that receive a copy of what was written on ``source``."""
    return [p for p in dict.fromkeys(platforms) if p != source]


def relay_text(*, author: str, platform: str, text: str, attachments: Sequence[str] = ()) -> str:
    """The copy's text: author and platform first, then the text, then one link per attachment."""
    body = text.strip()
    links = "\n".join(f"[attachment] {url}" for url in attachments)
    head = f"**{author}** ({platform}):"
    return "\n".join(part for part in (f"{head} {body}" if body else head, links) if part)


def fit(text: str, *, limit: int, link: str | None) -> str:
    """``text`` within ``limit`` characters: unchanged when it fits, else cut at a line or word
    boundary with a note pointing at the original (``link``) for the rest."""
    if limit <= 0:
        raise ValueError("limit must be positive")
    if len(text) <= limit:
        return text
    note = f"\n… [shortened: read it all at {link}]" if link else "\n… [shortened to fit this platform]"
    room = max(limit - len(note), 0)
    cut = text[:room]
    boundary = max(cut.rfind("\n"), cut.rfind(" "))
    if boundary > room // 2:
        cut = cut[:boundary]
    return (cut.rstrip() + note)[:limit]


def conversation_title(*, title: str | None, text: str, author: str, platform: str) -> str:
    """A title for the conversation a copy opens: the source's own title, else the first line of
    its text; never shorter than a Forum accepts (the author and platform fill it up)."""
    base = (
        re.sub(r"\s+", " ", (title or "").strip())
        or re.sub(r"\s+", " ", next((line for line in text.splitlines() if line.strip()), "")).strip()
    )
    base = re.sub(r"^[#>\s]+", "", re.sub(r"[*_`~]", "", base)).strip()
    if len(base) < TITLE_MIN:
        base = f"{base} ({author} on {platform})".strip() if base else f"From {author} on {platform}"
    if len(base) < TITLE_MIN:
        base = f"Common room: {base}"
    return base if len(base) <= TITLE_MAX else base[: TITLE_MAX - 1].rstrip() + "…"


def content_hash(text: str, attachments: Sequence[str] = ()) -> str:
    """What an edit changes: a short digest of the text and the attachments. An attachment is
    its link without the query: a signature in it is issued again while the file stays (Discord's
    CDN links, ``ex``/``is``/``hm``, valid a day:
    https://discord.com/developers/docs/reference#signed-attachment-cdn-urls)."""
    raw = "\x1f".join([text, *(a.split("?", 1)[0] for a in attachments)]).encode("utf-8")
    return hashlib.sha256(raw).hexdigest()[:24]


def deleted_ids(known: Iterable[str], window: Sequence[str], *, complete: bool = False) -> set[str]:
    """The ids of ``known`` messages deleted meanwhile: inside the span of ``window`` (the ids a
    platform still lists, the newest of a room; numeric ids growing with time) but not in it. A
    known id older than the window says nothing (it may simply be older), unless ``complete``
    (the window is the whole room)."""
    ids = {int(i) for i in window}
    if not ids and not complete:
        return set()
    low = -1 if complete else min(ids)
    return {k for k in known if k.isdigit() and int(k) >= low and int(k) not in ids}
