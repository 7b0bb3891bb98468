"""The fictional community `charterflow up` seeds its sandboxes and ledger with.

Everything is generated deterministically (a fixed random seed) from invented name parts: about
200 people with activity histories on the Forum (Discourse) and Discord, a working group of
seven with Chair, Co-Chair and liaisons (each with a home platform), moderators and admins that
satisfy R-ADMIN-1/2 (at least two WG members admin per approved platform, nobody admin on all of them), a
DSF Board on Slack, and a few open ideas on the Forum. Dates are relative to ``today`` so the
people stay eligible (R-ELIG-1) whatever day the stack starts.

:func:`build` returns a :class:`Community`; its methods give each sandbox's seed
(``discord_seed``, ``discourse_seed``, ``slack_seed``) and the ledger's roster (``roster_toml``,
imported by `up` with ``ledger.roster``). Pure: no I/O.
"""

from __future__ import annotations

import functools
import operator
import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from connectors.discord.doctor import REQUIRED_PERMISSIONS
from rules.applications import TOPIC_TEMPLATE

__all__ = ["Community", "Person", "build", "SEED", "GUILD_ID", "APPLICATION_ID", "BOARD_CHANNEL"]

SEED = 20261124
GUILD_ID = "1100000000000000001"
APPLICATION_ID = "1100000000000000002"
# The bot's role holds what `charterflow doctor` requires, no more (the sandbox refuses the rest,
# as Discord does); View Channel is what a private channel's overwrites take away and give back.
BOT_PERMISSIONS = functools.reduce(operator.or_, (bits[0] for bits in REQUIRED_PERMISSIONS.values()))
VIEW_CHANNEL = REQUIRED_PERMISSIONS["View Channels"][0]


def _private(role: str) -> list[dict[str, Any]]:
    """A private channel's overwrites: ``@everyone`` may not view it, ``role`` and the bot may."""
    return [
        {"role": "@everyone", "deny": VIEW_CHANNEL},
        {"role": role, "allow": VIEW_CHANNEL},
        {"role": "charterflow", "allow": VIEW_CHANNEL},
    ]


BOARD_CHANNEL = "C0BOARD01"
CATEGORIES = {"General": 4, "Working Group": 5, "Applications": 6, "Ideas": 7, "Moderators": 8}

# Invented name parts: first names and surname halves combined at random.
FIRST = (
    "Alder",
    "Brisa",
    "Caspian",
    "Delphine",
    "Eamon",
    "Fiora",
    "Galen",
    "Hestia",
    "Idris",
    "Juniper",
    "Kestrel",
    "Lisandre",
    "Marlow",
    "Nerys",
    "Orrin",
    "Perrin",
    "Quenby",
    "Rosalind",
    "Soren",
    "Tamsin",
    "Ulric",
    "Vesper",
    "Wynne",
    "Xanthe",
    "Yorick",
    "Zinnia",
    "Anselm",
    "Brione",
    "Corvin",
    "Daria",
    "Elowen",
    "Faro",
    "Greer",
    "Halcyon",
    "Isolde",
    "Jory",
    "Kallan",
    "Liora",
    "Mabry",
    "Niamh",
    "Oswin",
    "Philippa",
    "Rhosyn",
    "Sabine",
    "Tobiah",
    "Una",
    "Valen",
    "Wilda",
)
SURNAME_HEAD = (
    "Ash",
    "Bram",
    "Cinder",
    "Dusk",
    "Elm",
    "Fern",
    "Gale",
    "Hollow",
    "Iron",
    "Juniper",
    "Kettle",
    "Lark",
    "Moss",
    "Nettle",
    "Oak",
    "Pike",
    "Quill",
    "Rook",
    "Sedge",
    "Thorn",
    "Umber",
    "Vale",
    "Wren",
    "Yarrow",
)
# Uncommon endings: the combinations read as names without being everyday surnames.
SURNAME_TAIL = ("combe", "fell", "gate", "holt", "mere", "quay", "row", "stead", "thwaite", "wick")

