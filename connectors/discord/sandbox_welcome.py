"""The Discord sandbox's welcome screen and server onboarding (R-GUIDE: newcomers pointed at
the guides), kept apart from ``sandbox.py`` and registered on its routes when that module loads.

``GET``/``PATCH /guilds/{guild_id}/welcome-screen`` with the spec's validation
(``WelcomeScreenPatchRequestPartial``: description at most 140 characters, at most 5 welcome
channels, each an existing channel with a 1-50 character description) and its answer shape
(``GuildWelcomeScreenResponse``).
https://discord.com/developers/docs/resources/guild#modify-guild-welcome-screen

``GET``/``PUT /guilds/{guild_id}/onboarding``: PUT replaces what it names (every field is
optional; ``prompts`` replaces all prompts), validated as ``UpdateGuildOnboardingRequest``
(at most 15 prompts, each with a snowflake id, a 1-100 character title and 1-50 options; an
option's title 1-50, description at most 100, channels and roles that exist), 400 50035 else;
enabling it with fewer than 7 default channels is 400 350000 (350001 when it was enabled).
Options sent without an id get one; the answer is ``GuildOnboardingResponse``.
https://discord.com/developers/docs/resources/guild#modify-guild-onboarding
"""

from __future__ import annotations

import copy
from typing import Any

from connectors.discord.sandbox import _SNOWFLAKE, DEFAULT_BUCKETS, _error, _form_error, _route
from connectors.sandboxkit import Call, Reply

DEFAULT_BUCKETS.setdefault("welcome", (5, 5.0))  # invented as the others are; both screens

_EMPTY: dict[str, Any] = {"description": None, "welcome_channels": []}


def _screen(sb: Any) -> dict[str, Any]:
    # A guild starts with no welcome screen.
    return sb.screens.setdefault("welcome", copy.deepcopy({**_EMPTY, "enabled": False}))


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


def _onboarding(sb: Any) -> dict[str, Any]:
    # A guild starts with onboarding off and no prompt.
    return sb.screens.setdefault("onboarding", {"prompts": [], "default_channel_ids": [], "enabled": False, "mode": 0})


@_route("GET", "/guilds/{guild_id}/onboarding", bucket="welcome")
def _get_onboarding(sb: Any, req: Call) -> Reply:
    return Reply(200, {"guild_id": sb.seed.guild_id, **copy.deepcopy(_onboarding(sb))})


def _ids(value: Any, known: Any, most: int) -> bool:
    return value is None or (isinstance(value, list) and len(value) <= most and all(str(v) in known for v in value))


def _option(sb: Any, where: str, o: Any, errors: dict[str, str]) -> dict[str, Any]:
    if not isinstance(o, dict) or not isinstance(o.get("title"), str) or not 1 <= len(o["title"]) <= 50:
        errors[f"{where}.title"] = "Must be between 1 and 50 in length."
    elif o.get("description") is not None and (not isinstance(o["description"], str) or len(o["description"]) > 100):
        errors[f"{where}.description"] = "Must be 100 or fewer in length."
    elif not _ids(o.get("channel_ids"), sb.channels, 50) or not _ids(o.get("role_ids"), sb.roles, 50):
        errors[f"{where}.channel_ids"] = "Invalid channel or role."
    else:
        emoji = {"id": o.get("emoji_id"), "name": o.get("emoji_name"), "animated": bool(o.get("emoji_animated"))}
        return {
            "id": str(o.get("id") or sb._id()),
            "title": o["title"],
            "description": o.get("description") or "",
            "emoji": emoji,
            "role_ids": [str(r) for r in o.get("role_ids") or []],
            "channel_ids": [str(c) for c in o.get("channel_ids") or []],
        }
    return {}


def _prompt(sb: Any, where: str, p: Any, errors: dict[str, str]) -> dict[str, Any]:
    if not isinstance(p, dict) or not _SNOWFLAKE.match(str(p.get("id", ""))):
        errors[f"{where}.id"] = "Value is not snowflake."
    elif not isinstance(p.get("title"), str) or not 1 <= len(p["title"]) <= 100:
        errors[f"{where}.title"] = "Must be between 1 and 100 in length."
    elif not isinstance(p.get("options"), list) or not 1 <= len(p["options"]) <= 50:
        errors[f"{where}.options"] = "Must be between 1 and 50 in length."
    elif p.get("type") not in (None, 0, 1):
        errors[f"{where}.type"] = "Value must be one of (0, 1)."
    else:
        flags = {k: bool(p.get(k, k == "in_onboarding")) for k in ("single_select", "required", "in_onboarding")}
        options = [_option(sb, f"{where}.options.{i}", o, errors) for i, o in enumerate(p["options"])]
        return {"id": str(p["id"]), "title": p["title"], "options": options, **flags, "type": p.get("type") or 0}
    return {}


@_route("PUT", "/guilds/{guild_id}/onboarding", bucket="welcome")
def _put_onboarding(sb: Any, req: Call) -> Reply:
    if not isinstance(data := req.json(), dict):
        return _form_error(body="Must be a JSON object.")
    errors: dict[str, str] = {}
    prompts = data.get("prompts")
    if prompts is not None and (not isinstance(prompts, list) or len(prompts) > 15):
        errors["prompts"] = "Must be 15 or fewer in length."
    elif prompts is not None:
        prompts = [_prompt(sb, f"prompts.{i}", p, errors) for i, p in enumerate(prompts)]
    if not _ids(data.get("default_channel_ids"), sb.channels, 500):
        errors["default_channel_ids"] = "Invalid channel."
    if data.get("enabled") not in (None, True, False) or data.get("mode") not in (None, 0, 1):
        errors["enabled" if data.get("mode") in (None, 0, 1) else "mode"] = "Invalid value."
    if errors:
        return _form_error(**errors)
    now = _onboarding(sb)
    new = {k: now[k] if data.get(k) is None else data[k] for k in now} | (
        {"prompts": prompts} if prompts is not None else {}
    )
    new["default_channel_ids"] = [str(c) for c in new["default_channel_ids"]]
    if new["enabled"] and len(new["default_channel_ids"]) < 7:  # the docs' constraint (mode aside)
        if now["enabled"]:
            return _error(400, 350001, "Cannot update onboarding while below requirements")
        return _error(400, 350000, "Cannot enable onboarding, requirements are not met")
    sb.screens["onboarding"] = new
    return _get_onboarding(sb, req)
