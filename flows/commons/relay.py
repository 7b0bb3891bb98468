"""Relaying one message of a bridged room to the bridge's other rooms (R-COMMS).

:func:`relay_new`, :func:`relay_edit` and :func:`relay_delete` are plain functions any route
calls (the Forum's webhooks through :mod:`flows.commons.handlers`, the poller of
:mod:`flows.commons.poll`, a Matrix push): each reads the ledger, asks ``rules.commons``,
records the source before any copy is posted, and posts each copy as an effect claimed once
(``once``, keyed by bridge, source and target), so a retry after an outage duplicates nothing.

A platform that refuses a copy for good (``FatalError``: too long, no permission) gets a
``refused`` row (audited) and a note in the source's conversation, never silence; a passing
failure (``RetriableError``: rate limit, outage) propagates, so the caller's retry (the inbox's,
the next poll) sends it later, the cursor staying where it was.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import Session

from connectors.base import RoomMessage, RoomWriter, instance_key
from connectors.errors import FatalError, RetriableError
from flows.commons.bridges import Bridge, room_writer
from flows.kit import Ctx, once
from flows.presentation import label as platform_label
from ledger import audit
from ledger import commons as store
from ledger.models_commons import CommonsMessage
from rules.commons import content_hash, conversation_title, fit, relay_decision, relay_text, targets

__all__ = ["ACTOR", "relay_delete", "relay_edit", "relay_new", "row_of"]

log = logging.getLogger("charterflow.commons")
ACTOR = "flow:commons"


def _writer(ctx: Ctx, platform: str) -> tuple[RoomWriter, str]:
    found = room_writer(ctx.platforms, platform)
    if found is None:
        raise LookupError(f"{platform}: not served as a RoomWriter")
    return found


def row_of(session: Session, row_id: int) -> CommonsMessage:
    """The ledger's row ``row_id`` (it was read in this run: a missing one is a bug, not input)."""
    row = session.get(CommonsMessage, row_id)
    if row is None:
        raise LookupError(f"commons-message:{row_id} is not in the ledger")
    return row


def _copy_text(msg: RoomMessage, platform: str, *, limit: int) -> str:
    author = msg.author.username or msg.author.display_name or "someone"
    text = relay_text(author=author, platform=platform_label(platform), text=msg.text, attachments=msg.attachments)
    return fit(text, limit=limit, link=msg.url)


def relay_new(ctx: Ctx, bridge: Bridge, platform: str, msg: RoomMessage) -> str:
    """Relay a message just read from ``bridge``'s room on ``platform`` (``msg.thread_id``: the
    conversation it was read from, ``None`` for the room itself). Returns what happened."""
    writer, instance = _writer(ctx, platform)
    room = bridge.rooms[platform]
    with ctx.ledger.read() as session:
        known = store.find_message(session, platform, instance, msg.id)
    decision = relay_decision(
        own=msg.own,
        is_copy=known is not None and known.origin_id is not None,
        text=msg.text,
        attachments=msg.attachments,
    )
    if not decision.allowed:
        return f"skipped: {decision.reason}"
    title = conversation_title(
        title=msg.title, text=msg.text, author=msg.author.username, platform=platform_label(platform)
    )
    source_thread: str | None
    if known is None:
        source_thread = msg.thread_id or writer.room_thread(room=room, message_id=msg.id, name=title)
        with ctx.ledger.transaction() as session:
            conv = store.conversation_of_thread(session, platform, instance, source_thread)
            if conv is None:
                conv = store.open_conversation(session, bridge=bridge.name, opened_on=platform, at=ctx.now).id
                store.map_thread(
                    session,
                    conversation_id=conv,
                    platform=platform,
                    instance=instance,
                    room=room,
                    thread_id=source_thread,
                    at=ctx.now,
                )
            store.record_source(
                session,
                bridge=bridge.name,
                platform=platform,
                instance=instance,
                message_id=msg.id,
                room=room,
                thread_id=msg.thread_id,
                conversation_id=conv,
                author_platform_id=msg.author.id,
                author_username=msg.author.username,
                content_hash=content_hash(msg.text, msg.attachments),
                at=ctx.now,
            )
    with ctx.ledger.read() as session:
        source = store.find_message(session, platform, instance, msg.id)
        if source is None or source.conversation_id is None:  # recorded above, with its conversation
            raise LookupError(f"commons: {platform} message {msg.id} was not recorded")
        source_id, conv, source_thread = (
            source.id,
            source.conversation_id,
            msg.thread_id or store.thread_of(session, source.conversation_id, platform, instance),
        )
    outcomes = []
    for target in targets(bridge.rooms, platform):
        outcomes.append(
            _copy_to(
                ctx,
                bridge,
                msg,
                source_id=source_id,
                conv=conv,
                title=title,
                source_platform=platform,
                source_instance=instance,
                source_thread=source_thread,
                target=target,
            )
        )
    return "relayed: " + ", ".join(outcomes)


