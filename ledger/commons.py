"""Repository functions of the common room (R-COMMS): sources and copies, conversations and
their threads on each platform, cursors of polled rooms (``ledger.models_commons``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledger.models_commons import CommonsConversation, CommonsCursor, CommonsMessage, CommonsThread

__all__ = [
    "copies_of",
    "cursor",
    "find_message",
    "is_bridge_copy",
    "map_thread",
    "open_conversation",
    "record_copy",
    "record_source",
    "set_cursor",
    "set_state",
    "sources_by_authors",
    "sources_in_room",
    "thread_of",
    "threads_in_room",
    "conversation_of_thread",
]


def find_message(session: Session, platform: str, instance: str, message_id: str) -> CommonsMessage | None:
    """The source or copy named by platform, instance and the platform's id."""
    return session.scalar(
        select(CommonsMessage).where(
            CommonsMessage.platform == platform,
            CommonsMessage.instance == instance,
            CommonsMessage.message_id == str(message_id),
        )
    )


def is_bridge_copy(session: Session, platform: str, instance: str, message_id: str) -> bool:
    """True when the bridge posted this message (it is never relayed again: nothing loops)."""
    row = find_message(session, platform, instance, message_id)
    return row is not None and row.origin_id is not None


def record_source(
    session: Session,
    *,
    bridge: str,
    platform: str,
    instance: str,
    message_id: str,
    room: str,
    thread_id: str | None,
    conversation_id: int | None,
    author_platform_id: str | None,
    author_username: str | None,
    content_hash: str,
    at: datetime,
) -> CommonsMessage:
    """The source row of a person's message (created once; a second call returns it)."""
    row = find_message(session, platform, instance, message_id)
    if row is not None:
        return row
    row = CommonsMessage(
        bridge=bridge,
        platform=platform,
        instance=instance,
        message_id=str(message_id),
        room=room,
        thread_id=thread_id,
        conversation_id=conversation_id,
        author_platform_id=author_platform_id,
        author_username=author_username,
        content_hash=content_hash,
        state="live",
        created_at=at,
        updated_at=at,
    )
    session.add(row)
    session.flush()
    return row


def record_copy(
    session: Session,
    *,
    source: CommonsMessage,
    platform: str,
    instance: str,
    message_id: str,
    room: str,
    thread_id: str | None,
    at: datetime,
    state: str = "live",
    note: str | None = None,
) -> CommonsMessage:
    """The copy of ``source`` on ``platform`` (created once). A refused copy has no platform id:
    ``message_id`` is then a placeholder naming the source, so it is recorded once too."""
    row = find_message(session, platform, instance, message_id)
    if row is not None:
        return row
    row = CommonsMessage(
        bridge=source.bridge,
        platform=platform,
        instance=instance,
        message_id=str(message_id),
        room=room,
        thread_id=thread_id,
        conversation_id=source.conversation_id,
        origin_id=source.id,
        content_hash=source.content_hash,
        state=state,
        note=note,
        created_at=at,
        updated_at=at,
    )
    session.add(row)
    session.flush()
    return row


def copies_of(session: Session, source_id: int) -> list[CommonsMessage]:
    """The copies of a source, every platform."""
    return list(
        session.scalars(select(CommonsMessage).where(CommonsMessage.origin_id == source_id).order_by(CommonsMessage.id))
    )


def set_state(
    row: CommonsMessage, *, state: str, at: datetime, content_hash: str | None = None, note: str | None = None
) -> None:
    """Change a row's state (and digest after an edit)."""
    row.state = state
    row.updated_at = at
    if content_hash is not None:
        row.content_hash = content_hash
    if note is not None:
        row.note = note


def open_conversation(session: Session, *, bridge: str, opened_on: str, at: datetime) -> CommonsConversation:
    """A new conversation of ``bridge``."""
    conv = CommonsConversation(bridge=bridge, opened_on=opened_on, created_at=at)
    session.add(conv)
    session.flush()
    return conv


