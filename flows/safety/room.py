"""The moderators' room on each served platform, as ``connectors.base.ModeratorsRoom``s.

Built over the moderation flows' ``ModeratorSpace`` (the same settings,
``CHARTERFLOW_MODERATION_<PLATFORM>_SPACE``): on a platform with buttons and channels (Discord)
the room is the moderators' channel and buttons are message components; elsewhere (the Forum)
it is a private message to the moderators' group, and ``edit`` adds a reply in its thread.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from connectors.base import ButtonMessenger, MessageEditor, MessageRef, ModeratorsRoom, ModeratorsRoomHost
from flows.kit import Ctx
from flows.moderation.common import ModeratorSpace, moderator_spaces

# Discord: at most 5 buttons in a row and 5 rows in a message.
# https://discord.com/developers/docs/interactions/message-components#action-rows
ROW = 5


# Not frozen: ModeratorsRoom declares ``platform`` a plain (settable) attribute.
@dataclass(kw_only=True)
class SpaceRoom:
    """A ``ModeratorsRoom`` over a moderation ``ModeratorSpace``."""

    platform: str
    space: ModeratorSpace

    def post(self, text: str, *, buttons: Sequence[tuple[str, str]] = (), key: str | None = None) -> MessageRef:
        title, _, body = text.partition("\n")
        key = key or f"room:{self.platform}:{_digest(text)}"
        if buttons and self.space.buttons and len(buttons) > ROW:
            connector: ButtonMessenger = self.space.connector
            return connector.post_components(
                channel=self.space.target, content=f"**{title}**\n{body}", components=button_rows(buttons), key=key
            )
        return self.space.send(title=title, text=body, key=key, buttons=list(buttons) or None)

    def edit(self, ref: MessageRef, text: str, *, keep_buttons: bool = False) -> None:
        title, _, body = text.partition("\n")
        if isinstance(self.space.connector, MessageEditor):
            self.space.connector.edit_message(
                channel_id=ref.thread_id, message_id=ref.id, text=f"**{title}**\n{body}", keep_buttons=keep_buttons
            )
            return
        self.space.update(
            channel_id=ref.thread_id,
            message_id=ref.id,
            title=title,
            text=body,
            note=text,
            key=f"room-edit:{ref.id}:{_digest(text)}",
        )


def button_rows(buttons: Sequence[tuple[str, str]]) -> list[dict[str, object]]:
    """``(label, custom_id)`` pairs as Discord action rows of buttons (the first one primary)."""
    return [
        {
            "type": 1,
            "components": [
                {"type": 2, "style": 1 if i == 0 and r == 0 else 2, "label": label[:80], "custom_id": cid}
                for i, (label, cid) in enumerate(buttons[r : r + ROW])
            ],
        }
        for r in range(0, len(buttons), ROW)
    ][:ROW]


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def rooms(ctx: Ctx) -> dict[str, ModeratorsRoom]:
    """The moderators' room of each served platform that has one."""
    # A connector that keeps its own room (ModeratorsRoomHost: Matrix) gives it; the others
    # post in the moderation flows' space.
    return {
        name: space.connector.moderators_room()
        if isinstance(space.connector, ModeratorsRoomHost)
        else SpaceRoom(platform=name, space=space)
        for name, space in moderator_spaces(ctx).items()
    }


def has_buttons(room: ModeratorsRoom) -> bool:
    """Whether the room shows buttons (else its text says how to act)."""
    return isinstance(room, SpaceRoom) and room.space.buttons
