"""Community reports on Matrix (R-SAFE-1): ``ModeratorsRoomHost`` and ``PlatformReports`` as a
mixin of ``MatrixConnector``.

The moderators' room is the room ``CHARTERFLOW_MATRIX_MODERATORS_ROOM`` (default ``moderators``:
the one the common room bridges). Matrix has no buttons, so a report's post says how to act:
moderators reply in its thread with ``claim``, ``resolve <outcome>`` or ``refer`` (the parser in
``inbound`` routes such a thread reply to the core's ``safety-command``). Every post and edit
carries a transaction id derived from its key, so a resend lands once. Reports made with a
client's own report button stay in Synapse; ``platform_reports`` reads them for the core's poll.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from charterflow_matrix.client import PLATFORM, q
from connectors.base import MessageRef, PlatformReport

__all__ = ["MatrixModeratorsRoom", "MatrixSafety"]


@dataclass(frozen=True)
class MatrixModeratorsRoom:
    """``connectors.base.ModeratorsRoom`` over the connector's ``room_post``/``room_edit``."""

    connector: Any
    room: str
    platform: str = PLATFORM

    def post(self, text: str, *, buttons: Sequence[tuple[str, str]] = (), key: str | None = None) -> MessageRef:
        """``text``'s first line in bold, then the rest; ``buttons`` are left out (the text
        names the reply commands). The report's thread is rooted at this message."""
        title, _, body = text.partition("\n")
        key = key or f"moderators-room:{hashlib.sha256(text.encode()).hexdigest()[:16]}"
        return self.connector.room_post(room=self.room, text=body.strip() or title, title=title, key=key)

    def edit(self, ref: MessageRef, text: str) -> None:
        """An ``m.replace`` of the post: clients show the new text in its place."""
        title, _, body = text.partition("\n")
        self.connector.room_edit(
            room=self.room,
            thread_id=ref.thread_id,
            message_id=ref.id,
            text=f"**{title}**\n{body.strip()}" if body.strip() else f"**{title}**",
        )


class MatrixSafety:
    """``ModeratorsRoomHost`` and ``PlatformReports`` for ``MatrixConnector`` (uses its
    ``settings``, ``room_post``, ``room_edit``, ``event_reports``, ``_ref``)."""

    settings: Any
    event_reports: Any
    user_reports: Any
    _ref: Any

    def moderators_room(self) -> MatrixModeratorsRoom:
        """The moderators' room (``settings.moderators_room``)."""
        return MatrixModeratorsRoom(connector=self, room=self.settings.moderators_room)

    def platform_reports(self) -> list[PlatformReport]:
        """``PlatformReports``: Synapse's event reports (a client's report button,
        ``POST /_matrix/client/v3/rooms/{roomId}/report/{eventId}``; ``id`` is Synapse's report
        id) and its reports of a person (``POST /_matrix/client/v3/users/{userId}/report``; ``id``
        ``user-<id>``, no message), read with the admin API, oldest first."""
        out = []
        for report in self.event_reports():
            room, event = str(report.get("room_id") or ""), str(report.get("event_id") or "")
            at = report.get("received_ts")
            out.append(
                PlatformReport(
                    platform=PLATFORM,
                    id=str(report["id"]),
                    reported_at=datetime.fromtimestamp(at / 1000, tz=UTC)
                    if isinstance(at, (int, float))
                    else datetime.now(UTC),
                    reporter=self._ref(str(report["user_id"])) if report.get("user_id") else None,
                    target=self._ref(str(report["sender"])) if report.get("sender") else None,
                    message_id=event or None,
                    channel_id=room or None,
                    link=f"https://matrix.to/#/{q(room)}/{q(event)}" if room and event else None,
                    reason=str(report["reason"]) if report.get("reason") else None,
                )
            )
        for report in self.user_reports():
            at = report.get("received_ts")
            out.append(
                PlatformReport(
                    platform=PLATFORM,
                    id=f"user-{report['id']}",  # its own id sequence: never an event report's id
                    reported_at=datetime.fromtimestamp(at / 1000, tz=UTC)
                    if isinstance(at, (int, float))
                    else datetime.now(UTC),
                    reporter=self._ref(str(report["user_id"])) if report.get("user_id") else None,
                    target=self._ref(str(report["sender"])) if report.get("sender") else None,
                    reason=str(report["reason"]) if report.get("reason") else None,
                )
            )
        return sorted(out, key=lambda r: r.reported_at)
