"""A loopback emulator of the Discord REST endpoints charterflow uses (an ASGI app), and an
interaction sender that signs with the sandbox's own Ed25519 key pair.

It answers as Discord does where that matters to a client (``specs/API-NOTES.md`` section 1):
``Authorization: Bot`` (401 ``{"message": "401: Unauthorized", "code": 0}``), the ``DiscordBot``
User-Agent, string snowflakes, error bodies with Discord's JSON codes (10003 unknown channel,
10007 unknown member, 10008 unknown message, 10011 unknown role, 10013 unknown user, 50007 cannot
DM, 50013 missing permissions, 50035 invalid form body, 160004 thread exists, 40060 already
acknowledged), the role hierarchy (a bot changes only roles below its highest role), the member
list paged with ``after``, member search, message search answering 202 while "indexing", DM
channels, threads, ``nonce`` + ``enforce_nonce``, external scheduled events, bulk command
registration, interaction callbacks and follow-up webhooks.

Rate limits are shaped like Discord's (https://discord.com/developers/docs/topics/rate-limits):
per-route buckets counted per top-level resource (interaction follow-ups: per interaction), named
by ``X-RateLimit-Bucket`` (the member-role PUT and DELETE share one), with ``X-RateLimit-Limit/-Remaining/-Reset/-Reset-After`` on every
answer; a global limit of 50 requests per second for the bot (interaction callbacks and webhooks
do not count); 429 bodies ``{"message", "retry_after": <float>, "global"}`` with ``Retry-After``,
``X-RateLimit-Scope`` and, for the global limit, ``X-RateLimit-Global: true``. The per-route
numbers are invented (Discord does not publish them and says not to hard-code them); every
window is multiplied by ``time_scale`` so tests can run Discord-shaped limits in seconds.

Responses of endpoints in the official OpenAPI document carry every field it requires, so they
validate against it — except where the docs and the spec disagree and the sandbox follows the
docs (the spec's ``README`` says to): message ``content`` is limited to 2000 characters (the spec
says 4000), and 429 bodies have no ``code`` (the spec requires one; the docs' examples have none).

Not Discord, for tests and operators (no auth, not rate limited):
``GET /_sandbox/state``; ``POST /_sandbox/faults`` (``error_rate``, ``error_status``, ``latency``,
``drop_rate``, ``drop_phase`` before|after, ``storm`` {count, retry_after, scope
user|global|shared}, ``search_not_indexed`` (the next N message searches answer 202; -1: all),
``seed``; an empty object clears); ``POST /_sandbox/reset``; ``POST /_sandbox/interactions``
(send a signed interaction to the interactions endpoint, see ``DiscordSandbox.interact``);
``POST /_sandbox/interactions_url`` {url}; ``POST /_sandbox/audit_log`` (a moderator acts by
hand: ``{action_type, user, target, reason?, changes?, options?, timeout_minutes?}``, users by
name or id, any integer type, even one Discord does not define) adds a guild audit-log entry,
served by ``GET /guilds/{guild_id}/audit-logs`` (``before``/``after``/``limit``/``user_id``/
``target_id``/``action_type``; with only ``after`` the entries come oldest first, as the docs say:
https://discord.com/developers/docs/resources/audit-log#get-guild-audit-log).
"""

from __future__ import annotations

import asyncio
import bisect
import copy
import hashlib
import json
import math
import random
import re
import secrets
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import policy as email_policy
from email.parser import BytesParser
from typing import Any
from urllib.parse import parse_qsl, unquote

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from connectors.base import Ballot, ConformanceSamples, Role
from connectors.discord.interactions import sign_interaction
from connectors.discord.snowflake import DISCORD_EPOCH_MS
from connectors.errors import ConfigError
from connectors.faults import check_faults, storm_settings
from connectors.sandbox_asgi import NOT_EMULATED_STATUS, not_emulated, read_request

__all__ = ["DEFAULT_BUCKETS", "DiscordSandbox", "SandboxSeed", "default_seed"]

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Sink = Callable[[Mapping[str, str], bytes], tuple[int, Any]]

API_PREFIX = "/api/v10"
MANAGE_ROLES = 1 << 28
ADMINISTRATOR = 1 << 3
# The default seed's bot role: the permissions the connector uses (connectors/discord/doctor.py
# REQUIRED_PERMISSIONS, checked by `charterflow doctor`).
BOT_PERMISSIONS = sum(1 << bit for bit in (7, 10, 11, 16, 28, 33, 35, 36, 38))
EPHEMERAL = 1 << 6
MESSAGE_LIMIT = 2000  # docs; the spec says 4000 (see the module docstring)
_COMMAND_NAME = re.compile(r"^[-_\w]{1,32}$")

# (limit, window seconds) per bucket, before time_scale. Invented but Discord-shaped.
DEFAULT_BUCKETS: dict[str, tuple[int, float]] = {
    "member.get": (5, 1.0),
    "members.list": (10, 10.0),
    "members.search": (10, 10.0),
    "member.roles": (10, 10.0),
    "roles": (10, 10.0),
    "channels": (10, 10.0),
    "messages.search": (10, 10.0),
    "message.create": (5, 5.0),
    "message.edit": (5, 5.0),
    "dm": (5, 5.0),
    "threads": (10, 10.0),
    "thread.members": (10, 10.0),
    "events": (10, 10.0),
    "commands": (5, 20.0),
    "webhook": (5, 2.0),
    "callback": (10, 1.0),
    "me": (5, 1.0),
    "audit_log": (10, 10.0),
}


# --------------------------------------------------------------------------------------------
# Seed


class SeedRole(BaseModel):
    """A guild role; higher ``position`` is higher in the hierarchy."""

    model_config = ConfigDict(extra="forbid")
    id: str | None = None
    name: str
    position: int = Field(ge=1)
    permissions: int = 0
    managed: bool = False
    bot_role: bool = False  # the bot's own managed role


class SeedChannel(BaseModel):
    """A text channel of the guild (``type`` 0)."""

    model_config = ConfigDict(extra="forbid")
    id: str | None = None
    name: str = Field(pattern=r"^[a-z0-9_\-]{1,100}$")
    type: int = 0


class SeedMember(BaseModel):
    """A member (invented people only); ``recent_messages`` fall in the last 90 days."""

    model_config = ConfigDict(extra="forbid")
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


class SeedSettings(BaseModel):
    """Limits and windows the sandbox honours (seconds before ``time_scale``)."""

    model_config = ConfigDict(extra="forbid")
    global_limit: int = Field(default=50, ge=1)
    global_window: float = Field(default=1.0, gt=0)
    buckets: dict[str, tuple[int, float]] = {}
    nonce_window: float = Field(default=300.0, gt=0)
    interaction_timeout: float = Field(default=3.0, gt=0)
    search_index_retry_after: int = Field(default=2, ge=0)


class SandboxSeed(BaseModel):
    """The whole initial state of a sandbox (``charterflow sandbox discord --seed FILE``)."""

    model_config = ConfigDict(extra="forbid")
    guild_id: str = "1100000000000000001"
    guild_name: str = "Online Community (sandbox)"
    application_id: str = "1100000000000000002"
    bot_username: str = "charterflow"
    # Application flags: the Server Members and Message Content intents switched on (the
    # "limited" bits of a bot in fewer than 100 servers), as `charterflow doctor` expects.
    application_flags: int = (1 << 15) | (1 << 19)
    token: str | None = None
    private_key: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    roles: list[SeedRole]
    channels: list[SeedChannel]
    members: list[SeedMember]
    generated_members: int = Field(default=0, ge=0, le=200_000)
    generated_member_roles: dict[str, int] = {}  # role name -> how many of the first generated members hold it
    settings: SeedSettings = SeedSettings()


def default_seed() -> dict[str, Any]:
    """The default guild: invented members, the WG roles below the bot's role, one role above it."""
    return {
        "roles": [
            {"name": "wg-member", "position": 1},
            {"name": "moderator", "position": 2, "permissions": 1 << 13},
            {"name": "admin", "position": 3, "permissions": ADMINISTRATOR},
            {"name": "charterflow", "position": 4, "permissions": BOT_PERMISSIONS, "managed": True,
             "bot_role": True},
            {"name": "owners", "position": 5, "permissions": ADMINISTRATOR},
        ],
        "channels": [{"name": "general"}, {"name": "wg-private"}, {"name": "announcements"},
                     {"name": "moderators"}],
        "members": [
            {"username": "avery_quill", "global_name": "Avery Quill", "roles": ["wg-member", "admin"],
             "joined_at": "2022-06-12T10:00:00Z", "recent_messages": 42, "older_messages": 300},
            {"username": "bram_tolliver", "global_name": "Bram Tolliver", "roles": ["moderator"],
             "joined_at": "2023-02-03T12:00:00Z", "recent_messages": 17, "older_messages": 120},
            {"username": "cleo_marsh", "global_name": "Cleo Marsh", "roles": ["wg-member"],
             "joined_at": "2024-04-18T08:30:00Z", "recent_messages": 9, "older_messages": 40},
            {"username": "dario_fenwick", "global_name": "Dario Fenwick", "roles": ["wg-member"],
             "joined_at": "2025-01-07T15:45:00Z", "recent_messages": 2, "older_messages": 30},
            {"username": "esme_voss", "global_name": "Esme Voss", "roles": [], "accepts_dms": False,
             "joined_at": "2026-09-30T10:00:00Z", "recent_messages": 1},
            {"username": "felix_oakes", "global_name": "Felix Oakes", "roles": ["owners"],
             "joined_at": "2021-11-21T13:00:00Z", "recent_messages": 5, "older_messages": 500},
        ],
    }


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat()


def _snowflake_ms(ms: int, seq: int) -> str:
    return str(((ms - DISCORD_EPOCH_MS) << 22) | (seq & 0x3FFFFF))


# --------------------------------------------------------------------------------------------
# Responses