def _copy_to(
    ctx: Ctx,
    bridge: Bridge,
    msg: RoomMessage,
    *,
    source_id: int,
    conv: int,
    title: str,
    source_platform: str,
    source_instance: str,
    source_thread: str | None,
    target: str,
) -> str:
    writer, instance = _writer(ctx, target)
    room = bridge.rooms[target]
    with ctx.ledger.read() as session:
        thread = store.thread_of(session, conv, target, instance)
        done = [c for c in store.copies_of(session, source_id) if c.platform == target]
    if done:
        return f"{target} already"
    key = f"commons:{bridge.name}:{instance_key(source_platform, source_instance, msg.id)}:{target}"
    text = _copy_text(msg, source_platform, limit=writer.room_text_limit())
    try:
        ref = once(
            ctx,
            key=key,
            platform=target,
            actor=ACTOR,
            about=f"commons-message:{source_id}",
            act=lambda: writer.room_post(
                room=room, text=text, thread_id=thread, title=None if thread else title, key=key
            ),
        )["ref"]
    except FatalError as exc:
        _refused(
            ctx,
            bridge,
            msg,
            source_id=source_id,
            source_platform=source_platform,
            source_thread=source_thread,
            target=target,
            target_instance=instance,
            reason=str(exc),
        )
        return f"{target} refused"
    except RetriableError as exc:
        _delayed(ctx, bridge, source_id=source_id, target=target, exc=exc)
        raise
    with ctx.ledger.transaction() as session:
        store.record_copy(
            session,
            source=row_of(session, source_id),
            platform=target,
            instance=instance,
            message_id=str(ref["id"]),
            room=room,
            thread_id=str(ref.get("thread_id") or "") or None,
            at=ctx.now,
        )
        if thread is None and ref.get("thread_id"):
            store.map_thread(
                session,
                conversation_id=conv,
                platform=target,
                instance=instance,
                room=room,
                thread_id=str(ref["thread_id"]),
                at=ctx.now,
            )
    return f"{target} posted"


def _delayed(ctx: Ctx, bridge: Bridge, *, source_id: int, target: str, exc: RetriableError) -> None:
    """Note a copy ``target`` could not take just now (an outage, a rate limit beyond the
    client's patience) before the error goes up to the caller's retry: never silent."""
    with ctx.ledger.transaction() as session:
        audit.append(
            session,
            actor=ACTOR,
            action="commons.delayed",
            subject=f"commons-message:{source_id}",
            payload={
                "ruling": "R-COMMS",
                "bridge": bridge.name,
                "target": target,
                "status": exc.status,
                "retry_after": f"{exc.retry_after:g}",
            },
            at=ctx.now,
        )
    log.warning("commons: %s did not take commons-message:%s yet; it is retried", target, source_id)


def _refused(
    ctx: Ctx,
    bridge: Bridge,
    msg: RoomMessage,
    *,
    source_id: int,
    source_platform: str,
    source_thread: str | None,
    target: str,
    target_instance: str,
    reason: str,
) -> None:
    """Record a copy ``target`` will not take, and say so where the message was written."""
    with ctx.ledger.transaction() as session:
        store.record_copy(
            session,
            source=row_of(session, source_id),
            platform=target,
            instance=target_instance,
            message_id=f"refused:{source_id}",
            room=bridge.rooms[target],
            thread_id=None,
            at=ctx.now,
            state="refused",
            note=reason[:500],
        )
        audit.append(
            session,
            actor=ACTOR,
            action="commons.refused",
            subject=f"commons-message:{source_id}",
            payload={"ruling": "R-COMMS", "bridge": bridge.name, "target": target, "reason": reason[:500]},
            at=ctx.now,
        )
    log.warning("commons: %s refused the copy of commons-message:%s", target, source_id)
    writer, _ = _writer(ctx, source_platform)
    note = (
        f"The common room could not copy this message to {platform_label(target)}: it was refused "
        f"there ({reason[:300]}). It stays readable here only."
    )
    key = f"commons:{bridge.name}:refused:{source_id}:{target}"
    try:
        once(
            ctx,
            key=key,
            platform=source_platform,
            actor=ACTOR,
            about=f"commons-message:{source_id}",
            act=lambda: writer.room_post(
                room=bridge.rooms[source_platform], text=note, thread_id=source_thread, key=key
            ),
        )
    except Exception as exc:  # noqa: BLE001 - the refusal is recorded and audited; the note is extra
        log.warning(
            "commons: the refusal note for commons-message:%s was not posted (%s)", source_id, type(exc).__name__
        )


