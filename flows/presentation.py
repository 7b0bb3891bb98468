"""Per-platform presentation: how a platform is named to people (``rules.admins.label``: the
charter's words) and the size of one message there (Discord's). A platform not listed is shown by
its connector name."""

from __future__ import annotations

from rules.admins import LABELS, label

__all__ = ["DISCORD_MESSAGE_LIMIT", "LABELS", "label"]

# Discord cuts a message at 2000 characters:
# https://discord.com/developers/docs/resources/message#create-message
DISCORD_MESSAGE_LIMIT = 2000
