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

Both writes need the bot's guild permissions (``@everyone``'s OR its roles'; Administrator holds
every one) to include Manage Server, and the onboarding's Manage Roles too: 403 50013 else.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field, StrictBool, ValidationInfo

from connectors.discord.sandbox import _SNOWFLAKE, MANAGE_ROLES, _error, _form_error, _route
from connectors.sandboxkit import Call, Reply
from connectors.sandboxkit.bodies import check_body


def _known(what: str) -> AfterValidator:
    """An id or ids (sent as strings or numbers) of existing ``channels`` or ``roles``, as strings."""

    def check(ids: Any, info: ValidationInfo) -> Any:
        listed = [str(i) for i in (ids if isinstance(ids, list) else [ids])]
        if not set(listed) <= (info.context or {})[what].keys():
            raise ValueError(f"Unknown {what}.")
        return listed if isinstance(ids, list) else listed[0]

    return AfterValidator(check)


def _snowflake(value: str | int) -> str:
    if not _SNOWFLAKE.match(str(value)):
        raise ValueError("Value is not snowflake.")
    return str(value)


MANAGE_GUILD = 1 << 5  # "Manage Server"


class _WelcomeChannel(BaseModel):
    channel_id: Annotated[str | int, _known("channels")]
    description: str = Field(min_length=1, max_length=50)
    emoji_id: Any = None
    emoji_name: Any = None


class _WelcomePatch(BaseModel):
    description: str | None = Field(None, max_length=140)
    welcome_channels: list[_WelcomeChannel] | None = Field(None, max_length=5)
    enabled: StrictBool | None = None


class _Option(BaseModel):
    id: str | int | None = None
    title: str = Field(min_length=1, max_length=50)
    description: str | None = Field(None, max_length=100)
    emoji_id: Any = None
    emoji_name: Any = None
    emoji_animated: Any = None
    channel_ids: Annotated[list[str | int], Field(max_length=50), _known("channels")] | None = None
    role_ids: Annotated[list[str | int], Field(max_length=50), _known("roles")] | None = None

    def shown(self, new_id: Callable[[], str]) -> dict[str, Any]:
        return {
            "id": str(self.id or new_id()),
            "title": self.title,
            "description": self.description or "",
            "emoji": {"id": self.emoji_id, "name": self.emoji_name, "animated": bool(self.emoji_animated)},
            "role_ids": self.role_ids or [],
            "channel_ids": self.channel_ids or [],
        }


class _Prompt(BaseModel):
    id: Annotated[str | int, AfterValidator(_snowflake)]
    title: str = Field(min_length=1, max_length=100)
    options: list[_Option] = Field(min_length=1, max_length=50)
    single_select: bool = False
    required: bool = False
    in_onboarding: bool = True
    type: Literal[0, 1] | None = None

    def shown(self, new_id: Callable[[], str]) -> dict[str, Any]:
        options = [o.shown(new_id) for o in self.options]
        return {**self.model_dump(exclude={"options"}), "options": options, "type": self.type or 0}


class _Onboarding(BaseModel):
    prompts: list[_Prompt] | None = Field(None, max_length=15)
    default_channel_ids: Annotated[list[str | int], Field(max_length=500), _known("channels")] | None = None
    enabled: bool | None = None
    mode: Literal[0, 1] | None = None


@_route("GET", "/guilds/{guild_id}/welcome-screen", bucket="welcome")
def _get_welcome(sb: Any, req: Call) -> Reply:
    screen = sb.screens["welcome"]
    return Reply(200, {"description": screen["description"], "welcome_channels": list(screen["welcome_channels"])})


@_route("PATCH", "/guilds/{guild_id}/welcome-screen", bucket="welcome")
def _patch_welcome(sb: Any, req: Call) -> Reply:
    if refused := sb._bot_lacks(MANAGE_GUILD):
        return refused
    body, errors = check_body(_WelcomePatch, req.json(), channels=sb.channels)
    if body is None:
        return _form_error(**errors)
    # A description sent as null clears it; the other fields sent as null change nothing.
    sb.screens["welcome"].update(
        {k: v for k, v in body.model_dump(exclude_unset=True).items() if v is not None or k == "description"}
    )
    return _get_welcome(sb, req)


@_route("GET", "/guilds/{guild_id}/onboarding", bucket="welcome")
def _get_onboarding(sb: Any, req: Call) -> Reply:
    return Reply(200, {"guild_id": sb.seed.guild_id, **copy.deepcopy(sb.screens["onboarding"])})


@_route("PUT", "/guilds/{guild_id}/onboarding", bucket="welcome")
def _put_onboarding(sb: Any, req: Call) -> Reply:
    if refused := sb._bot_lacks(MANAGE_GUILD | MANAGE_ROLES):
        return refused
    body, errors = check_body(_Onboarding, req.json(), channels=sb.channels, roles=sb.roles)
    if body is None:
        return _form_error(**errors)
    now = sb.screens["onboarding"]
    new = {**now, **body.model_dump(exclude_none=True, exclude={"prompts"})}
    if body.prompts is not None:
        new["prompts"] = [p.shown(sb._id) for p in body.prompts]
    if new["enabled"] and len(new["default_channel_ids"]) < 7:  # the docs' constraint (mode aside)
        if now["enabled"]:
            return _error(400, 350001, "Cannot update onboarding while below requirements")
        return _error(400, 350000, "Cannot enable onboarding, requirements are not met")
    sb.screens["onboarding"] = new
    return _get_onboarding(sb, req)