IDEAS = (
    (
        "Weekly newcomer office hours on Discord",
        "A voice channel each Thursday where moderators "
        "answer first questions, so newcomers get a friendly first answer within a week.",
    ),
    (
        "Shared moderation glossary for all platforms",
        "One page that says what warn, timeout and "
        "suspend mean on the Forum and on Discord, so moderators act alike everywhere.",
    ),
    (
        "Trial a community calendar feed",
        "Publish the working group's meetings and events as one "
        "calendar feed that members can subscribe to from any calendar program.",
    ),
)


@dataclass(kw_only=True)
class Person:
    """One invented member of the community and their accounts and activity."""

    handle: str
    name: str
    forum: dict[str, Any] | None = None  # Discourse user fields
    discord: dict[str, Any] | None = None  # Discord member fields
    slack_id: str | None = None
    home_platform: str | None = None
    wg: bool = False
    board: bool = False
    steering_council: bool = False
    roles: dict[str, set[str]] = field(default_factory=dict)  # platform -> {"admin", "moderator"}

    @property
    def forum_user(self) -> dict[str, Any]:
        """The Discourse user fields of someone known to be on the Forum (``ValueError`` if not)."""
        if self.forum is None:
            raise ValueError(f"{self.handle} has no Forum account")
        return self.forum

    @property
    def discord_member(self) -> dict[str, Any]:
        """The Discord member fields of someone known to be on Discord (``ValueError`` if not)."""
        if self.discord is None:
            raise ValueError(f"{self.handle} has no Discord account")
        return self.discord


