"""The inbox route of the common room (called by ``flows.inbox`` at import): ``commons``, a
pushed message of a bridged room: the Forum's ``post_created``/``post_edited``/``post_destroyed``
webhooks in a category listed in ``CHARTERFLOW_GATEWAY_DISCOURSE_COMMONS_CATEGORIES``, or any
platform's event carrying the neutral ``room.*`` attributes (Matrix's appservice push, Slack's
Events API; ``flows/README.md``, "Inbound events from a plugin platform").

:func:`relay_pushed` is the plain function behind it: any platform's route that receives a
room's messages by push (a Matrix application service transaction, say) builds a
``RoomMessage`` and calls it.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime
from typing import Any

from connectors.base import AuthorNames, Links, OperatorAccount, RoomMessage, UserRef
from flows.commons.bridges import bridges, room_writer
from flows.commons.relay import relay_delete, relay_edit, relay_new
from flows.kit import Ctx, context
from ledger.models import InboxEvent

__all__ = ["ROUTE", "handle_commons", "register", "relay_pushed"]

log = logging.getLogger("charterflow.commons")
ROUTE = "commons"
CHANGES = {"post_created": "new", "post_edited": "edit", "post_destroyed": "delete"}


def relay_pushed(ctx: Ctx, *, platform: str, room_key: str, change: str, message: RoomMessage) -> str:
    """Relay a message pushed from the room whose platform id is ``room_key`` on ``platform``;
    ``change``: ``new``, ``edit`` or ``delete``. A room no bridge holds is left alone."""
    found = room_writer(ctx.platforms, platform)
    if found is None:
        return "skipped: platform not bridged"
    writer = found[0]
    bridge = next(
        (
            b
            for b in bridges(ctx.platforms)
            if platform in b.rooms and writer.room_key(b.rooms[platform]) == str(room_key)
        ),
        None,
    )
    if bridge is None:
        return "skipped: room not bridged"
    if change == "delete":
        return relay_delete(ctx, platform, message.id)
    if change == "edit":
        return relay_edit(ctx, bridge, platform, message)
    return relay_new(ctx, bridge, platform, message)


def handle_commons(*, ledger: Any, event: InboxEvent, now: datetime | None = None) -> str:
    """Inbox handler of route ``commons``: the verified event's attributes as a ``RoomMessage``."""
    ctx = context(now, ledger=ledger)
    with ctx.ledger.read() as session:
        row = session.get_one(InboxEvent, event.id)
        source, kind, payload = row.source, row.kind, dict(row.payload or {})
    attrs = {str(k): str(v) for k, v in (payload.get("attributes") or {}).items()}
    if "room.change" in attrs:
        return _relay_neutral(ctx, source, attrs, event_id=event.id)
    change = CHANGES.get(kind)
    space = ctx.platforms.space(source)
    if change is None or space is None or not attrs.get("post_id"):
        log.info("commons: inbox event %s (%s/%s) is not a room message; kept", event.id, source, kind)
        return "refused:not-a-room-message"
    author = str(payload.get("actor") or attrs.get("username") or "")
    operator = space.capable(OperatorAccount)
    own = operator is not None and author.casefold() == operator.operator_name().casefold()
    first = attrs.get("post_number") == "1"
    links = space.capable(Links)
    message = RoomMessage(
        platform=source,
        id=attrs["post_id"],
        room=attrs.get("category_id", ""),
        author=UserRef(
            platform=source, id=attrs.get("user_id", ""), username=author, display_name=attrs.get("name") or None
        ),
        text=attrs.get("text", attrs.get("raw", "")),
        created_at=ctx.now,
        thread_id=attrs.get("topic_id") or None,
        title=attrs.get("topic_title") if first else None,
        own=own,
        url=links.thread_url(attrs["topic_id"]) if links is not None and attrs.get("topic_id") else None,
    )
    return relay_pushed(ctx, platform=source, room_key=attrs.get("category_id", ""), change=change, message=message)


def _relay_neutral(ctx: Ctx, source: str, attrs: dict[str, str], *, event_id: int) -> str:
    """A pushed room message described by the neutral ``room.*`` attributes."""
    change, message_id, room_key = attrs.get("room.change"), attrs.get("room.message_id"), attrs.get("room.key")
    if change not in ("new", "edit", "delete") or not message_id or not room_key:
        log.info("commons: inbox event %s (%s) is not a room message; kept", event_id, source)
        return "refused:not-a-room-message"
    user_id, username, text = attrs.get("user_id", ""), attrs.get("username", ""), attrs.get("room.text", "")
    found = room_writer(ctx.platforms, source)
    names = found[0] if found is not None and isinstance(found[0], AuthorNames) and change != "delete" else None
    if names is not None and user_id and username in ("", user_id):
        username = names.author_name(user_id) or username
    if names is not None:
        text = _named(names, text, attrs.get("room.mentions", "").split())
    message = RoomMessage(
        platform=source,
        id=message_id,
        room=room_key,
        author=UserRef(platform=source, id=user_id, username=username, display_name=attrs.get("display_name") or None),
        text=text,
        created_at=ctx.now,
        thread_id=attrs.get("room.thread_id") or None,
        title=attrs.get("room.title") or None,
        own=attrs.get("own") == "true",
        url=attrs.get("room.url") or None,
        attachments=tuple(a for a in attrs.get("room.attachments", "").split() if a),
    )
    return relay_pushed(ctx, platform=source, room_key=room_key, change=change, message=message)


def _named(names: AuthorNames, text: str, mentioned: list[str]) -> str:
    """``text`` with each person it names by ID only ("@U0…", ``room.mentions``) shown by name,
    as people read it where it was written."""
    for user_id in mentioned:
        name = names.author_name(user_id)
        if name:
            text = re.sub(rf"@{re.escape(user_id)}\b", "@" + name.replace("\\", "\\\\"), text)
    return text


def register() -> None:
    """Register the ``commons`` route with ``flows.inbox.register_handler``."""
    from flows import inbox  # lazy: cycle: flows.inbox imports this module to call register()

    inbox.register_handler(ROUTE, handle_commons)
