"""A loopback emulator of the Discord REST endpoints charterflow uses, on the sandbox kit, and an
interaction sender that signs with the sandbox's own Ed25519 key pair. It answers as Discord does
where that matters to a client (``specs/API-NOTES.md`` section 1); what it emulates, its rate
limits and its control routes: the package README, "The sandbox"."""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import copy
import hashlib
import json
import math
import mimetypes
import random
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Annotated, Any, Literal
from urllib.parse import unquote

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    Field,
    RootModel,
    model_validator,
)

from connectors.base import Ballot, ConformanceSamples, Role
from connectors.discord.connector import DiscordConnector
from connectors.discord.interactions import sign_interaction
from connectors.discord.settings import DiscordSettings
from connectors.discord.snowflake import DISCORD_EPOCH_MS, time_of
from connectors.errors import ConfigError
from connectors.sandboxkit import (
    NOT_EMULATED_STATUS,
    Call,
    Reply,
    Routes,
    Sandbox,
    SeedModel,
    SlidingWindow,
    check_faults,
    control,
    data_file,
    load_seed,
    multipart,
    not_emulated,
    shaped,
)
from connectors.sandboxkit.bodies import check_body

__all__ = ["DEFAULT_BUCKETS", "DiscordSandbox", "SandboxSeed", "default_seed"]

# The fixed fields of the answers (every field the OpenAPI document requires that the sandbox has
# no value of its own for): data, beside this module.
_shapes = SimpleNamespace(**data_file(__file__, "shapes.json"))
# The methods Discord itself serves on each path the sandbox routes (its OpenAPI document's).
_METHODS: dict[str, str] = data_file(__file__, "methods.json")

Sink = Callable[[Mapping[str, str], bytes], tuple[int, Any]]

API_PREFIX = "/api/v10"
MANAGE_ROLES, ADMINISTRATOR, EPHEMERAL = 1 << 28, 1 << 3, 1 << 6
# Permission bits (https://discord.com/developers/docs/topics/permissions#permissions-bitwise-permission-flags).
VIEW_AUDIT_LOG, VIEW_CHANNEL, SEND_MESSAGES, MANAGE_MESSAGES = 1 << 7, 1 << 10, 1 << 11, 1 << 13
ATTACH_FILES, READ_HISTORY, CREATE_EVENTS = 1 << 15, 1 << 16, 1 << 44
PUBLIC_THREADS, PRIVATE_THREADS, SEND_IN_THREADS, USE_COMMANDS = 1 << 35, 1 << 36, 1 << 38, 1 << 31
EVERY_PERMISSION = (1 << 53) - 1  # what Administrator holds
# The privileged intents, as application flags (the full bit or the "limited" one).
MEMBERS_INTENT, CONTENT_INTENT = (1 << 14) | (1 << 15), (1 << 18) | (1 << 19)
MESSAGE_LIMIT = 2000  # docs; the spec says 4000 (see the module docstring)
AUDIT_REASON_MAX = 512
_COMMAND_NAME = re.compile(r"^[-_\w]{1,32}$")
_SNOWFLAKE = re.compile(r"^(0|[1-9][0-9]*)$")  # the spec's SnowflakeType pattern

# (limit, window seconds) per bucket, before time_scale. Invented but Discord-shaped: data.
DEFAULT_BUCKETS: dict[str, tuple[int, float]] = {k: tuple(v) for k, v in data_file(__file__, "buckets.json").items()}


class SeedRole(SeedModel):
    """A guild role; higher ``position`` is higher in the hierarchy."""

    id: str | None = None
    name: str
    position: int = Field(ge=1)
    permissions: int = 0
    managed: bool = False
    bot_role: bool = False  # the bot's own managed role


class SeedOverwrite(SeedModel):
    """A channel's permission overwrite of a ``role`` (by name; ``@everyone`` the guild's) or of a
    ``member`` (by username)."""

    role: str | None = None
    member: str | None = None
    allow: int = Field(default=0, ge=0)
    deny: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _one_target(self) -> SeedOverwrite:
        if (self.role is None) == (self.member is None):
            raise ValueError("an overwrite names a role or a member")
        return self


class SeedChannel(SeedModel):
    """A text channel of the guild (``type`` 0) and its permission overwrites."""

    id: str | None = None
    name: str = Field(pattern=r"^[a-z0-9_\-]{1,100}$")
    type: int = 0
    permission_overwrites: list[SeedOverwrite] = []


class SeedMember(SeedModel):
    """A member (invented people only); ``recent_messages`` fall in the last 90 days."""

    id: str | None = None
    username: str = Field(pattern=r"^[a-z0-9_.]{2,32}$")
    global_name: str | None = None
    nick: str | None = None
    joined_at: datetime | None = datetime(2024, 1, 15, 12, 0, tzinfo=UTC)
    roles: list[str] = []
    bot: bool = False
    accepts_dms: bool = True
    recent_messages: int = Field(default=0, ge=0, le=10_000)
    older_messages: int = Field(default=0, ge=0, le=10_000)


class SeedSettings(SeedModel):
    """Limits and windows the sandbox honours (seconds before ``time_scale``)."""

    global_limit: int = Field(default=50, ge=1)
    global_window: float = Field(default=1.0, gt=0)
    buckets: dict[str, tuple[int, float]] = {}
    nonce_window: float = Field(default=300.0, gt=0)
    interaction_timeout: float = Field(default=3.0, gt=0)
    search_index_retry_after: int = Field(default=2, ge=0)
    cdn_url_lifetime: int = Field(default=86_400, ge=1)  # a signed attachment URL's life (ex - is)


class SandboxSeed(SeedModel):
    """The whole initial state of a sandbox (``charterflow sandbox discord --seed FILE``)."""

    guild_id: str = "1100000000000000001"
    guild_name: str = "Online Community (sandbox)"
    application_id: str = "1100000000000000002"
    bot_username: str = "charterflow"
    # Application flags: the Server Members and Message Content intents switched on (the
    # "limited" bits of a bot in fewer than 100 servers), as `charterflow doctor` expects.
    application_flags: int = (1 << 15) | (1 << 19)
    # @everyone's guild permissions: what a member needs to read, write and run commands anywhere
    # (Discord's default for a new server holds more; the bot's role holds what it needs itself).
    everyone_permissions: int = Field(
        default=VIEW_CHANNEL | SEND_MESSAGES | SEND_IN_THREADS | READ_HISTORY | USE_COMMANDS, ge=0
    )
    token: str | None = None
    private_key: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    roles: list[SeedRole]
    channels: list[SeedChannel]
    members: list[SeedMember]
    generated_members: int = Field(default=0, ge=0, le=200_000)
    generated_member_roles: dict[str, int] = {}  # role name -> how many of the first generated members hold it
    settings: SeedSettings = SeedSettings()
    # Guild features (https://discord.com/developers/docs/resources/guild#guild-object-guild-features):
    # COMMUNITY is what lets a server have a welcome screen and onboarding.
    features: list[str] = ["COMMUNITY"]


def default_seed() -> dict[str, Any]:
    """The default guild: invented members, the WG roles below the bot's role, one role above it."""
    return data_file(__file__, "seed.json")


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


def _snowflake_ms(ms: int, seq: int) -> str:
    return str(((ms - DISCORD_EPOCH_MS) << 22) | (seq & 0x3FFFFF))


def _ms_up(seconds: float) -> float:
    # Rounded up to the millisecond: a client waiting that long never comes back early.
    return math.ceil(seconds * 1000) / 1000


def _error(status: int, code: int, message: str, errors: Mapping[str, Any] | None = None) -> Reply:
    return Reply(status, {"message": message, "code": code, **({"errors": dict(errors)} if errors else {})})


def _form_error(_code: str = "BASE_TYPE_INVALID", **fields: str) -> Reply:
    errors = {name: {"_errors": [{"code": _code, "message": msg}]} for name, msg in fields.items()}
    return _error(400, 50035, "Invalid Form Body", errors)


def _refused(model: type[BaseModel], data: Any, **context: Any) -> Reply | None:
    """Discord's 400 50035 naming each field of ``data`` that ``model`` refuses."""
    errors = check_body(model, data, **context)[1]
    return _form_error(**errors) if errors else None


def _unknown(what: str, code: int) -> Reply:
    return _error(404, code, f"Unknown {what}")


_MEDIA_TYPES = mimetypes.MimeTypes()  # Python's own table only: the same answer on every machine


def _media_type(filename: str, declared: str | None = None, data: bytes = b"") -> str | None:
    """An attachment's ``content_type`` as Discord shows it: guessed from the file, not taken from
    the upload (discord.py declares every file ``application/octet-stream``); text that decodes as
    UTF-8 with that charset (https://github.com/discord/discord-api-docs/issues/2763); none when
    neither the name nor the upload tells (the field is optional). A part without a type reads as
    ``text/plain`` (RFC 2046), so that one tells nothing either."""
    guessed = _MEDIA_TYPES.guess_type(filename)[0]
    if guessed is None:
        return declared if declared not in (None, "application/octet-stream", "text/plain") else None
    if not guessed.startswith("text/"):
        return guessed
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return guessed
    return f"{guessed}; charset=utf-8"


def _unreadable(req: Call, route: Any) -> Reply | None:
    """Discord's 400 for a request it cannot read: a path id that is not a snowflake (it never
    reaches the lookup that would answer 10013 & co.), an ``X-Audit-Log-Reason`` over 512
    characters, a bad multipart or JSON body, a body that is not JSON."""
    for name, value in req.params.items():
        if name.endswith("_id") and not _SNOWFLAKE.match(value):
            return _form_error("NUMBER_TYPE_COERCE", **{name: f'Value "{value}" is not snowflake.'})
    if len(unquote(req.headers.get("x-audit-log-reason", ""))) > AUDIT_REASON_MAX:
        return _form_error("BASE_TYPE_MAX_LENGTH", audit_log_reason=f"Must be {AUDIT_REASON_MAX} or fewer in length.")
    if route.multipart and req.headers.get("content-type", "").startswith("multipart/form-data"):
        # Discord's "Uploading Files": the ``payload_json`` part is the JSON body, then the files.
        if (parts := multipart(req.headers["content-type"], req.body)) is None:
            return _form_error(body="Invalid multipart/form-data body")
        req.body = next((data for name, _, _, data in parts if name == "payload_json"), b"")
        req.files += [
            {"field": name, "filename": filename, "size": len(data), "content_type": _media_type(filename, ctype, data)}
            for name, filename, ctype, data in parts
            if name != "payload_json" and filename
        ]
        req.headers["content-type"] = "application/json"
    try:
        body = req.json()
    except (ValueError, UnicodeDecodeError):
        return _error(400, 50109, "The request body contains invalid JSON.")
    if body is not None and "json" not in req.headers.get("content-type", ""):
        return _form_error(body="Content-Type must be application/json")
    return None


_routes = Routes()


def _route(
    method: str,
    template: str,
    *,
    bucket: str,
    auth: bool = True,
    find: Callable[..., Any] | None = None,
    multipart: bool = False,  # the route also takes Discord's "Uploading Files" bodies
    intent: int = 0,  # the privileged intent (application flags) without which it is 403 50001
    **bind: Any,
) -> Callable[[Callable], Callable]:
    # Interaction follow-ups are limited per interaction (their webhook_id is the application
    # id): https://github.com/discord/discord-api-docs/issues/2701
    major = next(
        (
            p
            for p in ("guild_id", "channel_id", "interaction_token", "webhook_id", "interaction_id")
            if "{" + p + "}" in template
        ),
        None,
    )
    return _routes(
        method,
        template,
        bucket=bucket,
        auth=auth,
        major=major,
        bind=bind,
        find=find,
        multipart=multipart,
        intent=intent,
    )