class _Response:
    def __init__(self, status: int, body: Any = None, *, headers: Mapping[str, str] | None = None,
                 raw: bytes | None = None) -> None:
        self.status = status
        self.headers = dict(headers or {})
        self.json = body
        if status == 204:
            self.body = b""
        elif raw is not None:
            self.body = raw
            self.headers.setdefault("content-type", "application/json")
        else:
            self.body = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
            self.headers.setdefault("content-type", "application/json")


def _error(status: int, code: int, message: str, errors: Mapping[str, Any] | None = None) -> _Response:
    body: dict[str, Any] = {"message": message, "code": code}
    if errors:
        body["errors"] = dict(errors)
    return _Response(status, body)


def _form_error(**fields: str) -> _Response:
    errors = {name: {"_errors": [{"code": "BASE_TYPE_INVALID", "message": msg}]} for name, msg in fields.items()}
    return _error(400, 50035, "Invalid Form Body", errors)


_SNOWFLAKE = re.compile(r"^(0|[1-9][0-9]*)$")  # the spec's SnowflakeType pattern
AUDIT_REASON_MAX = 512


def _invalid_path_or_reason(req: _Req) -> _Response | None:
    """Discord's 400 50035 for a path id that is not a snowflake (it never reaches the lookup that
    would answer 10013 & co.) and for an ``X-Audit-Log-Reason`` over 512 characters."""
    for name, value in req.params.items():
        if name.endswith("_id") and not _SNOWFLAKE.match(value):
            return _error(400, 50035, "Invalid Form Body", {name: {"_errors": [
                {"code": "NUMBER_TYPE_COERCE", "message": f"Value \"{value}\" is not snowflake."}]}})
    reason = req.headers.get("x-audit-log-reason")
    if reason is not None and len(unquote(reason)) > AUDIT_REASON_MAX:
        return _error(400, 50035, "Invalid Form Body", {"audit_log_reason": {"_errors": [
            {"code": "BASE_TYPE_MAX_LENGTH", "message": f"Must be {AUDIT_REASON_MAX} or fewer in length."}]}})
    return None


# Routes that take files as multipart/form-data (``payload_json`` + ``files[n]``), as Discord's
# "Uploading Files" section lists them; the JSON part then goes through the usual checks.
_MULTIPART_ROUTES = frozenset({"/channels/{channel_id}/messages"})


def _read_multipart(req: _Req) -> _Response | None:
    """Turn a multipart body into its ``payload_json`` (as the request's JSON body) and files."""
    head = f"Content-Type: {req.headers['content-type']}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    message = BytesParser(policy=email_policy.HTTP).parsebytes(head + req.body)
    if not message.is_multipart():
        return _form_error(body="Invalid multipart/form-data body")
    payload = b""
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        data = part.get_payload(decode=True) or b""
        if name == "payload_json":
            payload = data
        elif part.get_filename():
            req.files.append({"field": name, "filename": part.get_filename(), "size": len(data),
                              "content_type": part.get_content_type()})
    req.body = payload
    req.headers["content-type"] = "application/json"
    return None


def _unknown(what: str, code: int) -> _Response:
    return _error(404, code, f"Unknown {what}")


@dataclass
class _Req:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    params: dict[str, str] = field(default_factory=dict)
    files: list[dict[str, Any]] = field(default_factory=list)  # multipart uploads: name, type, size

    def json(self) -> Any:
        if not self.body:
            return None
        return json.loads(self.body)

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default


_Handler = Callable[["DiscordSandbox", _Req], _Response]


@dataclass(frozen=True)
class _Route:
    method: str
    template: str
    regex: re.Pattern[str]
    handler: _Handler
    bucket: str
    auth: bool
    major: str | None


_ROUTES: list[_Route] = []


def _route(method: str, template: str, *, bucket: str, auth: bool = True) -> Callable[[_Handler], _Handler]:
    def register(fn: _Handler) -> _Handler:
        pattern = re.sub(r"\{(\w+)\}", lambda m: f"(?P<{m.group(1)}>[^/]+)", re.escape(template).replace(r"\{", "{").replace(r"\}", "}"))
        # Interaction follow-ups are limited per interaction (their webhook_id is the application
        # id): https://github.com/discord/discord-api-docs/issues/2701
        major = next((p for p in ("guild_id", "channel_id", "interaction_token", "webhook_id", "interaction_id")
                      if "{" + p + "}" in template), None)
        _ROUTES.append(_Route(method, template, re.compile(f"^{pattern}$"), fn, bucket, auth, major))
        return fn

    return register


@dataclass
class _BucketState:
    start: float = float("-inf")
    count: int = 0
    reset_epoch: float = 0.0  # X-RateLimit-Reset of this window: one fixed value per window


# --------------------------------------------------------------------------------------------
# The sandbox


