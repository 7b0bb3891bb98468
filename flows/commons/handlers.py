"""The inbox route of the common room (called by ``flows.inbox`` at import): ``commons``, a
pushed message of a bridged room (the Forum's ``post_created``/``post_edited``/``post_destroyed``
webhooks in a category listed in ``CHARTERFLOW_GATEWAY_DISCOURSE_COMMONS_CATEGORIES``).

:func:`relay_pushed` is the plain function behind it: any platform's route that receives a
room's messages by push (a Matrix application service transaction, say) builds a
``RoomMessage`` and calls it.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from connectors.base import Links, OperatorAccount, RoomMessage, RoomWriter, UserRef
from flows.commons.bridges import bridges
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
    space = ctx.platforms.space(platform)
    writer = space.capable(RoomWriter) if space is not None else None
    if writer is None:
        return "skipped: platform not bridged"
    bridge = next((b for b in bridges(ctx.platforms) if platform in b.rooms
                   and writer.room_key(b.rooms[platform]) == str(room_key)), None)
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
        platform=source, id=attrs["post_id"], room=attrs.get("category_id", ""),
        author=UserRef(platform=source, id=attrs.get("user_id", ""), username=author,
                       display_name=attrs.get("name") or None),
        text=attrs.get("raw", ""), created_at=ctx.now,
        thread_id=attrs.get("topic_id") or None, title=attrs.get("topic_title") if first else None,
        own=own, url=links.thread_url(attrs["topic_id"]) if links is not None and attrs.get("topic_id") else None)
    return relay_pushed(ctx, platform=source, room_key=attrs.get("category_id", ""), change=change,
                        message=message)


def register() -> None:
    """Register the ``commons`` route with ``flows.inbox.register_handler``."""
    from flows import inbox

    inbox.register_handler(ROUTE, handle_commons)
