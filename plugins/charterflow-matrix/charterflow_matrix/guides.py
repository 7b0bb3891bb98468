"""Guides on Matrix (R-GUIDE): ``GuideShelf`` and ``NewcomerWelcome``, a mixin of
``MatrixConnector``.

A guide is one message per part in the guides room (``CHARTERFLOW_MATRIX_GUIDES_ROOM``, default
``guides``; the bot creates it once, public and read-only for members, a child of the space),
pinned through the room's ``m.room.pinned_events`` state
(https://spec.matrix.org/v1.11/client-server-api/#mroompinned_events). A changed text is an edit
in place: an ``m.replace`` event pointing at the first message
(https://spec.matrix.org/v1.11/client-server-api/#event-replacements), so links to the guide stay
valid; a part no longer needed says so and is unpinned. Newcomers find the guides through the
space's topic, which links the guides room and each guide.

The Markdown of a guide is rendered to the ``formatted_body`` HTML clients show; the ``body``
keeps the Markdown. A part holds at most ``GUIDE_LIMIT`` characters, so the message and its
edit (the new text twice: the fallback and ``m.new_content``) fit an event; when they would not
(4-byte characters) the HTML is left out, never the text.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from markdown_it import MarkdownIt

from charterflow_matrix.client import q
from charterflow_matrix.payloads import MAX_CONTENT_BYTES, content_size
from connectors.base import MessageRef
from connectors.errors import FatalError

if TYPE_CHECKING:
    from charterflow_matrix.client import MatrixClient
    from charterflow_matrix.settings import MatrixSettings

__all__ = ["GUIDE_LIMIT", "MatrixGuides", "guide_content", "guide_edit", "welcome_topic"]

BOT_POWER = 150  # the connector's BOT_LEVEL: above the admins' 100
GUIDE_LIMIT = 8000  # characters a part; 4 bytes each, plain only, still fits (see the docstring)
GUIDE_MAX_PIECES = 4  # more parts than this and the guide links to its whole text elsewhere
PINNED = "m.room.pinned_events"
# Raw HTML in a guide stays text: clients sanitise formatted_body, but we send none of our own.
_MARKDOWN = MarkdownIt("commonmark", {"html": False, "linkify": False})


def _message(text: str, *, html: bool) -> dict[str, Any]:
    content: dict[str, Any] = {"msgtype": "m.text", "body": text}
    if html:
        content.update({"format": "org.matrix.custom.html", "formatted_body": _MARKDOWN.render(text).strip()})
    return content


def guide_content(text: str) -> dict[str, Any]:
    """One part of a guide as an ``m.room.message``: the Markdown as ``body`` and rendered as
    HTML; plain only when both would not fit. ``ValueError`` when even the text does not (a part
    longer than ``guide_format`` allows)."""
    content = _message(text, html=True)
    if content_size(content) > MAX_CONTENT_BYTES:
        content = _message(text, html=False)
    if content_size(content) > MAX_CONTENT_BYTES:
        raise ValueError(f"a guide part of {len(text)} characters does not fit a Matrix event")
    return content


def guide_edit(event_id: str, text: str) -> dict[str, Any]:
    """The ``m.replace`` of the message ``event_id`` showing ``text``. Its fallback (for clients
    without edits) is ``* `` and the text, shortened to a note when the event would be too big:
    ``m.new_content`` always holds the whole text."""
    new = guide_content(text)
    relates = {"rel_type": "m.replace", "event_id": event_id}
    for fallback in (
        _message("* " + text, html="formatted_body" in new),
        _message("* " + text, html=False),
        _message("* (the guide was updated: open it to read the new text)", html=False),
    ):
        content = {**fallback, "m.new_content": new, "m.relates_to": relates}
        if content_size(content) <= MAX_CONTENT_BYTES:
            return content
    return {**_message("* (updated)", html=False), "m.new_content": _message(text, html=False), "m.relates_to": relates}


def welcome_topic(summary: str, room_link: str, guides: Sequence[tuple[str, str]]) -> str:
    """The space's topic pointing newcomers at the guides: the summary, the guides room, and
    each guide's link."""
    lines = [summary.strip(), f"Community guides: {room_link}"]
    lines += [f"- {title}: {url}" for title, url in guides]
    return "\n".join(lines)