class DiscordSandbox:
    """A Discord guild in memory, served as an ASGI app (``sandbox.app``) under ``/api/v10``.

    ``seed`` is a mapping in the ``SandboxSeed`` shape (``default_seed()`` when ``None``);
    ``time_scale`` multiplies every rate-limit window and ``retry_after``; ``settings`` overrides
    ``seed["settings"]``; ``interactions_url`` is where interactions are POSTed (else the sink set
    by ``connect`` or ``set_interaction_sink``).
    """

    # Built from the seed and never changed: a keeper of the state need not save it.
    state_from_seed = ("history",)

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
        raw = dict(copy.deepcopy(seed) if seed is not None else default_seed())
        if settings:
            raw["settings"] = {**dict(raw.get("settings") or {}), **settings}
        try:
            self.seed = SandboxSeed.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ConfigError(f"invalid sandbox seed: {where}: {first['msg']}") from None
        self.time_scale = float(time_scale)
        self.interactions_url = interactions_url
        self._sink: Sink | None = None
        self._lock = threading.RLock()
        # Called before an interaction is sent, so a keeper of the state (charterflow.sandbox_state)
        # has saved its token: the answer may arrive after this process was restarted.
        self.on_change: Callable[[], None] | None = None
        self.app = self
        key_hex = self.seed.private_key or secrets.token_hex(32)
        self._private_key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(key_hex))
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
            self.roles: dict[str, dict[str, Any]] = {
                seed.guild_id: {"id": seed.guild_id, "name": "@everyone", "position": 0, "permissions": 0,
                                "managed": False, "bot_role": False},
            }
            for i, r in enumerate(seed.roles):
                rid = r.id or _snowflake_ms(base_ms + 1000 + i, i)
                self.roles[rid] = {**r.model_dump(), "id": rid}
            by_name = {r["name"]: rid for rid, r in self.roles.items()}
            self.channels: dict[str, dict[str, Any]] = {}
            for i, c in enumerate(seed.channels):
                cid = c.id or _snowflake_ms(base_ms + 2000 + i, i)
                self.channels[cid] = {"id": cid, "name": c.name, "type": c.type, "position": i, "parent_id": None,
                                      "guild_id": seed.guild_id, "thread": None}
            self.users: dict[str, dict[str, Any]] = {}
            self.members: dict[str, dict[str, Any]] = {}
            bot_id = seed.application_id
            bot_roles = [rid for rid, r in self.roles.items() if r.get("bot_role")]
            self._add_member(bot_id, seed.bot_username, None, None, datetime(2022, 1, 1, tzinfo=UTC), bot_roles,
                             bot=True, accepts_dms=False)
            rng = random.Random(7)
            self.history: list[dict[str, Any]] = []  # messages of the past (for search only)
            general = next(iter(self.channels))
            now_ms = int(time.time() * 1000)
            for i, m in enumerate(seed.members):
                uid = m.id or _snowflake_ms(base_ms + 3000 + i, i)
                missing = [r for r in m.roles if r not in by_name]
                if missing:
                    raise ConfigError(f"invalid sandbox seed: member {m.username!r} has unknown roles {missing}")
                if uid in self.members or any(u["username"] == m.username for u in self.users.values()):
                    raise ConfigError(f"invalid sandbox seed: duplicate member {m.username!r}")
                self._add_member(uid, m.username, m.global_name, m.nick, m.joined_at,
                                 [by_name[r] for r in m.roles], bot=m.bot, accepts_dms=m.accepts_dms)
                for n in range(m.recent_messages):
                    ms = now_ms - rng.randint(1, 89 * 86_400_000)
                    self.history.append({"id": _snowflake_ms(ms, n), "author_id": uid, "channel_id": general})
                for n in range(m.older_messages):
                    ms = now_ms - rng.randint(91 * 86_400_000, 700 * 86_400_000)
                    self.history.append({"id": _snowflake_ms(ms, n + 5000), "author_id": uid, "channel_id": general})
            for name in seed.generated_member_roles:
                if name not in by_name:
                    raise ConfigError(f"invalid sandbox seed: generated_member_roles names unknown role {name!r}")
            for n in range(seed.generated_members):
                uid = _snowflake_ms(base_ms + 10_000 + n, n)
                roles = [by_name[name] for name, count in seed.generated_member_roles.items() if n < count]
                self._add_member(uid, f"member_{n:06d}", None, None, datetime(2024, 6, 1, tzinfo=UTC), roles)
            self.messages: dict[str, dict[str, Any]] = {}
            self.nonces: dict[tuple[str, str], tuple[float, str]] = {}
            self.dm_channels: dict[str, str] = {}  # user id -> DM channel id
            self.events: dict[str, dict[str, Any]] = {}
            self.commands: dict[str, list[dict[str, Any]]] = {}
            self.role_changes: list[dict[str, Any]] = []
            self.audit_log: list[dict[str, Any]] = []
            self.interactions: dict[str, dict[str, Any]] = {}  # token -> interaction record
            self.interaction_log: list[dict[str, Any]] = []
            self.requests: Counter[str] = Counter()
            self.responses: dict[str, Counter[str]] = defaultdict(Counter)
            self.rate_limited: list[dict[str, Any]] = []
            self._bucket_states: dict[tuple[str, str], _BucketState] = {}
            self._global_hits: list[float] = []
            self.faults: dict[str, Any] = {}
            self._rng = random.Random()
            self._started = time.monotonic()
            self._member_cache: dict[str, bytes] = {}
            self._sorted_ids: list[int] | None = None

    def _add_member(self, uid: str, username: str, global_name: str | None, nick: str | None,
                    joined_at: datetime | None, roles: list[str], *, bot: bool = False, accepts_dms: bool = True) -> None:
        self.users[uid] = {"id": uid, "username": username, "global_name": global_name, "bot": bot,
                           "accepts_dms": accepts_dms}
        self.members[uid] = {"user_id": uid, "nick": nick, "joined_at": joined_at, "roles": list(roles)}

    def _user_by_name(self, username: str) -> dict[str, Any] | None:
        for user in self.users.values():
            if user["username"] == username.lower():
                return user
        return None

    @property
    def bot_id(self) -> str:
        """The bot user's id (the application id, as for applications made since 2020)."""
        return self.seed.application_id

    def _role_id(self, name: str) -> str:
        return next(rid for rid, r in self.roles.items() if r["name"] == name)

    def channel_id(self, name: str) -> str:
        """The id of the seeded channel called ``name``."""
        return next(cid for cid, c in self.channels.items() if c["name"] == name)

    def _invalidate(self, uid: str) -> None:
        self._member_cache.pop(uid, None)

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
            inbound_kind="idea",  # the /idea slash command
            inbound_payload={"text": "hello"},
        )

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
        }
        for setting, name in (("WG_MEMBER_ROLE_ID", "wg-member"), ("MODERATOR_ROLE_ID", "moderator"),
                              ("ADMIN_ROLE_ID", "admin")):
            if any(r["name"] == name for r in self.roles.values()):
                env[f"CHARTERFLOW_DISCORD_{setting}"] = self._role_id(name)
        if any(c["name"] == "wg-private" for c in self.channels.values()):
            env["CHARTERFLOW_DISCORD_WG_CHANNEL_ID"] = self.channel_id("wg-private")
        return {
            "connector": "discord",
            "base_url": base_url,
            "api_url": api,
            "credentials": {"token": self.token, "public_key": self.public_key,
                            "application_id": self.seed.application_id, "guild_id": self.seed.guild_id},
            "headers": {"Authorization": f"Bot {self.token}", "User-Agent": "DiscordBot (sandbox, 1.0)"},
            "env": env,
            "time_scale": self.time_scale,
            "control": {"state": f"{base_url}/_sandbox/state", "faults": f"{base_url}/_sandbox/faults",
                        "interactions": f"{base_url}/_sandbox/interactions"},
        }

    def connect(self, base_url: str, **options: Any) -> Any:
        """A ``DiscordConnector`` for this sandbox; ``options`` override settings fields, except
        ``transport``, ``clock``, ``rng``, ``retry``, ``vote_store`` and ``now`` (connector
        arguments). Unless an interactions URL is set, the connector also becomes the endpoint the
        sandbox delivers interactions to (``handle_interaction``)."""
        from connectors.discord.connector import DiscordConnector
        from connectors.discord.settings import DiscordSettings

        extra = {k: options.pop(k) for k in ("transport", "clock", "rng", "retry", "vote_store", "now") if k in options}
        values: dict[str, Any] = {
            key.removeprefix("CHARTERFLOW_DISCORD_").lower(): value
            for key, value in self.client_info(base_url)["env"].items()
        }
        values.update({"timeout": 10.0, "max_retries": 4, "search_index_max_wait": 10.0 * self.time_scale})
        values.update(options)
        settings = DiscordSettings(_env_file=None, **values)  # type: ignore[call-arg]
        connector = DiscordConnector(settings=settings, **extra)
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
        result = self.press(base_url, user=voter, channel_id=ballot.message.thread_id,
                            message_id=ballot.message.id, option_index=option_index)
        if result["status"] != 200:
            raise RuntimeError(f"the interactions endpoint answered {result['status']}: {result.get('response')}")

    def press(self, base_url: str, *, user: str, channel_id: str, message_id: str,
              option_index: int | None = None, custom_id: str | None = None) -> dict[str, Any]:
        """Press a button on a message (by position or ``custom_id``) as ``user``; the result of
        ``POST /_sandbox/interactions``."""
        body = {"type": "component", "user": user, "channel_id": channel_id, "message_id": message_id,
                "option_index": option_index, "custom_id": custom_id}
        return self._control_post(base_url, body)

    def command(self, base_url: str, *, user: str, name: str, options: Mapping[str, Any] | None = None,
                channel: str | None = None) -> dict[str, Any]:
        """Run the slash command ``/name`` as ``user``."""
        body = {"type": "command", "user": user, "name": name, "options": dict(options or {}),
                "channel_id": channel}
        return self._control_post(base_url, body)

    def submit_modal(self, base_url: str, *, user: str, custom_id: str, fields: Mapping[str, str]) -> dict[str, Any]:
        """Submit the modal ``custom_id`` with ``fields`` (text input id → value) as ``user``."""
        return self._control_post(base_url, {"type": "modal_submit", "user": user, "custom_id": custom_id,
                                             "fields": dict(fields)})

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
            u for u in self.users.values() if not u["bot"])
        with self._lock:
            interaction = self._interaction_payload(kind, user, payload)
        body = json.dumps(interaction, separators=(",", ":")).encode("utf-8")
        return self.sign(body), body

    def sign(self, body: bytes, *, timestamp: int | None = None) -> dict[str, str]:
        """Headers that sign ``body`` with the sandbox's application key."""
        return sign_interaction(self._private_key, body, timestamp=timestamp)

    # ---- interactions --------------------------------------------------------------------

    def _member_json(self, uid: str) -> dict[str, Any]:
        member = self.members[uid]
        return {
            "avatar": None, "banner": None, "communication_disabled_until": None, "flags": 0,
            "joined_at": _iso(member["joined_at"]), "nick": member["nick"], "pending": False, "premium_since": None,
            "roles": list(member["roles"]), "user": self._user_json(uid), "mute": False, "deaf": False,
        }

    def _user_json(self, uid: str) -> dict[str, Any]:
        user = self.users[uid]
        out = {"id": uid, "username": user["username"], "avatar": None, "discriminator": "0", "public_flags": 0,
               "flags": 0, "global_name": user["global_name"], "primary_guild": None}
        if user["bot"]:
            out["bot"] = True
        return out

    def _interaction_payload(self, kind: str, user: Mapping[str, Any], payload: Mapping[str, Any]) -> dict[str, Any]:
        iid = self._id()
        token = "itok_" + secrets.token_urlsafe(32)
        base: dict[str, Any] = {
            "id": iid, "application_id": self.seed.application_id, "token": token, "version": 1,
            "guild_id": self.seed.guild_id, "channel_id": payload.get("channel_id") or self.channel_id_first(),
            "member": {**self._member_json(user["id"]), "permissions": "0"}, "locale": "en-US",
            "guild_locale": "en-US", "app_permissions": str(MANAGE_ROLES), "entitlements": [],
            "authorizing_integration_owners": {"0": self.seed.guild_id}, "context": 0,
        }
        if kind == "ping":
            base = {"id": iid, "application_id": self.seed.application_id, "type": 1, "token": token, "version": 1,
                    "channel_id": None}
        elif kind in ("ballot_vote", "component"):
            base["type"] = 3
            base["data"] = {"custom_id": str(payload.get("custom_id", "")), "component_type": 2}
            message_id = payload.get("message_id")
            message = self.messages.get(str(message_id)) if message_id else None
            base["message"] = self._message_json(message) if message else {"id": str(message_id or "0")}
        elif kind in ("apply_submitted", "modal_submit"):
            base["type"] = 5
            fields = payload.get("fields") or {}
            base["data"] = {"custom_id": str(payload.get("custom_id", "cf:apply")), "components": [
                {"type": 1, "components": [{"type": 4, "custom_id": str(k), "value": str(v)}]}
                for k, v in dict(fields).items()
            ]}
        else:
            base["type"] = 2
            options = payload.get("options")
            if options is None:
                options = {"payload": json.dumps(dict(payload), sort_keys=True)}
            base["data"] = {"id": self._id(), "name": kind, "type": 1, "guild_id": self.seed.guild_id,
                            "options": [{"name": str(k), "type": 3, "value": v} for k, v in dict(options).items()]}
        self.interactions[token] = {"id": iid, "token": token, "created": time.monotonic(), "acknowledged": False,
                                    "channel_id": base.get("channel_id"), "user_id": user["id"], "type": base["type"],
                                    "message_id": (base.get("message") or {}).get("id"), "responses": []}
        return base

    def channel_id_first(self) -> str:
        """The first seeded channel (where commands are run by default)."""
        return next(iter(self.channels))

    async def _deliver(self, interaction: dict[str, Any]) -> dict[str, Any]:
        # Discord sends an interaction once: an endpoint that does not answer in time (or at
        # all) makes the member's client show "This interaction failed"; nothing is retried.
        if self.on_change is not None:
            self.on_change()
        body = json.dumps(interaction, separators=(",", ":")).encode("utf-8")
        headers = self.sign(body)
        timeout = self.settings.interaction_timeout
        started = time.monotonic()
        status, answer, error = 0, None, None
        try:
            if self.interactions_url:
                async with httpx.AsyncClient(timeout=timeout) as client:
                    response = await client.post(self.interactions_url, content=body, headers=headers)
                status = response.status_code
                try:
                    answer = response.json()
                except ValueError:
                    answer = None
            elif self._sink is not None:
                status, answer = await asyncio.wait_for(asyncio.to_thread(self._sink, headers, body), timeout)
            else:
                error = "no interactions endpoint is configured"
        except (TimeoutError, asyncio.TimeoutError, httpx.TimeoutException):
            error = f"the endpoint did not answer within {timeout:g} s"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}"
        elapsed = time.monotonic() - started
        with self._lock:
            record = self.interactions[interaction["token"]]
            outcome = {"interaction_id": interaction["id"], "type": interaction["type"], "status": status,
                       "response": answer, "elapsed": round(elapsed, 4), "error": error}
            if error is None and status == 200:
                problem = self._apply_callback(record, answer)
                if problem:
                    outcome["error"] = problem
            elif error is None:
                outcome["error"] = f"the endpoint answered HTTP {status}"
            outcome["failed"] = outcome["error"] is not None
            self.interaction_log.append(outcome)
            return outcome

    def _apply_callback(self, record: dict[str, Any], answer: Any) -> str | None:
        """Do what Discord does with an interaction response; the problem when it is invalid."""
        if record["acknowledged"]:
            return "Interaction has already been acknowledged."
        if not isinstance(answer, dict) or not isinstance(answer.get("type"), int):
            return "the response is not an interaction response"
        rtype = answer["type"]
        data = answer.get("data") if isinstance(answer.get("data"), dict) else {}
        allowed = {1: {1}, 2: {4, 5, 9}, 3: {4, 5, 6, 7, 9}, 4: {8}, 5: {4, 5, 6, 7}}.get(record["type"], set())
        if rtype not in allowed:
            return f"response type {rtype} is not allowed for interaction type {record['type']}"
        if rtype in (4, 7):
            content = data.get("content") or ""
            if len(content) > MESSAGE_LIMIT:
                return "content is longer than 2000 characters"
        if rtype == 9 and not (data.get("custom_id") and data.get("title") and data.get("components")):
            return "a modal needs custom_id, title and components"
        record["acknowledged"] = True
        record["responses"].append(answer)
        if rtype == 4:
            msg = self._create_message(record["channel_id"], self.bot_id, data, interaction=record)
            record["original_id"] = msg["id"]
        elif rtype == 5:
            msg = self._create_message(record["channel_id"], self.bot_id,
                                       {"content": "", "flags": data.get("flags", 0)}, interaction=record)
            record["original_id"] = msg["id"]
        elif rtype in (6, 7) and record.get("message_id") in self.messages:
            if rtype == 7:
                self._edit_message(self.messages[record["message_id"]], data)
            # An update's "original" is the message the button is on: @original edits edit it.
            record["original_id"] = record["message_id"]
        return None

    # ---- state snapshot ----------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """Everything inspectable, JSON-ready (``GET /_sandbox/state``). The bot token is not in it."""
        with self._lock:
            named = [uid for uid, u in self.users.items() if not u["username"].startswith("member_")]
            return {
                "guild": {"id": self.seed.guild_id, "name": self.seed.guild_name,
                          "application_id": self.seed.application_id, "public_key": self.public_key},
                "roles": [{k: v for k, v in r.items()} for r in sorted(self.roles.values(), key=lambda r: r["position"])],
                "channels": list(self.channels.values()),
                "members": [
                    {"id": uid, "username": self.users[uid]["username"],
                     "roles": sorted(self.roles[r]["name"] for r in self.members[uid]["roles"]),
                     "joined_at": _iso(self.members[uid]["joined_at"])}
                    for uid in named
                ],
                "member_count": len(self.members),
                "messages": [self._message_state(m) for m in self.messages.values()],
                "events": list(self.events.values()),
                "commands": {scope: [c["name"] for c in cmds] for scope, cmds in self.commands.items()},
                "role_changes": list(self.role_changes),
                "audit_log": list(self.audit_log),
                "interactions": list(self.interaction_log),
                "requests": dict(self.requests),
                "responses": {k: dict(v) for k, v in self.responses.items()},
                "rate_limited": list(self.rate_limited),
                "limits": {"global": [self.settings.global_limit, self.settings.global_window * self.time_scale],
                           "buckets": {k: [v[0], v[1] * self.time_scale] for k, v in self.buckets.items()}},
                "faults": dict(self.faults),
            }

    def _message_state(self, m: Mapping[str, Any]) -> dict[str, Any]:
        return {"id": m["id"], "channel_id": m["channel_id"], "author_id": m["author_id"], "content": m["content"],
                "components": m["components"], "flags": m["flags"], "nonce": m.get("nonce"),
                "allowed_mentions": m.get("allowed_mentions"), "edited": m["edited"] is not None,
                "edited_at": m["edited"],
                "thread_id": m.get("thread_id"), "timestamp": m["timestamp"],
                "visible_to": m.get("visible_to")}  # an ephemeral reply's only reader

    # ---- ASGI ----------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI entry point."""
        request = await read_request(scope, receive, send)
        if request is None:
            return
        body, headers = request
        query: dict[str, list[str]] = defaultdict(list)
        for k, v in parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True):
            query[k].append(v)
        path = scope.get("raw_path", b"").decode("latin-1").split("?", 1)[0] or scope["path"]
        req = _Req(method=scope["method"].upper(), path=path, query=dict(query), headers=headers, body=body)

        if req.path.startswith("/_sandbox/"):
            response = await self._control(req)
            await self._send(send, response)
            return
        faults = dict(self.faults)
        if faults.get("latency"):
            await asyncio.sleep(float(faults["latency"]))
        drop = bool(faults.get("drop_rate")) and self._rng.random() < float(faults["drop_rate"])
        if drop and faults.get("drop_phase", "after") == "before":
            await self._drop(send)
            return
        response = self._handle(req, faults)
        if drop:
            await self._drop(send)
            return
        await self._send(send, response)

    async def _send(self, send: Send, response: _Response) -> None:
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers.items()]
        headers.append((b"content-length", str(len(response.body)).encode()))
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": response.body})

    async def _drop(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"4096")]})

    def _match(self, req: _Req) -> tuple[_Route | None, dict[str, str]]:
        path = req.path.removeprefix(API_PREFIX)
        # Literal segments win over placeholders (/members/search before /members/{user_id}).
        for route in sorted(_ROUTES, key=lambda r: r.template.count("{")):
            if route.method == req.method:
                m = route.regex.match(path)
                if m:
                    return route, {k: unquote(v) for k, v in m.groupdict().items()}
        return None, {}

    def _handle(self, req: _Req, faults: Mapping[str, Any]) -> _Response:
        route, params = self._match(req)
        key = f"{req.method} {route.template if route else req.path}"
        with self._lock:
            response = self._handle_locked(req, route, params, faults)
            self.requests[key] += 1
            self.responses[key][str(response.status)] += 1
            return response

    def _handle_locked(self, req: _Req, route: _Route | None, params: dict[str, str],
                       faults: Mapping[str, Any]) -> _Response:
        if route is None:
            return self._unrouted(req)
        # Cloudflare in front of Discord blocks clients without a proper User-Agent.
        if not req.headers.get("user-agent", "").startswith("DiscordBot ("):
            return _error(400, 0, "Requests need User-Agent: DiscordBot ($url, $versionNumber)")
        if route.auth and req.headers.get("authorization") != f"Bot {self.token}":
            return _error(401, 0, "401: Unauthorized")
        now = time.monotonic()
        storm = self.faults.get("storm")
        if storm and storm.get("count", 0) > 0:
            storm["count"] -= 1
            return self._too_many(req, route, params, float(storm.get("retry_after", 1.0)) * self.time_scale,
                                  scope=str(storm.get("scope", "user")), kind="storm")
        if route.auth:  # interaction callbacks and webhooks do not count against the global limit
            window = self.settings.global_window * self.time_scale
            self._global_hits[:] = [t for t in self._global_hits if t > now - window]
            if len(self._global_hits) >= self.settings.global_limit:
                wait = self._global_hits[0] + window - now
                return self._too_many(req, route, params, wait, scope="global", kind="global")
        limit, window = self.buckets[route.bucket]
        window *= self.time_scale
        major = params.get(route.major, "") if route.major else ""
        state = self._bucket_states.setdefault((route.bucket, major), _BucketState())
        if now >= state.start + window:
            state.start, state.count = now, 0
            state.reset_epoch = math.ceil((time.time() + window) * 1000) / 1000
        if state.count >= limit:
            return self._too_many(req, route, params, state.start + window - now, scope="user", kind="bucket")
        state.count += 1
        if route.auth:
            self._global_hits.append(now)
        rate = float(faults.get("error_rate") or 0)
        if rate and self._rng.random() < rate:
            status = int(faults.get("error_status") or 502)
            response = _Response(status, {"message": f"sandbox: injected HTTP {status}", "code": 0})
        else:
            req.params = params
            invalid = _invalid_path_or_reason(req)
            if invalid is not None:
                return invalid
            if route.template in _MULTIPART_ROUTES and req.headers.get("content-type", "").startswith(
                    "multipart/form-data"):
                invalid = _read_multipart(req)
                if invalid is not None:
                    return invalid
            try:
                body = req.json()
            except (ValueError, UnicodeDecodeError):
                return _error(400, 50109, "The request body contains invalid JSON.")
            if body is not None and "json" not in req.headers.get("content-type", ""):
                return _form_error(body="Content-Type must be application/json")
            response = route.handler(self, req)
        reset_after = max(state.start + window - now, 0.0)
        response.headers.update(self._limit_headers(route.bucket, limit, limit - state.count, reset_after,
                                                    state.reset_epoch))
        return response

    def _unrouted(self, req: _Req) -> _Response:
        """A known path with another method is Discord's 405; anything else is not emulated."""
        path = req.path.removeprefix(API_PREFIX)
        if req.path.startswith(API_PREFIX + "/") and any(r.regex.match(path) for r in _ROUTES):
            return _error(405, 0, "405: Method Not Allowed")
        return _error(NOT_EMULATED_STATUS, 0, not_emulated(req.method, req.path))

    def _limit_headers(self, bucket: str, limit: int, remaining: int, reset_after: float,
                       reset_epoch: float) -> dict[str, str]:
        # Rounded up to the millisecond: a client waiting Reset-After never comes back early.
        reset_after = math.ceil(reset_after * 1000) / 1000
        return {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(max(remaining, 0)),
            "X-RateLimit-Reset": f"{reset_epoch:.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": hashlib.sha1(bucket.encode()).hexdigest()[:16],  # noqa: S324 - an opaque name
        }

    def _too_many(self, req: _Req, route: _Route, params: dict[str, str], wait: float, *, scope: str,
                  kind: str) -> _Response:
        wait = max(wait, 0.0)
        rounded = math.ceil(wait * 1000) / 1000
        self.rate_limited.append({"at": round(time.monotonic() - self._started, 4), "kind": kind, "scope": scope,
                                  "bucket": route.bucket, "request": f"{req.method} {route.template}",
                                  "retry_after": rounded})
        # Docs-accurate 429: no "code" (the spec's RatelimitedResponse requires one; the docs'
        # examples have none: https://discord.com/developers/docs/topics/rate-limits#exceeding-a-rate-limit).
        body = {"message": "You are being rate limited.", "retry_after": rounded, "global": scope == "global"}
        # Via: a 429 from the API itself passes Google's front end; a Cloudflare ban lacks it.
        headers = {"Retry-After": str(max(1, math.ceil(wait))), "X-RateLimit-Scope": scope, "Via": "1.1 google"}
        if scope == "global":
            headers["X-RateLimit-Global"] = "true"
        else:
            limit, _ = self.buckets[route.bucket]
            major = params.get(route.major, "") if route.major else ""
            state = self._bucket_states.get((route.bucket, major))
            epoch = state.reset_epoch if state else math.ceil((time.time() + wait) * 1000) / 1000
            headers.update(self._limit_headers(route.bucket, limit, 0, wait, epoch))
        return _Response(429, body, headers=headers)

    # ---- control routes --------------------------------------------------------------------

    async def _control(self, req: _Req) -> _Response:
        if req.method == "GET" and req.path == "/_sandbox/state":
            return _Response(200, self.state())
        try:
            data = req.json() or {}
        except ValueError:
            return _error(400, 50109, "The request body contains invalid JSON.")
        if not isinstance(data, dict):
            return _error(400, 50035, "a JSON object is expected")
        if req.method == "POST" and req.path == "/_sandbox/faults":
            try:
                faults = _check_faults(data)
            except ValueError as exc:
                return _error(400, 50035, str(exc))
            with self._lock:
                self.faults = faults
                if "seed" in faults:
                    self._rng = random.Random(faults["seed"])
            return _Response(200, {"faults": faults})
        if req.method == "POST" and req.path == "/_sandbox/reset":
            self._reset()
            return _Response(200, {"ok": True})
        if req.method == "POST" and req.path == "/_sandbox/interactions_url":
            self.interactions_url = data.get("url") or None
            return _Response(200, {"url": self.interactions_url})
        if req.method == "POST" and req.path == "/_sandbox/audit_log":
            with self._lock:
                return self._inject_audit(data)
        if req.method == "POST" and req.path == "/_sandbox/interactions":
            with self._lock:
                built = self._build_interaction(data)
            if isinstance(built, _Response):
                return built
            return _Response(200, await self._deliver(built))
        return _error(404, 0, "404: Not Found")

    def _inject_audit(self, data: Mapping[str, Any]) -> _Response:
        def uid(field_name: str) -> str | None | _Response:
            value = data.get(field_name)
            if value in (None, ""):
                return None
            user = self._user_by_name(str(value)) or self.users.get(str(value))
            if user is None:
                return _error(400, 10013, f"Unknown User ({field_name})")
            return str(user["id"])

        try:
            action_type = int(data.get("action_type"))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return _form_error(action_type="Value is not int.")
        user_id, target_id = uid("user"), uid("target")
        for value in (user_id, target_id):
            if isinstance(value, _Response):
                return value
        changes = list(data.get("changes") or [])
        if data.get("timeout_minutes") is not None:  # a timeout: MEMBER_UPDATE of communication_disabled_until
            until = datetime.now(UTC) + timedelta(minutes=float(data["timeout_minutes"]))
            changes.append({"key": "communication_disabled_until", "new_value": until.isoformat()})
        entry = self.audit(action_type, user_id=user_id, target_id=target_id,
                           reason=data.get("reason") or None, changes=changes, options=data.get("options"))
        return _Response(200, entry)

    def _build_interaction(self, data: Mapping[str, Any]) -> dict[str, Any] | _Response:
        user = self._user_by_name(str(data.get("user", ""))) or self.users.get(str(data.get("user", "")))
        if user is None or str(user["id"]) not in self.members:
            return _error(400, 10013, "Unknown User")
        kind = data.get("type")
        if kind == "command":
            name = str(data.get("name", ""))
            registered = {c["name"] for cmds in self.commands.values() for c in cmds}
            if registered and name not in registered:
                return _error(400, 10063, f"Unknown application command {name!r} (not registered)")
            return self._interaction_payload(name, user, {"options": data.get("options") or {},
                                                          "channel_id": data.get("channel_id")})
        if kind == "component":
            message = self.messages.get(str(data.get("message_id")))
            if message is None or message["channel_id"] != str(data.get("channel_id", message and message["channel_id"])):
                return _error(400, 10008, "Unknown Message")
            buttons = [b for row in message["components"] for b in row.get("components", [])]
            if data.get("custom_id"):
                button = next((b for b in buttons if b.get("custom_id") == data["custom_id"]), None)
            else:
                index = data.get("option_index")
                button = buttons[index] if isinstance(index, int) and 0 <= index < len(buttons) else None
            if button is None:
                return _error(400, 50035, "no such button on that message")
            if button.get("disabled"):
                return _error(400, 50035, "that button is disabled (Discord does not deliver presses)")
            return self._interaction_payload("component", user, {"custom_id": button["custom_id"],
                                                                 "message_id": message["id"],
                                                                 "channel_id": message["channel_id"]})
        if kind == "modal_submit":
            return self._interaction_payload("modal_submit", user, {"custom_id": data.get("custom_id", ""),
                                                                    "fields": data.get("fields") or {}})
        if kind == "ping":
            return self._interaction_payload("ping", user, {})
        return _error(400, 50035, "type is command, component, modal_submit or ping")

    # ---- serializers and writes -----------------------------------------------------------

    def _role_json(self, role: Mapping[str, Any]) -> dict[str, Any]:
        out = {"id": role["id"], "name": role["name"], "permissions": str(role["permissions"]),
               "position": role["position"], "color": 0,
               "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
               "hoist": False, "managed": role["managed"], "mentionable": False, "icon": None,
               "unicode_emoji": None, "flags": 0}
        if role.get("bot_role"):
            out["tags"] = {"bot_id": self.bot_id}
        return out

    def _message_json(self, m: Mapping[str, Any]) -> dict[str, Any]:
        out = {
            "type": 0 if not m.get("interaction") else 20, "content": m["content"], "mentions": [],
            "mention_roles": [], "attachments": copy.deepcopy(m.get("attachments") or []), "embeds": [], "timestamp": m["timestamp"],
            "edited_timestamp": m["edited"], "flags": m["flags"], "components": copy.deepcopy(m["components"]),
            "id": m["id"], "channel_id": m["channel_id"], "author": self._user_json(m["author_id"]),
            "pinned": False, "mention_everyone": False, "tts": False,
        }
        if m.get("nonce") is not None:
            out["nonce"] = m["nonce"]
        return out

    def _create_message(self, channel_id: str, author_id: str, data: Mapping[str, Any], *,
                        interaction: Mapping[str, Any] | None = None) -> dict[str, Any]:
        mid = self._id()
        components = []
        for r, row in enumerate(data.get("components") or []):
            comps = [{**c, "id": r * 10 + i + 2} for i, c in enumerate(row.get("components", []))]
            components.append({"type": 1, "id": r * 10 + 1, "components": comps})
        msg = {"id": mid, "channel_id": channel_id, "author_id": author_id, "content": data.get("content") or "",
               "components": components, "flags": int(data.get("flags") or 0),
               "timestamp": datetime.now(UTC).isoformat(), "edited": None, "nonce": data.get("nonce"),
               "allowed_mentions": data.get("allowed_mentions"), "thread_id": None,
               "attachments": [{"id": self._id(), "filename": f["filename"], "size": f["size"],
                                "content_type": f["content_type"],
                                "url": f"https://cdn.discordapp.com/attachments/{channel_id}/{mid}/{f['filename']}",
                                "proxy_url": f"https://media.discordapp.net/attachments/{channel_id}/{mid}/{f['filename']}"}
                               for f in data.get("_files") or []],
               "interaction": interaction["id"] if interaction else None,
               "visible_to": interaction["user_id"] if interaction and int(data.get("flags") or 0) & EPHEMERAL else None}
        self.messages[mid] = msg
        return msg

    def _edit_message(self, msg: dict[str, Any], data: Mapping[str, Any]) -> None:
        if "content" in data:
            msg["content"] = data.get("content") or ""
        if "components" in data:
            msg["components"] = [
                {"type": 1, "id": r * 10 + 1,
                 "components": [{**c, "id": r * 10 + i + 2} for i, c in enumerate(row.get("components", []))]}
                for r, row in enumerate(data.get("components") or [])
            ]
        msg["edited"] = datetime.now(UTC).isoformat()

    def _record_role_change(self, action: str, uid: str, rid: str, reason: str | None) -> None:
        entry = {"at": datetime.now(UTC).isoformat(), "action": action, "user_id": uid,
                 "username": self.users[uid]["username"], "role": self.roles[rid]["name"], "reason": reason}
        self.role_changes.append(entry)
        self.audit(25, user_id=self.bot_id, target_id=uid, reason=reason,
                   changes=[{"key": "$add" if action == "grant" else "$remove",
                             "new_value": [{"id": rid, "name": self.roles[rid]["name"]}]}])

    def audit(self, action_type: int, *, user_id: str | None, target_id: str | None,
              reason: str | None = None, changes: list[dict[str, Any]] | None = None,
              options: Mapping[str, str] | None = None) -> dict[str, Any]:
        """Append a guild audit-log entry (its id is a fresh snowflake, so ids grow with time)."""
        entry: dict[str, Any] = {"id": self._id(), "action_type": int(action_type), "user_id": user_id,
                                 "target_id": target_id, "reason": reason, "changes": list(changes or [])}
        if options:
            entry["options"] = {str(k): str(v) for k, v in options.items()}
        self.audit_log.append(entry)
        return entry

    def _bot_top_position(self) -> int:
        return max((self.roles[r]["position"] for r in self.members[self.bot_id]["roles"]), default=0)

    def _bot_can_manage_roles(self) -> bool:
        perms = 0
        for r in self.members[self.bot_id]["roles"]:
            perms |= int(self.roles[r]["permissions"])
        return bool(perms & (MANAGE_ROLES | ADMINISTRATOR))


