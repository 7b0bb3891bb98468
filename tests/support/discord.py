"""Constants of the Discord connector's tests (tests/connectors/discord)."""

from __future__ import annotations

# The application commands we register, in their order (slash commands, then the message command).
COMMAND_NAMES = [
    "apply",
    "idea",
    "optin",
    "leave",
    "propose",
    "role",
    "idea-status",
    "appoint",
    "help",
    "Report to moderators",
]
