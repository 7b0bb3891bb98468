"""Per-platform presentation: how a platform is named to people and the size of one message
there. The only place in ``flows`` besides configuration that names a platform; a platform not
listed here is shown by its connector name, with no message limit of its own."""

from __future__ import annotations

__all__ = ["DISCORD_MESSAGE_LIMIT", "LABELS", "label", "message_limit"]

# Discord cuts a message at 2000 characters:
# https://discord.com/developers/docs/resources/message#create-message
DISCORD_MESSAGE_LIMIT = 2000
LABELS = {"discourse": "Forum", "discord": "Discord", "slack": "Slack"}
_MESSAGE_LIMITS = {"discord": DISCORD_MESSAGE_LIMIT}


def label(platform: str) -> str:
    """The platform's name as the WG says it (``Forum`` for ``discourse``)."""
    return LABELS.get(platform, platform.replace("_", " ").title())


def message_limit(platform: str) -> int | None:
    """The longest message the platform takes, ``None`` when flows need not cut for it."""
    return _MESSAGE_LIMITS.get(platform)
