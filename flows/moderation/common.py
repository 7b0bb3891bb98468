"""What the moderation flows share: their settings, the moderators' space on each platform, and
messages rendered from ``templates/moderation``.

Settings (environment, prefix ``CHARTERFLOW_MODERATION_``):

==================== ==========================================================================
``DISCORD_CHANNEL``  the Discord moderators' channel (name or id; default ``moderators``)
``DISCOURSE_GROUP``  the Forum group that receives alerts and digests as a private message
                     (default ``moderators``, Discourse's own moderators group)
``<PLATFORM>_SPACE`` the moderators' channel or group on any other platform (default
                     ``moderators``)
``LOOKBACK_DAYS``    how far back a sync looks for severe actions still needing an alert or a
                     link suggestion (default 30)
==================== ==========================================================================

Moderation data goes only to these spaces (moderators) and to the WG's CLI and artifacts; never
to a public channel (R-PRIVACY).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from connectors.base import ButtonMessenger, ChannelText, MessageEditor, MessageRef, Messenger, ModerationLog
from flows.kit import Ctx
from flows.presentation import templates as _env

ACTOR = "flow:moderation"
BUTTON_PREFIX = "cfm:"


class ModerationSettings(BaseSettings):
    """``CHARTERFLOW_MODERATION_*`` (see the module docstring)."""

    model_config = SettingsConfigDict(env_prefix="CHARTERFLOW_MODERATION_", env_file=".env", extra="ignore")
    discord_channel: str = Field(
        default="moderators", description=("The Discord moderators' channel (id or name): alerts and the digest.")
    )
    discourse_group: str = Field(
        default="moderators",
        description=("The Forum moderators' group: alerts and the digest arrive as a group message."),
    )
    lookback_days: int = Field(
        default=30,
        ge=1,
        le=365,
        description=("On the first sync, how far back severe actions still raise alerts, days."),
    )


def space_setting(s: ModerationSettings, platform: str) -> str:
    """The moderators' channel or group on ``platform``: ``CHARTERFLOW_MODERATION_<PLATFORM>_SPACE``,
    else the declared setting of the Forum or Discord, else ``moderators``."""
    value = os.environ.get(f"CHARTERFLOW_MODERATION_{platform.upper().replace('-', '_')}_SPACE", "").strip()
    known = {"discord": s.discord_channel, "discourse": s.discourse_group}
    return value or known.get(platform) or "moderators"


def settings() -> ModerationSettings:
    """The settings in force (read each time: tests and operators change the environment)."""
    return ModerationSettings()


def render(name: str, **values: Any) -> tuple[str, str]:
    """Render ``templates/moderation/<name>.md.j2``: first line the title, the rest the body."""
    text = _env.get_template(f"moderation/{name}.md.j2").render(**values).strip()
    title, _, body = text.partition("\n")
    return title.strip(), body.strip()


@dataclass(frozen=True, kw_only=True)
class ModeratorSpace:
    """Where one platform's moderators read: a Discord channel, or a private message to a Forum
    group."""

    platform: str
    connector: Any
    target: str

    @property
    def buttons(self) -> bool:
        """Whether messages here can carry buttons (a ``ButtonMessenger`` posting in a channel)."""
        return isinstance(self.connector, ButtonMessenger) and isinstance(self.connector, ChannelText)

    def send(self, *, title: str, text: str, key: str, buttons: list[tuple[str, str]] | None = None) -> MessageRef:
        """Post ``title`` + ``text`` once per ``key`` (the platform's own idempotency)."""
        if self.buttons:
            connector: Any = self.connector
            if buttons:
                return connector.post_with_buttons(
                    channel=self.target, text=f"**{title}**\n{text}", buttons=buttons, key=key
                )
            return connector.send_text(channel=self.target, text=text, title=title, key=key)[0]
        messenger: Messenger = self.connector
        return messenger.direct_message(recipients=[self.target], title=title, text=text, key=key)

    def update(self, *, channel_id: str, message_id: str, title: str, text: str, note: str, key: str) -> None:
        """Show an outcome on a message posted earlier: where the connector is a
        ``MessageEditor`` the message is replaced (its buttons dropped); elsewhere ``note`` is
        added as a reply in its thread."""
        if isinstance(self.connector, MessageEditor):
            self.connector.edit_message(channel_id=channel_id, message_id=message_id, text=f"**{title}**\n{text}")
        else:
            messenger: Messenger = self.connector
            messenger.reply(thread_id=channel_id, text=note, key=key)


def moderator_spaces(ctx: Ctx) -> dict[str, ModeratorSpace]:
    """The moderators' space of each served platform whose connector can post."""
    s = settings()
    out = {}
    for name, space in ctx.platforms.spaces.items():
        if space.messenger is None:
            continue
        target = space_setting(s, name)
        out[name] = ModeratorSpace(platform=name, connector=space.connector, target=target)
    return out


def logs(ctx: Ctx) -> dict[str, ModerationLog]:
    """The served platforms whose connector reads a moderation log."""
    return {
        name: space.connector
        for name, space in ctx.platforms.spaces.items()
        if isinstance(space.connector, ModerationLog)
    }


def platform_name(platform: str) -> str:
    """How a platform is named in messages."""
    return {"discourse": "the Forum", "discord": "Discord", "slack": "Slack"}.get(platform, platform)