def _thread(session: Session, platform: str, instance: str, thread_id: str) -> CommonsThread | None:
    return session.scalar(
        select(CommonsThread).where(
            CommonsThread.platform == platform,
            CommonsThread.instance == instance,
            CommonsThread.thread_id == str(thread_id),
        )
    )


def conversation_of_thread(session: Session, platform: str, instance: str, thread_id: str) -> int | None:
    """The conversation a platform thread (topic) carries, if the bridge knows it."""
    found = _thread(session, platform, instance, thread_id)
    return found.conversation_id if found is not None else None


def map_thread(
    session: Session, *, conversation_id: int, platform: str, instance: str, room: str, thread_id: str, at: datetime
) -> CommonsThread:
    """Record that ``thread_id`` carries the conversation on ``platform`` (once)."""
    row = _thread(session, platform, instance, thread_id)
    if row is None:
        row = CommonsThread(
            conversation_id=conversation_id,
            platform=platform,
            instance=instance,
            room=room,
            thread_id=str(thread_id),
            created_at=at,
        )
        session.add(row)
        session.flush()
    return row


def thread_of(session: Session, conversation_id: int, platform: str, instance: str) -> str | None:
    """The conversation's thread (topic) id on ``platform``, if it has one there yet."""
    found = session.scalar(
        select(CommonsThread.thread_id)
        .where(
            CommonsThread.conversation_id == conversation_id,
            CommonsThread.platform == platform,
            CommonsThread.instance == instance,
        )
        .order_by(CommonsThread.id)
    )
    return str(found) if found is not None else None


def threads_in_room(session: Session, *, platform: str, instance: str, room: str) -> list[str]:
    """Every thread the bridge knows in a room (what a poller reads besides the room itself)."""
    return [
        str(t)
        for t in session.scalars(
            select(CommonsThread.thread_id)
            .where(CommonsThread.platform == platform, CommonsThread.instance == instance, CommonsThread.room == room)
            .order_by(CommonsThread.id)
        )
    ]


def sources_in_room(
    session: Session, *, platform: str, instance: str, room: str, thread_id: str | None
) -> list[CommonsMessage]:
    """The live sources read from one room or thread (to find their edits and deletions)."""
    return list(
        session.scalars(
            select(CommonsMessage).where(
                CommonsMessage.platform == platform,
                CommonsMessage.instance == instance,
                CommonsMessage.room == room,
                CommonsMessage.origin_id.is_(None),
                CommonsMessage.state == "live",
                (CommonsMessage.thread_id == thread_id) if thread_id else CommonsMessage.thread_id.is_(None),
            )
        )
    )


def sources_by_authors(session: Session, accounts: list[tuple[str, str]]) -> list[CommonsMessage]:
    """The sources written by any of ``accounts`` (``(platform, account id)``), for erasure."""
    out: list[CommonsMessage] = []
    for platform, account in accounts:
        out += session.scalars(
            select(CommonsMessage)
            .where(
                CommonsMessage.platform == platform,
                CommonsMessage.author_platform_id == str(account),
                CommonsMessage.origin_id.is_(None),
            )
            .order_by(CommonsMessage.id)
        )
    return out


def cursor(session: Session, *, bridge: str, platform: str, room: str, instance: str) -> str | None:
    """The last message id read from a room on this instance (another instance's means nothing)."""
    row = session.get(CommonsCursor, (bridge, platform, room))
    return row.last_id if row is not None and row.instance == instance else None


def set_cursor(
    session: Session, *, bridge: str, platform: str, room: str, instance: str, last_id: str, at: datetime
) -> None:
    """Advance a room's cursor (never backwards)."""
    row = session.get(CommonsCursor, (bridge, platform, room))
    if row is None:
        session.add(
            CommonsCursor(
                bridge=bridge, platform=platform, room=room, instance=instance, last_id=str(last_id), updated_at=at
            )
        )
        return
    if row.instance != instance or row.last_id is None or int(last_id) > int(row.last_id):
        row.instance, row.last_id, row.updated_at = instance, str(last_id), at
