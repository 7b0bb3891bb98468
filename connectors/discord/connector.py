"""The Discord connector: Directory, RoleManager, Messenger, BallotBox, Calendar and Inbound on one
Discord server (guild), through REST v10 as a bot.

Idempotency: role changes re-read the member first (``HttpPolicy.ensure``), so a repeated or
retried change reports ``UNCHANGED`` instead of being sent twice; every message carries a
``nonce`` with ``enforce_nonce`` (derived from ``key`` when one is given, random otherwise), so a
retry after a dropped connection returns the message already created instead of posting again.
Endpoints and quirks: ``specs/API-NOTES.md`` section 1 and https://discord.com/developers/docs/.
"""

from __future__ import annotations

import hashlib
import re
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import httpx

from connectors.base import (
    COMMUNITY_CAPABILITIES,
    Activity,
    Ballot,
    BallotBox,
    BallotOption,
    BallotRequest,
    Calendar,
    Capability,
    ChangeStatus,
    ClientConnector,
    EventRequest,
    InboundEvent,
    MessageEdit,
    MessageEditor,
    MessageRef,
    ModerationEntry,
    OnboardingPrompt,
    Role,
    RoleChange,
    RoleKind,
    RoomMessage,
    ScheduledEvent,
    UserRef,
    Vote,
    audit_reason,
)
from connectors.discord import payloads
from connectors.discord.client import (
    INDEX_NOT_READY,
    MISSING_ACCESS,
    PLATFORM,
    THREAD_ALREADY_CREATED,
    UNKNOWN_MEMBER,
    UNKNOWN_ROLE,
    UNKNOWN_USER,
    CannotDirectMessage,
    DiscordAPIError,
    DiscordClient,
    MissingPermissions,
    log,
)
from connectors.discord.interactions import InteractionVerifier
from connectors.discord.settings import DiscordSettings
from connectors.discord.snowflake import snowflake_at, time_of
from connectors.discord.votes import BallotRecord, MemoryVoteStore, TallyVoteStore, VoteRecord, VoteStore
from connectors.errors import AnswerElsewhere, ConfigError, FatalError, InvalidSignature
from connectors.http import Clock, SystemClock, WriteOutcome

__all__ = ["DiscordConnector", "Member", "RoleRequest", "VoteReceipt"]

_MEMBERS_PAGE = 1000  # GET /guilds/{id}/members allows limit 1..1000
_SEARCH_LIMIT = 1000  # GET /guilds/{id}/members/search allows limit 1..1000
_SNOWFLAKE = re.compile(r"^[0-9]{1,20}$")
_ROLE_PATH = "/guilds/{guild_id}/members/{user_id}/roles/{role_id}"
_DEFAULT_ROLE_NAMES = {RoleKind.MODERATOR: "moderator", RoleKind.ADMIN: "admin"}
_WG_MEMBER = "wg-member"
_AUDIT_PAGE = 100  # GET /guilds/{id}/audit-logs allows limit 1..100
# Audit-log action types (https://discord.com/developers/docs/resources/audit-log#audit-log-entry-object-audit-log-events);
# the ones moderators use by hand are named, any other is reported by its number.
AUDIT_ACTION_NAMES = {
    20: "MEMBER_KICK",
    21: "MEMBER_PRUNE",
    22: "MEMBER_BAN_ADD",
    23: "MEMBER_BAN_REMOVE",
    24: "MEMBER_UPDATE",
    25: "MEMBER_ROLE_UPDATE",
    26: "MEMBER_MOVE",
    27: "MEMBER_DISCONNECT",
    72: "MESSAGE_DELETE",
    73: "MESSAGE_BULK_DELETE",
    143: "AUTO_MODERATION_BLOCK_MESSAGE",
    144: "AUTO_MODERATION_FLAG_TO_CHANNEL",
    145: "AUTO_MODERATION_USER_COMM_DISABLED",
    146: "AUTO_MODERATION_QUARANTINE_USER",
}
# Types whose target_id is a user; Auto Moderation's (143-146): the author it acted on, as
# discord.py reads them (https://discordpy.readthedocs.io/en/stable/api.html#discord.AuditLogAction.automod_block_message).
_USER_TARGETS = {20, 22, 23, 24, 25, 26, 27, 72, 143, 144, 145, 146}
GUILD_ONLY, EXTERNAL = 2, 3  # scheduled-event privacy level and entity type
# What a message can carry; one that comes with none of them was withheld (room_messages).
THREAD_ARCHIVED = 50083  # "Operation cannot be performed on an archived thread"
_ROOM_TITLE = 100  # a thread name's limit: a common room copy's title line is cut to it
# A copy's title line: bold and nothing else (a title holds no "*": rules.commons), unlike the
# "**author** (Platform): …" line a copy's text starts with.
_TITLE_LINE = re.compile(r"\*\*[^*\n]+\*\*")
_MESSAGE_PARTS = ("content", "attachments", "embeds", "components", "sticker_items", "poll")


def _ts(value: Any) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _nonce(key: str | None) -> str:
    """A 21-character nonce base: derived from ``key`` (stable across retries and re-runs within
    Discord's nonce window) or random."""
    if key is None:
        return "r" + uuid.uuid4().hex[:20]
    return "k" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:20]


# An interaction's answer Discord will not take, by (status, code): Unknown Message / Unknown
# Webhook (404), the deferral never reached Discord in its 3 s, so the interaction failed; Invalid
# Webhook Token (401), its token's 15 minutes are over (the answer came after an outage).
# https://discord.com/developers/docs/interactions/receiving-and-responding#responding-to-an-interaction
_NOT_ANSWERABLE = frozenset({(404, 10008), (404, 10015), (401, 50027)})
# How long a message search refused for want of the Message Content intent is not asked again:
# Discord's invalid-request window (https://discord.com/developers/docs/topics/rate-limits#invalid-request-limit).
_SEARCH_REFUSED_FOR = 600.0


@contextmanager
def _answered_in_place() -> Iterator[None]:
    try:
        yield
    except DiscordAPIError as exc:
        if (exc.status, exc.code) not in _NOT_ANSWERABLE:
            raise
        raise AnswerElsewhere(str(exc), platform=PLATFORM, status=exc.status) from None


@contextmanager
def _needing(what: str, permissions: str) -> Iterator[None]:
    """A 403 50013 on ``what`` said as the permissions the bot's role lacks and where to grant them."""
    try:
        yield
    except MissingPermissions as exc:
        raise MissingPermissions(
            f"{what}: Discord refused (403, code 50013 Missing Permissions): the bot needs {permissions} "
            "(Server Settings → Roles → the bot's role → Permissions)",
            status=403,
            code=exc.code,
        ) from None


@dataclass(frozen=True, kw_only=True)
class Member:
    """A guild member: who, since when (``joined_at`` of the current join), which role ids."""

    user: UserRef
    joined_at: datetime | None
    roles: frozenset[str]
    bot: bool = False


@dataclass(frozen=True, kw_only=True)
class RoleRequest:
    """One planned role change for ``DiscordConnector.apply_role_changes``."""

    action: str  # "grant" | "revoke"
    user: UserRef
    role: Role
    reason: str


@dataclass(frozen=True, kw_only=True)
class VoteReceipt:
    """What became of one ballot button press, and the ephemeral answer to send back."""

    accepted: bool
    changed: bool
    ballot_id: str
    option_id: str
    reason: str
    response: dict[str, Any]