def relay_edit(ctx: Ctx, bridge: Bridge, platform: str, msg: RoomMessage) -> str:
    """A source's new text follows to each of its copies (once per version)."""
    _, instance = _writer(ctx, platform)
    with ctx.ledger.read() as session:
        row = store.find_message(session, platform, instance, msg.id)
        if row is None:
            copies: list[Any] = []
        else:
            copies = [
                (c.id, c.platform, c.room, c.thread_id, c.message_id)
                for c in store.copies_of(session, row.id)
                if c.state == "live"
            ]
    if row is None:
        return relay_new(ctx, bridge, platform, msg)
    if row.origin_id is not None or row.state != "live":
        return "skipped: not a live source"
    digest = content_hash(msg.text, msg.attachments)
    if digest == row.content_hash:
        return "unchanged"
    for copy_id, target, room, thread, message_id in copies:
        writer, _ = _writer(ctx, target)
        text = _copy_text(msg, platform, limit=writer.room_text_limit())
        try:
            once(
                ctx,
                key=f"commons:edit:{copy_id}:{digest}",
                platform=target,
                actor=ACTOR,
                about=f"commons-message:{row.id}",
                act=lambda w=writer, r=room, t=thread, m=message_id, x=text: w.room_edit(
                    room=r, thread_id=t, message_id=m, text=x
                ),
            )
        except FatalError as exc:
            # Refused for good (the copy was deleted there by hand, a permission is missing): a
            # retry would be refused the same way for ever; the other copies still follow.
            _not_followed(ctx, row.id, copy_id, target, "edit", exc)
    with ctx.ledger.transaction() as session:
        store.set_state(row_of(session, row.id), state="live", content_hash=digest, at=ctx.now)
    return f"edited {len(copies)} cop{'y' if len(copies) == 1 else 'ies'}"


def relay_delete(ctx: Ctx, platform: str, message_id: str, *, state: str = "deleted") -> str:
    """A source deleted where it was written: its copies are deleted too (once each)."""
    _, instance = _writer(ctx, platform)
    with ctx.ledger.read() as session:
        row = store.find_message(session, platform, instance, message_id)
        if row is None or row.origin_id is not None:
            return "skipped: not a known source"
        source_id = row.id
        copies = [
            (c.id, c.platform, c.room, c.thread_id, c.message_id)
            for c in store.copies_of(session, row.id)
            if c.state == "live"
        ]
    refused = delete_copies(ctx, source_id, copies, state=state)
    done = len(copies) - len(refused)
    return f"deleted {done} cop{'y' if done == 1 else 'ies'}" + (f", {len(refused)} refused" if refused else "")


def delete_copies(
    ctx: Ctx, source_id: int, copies: list[tuple[int, str, str, str | None, str]], *, state: str
) -> list[dict[str, Any]]:
    """Delete each live copy of a source on its platform, then mark source and copies ``state``.
    A copy its platform refuses to delete (a ``FatalError``; one gone already is no refusal)
    stays ``live`` with the reason noted and audited, for the operator to remove by hand, and
    the others go on: a retry would be refused the same way for ever. The refusals are returned."""
    refused = []
    for copy_id, target, room, thread, message_id in copies:
        writer, _ = _writer(ctx, target)
        try:
            once(
                ctx,
                key=f"commons:delete:{copy_id}",
                platform=target,
                actor=ACTOR,
                about=f"commons-message:{source_id}",
                act=lambda w=writer, r=room, t=thread, m=message_id: w.room_delete(room=r, thread_id=t, message_id=m),
            )
        except FatalError as exc:
            _not_followed(ctx, source_id, copy_id, target, "delete", exc)
            refused.append({"source": source_id, "platform": target, "status": exc.status})
            continue
        with ctx.ledger.transaction() as session:
            store.set_state(row_of(session, copy_id), state=state, at=ctx.now)
    with ctx.ledger.transaction() as session:
        store.set_state(row_of(session, source_id), state=state, at=ctx.now)
    return refused


def _not_followed(ctx: Ctx, source_id: int, copy_id: int, target: str, change: str, exc: FatalError) -> None:
    """Audit a copy ``target`` refused to ``change`` (edit, delete) for good, and note it on the
    copy; one it no longer has (404) is marked ``deleted``: a moderator removed it there."""
    gone = change == "edit" and exc.status == 404
    with ctx.ledger.transaction() as session:
        store.set_state(
            row_of(session, copy_id),
            state="deleted" if gone else "live",
            at=ctx.now,
            note=f"{change} refused on {target}: {exc}"[:500],
        )
        audit.append(
            session,
            actor=ACTOR,
            action=f"commons.{change}_refused",
            subject=f"commons-message:{source_id}",
            payload={"ruling": "R-COMMS", "target": target, "status": exc.status, "reason": str(exc)[:500]},
            at=ctx.now,
        )
    log.warning("commons: %s refused to %s a copy of commons-message:%s", target, change, source_id)