@dataclass(kw_only=True)
class Community:
    """The generated community (see the module docstring)."""

    today: date
    people: list[Person]
    wg_roles: dict[str, str]  # roster role -> handle
    ideas: list[dict[str, str]]

    def person(self, handle: str) -> Person:
        """The person with ``handle``."""
        return next(p for p in self.people if p.handle == handle)

    @property
    def wg(self) -> list[Person]:
        """The seven working group members."""
        return [p for p in self.people if p.wg]

    @property
    def board(self) -> list[Person]:
        """The DSF Board members (on Slack)."""
        return [p for p in self.people if p.board]

    def admins(self, platform: str) -> list[Person]:
        """Who holds Administrator privileges on ``platform``."""
        return [p for p in self.people if "admin" in p.roles.get(platform, set())]

    def moderators(self, platform: str) -> list[Person]:
        """Who is a moderator on ``platform``."""
        return [p for p in self.people if "moderator" in p.roles.get(platform, set())]

    def applicants(self) -> list[Person]:
        """People outside the WG who are eligible on Discord alone (R-ELIG-1): the demo's
        applicants, in a fixed order."""
        limit = self.today - timedelta(days=120)
        return [
            p
            for p in self.people
            if not p.wg
            and not p.board
            and p.discord
            and p.discord["recent_messages"] >= 8
            and p.discord["joined_at"] <= _at(limit)
            and not p.roles
        ]

    # ---- sandbox seeds ----------------------------------------------------------------------

    def discord_seed(self) -> dict[str, Any]:
        """The Discord sandbox's seed (``connectors.discord.sandbox.SandboxSeed``)."""
        members = []
        for p in self.people:
            if not p.discord:
                continue
            roles = sorted(p.roles.get("discord", set()))
            if p.wg:
                roles.append("wg-member")
            members.append(
                {
                    "id": p.discord["id"],
                    "username": p.discord["username"],
                    "global_name": p.name,
                    "roles": roles,
                    "joined_at": _iso(p.discord["joined_at"]),
                    "recent_messages": p.discord["recent_messages"],
                    "older_messages": p.discord["older_messages"],
                }
            )
        return {
            "guild_id": GUILD_ID,
            "guild_name": "Online Community (sandbox)",
            "application_id": APPLICATION_ID,
            "bot_username": "charterflow",
            "roles": [
                {"name": "wg-member", "position": 1},
                {"name": "moderator", "position": 2, "permissions": 1 << 13},
                {"name": "admin", "position": 3, "permissions": 1 << 3},
                {
                    "name": "charterflow",
                    "position": 4,
                    "permissions": BOT_PERMISSIONS,
                    "managed": True,
                    "bot_role": True,
                },
            ],
            # "moderators": the moderators' room (reports, R-SAFE-1; the common room, R-COMMS).
            # It and wg-private are private: @everyone may not view them, their role and the bot may.
            "channels": [
                {"name": "general"},
                {"name": "wg-private", "permission_overwrites": _private("wg-member")},
                {"name": "announcements"},
                {"name": "ideas"},
                {"name": "moderators", "permission_overwrites": _private("moderator")},
            ],
            "members": members,
            # A demo runs several steps in a few seconds: generous, Discord-shaped limits.
            "settings": {
                "buckets": {
                    k: [50, 1.0]
                    for k in (
                        "member.get",
                        "members.list",
                        "members.search",
                        "member.roles",
                        "roles",
                        "channels",
                        "messages.search",
                        "message.create",
                        "message.edit",
                        "dm",
                        "threads",
                        "thread.members",
                        "events",
                        "webhook",
                        "callback",
                    )
                }
            },
        }

    def discourse_seed(self) -> dict[str, Any]:
        """The Forum sandbox's seed (``connectors.discourse.sandbox.SandboxSeed``)."""
        users = [
            {
                "id": -1,
                "username": "system",
                "name": "system",
                "admin": True,
                "moderator": True,
                "trust_level": 4,
                "created_at": "2022-05-01T00:00:00Z",
            }
        ]
        for p in self.people:
            if not p.forum:
                continue
            roles = p.roles.get("discourse", set())
            users.append(
                {
                    **{k: (_iso(v) if isinstance(v, datetime) else v) for k, v in p.forum.items()},
                    "name": p.name,
                    "admin": "admin" in roles,
                    "moderator": "moderator" in roles,
                }
            )
        wg = [p.forum["username"] for p in self.wg if p.forum]
        return {
            "api_username": "system",
            "users": users,
            "groups": [
                {"name": "working-group", "full_name": "Online Community Working Group", "members": wg},
                {
                    "name": "moderators",
                    "full_name": "Moderators",
                    "members": [p.forum["username"] for p in self.moderators("discourse") if p.forum],
                },
            ],
            "categories": [
                {"id": CATEGORIES["General"], "name": "General", "slug": "general"},
                {
                    "id": CATEGORIES["Working Group"],
                    "name": "Working Group",
                    "slug": "working-group",
                    "read_restricted": True,
                    "color": "652D90",
                    "permissions": {"working-group": 1},
                },
                # R-APP-1: new topics here start from the charter's three questions.
                {
                    "id": CATEGORIES["Applications"],
                    "name": "Applications",
                    "slug": "applications",
                    "topic_template": TOPIC_TEMPLATE,
                },
                {"id": CATEGORIES["Ideas"], "name": "Ideas", "slug": "ideas"},
                {
                    "id": CATEGORIES["Moderators"],
                    "name": "Moderators",
                    "slug": "moderators",
                    "read_restricted": True,
                    "permissions": {"moderators": 1},
                },
            ],
            "settings": {"admin_api_limit": 600, "admin_api_window": 60.0},
        }

    def slack_seed(self) -> dict[str, Any]:
        """The Slack sandbox's seed: the Board's private channel and a general one."""
        users = [
            {
                "id": p.slack_id,
                "name": p.handle.replace("_", "."),
                "real_name": p.name,
                "email": f"{p.handle.replace('_', '.')}@example.org",
            }
            for p in self.people
            if p.slack_id
        ]
        board = [p.slack_id for p in self.board]
        return {
            "team_name": "Sandbox Foundation",
            "users": users,
            "channels": [
                {"id": BOARD_CHANNEL, "name": "dsf-board", "is_private": True, "members": board},
                {"id": "C0GENERAL", "name": "general", "bot_member": False, "members": [u["id"] for u in users]},
            ],
            "board_channel": BOARD_CHANNEL,
        }

    # ---- the ledger ---------------------------------------------------------------------------

    def roster_toml(self) -> str:
        """The roster (``ledger/README.md`` format 1): the WG, the Board, the Steering Council
        and the platforms' admins and moderators, with their accounts."""
        lines = [
            "# Generated by charterflow.seed: an invented community (no real person).",
            "[roster]",
            "format = 1",
            "",
            "[lists]",
            "board_members = [" + ", ".join(f'"{p.handle}"' for p in self.board) + "]",
            "steering_council = [" + ", ".join(f'"{p.handle}"' for p in self.people if p.steering_council) + "]",
            "",
        ]
        term_start = self.today - timedelta(days=100)
        for p in self.people:
            if not (p.wg or p.board or p.steering_council or p.roles):
                continue
            lines += ["[[person]]", f'handle = "{p.handle}"', f'name = "{p.name}"']
            if p.home_platform:
                lines.append(f'home_platform = "{p.home_platform}"')
            if p.forum:
                lines.append(f'discourse = {{ id = "{p.forum["id"]}", username = "{p.forum["username"]}" }}')
            if p.discord:
                lines.append(f'discord = {{ id = "{p.discord["id"]}", username = "{p.discord["username"]}" }}')
            if p.slack_id:
                lines.append(f'slack = {{ id = "{p.slack_id}" }}')
            if p.wg:
                lines.append(f"terms = [{{ start = {term_start.isoformat()} }}]")
            else:
                lines.append('membership = "none"')
            lines.append("")
        assigned = {
            "chair": "wg-vote",
            "co_chair": "wg-vote",
            "coc_liaison": "coc-wg",
            "board_liaison": "dsf-board",
            "sc_liaison": "steering-council",
        }
        lines.append("[roles]")
        for role, handle in self.wg_roles.items():
            lines.append(
                f'{role} = {{ handle = "{handle}", since = {term_start.isoformat()}, '
                f'assigned_by = "{assigned[role]}" }}'
            )
        return "\n".join(lines) + "\n"

    def platform_roles(self) -> list[tuple[str, str, str]]:
        """(handle, platform, ledger role string) the WG wants held: the WG's own group or
        role on each platform for its members, and every admin and moderator."""
        out = []
        for p in self.people:
            if p.wg:
                if p.forum:
                    out.append((p.handle, "discourse", "group:working-group"))
                if p.discord:
                    out.append((p.handle, "discord", "group:wg-member"))
            for platform, roles in sorted(p.roles.items()):
                out += [(p.handle, platform, role) for role in sorted(roles)]
        return out


