"""The common room on Matrix (R-COMMS): ``RoomWriter`` as a mixin of ``MatrixConnector``.

A bridged room is a Matrix room (``moderators``, ``working-group``, or any alias or room id). A
conversation is a thread: its id is ``<room id>/<root event id>`` (as ``Messenger.reply`` takes
it), replies are ``m.thread`` relations, edits are ``m.replace`` events and deletions
redactions. Every write carries a transaction id derived from what it does, so a resend after a
5xx or a dropped connection lands once (the homeserver answers a known id with the first event).

People's messages come back by the appservice push (``inbound.room_attributes``), the bot's own
never (the hook does not store them).
"""

from __future__ import annotations

import hashlib
import html
import re
from typing import Any

from charterflow_matrix import payloads
from charterflow_matrix.client import q
from connectors.base import MessageRef

__all__ = ["ROOM_TEXT_LIMIT", "MatrixRooms", "edit_content"]

# Matrix counts bytes, not characters (65,536 per event). 16,000 characters keep an edit (the
# text twice, plain and HTML) inside ``payloads.MAX_CONTENT_BYTES`` for ordinary text; longer
# text is shortened by rules.commons with a link to the original.
ROOM_TEXT_LIMIT = 16_000
# The bold title ``payloads.message`` puts first in a conversation's first copy.
_TITLE = re.compile(r"<strong>([^<]*)</strong><br><br>")


def relayed(content: dict[str, Any]) -> dict[str, Any]:
    """A copy as the bridge sends it: the ``**name**`` shown bold in the HTML body clients display
    (the plain body keeps the asterisks; ``html.escape`` left them alone, so no markup can be
    injected), and an empty ``m.mentions``, so the legacy push rules never read the body: another
    platform's "@room" or a name in it pings nobody, though the bot may notify the whole room
    (https://spec.matrix.org/v1.11/client-server-api/#user-and-room-mentions)."""
    rich = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", str(content.get("formatted_body", "")))
    return {**content, "formatted_body": rich, "m.mentions": {}}


def edit_content(*, event_id: str, text: str, title: str | None = None) -> dict[str, Any]:
    """An ``m.replace`` edit of ``event_id`` with ``text``: ``m.new_content`` holds the new
    message, the outer body a ``* `` fallback for clients without edits
    (https://spec.matrix.org/v1.11/client-server-api/#event-replacements). Kept within
    ``payloads.MAX_CONTENT_BYTES`` by shortening the text with a visible note."""
    while True:
        new = relayed(payloads.message(title=title, text=text))
        content = {
            **new,
            "body": f"* {new['body']}",
            "formatted_body": f"* {new['formatted_body']}",
            "m.new_content": new,
            "m.relates_to": {"rel_type": "m.replace", "event_id": event_id},
        }
        size = payloads.content_size(content)
        if size <= payloads.MAX_CONTENT_BYTES:
            return content
        keep = max(0, len(text) - (size - payloads.MAX_CONTENT_BYTES) // 4 - 200)
        text = (
            text[:keep].rstrip() + f" … [shortened to fit Matrix's event size: {len(text) - keep} characters left out]"
        )


def _split_thread(thread_id: str) -> tuple[str, str]:
    room, _, root = str(thread_id).partition("/")
    if not room.startswith("!") or not root.startswith("$"):
        raise ValueError(f"not a Matrix thread id: {thread_id!r}")
    return room, root


class MatrixRooms:
    """``RoomWriter`` (``connectors.base``) for ``MatrixConnector``: uses its ``room_id``,
    ``send``, ``_ref_message`` and ``client``."""

    room_id: Any
    send: Any
    client: Any
    _ref_message: Any

    def room_text_limit(self) -> int:
        """:data:`ROOM_TEXT_LIMIT` characters."""
        return ROOM_TEXT_LIMIT

    def room_key(self, room: str) -> str:
        """The room's id (``!…:server``), as pushed events name it; ``FatalError`` when there is
        no such room."""
        return str(self.room_id(room))

    def room_thread(self, *, room: str, message_id: str, name: str) -> str:
        """The thread a message opens: rooted at the message itself (no call is needed; the
        first ``m.thread`` reply makes it a thread in clients)."""
        return f"{self.room_id(room)}/{message_id}"

    def room_post(
        self, *, room: str, text: str, thread_id: str | None = None, title: str | None = None, key: str | None = None
    ) -> MessageRef:
        """A reply in thread ``thread_id`` (an ``m.thread`` relation), else a message in
        ``room`` with ``title`` in bold first; its ``thread_id`` roots the replies."""
        if thread_id:
            room_id, root = _split_thread(thread_id)
            content = relayed(payloads.message(title=None, text=text, thread_root=root))
            return self._ref_message(room_id, self.send(room_id, "m.room.message", content, key=key), thread_root=root)
        room_id = str(self.room_id(room))
        content = relayed(payloads.message(title=title or None, text=text))
        return self._ref_message(room_id, self.send(room_id, "m.room.message", content, key=key))

    def room_edit(self, *, room: str, thread_id: str | None, message_id: str, text: str) -> None:
        """An ``m.replace`` of the bot's message; the same text again is the same transaction."""
        room_id = self._room_of(room, thread_id)
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
        title = self._title(room_id, message_id) if thread_id == f"{room_id}/{message_id}" else None
        self.send(
            room_id,
            "m.room.message",
            edit_content(event_id=message_id, text=text, title=title),
            key=f"commons-edit:{room_id}:{message_id}:{digest}",
        )

    def _title(self, room_id: str, event_id: str) -> str | None:
        """The bold title ``room_post`` put above a conversation's first copy, read from the
        original event (``/event`` answers it without its edits applied:
        https://spec.matrix.org/v1.11/client-server-api/#applying-mnew_content)."""
        event = self.client.request(
            "GET", f"/_matrix/client/v3/rooms/{q(room_id)}/event/{q(event_id)}", what=f"event {event_id}"
        )
        found = _TITLE.match(str((event.get("content") or {}).get("formatted_body") or ""))
        return html.unescape(found.group(1)) if found else None

    def room_delete(self, *, room: str, thread_id: str | None, message_id: str) -> None:
        """A redaction of the bot's message (``PUT /rooms/{room}/redact/{event}/{txnId}``);
        an event the homeserver no longer knows is fine
        (https://spec.matrix.org/v1.11/client-server-api/#redactions)."""
        room_id = self._room_of(room, thread_id)
        txn = payloads.txn_id(f"commons-redact:{room_id}:{message_id}")
        self.client.request(
            "PUT",
            f"/_matrix/client/v3/rooms/{q(room_id)}/redact/{q(message_id)}/{txn}",
            what=f"redact {message_id}",
            json_body={"reason": "deleted where it was written"},
            missing_ok=True,
        )

    def _room_of(self, room: str, thread_id: str | None) -> str:
        if thread_id and str(thread_id).startswith("!"):
            return _split_thread(thread_id)[0]
        return str(self.room_id(room))