def _shown(event: Mapping[str, Any]) -> dict[str, Any] | None:
    """What a message shows now: its latest edit's ``m.new_content`` (the server aggregates it
    in ``unsigned``), else its own content; ``None`` when it was redacted."""
    unsigned = event.get("unsigned") or {}
    if unsigned.get("redacted_because") or not event.get("content"):
        return None
    latest = (unsigned.get("m.relations") or {}).get("m.replace") or {}
    new = (latest.get("content") or {}).get("m.new_content")
    return dict(new) if isinstance(new, dict) else dict(event["content"])


class MatrixGuides:
    """``GuideShelf`` and ``NewcomerWelcome`` over the connector's client (see the module)."""

    GUIDE_LIMIT = GUIDE_LIMIT
    GUIDE_MAX_PIECES = GUIDE_MAX_PIECES
    _guides_lock = threading.Lock()

    if TYPE_CHECKING:  # what MatrixConnector provides
        client: MatrixClient
        settings: MatrixSettings

        @property
        def me(self) -> str: ...

        def room_id(self, channel: str) -> str: ...
        def alias(self, channel: str) -> str: ...
        def send(self, room: str, event_type: str, content: Mapping[str, Any], *, key: str | None) -> str: ...
        def _ref_message(self, room: str, event_id: str, thread_root: str | None = None) -> MessageRef: ...

    def guide_format(self) -> tuple[int, int, bool]:
        """8000 characters a part, 4 parts a guide, no title of its own (``GuideShelf``)."""
        return self.GUIDE_LIMIT, self.GUIDE_MAX_PIECES, True

    # ----------------------------------------------------------------------------------------
    # the guides room

    def guides_room(self, channel: str | None = None) -> str:
        """The room id of ``channel`` (it must exist), or of the guides room, created once when
        missing: public, members read (posting needs power 50), a child of the space."""
        if channel is not None:
            return self.room_id(channel)
        name = self.settings.guides_room
        with self._guides_lock:
            try:
                return self.room_id(name)
            except FatalError as exc:
                if exc.status != 404:
                    raise
            space = self.room_id(self.settings.space)
            prefix = self.settings.alias_prefix
            levels: dict[str, Any] = {"events_default": 50}
            if self._creator_is_outranked():
                # Before room version 12 the creator is an ordinary 100, as the admins are, and
                # nobody may lower a level equal to their own (spec, m.room.power_levels).
                levels["users"] = {self.me: BOT_POWER}
            try:
                created = self.client.request(
                    "POST",
                    "/_matrix/client/v3/createRoom",
                    what="create the guides room",
                    json_body={
                        "room_alias_name": f"{prefix}{name}",
                        "name": "Community guides",
                        "topic": "The community's guides (pinned).",
                        "preset": "public_chat",
                        "power_level_content_override": levels,
                    },
                )
            except FatalError as exc:  # another process created it meanwhile (M_ROOM_IN_USE)
                if exc.status != 400:
                    raise
                return self.room_id(name)
            room = str(created["room_id"])
            self.client.request(
                "PUT",
                f"/_matrix/client/v3/rooms/{q(space)}/state/m.space.child/{q(room)}",
                what="add the guides room to the space",
                json_body={"via": [self.settings.server_name]},
            )
            return room

    def _creator_is_outranked(self) -> bool:
        """True when the server's default room version is before 12, whose creators do not
        outrank every power level (MSC4289); production servers may pin an older default
        (``default_room_version``). https://spec.matrix.org/v1.11/client-server-api/#get_matrixclientv3capabilities"""
        caps = self.client.get("/_matrix/client/v3/capabilities", what="the server's capabilities")
        version = str(caps.get("capabilities", {}).get("m.room_versions", {}).get("default", ""))
        return version.isdigit() and int(version) < 12

    def _pinned(self, room: str) -> list[str]:
        state = self.client.get(
            f"/_matrix/client/v3/rooms/{q(room)}/state/{PINNED}/", what="pinned messages", missing_ok=True
        )
        return [str(e) for e in state.get("pinned", []) if isinstance(e, str)]

    def _pin(self, room: str, *, keep: Sequence[str], drop: Sequence[str]) -> None:
        """Pin ``keep`` and unpin ``drop``, leaving the other pins (other guides) as they are;
        written only when it changes."""
        with self._guides_lock:
            current = self._pinned(room)
            wanted = [e for e in current if e not in drop] + [e for e in keep if e not in current]
            if wanted != current:
                self.client.request(
                    "PUT",
                    f"/_matrix/client/v3/rooms/{q(room)}/state/{PINNED}/",
                    what="pin the guide",
                    json_body={"pinned": wanted},
                )

    # ----------------------------------------------------------------------------------------
    # GuideShelf

    def _shelve_piece(self, room: str, text: str, old: MessageRef | None, *, key: str) -> MessageRef:
        if old is not None and old.thread_id.partition("/")[0] == room:
            event = self.client.get(
                f"/_matrix/client/v3/rooms/{q(room)}/event/{q(old.id)}", what="a guide message", missing_ok=True
            )
            shown = _shown(event) if event else None
            if shown is not None:
                new = guide_content(text)
                if (shown.get("body"), shown.get("formatted_body")) != (new["body"], new.get("formatted_body")):
                    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
                    self.send(room, "m.room.message", guide_edit(old.id, text), key=f"{key}:edit:{old.id}:{digest}")
                return self._ref_message(room, old.id)
            key = f"{key}:after:{old.id}"  # gone (redacted): posted again, under a new transaction id
        return self._ref_message(room, self.send(room, "m.room.message", guide_content(text), key=key))

    def shelve_guide(
        self, *, channel: str | None, title: str, pieces: Sequence[str], placed: Sequence[MessageRef] = (), key: str
    ) -> list[MessageRef]:
        """Each piece a message in ``channel`` (default the guides room), pinned: placed ones
        edited in place (``m.replace``) when their text changed, missing ones posted (the
        transaction id from ``key``), extra ones told they are no longer used and unpinned."""
        room = self.guides_room(channel)
        refs: list[MessageRef] = []
        for i in range(max(len(pieces), len(placed))):
            text = pieces[i] if i < len(pieces) else f"(This part of \u201c{title[:80]}\u201d is no longer used.)"
            refs.append(self._shelve_piece(room, text, placed[i] if i < len(placed) else None, key=f"{key}:{i}"))
        self._pin(room, keep=[r.id for r in refs[: len(pieces)]], drop=[r.id for r in refs[len(pieces) :]])
        return refs

    # ----------------------------------------------------------------------------------------
    # NewcomerWelcome

    def set_welcome(self, *, summary: str, guides: Sequence[tuple[str, str]], channel: str | None = None) -> str:
        """The space's topic (``m.room.topic``): ``summary``, the guides room's link and each
        guide's; written only when it changes."""
        room = self.guides_room(channel)
        alias = self.alias(channel or self.settings.guides_room)
        text = welcome_topic(summary, f"https://matrix.to/#/{q(alias if alias.startswith('#') else room)}", guides)
        space = self.room_id(self.settings.space)
        current = self.client.get(
            f"/_matrix/client/v3/rooms/{q(space)}/state/m.room.topic/", what="the space's topic", missing_ok=True
        )
        if current.get("topic") != text:
            self.client.request(
                "PUT",
                f"/_matrix/client/v3/rooms/{q(space)}/state/m.room.topic/",
                what="the space's topic",
                json_body={"topic": text},
            )
        return f"the topic of {self.alias(self.settings.space)}"
