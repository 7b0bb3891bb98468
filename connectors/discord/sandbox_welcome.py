"""The Discord sandbox's welcome screen (R-GUIDE: newcomers pointed at the guides), kept apart
from ``sandbox.py`` and registered on its routes when that module loads.

``GET``/``PATCH /guilds/{guild_id}/welcome-screen`` with the spec's validation
(``WelcomeScreenPatchRequestPartial``: description at most 140 characters, at most 5 welcome
channels, each an existing channel with a 1-50 character description) and its answer shape
(``GuildWelcomeScreenResponse``).
https://discord.com/developers/docs/resources/guild#modify-guild-welcome-screen
"""

from __future__ import annotations

from typing import Any

from connectors.discord.sandbox import DEFAULT_BUCKETS, _form_error, _route
from connectors.sandboxkit import Call, Reply

DEFAULT_BUCKETS.setdefault("welcome", (5, 5.0))  # invented, as the sandbox's other buckets

_EMPTY: dict[str, Any] = {"description": None, "welcome_channels": []}


def _screen(sb: Any) -> dict[str, Any]:
    # Kept on the sandbox object; a guild starts with no welcome screen.
    return sb.__dict__.setdefault("welcome_screen", {**_EMPTY, "enabled": False})


@_route("GET", "/guilds/{guild_id}/welcome-screen", bucket="welcome")
def _get_welcome(sb: Any, req: Call) -> Reply:
    screen = _screen(sb)
    return Reply(200, {"description": screen["description"], "welcome_channels": list(screen["welcome_channels"])})


def _welcome_rows(sb: Any, channels: Any, errors: dict[str, str]) -> list[dict[str, Any]]:
    """The welcome channels of a PATCH, each checked (the problems go to ``errors``)."""
    if not isinstance(channels, list) or len(channels) > 5:
        errors["welcome_channels"] = "Must be 5 or fewer in length."
        return []
    rows: list[dict[str, Any]] = []
    for i, row in enumerate(channels):
        if not isinstance(row, dict) or str(row.get("channel_id")) not in sb.channels:
            errors[f"welcome_channels.{i}.channel_id"] = "Unknown channel."
        elif not isinstance(text := row.get("description"), str) or not 1 <= len(text) <= 50:
            errors[f"welcome_channels.{i}.description"] = "Must be between 1 and 50 in length."
        else:
            rows.append(
                {
                    "channel_id": str(row["channel_id"]),
                    "description": text,
                    "emoji_id": row.get("emoji_id"),
                    "emoji_name": row.get("emoji_name"),
                }
            )
    return rows


@_route("PATCH", "/guilds/{guild_id}/welcome-screen", bucket="welcome")
def _patch_welcome(sb: Any, req: Call) -> Reply:
    if not isinstance(data := req.json(), dict):  # the dispatcher answered a body that is not JSON
        return _form_error(body="Must be a JSON object.")
    errors: dict[str, str] = {}
    description = data.get("description")
    if description is not None and (not isinstance(description, str) or len(description) > 140):
        errors["description"] = "Must be 140 or fewer in length."
    channels = data.get("welcome_channels")
    rows = _welcome_rows(sb, channels, errors) if channels is not None else []
    if data.get("enabled") is not None and not isinstance(data.get("enabled"), bool):
        errors["enabled"] = "Must be a boolean."
    if errors:
        return _form_error(**errors)
    screen = _screen(sb)
    if "description" in data:
        screen["description"] = description
    if channels is not None:
        screen["welcome_channels"] = rows
    if data.get("enabled") is not None:
        screen["enabled"] = data["enabled"]
    return Reply(200, {"description": screen["description"], "welcome_channels": list(screen["welcome_channels"])})
