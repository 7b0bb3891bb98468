"""The Matrix connector: Directory, RoleManager, Messenger, BallotBox, moderation log and the
appservice push, against a homeserver's client-server API and Synapse's admin API.

The community is a space with child rooms; the working group and the moderators have their own
rooms. Rights are power levels (100 admin, 50 moderator) in the space and each child room. The
bot must outrank the admins, since nobody may lower a power level equal to their own
(https://spec.matrix.org/v1.11/client-server-api/#mroompower_levels): it creates the rooms, and a
room version 12 creator outranks every level (MSC4289); in an older room it needs 150. Every message is sent with
a transaction id derived from its key, so a resend returns the first event (the homeserver keeps
the id: https://spec.matrix.org/v1.11/client-server-api/#transaction-identifiers); state writes
re-read the room first (``HttpPolicy.ensure``).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

import httpx

from charterflow_matrix import payloads
from charterflow_matrix.client import PLATFORM, MatrixClient, event_filter, log, q
from charterflow_matrix.guides import BOT_POWER, MatrixGuides
from charterflow_matrix.inbound import AppserviceVerifier
from charterflow_matrix.rooms import MatrixRooms
from charterflow_matrix.safety import MatrixSafety
from charterflow_matrix.settings import MatrixSettings
from connectors.base import (
    COMMUNITY_CAPABILITIES,
    Activity,
    Ballot,
    BallotBox,
    BallotOption,
    BallotRequest,
    Capability,
    ChangeStatus,
    ClientConnector,
    InboundEvent,
    MessageRef,
    ModerationEntry,
    Role,
    RoleChange,
    RoleKind,
    UserRef,
    Vote,
    audit_reason,
)
from connectors.errors import FatalError
from connectors.http import Clock, RetryPolicy, WriteOutcome

__all__ = ["ADMIN_LEVEL", "BOT_LEVEL", "MODERATOR_LEVEL", "SERVER_ADMINS", "MatrixConnector"]

ADMIN_LEVEL, MODERATOR_LEVEL, BOT_LEVEL = 100, 50, BOT_POWER
SERVER_ADMINS = "server-admins"  # Role.group(SERVER_ADMINS): Synapse's server admin flag
REASON_KEY = "org.charterflow.reason"  # the audit reason, kept in the power-levels event itself
_PAGE = 100
_MAX_PAGES = 50


def _ms(value: Any) -> datetime | None:
    return datetime.fromtimestamp(value / 1000, tz=UTC) if isinstance(value, (int, float)) and value else None


class MatrixConnector(MatrixRooms, MatrixGuides, MatrixSafety, ClientConnector[MatrixClient], BallotBox):
    """Talks to one homeserver as its bot (a server admin). ``MatrixConnector.from_env()`` or
    ``MatrixConnector(settings=…)``; ``transport``, ``clock`` and ``retry`` are injectable."""

    name: ClassVar[str] = "matrix"
    # Not INBOUND: Synapse authenticates its pushes with a bearer token (hs_token), which signs
    # no body, so the conformance suite's "one changed byte is refused" cannot hold. The push
    # arrives through the plugin's gateway hook (``charterflow_matrix.hook``), which calls
    # ``verify_transaction``.
    capabilities: ClassVar[frozenset[Capability]] = COMMUNITY_CAPABILITIES
    docs_url: ClassVar[str] = "https://spec.matrix.org/latest/client-server-api/"
    settings_class: ClassVar[type[MatrixSettings]] = MatrixSettings

    def __init__(
        self,
        *,
        settings: MatrixSettings,
        transport: httpx.BaseTransport | None = None,
        clock: Clock | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.settings = settings
        self.client = MatrixClient(
            base_url=settings.homeserver_url,
            token=settings.access_token,
            timeout=settings.timeout,
            max_retries=settings.max_retries,
            rate_limit=settings.rate_limit,
            transport=transport,
            clock=clock,
            retry=retry,
            extra_secrets=(settings.hs_token,),
        )
        self._lock = threading.Lock()
        self._rooms: dict[str, str] = {}
        self._me: str | None = None

    def __repr__(self) -> str:
        return f"MatrixConnector({self.settings.homeserver_url!r}, server={self.settings.server_name!r})"

    @property
    def instance(self) -> str:
        """The homeserver's name (``Instanced``): what every user and room id ends with."""
        return self.settings.server_name

    @classmethod
    def sandbox(cls, *, seed: Mapping[str, Any] | None = None, **options: Any) -> Any:
        """A ``MatrixSandbox``: a real Synapse on loopback (shared by the process) with a fresh
        community seeded in it, served through a pass-through (fault-injecting) proxy."""
        from charterflow_matrix.sandbox import MatrixSandbox  # lazy: cycle: the sandbox imports this module

        return MatrixSandbox(seed=seed, **options)

    # ----------------------------------------------------------------------------------------
    # ids and rooms

    @property
    def me(self) -> str:
        """The bot's user id."""
        if self._me is None:
            self._me = str(self.client.get("/_matrix/client/v3/account/whoami", what="whoami")["user_id"])
        return self._me

    def user_id(self, username: str) -> str:
        """``@name:server`` for a localpart (a full user id is kept)."""
        name = username.strip()
        return name if name.startswith("@") else f"@{name.lower()}:{self.settings.server_name}"

    def alias(self, channel: str) -> str:
        """The full alias of a channel name."""
        return (
            channel
            if channel.startswith("#")
            else f"#{self.settings.alias_prefix}{channel}:{self.settings.server_name}"
        )

    def room_id(self, channel: str) -> str:
        """The room id of a channel (alias localpart, full alias or room id); ``FatalError`` when
        no such room."""
        if channel.startswith("!"):
            return channel
        with self._lock:
            if channel in self._rooms:
                return self._rooms[channel]
        alias = self.alias(channel)
        data = self.client.get(f"/_matrix/client/v3/directory/room/{q(alias)}", what=f"room {alias}")
        with self._lock:
            self._rooms[channel] = str(data["room_id"])
        return self._rooms[channel]

    def space_children(self) -> list[str]:
        """Every child room of the space (``m.space.child`` state with a ``via``: one without is
        no child, https://spec.matrix.org/v1.11/client-server-api/#mspacechild), joined or not."""
        space = self.room_id(self.settings.space)
        state = self.client.get(f"/_matrix/client/v3/rooms/{q(space)}/state", what="the space's state")
        return sorted(
            e["state_key"] for e in state if e.get("type") == "m.space.child" and e.get("content", {}).get("via")
        )

    def community_rooms(self) -> list[str]:
        """The space and the child rooms the bot is in, space first. A space someone else runs
        may hold rooms the bot never joined (on this server or another): their state answers 403
        to a non-member, so they are left out (``doctor`` names them) instead of failing every
        role change."""
        space = self.room_id(self.settings.space)
        joined = set(self.client.get("/_matrix/client/v3/joined_rooms", what="the bot's rooms").get("joined_rooms", []))
        children = self.space_children()
        outside = [c for c in children if c not in joined]
        if outside:
            log.warning("matrix: the bot is not in %d rooms of the space (%s…): left out", len(outside), outside[0])
        return [space, *(c for c in children if c in joined)]

    def place_links(self) -> list[tuple[str, str]]:
        """``PlaceLinks``: the space, the WG's room and the moderators' room as matrix.to links,
        which open in any Matrix client (https://spec.matrix.org/v1.11/appendices/#matrixto-navigation)."""
        s = self.settings
        return [
            (self.alias(name), f"https://matrix.to/#/{q(self.alias(name))}")
            for name in dict.fromkeys((s.space, s.wg_room, s.moderators_room))
        ]

    def _platform_account(self, user_id: str) -> bool:
        return user_id in (self.me, self.user_id(self.settings.appservice_sender))

    def _ref(self, user_id: str, display: str | None = None) -> UserRef:
        localpart = user_id[1:].split(":", 1)[0] if user_id.startswith("@") else user_id
        username = localpart if user_id.endswith(f":{self.settings.server_name}") else user_id
        return UserRef(
            platform=PLATFORM,
            id=user_id,
            username=username,
            display_name=display or None,
            platform_account=self._platform_account(user_id),
        )

    # ----------------------------------------------------------------------------------------
    # Directory

    def _admin_user(self, user_id: str) -> dict[str, Any]:
        data = self.client.get(f"/_synapse/admin/v2/users/{q(user_id)}", what=f"user {user_id}", missing_ok=True)
        if not data:
            raise FatalError(f"matrix: no user {user_id!r} on {self.instance}", platform=PLATFORM, status=404)
        return data

    def _local(self, user_id: str) -> bool:
        return user_id.endswith(f":{self.settings.server_name}")

    def _remote_user(self, user_id: str) -> UserRef:
        """A member from another server: Synapse's admin API knows only local users ("Can only
        look up local users", synapse/rest/admin/users.py), so its profile is read over
        federation (https://spec.matrix.org/v1.11/client-server-api/#get_matrixclientv3profileuserid)."""
        path = f"/_matrix/client/v3/profile/{q(user_id)}"
        data = self.client.get(path, what=f"profile of {user_id}", missing_ok=True)
        if not data:
            raise FatalError(f"matrix: no user {user_id!r} (its server knows none)", platform=PLATFORM, status=404)
        return self._ref(user_id, data.get("displayname"))

    def find_user(self, username: str) -> UserRef:
        """The account ``username`` (localpart or ``@user:server``, on this server or another);
        ``FatalError`` naming it."""
        user_id = self.user_id(username)
        if not self._local(user_id):
            return self._remote_user(user_id)
        try:
            data = self._admin_user(user_id)
        except FatalError as exc:
            raise FatalError(
                f"matrix: no user {username!r} on {self.instance}", platform=PLATFORM, status=exc.status
            ) from None
        if data.get("deactivated"):
            raise FatalError(f"matrix: user {username!r} is deactivated", platform=PLATFORM, status=404)
        return self._ref(user_id, data.get("displayname"))

    def activity(self, user: UserRef) -> Activity:
        """Account creation and last seen from the admin API; the last message from the
        community rooms (the admin room-messages API, filtered by sender)."""
        if not self._local(user.id):
            raise FatalError(
                f"matrix: {user.id} is on another server; only its own server knows when it was"
                " created and last seen (Synapse's admin API reads local users only)",
                platform=PLATFORM,
                status=400,
            )
        data = self._admin_user(user.id)
        created = datetime.fromtimestamp(int(data["creation_ts"]), tz=UTC)  # seconds, unlike the rest
        last_posted = None
        for room in self.community_rooms():
            page = self.client.get(
                f"/_synapse/admin/v1/rooms/{q(room)}/messages",
                what=f"{user.username}'s messages",
                params={
                    "dir": "b",
                    "limit": 1,
                    "filter": event_filter(senders=[user.id], types=["m.room.message", *payloads.POLL_START_TYPES]),
                },
            )
            for event in page.get("chunk", []):
                at = _ms(event.get("origin_server_ts"))
                if at and (last_posted is None or at > last_posted):
                    last_posted = at
        return Activity(
            user=user, created_at=created, last_seen_at=_ms(data.get("last_seen_ts")), last_posted_at=last_posted
        )

    def list_staff(self) -> list[UserRef]:
        """Moderators and admins of the space, and the server's admins."""
        found = {
            uid: self._ref(uid)
            for uid, level in self._levels(self.community_rooms()[0]).items()
            if level >= MODERATOR_LEVEL
        }
        for uid in self._server_admins():
            found.setdefault(uid, self._ref(uid))
        return sorted(found.values(), key=lambda u: u.id)

    def _server_admins(self) -> list[str]:
        data = self.client.get(
            "/_synapse/admin/v2/users",
            what="server admins",
            params={"admins": "true", "limit": 1000, "deactivated": "false"},
        )
        return [u["name"] for u in data.get("users", [])]

    # ----------------------------------------------------------------------------------------
    # RoleManager

    def _power_levels(self, room: str) -> dict[str, Any]:
        return self.client.get(f"/_matrix/client/v3/rooms/{q(room)}/state/m.room.power_levels/", what="power levels")

    def _levels(self, room: str) -> dict[str, int]:
        return {uid: int(level) for uid, level in self._power_levels(room).get("users", {}).items()}

    def _level_of(self, room: str, user_id: str) -> int:
        """A user's level: ``users`` when listed, else the room's ``users_default`` (0 when unset,
        https://spec.matrix.org/v1.11/client-server-api/#mroompower_levels); someone else's room
        may set it to 50."""
        content = self._power_levels(room)
        return int(content.get("users", {}).get(user_id, content.get("users_default", 0)))

    def _members(self, room: str) -> list[str]:
        data = self.client.get(f"/_matrix/client/v3/rooms/{q(room)}/joined_members", what="room members")
        invited = self.client.get(
            f"/_matrix/client/v3/rooms/{q(room)}/members", what="room members", params={"membership": "invite"}
        )
        return sorted({*data.get("joined", {}), *(e["state_key"] for e in invited.get("chunk", []))})

    @staticmethod
    def _level_holds(level: int, role: Role) -> bool:
        if role.kind is RoleKind.ADMIN:
            return ADMIN_LEVEL <= level < BOT_LEVEL
        return MODERATOR_LEVEL <= level < ADMIN_LEVEL

    def list_holders(self, role: Role) -> list[UserRef]:
        """Admins (power 100) or moderators (50) of the space; a group's room members; server
        admins for ``Role.group("server-admins")``."""
        if role.kind is RoleKind.GROUP:
            ids = self._server_admins() if role.name == SERVER_ADMINS else self._members(self.room_id(role.name))
        else:
            ids = [uid for uid, lv in self._levels(self.community_rooms()[0]).items() if self._level_holds(lv, role)]
        return [self._ref(uid) for uid in sorted(ids)]

    def _holds(self, user: UserRef, role: Role, rooms: Sequence[str]) -> bool:
        if role.kind is RoleKind.GROUP:
            if role.name == SERVER_ADMINS:
                return self._local(user.id) and bool(self._admin_user(user.id).get("admin"))
            return user.id in self._members(rooms[0])
        return all(self._level_holds(self._level_of(room, user.id), role) for room in rooms)

    def _set_level(self, room: str, user: UserRef, level: int | None, reason: str) -> None:
        content = self._power_levels(room)
        users = dict(content.get("users", {}))
        if level is None:
            users.pop(user.id, None)
            if int(content.get("users_default", 0)) >= MODERATOR_LEVEL:
                users[user.id] = 0  # the room's default would still make them a moderator
        else:
            users[user.id] = level
        content = {**content, "users": users, REASON_KEY: reason}
        self.client.request(
            "PUT",
            f"/_matrix/client/v3/rooms/{q(room)}/state/m.room.power_levels/",
            what=f"power levels of {user.username}",
            json_body=content,
        )

    def _change(self, user: UserRef, role: Role, *, grant: bool, reason: str) -> RoleChange:
        reason = audit_reason(reason)
        action = "grant" if grant else "revoke"
        what = f"{action} {role} {'to' if grant else 'from'} {user.username}"
        if role.kind is RoleKind.GROUP and role.name == SERVER_ADMINS:
            rooms: list[str] = []
        elif role.kind is RoleKind.GROUP:
            rooms = [self.room_id(role.name)]
        else:
            rooms = self.community_rooms()

        def is_done() -> bool:
            return self._holds(user, role, rooms) == grant

        def write() -> None:
            if role.kind is RoleKind.GROUP and role.name == SERVER_ADMINS:
                # Synapse keeps no reason for this flag: it lives in the RoleChange and the audit.
                self.client.request(
                    "PUT", f"/_synapse/admin/v1/users/{q(user.id)}/admin", what=what, json_body={"admin": grant}
                )
            elif role.kind is RoleKind.GROUP:
                verb = "invite" if grant else "kick"
                self.client.request(
                    "POST",
                    f"/_matrix/client/v3/rooms/{q(rooms[0])}/{verb}",
                    what=what,
                    json_body={"user_id": user.id, "reason": reason},
                )
            else:
                level = (ADMIN_LEVEL if role.kind is RoleKind.ADMIN else MODERATOR_LEVEL) if grant else None
                for room in rooms:
                    if self._level_holds(self._level_of(room, user.id), role) != grant:
                        self._set_level(room, user, level, reason)

        outcome, _ = self.client.policy.ensure(is_done=is_done, write=write, what=what)
        status = ChangeStatus.APPLIED if outcome is WriteOutcome.APPLIED else ChangeStatus.UNCHANGED
        log.info("matrix: %s: %s (reason: %s)", what, status.value, reason)
        return RoleChange(user=user, role=role, action=action, status=status, reason=reason)

    def grant(self, user: UserRef, role: Role, *, reason: str) -> RoleChange:
        """Power 100/50 in the space and every child room, room membership (an invite, with the
        reason) for a group, or Synapse's server admin flag for ``server-admins``."""
        return self._change(user, role, grant=True, reason=reason)

    def revoke(self, user: UserRef, role: Role, *, reason: str) -> RoleChange:
        """Back to the room default power, a kick with the reason, or the admin flag off."""
        return self._change(user, role, grant=False, reason=reason)

    # ----------------------------------------------------------------------------------------
    # Messenger

    def send(self, room: str, event_type: str, content: Mapping[str, Any], *, key: str | None) -> str:
        """Send one event with a key-derived transaction id; its event id. Retried on 5xx and
        dropped connections like a read: the homeserver answers a resent id with the first event."""
        data = self.client.request(
            "PUT",
            f"/_matrix/client/v3/rooms/{q(room)}/send/{q(event_type)}/{payloads.txn_id(key)}",
            what=f"send {event_type}",
            json_body=dict(content),
            idempotent=True,
        )
        return str(data["event_id"])

    def _ref_message(self, room: str, event_id: str, thread_root: str | None = None) -> MessageRef:
        return MessageRef(
            platform=PLATFORM,
            id=event_id,
            thread_id=f"{room}/{thread_root or event_id}",
            url=f"https://matrix.to/#/{q(room)}/{q(event_id)}",
        )

    def post(self, *, channel: str, title: str, text: str, key: str | None = None) -> MessageRef:
        """A message in the room ``channel``; it is the root of a thread (``thread_id``)."""
        room = self.room_id(channel)
        event_id = self.send(room, "m.room.message", payloads.message(title=title, text=text), key=key)
        return self._ref_message(room, event_id)

    def reply(self, *, thread_id: str, text: str, key: str | None = None) -> MessageRef:
        """A message in the thread ``room/root-event``."""
        room, _, root = thread_id.partition("/")
        if not room.startswith("!") or not root.startswith("$"):
            raise ValueError(f"not a Matrix thread id: {thread_id!r}")
        event_id = self.send(room, "m.room.message", payloads.message(title=None, text=text, thread_root=root), key=key)
        return self._ref_message(room, event_id, thread_root=root)

    def direct_message(self, *, recipients: Sequence[str], title: str, text: str, key: str | None = None) -> MessageRef:
        """A message in the private room of the bot with exactly ``recipients`` (created once,
        remembered in the bot's account data)."""
        users = sorted({self.user_id(r) for r in recipients})
        if not users:
            raise ValueError("a direct message needs recipients")
        for uid in users:
            self.find_user(uid)  # FatalError naming an unknown recipient before anything is created
        room = self._dm_room(users)
        event_id = self.send(room, "m.room.message", payloads.message(title=title, text=text), key=key)
        return self._ref_message(room, event_id)

    def _dm_rooms(self) -> dict[str, str]:
        return self.client.get(
            f"/_matrix/client/v3/user/{q(self.me)}/account_data/org.charterflow.dm_rooms",
            what="the bot's DM rooms",
            missing_ok=True,
        )

    def _dm_room(self, users: list[str]) -> str:
        slot = " ".join(users)
        with self._lock:  # one creation per recipient set in this process
            known = self._dm_rooms()
            if slot in known:
                return known[slot]
            created = self.client.request(
                "POST",
                "/_matrix/client/v3/createRoom",
                what="create a DM room",
                json_body={"preset": "trusted_private_chat", "is_direct": True, "invite": users},
            )
            room = str(created["room_id"])
            self.client.request(
                "PUT",
                f"/_matrix/client/v3/user/{q(self.me)}/account_data/org.charterflow.dm_rooms",
                what="remember a DM room",
                json_body={**known, slot: room},
            )
            return room

    # ----------------------------------------------------------------------------------------
    # BallotBox

    def open_ballot_for(self, request: BallotRequest) -> Ballot:
        """An ``m.poll.start`` in ``channel``; votes of members of ``voters_group``'s room only."""
        if request.secret:
            # Poll responses are room events every member can read (R-VOTE-SECRET cannot hold).
            raise FatalError(
                "matrix: a poll shows each vote to the room's members; hold a secret ballot on another platform",
                platform=PLATFORM,
                status=None,
            )
        room = self.room_id(request.channel)
        if request.voters_group:
            self.room_id(request.voters_group)  # an unknown group fails before the poll is posted
        note = f"Voting closes {request.closes_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC." if request.closes_at else ""
        content = payloads.poll_start(
            question=request.question,
            options=list(request.options),
            text=request.text,
            voters_group=request.voters_group,
            closes_note=note,
        )
        event_id = self.send(room, payloads.POLL_START, content, key=request.key)
        return Ballot(
            platform=PLATFORM,
            id=f"{room}/{event_id}",
            question=request.question,
            options=tuple(BallotOption(id=f"a{i}", label=o) for i, o in enumerate(request.options, 1)),
            is_open=True,
            message=self._ref_message(room, event_id),
            closes_at=request.closes_at,
        )

    def _relations(self, room: str, event_id: str) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        params: dict[str, Any] = {"limit": _PAGE, "dir": "f"}
        for _ in range(_MAX_PAGES):
            page = self.client.get(
                f"/_matrix/client/v1/rooms/{q(room)}/relations/{q(event_id)}/m.reference",
                what="poll relations",
                params=params,
            )
            events.extend(page.get("chunk", []))
            if not page.get("next_batch"):
                break
            params["from"] = page["next_batch"]
        return events

    def _split(self, ballot: Ballot) -> tuple[str, str]:
        room, _, event_id = ballot.id.partition("/")
        if not room.startswith("!") or not event_id.startswith("$"):
            raise ValueError(f"not a Matrix ballot id: {ballot.id!r}")
        return room, event_id

    def _ended_at(self, relations: list[dict[str, Any]]) -> int | None:
        ends = [
            e["origin_server_ts"]
            for e in relations
            if e.get("type") in payloads.POLL_END_TYPES and e.get("sender") == self.me
        ]
        return min(ends) if ends else None

    def read_votes(self, ballot: Ballot) -> list[Vote]:
        """Each voter's latest answer sent before the poll ended (MSC3381's counting rule)."""
        room, event_id = self._split(ballot)
        start = self.client.get(f"/_matrix/client/v3/rooms/{q(room)}/event/{q(event_id)}", what="the poll")
        answers = payloads.poll_answer_ids(start.get("content", {}))
        group = start.get("content", {}).get(payloads.VOTERS_GROUP_KEY)
        allowed = set(self._members(self.room_id(group))) if group else None
        relations = self._relations(room, event_id)
        ended = self._ended_at(relations)
        latest: dict[str, tuple[int, str]] = {}
        for event in relations:
            if event.get("type") not in payloads.POLL_RESPONSE_TYPES:
                continue
            ts, sender = int(event.get("origin_server_ts", 0)), str(event.get("sender"))
            if ended is not None and ts > ended:
                continue
            chosen = payloads.poll_selections(event.get("content", {}))
            if not isinstance(chosen, list) or not chosen or chosen[0] not in answers:
                continue  # a spoilt vote (MSC3381: it does not count)
            if allowed is not None and sender not in allowed:
                continue
            if sender not in latest or ts >= latest[sender][0]:
                latest[sender] = (ts, str(chosen[0]))
        return [Vote(voter=self._ref(uid), option_id=answer) for uid, (_, answer) in sorted(latest.items())]

    def close_ballot(self, ballot: Ballot, *, result: str | None = None) -> Ballot:
        """An ``m.poll.end`` (once: keyed by the ballot) carrying ``result``."""
        room, event_id = self._split(ballot)
        if self._ended_at(self._relations(room, event_id)) is None:
            self.send(
                room,
                payloads.POLL_END,
                payloads.poll_end(start_event=event_id, result=result),
                key=f"close:{ballot.id}",
            )
        return Ballot(
            platform=ballot.platform,
            id=ballot.id,
            question=ballot.question,
            options=ballot.options,
            is_open=False,
            message=ballot.message,
            closes_at=ballot.closes_at,
        )

    # ----------------------------------------------------------------------------------------
    # moderation log

    def moderation_entries(self, *, after: str | None, limit: int = 100) -> list[ModerationEntry]:
        """Bans, kicks, unbans and redactions in the community rooms, and the homeserver's
        content reports, oldest first. Ids are ``<ms, 13 digits>:<event id or report-N>``, so
        they sort by time and ``after`` is a plain comparison."""
        entries: list[ModerationEntry] = []
        for room in self.community_rooms():
            entries.extend(self._room_entries(room))
        entries.extend(self._report_entries())
        entries.sort(key=lambda e: e.id)
        return [e for e in entries if after is None or e.id > after][:limit]

    def _room_entries(self, room: str) -> list[ModerationEntry]:
        out: list[ModerationEntry] = []
        params: dict[str, Any] = {
            "dir": "f",
            "limit": _PAGE,
            "filter": event_filter(types=["m.room.member", "m.room.redaction"]),
        }
        for _ in range(_MAX_PAGES):
            page = self.client.get(f"/_synapse/admin/v1/rooms/{q(room)}/messages", what="room history", params=params)
            for event in page.get("chunk", []):
                entry = self._room_entry(room, event)
                if entry is not None:
                    out.append(entry)
            if not page.get("end") or not page.get("chunk"):
                break
            params["from"] = page["end"]
        return out

    def _room_entry(self, room: str, event: Mapping[str, Any]) -> ModerationEntry | None:
        content = event.get("content", {})
        sender = str(event.get("sender", ""))
        kind, target = None, None
        if event.get("type") == "m.room.redaction":
            kind = "redaction"
        elif event.get("type") == "m.room.member":
            target = str(event.get("state_key", ""))
            membership = content.get("membership")
            previous = (event.get("unsigned", {}).get("prev_content") or {}).get("membership")
            if membership == "ban":
                kind = "ban"
            elif membership == "leave" and previous == "ban":
                kind = "unban"
            elif membership == "leave" and sender != target and previous in ("join", "invite"):
                kind = "kick"
        if kind is None:
            return None
        at = int(event.get("origin_server_ts", 0))
        return ModerationEntry(
            platform=PLATFORM,
            id=f"{at:013d}:{event['event_id']}",
            kind=kind,
            occurred_at=_ms(at) or datetime.now(UTC),
            target=self._ref(target) if target else None,
            moderator=self._ref(sender) if sender else None,
            reason=content.get("reason"),
            changes={
                "room_id": room,
                **({"redacts": event.get("redacts") or content.get("redacts")} if kind == "redaction" else {}),
            },
            link=f"https://matrix.to/#/{q(room)}/{q(str(event['event_id']))}",
            raw=dict(event),
        )

    def event_reports(self) -> list[dict[str, Any]]:
        """Synapse's event reports (the report button of Matrix clients), oldest first
        (https://element-hq.github.io/synapse/latest/admin_api/event_reports.html)."""
        return self._admin_pages("event_reports", what="content reports")

    def user_reports(self) -> list[dict[str, Any]]:
        """Synapse's reports of a person (Element's "Report user",
        ``POST /_matrix/client/v3/users/{userId}/report``, spec v1.14), kept apart from event
        reports (``GET /_synapse/admin/v1/user_reports``, synapse/rest/admin/user_reports.py),
        oldest first; each with ``sender`` set to the reported person, as an event report's."""
        return [
            {**r, "sender": r.get("target_user_id")}
            for r in self._admin_pages("user_reports", what="reports of people")
        ]

    def _admin_pages(self, name: str, *, what: str) -> list[dict[str, Any]]:
        """Every row of ``/_synapse/admin/v1/{name}``, oldest first, page by page (``next_token``)."""
        out: list[dict[str, Any]] = []
        start = 0
        for _ in range(_MAX_PAGES):
            page = self.client.get(
                f"/_synapse/admin/v1/{name}", what=what, params={"dir": "f", "limit": _PAGE, "from": start}
            )
            out.extend(r for r in page.get(name, []) if isinstance(r, dict) and "id" in r)
            if page.get("next_token") is None:
                break
            start = int(page["next_token"])
        return out

    def _report_entries(self) -> list[ModerationEntry]:
        out: list[ModerationEntry] = []
        reports = [("", r) for r in self.event_reports()] + [("user-", r) for r in self.user_reports()]
        for prefix, report in reports:
            at = int(report.get("received_ts", 0))
            link = (
                f"https://matrix.to/#/{q(str(report.get('room_id')))}/{q(str(report.get('event_id')))}"
                if report.get("event_id")
                else f"https://matrix.to/#/{q(str(report.get('sender')))}"
            )
            out.append(
                ModerationEntry(
                    platform=PLATFORM,
                    id=f"{at:013d}:report-{prefix}{report['id']}",
                    kind="content_report",
                    occurred_at=_ms(at) or datetime.now(UTC),
                    target=self._ref(report["sender"]) if report.get("sender") else None,
                    moderator=self._ref(report["user_id"]) if report.get("user_id") else None,
                    reason=report.get("reason"),
                    changes={
                        "room_id": report.get("room_id"),
                        "event_id": report.get("event_id"),
                        "score": report.get("score"),
                    },
                    link=link,
                    raw=dict(report),
                )
            )
        return out

    # ----------------------------------------------------------------------------------------
    # the appservice push

    def _verifier(self) -> AppserviceVerifier:
        return AppserviceVerifier(
            hs_token=self.settings.hs_token,
            server_name=self.instance,
            own_users=(self.user_id(self.settings.bot_user), self.user_id(self.settings.appservice_sender)),
        )

    def verify_transaction(self, *, headers: Mapping[str, str], body: bytes) -> list[InboundEvent]:
        """The events of an appservice transaction (``AppserviceVerifier.verify_transaction``)."""
        return self._verifier().verify_transaction(headers=headers, body=body)

    def verify(self, *, headers: Mapping[str, str], body: bytes) -> InboundEvent:
        """The first event of a transaction (``verify_transaction`` gives them all)."""
        return self._verifier().verify(headers=headers, body=body)
