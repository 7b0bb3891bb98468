"""The ``commons-poll`` flow: read the bridged rooms of platforms that do not push their
messages (a ``RoomReader``: Discord's channels and the threads of their conversations) with
``after=`` cursors kept in the ledger, and relay what is new, edited or deleted (R-COMMS).

A room read for the first time starts at its newest message (what was written before the bridge
existed is not copied); a conversation's thread starts at the message it hangs on. The cursor
moves past a message only once its relay is recorded: a run that fails half-way (a platform
down, a rate limit beyond the client's patience) leaves the rest for the next run, and ``once``
keeps what was already copied from being copied again. Each room costs two reads per run (new
messages, and the newest :data:`WINDOW` to find edits and deletions), plus one per page of
backlog; the connector's client paces them within the platform's rate limits.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime
from typing import Any

from prefect import flow

from connectors.base import RoomReader
from connectors.errors import ConnectorError, FatalError
from flows.commons.bridges import Bridge, CommonsSettings, bridges
from flows.commons.relay import relay_delete, relay_edit, relay_new
from flows.kit import Ctx, context
from ledger import commons as store
from rules.commons import content_hash, deleted_ids

__all__ = ["PAGE", "WINDOW", "commons_poll", "poll_room"]

log = logging.getLogger("charterflow.commons")
PAGE = 100  # Discord's GET /channels/{id}/messages allows limit 1..100
WINDOW = 50  # the newest messages compared with the ledger for edits and deletions


def poll_room(ctx: Ctx, bridge: Bridge, platform: str, thread: str | None = None) -> dict[str, int]:
    """Relay what is new, edited or deleted in ``bridge``'s room on ``platform`` (or in one of
    its conversation threads). Returns counts."""
    space = ctx.platforms.space(platform)
    if space is None:
        raise LookupError(f"{platform}: not served")
    reader: RoomReader = space.capable(RoomReader)
    instance, room = space.instance, bridge.rooms[platform]
    where = thread or room
    mark = room if thread is None else f"{room}#{thread}"
    counts = {"read": 0, "relayed": 0, "edited": 0, "deleted": 0}
    with ctx.ledger.read() as session:
        last = store.cursor(session, bridge=bridge.name, platform=platform, room=mark, instance=instance)
    if last is None and thread is None:
        newest = reader.room_messages(room=where, after=None, limit=1)
        _move_cursor(ctx, bridge, platform, mark=mark, instance=instance, last_id=newest[-1].id if newest else "0")
        return counts
    last = last or thread
    while True:
        page = reader.room_messages(room=where, after=last, limit=PAGE)
        for msg in page:
            counts["read"] += 1
            outcome = relay_new(ctx, bridge, platform, replace(msg, thread_id=thread))
            counts["relayed"] += outcome.startswith("relayed")
            _move_cursor(ctx, bridge, platform, mark=mark, instance=instance, last_id=msg.id)
            last = msg.id
        if len(page) < PAGE:
            break
    window = reader.room_messages(room=where, after=None, limit=WINDOW)
    with ctx.ledger.read() as session:
        known = {
            s.message_id: s.content_hash
            for s in store.sources_in_room(session, platform=platform, instance=instance, room=room, thread_id=thread)
        }
    for msg in window:
        if msg.id in known and content_hash(msg.text, msg.attachments) != known[msg.id]:
            relay_edit(ctx, bridge, platform, replace(msg, thread_id=thread))
            counts["edited"] += 1
    for gone in sorted(deleted_ids(known, [m.id for m in window], complete=len(window) < WINDOW)):
        relay_delete(ctx, platform, gone)
        counts["deleted"] += 1
    return counts


def _move_cursor(ctx: Ctx, bridge: Bridge, platform: str, *, mark: str, instance: str, last_id: str) -> None:
    """Record that ``bridge``'s room (or thread) ``mark`` on ``platform`` is read up to ``last_id``."""
    with ctx.ledger.transaction() as session:
        store.set_cursor(
            session, bridge=bridge.name, platform=platform, room=mark, instance=instance, last_id=last_id, at=ctx.now
        )


@flow(name="commons-poll", flow_run_name="commons-poll")
def commons_poll(now: datetime | None = None) -> dict[str, Any]:
    """Poll every bridged room of a ``RoomReader`` platform, and the most recent threads of its
    conversations; a room that fails does not stop the others, and the run then fails so that
    Prefect shows it (the next run picks up from the cursors)."""
    ctx = context(now)
    settings = CommonsSettings()
    result: dict[str, Any] = {}
    failed: list[str] = []
    for bridge in bridges(ctx.platforms, settings):
        for platform in bridge.rooms:
            space = ctx.platforms.space(platform)
            if space is None or space.capable(RoomReader) is None:
                continue
            with ctx.ledger.read() as session:
                threads = store.threads_in_room(
                    session, platform=platform, instance=space.instance, room=bridge.rooms[platform]
                )
            for thread in [None, *threads[-settings.poll_threads :]] if settings.poll_threads else [None]:
                name = f"{bridge.name}:{platform}:{thread or 'room'}"
                try:
                    result[name] = poll_room(ctx, bridge, platform, thread)
                except ConnectorError as exc:
                    # A refusal for good says what to change (connector messages hold no secret).
                    why = str(exc) if isinstance(exc, FatalError) else type(exc).__name__
                    log.warning("commons-poll: %s not read to the end (%s)", name, why)
                    failed.append(name)
    if failed:
        raise RuntimeError(f"commons-poll: {len(failed)} room(s) left for the next run: {', '.join(failed)}")
    return result