def _at(day: date) -> datetime:
    return datetime.combine(day, time(12, 0), tzinfo=UTC)


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _names(rng: random.Random, count: int) -> list[tuple[str, str]]:
    seen: set[str] = set()
    out: list[tuple[str, str]] = []
    while len(out) < count:
        first = rng.choice(FIRST)
        last = rng.choice(SURNAME_HEAD) + rng.choice(SURNAME_TAIL)
        handle = f"{first}_{last}".lower()
        if handle not in seen:
            seen.add(handle)
            out.append((first, last))
    return out


def _forum_account(rng: random.Random, i: int, handle: str, today: date) -> dict[str, Any]:
    age = rng.randint(20, 1500)
    visited = rng.randint(0, min(age, 600))
    posts = int(visited * rng.uniform(0.05, 2.5))
    seen = rng.randint(0, 200) if rng.random() < 0.8 else rng.randint(0, 30)
    return {
        "id": 1001 + i,
        "username": handle,
        "email": f"{handle.replace('_', '.')}@example.org",
        "trust_level": 0 if visited < 3 else 1 if visited < 15 else 2 if visited < 100 else 3,
        "created_at": _at(today - timedelta(days=age)),
        "last_seen_at": _at(today - timedelta(days=min(seen, age))),
        "last_posted_at": _at(today - timedelta(days=min(seen + rng.randint(0, 40), age))) if posts else None,
        "days_visited": visited,
        "post_count": posts,
        "likes_given": int(posts * rng.uniform(0.2, 3.0)),
        "likes_received": int(posts * rng.uniform(0.1, 2.0)),
    }