class DiscordConnector(ClientConnector[DiscordClient], BallotBox, Calendar, MessageEditor):
    """Talks to one Discord guild as one bot (REST v10).

    Build it with ``DiscordConnector.from_env()`` or ``DiscordConnector(settings=...)``;
    ``transport``, ``clock`` and ``rng`` are for tests; ``vote_store`` keeps button votes (the
    gateway passes a ledger-backed one); ``now`` gives the current time for activity windows.
    """

    name: ClassVar[str] = "discord"
    capabilities: ClassVar[frozenset[Capability]] = COMMUNITY_CAPABILITIES | frozenset(
        {
            Capability.INBOUND,
            Capability.CALENDAR,
            Capability.CHANNEL_TEXT,
            Capability.BUTTONS,
            Capability.MESSAGE_EDITOR,
            Capability.INTERACTIONS,
        }
    )
    docs_url: ClassVar[str] = "https://discord.com/developers/docs/intro"
    settings_class: ClassVar[type[DiscordSettings]] = DiscordSettings

    def __init__(
        self,
        *,
        settings: DiscordSettings,
        transport: httpx.BaseTransport | None = None,
        clock: Clock | None = None,
        rng: Any = None,
        vote_store: VoteStore | None = None,
        now: Callable[[], datetime] | None = None,
        retry: Any = None,
    ) -> None:
        self.settings = settings
        self.client = DiscordClient.from_settings(settings, retry=retry, transport=transport, clock=clock, rng=rng)
        self.verifier = InteractionVerifier(public_key=settings.public_key, max_age=settings.interaction_max_age)
        self.votes: VoteStore = vote_store if vote_store is not None else MemoryVoteStore()
        self._clock = clock or SystemClock()
        self._now = now or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        self._me_id: str | None = None  # the bot's user id, read once (the common room's "own")
        self._roles: dict[str, dict[str, Any]] | None = None
        self._channels: dict[str, str] | None = None
        self._channel_rows: dict[str, str] | None = None
        self._search_refused: tuple[float, str] | None = None  # (when, why): message search's 403 50001

    def __repr__(self) -> str:
        return f"DiscordConnector(api_url={self.settings.api_url!r}, guild_id={self.settings.guild_id!r})"

    @classmethod
    def sandbox(cls, *, seed: Mapping[str, Any] | None = None, **options: Any) -> Any:
        """A ``DiscordSandbox`` (a loopback emulator of the endpoints used here)."""
        # lazy: start-up: the sandbox (Starlette, its seed data) loads only when one is asked for
        from connectors.discord.sandbox import DiscordSandbox

        return DiscordSandbox(seed=seed, **options)

    @property
    def guild(self) -> dict[str, str]:
        """Path parameters naming the guild."""
        return {"guild_id": self.settings.guild_id}

    # ----------------------------------------------------------------------------------------
    # Directory

    def _member(self, data: Mapping[str, Any]) -> Member:
        user = data.get("user") or {}
        return Member(
            user=UserRef(
                platform=PLATFORM,
                id=str(user["id"]),
                username=str(user.get("username", "")),
                display_name=data.get("nick") or user.get("global_name") or None,
                platform_account=bool(user.get("bot")),
            ),
            joined_at=_ts(data.get("joined_at")),
            roles=frozenset(str(r) for r in data.get("roles") or ()),
            bot=bool(user.get("bot")),
        )

    def get_member(self, user_id: str) -> Member:
        """``GET /guilds/{guild}/members/{user}``; ``FatalError`` (404) when not a member."""
        data = self.client.json(
            self.client.request(
                "GET",
                "/guilds/{guild_id}/members/{user_id}",
                path={**self.guild, "user_id": user_id},
                what=f"Discord member {user_id}",
            ),
            what=f"Discord member {user_id}",
        )
        return self._member(data)

    def iter_members(self, *, page_size: int = _MEMBERS_PAGE) -> Iterator[Member]:
        """Every member, page by page (``after`` = the highest user id of the previous page).

        Needs the Server Members privileged intent switched on for the bot.
        """
        if not 1 <= page_size <= _MEMBERS_PAGE:
            raise ValueError("page_size must be 1..1000")
        after = "0"
        while True:
            page = self.client.json(
                self.client.request(
                    "GET",
                    "/guilds/{guild_id}/members",
                    path=self.guild,
                    params={"limit": page_size, "after": after},
                    what="Discord member list",
                ),
                what="Discord member list",
            )
            for row in page:
                yield self._member(row)
            if len(page) < page_size:
                return
            after = str(max(int(row["user"]["id"]) for row in page))

    def list_members(self) -> list[Member]:
        """Every member of the guild (see ``iter_members``)."""
        return list(self.iter_members())

    def search_members(self, query: str, *, limit: int = 100) -> list[Member]:
        """Members whose username or nickname starts with ``query`` (1-100 characters)."""
        query = query.strip()
        if not 1 <= len(query) <= 100:
            raise ValueError("a member search needs 1 to 100 characters")
        rows = self.client.json(
            self.client.request(
                "GET",
                "/guilds/{guild_id}/members/search",
                path=self.guild,
                params={"query": query, "limit": max(1, min(limit, _SEARCH_LIMIT))},
                what=f"Discord member search {query!r}",
            ),
            what="Discord member search",
        )
        return [self._member(r) for r in rows]

    def find_user(self, username: str) -> UserRef:
        """The member whose username is ``username`` (exact, case-insensitive), or whose id it is."""
        name = (username or "").strip().lstrip("@")
        if _SNOWFLAKE.match(name):
            try:
                return self.get_member(name).user
            except DiscordAPIError as exc:
                if exc.code not in (UNKNOWN_MEMBER, UNKNOWN_USER):
                    raise
        elif name and len(name) <= 100:
            for member in self.search_members(name, limit=100):
                if member.user.username.lower() == name.lower():
                    return member.user
        raise FatalError(
            f"Discord member {username!r} not found in guild {self.settings.guild_id}", platform=PLATFORM, status=404
        )

    def current_username(self, user: UserRef) -> str:
        """The member's username now, read by their id: anyone may change theirs, and the old
        one is free for someone else to take. ``FatalError`` 404 when no longer in the server."""
        if not _SNOWFLAKE.match(user.id or ""):
            raise FatalError(f"not a Discord user id: {user.id!r}", platform=PLATFORM, status=404)
        return self.find_user(user.id).username

    def message_count(self, user_id: str, *, days: int | None = None) -> tuple[int | None, datetime | None]:
        """How many messages ``user_id`` posted in the last ``days`` days (settings: 90), and the
        newest one's time, from ``GET /guilds/{guild}/messages/search``.

        The search answers 202 ``{"code": 110000, "retry_after": …}`` while the guild is being
        indexed: that is retried up to ``search_index_attempts`` times within
        ``search_index_max_wait`` seconds, then the count is ``None`` (unknown) — never 0.
        Needs Read Message History and the Message Content privileged intent.
        """
        days = days or self.settings.activity_days
        since = self._now() - timedelta(days=days)
        params = {
            "author_id": user_id,
            "min_id": snowflake_at(since),
            "limit": 1,
            "sort_by": "timestamp",
            "sort_order": "desc",
        }
        waited = 0.0
        for attempt in range(1, self.settings.search_index_attempts + 1):
            response = self._search(params, what=f"Discord message search for {user_id}")
            body = self.client.json(response, what="Discord message search")
            if response.status_code == 200:
                total = body.get("total_results")
                newest = None
                for group in body.get("messages") or []:
                    for msg in group or []:
                        stamp = _ts(msg.get("timestamp"))
                        if stamp and (newest is None or stamp > newest):
                            newest = stamp
                return (int(total) if isinstance(total, int) else None), newest
            wait = body.get("retry_after") if isinstance(body, dict) else None
            wait = float(wait) if isinstance(wait, (int, float)) and wait >= 0 else 2.0
            code = body.get("code") if isinstance(body, dict) else None
            if attempt == self.settings.search_index_attempts or waited + wait > self.settings.search_index_max_wait:
                log.warning(
                    "discord: message search index not ready (code %s) after %d attempts; activity of %s is unknown",
                    code or INDEX_NOT_READY,
                    attempt,
                    user_id,
                )
                break
            waited += wait
            self._clock.sleep(wait)
        return None, None

    def _search(self, params: Mapping[str, Any], *, what: str) -> httpx.Response:
        """``GET /guilds/{guild}/messages/search``. Discord restricts it by the Message Content
        intent (https://discord.com/developers/docs/resources/message#search-guild-messages): its
        403 50001 is a ``FatalError`` naming the intent, and for 10 minutes no search is sent again,
        so counting many members' activity cannot spend the invalid-request budget nor stop the
        client (403s) for the connector's other work."""
        refused = self._search_refused
        if refused is not None and self._clock.monotonic() - refused[0] < _SEARCH_REFUSED_FOR:
            raise FatalError(refused[1], platform=PLATFORM, status=403)
        try:
            return self.client.request(
                "GET", "/guilds/{guild_id}/messages/search", path=self.guild, params=params, ok=(200, 202), what=what
            )
        except DiscordAPIError as exc:
            if (exc.status, exc.code) != (403, MISSING_ACCESS):
                raise
            why = (
                "Discord refused the message search (403, code 50001 Missing Access): turn on the Message Content "
                "Intent (Developer Portal → your application → Bot) and give the bot Read Message History; "
                "`charterflow doctor` checks both. Discord activity counts are unknown until then"
            )
            log.warning("discord: %s", why)
            self._search_refused = (self._clock.monotonic(), why)
            raise FatalError(why, platform=PLATFORM, status=403) from None

    def activity(self, user: UserRef) -> Activity:
        """Member since ``joined_at`` (the current join) and messages in the last 90 days.

        ``post_count`` counts messages within ``activity_days`` (``None`` when the search index is
        not available); ``last_posted_at`` is the newest of them.
        """
        member = self.get_member(user.id)
        if member.joined_at is None:
            raise FatalError(
                f"Discord member {user.username!r} has no joined_at (a guest voice member?)", platform=PLATFORM
            )
        count, newest = self.message_count(user.id)
        return Activity(user=member.user, created_at=member.joined_at, last_posted_at=newest, post_count=count)

    def list_staff(self) -> list[UserRef]:
        """Members holding the moderator or admin role."""
        wanted = {self.role_id(Role.moderator()), self.role_id(Role.admin())}
        return [m.user for m in self.iter_members() if m.roles & wanted]

    # ----------------------------------------------------------------------------------------
    # RoleManager

    def _guild_get(self, what: str) -> Any:
        """``GET /guilds/{guild}/<what>`` (roles, channels, onboarding) as JSON."""
        about = f"Discord {what}"
        return self.client.json(
            self.client.request("GET", f"/guilds/{{guild_id}}/{what}", path=self.guild, what=about), what=about
        )

    def guild_roles(self, *, refresh: bool = False) -> dict[str, dict[str, Any]]:
        """The guild's roles by id (``GET /guilds/{guild}/roles``, cached)."""
        with self._lock:
            if self._roles is not None and not refresh:
                return self._roles
        roles = {str(r["id"]): r for r in self._guild_get("roles")}
        with self._lock:
            self._roles = roles
        return roles

    def role_id(self, role: Role) -> str:
        """The role id for ``role``: from settings (moderator, admin, wg-member) or by name."""
        s = self.settings
        configured = {RoleKind.MODERATOR: s.moderator_role_id, RoleKind.ADMIN: s.admin_role_id}.get(role.kind)
        name = _DEFAULT_ROLE_NAMES.get(role.kind, role.name)
        if role.kind is RoleKind.GROUP and role.name == _WG_MEMBER:
            configured = s.wg_member_role_id
        if configured:
            return configured
        if role.kind is RoleKind.GROUP and _SNOWFLAKE.match(role.name):
            return role.name
        matches = [rid for rid, r in self.guild_roles().items() if str(r.get("name", "")).lower() == name.lower()]
        if len(matches) == 1:
            return matches[0]
        setting = {RoleKind.MODERATOR: "MODERATOR_ROLE_ID", RoleKind.ADMIN: "ADMIN_ROLE_ID"}.get(
            role.kind, "WG_MEMBER_ROLE_ID" if role.name == _WG_MEMBER else None
        )
        hint = f"; set CHARTERFLOW_DISCORD_{setting}" if setting else ""
        problem = "several roles are" if matches else "no role is"
        raise FatalError(
            f"Discord role {name!r}: {problem} called that in guild {s.guild_id}{hint}", platform=PLATFORM, status=404
        )

    def _role_name(self, role_id: str) -> str:
        return str(self.guild_roles().get(role_id, {}).get("name", role_id))

    def list_holders(self, role: Role) -> list[UserRef]:
        """Everyone holding ``role`` (reads the whole member list)."""
        rid = self.role_id(role)
        return [m.user for m in self.iter_members() if rid in m.roles]

    def grant(self, user: UserRef, role: Role, *, reason: str) -> RoleChange:
        """Give ``role`` to ``user`` (``PUT …/roles/{role}`` with ``X-Audit-Log-Reason``)."""
        return self._change("grant", user, role, reason=reason, observed=None)

    def revoke(self, user: UserRef, role: Role, *, reason: str) -> RoleChange:
        """Take ``role`` from ``user`` (``DELETE …/roles/{role}`` with ``X-Audit-Log-Reason``)."""
        return self._change("revoke", user, role, reason=reason, observed=None)

    def _change(
        self, action: str, user: UserRef, role: Role, *, reason: str, observed: frozenset[str] | None
    ) -> RoleChange:
        reason = audit_reason(reason)
        if action not in ("grant", "revoke"):
            raise ValueError("action is 'grant' or 'revoke'")
        rid = self.role_id(role)
        what = f"{action} role {self._role_name(rid)!r} {'to' if action == 'grant' else 'from'} {user.username!r}"
        known = [observed]  # the first check may use roles already read (apply_role_changes)

        def is_done() -> bool:
            try:
                roles = known[0] if known[0] is not None else self.get_member(user.id).roles
            except DiscordAPIError as exc:
                if exc.code not in (UNKNOWN_MEMBER, UNKNOWN_USER):
                    raise
                return self._not_a_member(action, user, what)
            known[0] = None
            return (rid in roles) == (action == "grant")

        def write() -> None:
            try:
                self.client.request(
                    "PUT" if action == "grant" else "DELETE",
                    _ROLE_PATH,
                    path={**self.guild, "user_id": user.id, "role_id": rid},
                    reason=reason,
                    ok=(204,),
                    what=what,
                )
            except MissingPermissions as exc:
                raise self._explain_50013(exc, rid, what) from None
            except DiscordAPIError as exc:
                if exc.code == UNKNOWN_MEMBER:  # left between the read and the write
                    self._not_a_member(action, user, what)
                    return
                if exc.code == UNKNOWN_ROLE:
                    raise FatalError(
                        f"{what}: Discord has no role {rid} (10011); check the role id settings",
                        platform=PLATFORM,
                        status=404,
                    ) from None
                raise

        outcome, _ = self.client.policy.ensure(is_done=is_done, write=write, what=what)
        status = ChangeStatus.APPLIED if outcome is WriteOutcome.APPLIED else ChangeStatus.UNCHANGED
        log.info("discord: %s %s %s: %s (reason: %s)", action, role, user.username, status.value, reason)
        return RoleChange(user=user, role=role, action=action, status=status, reason=reason)

    def _not_a_member(self, action: str, user: UserRef, what: str) -> bool:
        """``user`` is not in the server (left, was kicked, or never joined: Discord's 10007 Unknown
        Member, https://discord.com/developers/docs/topics/opcodes-and-status-codes#json): a
        revocation is done (a member's roles leave with the membership), a grant cannot be."""
        if action == "revoke":
            log.info("discord: %s: not a member of the server, so holds no role", what)
            return True
        raise FatalError(
            f"{what}: {user.username or user.id} is not a member of guild {self.settings.guild_id} "
            "(Discord 10007 Unknown Member: they left or never joined); a role is granted only to a member",
            platform=PLATFORM,
            status=404,
        )

    def _explain_50013(self, exc: MissingPermissions, role_id: str, what: str) -> MissingPermissions:
        """Say which role is in the way and what to change in the server settings."""
        try:
            roles = self.guild_roles(refresh=True)
            bot_roles = self.get_member(self.settings.application_id).roles
        except FatalError:  # the lookups are a courtesy; never hide the refusal behind them
            roles = self._roles or {}
            bot_roles = frozenset()
        target = roles.get(role_id, {})
        top = max((roles[r] for r in bot_roles if r in roles), key=lambda r: r.get("position", 0), default=None)
        if top is not None and target and int(target.get("position", 0)) >= int(top.get("position", 0)):
            advice = (
                f"the role {target.get('name')!r} (position {target.get('position')}) is not below the bot's "
                f"highest role {top.get('name')!r} (position {top.get('position')}). In Server Settings → Roles, "
                f"drag {top.get('name')!r} above {target.get('name')!r}"
            )
        elif top is not None:
            advice = "the bot lacks the Manage Roles permission; give its role Manage Roles in Server Settings → Roles"
        else:
            advice = (
                f"the role {target.get('name', role_id)!r} must be below the bot's highest role, and the bot "
                "needs Manage Roles (Server Settings → Roles)"
            )
        return MissingPermissions(
            f"{what}: Discord refused (403, code 50013 Missing Permissions): {advice}", status=403, code=exc.code
        )

    def apply_role_changes(
        self,
        changes: Iterable[RoleRequest],
        *,
        observed: Mapping[str, frozenset[str]] | None = None,
        workers: int = 4,
    ) -> list[RoleChange]:
        """Apply many role changes concurrently (the rate limits pace them); results in input order.

        ``changes`` is consumed lazily, so a generator over ``iter_members()`` overlaps reading the
        member list with applying the changes. ``observed`` maps user id → role ids as just read
        (it may be filled while ``changes`` is consumed): the first check of each change uses it
        instead of reading the member again; a change whose outcome is unknown after a failure is
        still re-read before it is retried.
        """
        with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="discord-roles") as pool:
            futures = [
                pool.submit(
                    self._change,
                    c.action,
                    c.user,
                    c.role,
                    reason=c.reason,
                    observed=None if observed is None else observed.get(c.user.id, frozenset()),
                )
                for c in changes
            ]
            return [f.result() for f in futures]

    # ----------------------------------------------------------------------------------------
    # Messenger

    def channel_id(self, channel: str | None) -> str:
        """A channel id from an id, a channel name (``#name`` or ``name``), or ``None`` (the WG channel)."""
        if not channel:
            if not self.settings.wg_channel_id:
                raise ConfigError("no channel given and CHARTERFLOW_DISCORD_WG_CHANNEL_ID is not set")
            return self.settings.wg_channel_id
        channel = channel.strip().lstrip("#")
        if _SNOWFLAKE.match(channel):
            return channel
        with self._lock:
            cached = None if self._channels is None else self._channels.get(channel.lower())
        if cached:
            return cached
        names = {name.lower(): cid for cid, name in self._channel_names(refresh=True).items()}
        if channel.lower() not in names:
            raise FatalError(
                f"Discord channel {channel!r} not found in guild {self.settings.guild_id}",
                platform=PLATFORM,
                status=404,
            )
        return names[channel.lower()]

    def _channel_names(self, *, refresh: bool = False) -> dict[str, str]:
        """The guild's text channels' names by id (``GET /guilds/{guild}/channels``, cached)."""
        with self._lock:
            if self._channel_rows is not None and not refresh:
                return self._channel_rows
        found = {
            str(r["id"]): str(r.get("name", "")) for r in self._guild_get("channels") if r.get("type") in (0, 5, 15)
        }
        with self._lock:
            self._channel_rows = found
            self._channels = {name.lower(): cid for cid, name in found.items()}
        return found

    def _url(self, channel_id: str, message_id: str | None = None) -> str:
        tail = f"/{message_id}" if message_id else ""
        return f"https://discord.com/channels/{self.settings.guild_id}/{channel_id}{tail}"

    def _send(self, channel_id: str, body: Mapping[str, Any], *, what: str) -> dict[str, Any]:
        # The nonce with enforce_nonce makes a resend return the first message: safe to retry.
        return self.client.json(
            self.client.request(
                "POST",
                "/channels/{channel_id}/messages",
                path={"channel_id": channel_id},
                json_body=dict(body),
                what=what,
                idempotent="nonce" in body,
            ),
            what=what,
        )

    def send_text(
        self, *, channel: str | None, text: str, title: str | None = None, key: str | None = None
    ) -> list[MessageRef]:
        """Post ``text`` in a channel as one or more messages (2000 characters each, cut at lines).

        Mentions in ``text`` never ping (``allowed_mentions: {"parse": []}``).
        """
        cid = self.channel_id(channel)
        refs = []
        for body in payloads.messages(text, title=title, nonce=_nonce(key)):
            msg = self._send(cid, body, what=f"message in channel {cid}")
            refs.append(MessageRef(platform=PLATFORM, id=str(msg["id"]), thread_id=cid, url=self._url(cid, msg["id"])))
        return refs

    def post(self, *, channel: str, title: str, text: str, key: str | None = None) -> MessageRef:
        """Post ``title`` + ``text`` in ``channel`` and open a thread on it (named ``title``) for
        replies; ``thread_id`` of the result is that thread."""
        first = self.send_text(channel=channel, text=text, title=title, key=key)[0]
        return self.post_thread_on(first, name=title)

    def reply(self, *, thread_id: str, text: str, key: str | None = None) -> MessageRef:
        """Post ``text`` in the thread (or channel) ``thread_id``."""
        refs = self.send_text(channel=thread_id, text=text, key=key)
        return refs[0]

    def _dm_channel(self, user_id: str) -> str:
        what = f"DM channel with {user_id}"
        data = self.client.json(
            self.client.request(
                "POST",
                "/users/@me/channels",
                json_body={"recipient_id": user_id},
                what=what,
                idempotent=True,  # Discord returns the existing DM channel
            ),
            what=what,
        )
        return str(data["id"])

    def direct_message(self, *, recipients: Sequence[str], title: str, text: str, key: str | None = None) -> MessageRef:
        """DM each recipient (username or id): ``POST /users/@me/channels`` then the messages.

        A member who does not accept DMs (403 code 50007) does not stop the others; afterwards
        ``CannotDirectMessage`` lists who was not reached and which DMs went out, so the caller can
        mention them in the WG channel instead. Returns the first recipient's message.
        """
        names = [r.strip() for r in recipients if r and r.strip()]
        if not names:
            raise ValueError("a direct message needs at least one recipient")
        delivered: list[MessageRef] = []
        refused: list[str] = []
        for name in names:
            try:
                user = self.find_user(name)
            except FatalError as exc:
                if isinstance(exc, DiscordAPIError) or exc.status != 404:
                    raise
                refused.append(name)  # not in the server (any more): the others still get theirs
                continue
            cid = self._dm_channel(user.id)
            try:
                bodies = payloads.messages(text, title=title, nonce=_nonce(None if key is None else f"{key}:{user.id}"))
                first = None
                for body in bodies:
                    msg = self._send(cid, body, what=f"DM to {user.username!r}")
                    first = first or MessageRef(platform=PLATFORM, id=str(msg["id"]), thread_id=cid)
                if first is not None:
                    delivered.append(first)
            except DiscordAPIError as exc:
                if exc.code != 50007:
                    raise
                refused.append(user.id)
                log.info("discord: %s does not accept DMs from the bot", user.username)
        if refused:
            raise CannotDirectMessage(
                f"Discord: cannot DM {len(refused)} of {len(names)} recipient(s) (not in the server, or code 50007: "
                f"they do not accept DMs from this server's members or blocked the bot): {', '.join(refused)}; "
                "mention them in the working group channel instead",
                user_ids=tuple(refused),
                delivered=tuple(delivered),
            )
        return delivered[0]

    def direct_message_with_button(
        self, *, user: UserRef, title: str, text: str, button_label: str, custom_id: str, key: str | None = None
    ) -> MessageRef:
        """DM ``user`` one message (``title`` in bold, then ``text``) with one button; its press
        comes back as a ``component`` interaction carrying ``custom_id``.

        ``user.id`` is used when set (no lookup), else ``user.username`` is found first. The text
        is cut to fit one message (the button belongs to that message). With ``key`` the nonce is
        derived from it, so a retry or re-run within Discord's nonce window returns the first DM.
        Raises ``CannotDirectMessage`` (code 50007) when the member does not accept DMs.
        """
        label = re.sub(r"\s+", " ", button_label).strip()[:80]
        if not label:
            raise ValueError("a button needs a label")
        if not custom_id or len(custom_id) > 100:
            raise ValueError("a button custom_id has 1 to 100 characters")
        target = user if user.id else self.find_user(user.username)
        content = f"**{title.strip()}**\n{text.strip()}" if title.strip() else text.strip()
        if len(content) > payloads.MESSAGE_LIMIT:
            content = content[: payloads.MESSAGE_LIMIT - 1] + "…"
        button = {"type": 2, "style": 3, "label": label, "custom_id": custom_id}  # style 3: green
        body = payloads.message(
            content,
            components=[{"type": 1, "components": [button]}],
            nonce=_nonce(None if key is None else f"{key}:{target.id}"),
        )
        cid = self._dm_channel(target.id)
        try:
            msg = self._send(cid, body, what=f"DM to {target.username or target.id!r}")
        except DiscordAPIError as exc:
            if exc.code != 50007:
                raise
            raise CannotDirectMessage(
                f"Discord: cannot DM {target.id} (code 50007: they do not accept DMs from this server's members "
                "or blocked the bot)",
                user_ids=(target.id,),
            ) from None
        return MessageRef(platform=PLATFORM, id=str(msg["id"]), thread_id=cid)

    def private_thread(
        self,
        *,
        channel: str | None,
        name: str,
        members: Sequence[UserRef] = (),
        text: str | None = None,
        reason: str | None = None,
    ) -> MessageRef:
        """Open a private thread (type 12, not invitable) in ``channel``, add ``members`` to it and
        post ``text`` in it. The bot needs Create Private Threads."""
        cid = self.channel_id(channel)
        label = re.sub(r"\s+", " ", name).strip()[:100]
        if not label:
            raise ValueError("a thread needs a name")
        what = f"private thread {label!r} in channel {cid}"
        data = self.client.json(
            self.client.request(
                "POST",
                "/channels/{channel_id}/threads",
                path={"channel_id": cid},
                json_body={"name": label, "type": 12, "invitable": False, "auto_archive_duration": 10080},
                reason=reason,
                ok=(200, 201),
                what=what,
            ),
            what=what,
        )
        thread_id = str(data["id"])
        for member in members:
            self.client.request(
                "PUT",
                "/channels/{channel_id}/thread-members/{user_id}",
                path={"channel_id": thread_id, "user_id": member.id},
                ok=(204,),
                what=f"add {member.username!r} to thread {thread_id}",
                idempotent=True,
            )
        first = None
        if text:
            first = self.send_text(channel=thread_id, text=text)[0]
        return MessageRef(
            platform=PLATFORM, id=first.id if first else thread_id, thread_id=thread_id, url=self._url(thread_id)
        )

    # ----------------------------------------------------------------------------------------
    # BallotBox

    def open_ballot_for(self, request: BallotRequest) -> Ballot:
        """Post a ballot message (the question, ``text``, one button per option, ``custom_id`` =
        ``cfb:<ballot>:<option>``).

        Votes arrive as interactions (``accept_vote``); ``voters_group`` names the role allowed to
        vote. Every ballot here is ``secret`` already: a press is answered to the voter only
        (ephemeral) and the open message shows no counts, so the flag changes nothing.
        """
        labels = [re.sub(r"\s+", " ", o).strip() for o in request.options]
        if len(labels) < 2 or len(set(labels)) != len(labels) or any(not o for o in labels):
            raise ValueError("a ballot needs at least two distinct, non-empty options")
        ballot_id = (
            hashlib.sha256(request.key.encode("utf-8")).hexdigest()[:16] if request.key else uuid.uuid4().hex[:16]
        )
        role_id = self.role_id(Role.group(request.voters_group)) if request.voters_group else None
        cid = self.channel_id(request.channel)
        note = f"Members of {request.voters_group} may vote." if request.voters_group else None
        body = payloads.ballot_message(
            ballot_id=ballot_id,
            question=request.question,
            options=labels,
            closes_at=request.closes_at,
            voters_note=note,
            nonce=_nonce(request.key or ballot_id) + ".b",
            text=request.text,
        )
        msg = self._send(cid, body, what=f"ballot in channel {cid}")
        record = BallotRecord(
            id=ballot_id,
            channel_id=cid,
            message_id=str(msg["id"]),
            question=request.question.strip(),
            options=tuple(labels),
            voters_role_id=role_id,
            voters_role_name=request.voters_group,
            closes_at=request.closes_at,
        )
        self.votes.add_ballot(record)
        return self._ballot(record)

    def _ballot(self, record: BallotRecord) -> Ballot:
        return Ballot(
            platform=PLATFORM,
            id=record.id,
            question=record.question,
            options=tuple(BallotOption(id=str(i), label=label) for i, label in enumerate(record.options)),
            is_open=record.is_open,
            message=MessageRef(
                platform=PLATFORM,
                id=record.message_id,
                thread_id=record.channel_id,
                url=self._url(record.channel_id, record.message_id),
            ),
            closes_at=record.closes_at,
        )

    def _record(self, ballot: Ballot) -> BallotRecord:
        record = self.votes.ballot(ballot.id)
        if record is not None:
            return record
        if ballot.message is None:
            raise FatalError(f"Discord ballot {ballot.id} is unknown to the vote store", platform=PLATFORM)
        record = BallotRecord(
            id=ballot.id,
            channel_id=ballot.message.thread_id,
            message_id=ballot.message.id,
            question=ballot.question,
            options=tuple(o.label for o in ballot.options),
            closes_at=ballot.closes_at,
            is_open=ballot.is_open,
        )
        self.votes.add_ballot(record)
        return record

    def read_votes(self, ballot: Ballot) -> list[Vote]:
        """Every voter's current vote, from the vote store."""
        return [
            Vote(voter=UserRef(platform=PLATFORM, id=v.voter_id, username=v.voter_username), option_id=v.option_id)
            for v in self.votes.votes(ballot.id)
        ]

    def close_ballot(self, ballot: Ballot, *, result: str | None = None) -> Ballot:
        """Refuse further votes and edit the message to show the result, its buttons removed:
        ``result`` (the tally merged across platforms) when given, else the vote store's counts."""
        record = self._record(ballot)
        self.votes.close(ballot.id)
        counts = [0] * len(record.options)
        for vote in self.votes.votes(ballot.id):
            if vote.option_id.isdigit() and int(vote.option_id) < len(counts):
                counts[int(vote.option_id)] += 1
        body = payloads.ballot_result_message(
            ballot_id=record.id, question=record.question, options=record.options, counts=counts, result=result
        )
        what = f"result of ballot {record.id}"
        self.client.request(
            "PATCH",
            "/channels/{channel_id}/messages/{message_id}",
            path={"channel_id": record.channel_id, "message_id": record.message_id},
            json_body=body,
            what=what,
            idempotent=True,  # the same edit twice leaves the same message
        )
        return self._ballot(replace(record, is_open=False))

    def accept_vote(self, event: InboundEvent) -> VoteReceipt:
        """Record a ballot button press (``kind == "ballot_vote"``) and build the ephemeral answer.

        Refused (with the reason in the answer) when the ballot is unknown or closed, its closing
        time passed, the option does not exist, or the voter lacks the ballot's voters role.
        """
        attrs = event.attributes
        ballot_id, option_id = attrs.get("ballot_id", ""), attrs.get("option_id", "")

        def refuse(reason: str) -> VoteReceipt:
            return VoteReceipt(
                accepted=False,
                changed=False,
                ballot_id=ballot_id,
                option_id=option_id,
                reason=reason,
                response=payloads.vote_confirmation(option_label="", accepted=False, reason=reason),
            )

        if event.kind != "ballot_vote":
            raise ValueError("accept_vote takes ballot_vote events")
        record = self.votes.ballot(ballot_id)
        if record is None:
            return refuse("this ballot is not known here")
        if not record.is_open or (record.closes_at is not None and self._now() >= record.closes_at):
            return refuse("this ballot is closed")
        if not option_id.isdigit() or int(option_id) >= len(record.options):
            return refuse("that option does not exist")
        if record.voters_role_id:
            roles = set(filter(None, attrs.get("member_roles", "").split(",")))
            if record.voters_role_id not in roles:
                return refuse(f"only members of {record.voters_role_name or 'the voters role'} may vote")
        if not attrs.get("user_id"):
            return refuse("the vote carries no voter")
        stored, previous = self.votes.record(
            VoteRecord(
                ballot_id=ballot_id,
                voter_id=attrs["user_id"],
                voter_username=attrs.get("username", ""),
                option_id=option_id,
                interaction_id=attrs.get("interaction_id") or "0",
            )
        )
        current = self.votes.votes(ballot_id)
        mine = next((v for v in current if v.voter_id == attrs["user_id"]), None)
        label = record.options[int(mine.option_id if mine else option_id)]
        changed = stored and previous is not None and previous.option_id != option_id
        return VoteReceipt(
            accepted=True,
            changed=changed,
            ballot_id=ballot_id,
            option_id=option_id,
            reason="",
            response=payloads.vote_confirmation(option_label=label, changed=changed),
        )

    # ----------------------------------------------------------------------------------------
    # Calendar

    def _event(self, data: Mapping[str, Any]) -> ScheduledEvent:
        return ScheduledEvent(
            platform=PLATFORM,
            id=str(data["id"]),
            title=str(data.get("name", "")),
            starts_at=_ts(data.get("scheduled_start_time")) or datetime.fromtimestamp(0, UTC),
            ends_at=_ts(data.get("scheduled_end_time")),
            location=(data.get("entity_metadata") or {}).get("location"),
        )

    def list_events(self) -> list[ScheduledEvent]:
        """Scheduled and active events of the guild."""
        rows = self.client.json(
            self.client.request(
                "GET", "/guilds/{guild_id}/scheduled-events", path=self.guild, what="Discord scheduled events"
            ),
            what="Discord scheduled events",
        )
        return [self._event(r) for r in rows]

    def schedule_event_for(self, request: EventRequest) -> ScheduledEvent:
        """Create an external event (entity type 3, guild only). An event with the same title and
        start already there is returned instead of a second one."""
        name = re.sub(r"\s+", " ", request.title).strip()
        if not 1 <= len(name) <= 100:
            raise ValueError("an event title holds 1 to 100 characters")
        if request.starts_at.tzinfo is None or request.ends_at.tzinfo is None:
            raise ValueError("event times must be timezone-aware")
        if request.ends_at <= request.starts_at:
            raise ValueError("an event must end after it starts")
        if len(request.description) > 1000:
            raise ValueError("an event description holds at most 1000 characters")
        where = (request.location or "To be announced").strip()[:100]
        wanted_start = request.starts_at.astimezone(UTC).replace(microsecond=0)
        found: dict[str, ScheduledEvent] = {}

        def is_done() -> bool:
            for event in self.list_events():
                if event.title == name and event.starts_at.replace(microsecond=0) == wanted_start:
                    found["event"] = event
                    return True
            return False

        def write() -> ScheduledEvent:
            body = {
                "name": name,
                "description": request.description or None,
                "privacy_level": GUILD_ONLY,
                "entity_type": EXTERNAL,
                "scheduled_start_time": request.starts_at.astimezone(UTC).isoformat(),
                "scheduled_end_time": request.ends_at.astimezone(UTC).isoformat(),
                "entity_metadata": {"location": where},
            }
            what = f"scheduled event {name!r}"
            return self._event(
                self.client.json(
                    self.client.request(
                        "POST",
                        "/guilds/{guild_id}/scheduled-events",
                        path=self.guild,
                        json_body=body,
                        reason=request.reason,
                        what=what,
                    ),
                    what=what,
                )
            )

        _, created = self.client.policy.ensure(is_done=is_done, write=write, what=f"schedule {name!r}")
        return created if created is not None else found["event"]

    # ----------------------------------------------------------------------------------------
    # Inbound (interactions)

    @property
    def instance(self) -> str:
        """The guild id (``Instanced``): Discord ids are global, the guild says whose."""
        return self.settings.guild_id

    def verify(self, *, headers: Mapping[str, str], body: bytes) -> InboundEvent:
        """Verify an interaction's Ed25519 signature and parse it (``InvalidSignature`` otherwise)."""
        return self.verifier.verify(headers=headers, body=body)

    def answer(self, event: InboundEvent) -> dict[str, Any]:
        """The immediate answer to a verified interaction (it must reach Discord within 3 s).

        PING → PONG; ``/apply`` → the R-APP-1 modal; a ballot button → the vote is recorded and
        the voter gets an ephemeral confirmation; ``/idea``, ``/optin``, ``/leave``, the
        submitted application and other buttons → a deferred ephemeral answer that the flow
        doing the work edits. Not a deferred update (type 6) for buttons: its "original" is the
        message the button is on, which the answer would then overwrite.
        """
        if event.kind == "ping":
            return payloads.pong()
        if event.kind == "apply":
            return payloads.apply_modal()
        if event.kind == "ballot_vote":
            return self.accept_vote(event).response
        if event.kind in ("idea", "optin", "leave", "apply_submitted", "component"):
            return payloads.deferred(ephemeral=True)
        if event.kind == "autocomplete":
            return {"type": 8, "data": {"choices": []}}
        return payloads.ephemeral("This command is not known to the working group's bot.")

    def handle_interaction(self, *, headers: Mapping[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        """Verify and answer in one step: ``(HTTP status, JSON body)``; 401 for a bad signature.

        A reference for the gateway, which also stores the event before answering.
        """
        try:
            event = self.verify(headers=headers, body=body)
        except InvalidSignature as exc:
            return (exc.status or 401), {
                "error": "invalid request signature" if exc.status in (None, 401) else "invalid interaction"
            }
        return 200, self.answer(event)

    def _webhook(self, event_or_token: InboundEvent | str) -> dict[str, str]:
        token = (
            event_or_token
            if isinstance(event_or_token, str)
            else event_or_token.attributes.get("interaction_token", "")
        )
        if not token:
            raise ValueError("the interaction token is missing")
        return {"application_id": self.settings.application_id, "interaction_token": token}

    def followup(self, event: InboundEvent | str, text: str, *, ephemeral: bool = True) -> list[MessageRef]:
        """Send ``text`` after a deferred answer (``POST /webhooks/{app}/{token}``), split at 2000
        characters; the interaction token is valid for 15 minutes."""
        refs = []
        for body in payloads.followup(text, ephemeral=ephemeral):
            with _answered_in_place():
                response = self.client.request(
                    "POST",
                    "/webhooks/{application_id}/{interaction_token}",
                    path=self._webhook(event),
                    json_body=body,
                    auth=False,
                    what="interaction follow-up",
                )
            msg = self.client.json(response, what="interaction follow-up")
            refs.append(MessageRef(platform=PLATFORM, id=str(msg["id"]), thread_id=str(msg.get("channel_id", ""))))
        return refs

    def edit_original(self, event: InboundEvent | str, text: str) -> None:
        """Replace the deferred "thinking…" answer with ``text`` (at most 2000 characters);
        ``AnswerElsewhere`` when the deferral never reached Discord or the token expired."""
        with _answered_in_place():
            self.client.request(
                "PATCH",
                "/webhooks/{application_id}/{interaction_token}/messages/@original",
                path=self._webhook(event),
                json_body=payloads.message(text),
                auth=False,
                what="interaction answer edit",
                idempotent=True,
            )

    def callback(self, event: InboundEvent, response: Mapping[str, Any]) -> None:
        """Send the initial answer out of band (``POST /interactions/{id}/{token}/callback``)."""
        self.client.request(
            "POST",
            "/interactions/{interaction_id}/{interaction_token}/callback",
            path={
                "interaction_id": event.attributes["interaction_id"],
                "interaction_token": event.attributes["interaction_token"],
            },
            json_body=dict(response),
            ok=(200, 204),
            auth=False,
            what="interaction callback",
        )

    # ----------------------------------------------------------------------------------------
    # ModerationLog (the guild audit log; needs VIEW_AUDIT_LOG)

    def moderation_entries(self, *, after: str | None, limit: int = _AUDIT_PAGE) -> list[ModerationEntry]:
        """Audit-log entries newer than ``after``, oldest first (``GET /guilds/{id}/audit-logs``
        with only ``after`` answers in ascending order; ``after=0`` starts at the oldest kept)."""
        if not 1 <= limit <= _AUDIT_PAGE:
            raise ValueError(f"limit must be 1..{_AUDIT_PAGE}")
        data = self.client.json(
            self.client.request(
                "GET",
                "/guilds/{guild_id}/audit-logs",
                path=self.guild,
                params={"after": after or "0", "limit": limit},
                what="Discord audit log",
            ),
            what="Discord audit log",
        )
        users = {str(u["id"]): u for u in data.get("users") or ()}
        entries = [self._audit_entry(e, users) for e in data.get("audit_log_entries") or ()]
        # Sorted here too: the order is the contract, whatever the server did.
        return sorted(entries, key=lambda e: int(e.id))

    def _audit_entry(self, e: Mapping[str, Any], users: Mapping[str, Mapping[str, Any]]) -> ModerationEntry:
        def ref(uid: Any) -> UserRef | None:
            if not uid:
                return None
            user = users.get(str(uid)) or {}
            return UserRef(
                platform=PLATFORM,
                id=str(uid),
                username=str(user.get("username", "")),
                display_name=user.get("global_name") or None,
            )

        action_type = int(e.get("action_type", 0))
        changes: dict[str, Any] = {
            str(c.get("key")): {"old": c.get("old_value"), "new": c.get("new_value")} for c in e.get("changes") or ()
        }
        if e.get("options"):
            changes["options"] = dict(e["options"])
        target = ref(e.get("target_id")) if action_type in _USER_TARGETS else None
        link = f"https://discord.com/users/{target.id}" if target else None
        channel = (e.get("options") or {}).get("channel_id")
        if channel:
            link = self._url(str(channel))
        return ModerationEntry(
            platform=PLATFORM,
            id=str(e["id"]),
            kind=AUDIT_ACTION_NAMES.get(action_type, str(action_type)),
            occurred_at=time_of(e["id"]),
            target=target,
            moderator=ref(e.get("user_id")),
            reason=e.get("reason") or None,
            changes=changes,
            link=link,
            raw=dict(e),
        )

    def post_with_buttons(
        self, *, channel: str, text: str, buttons: Sequence[tuple[str, str]], key: str | None = None
    ) -> MessageRef:
        """One message in ``channel`` (cut to 2000 characters) with 1 to 5 buttons, each
        ``(label, custom_id)``; a press comes back as a ``component`` interaction carrying its
        ``custom_id``. With ``key`` a re-send within Discord's nonce window returns the first."""
        if not 1 <= len(buttons) <= 5:
            raise ValueError("a message row holds 1 to 5 buttons")
        row = []
        for i, (label, custom_id) in enumerate(buttons):
            label = re.sub(r"\s+", " ", label).strip()[:80]
            if not label or not custom_id or len(custom_id) > 100:
                raise ValueError("a button needs a label and a custom_id of 1 to 100 characters")
            row.append({"type": 2, "style": 1 if i == 0 else 2, "label": label, "custom_id": custom_id})
        content = text.strip()
        if len(content) > payloads.MESSAGE_LIMIT:
            content = content[: payloads.MESSAGE_LIMIT - 1] + "…"
        cid = self.channel_id(channel)
        msg = self._send(
            cid,
            payloads.message(content, components=[{"type": 1, "components": row}], nonce=_nonce(key)),
            what=f"message in channel {cid}",
        )
        return MessageRef(platform=PLATFORM, id=str(msg["id"]), thread_id=cid, url=self._url(cid, msg["id"]))

    def post_components(
        self, *, channel: str, content: str, components: Sequence[Mapping[str, Any]], key: str | None = None
    ) -> MessageRef:
        """One message with these component rows (at most 5:
        https://discord.com/developers/docs/components/reference#action-row); ``content`` is cut
        to 2000 characters. With ``key`` a re-send within the nonce window returns the first."""
        if len(components) > 5:
            raise ValueError("a Discord message holds at most 5 action rows")
        content = content.strip()
        if len(content) > payloads.MESSAGE_LIMIT:
            content = content[: payloads.MESSAGE_LIMIT - 1] + "…"
        cid = self.channel_id(channel)
        msg = self._send(
            cid,
            payloads.message(content, components=[dict(c) for c in components] or None, nonce=_nonce(key)),
            what=f"message in channel {cid}",
        )
        return MessageRef(platform=PLATFORM, id=str(msg["id"]), thread_id=cid, url=self._url(cid, msg["id"]))

    def publish_tally(self, ballot_id: str, counts: Sequence[int]) -> None:
        """Show the ledger's final tally on ``ballot_id`` when it closes (``TallyVoteStore``:
        the WG's votes are cast in the ledger, not in this connector's store)."""
        if not isinstance(self.votes, TallyVoteStore):
            self.votes = TallyVoteStore(self.votes)
        self.votes.publish(str(ballot_id), counts)

    def working_group_space(self) -> tuple[str, str]:
        """The WG channel (settings, else ``wg-private``) and the ``wg-member`` role."""
        return self.settings.wg_channel_id or "wg-private", _WG_MEMBER

    def thread_url(self, thread_id: str, *, slug: str = "") -> str | None:
        """The channel or thread ``thread_id`` in the guild."""
        return self._url(str(thread_id)) if thread_id else None

    def event_url(self, event_id: str) -> str | None:
        """The guild's scheduled event ``event_id``."""
        return f"https://discord.com/events/{self.settings.guild_id}/{event_id}" if event_id else None

    # ----------------------------------------------------------------------------------------
    # Guides (R-GUIDE): messages in the resources channel, the welcome screen

    GUIDES_CHANNEL = "resources"
    GUIDE_MAX_PIECES = 4  # more messages than this and a guide is linked (its Forum topic)

    def guide_format(self) -> tuple[int, int, bool]:
        """2000 characters a message, 4 messages a guide, no title of its own (``GuideShelf``)."""
        return payloads.MESSAGE_LIMIT, self.GUIDE_MAX_PIECES, True

    def shelve_guide(
        self, *, channel: str | None, title: str, pieces: Sequence[str], placed: Sequence[MessageRef] = (), key: str
    ) -> list[MessageRef]:
        """One message per piece in ``channel`` (default ``resources``): placed ones edited in
        place (``PATCH``), missing ones posted (nonce from ``key``), extra ones told they are no
        longer used. ``title`` is in the first piece already (``guide_format``)."""
        cid = self.channel_id(channel or self.GUIDES_CHANNEL)
        refs: list[MessageRef] = []
        for i in range(max(len(pieces), len(placed))):
            text = pieces[i] if i < len(pieces) else f"(This part of \u201c{title[:80]}\u201d is no longer used.)"
            if i < len(placed):
                old = placed[i]
                self.edit_message(channel_id=old.thread_id or cid, message_id=old.id, text=text)
                refs.append(old)
                continue
            body = payloads.message(text, nonce=f"{_nonce(key)[:21]}{i:02d}")
            msg = self._send(cid, body, what=f"guide message in channel {cid}")
            refs.append(MessageRef(platform=PLATFORM, id=str(msg["id"]), thread_id=cid, url=self._url(cid, msg["id"])))
        return refs

    def set_welcome(self, *, summary: str, guides: Sequence[tuple[str, str]], channel: str | None = None) -> str:
        """The server's welcome screen (``PATCH /guilds/{id}/welcome-screen``): ``summary`` and
        the guides channel; re-sending the same body leaves the same screen. Needs Manage Server.
        https://discord.com/developers/docs/resources/guild#modify-guild-welcome-screen"""
        cid = self.channel_id(channel or self.GUIDES_CHANNEL)
        body = payloads.welcome_screen(summary, [(cid, "Community guides: start here")])
        with _needing("the welcome screen", "Manage Server"):
            self.client.request(
                "PATCH",
                "/guilds/{guild_id}/welcome-screen",
                path=self.guild,
                json_body=body,
                what="the welcome screen",
                idempotent=True,
            )
        return f"welcome screen of guild {self.settings.guild_id}"

    def keep_onboarding_prompt(
        self, *, title: str, options: Sequence[tuple[str, str]], channel: str | None = None, prompt_id: str = ""
    ) -> OnboardingPrompt:
        """One prompt of the server's onboarding (``OnboardingPrompts``). A PUT replaces every
        prompt, so it reads the onboarding first, keeps every other prompt and setting
        (``payloads.onboarding_update``) and sends nothing when ours shows these options already.
        Needs Manage Server and Manage Roles.
        https://discord.com/developers/docs/resources/guild#modify-guild-onboarding"""
        cid = self.channel_id(channel or self.GUIDES_CHANNEL)
        what = "the server's onboarding"
        current = self.client.json(
            self.client.request("GET", "/guilds/{guild_id}/onboarding", path=self.guild, what=what), what=what
        )
        new_id = snowflake_at(datetime.now(UTC))  # a new prompt's id is the client's to choose
        body, pid = payloads.onboarding_update(
            current, title=title, options=options, channel_id=cid, new_id=new_id, prompt_id=prompt_id
        )
        if body is not None:
            # PUT of a whole state: sending it again leaves the same onboarding.
            with _needing(what, "Manage Server and Manage Roles"):
                self.client.request(
                    "PUT", "/guilds/{guild_id}/onboarding", path=self.guild, json_body=body, what=what, idempotent=True
                )
        where = f"onboarding of guild {self.settings.guild_id}, prompt {title!r}"
        return OnboardingPrompt(id=pid, options=len(options), changed=body is not None, where=where)

    def edit_message_for(self, edit: MessageEdit) -> None:
        """Replace a bot message's text (cut to 2000 characters) and its buttons with
        ``components`` when given; else its buttons are removed unless ``keep_buttons``. Editing
        twice to the same text leaves the same message."""
        content = edit.text.strip()
        if len(content) > payloads.MESSAGE_LIMIT:
            content = content[: payloads.MESSAGE_LIMIT - 1] + "…"
        body = payloads.message(content)
        if edit.components is not None or not edit.keep_buttons:
            body["components"] = [dict(c) for c in edit.components or ()]
        self.client.request(
            "PATCH",
            "/channels/{channel_id}/messages/{message_id}",
            path={"channel_id": edit.channel_id, "message_id": edit.message_id},
            json_body=body,
            what=f"message {edit.message_id}",
            idempotent=True,
        )

    # ----------------------------------------------------------------------------------------
    # RoomReader, RoomWriter: the common room (R-COMMS) polls channels and threads

    def _bot_user_id(self) -> str:
        with self._lock:
            known = self._me_id
        if known:
            return known
        me = self.client.json(
            self.client.request("GET", "/users/@me", what="the bot's account"), what="the bot's account"
        )
        with self._lock:
            self._me_id = str(me["id"])
        return self._me_id

    def room_text_limit(self) -> int:
        """Discord's 2000 characters per message, less the room a conversation's title takes above
        the text in the same message (``**title**`` and a line break; a title is cut to a thread
        name's 100 characters): a copy is one message, which its edit and deletion know."""
        return payloads.MESSAGE_LIMIT - _ROOM_TITLE - 5

    def room_key(self, room: str) -> str:
        """The channel's id."""
        return self.channel_id(room)

    def room_thread(self, *, room: str, message_id: str, name: str) -> str:
        """A thread on the message (its id is the message's)."""
        first = MessageRef(platform=PLATFORM, id=str(message_id), thread_id=self.channel_id(room))
        return self.post_thread_on(first, name=name).thread_id

    def room_messages(self, *, room: str, after: str | None, limit: int = 100) -> list[RoomMessage]:
        """``GET /channels/{id}/messages`` (``after``: the next ``limit``; none: the newest),
        oldest first; system messages (thread created, pins) are left out
        (https://discord.com/developers/docs/resources/message#get-channel-messages)."""
        cid = self.channel_id(room)
        params = {"limit": str(max(1, min(int(limit), 100)))}
        if after:
            params["after"] = str(after)
        what = f"messages of channel {cid}"
        rows = self.client.json(
            self.client.request(
                "GET", "/channels/{channel_id}/messages", path={"channel_id": cid}, params=params, what=what
            ),
            what=what,
        )
        me = self._bot_user_id()
        out = []
        for row in rows or []:
            if int(row.get("type") or 0) not in (0, 19):  # DEFAULT and REPLY carry people's text
                continue
            author = row.get("author") or {}
            if str(author.get("id", "")) != me and not any(row.get(k) for k in _MESSAGE_PARTS):
                # Nothing at all: Discord withholds a person's message from an app without the
                # Message Content intent (https://discord.com/developers/docs/events/gateway#message-content-intent).
                raise FatalError(
                    f"Discord sent the messages of channel {cid} without their text: turn on the Message Content "
                    "Intent (Developer Portal → your application → Bot); `charterflow doctor` checks it",
                    platform=PLATFORM,
                )
            out.append(
                RoomMessage(
                    platform=PLATFORM,
                    id=str(row["id"]),
                    room=cid,
                    author=UserRef(
                        platform=PLATFORM,
                        id=str(author.get("id", "")),
                        username=str(author.get("username", "")),
                        display_name=author.get("global_name") or None,
                    ),
                    text=self._plain(row),
                    created_at=_ts(row.get("timestamp")) or datetime.now(UTC),
                    edited_at=_ts(row.get("edited_timestamp")),
                    attachments=tuple(str(a["url"]) for a in row.get("attachments") or [] if a.get("url")),
                    own=str(author.get("id", "")) == me,
                    url=self._url(cid, str(row["id"])),
                )
            )
        return sorted(out, key=lambda m: int(m.id))

    def _plain(self, row: Mapping[str, Any]) -> str:
        """A read message's text as people see it in Discord: mentions by name (the message's
        ``mentions``), roles and channels by name (read only when the text names one)."""
        content = str(row.get("content") or "")
        users = {str(u.get("id")): str(u.get("username", "")) for u in row.get("mentions") or [] if u.get("id")}
        roles = {rid: str(r.get("name", "")) for rid, r in self.guild_roles().items()} if "<@&" in content else {}
        channels = self._channel_names() if "<#" in content else {}
        return payloads.plain_text(content, users=users, roles=roles, channels=channels)

    def room_post(
        self, *, room: str, text: str, thread_id: str | None = None, title: str | None = None, key: str | None = None
    ) -> MessageRef:
        """A reply in thread ``thread_id``, else a channel message (``title`` in bold first) with a
        thread opened on it for the replies."""
        if thread_id:
            return self.reply(thread_id=thread_id, text=text, key=key)
        if title:
            name = re.sub(r"\s+", " ", title).strip()
            name = name if len(name) <= _ROOM_TITLE else name[: _ROOM_TITLE - 1].rstrip() + "…"
            return self.post(channel=room, title=name, text=text, key=key)
        first = self.send_text(channel=room, text=text, key=key)[0]
        return self.post_thread_on(first, name=text)

    def post_thread_on(self, first: MessageRef, *, name: str) -> MessageRef:
        """Open a thread (named from ``name``) on message ``first``; ``thread_id`` of the result."""
        label = re.sub(r"\s+", " ", name).strip()[:100] or "discussion"
        what = f"thread on message {first.id}"
        try:
            self.client.request(
                "POST",
                "/channels/{channel_id}/messages/{message_id}/threads",
                path={"channel_id": first.thread_id, "message_id": first.id},
                json_body={"name": label, "auto_archive_duration": 10080},
                ok=(200, 201),
                what=what,
                idempotent=True,
            )
        except DiscordAPIError as exc:
            if exc.code != THREAD_ALREADY_CREATED:
                raise
        return replace(first, thread_id=first.id)  # a thread on a message takes the message's id

    def _room_channel(self, room: str, thread_id: str | None, message_id: str) -> str:
        # A conversation's first message sits in the room; its replies in the thread.
        return thread_id if thread_id and thread_id != message_id else self.channel_id(room)

    def room_edit(self, *, room: str, thread_id: str | None, message_id: str, text: str) -> None:
        """Replace a bridged message's text (``PATCH``, idempotent). Discord archives a thread once
        idle and refuses edits in it (50083: only deletions happen there); the thread is
        unarchived first, as a person editing there would
        (https://discord.com/developers/docs/topics/threads#active--archived-threads)."""
        channel = self._room_channel(room, thread_id, message_id)
        if thread_id == message_id:  # a conversation's first copy: its title line stays
            text = f"{self._title_line(channel, message_id)}{text}"
        try:
            self.edit_message(channel_id=channel, message_id=message_id, text=text, keep_buttons=True)
        except DiscordAPIError as exc:
            if exc.code != THREAD_ARCHIVED:
                raise
            self.client.request(
                "PATCH",
                "/channels/{channel_id}",
                path={"channel_id": channel},
                json_body={"archived": False},
                what=f"thread {channel}",
                idempotent=True,
            )
            self.edit_message(channel_id=channel, message_id=message_id, text=text, keep_buttons=True)

    def _title_line(self, channel: str, message_id: str) -> str:
        """The bold title line ``room_post`` put above a conversation's first copy (and its line
        break), read back from the message; ``""`` when it has none."""
        what = f"message {message_id}"
        row = self.client.json(
            self.client.request(
                "GET",
                "/channels/{channel_id}/messages/{message_id}",
                path={"channel_id": channel, "message_id": message_id},
                what=what,
            ),
            what=what,
        )
        first = str(row.get("content") or "").split("\n", 1)[0]
        return f"{first}\n" if _TITLE_LINE.fullmatch(first) else ""

    def room_delete(self, *, room: str, thread_id: str | None, message_id: str) -> None:
        """``DELETE /channels/{id}/messages/{id}``; a message already gone (404) is fine."""
        self.client.request(
            "DELETE",
            "/channels/{channel_id}/messages/{message_id}",
            path={"channel_id": self._room_channel(room, thread_id, message_id), "message_id": message_id},
            ok=(204, 404),
            what=f"message {message_id}",
            idempotent=True,
        )

    def register_commands(self, *, scope: str = "guild") -> list[dict[str, Any]]:
        """Register ``/apply``, ``/idea``, ``/optin`` and ``/leave`` (bulk overwrite, so re-running
        is safe). ``scope="guild"`` (instant, this guild only) or ``"global"`` (every guild)."""
        if scope not in ("guild", "global"):
            raise ValueError("scope is 'guild' or 'global'")
        app = {"application_id": self.settings.application_id}
        template = "/applications/{application_id}/commands"
        if scope == "guild":
            app.update(self.guild)
            template = "/applications/{application_id}/guilds/{guild_id}/commands"
        rows = self.client.json(
            self.client.request(
                "PUT",
                template,
                path=app,
                json_body=[dict(c) for c in payloads.COMMANDS],
                what="slash command registration",
                idempotent=True,
            ),
            what="slash command registration",
        )
        return list(rows or [])