# The ages of a seeded member's past messages in milliseconds: (recent, older).
_AGES = ((1, 89 * 86_400_000), (91 * 86_400_000, 700 * 86_400_000))


@dataclass
class _BucketState:
    start: float = float("-inf")
    count: int = 0
    reset_epoch: float = 0.0  # X-RateLimit-Reset of this window: one fixed value per window


def _rows(components: Any) -> list[dict[str, Any]]:
    """Action rows as Discord stores them: every component gets its numeric ``id``."""
    return [
        {
            "type": 1,
            "id": r * 10 + 1,
            "components": [{**c, "id": r * 10 + i + 2} for i, c in enumerate(row.get("components", []))],
        }
        for r, row in enumerate(components or [])
    ]


class _Button(BaseModel):
    type: Literal[2]  # only buttons are emulated
    custom_id: str = Field(min_length=1, max_length=100)
    label: str = Field("", max_length=80)


class _Row(BaseModel):
    type: Literal[1]  # each top-level component is an action row
    components: list[_Button] = Field(min_length=1, max_length=5)


def _unique_ids(rows: list[_Row]) -> list[_Row]:
    if len(ids := [b.custom_id for row in rows for b in row.components]) != len(set(ids)):
        raise ValueError("custom_id must be unique")
    return rows


class _Content(BaseModel):
    """What the interaction webhooks check of a message (follow-ups, edits of the original)."""

    content: str | None = Field(None, max_length=MESSAGE_LIMIT)


class _Message(_Content):
    """A new or edited message: at most 5 action rows of 1-5 buttons, a nonce of 25 characters."""

    components: Annotated[list[_Row], Field(max_length=5), AfterValidator(_unique_ids)] | None = None
    nonce: Annotated[str, Field(max_length=25)] | Annotated[int, Field(lt=10**25)] | None = None