def _check_faults(data: Mapping[str, Any]) -> dict[str, Any]:
    out = check_faults(data, extra={"search_not_indexed"})
    storm = storm_settings(data, shape="{count, retry_after, scope}")
    if storm is not None:
        scope = str(storm.get("scope", "user"))
        if scope not in ("user", "global", "shared"):
            raise ValueError("storm.scope must be user, global or shared")
        out["storm"] = {"count": int(storm.get("count", 0)), "retry_after": float(storm.get("retry_after", 1.0)),
                        "scope": scope}
    if "search_not_indexed" in data:
        out["search_not_indexed"] = int(data["search_not_indexed"])
    return out


# --------------------------------------------------------------------------------------------
# Endpoint handlers (paths below /api/v10)


def _guild(sb: DiscordSandbox, req: _Req) -> _Response | None:
    if req.params.get("guild_id") != sb.seed.guild_id:
        return _error(404, 10004, "Unknown Guild")
    return None


def _int_arg(req: _Req, name: str, default: int, low: int, high: int) -> int | _Response:
    raw = req.arg(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        return _form_error(**{name: "Value is not int."})
    if not low <= value <= high:
        return _form_error(**{name: f"Must be between {low} and {high}."})
    return value


@_route("GET", "/guilds/{guild_id}/members/{user_id}", bucket="member.get")
def _get_member(sb: DiscordSandbox, req: _Req) -> _Response:
    if (bad := _guild(sb, req)) is not None:
        return bad
    uid = req.params["user_id"]
    if uid not in sb.members:
        return _unknown("Member", 10007) if uid in sb.users else _unknown("User", 10013)
    return _Response(200, sb._member_json(uid))


@_route("GET", "/guilds/{guild_id}/members", bucket="members.list")
def _list_members(sb: DiscordSandbox, req: _Req) -> _Response:
    if (bad := _guild(sb, req)) is not None:
        return bad
    limit = _int_arg(req, "limit", 1, 1, 1000)
    if isinstance(limit, _Response):
        return limit
    after_raw = req.arg("after", "0") or "0"
    if not after_raw.isdigit():
        return _form_error(after="Value is not snowflake.")
    after = int(after_raw)
    if sb._sorted_ids is None or len(sb._sorted_ids) != len(sb.members):
        sb._sorted_ids = sorted(int(u) for u in sb.members)
    start = bisect.bisect_right(sb._sorted_ids, after)
    chunk = []
    for uid_int in sb._sorted_ids[start:start + limit]:
        uid = str(uid_int)
        cached = sb._member_cache.get(uid)
        if cached is None:
            cached = sb._member_cache[uid] = json.dumps(sb._member_json(uid), separators=(",", ":")).encode()
        chunk.append(cached)
    return _Response(200, None, raw=b"[" + b",".join(chunk) + b"]")


@_route("GET", "/guilds/{guild_id}/members/search", bucket="members.search")
def _search_members(sb: DiscordSandbox, req: _Req) -> _Response:
    if (bad := _guild(sb, req)) is not None:
        return bad
    query = (req.arg("query") or "").lower()
    if not 1 <= len(query) <= 100:
        return _form_error(query="This field is required" if not query else "Must be between 1 and 100 in length.")
    limit = _int_arg(req, "limit", 1, 1, 1000)
    if isinstance(limit, _Response):
        return limit
    found = [uid for uid, u in sb.users.items() if uid in sb.members and (
        u["username"].startswith(query) or (sb.members[uid]["nick"] or "").lower().startswith(query))]
    return _Response(200, [sb._member_json(uid) for uid in found[:limit]])


def _role_change(sb: DiscordSandbox, req: _Req, grant: bool) -> _Response:
    if (bad := _guild(sb, req)) is not None:
        return bad
    uid, rid = req.params["user_id"], req.params["role_id"]
    if uid not in sb.members:
        return _unknown("Member", 10007)
    role = sb.roles.get(rid)
    if role is None or rid == sb.seed.guild_id:
        return _unknown("Role", 10011)
    # The hierarchy: only roles strictly below the bot's highest role, never managed roles
    # (https://discord.com/developers/docs/topics/permissions#permission-hierarchy).
    if not sb._bot_can_manage_roles() or role["position"] >= sb._bot_top_position() or role["managed"]:
        return _error(403, 50013, "Missing Permissions")
    roles = sb.members[uid]["roles"]
    reason = unquote(req.headers["x-audit-log-reason"]) if "x-audit-log-reason" in req.headers else None
    if grant and rid not in roles:
        roles.append(rid)
        sb._record_role_change("grant", uid, rid, reason)
    elif not grant and rid in roles:
        roles.remove(rid)
        sb._record_role_change("revoke", uid, rid, reason)
    sb._invalidate(uid)
    return _Response(204)


@_route("PUT", "/guilds/{guild_id}/members/{user_id}/roles/{role_id}", bucket="member.roles")
def _add_role(sb: DiscordSandbox, req: _Req) -> _Response:
    return _role_change(sb, req, True)


@_route("DELETE", "/guilds/{guild_id}/members/{user_id}/roles/{role_id}", bucket="member.roles")
def _remove_role(sb: DiscordSandbox, req: _Req) -> _Response:
    return _role_change(sb, req, False)


@_route("GET", "/guilds/{guild_id}/roles", bucket="roles")
def _list_roles(sb: DiscordSandbox, req: _Req) -> _Response:
    if (bad := _guild(sb, req)) is not None:
        return bad
    return _Response(200, [sb._role_json(r) for r in sorted(sb.roles.values(), key=lambda r: r["position"])])


@_route("GET", "/guilds/{guild_id}/channels", bucket="channels")
def _list_channels(sb: DiscordSandbox, req: _Req) -> _Response:
    if (bad := _guild(sb, req)) is not None:
        return bad
    return _Response(200, [{"id": c["id"], "type": c["type"], "flags": 0, "guild_id": c["guild_id"], "name": c["name"],
                            "position": c["position"], "parent_id": None, "permission_overwrites": [],
                            "nsfw": False, "topic": None, "last_message_id": None, "rate_limit_per_user": 0}
                           for c in sb.channels.values() if c["type"] in (0, 5, 15)])


@_route("GET", "/guilds/{guild_id}/messages/search", bucket="messages.search")
def _search_messages(sb: DiscordSandbox, req: _Req) -> _Response:
    if (bad := _guild(sb, req)) is not None:
        return bad
    pending = sb.faults.get("search_not_indexed", 0)
    if pending:
        if pending > 0:
            sb.faults["search_not_indexed"] = pending - 1
        return _Response(202, {"message": "Index not yet available. Try again later", "code": 110000,
                               "documents_indexed": 0, "retry_after": sb.settings.search_index_retry_after})
    limit = _int_arg(req, "limit", 25, 1, 25)
    if isinstance(limit, _Response):
        return limit
    authors = set(req.query.get("author_id", []))
    lo = req.arg("min_id")
    hi = req.arg("max_id")
    for name, value in (("min_id", lo), ("max_id", hi)):
        if value is not None and not value.isdigit():
            return _form_error(**{name: "Value is not snowflake."})
    rows = [
        {"id": m["id"], "author_id": m["author_id"], "channel_id": m["channel_id"]}
        for m in [*sb.history, *sb.messages.values()]
        if (not authors or m["author_id"] in authors) and (lo is None or int(m["id"]) > int(lo))
        and (hi is None or int(m["id"]) < int(hi)) and not m.get("visible_to")
    ]
    rows.sort(key=lambda m: int(m["id"]), reverse=req.arg("sort_order", "desc") != "asc")
    out = []
    for row in rows[:limit]:
        full = sb.messages.get(row["id"]) or {
            "id": row["id"], "channel_id": row["channel_id"], "author_id": row["author_id"], "content": "…",
            "components": [], "flags": 0, "edited": None,
            "timestamp": datetime.fromtimestamp(((int(row["id"]) >> 22) + DISCORD_EPOCH_MS) / 1000, UTC).isoformat(),
        }
        out.append([{**sb._message_json(full), "hit": True}])
    return _Response(200, {"messages": out, "doing_deep_historical_index": False, "total_results": len(rows),
                           "threads": [], "members": []})


def _channel(sb: DiscordSandbox, cid: str) -> dict[str, Any] | None:
    return sb.channels.get(cid)


def _validate_components(components: Any) -> str | None:
    if components is None:
        return None
    if not isinstance(components, list) or len(components) > 5:
        return "components: at most 5 action rows"
    seen = set()
    for row in components:
        if not isinstance(row, dict) or row.get("type") != 1:
            return "components: each top-level component is an action row (type 1)"
        buttons = row.get("components") or []
        if not 1 <= len(buttons) <= 5:
            return "components: an action row holds 1 to 5 buttons"
        for b in buttons:
            if b.get("type") != 2:
                return "components: only buttons are emulated"
            cid = b.get("custom_id")
            if not isinstance(cid, str) or not 1 <= len(cid) <= 100 or cid in seen:
                return "components: custom_id must be 1-100 characters and unique"
            seen.add(cid)
            if len(str(b.get("label", ""))) > 80:
                return "components: label must be 80 or fewer in length"
    return None


@_route("POST", "/channels/{channel_id}/messages", bucket="message.create")
def _create_message(sb: DiscordSandbox, req: _Req) -> _Response:
    cid = req.params["channel_id"]
    channel = _channel(sb, cid)
    if channel is None:
        return _unknown("Channel", 10003)
    data = req.json() or {}
    if not isinstance(data, dict):
        return _form_error(body="Must be an object.")
    content = data.get("content")
    if content is not None and not isinstance(content, str):
        return _form_error(content="Must be a string.")
    if content and len(content) > MESSAGE_LIMIT:
        return _error(400, 50035, "Invalid Form Body", {"content": {"_errors": [
            {"code": "BASE_TYPE_MAX_LENGTH", "message": f"Must be {MESSAGE_LIMIT} or fewer in length."}]}})
    if not (content or data.get("components") or data.get("embeds") or data.get("poll") or req.files):
        return _error(400, 50006, "Cannot send an empty message")
    problem = _validate_components(data.get("components"))
    if problem:
        return _form_error(components=problem)
    if req.files:
        data = {**data, "_files": req.files}
    nonce = data.get("nonce")
    if nonce is not None and (not isinstance(nonce, (str, int)) or len(str(nonce)) > 25):
        return _form_error(nonce="Must be 25 or fewer in length.")
    if channel["type"] == 1:
        recipient = channel["recipient_id"]
        if not sb.users[recipient]["accepts_dms"]:
            return _error(403, 50007, "Cannot send messages to this user")
    now = time.monotonic()
    if nonce is not None and data.get("enforce_nonce"):
        seen = sb.nonces.get((sb.bot_id, str(nonce)))
        if seen and now - seen[0] <= sb.settings.nonce_window and seen[1] in sb.messages:
            return _Response(200, sb._message_json(sb.messages[seen[1]]))
    msg = sb._create_message(cid, sb.bot_id, data)
    if nonce is not None:
        sb.nonces[(sb.bot_id, str(nonce))] = (now, msg["id"])
    return _Response(200, sb._message_json(msg))


def _find_message(sb: DiscordSandbox, req: _Req) -> dict[str, Any] | _Response:
    if _channel(sb, req.params["channel_id"]) is None:
        return _unknown("Channel", 10003)
    msg = sb.messages.get(req.params["message_id"])
    if msg is None or msg["channel_id"] != req.params["channel_id"]:
        return _unknown("Message", 10008)
    return msg


@_route("GET", "/channels/{channel_id}/messages/{message_id}", bucket="message.edit")
def _get_message(sb: DiscordSandbox, req: _Req) -> _Response:
    msg = _find_message(sb, req)
    return msg if isinstance(msg, _Response) else _Response(200, sb._message_json(msg))


@_route("PATCH", "/channels/{channel_id}/messages/{message_id}", bucket="message.edit")
def _edit_message(sb: DiscordSandbox, req: _Req) -> _Response:
    msg = _find_message(sb, req)
    if isinstance(msg, _Response):
        return msg
    if msg["author_id"] != sb.bot_id:
        return _error(403, 50005, "Cannot edit a message authored by another user")
    data = req.json() or {}
    if len(data.get("content") or "") > MESSAGE_LIMIT:
        return _error(400, 50035, "Invalid Form Body", {"content": {"_errors": [
            {"code": "BASE_TYPE_MAX_LENGTH", "message": f"Must be {MESSAGE_LIMIT} or fewer in length."}]}})
    problem = _validate_components(data.get("components"))
    if problem:
        return _form_error(components=problem)
    sb._edit_message(msg, data)
    return _Response(200, sb._message_json(msg))


@_route("GET", "/users/@me", bucket="me")
def _get_me(sb: DiscordSandbox, req: _Req) -> _Response:
    # Every field the spec's UserPIIResponse requires (a bot account: no MFA, en-US).
    return _Response(200, {**sb._user_json(sb.bot_id), "mfa_enabled": False, "locale": "en-US"})


@_route("GET", "/applications/@me", bucket="me")
def _get_application(sb: DiscordSandbox, req: _Req) -> _Response:
    # The fields `charterflow doctor` reads (id, verify_key), plus the bot user.
    # Plus every other field the spec's PrivateApplicationResponse requires; the owner is the
    # first seeded person (an application belongs to a human account, not to its bot).
    owner = next((uid for uid, u in sb.users.items() if not u["bot"]), sb.bot_id)
    return _Response(200, {"id": sb.seed.application_id, "name": sb.seed.bot_username, "icon": None,
                           "description": "", "verify_key": sb.public_key, "bot_public": False,
                           "bot_require_code_grant": False, "flags": sb.seed.application_flags,
                           "flags_new": str(sb.seed.application_flags), "type": None,
                           "redirect_uris": [], "interactions_endpoint_url": sb.interactions_url,
                           "role_connections_verification_url": None, "owner": sb._user_json(owner),
                           "approximate_guild_count": 1, "approximate_user_install_count": 0,
                           "approximate_user_authorization_count": 0, "explicit_content_filter": 0,
                           "team": None, "eligible_oauth2_scopes": ["bot", "applications.commands"],
                           "bot": sb._user_json(sb.bot_id)})


@_route("POST", "/users/@me/channels", bucket="dm")
def _create_dm(sb: DiscordSandbox, req: _Req) -> _Response:
    data = req.json() or {}
    rid = str(data.get("recipient_id", ""))
    if rid not in sb.users or rid == sb.bot_id:
        return _unknown("User", 10013)
    cid = sb.dm_channels.get(rid)
    if cid is None:
        cid = sb._id()
        sb.dm_channels[rid] = cid
        sb.channels[cid] = {"id": cid, "name": "", "type": 1, "position": 0, "parent_id": None, "guild_id": None,
                            "recipient_id": rid, "thread": None}
    return _Response(200, {"id": cid, "type": 1, "last_message_id": None, "flags": 0,
                           "recipients": [sb._user_json(rid)]})


def _thread_json(sb: DiscordSandbox, channel: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": channel["id"], "type": channel["type"], "last_message_id": None, "flags": 0,
            "guild_id": sb.seed.guild_id, "name": channel["name"], "parent_id": channel["parent_id"],
            "rate_limit_per_user": 0, "owner_id": sb.bot_id,
            "thread_metadata": {"archived": False, "archive_timestamp": None,
                                "auto_archive_duration": channel.get("auto_archive_duration", 10080),
                                "locked": False, "invitable": channel.get("invitable", True),
                                "create_timestamp": datetime.now(UTC).isoformat()},
            "message_count": 0, "member_count": len(channel.get("members", [])), "total_message_sent": 0}


def _thread_args(data: Mapping[str, Any]) -> str | None:
    name = data.get("name")
    if not isinstance(name, str) or not 1 <= len(name) <= 100:
        return "name: Must be between 1 and 100 in length."
    if data.get("auto_archive_duration", 10080) not in (60, 1440, 4320, 10080):
        return "auto_archive_duration: Value must be one of (60, 1440, 4320, 10080)."
    return None


@_route("POST", "/channels/{channel_id}/messages/{message_id}/threads", bucket="threads")
def _thread_from_message(sb: DiscordSandbox, req: _Req) -> _Response:
    msg = _find_message(sb, req)
    if isinstance(msg, _Response):
        return msg
    data = req.json() or {}
    if (problem := _thread_args(data)) is not None:
        return _form_error(thread=problem)
    if msg.get("thread_id"):
        return _error(400, 160004, "A thread has already been created for this message")
    tid = msg["id"]  # a thread started from a message has the message's id
    sb.channels[tid] = {"id": tid, "name": data["name"], "type": 11, "position": 0, "guild_id": sb.seed.guild_id,
                        "parent_id": req.params["channel_id"], "thread": True, "members": [sb.bot_id],
                        "auto_archive_duration": data.get("auto_archive_duration", 10080)}
    msg["thread_id"] = tid
    return _Response(201, _thread_json(sb, sb.channels[tid]))


@_route("POST", "/channels/{channel_id}/threads", bucket="threads")
def _create_thread(sb: DiscordSandbox, req: _Req) -> _Response:
    parent = _channel(sb, req.params["channel_id"])
    if parent is None or parent["type"] not in (0, 5):
        return _unknown("Channel", 10003)
    data = req.json() or {}
    if (problem := _thread_args(data)) is not None:
        return _form_error(thread=problem)
    ttype = data.get("type", 12)
    if ttype not in (11, 12):
        return _form_error(type="Value must be one of (11, 12).")
    tid = sb._id()
    sb.channels[tid] = {"id": tid, "name": data["name"], "type": ttype, "position": 0, "guild_id": sb.seed.guild_id,
                        "parent_id": parent["id"], "thread": True, "members": [sb.bot_id],
                        "invitable": bool(data.get("invitable", True)),
                        "auto_archive_duration": data.get("auto_archive_duration", 10080)}
    return _Response(201, _thread_json(sb, sb.channels[tid]))


@_route("PUT", "/channels/{channel_id}/thread-members/{user_id}", bucket="thread.members")
def _add_thread_member(sb: DiscordSandbox, req: _Req) -> _Response:
    thread = _channel(sb, req.params["channel_id"])
    if thread is None or not thread.get("thread"):
        return _unknown("Channel", 10003)
    uid = req.params["user_id"]
    if uid not in sb.members:
        return _unknown("Member", 10007)
    if uid not in thread["members"]:
        thread["members"].append(uid)
    return _Response(204)


def _event_json(sb: DiscordSandbox, event: Mapping[str, Any]) -> dict[str, Any]:
    return {**{k: v for k, v in event.items() if not k.startswith("_")}}


@_route("GET", "/guilds/{guild_id}/scheduled-events", bucket="events")
def _list_events(sb: DiscordSandbox, req: _Req) -> _Response:
    if (bad := _guild(sb, req)) is not None:
        return bad
    return _Response(200, [_event_json(sb, e) for e in sb.events.values() if e["status"] in (1, 2)])


@_route("POST", "/guilds/{guild_id}/scheduled-events", bucket="events")
def _create_event(sb: DiscordSandbox, req: _Req) -> _Response:
    if (bad := _guild(sb, req)) is not None:
        return bad
    data = req.json() or {}
    errors: dict[str, str] = {}
    name = data.get("name")
    if not isinstance(name, str) or not 1 <= len(name) <= 100:
        errors["name"] = "Must be between 1 and 100 in length."
    if data.get("description") is not None and len(str(data["description"])) > 1000:
        errors["description"] = "Must be 1000 or fewer in length."
    if data.get("privacy_level") != 2:
        errors["privacy_level"] = "Value must be one of (2,)."
    if data.get("entity_type") != 3:
        errors["entity_type"] = "Only EXTERNAL (3) events are emulated."
    location = (data.get("entity_metadata") or {}).get("location")
    if not isinstance(location, str) or not 1 <= len(location) <= 100:
        errors["entity_metadata.location"] = "Must be between 1 and 100 in length."
    try:
        start = datetime.fromisoformat(str(data.get("scheduled_start_time")))
        end = datetime.fromisoformat(str(data.get("scheduled_end_time")))
        if start.tzinfo is None or end.tzinfo is None:
            raise ValueError
        if start <= datetime.now(UTC):
            errors["scheduled_start_time"] = "Cannot schedule event in the past."
        elif end <= start:
            errors["scheduled_end_time"] = "Must be after the start time."
    except ValueError:
        errors["scheduled_start_time"] = "Both times are required ISO8601 timestamps for EXTERNAL events."
    if errors:
        return _form_error(**errors)
    if sum(1 for e in sb.events.values() if e["status"] in (1, 2)) >= 100:
        return _error(400, 30038, "Maximum number of guild events reached (100)")
    eid = sb._id()
    event = {
        "id": eid, "guild_id": sb.seed.guild_id, "name": name, "description": data.get("description"),
        "channel_id": None, "creator_id": sb.bot_id, "creator": sb._user_json(sb.bot_id), "image": None,
        "scheduled_start_time": start.astimezone(UTC).isoformat(), "scheduled_end_time": end.astimezone(UTC).isoformat(),
        "status": 1, "entity_type": 3, "entity_id": None, "recurrence_rule": None, "privacy_level": 2,
        "guild_scheduled_event_exceptions": [], "entity_metadata": {"location": location}, "user_count": 0,
    }
    sb.events[eid] = event
    sb.audit(100, user_id=sb.bot_id, target_id=eid,
             reason=unquote(req.headers.get("x-audit-log-reason", "")) or None)
    return _Response(200, _event_json(sb, event))


@_route("GET", "/guilds/{guild_id}/audit-logs", bucket="audit_log")
def _audit_logs(sb: DiscordSandbox, req: _Req) -> _Response:
    if (bad := _guild(sb, req)) is not None:
        return bad
    limit = _int_arg(req, "limit", 50, 1, 100)
    if isinstance(limit, _Response):
        return limit
    bounds: dict[str, int] = {}
    for name in ("before", "after", "user_id", "target_id", "action_type"):
        raw = req.arg(name)
        if raw is not None:
            if not raw.isdigit():
                return _form_error(**{name: "Value is not snowflake." if name != "action_type" else "Value is not int."})
            bounds[name] = int(raw)
    entries = [e for e in sb.audit_log
               if ("before" not in bounds or int(e["id"]) < bounds["before"])
               and ("after" not in bounds or int(e["id"]) > bounds["after"])
               and ("user_id" not in bounds or e["user_id"] == str(bounds["user_id"]))
               and ("target_id" not in bounds or e["target_id"] == str(bounds["target_id"]))
               and ("action_type" not in bounds or e["action_type"] == bounds["action_type"])]
    # Newest first, except with only `after`: then oldest first (the docs' "reversed" order).
    ascending = "after" in bounds and "before" not in bounds
    entries.sort(key=lambda e: int(e["id"]), reverse=not ascending)
    page = entries[:limit]
    out = []
    for e in page:
        item = {k: copy.deepcopy(v) for k, v in e.items() if v is not None or k in ("user_id", "target_id")}
        out.append(item)
    ids = {x for e in page for x in (e["user_id"], e["target_id"]) if x and x in sb.users}
    return _Response(200, {"audit_log_entries": out, "users": [sb._user_json(u) for u in sorted(ids)],
                           "integrations": [], "webhooks": [], "guild_scheduled_events": [], "threads": [],
                           "application_commands": [], "auto_moderation_rules": []})


def _put_commands(sb: DiscordSandbox, req: _Req, scope: str) -> _Response:
    if req.params["application_id"] != sb.seed.application_id:
        return _error(403, 50001, "Missing Access")
    data = req.json()
    if not isinstance(data, list) or len(data) > 100:
        return _form_error(body="Must be a list of at most 100 commands.")
    names: set[str] = set()
    out = []
    for i, cmd in enumerate(data):
        name = cmd.get("name") if isinstance(cmd, dict) else None
        desc = cmd.get("description") if isinstance(cmd, dict) else None
        if not isinstance(name, str) or not _COMMAND_NAME.match(name) or name != name.lower():
            return _form_error(**{f"{i}.name": "Command name is invalid"})
        if not isinstance(desc, str) or not 1 <= len(desc) <= 100:
            return _form_error(**{f"{i}.description": "Must be between 1 and 100 in length."})
        if name in names:
            return _form_error(**{f"{i}.name": "Application command names must be unique"})
        names.add(name)
        entry = {"id": sb._id(), "application_id": sb.seed.application_id, "version": sb._id(),
                 "default_member_permissions": None, "type": cmd.get("type", 1), "name": name, "description": desc,
                 "dm_permission": True, "nsfw": False, "integration_types": [0], "contexts": None}
        if scope != "global":
            entry["guild_id"] = scope
        if cmd.get("options"):
            entry["options"] = [{k: v for k, v in o.items()} for o in cmd["options"]]
        out.append(entry)
    sb.commands[scope] = out
    return _Response(200, out)


@_route("PUT", "/applications/{application_id}/guilds/{guild_id}/commands", bucket="commands")
def _put_guild_commands(sb: DiscordSandbox, req: _Req) -> _Response:
    if (bad := _guild(sb, req)) is not None:
        return bad
    return _put_commands(sb, req, sb.seed.guild_id)


@_route("PUT", "/applications/{application_id}/commands", bucket="commands")
def _put_global_commands(sb: DiscordSandbox, req: _Req) -> _Response:
    return _put_commands(sb, req, "global")


def _interaction_for(sb: DiscordSandbox, token: str) -> dict[str, Any] | _Response:
    record = sb.interactions.get(token)
    # Interaction tokens are valid for 15 minutes.
    if record is None or time.monotonic() - record["created"] > 15 * 60:
        return _error(401, 50027, "Invalid Webhook Token")
    return record


@_route("POST", "/interactions/{interaction_id}/{interaction_token}/callback", bucket="callback", auth=False)
def _callback(sb: DiscordSandbox, req: _Req) -> _Response:
    record = _interaction_for(sb, req.params["interaction_token"])
    if isinstance(record, _Response):
        return record
    if record["id"] != req.params["interaction_id"]:
        return _error(404, 10062, "Unknown interaction")
    if record["acknowledged"]:
        return _error(400, 40060, "Interaction has already been acknowledged.")
    problem = sb._apply_callback(record, req.json())
    if problem:
        return _form_error(body=problem)
    return _Response(204)


@_route("POST", "/webhooks/{webhook_id}/{interaction_token}", bucket="webhook", auth=False)
def _followup(sb: DiscordSandbox, req: _Req) -> _Response:
    if req.params["webhook_id"] != sb.seed.application_id:
        return _error(404, 10015, "Unknown Webhook")
    record = _interaction_for(sb, req.params["interaction_token"])
    if isinstance(record, _Response):
        return record
    if not record["acknowledged"]:
        return _error(404, 10015, "Unknown Webhook")  # nothing to follow up before the first answer
    data = req.json() or {}
    content = data.get("content") or ""
    if len(content) > MESSAGE_LIMIT:
        return _error(400, 50035, "Invalid Form Body", {"content": {"_errors": [
            {"code": "BASE_TYPE_MAX_LENGTH", "message": f"Must be {MESSAGE_LIMIT} or fewer in length."}]}})
    if not content and not data.get("components"):
        return _error(400, 50006, "Cannot send an empty message")
    msg = sb._create_message(record["channel_id"], sb.bot_id, data, interaction=record)
    return _Response(200, sb._message_json(msg))


@_route("PATCH", "/webhooks/{webhook_id}/{interaction_token}/messages/@original", bucket="webhook", auth=False)
def _edit_original(sb: DiscordSandbox, req: _Req) -> _Response:
    if req.params["webhook_id"] != sb.seed.application_id:
        return _error(404, 10015, "Unknown Webhook")
    record = _interaction_for(sb, req.params["interaction_token"])
    if isinstance(record, _Response):
        return record
    msg = sb.messages.get(record.get("original_id") or "")
    if msg is None:
        return _unknown("Message", 10008)
    data = req.json() or {}
    if len(data.get("content") or "") > MESSAGE_LIMIT:
        return _form_error(content=f"Must be {MESSAGE_LIMIT} or fewer in length.")
    sb._edit_message(msg, data)
    return _Response(200, sb._message_json(msg))