def _person(rng: random.Random, i: int, first: str, last: str, today: date) -> Person:
    """The ``i``-th person with their accounts (the random draws in a fixed order: the same
    community every time)."""
    handle = f"{first}_{last}".lower()
    person = Person(handle=handle, name=f"{first} {last}")
    where = rng.random()
    on_forum, on_discord = where < 0.85, where >= 0.15
    if i < 40:  # the first people (WG, staff, Board, applicants) are on both platforms
        on_forum = on_discord = True
    if on_forum:
        person.forum = _forum_account(rng, i, handle, today)
    if on_discord:
        joined = rng.randint(10, 1400)
        person.discord = {
            "id": str(400_000_000_000_000_000 + 1001 + i),
            "username": handle,
            "joined_at": _at(today - timedelta(days=joined)),
            "recent_messages": rng.choice((0, 0, 1, 2, 4, 7, 12, 25, 60)),
            "older_messages": rng.randint(0, 400),
        }
    return person


def _active(p: Person, today: date) -> None:
    """The WG and staff are long-standing, active people."""
    # The first forty people are on both platforms (``_person``).
    forum, discord = p.forum_user, p.discord_member
    forum.update(
        created_at=_at(today - timedelta(days=700)),
        days_visited=300,
        post_count=max(forum["post_count"], 150),
        trust_level=3,
        last_seen_at=_at(today - timedelta(days=1)),
    )
    discord.update(joined_at=_at(today - timedelta(days=650)), recent_messages=max(discord["recent_messages"], 30))


def build(*, today: date | None = None, size: int = 200) -> Community:
    """The community of ``size`` people as of ``today`` (default: today, UTC)."""
    today = today or datetime.now(UTC).date()
    rng = random.Random(SEED)
    people = [_person(rng, i, first, last, today) for i, (first, last) in enumerate(_names(rng, size))]
    wg, staff, board, sc, applicants = (people[0:7], people[7:15], people[15:19], people[19:21], people[21:40])
    homes = ("discourse", "discord", "discord", "discourse", "discourse", "discord", "discourse")
    for p, home in zip(wg, homes, strict=True):
        _active(p, today)
        p.wg, p.home_platform = True, home
    for p in staff:
        _active(p, today)
    for p in applicants:  # eligible on Discord (R-ELIG-1), not yet in the WG
        p.discord_member.update(
            joined_at=_at(today - timedelta(days=rng.randint(200, 900))), recent_messages=rng.randint(9, 40)
        )
    chair, co_chair, coc, board_liaison, sc_liaison = wg[0], wg[1], wg[2], wg[3], wg[4]
    # Admins: two WG members per approved platform (R-ADMIN-2 counts members only), nobody on
    # both (R-ADMIN-1); a staff admin besides on each, shown as "not counted"; moderators.
    chair.roles["discourse"] = {"admin"}
    wg[6].roles["discourse"] = {"admin"}
    co_chair.roles["discord"] = {"admin"}
    wg[5].roles["discord"] = {"admin"}
    staff[0].roles["discourse"] = {"admin"}
    staff[1].roles["discord"] = {"admin"}
    for p in staff[2:5]:
        p.roles["discourse"] = {"moderator"}
    for p in staff[5:8]:
        p.roles["discord"] = {"moderator"}
    coc.roles["discord"] = {"moderator"}
    # The Board: four people plus the WG's Board Liaison, all on Slack.
    for n, p in enumerate([board_liaison, *board]):
        p.board = True
        p.slack_id = f"U0BRD{n + 1:04d}"
    for p in [sc_liaison, *sc]:
        p.steering_council = True
    wg_roles = {
        "chair": chair.handle,
        "co_chair": co_chair.handle,
        "coc_liaison": coc.handle,
        "board_liaison": board_liaison.handle,
        "sc_liaison": sc_liaison.handle,
    }
    # Authors from the wider community; a community of forty or fewer has only its first people.
    authors = [p.forum for p in people[40:] if p.forum] or [p.forum for p in people if p.forum]
    ideas = [
        {"title": title, "body": body, "author": authors[n * 7 % len(authors)]["username"]}
        for n, (title, body) in enumerate(IDEAS)
    ]
    return Community(today=today, people=people, wg_roles=wg_roles, ideas=ideas)