class _Thread(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    auto_archive_duration: Literal[60, 1440, 4320, 10080] = 10080
    type: Literal[11, 12] = 12


class _Location(BaseModel):
    location: str = Field(min_length=1, max_length=100)


class _Event(BaseModel):
    """A new EXTERNAL scheduled event (the only kind emulated)."""

    name: str = Field(min_length=1, max_length=100)
    description: str | None = Field(None, max_length=1000)
    privacy_level: Literal[2]
    entity_type: Literal[3]
    entity_metadata: _Location
    scheduled_start_time: AwareDatetime
    scheduled_end_time: AwareDatetime


class _Command(BaseModel):
    name: str = Field(min_length=1, max_length=32)
    description: str = Field("", max_length=100)
    type: Literal[1, 2, 3] = 1
    options: list[dict[str, Any]] | None = None

    @model_validator(mode="after")
    def _by_type(self) -> _Command:
        # USER (2) and MESSAGE (3) commands: any case, spaces allowed, an empty description.
        # https://discord.com/developers/docs/interactions/application-commands#application-command-object
        if self.type != 1 and (self.description or self.options or not self.name.strip()):
            raise ValueError("User and message commands have a name and no description and no options.")
        # Required options before optional ones (the docs' application command option structure).
        if self.type == 1 and not (
            _COMMAND_NAME.match(self.name)
            and self.name == self.name.lower()
            and self.description
            and (needed := [bool(o.get("required")) for o in self.options or []]) == sorted(needed, reverse=True)
        ):
            raise ValueError("A slash command has a lower-case name, a description and its required options first.")
        return self


def _unique_names(commands: list[_Command]) -> list[_Command]:
    if len({c.name for c in commands}) != len(commands):
        raise ValueError("Application command names must be unique")
    return commands


class _Commands(RootModel[Annotated[list[_Command], Field(max_length=100), AfterValidator(_unique_names)]]):
    """A bulk overwrite: at most 100 commands, each name once."""


class DiscordSandbox(Sandbox):
    """A Discord guild in memory, served as an ASGI app (``sandbox.app``) under ``/api/v10``.

    ``seed`` is a mapping in the ``SandboxSeed`` shape (``default_seed()`` when ``None``);
    ``time_scale`` multiplies every rate-limit window and ``retry_after``; ``settings`` overrides
    ``seed["settings"]``; ``interactions_url`` is where interactions are POSTed (else the sink set
    by ``connect`` or ``set_interaction_sink``).
    """

    # Built from the seed and never changed: a keeper of the state need not save it.
    state_from_seed = ("history",)
    routes = _routes
    json_type = "application/json"
    compact_json = True
    raw_paths = True

    def __init__(
        self,
        *,
        seed: Mapping[str, Any] | None = None,
        time_scale: float = 1.0,
        settings: Mapping[str, Any] | None = None,
        interactions_url: str | None = None,
    ) -> None:
        if not time_scale > 0:
            raise ConfigError("time_scale must be positive")
        self.seed = load_seed(SandboxSeed, seed if seed is not None else default_seed(), settings)
        self.time_scale = float(time_scale)
        self.interactions_url = interactions_url
        self._sink: Sink | None = None
        self._setup()
        # Called before an interaction is sent, so a keeper of the state (charterflow.sandbox_state)
        # has saved its token: the answer may arrive after this process was restarted.
        self.on_change: Callable[[], None] | None = None
        self._private_key = Ed25519PrivateKey.from_private_bytes(
            bytes.fromhex(self.seed.private_key or secrets.token_hex(32))
        )
        self.public_key = self._private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
        self.token = self.seed.token or f"sbx.{secrets.token_urlsafe(24)}"
        self._reset()

    # ---- state -------------------------------------------------------------------------------

    def _id(self) -> str:
        self._seq += 1
        return _snowflake_ms(int(time.time() * 1000), self._seq)

    def _reset(self) -> None:
        seed = self.seed
        with self._lock:
            self._seq = 0
            self.settings = seed.settings.model_copy()
            self.buckets = {**DEFAULT_BUCKETS, **{k: tuple(v) for k, v in seed.settings.buckets.items()}}
            base_ms = DISCORD_EPOCH_MS + 10**11  # ids of seeded objects: a fixed moment in 2018
            everyone = {
                "id": seed.guild_id,
                "name": "@everyone",
                "position": 0,
                "permissions": seed.everyone_permissions,
                "managed": False,
                "bot_role": False,
            }
            roles = [
                {**r.model_dump(), "id": r.id or _snowflake_ms(base_ms + 1000 + i, i)} for i, r in enumerate(seed.roles)
            ]
            self.roles: dict[str, dict[str, Any]] = {r["id"]: r for r in [everyone, *roles]}
            by_name = {r["name"]: rid for rid, r in self.roles.items()}
            channels = [
                {**c.model_dump(), "id": c.id or _snowflake_ms(base_ms + 2000 + i, i), "position": i}
                for i, c in enumerate(seed.channels)
            ]
            self.channels: dict[str, dict[str, Any]] = {
                c["id"]: {**c, "parent_id": None, "guild_id": seed.guild_id, "thread": None} for c in channels
            }
            # Every user the sandbox knows is a member of its one guild, or was (left: `departed`).
            self.members: dict[str, dict[str, Any]] = {}
            self.departed: dict[str, dict[str, Any]] = {}
            self._add_member(
                seed.application_id,
                [rid for rid, r in self.roles.items() if r.get("bot_role")],
                username=seed.bot_username,
                joined_at=datetime(2022, 1, 1, tzinfo=UTC),
                bot=True,
                accepts_dms=False,
            )
            self.history: list[dict[str, Any]] = []  # messages of the past (for search only)
            self._seed_members(base_ms, by_name)
            for channel, seeded in zip(self.channels.values(), seed.channels, strict=True):
                overwrites = [self._overwrite(o, by_name) for o in seeded.permission_overwrites]
                if len({o["id"] for o in overwrites}) < len(overwrites):  # one per role or member, as on Discord
                    raise ConfigError(
                        f"invalid sandbox seed: channel {channel['name']!r} has two overwrites of one target"
                    )
                channel["permission_overwrites"] = overwrites
            self.messages: dict[str, dict[str, Any]] = {}
            self.nonces: dict[tuple[str, str], tuple[float, str]] = {}
            self.events: dict[str, dict[str, Any]] = {}
            # The welcome screen and the onboarding (sandbox_welcome.py): a guild starts with no
            # welcome screen, onboarding off and no prompt.
            self.screens: dict[str, dict[str, Any]] = {
                "welcome": {"description": None, "welcome_channels": [], "enabled": False},
                "onboarding": {"prompts": [], "default_channel_ids": [], "enabled": False, "mode": 0},
            }
            self.commands: dict[str, list[dict[str, Any]]] = {}
            self.role_changes: list[dict[str, Any]] = []
            self.audit_log: list[dict[str, Any]] = []
            self.interactions: dict[str, dict[str, Any]] = {}  # token -> interaction record
            self.interaction_log: list[dict[str, Any]] = []
            self._bucket_states: dict[tuple[str, str], _BucketState] = {}
            # Every request with the bot token counts, the refused ones too.
            self._global = SlidingWindow(self.settings.global_limit, self.settings.global_window * self.time_scale)
            self._reset_stats()
            self._member_cache: dict[str, bytes] = {}
            self._sorted_ids: list[int] | None = None

    def _seed_members(self, base_ms: int, by_name: Mapping[str, str]) -> None:
        """The seed's members, each with its past messages (recent: the last 89 days; older: 91
        to 700 days ago), then the generated members."""
        seed, rng = self.seed, random.Random(7)
        general, now_ms = next(iter(self.channels)), int(time.time() * 1000)
        for i, m in enumerate(seed.members):
            uid = m.id or _snowflake_ms(base_ms + 3000 + i, i)
            if missing := [r for r in m.roles if r not in by_name]:
                raise ConfigError(f"invalid sandbox seed: member {m.username!r} has unknown roles {missing}")
            if uid in self.members or self._user_by_name(m.username):
                raise ConfigError(f"invalid sandbox seed: duplicate member {m.username!r}")
            fields = m.model_dump(exclude={"id", "roles", "recent_messages", "older_messages"})
            self._add_member(uid, [by_name[r] for r in m.roles], **fields)
            # n - recent from 0 on: an older message, 91 to 700 days old (a recent one: 0 to 89).
            self.history += [
                {
                    "id": _snowflake_ms(
                        now_ms - rng.randint(*_AGES[n >= m.recent_messages]),
                        n + 5000 - m.recent_messages if n >= m.recent_messages else n,
                    ),
                    "author_id": uid,
                    "channel_id": general,
                }
                for n in range(m.recent_messages + m.older_messages)
            ]
        if unknown := [name for name in seed.generated_member_roles if name not in by_name]:
            raise ConfigError(f"invalid sandbox seed: generated_member_roles names unknown role {unknown[0]!r}")
        for n in range(seed.generated_members):
            self._add_member(
                _snowflake_ms(base_ms + 10_000 + n, n),
                [by_name[name] for name, count in seed.generated_member_roles.items() if n < count],
                username=f"member_{n:06d}",
                joined_at=datetime(2024, 6, 1, tzinfo=UTC),
            )

    def _add_member(self, uid: str, roles: list[str], **fields: Any) -> None:
        """A member and its user: ``fields`` are ``username``, ``joined_at`` and any of the
        defaults' keys."""
        self.members[uid] = {
            "global_name": None,
            "nick": None,
            "bot": False,
            "accepts_dms": True,
            **fields,
            "id": uid,
            "roles": list(roles),
        }

    def _overwrite(self, seeded: SeedOverwrite, roles: Mapping[str, str]) -> dict[str, Any]:
        """A seeded overwrite as Discord keeps it: the role's or member's id and ``type`` 0 or 1."""
        target = roles.get(seeded.role) if seeded.role is not None else self._user_by_name(str(seeded.member))
        if target is None:
            raise ConfigError(f"invalid sandbox seed: an overwrite names an unknown {seeded.role or seeded.member!r}")
        found = (target, 0) if isinstance(target, str) else (target["id"], 1)
        return {"id": found[0], "type": found[1], "allow": seeded.allow, "deny": seeded.deny}

    def _permissions(self, uid: str, channel: Mapping[str, Any] | None = None) -> int:
        """``uid``'s permissions in the guild (``@everyone``'s OR its roles'), or in ``channel``
        after its overwrites (a thread: its parent's): ``@everyone``'s, then its roles' (denies,
        then allows), then its own; Administrator holds every one
        (https://discord.com/developers/docs/topics/permissions#permission-overwrites)."""
        held = 0
        for rid in [self.seed.guild_id, *self.members[uid]["roles"]]:
            held |= int(self.roles[rid]["permissions"])
        if held & ADMINISTRATOR:
            return EVERY_PERMISSION
        if channel is not None and channel.get("thread"):
            channel = self.channels[channel["parent_id"]]
        overwrites = {o["id"]: o for o in (channel or {}).get("permission_overwrites", [])}
        for ids in ([self.seed.guild_id], self.members[uid]["roles"], [uid]):
            found = [overwrites[i] for i in ids if i in overwrites]
            deny = allow = 0
            for o in found:
                deny, allow = deny | o["deny"], allow | o["allow"]
            held = (held & ~deny) | allow
        return held

    def _bot_lacks(self, needed: int, channel: Mapping[str, Any] | None = None) -> Reply | None:
        return self._lacks(self.bot_id, needed, channel)

    def _lacks(self, uid: str, needed: int, channel: Mapping[str, Any] | None = None) -> Reply | None:
        """Discord's refusal of ``uid`` (the bot, or a person acting through the control routes)
        lacking ``needed`` in the guild or in ``channel``: in a channel it cannot view, 403 50001;
        else 403 50013. A DM needs none."""
        if channel is not None and channel["type"] == 1:
            return None
        held = self._permissions(uid, channel)
        if channel is not None and not held & VIEW_CHANNEL:
            return _error(403, 50001, "Missing Access")
        return None if held & needed == needed else _error(403, 50013, "Missing Permissions")

    def _user_by_name(self, username: str) -> dict[str, Any] | None:
        return next((u for u in self.members.values() if u["username"] == username.lower()), None)

    def _person(self, name_or_id: Any) -> dict[str, Any] | Reply:
        """A member named by username or id (what the control routes take), or 10013."""
        user = self._user_by_name(str(name_or_id)) or self.members.get(str(name_or_id))
        return user if user is not None else _error(400, 10013, "Unknown User")

    @property
    def bot_id(self) -> str:
        """The bot user's id (the application id, as for applications made since 2020)."""
        return self.seed.application_id

    def _role_id(self, name: str) -> str | None:
        return next((rid for rid, r in self.roles.items() if r["name"] == name), None)

    def channel_id(self, name: str) -> str:
        """The id of the seeded channel called ``name``."""
        return next(cid for cid, c in self.channels.items() if c["name"] == name)

    # ---- the framework's Sandbox protocol ----------------------------------------------------

    @property
    def samples(self) -> ConformanceSamples:
        """Names from the default seed the conformance suite exercises."""
        return ConformanceSamples(
            username="cleo_marsh",
            missing_username="nobody_by_this_name",
            grantable_role=Role.moderator(),
            channel="wg-private",
            recipients=("cleo_marsh", "dario_fenwick"),
            voters=("cleo_marsh", "dario_fenwick"),
            voters_group="wg-member",
            inbound_kind="idea",
            inbound_payload={"text": "hello"},
        )  # the /idea command

    def client_info(self, base_url: str) -> dict[str, Any]:
        """Base URL, token, public key, ids and the matching ``CHARTERFLOW_DISCORD_*`` variables."""
        base_url = base_url.rstrip("/")
        api = f"{base_url}{API_PREFIX}"
        env = {
            "CHARTERFLOW_DISCORD_API_URL": api,
            "CHARTERFLOW_DISCORD_TOKEN": self.token,
            "CHARTERFLOW_DISCORD_PUBLIC_KEY": self.public_key,
            "CHARTERFLOW_DISCORD_APPLICATION_ID": self.seed.application_id,
            "CHARTERFLOW_DISCORD_GUILD_ID": self.seed.guild_id,
            "CHARTERFLOW_DISCORD_GLOBAL_RATE_LIMIT": str(self.settings.global_limit),
            "CHARTERFLOW_DISCORD_GLOBAL_RATE_WINDOW": f"{self.settings.global_window * self.time_scale:g}",
            # The roles and the WG channel of the seed that the settings name, where it has them.
            **{
                f"CHARTERFLOW_DISCORD_{setting}_ID": rid
                for setting, rid in (
                    ("WG_MEMBER_ROLE", self._role_id("wg-member")),
                    ("MODERATOR_ROLE", self._role_id("moderator")),
                    ("ADMIN_ROLE", self._role_id("admin")),
                    ("WG_CHANNEL", next((c for c, v in self.channels.items() if v["name"] == "wg-private"), None)),
                )
                if rid is not None
            },
        }
        return {
            "connector": "discord",
            "base_url": base_url,
            "api_url": api,
            "credentials": {
                "token": self.token,
                "public_key": self.public_key,
                "application_id": self.seed.application_id,
                "guild_id": self.seed.guild_id,
            },
            "headers": {"Authorization": f"Bot {self.token}", "User-Agent": "DiscordBot (sandbox, 1.0)"},
            "env": env,
            "time_scale": self.time_scale,
            "control": {name: f"{base_url}/_sandbox/{name}" for name in ("state", "faults", "interactions")},
        }

    def connect(self, base_url: str, **options: Any) -> Any:
        """A ``DiscordConnector`` for this sandbox; ``options`` override settings fields, except
        ``transport``, ``clock``, ``rng``, ``retry``, ``vote_store`` and ``now`` (connector
        arguments). Unless an interactions URL is set, the connector also becomes the endpoint the
        sandbox delivers interactions to (``handle_interaction``)."""
        extra = {k: options.pop(k) for k in ("transport", "clock", "rng", "retry", "vote_store", "now") if k in options}
        values: dict[str, Any] = {
            **{
                key.removeprefix("CHARTERFLOW_DISCORD_").lower(): v
                for key, v in self.client_info(base_url)["env"].items()
            },
            "timeout": 10.0,
            "max_retries": 4,
            "search_index_max_wait": 10.0 * self.time_scale,
            **options,
        }
        connector = DiscordConnector(settings=DiscordSettings(_env_file=None, **values), **extra)
        if self.interactions_url is None:
            self.set_interaction_sink(lambda headers, body: connector.handle_interaction(headers=headers, body=body))
        return connector

    def set_interaction_sink(self, sink: Sink | None) -> None:
        """Deliver interactions to ``sink(headers, body) -> (status, json)`` (in-process)."""
        self._sink = sink

    def cast_vote(self, base_url: str, ballot: Ballot, *, voter: str, option_index: int) -> None:
        """Press ``voter``'s button for option ``option_index`` on the ballot's message."""
        if ballot.message is None:
            raise ValueError("the ballot has no message")
        result = self.press(
            base_url,
            user=voter,
            channel_id=ballot.message.thread_id,
            message_id=ballot.message.id,
            option_index=option_index,
        )
        if result["status"] != 200:
            raise RuntimeError(f"the interactions endpoint answered {result['status']}: {result.get('response')}")

    def press(
        self,
        base_url: str,
        *,
        user: str,
        channel_id: str,
        message_id: str,
        option_index: int | None = None,
        custom_id: str | None = None,
    ) -> dict[str, Any]:
        """Press a button on a message (by position or ``custom_id``) as ``user``; the result of
        ``POST /_sandbox/interactions``."""
        return self._control_post(
            base_url,
            {
                "type": "component",
                "user": user,
                "channel_id": channel_id,
                "message_id": message_id,
                "option_index": option_index,
                "custom_id": custom_id,
            },
        )

    def command(
        self,
        base_url: str,
        *,
        user: str,
        name: str,
        options: Mapping[str, Any] | None = None,
        channel: str | None = None,
    ) -> dict[str, Any]:
        """Run the slash command ``/name`` as ``user``."""
        return self._control_post(
            base_url,
            {"type": "command", "user": user, "name": name, "options": dict(options or {}), "channel_id": channel},
        )

    def submit_modal(self, base_url: str, *, user: str, custom_id: str, fields: Mapping[str, str]) -> dict[str, Any]:
        """Submit the modal ``custom_id`` with ``fields`` (text input id → value) as ``user``."""
        return self._control_post(
            base_url, {"type": "modal_submit", "user": user, "custom_id": custom_id, "fields": dict(fields)}
        )

    def _control_post(self, base_url: str, body: Mapping[str, Any]) -> dict[str, Any]:
        response = httpx.post(f"{base_url.rstrip('/')}/_sandbox/interactions", json=dict(body), timeout=15.0)
        if response.status_code >= 400:
            raise RuntimeError(f"sandbox refused the interaction: {response.text}")
        return response.json()

    def deferred_interaction(self, base_url: str) -> str:
        """The token of an interaction delivered and deferred (``/idea`` as a sample member), for
        the conformance check of ``InteractionResponder``."""
        sent = self.command(base_url, user=self.samples.recipients[0], name="idea", options={"text": "hello"})
        return next(t for t, r in self.interactions.items() if r["id"] == sent["interaction_id"])

    def signed_request(self, *, kind: str, payload: Mapping[str, Any]) -> tuple[dict[str, str], bytes]:
        """A signed interaction request as Discord would send it (headers, raw body).

        ``kind`` ``ping`` sends a PING; ``ballot_vote``/``component`` a button press (``payload``
        gives ``custom_id``); ``apply_submitted``/``modal_submit`` a modal; any other kind is
        sent as a slash command of that name whose ``payload`` option holds ``payload`` as JSON.
        """
        user = self._user_by_name(str(payload.get("user", "cleo_marsh"))) or next(
            u for u in self.members.values() if not u["bot"]
        )
        with self._lock:
            interaction = self._interaction_payload(kind, user, payload)
        body = json.dumps(interaction, separators=(",", ":")).encode("utf-8")
        return self.sign(body), body

    def sign(self, body: bytes, *, timestamp: int | None = None) -> dict[str, str]:
        """Headers that sign ``body`` with the sandbox's application key."""
        return sign_interaction(self._private_key, body, timestamp=timestamp)

    # ---- interactions --------------------------------------------------------------------

    def _interaction_payload(self, kind: str, user: Mapping[str, Any], payload: Mapping[str, Any]) -> dict[str, Any]:
        iid, token = self._id(), "itok_" + secrets.token_urlsafe(32)
        cid = payload.get("channel_id") or next(iter(self.channels))  # the first channel by default
        # In a DM with the bot: `user`, no guild, context 1 (BOT_DM), the guild install's owner "0".
        # https://discord.com/developers/docs/interactions/receiving-and-responding#interaction-object
        where = (
            {"user": self._user_json(user["id"]), "context": 1, "authorizing_integration_owners": {"0": "0"}}
            if self.channels.get(cid, {}).get("type") == 1
            else {
                "guild_id": self.seed.guild_id,
                "member": {**self._member_json(user["id"]), "permissions": "0"},
                "authorizing_integration_owners": {"0": self.seed.guild_id},
            }
        )
        base = shaped(
            _shapes.INTERACTION,
            id=iid,
            application_id=self.seed.application_id,
            token=token,
            channel_id=cid,
            # The channel it was sent from, besides its id (the docs' interaction object).
            **({"channel": self._channel_json(self.channels[cid])} if cid in self.channels else {}),
            app_permissions=str(MANAGE_ROLES),
            **where,
        )
        if kind == "ping":
            base = {
                "id": iid,
                "application_id": self.seed.application_id,
                "type": 1,
                "token": token,
                "version": 1,
                "channel_id": None,
            }
        elif kind in ("ballot_vote", "component"):
            message = self.messages.get(str(message_id)) if (message_id := payload.get("message_id")) else None
            base.update(
                type=3,
                data={"custom_id": str(payload.get("custom_id", "")), "component_type": 2},
                message=self._message_json(message) if message else {"id": str(message_id or "0")},
            )
        elif kind == "message_command":
            # https://discord.com/developers/docs/interactions/application-commands#message-commands
            message = payload["message"]
            base.update(
                type=2,
                data={
                    "id": self._id(),
                    "name": payload["name"],
                    "type": 3,
                    "guild_id": self.seed.guild_id,
                    "target_id": message["id"],
                    "resolved": {"messages": {message["id"]: self._message_json(message)}},
                },
            )
        elif kind in ("apply_submitted", "modal_submit"):
            base.update(
                type=5,
                data={
                    "custom_id": str(payload.get("custom_id", "cf:apply")),
                    "components": [
                        {"type": 1, "components": [{"type": 4, "custom_id": str(k), "value": str(v)}]}
                        for k, v in dict(payload.get("fields") or {}).items()
                    ],
                },
            )
        else:
            # A command without options carries the payload as JSON in one option.
            options = (
                payload["options"]
                if payload.get("options") is not None
                else {"payload": json.dumps(dict(payload), sort_keys=True)}
            )
            base.update(
                type=2,
                data={
                    "id": self._id(),
                    "name": payload["name"] if kind == "slash_command" else kind,
                    "type": 1,
                    "guild_id": self.seed.guild_id,
                    "options": [{"name": str(k), "type": 3, "value": v} for k, v in dict(options).items()],
                },
            )
        self.interactions[token] = {
            "id": iid,
            "token": token,
            "created": time.monotonic(),
            "acknowledged": False,
            "channel_id": base.get("channel_id"),
            "user_id": user["id"],
            "type": base["type"],
            "message_id": (base.get("message") or {}).get("id"),
            "responses": [],
        }
        return base

    async def _deliver(self, interaction: dict[str, Any]) -> dict[str, Any]:
        # Discord sends an interaction once: an endpoint that does not answer in time (or at
        # all) makes the member's client show "This interaction failed"; nothing is retried.
        if self.on_change is not None:
            self.on_change()
        body = json.dumps(interaction, separators=(",", ":")).encode("utf-8")
        headers, timeout, started = self.sign(body), self.settings.interaction_timeout, time.monotonic()
        status, answer, error = 0, None, None
        try:
            if self.interactions_url:
                async with httpx.AsyncClient(timeout=timeout) as client:
                    response = await client.post(self.interactions_url, content=body, headers=headers)
                status = response.status_code
                with contextlib.suppress(ValueError):
                    answer = response.json()
            elif self._sink is not None:
                status, answer = await asyncio.wait_for(asyncio.to_thread(self._sink, headers, body), timeout)
            else:
                error = "no interactions endpoint is configured"
        except (TimeoutError, httpx.TimeoutException):
            error = f"the endpoint did not answer within {timeout:g} s"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}"
        if error is None and status != 200:
            error = f"the endpoint answered HTTP {status}"
        with self._lock:
            error = error or self._apply_callback(self.interactions[interaction["token"]], answer)
            outcome = {
                "interaction_id": interaction["id"],
                "type": interaction["type"],
                "status": status,
                "response": answer,
                "elapsed": round(time.monotonic() - started, 4),
                "error": error,
                "failed": error is not None,
            }
            self.interaction_log.append(outcome)
            return outcome

    def _apply_callback(self, record: dict[str, Any], answer: Any) -> str | None:
        """Do what Discord does with an interaction response; the problem when it is invalid."""
        if record["acknowledged"]:
            return "Interaction has already been acknowledged."
        if not isinstance(answer, dict) or not isinstance(answer.get("type"), int):
            return "the response is not an interaction response"
        rtype, data = answer["type"], answer["data"] if isinstance(answer.get("data"), dict) else dict[str, Any]()
        if rtype not in {1: {1}, 2: {4, 5, 9}, 3: {4, 5, 6, 7, 9}, 4: {8}, 5: {4, 5, 6, 7}}.get(record["type"], set()):
            return f"response type {rtype} is not allowed for interaction type {record['type']}"
        if rtype in (4, 7) and len(data.get("content") or "") > MESSAGE_LIMIT:
            return "content is longer than 2000 characters"
        if rtype == 9 and not (data.get("custom_id") and data.get("title") and data.get("components")):
            return "a modal needs custom_id, title and components"
        record["acknowledged"] = True
        record["responses"].append(answer)
        if rtype in (4, 5):
            content = data if rtype == 4 else {"content": "", "flags": data.get("flags", 0)}
            record["original_id"] = self._create_message(
                record["channel_id"], self.bot_id, content, interaction=record
            )["id"]
        elif rtype in (6, 7) and record.get("message_id") in self.messages:
            if rtype == 7:
                self._edit_message(self.messages[record["message_id"]], data)
            # An update's "original" is the message the button is on: @original edits edit it.
            record["original_id"] = record["message_id"]
        return None

    def state(self) -> dict[str, Any]:
        """Everything inspectable, JSON-ready (``GET /_sandbox/state``). The bot token is not in it."""
        with self._lock:
            return {
                "guild": {
                    "id": self.seed.guild_id,
                    "name": self.seed.guild_name,
                    "application_id": self.seed.application_id,
                    "public_key": self.public_key,
                },
                "roles": [dict(r) for r in sorted(self.roles.values(), key=lambda r: r["position"])],
                "channels": list(self.channels.values()),
                "members": [
                    {
                        "id": m["id"],
                        "username": m["username"],
                        "roles": sorted(self.roles[r]["name"] for r in m["roles"]),
                        "joined_at": _iso(m["joined_at"]),
                    }
                    for m in self.members.values()
                    if not m["username"].startswith("member_")
                ],
                "member_count": len(self.members),
                "messages": [
                    {
                        **{
                            k: m.get(k)
                            for k in (
                                "id",
                                "channel_id",
                                "author_id",
                                "content",
                                "components",
                                "flags",
                                "nonce",
                                "allowed_mentions",
                                "thread_id",
                                "timestamp",
                                "visible_to",
                            )
                        },  # visible_to: an ephemeral's reader
                        "edited": m["edited"] is not None,
                        "edited_at": m["edited"],
                    }
                    for m in self.messages.values()
                ],
                "events": list(self.events.values()),
                "commands": {scope: [c["name"] for c in cmds] for scope, cmds in self.commands.items()},
                "role_changes": list(self.role_changes),
                "audit_log": list(self.audit_log),
                "interactions": list(self.interaction_log),
                **self.stats(),
                "limits": {
                    "global": [self.settings.global_limit, self.settings.global_window * self.time_scale],
                    "buckets": {k: [v[0], v[1] * self.time_scale] for k, v in self.buckets.items()},
                },
            }

    # ---- the platform ------------------------------------------------------------------------

    def error(self, status: int, message: str) -> Reply:
        if message == "invalid_json":
            return _error(400, 50109, "The request body contains invalid JSON.")
        return _error(status, 50035 if status == 400 else 0, message)

    def parse_faults(self, data: Mapping[str, Any]) -> dict[str, Any]:
        out = check_faults(data, extra={"search_not_indexed"}, storm_keys=("scope",), whole_seconds=False)
        if "storm" in out:
            out["storm"]["scope"] = scope = str(out["storm"]["scope"] or "user")
            if scope not in ("user", "global", "shared"):
                raise ValueError("storm.scope must be user, global or shared")
        if "search_not_indexed" in data:
            out["search_not_indexed"] = int(data["search_not_indexed"])
        return out

    def handle(self, req: Call) -> Reply:
        # discord.js sends "@me" and "@original" percent-encoded ("%40me": discord-api-types' Routes
        # escape every argument, https://github.com/discordjs/discord-api-types/blob/main/rest/v10/index.ts);
        # Discord serves both spellings.
        req.path = req.path.replace("%40", "@")
        route, params = _routes.match(req.method, req.path.removeprefix(API_PREFIX))
        response = self._route(req, route, params) if route else self._unrouted(req)
        self.count(f"{req.method} {route.template if route else req.path}", response.status)
        return response

    def _route(self, req: Call, route: Any, params: dict[str, str]) -> Reply:
        # Cloudflare in front of Discord blocks clients without a proper User-Agent.
        if not req.headers.get("user-agent", "").startswith("DiscordBot ("):
            return _error(400, 0, "Requests need User-Agent: DiscordBot ($url, $versionNumber)")
        if route.auth and req.headers.get("authorization") != f"Bot {self.token}":
            return _error(401, 0, "401: Unauthorized")
        limit, window = self.buckets[route.bucket][0], self.buckets[route.bucket][1] * self.time_scale
        state = self._bucket_states.setdefault((route.bucket, params.get(route.major, "")), _BucketState())
        if limited := self._limited(route, state, limit, window):
            return self._too_many(req, route, limit, state, *limited)
        req.params = params
        if status := self.injected_status(502):
            response = Reply(status, {"message": f"sandbox: injected HTTP {status}", "code": 0})
        elif (invalid := _unreadable(req, route)) is not None:
            return invalid
        elif req.params.get("guild_id", self.seed.guild_id) != self.seed.guild_id:
            response = _unknown("Guild", 10004)  # every route under a guild, for another guild's id
        elif route.intent and not self.seed.application_flags & route.intent:
            response = _error(403, 50001, "Missing Access")  # "restricted according to" a privileged intent
        else:
            response = route.handler(self, req)
        reset_after = max(state.start + window - time.monotonic(), 0.0)
        response.headers.update(self._limit_headers(route.bucket, limit, limit - state.count, reset_after, state))
        return response

    def _limited(self, route: Any, state: _BucketState, limit: int, window: float) -> tuple[float, str, str] | None:
        """(seconds to wait, scope, kind) when a storm, the global limit or the route's bucket
        refuses the request; else it counts."""
        now = time.monotonic()
        if storm := self.take_storm():
            return float(storm.get("retry_after", 1.0)) * self.time_scale, str(storm.get("scope", "user")), "storm"
        # Interaction callbacks and webhooks do not count against the global limit.
        if route.auth and (wait := self._global.wait(now)) is not None:
            return wait, "global", "global"
        if now >= state.start + window:
            state.start, state.count, state.reset_epoch = now, 0, _ms_up(time.time() + window)
        if state.count >= limit:
            return state.start + window - now, "user", "bucket"
        state.count += 1
        return None

    def _unrouted(self, req: Call) -> Reply:
        """A method Discord does not serve on a known path is its 405; any other request, a
        method Discord serves there too, is not emulated."""
        template = _routes.template_at(req.path.removeprefix(API_PREFIX)) if req.path.startswith(API_PREFIX) else None
        if template is not None and req.method not in _METHODS[template].split():
            return _error(405, 0, "405: Method Not Allowed")
        return _unemulated(self, req)

    def _limit_headers(
        self, bucket: str, limit: int, remaining: int, reset_after: float, state: _BucketState
    ) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(max(remaining, 0)),
            # One fixed value per window; a bucket not counted yet ends its window after the wait.
            "X-RateLimit-Reset": f"{state.reset_epoch or _ms_up(time.time() + reset_after):.3f}",
            "X-RateLimit-Reset-After": f"{_ms_up(reset_after):.3f}",
            "X-RateLimit-Bucket": hashlib.sha1(bucket.encode()).hexdigest()[:16],  # noqa: S324 - an opaque name
        }

    def _too_many(
        self, req: Call, route: Any, limit: int, state: _BucketState, wait: float, scope: str, kind: str
    ) -> Reply:
        wait = max(wait, 0.0)
        self.note_limited(
            kind=kind,
            scope=scope,
            bucket=route.bucket,
            request=f"{req.method} {route.template}",
            retry_after=_ms_up(wait),
        )
        # Docs-accurate 429: no "code" (the spec's RatelimitedResponse requires one; the docs'
        # examples have none: https://discord.com/developers/docs/topics/rate-limits#exceeding-a-rate-limit).
        body = {"message": "You are being rate limited.", "retry_after": _ms_up(wait), "global": scope == "global"}
        # Via: a 429 from the API itself passes Google's front end; a Cloudflare ban lacks it.
        headers = {
            "Retry-After": str(max(1, math.ceil(wait))),
            "X-RateLimit-Scope": scope,
            "Via": "1.1 google",
            **(
                {"X-RateLimit-Global": "true"}
                if scope == "global"
                else self._limit_headers(route.bucket, limit, 0, wait, state)
            ),
        }
        return Reply(429, body, headers=headers)

    # ---- control routes --------------------------------------------------------------------

    @control("interactions_url")
    async def _set_interactions_url(self, call: Call, data: dict[str, Any]) -> Reply:
        """The Developer Portal's save: a URL is kept only once it refused a PING signed with
        another key and answered a signed one with a PONG (the constructor and the attribute skip
        the check). https://discord.com/developers/docs/interactions/overview#setting-up-an-endpoint"""
        url = data.get("url") or None
        if url and (problem := await self._endpoint_problem(url)):
            message = f"The specified interactions endpoint url could not be verified. ({problem})"
            return _form_error("APPLICATION_INTERACTIONS_ENDPOINT_URL_INVALID", interactions_endpoint_url=message)
        self.interactions_url = url
        return Reply(200, {"url": self.interactions_url})

    async def _endpoint_problem(self, url: str) -> str | None:
        (_, forged), (headers, signed) = (self.signed_request(kind="ping", payload={}) for _ in range(2))
        try:
            async with httpx.AsyncClient(timeout=self.settings.interaction_timeout) as client:
                refused = await client.post(
                    url, content=forged, headers=sign_interaction(Ed25519PrivateKey.generate(), forged)
                )
                pong = await client.post(url, content=signed, headers=headers)
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__} from {url}"
        # Discord's docs asked for a 400 at first, a 401 since.
        if refused.status_code not in (400, 401):
            return f"a PING with a wrong signature was answered HTTP {refused.status_code}, not refused (401)"
        with contextlib.suppress(ValueError):
            if pong.status_code == 200 and isinstance(answer := pong.json(), dict) and answer.get("type") == 1:
                return None
        return f'the signed PING was answered HTTP {pong.status_code}, not with a PONG ({{"type": 1}})'

    @control("interactions")
    async def _interactions_control(self, call: Call, data: dict[str, Any]) -> Reply:
        with self._lock:
            if isinstance(user := self._person(data.get("user", "")), Reply):
                return user
            build = {
                "command": self._command_interaction,
                "component": self._component_interaction,
                "message_command": lambda u, d: self._command_interaction(u, d, menu=True),
                "modal_submit": lambda u, d: self._interaction_payload(
                    "modal_submit", u, {"custom_id": d.get("custom_id", ""), "fields": d.get("fields") or {}}
                ),
                "ping": lambda u, d: self._interaction_payload("ping", u, {}),
            }.get(str(data.get("type")))
            if build is None:
                return _error(400, 50035, "type is command, message_command, component, modal_submit or ping")
            built = build(user, data)
            # A person acts only in a channel they can view, a command (type 2) only with Use
            # Application Commands there; a refused interaction is never sent, so none is kept.
            if isinstance(built, dict) and (
                refused := self._lacks(
                    user["id"], USE_COMMANDS if built["type"] == 2 else 0, self.channels.get(built["channel_id"])
                )
            ):
                del self.interactions[built["token"]]
                built = refused
        return built if isinstance(built, Reply) else Reply(200, await self._deliver(built))

    @control("audit_log")
    def _inject_audit(self, call: Call, data: Mapping[str, Any]) -> Reply:
        # Who acted and on whom: any user (a member may have left since), by username or id.
        given = {name: str(data[name]) for name in ("user", "target") if data.get(name) not in (None, "")}
        ids = {
            name: (self._user_by_name(v) or self.members.get(v) or self.departed.get(v) or {}).get("id")
            for name, v in given.items()
        }
        if unknown := [name for name, uid in ids.items() if uid is None]:
            return _error(400, 10013, f"Unknown User ({unknown[0]})")
        try:
            action_type = int(data.get("action_type"))  # type: ignore[arg-type]  # None: the form error below
        except (TypeError, ValueError):
            return _form_error(action_type="Value is not int.")
        changes = list(data.get("changes") or [])
        if data.get("timeout_minutes") is not None:  # a timeout: MEMBER_UPDATE of communication_disabled_until
            until = datetime.now(UTC) + timedelta(minutes=float(data["timeout_minutes"]))
            changes.append({"key": "communication_disabled_until", "new_value": until.isoformat()})
        with self._lock:
            return Reply(
                200,
                self.audit(
                    action_type,
                    user_id=ids.get("user"),
                    target_id=ids.get("target"),
                    reason=data.get("reason") or None,
                    changes=changes,
                    options=data.get("options"),
                ),
            )

    # A person writes, edits or deletes in a channel or thread (what a bridge polls for).
    @control("messages")
    def _person_message(self, call: Call, data: Mapping[str, Any]) -> Reply:
        if isinstance(user := self._person(data.get("user", "")), Reply):
            return user
        wanted = str(data.get("channel", "")).lstrip("#")
        named = (c for c in self.channels.values() if wanted == c["id"] or (wanted == c["name"] and c.get("guild_id")))
        if (channel := next(named, None)) is None:
            return _unknown("Channel", 10003)
        files = [
            {"filename": str(a), "size": 1, "content_type": _media_type(str(a))} for a in data.get("attachments") or []
        ]
        with self._lock:
            if refused := self._lacks(user["id"], SEND_IN_THREADS if channel.get("thread") else SEND_MESSAGES, channel):
                return refused
            msg = self._create_message(
                channel["id"], str(user["id"]), {"content": data.get("content") or "", "_files": files}
            )
            return Reply(200, self._message_json(msg))

    @control("messages/edit")
    def _person_edit(self, call: Call, data: Mapping[str, Any]) -> Reply:
        with self._lock:
            if (msg := self.messages.get(str(data.get("message_id")))) is None:
                return _unknown("Message", 10008)
            if refused := self._lacks(msg["author_id"], 0, self.channels[msg["channel_id"]]):
                return refused  # its author no longer sees the channel
            if data.get("content") is None:  # the person deletes it
                del self.messages[msg["id"]]
                return Reply(204)
            self._edit_message(msg, {"content": str(data["content"])})
            return Reply(200, self._message_json(msg))

    # A member leaves the server (or is kicked): their roles go with the membership, the user stays.
    @control("leave")
    def _leave(self, call: Call, data: Mapping[str, Any]) -> Reply:
        with self._lock:
            if isinstance(user := self._person(data.get("user", "")), Reply):
                return user
            self.departed[user["id"]] = {**self.members.pop(user["id"]), "roles": []}
            return Reply(204)

    # The server owner edits a role's permissions (Server Settings → Roles), the bot's own too.
    @control("roles")
    def _edit_role(self, call: Call, data: Mapping[str, Any]) -> Reply:
        with self._lock:
            rid = self._role_id(str(data.get("role", ""))) or str(data.get("role", ""))
            if rid not in self.roles:
                return _unknown("Role", 10011)
            if not isinstance(permissions := data.get("permissions"), int) or permissions < 0:
                return _form_error(permissions="Value is not int.")
            self.roles[rid]["permissions"] = permissions
            return Reply(200, self._role_json(self.roles[rid]))

    def _command_interaction(
        self, user: Mapping[str, Any], data: Mapping[str, Any], *, menu: bool = False
    ) -> dict[str, Any] | Reply:
        # A slash command, or with `menu` a command from a message's Apps menu (type 3); once
        # commands are registered, only those.
        name, message = str(data.get("name", "")), self.messages.get(str(data.get("message_id")))
        registered = {c["name"]: c.get("type", 1) for cmds in self.commands.values() for c in cmds}
        if registered and registered.get(name, 0) not in ((3,) if menu else (1, 2, 3)):
            return _error(
                400, 10063, f"Unknown {'message' if menu else 'application'} command {name!r} (not registered)"
            )
        if not menu:
            # By name: a /ping command is no PING, nor is /component a button press.
            return self._interaction_payload(
                "slash_command",
                user,
                {"name": name, "options": data.get("options") or {}, "channel_id": data.get("channel_id")},
            )
        if message is None:
            return _error(400, 10008, "Unknown Message")
        return self._interaction_payload(
            "message_command", user, {"name": name, "message": message, "channel_id": message["channel_id"]}
        )

    def _component_interaction(self, user: Mapping[str, Any], data: Mapping[str, Any]) -> dict[str, Any] | Reply:
        message = self.messages.get(str(data.get("message_id")))
        if message is None or message["channel_id"] != str(data.get("channel_id", message and message["channel_id"])):
            return _error(400, 10008, "Unknown Message")
        buttons = [b for row in message["components"] for b in row.get("components", [])]
        index = data.get("option_index")
        button = (
            next((b for b in buttons if b.get("custom_id") == data["custom_id"]), None)
            if data.get("custom_id")
            else buttons[index]
            if isinstance(index, int) and 0 <= index < len(buttons)
            else None
        )
        if button is None:
            return _error(400, 50035, "no such button on that message")
        if button.get("disabled"):
            return _error(400, 50035, "that button is disabled (Discord does not deliver presses)")
        return self._interaction_payload(
            "component",
            user,
            {"custom_id": button["custom_id"], "message_id": message["id"], "channel_id": message["channel_id"]},
        )

    # ---- serializers and writes -----------------------------------------------------------

    def _member_json(self, uid: str) -> dict[str, Any]:
        member = self.members[uid]
        return shaped(
            _shapes.MEMBER,
            joined_at=_iso(member["joined_at"]),
            nick=member["nick"],
            roles=list(member["roles"]),
            user=self._user_json(uid),
        )

    def _user_json(self, uid: str) -> dict[str, Any]:
        user = self.members.get(uid) or self.departed[uid]
        return shaped(
            _shapes.USER,
            id=uid,
            username=user["username"],
            global_name=user["global_name"],
            **({"bot": True} if user["bot"] else {}),
        )

    @property
    def _owner_id(self) -> str:
        """The guild's and the application's owner: the first seeded person (an application
        belongs to a human account, not to its bot)."""
        return next((uid for uid, u in self.members.items() if not u["bot"]), self.bot_id)

    def _channel_json(self, channel: Mapping[str, Any]) -> dict[str, Any]:
        """A guild channel, a thread (with its parent) or a DM (with its recipient)."""
        if channel["type"] == 1:
            return {
                "id": channel["id"],
                "type": 1,
                "last_message_id": None,
                "flags": 0,
                "recipients": [self._user_json(channel["recipient_id"])],
            }
        if not channel.get("thread"):
            overwrites = [
                {**o, "allow": str(o["allow"]), "deny": str(o["deny"])} for o in channel["permission_overwrites"]
            ]
            return shaped(
                _shapes.CHANNEL,
                **{k: channel[k] for k in ("id", "type", "guild_id", "name", "position")},
                permission_overwrites=overwrites,
            )
        return shaped(
            _shapes.THREAD,
            **{k: channel[k] for k in ("id", "type", "guild_id", "name", "parent_id")},
            owner_id=self.bot_id,
            member_count=len(channel["members"]),
            thread_metadata={
                "archived": bool(channel.get("archived")),
                # Never null: a thread never (un)archived has its creation moment, which its
                # snowflake holds (https://discord.com/developers/docs/resources/channel#thread-metadata-object).
                "archive_timestamp": _iso(time_of(channel["id"])),
                "locked": False,
                "auto_archive_duration": channel["auto_archive_duration"],
                "invitable": channel.get("invitable", True),
                "create_timestamp": _iso(time_of(channel["id"])),
            },
        )

    def _role_json(self, role: Mapping[str, Any]) -> dict[str, Any]:
        return shaped(
            _shapes.ROLE,
            id=role["id"],
            name=role["name"],
            permissions=str(role["permissions"]),
            position=role["position"],
            managed=role["managed"],
            **({"tags": {"bot_id": self.bot_id}} if role.get("bot_role") else {}),
        )

    def _application_json(self) -> dict[str, Any]:
        # What `charterflow doctor` reads (id, verify_key) and every other field the spec's
        # PrivateApplicationResponse requires.
        return shaped(
            _shapes.APPLICATION,
            id=self.seed.application_id,
            name=self.seed.bot_username,
            verify_key=self.public_key,
            flags=self.seed.application_flags,
            flags_new=str(self.seed.application_flags),
            interactions_endpoint_url=self.interactions_url,
            owner=self._user_json(self._owner_id),
            bot=self._user_json(self.bot_id),
        )

    def _message_json(self, m: Mapping[str, Any], *, read: bool = False) -> dict[str, Any]:
        """A message; ``read``: as the bot reads it, empty of what Discord keeps from an app without
        the Message Content intent (another's message in a guild channel that does not mention the
        bot: https://discord.com/developers/docs/events/gateway#message-content-intent)."""
        hidden = read and not (
            self.seed.application_flags & CONTENT_INTENT
            or m["author_id"] == self.bot_id
            or self.channels.get(m["channel_id"], {}).get("type") == 1
            or f"<@{self.bot_id}>" in m["content"]
        )
        return shaped(
            _shapes.MESSAGE,
            type=0 if not m.get("interaction") else 20,
            content="" if hidden else m["content"],
            attachments=[] if hidden else [{**a, "url": self._signed(a["url"])} for a in m.get("attachments") or []],
            timestamp=m["timestamp"],
            edited_timestamp=m["edited"],
            flags=m["flags"],
            components=[] if hidden else copy.deepcopy(m["components"]),
            id=m["id"],
            channel_id=m["channel_id"],
            author=self._user_json(m["author_id"]),
            # The people its content mentions (https://discord.com/developers/docs/resources/message#message-object).
            mentions=[
                self._user_json(u) for u in dict.fromkeys(re.findall(r"<@!?(\d+)>", m["content"])) if u in self.members
            ],
            **({"nonce": m["nonce"]} if m.get("nonce") is not None else {}),
        )

    def _signed(self, url: str) -> str:
        # An attachment's CDN URL as Discord gives it: signed (ex, is, hm) and issued again once it
        # expired (https://discord.com/developers/docs/reference#signed-attachment-cdn-urls).
        issued = int(time.time()) // (life := self.settings.cdn_url_lifetime) * life
        return f"{url}?ex={issued + life:x}&is={issued:x}&hm={hashlib.sha256(f'{url}{issued}'.encode()).hexdigest()}&"

    def _create_message(
        self, channel_id: str, author_id: str, data: Mapping[str, Any], *, interaction: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        mid, flags = self._id(), int(data.get("flags") or 0)
        cdn = f"attachments/{channel_id}/{mid}"
        self.messages[mid] = {
            "id": mid,
            "channel_id": channel_id,
            "author_id": author_id,
            "content": data.get("content") or "",
            "components": _rows(data.get("components")),
            "flags": flags,
            "timestamp": datetime.now(UTC).isoformat(),
            "edited": None,
            "nonce": data.get("nonce"),
            "allowed_mentions": data.get("allowed_mentions"),
            "thread_id": None,
            "interaction": interaction["id"] if interaction else None,
            "visible_to": interaction["user_id"] if interaction and flags & EPHEMERAL else None,
            "attachments": [
                {
                    "id": self._id(),
                    "filename": f["filename"],
                    "size": f["size"],
                    **({"content_type": f["content_type"]} if f["content_type"] else {}),
                    "url": f"https://cdn.discordapp.com/{cdn}/{f['filename']}",
                    "proxy_url": f"https://media.discordapp.net/{cdn}/{f['filename']}",
                }
                for f in data.get("_files") or []
            ],
        }
        return self.messages[mid]

    def _edit_message(self, msg: dict[str, Any], data: Mapping[str, Any]) -> None:
        if "content" in data:
            msg["content"] = data.get("content") or ""
        if "components" in data:
            msg["components"] = _rows(data.get("components"))
        msg["edited"] = datetime.now(UTC).isoformat()

    def audit(
        self,
        action_type: int,
        *,
        user_id: str | None,
        target_id: str | None,
        reason: str | None = None,
        changes: list[dict[str, Any]] | None = None,
        options: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Append a guild audit-log entry (its id is a fresh snowflake, so ids grow with time)."""
        entry: dict[str, Any] = {
            "id": self._id(),
            "action_type": int(action_type),
            "user_id": user_id,
            "target_id": target_id,
            "reason": reason,
            "changes": list(changes or []),
            **({"options": {str(k): str(v) for k, v in options.items()}} if options else {}),
        }
        self.audit_log.append(entry)
        return entry

    def _bot_can_change(self, role: Mapping[str, Any]) -> bool:
        # The hierarchy: only roles strictly below the bot's highest role, never managed roles
        # (https://discord.com/developers/docs/topics/permissions#permission-hierarchy).
        mine = [self.roles[r] for r in self.members[self.bot_id]["roles"]]
        allowed = any(int(r["permissions"]) & (MANAGE_ROLES | ADMINISTRATOR) for r in mine)
        return allowed and role["position"] < max((r["position"] for r in mine), default=0) and not role["managed"]


# ---- endpoint handlers (paths below /api/v10) ------------------------------------------------


def _args(req: Call, default: int, most: int, *snowflakes: str) -> dict[str, int] | Reply:
    """The ``limit`` (1 to ``most``) and the ``snowflakes`` given in the query, or Discord's 50035."""
    args = {"limit": default}
    for name in ("limit", *snowflakes):
        if (raw := req.arg(name)) is not None and not raw.isdigit():
            kind = "snowflake" if name not in ("limit", "action_type") else "int"
            return _form_error(**{name: f"Value is not {kind}."})
        args.update({name: int(raw)} if raw is not None else {})
    return args if 1 <= args["limit"] <= most else _form_error(limit=f"Must be between 1 and {most}.")


# https://discord.com/developers/docs/resources/guild#list-guild-members
@_route("GET", "/guilds/{guild_id}/members", bucket="members.list", intent=MEMBERS_INTENT)
def _list_members(sb: DiscordSandbox, req: Call) -> Reply:
    if isinstance(args := _args(req, 1, 1000, "after"), Reply):
        return args
    if sb._sorted_ids is None or len(sb._sorted_ids) != len(sb.members):
        sb._sorted_ids = sorted(int(u) for u in sb.members)
    start = bisect.bisect_right(sb._sorted_ids, args.get("after", 0))
    # Each member's JSON is kept until the member changes: 20,000 members are listed at once.
    chunk = [
        sb._member_cache.get(uid)
        or sb._member_cache.setdefault(uid, json.dumps(sb._member_json(uid), separators=(",", ":")).encode())
        for uid in map(str, sb._sorted_ids[start : start + args["limit"]])
    ]
    return Reply(200, raw=b"[" + b",".join(chunk) + b"]")


@_route("GET", "/guilds/{guild_id}/members/search", bucket="members.search")
def _search_members(sb: DiscordSandbox, req: Call) -> Reply:
    query = (req.arg("query") or "").lower()
    if not 1 <= len(query) <= 100:
        return _form_error(query="This field is required" if not query else "Must be between 1 and 100 in length.")
    if isinstance(args := _args(req, 1, 1000), Reply):
        return args
    found = [
        uid
        for uid, u in sb.members.items()
        if u["username"].startswith(query) or (u["nick"] or "").lower().startswith(query)
    ]
    return Reply(200, [sb._member_json(uid) for uid in found[: args["limit"]]])


_ROLE = "/guilds/{guild_id}/members/{user_id}/roles/{role_id}"


@_route("PUT", _ROLE, bucket="member.roles", grant=True)
@_route("DELETE", _ROLE, bucket="member.roles", grant=False)
def _role_change(sb: DiscordSandbox, req: Call, grant: bool) -> Reply:
    uid, rid = req.params["user_id"], req.params["role_id"]
    if uid not in sb.members:
        return _unknown("Member", 10007)
    if (role := sb.roles.get(rid)) is None or rid == sb.seed.guild_id:
        return _unknown("Role", 10011)
    if not sb._bot_can_change(role):
        return _error(403, 50013, "Missing Permissions")
    roles = sb.members[uid]["roles"]
    reason = unquote(req.headers["x-audit-log-reason"]) if "x-audit-log-reason" in req.headers else None
    if grant != (rid in roles):
        roles.append(rid) if grant else roles.remove(rid)
        sb.role_changes.append(
            {
                "at": datetime.now(UTC).isoformat(),
                "action": "grant" if grant else "revoke",
                "user_id": uid,
                "username": sb.members[uid]["username"],
                "role": role["name"],
                "reason": reason,
            }
        )
        change = [{"key": "$add" if grant else "$remove", "new_value": [{"id": rid, "name": role["name"]}]}]
        sb.audit(25, user_id=sb.bot_id, target_id=uid, reason=reason, changes=change)
    sb._member_cache.pop(uid, None)
    return Reply(204)


# Restricted by the Message Content intent, as List Guild Members by Server Members:
# https://discord.com/developers/docs/resources/message#search-guild-messages
@_route("GET", "/guilds/{guild_id}/messages/search", bucket="messages.search", intent=CONTENT_INTENT)
def _search_messages(sb: DiscordSandbox, req: Call) -> Reply:
    if pending := sb.faults.get("search_not_indexed", 0):
        sb.faults["search_not_indexed"] = pending - (pending > 0)  # a negative count: never indexed
        return Reply(
            202,
            {
                "message": "Index not yet available. Try again later",
                "code": 110000,
                "documents_indexed": 0,
                "retry_after": sb.settings.search_index_retry_after,
            },
        )
    if isinstance(bounds := _args(req, 25, 25, "min_id", "max_id"), Reply):
        return bounds
    authors = set(req.query.get("author_id", []))
    # Only messages of the channels the bot may read (DMs: not the guild's).
    readable = {cid for cid, c in sb.channels.items() if c["type"] != 1 and not sb._bot_lacks(READ_HISTORY, c)}
    rows = [
        {"id": m["id"], "author_id": m["author_id"], "channel_id": m["channel_id"]}
        for m in [*sb.history, *sb.messages.values()]
        if (not authors or m["author_id"] in authors)
        and m["channel_id"] in readable
        and int(m["id"]) > bounds.get("min_id", -1)
        and ("max_id" not in bounds or int(m["id"]) < bounds["max_id"])
        and not m.get("visible_to")
    ]
    rows.sort(key=lambda m: int(m["id"]), reverse=req.arg("sort_order", "desc") != "asc")
    # A message of the past (the seed's history) has no text: only its author, channel and time.
    return Reply(
        200,
        {
            "messages": [
                [{**sb._message_json(sb.messages.get(row["id"]) or _past_message(row), read=True), "hit": True}]
                for row in rows[: bounds["limit"]]
            ],
            "doing_deep_historical_index": False,
            "total_results": len(rows),
            "threads": [],
            "members": [],
        },
    )


def _past_message(row: Mapping[str, Any]) -> dict[str, Any]:
    return {**row, "content": "…", "components": [], "flags": 0, "edited": None, "timestamp": _iso(time_of(row["id"]))}


def _find_channel(sb: DiscordSandbox, req: Call) -> dict[str, Any] | Reply:
    return sb.channels.get(req.params["channel_id"]) or _unknown("Channel", 10003)


@_route("POST", "/channels/{channel_id}/messages", bucket="message.create", find=_find_channel, multipart=True)
def _create_message(sb: DiscordSandbox, req: Call, channel: dict[str, Any]) -> Reply:
    if (bad := _refused(_Message, data := req.json() or {})) is not None:
        return bad
    if not (data.get("content") or data.get("components") or data.get("embeds") or data.get("poll") or req.files):
        return _error(400, 50006, "Cannot send an empty message")
    needed = (SEND_IN_THREADS if channel.get("thread") else SEND_MESSAGES) | (ATTACH_FILES if req.files else 0)
    if refused := sb._bot_lacks(needed, channel):
        return refused
    data, nonce = {**data, "_files": req.files} if req.files else data, data.get("nonce")
    # A user who closed DMs, or who shares no server with the bot any more (left), 50007.
    if channel["type"] == 1 and not sb.members.get(channel["recipient_id"], {}).get("accepts_dms"):
        return _error(403, 50007, "Cannot send messages to this user")
    now, key = time.monotonic(), (sb.bot_id, str(nonce))
    seen = sb.nonces.get(key) if nonce is not None and data.get("enforce_nonce") else None
    if seen and now - seen[0] <= sb.settings.nonce_window and seen[1] in sb.messages:
        return Reply(200, sb._message_json(sb.messages[seen[1]]))
    msg = sb._create_message(channel["id"], sb.bot_id, data)
    channel["archived"] = False  # a message sent unarchives its thread
    if nonce is not None:
        sb.nonces[key] = (now, msg["id"])
    return Reply(200, sb._message_json(msg))


def _find_message(sb: DiscordSandbox, req: Call) -> dict[str, Any] | Reply:
    if isinstance(channel := _find_channel(sb, req), Reply):
        return channel
    msg = sb.messages.get(req.params["message_id"])
    return msg if msg is not None and msg["channel_id"] == channel["id"] else _unknown("Message", 10008)


def _visible(find: Callable[..., Any], needed: int = 0) -> Callable[..., Any]:
    """``find``, then the bot's permissions where it found: View Channel and ``needed``."""

    def found(sb: DiscordSandbox, req: Call) -> Any:
        if isinstance(what := find(sb, req), Reply):
            return what
        return sb._bot_lacks(needed, sb.channels[req.params["channel_id"]]) or what

    return found


def _command_scope(sb: DiscordSandbox, req: Call) -> str | Reply:
    """The scope of the path's commands (the guild's id, or "global"): of this application only."""
    if req.params["application_id"] != sb.seed.application_id:
        return _error(403, 50001, "Missing Access")
    return req.params.get("guild_id", "global")


def _show(sb: DiscordSandbox, req: Call, *found: Any, show: Callable[..., Any]) -> Reply:
    return Reply(200, show(sb, *found))


# The answers that only show the state (what the spec requires beyond it: shapes.json):
# (template, bucket, find, what the answer shows of the state and of what find found).
_SHOWN: tuple[tuple[str, str, Callable[..., Any] | None, Callable[..., Any]], ...] = (
    # A user who left: 10007 Unknown Member; no such user at all: 10013 Unknown User.
    (
        "/guilds/{guild_id}/members/{user_id}",
        "member.get",
        lambda sb, req: (
            uid
            if (uid := req.params["user_id"]) in sb.members
            else _unknown("Member", 10007)
            if uid in sb.departed
            else _unknown("User", 10013)
        ),
        lambda sb, uid: sb._member_json(uid),
    ),
    (
        "/guilds/{guild_id}/roles",
        "roles",
        None,
        lambda sb: [sb._role_json(r) for r in sorted(sb.roles.values(), key=lambda r: r["position"])],
    ),
    (
        "/guilds/{guild_id}/channels",
        "channels",
        None,
        # Not those the bot cannot view, since 2026-11-16 ("Obfuscated Channels":
        # https://discord.com/developers/docs/resources/channel#obfuscated-channels).
        lambda sb: [
            sb._channel_json(c) for c in sb.channels.values() if c["type"] in (0, 5, 15) and not sb._bot_lacks(0, c)
        ],
    ),
    (
        "/guilds/{guild_id}/scheduled-events",
        "events",
        None,
        lambda sb: [dict(e) for e in sb.events.values() if e["status"] in (1, 2)],
    ),
    (
        "/channels/{channel_id}/messages/{message_id}",
        "message.edit",
        _visible(_find_message, READ_HISTORY),
        lambda sb, msg: sb._message_json(msg, read=True),
    ),
    # What a bot's library fetches by id (discord.py's fetch_guild, fetch_channel, fetch_user).
    (
        "/guilds/{guild_id}",
        "channels",
        None,
        lambda sb: shaped(
            _shapes.GUILD,
            id=sb.seed.guild_id,
            name=sb.seed.guild_name,
            features=list(sb.seed.features),
            owner_id=sb._owner_id,
            roles=[sb._role_json(r) for r in sorted(sb.roles.values(), key=lambda r: r["position"])],
            approximate_member_count=len(sb.members),
        ),
    ),
    ("/channels/{channel_id}", "channels", _visible(_find_channel), lambda sb, channel: sb._channel_json(channel)),
    # Any user, one who left the guild too.
    (
        "/users/{user_id}",
        "member.get",
        lambda sb, req: (
            req.params["user_id"]
            if req.params["user_id"] in sb.members or req.params["user_id"] in sb.departed
            else _unknown("User", 10013)
        ),
        lambda sb, uid: sb._user_json(uid),
    ),
    # Every field the spec's UserPIIResponse requires (a bot account: no MFA, en-US).
    ("/users/@me", "me", None, lambda sb: {**sb._user_json(sb.bot_id), "mfa_enabled": False, "locale": "en-US"}),
    ("/applications/@me", "me", None, lambda sb: sb._application_json()),
    # Get Current Bot Application Information, the OAuth2 path of the same (hikari's fetch_application).
    ("/oauth2/applications/@me", "me", None, lambda sb: sb._application_json()),
    # The commands as registered (discord.py's tree.fetch_commands, hikari's fetch_application_commands).
    *(
        (template, "commands", _command_scope, lambda sb, scope: sb.commands.get(scope, []))
        for template in (
            "/applications/{application_id}/commands",
            "/applications/{application_id}/guilds/{guild_id}/commands",
        )
    ),
)
for _template, _bucket, _find, _shows in _SHOWN:
    _route("GET", _template, bucket=_bucket, find=_find, show=_shows)(_show)


def _find_original(sb: DiscordSandbox, req: Call) -> dict[str, Any] | Reply:
    # Its first answer, or the message whose button was pressed (see _apply_callback).
    if isinstance(record := _interaction_for(sb, req), Reply):
        return record
    return sb.messages.get(record.get("original_id") or "") or _unknown("Message", 10008)


# discord.py's interaction.original_response(), hikari's fetch_initial_response.
_route(
    "GET",
    "/webhooks/{webhook_id}/{interaction_token}/messages/@original",
    bucket="webhook",
    auth=False,
    find=_find_original,
    show=lambda sb, msg: sb._message_json(msg),
)(_show)


# An interaction's original answer is the bot's message too; its webhook checks less (_Content).
@_route(
    "PATCH",
    "/channels/{channel_id}/messages/{message_id}",
    bucket="message.edit",
    find=_visible(_find_message),
    body=_Message,
)
@_route(
    "PATCH",
    "/webhooks/{webhook_id}/{interaction_token}/messages/@original",
    bucket="webhook",
    auth=False,
    find=_find_original,
    body=_Content,
)
def _edit_message(sb: DiscordSandbox, req: Call, msg: dict[str, Any], body: type[BaseModel]) -> Reply:
    if msg["author_id"] != sb.bot_id:
        return _error(403, 50005, "Cannot edit a message authored by another user")
    if (bad := _refused(body, data := req.json() or {})) is not None:
        return bad
    if sb.channels.get(msg["channel_id"], {}).get("archived"):  # only deletions in an archived thread
        return _error(400, 50083, "Thread is archived")
    sb._edit_message(msg, data)
    return Reply(200, sb._message_json(msg))


# A thread archived (by a moderator, or by Discord once idle) or unarchived; a message sent in it
# unarchives it (https://discord.com/developers/docs/topics/threads#active--archived-threads).
@_route("PATCH", "/channels/{channel_id}", bucket="channels", find=_visible(_find_channel))
def _edit_thread(sb: DiscordSandbox, req: Call, thread: dict[str, Any]) -> Reply:
    if not thread.get("thread"):
        return _error(NOT_EMULATED_STATUS, 0, not_emulated(req.method, req.path))
    thread["archived"] = bool((req.json() or {}).get("archived"))
    return Reply(200, sb._channel_json(thread))


# Discord's own paths a placeholder route would take for an id ("pins" is no snowflake: a false
# 400): routed here to say they are not emulated.
@_route("GET", "/channels/{channel_id}/messages/pins", bucket="messages.list")
def _unemulated(sb: DiscordSandbox, req: Call) -> Reply:
    return _error(NOT_EMULATED_STATUS, 0, not_emulated(req.method, req.path))


@_route("GET", "/channels/{channel_id}/messages", bucket="messages.list", find=_visible(_find_channel))
def _list_messages(sb: DiscordSandbox, req: Call, channel: dict[str, Any]) -> Reply:
    # Newest first; with `after` the `limit` messages right after it (still newest first); none
    # without Read Message History (https://discord.com/developers/docs/resources/message#get-channel-messages).
    if isinstance(bounds := _args(req, 50, 100, "after", "before"), Reply):
        return bounds
    if sb._bot_lacks(READ_HISTORY, channel):
        return Reply(200, [])
    rows = sorted(
        (
            m
            for m in sb.messages.values()
            if m["channel_id"] == channel["id"]
            and not m.get("visible_to")
            and int(m["id"]) > bounds.get("after", -1)
            and ("before" not in bounds or int(m["id"]) < bounds["before"])
        ),
        key=lambda m: int(m["id"]),
    )
    rows = rows[: bounds["limit"]] if "after" in bounds else rows[-bounds["limit"] :]
    return Reply(200, [sb._message_json(m, read=True) for m in reversed(rows)])


@_route("DELETE", "/channels/{channel_id}/messages/{message_id}", bucket="message.delete", find=_find_message)
def _delete_message(sb: DiscordSandbox, req: Call, msg: dict[str, Any]) -> Reply:
    # Another's message needs Manage Messages.
    needed = 0 if msg["author_id"] == sb.bot_id else MANAGE_MESSAGES
    if refused := sb._bot_lacks(needed, sb.channels[msg["channel_id"]]):
        return refused
    sb.messages.pop(msg["id"], None)
    return Reply(204)


@_route("POST", "/users/@me/channels", bucket="dm")
def _create_dm(sb: DiscordSandbox, req: Call) -> Reply:
    rid = str((req.json() or {}).get("recipient_id", ""))
    if not (rid in sb.members or rid in sb.departed) or rid == sb.bot_id:
        return _unknown("User", 10013)
    # One DM channel per user: the one opened before, else a new one.
    cid = next((c["id"] for c in sb.channels.values() if c.get("recipient_id") == rid), None) or sb._id()
    sb.channels.setdefault(
        cid,
        {
            "id": cid,
            "name": "",
            "type": 1,
            "position": 0,
            "parent_id": None,
            "guild_id": None,
            "recipient_id": rid,
            "thread": None,
        },
    )
    return Reply(200, sb._channel_json(sb.channels[cid]))


@_route("POST", "/channels/{channel_id}/messages/{message_id}/threads", bucket="threads", find=_find_message)
@_route("POST", "/channels/{channel_id}/threads", bucket="threads", find=_find_channel)
def _create_thread(sb: DiscordSandbox, req: Call, found: dict[str, Any]) -> Reply:
    """A thread from a message (``found`` is the message) or a thread of its own in a channel."""
    msg = found if "message_id" in req.params else None
    if msg is None and found["type"] not in (0, 5):
        return _unknown("Channel", 10003)
    if (bad := _refused(_Thread, data := req.json() or {})) is not None:
        return bad
    private = msg is None and data.get("type", 12) == 12
    if refused := sb._bot_lacks(PRIVATE_THREADS if private else PUBLIC_THREADS, sb.channels[req.params["channel_id"]]):
        return refused
    if msg is not None:
        if msg.get("thread_id"):
            return _error(400, 160004, "A thread has already been created for this message")
        msg["thread_id"] = msg["id"]  # a thread started from a message has the message's id
    tid = msg["id"] if msg is not None else sb._id()
    sb.channels[tid] = {
        "id": tid,
        "name": data["name"],
        "position": 0,
        "guild_id": sb.seed.guild_id,
        "parent_id": req.params["channel_id"],
        "thread": True,
        "members": [sb.bot_id],
        "auto_archive_duration": data.get("auto_archive_duration", 10080),
        **({"type": 11} if msg else {"type": data.get("type", 12), "invitable": bool(data.get("invitable", True))}),
    }
    return Reply(201, sb._channel_json(sb.channels[tid]))


@_route("PUT", "/channels/{channel_id}/thread-members/@me", bucket="thread.members", find=_find_channel)
@_route("PUT", "/channels/{channel_id}/thread-members/{user_id}", bucket="thread.members", find=_find_channel)
def _add_thread_member(sb: DiscordSandbox, req: Call, thread: dict[str, Any]) -> Reply:
    """Add a member to a thread; ``@me``: the bot joins it (Join Thread)."""
    if not thread.get("thread"):
        return _unknown("Channel", 10003)
    if (uid := req.params.get("user_id", sb.bot_id)) not in sb.members:
        return _unknown("Member", 10007)
    # Adding another needs the right to send messages in the thread.
    if refused := sb._bot_lacks(0 if uid == sb.bot_id else SEND_IN_THREADS, thread):
        return refused
    if uid not in thread["members"]:
        thread["members"].append(uid)
    return Reply(204)


@_route("POST", "/guilds/{guild_id}/scheduled-events", bucket="events")
def _create_event(sb: DiscordSandbox, req: Call) -> Reply:
    # Create Events (an external event needs no channel's); Manage Events alone no longer creates
    # one since 2026-02-23 (change log of 2025-11-20: https://github.com/discord/discord-api-docs/pull/7991).
    if not sb._permissions(sb.bot_id) & CREATE_EVENTS:
        return _error(403, 50013, "Missing Permissions")
    event, errors = check_body(_Event, req.json() or {})
    if event is None:
        return _form_error(**errors)
    if (start := event.scheduled_start_time) <= datetime.now(UTC):
        return _form_error(scheduled_start_time="Cannot schedule event in the past.")
    if event.scheduled_end_time <= start:
        return _form_error(scheduled_end_time="Must be after the start time.")
    if sum(1 for e in sb.events.values() if e["status"] in (1, 2)) >= 100:
        return _error(400, 30038, "Maximum number of guild events reached (100)")
    eid = sb._id()
    sb.events[eid] = shaped(
        _shapes.EVENT,
        id=eid,
        guild_id=sb.seed.guild_id,
        name=event.name,
        description=event.description,
        creator_id=sb.bot_id,
        creator=sb._user_json(sb.bot_id),
        entity_metadata={"location": event.entity_metadata.location},
        scheduled_start_time=_iso(start),
        scheduled_end_time=_iso(event.scheduled_end_time),
    )
    sb.audit(100, user_id=sb.bot_id, target_id=eid, reason=unquote(req.headers.get("x-audit-log-reason", "")) or None)
    return Reply(200, dict(sb.events[eid]))


# The audit log's filters: each query argument and what an entry must have for it.
_AUDIT_FILTERS: dict[str, Callable[[Mapping[str, Any], int], bool]] = {
    "before": lambda e, v: int(e["id"]) < v,
    "after": lambda e, v: int(e["id"]) > v,
    "user_id": lambda e, v: e["user_id"] == str(v),
    "target_id": lambda e, v: e["target_id"] == str(v),
    "action_type": lambda e, v: e["action_type"] == v,
}


@_route("GET", "/guilds/{guild_id}/audit-logs", bucket="audit_log")
def _audit_logs(sb: DiscordSandbox, req: Call) -> Reply:
    if refused := sb._bot_lacks(VIEW_AUDIT_LOG):
        return refused
    if isinstance(bounds := _args(req, 50, 100, *_AUDIT_FILTERS), Reply):
        return bounds
    limit = bounds.pop("limit")
    # Newest first, except with only `after`: then oldest first (the docs' "reversed" order).
    page = sorted(
        (e for e in sb.audit_log if all(_AUDIT_FILTERS[k](e, v) for k, v in bounds.items())),
        key=lambda e: int(e["id"]),
        reverse=not ("after" in bounds and "before" not in bounds),
    )[:limit]
    ids = {x for e in page for x in (e["user_id"], e["target_id"]) if x and (x in sb.members or x in sb.departed)}
    entries = [
        {k: copy.deepcopy(v) for k, v in e.items() if v is not None or k in ("user_id", "target_id")} for e in page
    ]
    return Reply(
        200, shaped(_shapes.AUDIT_LOG, users=[sb._user_json(u) for u in sorted(ids)], audit_log_entries=entries)
    )


@_route("PUT", "/applications/{application_id}/guilds/{guild_id}/commands", bucket="commands", find=_command_scope)
@_route("PUT", "/applications/{application_id}/commands", bucket="commands", find=_command_scope)
def _put_commands(sb: DiscordSandbox, req: Call, scope: str) -> Reply:
    if (bad := _refused(_Commands, data := req.json())) is not None:
        return bad
    sb.commands[scope] = [
        shaped(
            _shapes.COMMAND,
            id=sb._id(),
            application_id=sb.seed.application_id,
            version=sb._id(),
            type=cmd.get("type", 1),
            name=cmd["name"],
            description=cmd.get("description", ""),
            **({"guild_id": scope} if scope != "global" else {}),
            **({"options": [dict(o) for o in cmd["options"]]} if cmd.get("options") else {}),
        )
        for cmd in data
    ]
    return Reply(200, sb.commands[scope])


def _interaction_for(sb: DiscordSandbox, req: Call) -> dict[str, Any] | Reply:
    if req.params.get("webhook_id", sb.seed.application_id) != sb.seed.application_id:
        return _error(404, 10015, "Unknown Webhook")
    record = sb.interactions.get(req.params["interaction_token"])
    # Interaction tokens are valid for 15 minutes.
    if record is None or time.monotonic() - record["created"] > 15 * 60:
        return _error(401, 50027, "Invalid Webhook Token")
    return record


@_route(
    "POST",
    "/interactions/{interaction_id}/{interaction_token}/callback",
    bucket="callback",
    auth=False,
    find=_interaction_for,
)
def _callback(sb: DiscordSandbox, req: Call, record: dict[str, Any]) -> Reply:
    # An interaction not answered within its 3 s is gone: a late first answer is 10062 too.
    # https://discord.com/developers/docs/interactions/receiving-and-responding#responding-to-an-interaction
    if record["id"] != req.params["interaction_id"] or (
        not record["acknowledged"] and time.monotonic() - record["created"] > sb.settings.interaction_timeout
    ):
        return _error(404, 10062, "Unknown interaction")
    if record["acknowledged"]:
        return _error(400, 40060, "Interaction has already been acknowledged.")
    if problem := sb._apply_callback(record, answer := req.json()):
        return _form_error(body=problem)
    if (req.arg("with_response") or "").lower() != "true":
        return Reply(204)
    # with_response: the interaction callback response object instead of a 204
    # (https://discord.com/developers/docs/interactions/receiving-and-responding#create-interaction-response).
    msg = sb.messages.get(record.get("original_id") or "")
    shown = {"response_message_id": msg["id"], "response_message_loading": answer["type"] == 5} if msg else {}
    return Reply(
        200,
        {
            "interaction": {"id": record["id"], "type": record["type"], **shown},
            **(
                {"resource": {"type": answer["type"], "message": sb._message_json(msg)}}
                if msg and answer["type"] in (4, 7)
                else {}
            ),
        },
    )


@_route("POST", "/webhooks/{webhook_id}/{interaction_token}", bucket="webhook", auth=False, find=_interaction_for)
def _followup(sb: DiscordSandbox, req: Call, record: dict[str, Any]) -> Reply:
    if not record["acknowledged"]:
        return _error(404, 10015, "Unknown Webhook")  # nothing to follow up before the first answer
    if (bad := _refused(_Content, data := req.json() or {})) is not None:
        return bad
    if not data.get("content") and not data.get("components"):
        return _error(400, 50006, "Cannot send an empty message")
    return Reply(200, sb._message_json(sb._create_message(record["channel_id"], sb.bot_id, data, interaction=record)))


from connectors.discord import sandbox_welcome as _welcome  # noqa: E402,F401 - registers its routes
