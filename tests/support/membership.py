"""The seeded working group most flow tests start from (a pytest plugin: ``tests/conftest.py``
registers it). Fixtures ``world`` (both sandboxes on 127.0.0.1 with a seeded working group, a
migrated SQLite ledger, the session's Prefect test server) and ``gateway`` (the real gateway in
front of them); helpers that act as members and the gateway do."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from connectors.discord.connector import DiscordConnector
from connectors.discord.sandbox import DEFAULT_BUCKETS, VIEW_CHANNEL, default_seed
from connectors.discourse.connector import DiscourseConnector
from connectors.email import SmtpMailer, SmtpSandbox, SmtpSettings
from flows.membership.handlers import handle_vote
from flows.membership.intake import intake
from flows.platforms import Platforms, use
from gateway.app import create_app
from gateway.dispatch import StoreOnlyDispatcher
from gateway.form import UsernameLookup
from gateway.settings import GatewaySettings
from ledger import repo
from ledger.db import Ledger
from ledger.migrate import upgrade
from rules import default_charter, term_window
from rules.applications import TOPIC_TEMPLATE
from tests.support.net import LoopbackServer

# The real clock, rounded: Discord's sandbox dates message history from it.
NOW = datetime.now(UTC).replace(microsecond=0)
FORUM_HOOK_SECRET = "forum-hook-secret-invented-0042"
CONFIRM_SECRET = "test-only-secret"
# The seeded members' first term (see ``world``): started 100 days ago, one year long.
END_OF_FIRST_TERM = NOW - timedelta(days=100) + timedelta(days=365)
MEMBERS = ["avery_quill", "bram_tolliver", "cleo_marsh", "dario_fenwick", "felix_oakes", "gale_morrow", "hana_pike"]


def forum_and_discord(
    forum: Any, discord: Any, *, charter: Any = None, secret: str = CONFIRM_SECRET, **build: Any
) -> Platforms:
    """The two community platforms of the tests' world (the Forum and Discord, served by their
    sandboxes), with the gateway at a name no test resolves."""
    return Platforms.build(
        charter=charter or default_charter(),
        discourse=forum,
        discord=discord,
        confirm_secret=secret,
        gateway_url="http://gateway.test",
        **build,
    )


def _iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def discourse_seed() -> dict[str, Any]:
    """Seven WG members, an active applicant, a new account, a DSF-nominated newcomer."""
    users = [
        {
            "id": -1,
            "username": "system",
            "admin": True,
            "moderator": True,
            "trust_level": 4,
            "created_at": "2022-05-01T00:00:00Z",
        }
    ]
    for i, name in enumerate(MEMBERS):
        users.append(
            {
                "username": name,
                "name": name.replace("_", " ").title(),
                "admin": i < 2,
                "created_at": "2023-01-01T00:00:00Z",
                "last_seen_at": _iso(NOW - timedelta(days=1)),
                "days_visited": 200,
                "post_count": 100,
            }
        )
    users += [
        {
            "username": "quinn_harbor",
            "name": "Quinn Harbor",
            "created_at": _iso(NOW - timedelta(days=400)),
            "last_seen_at": _iso(NOW - timedelta(days=2)),
            "days_visited": 40,
            "post_count": 12,
        },
        {
            "username": "rowan_vale",
            "name": "Rowan Vale",
            "created_at": _iso(NOW - timedelta(days=60)),
            "last_seen_at": _iso(NOW - timedelta(days=1)),
            "days_visited": 30,
            "post_count": 20,
        },
        {
            "username": "sasha_lind",
            "name": "Sasha Lind",
            "created_at": _iso(NOW - timedelta(days=60)),
            "last_seen_at": _iso(NOW - timedelta(days=1)),
            "days_visited": 3,
            "post_count": 1,
        },
        {
            "username": "ivo_stone",
            "name": "Ivo Stone",
            "created_at": "2023-01-01T00:00:00Z",
            "days_visited": 50,
            "post_count": 30,
        },
        {
            "username": "wren_calloway",
            "name": "Wren Calloway",
            "created_at": _iso(NOW - timedelta(days=60)),
            "last_seen_at": _iso(NOW - timedelta(days=1)),
            "days_visited": 4,
            "post_count": 2,
        },
        {
            "username": "yara_penhale",
            "name": "Yara Penhale",
            "created_at": _iso(NOW - timedelta(days=300)),
            "last_seen_at": _iso(NOW - timedelta(days=3)),
            "days_visited": 25,
            "post_count": 9,
        },
    ]
    return {
        "api_username": "system",
        "users": users,
        "groups": [{"name": "working-group", "members": list(MEMBERS)}],
        "categories": [
            {"name": "General"},
            {"name": "Working Group", "read_restricted": True, "permissions": {"working-group": 1}},
            {"name": "Applications", "topic_template": TOPIC_TEMPLATE},
            {
                "name": "Moderators",
                "read_restricted": True,  # the common room (R-COMMS)
                "permissions": {"working-group": 1},
            },
        ],
        "webhook": {"secret": FORUM_HOOK_SECRET},
        "settings": {"admin_api_limit": 100000, "admin_api_window": 1.0},
    }


def without_limits(seed: dict[str, Any]) -> dict[str, Any]:
    """A Discord sandbox ``seed`` with every rate-limit bucket out of the way (the scenarios are
    not about limits)."""
    seed["settings"] = {"global_limit": 100000, "buckets": {k: [100000, 1.0] for k in DEFAULT_BUCKETS}}
    return seed


def discord_seed() -> dict[str, Any]:
    """The same people on Discord (WG role ``wg-member``)."""
    seed = default_seed()
    seed["members"] = [
        {
            "username": n,
            "roles": ["wg-member"] + (["admin"] if i in (2, 3) else []),
            "joined_at": "2023-01-01T00:00:00Z",
            "recent_messages": 10,
        }
        for i, n in enumerate(MEMBERS)
    ]
    seed["members"] += [
        {"username": "quinn_harbor", "joined_at": "2024-01-01T00:00:00Z", "recent_messages": 1},
        {"username": "ivo_stone", "joined_at": "2023-01-01T00:00:00Z", "recent_messages": 30},
        {"username": "yara_penhale", "joined_at": "2024-06-01T00:00:00Z", "recent_messages": 12},
    ]
    # Only who can view a channel acts in it (as on Discord): the WG's members are in the
    # moderators' room (the common room's tests write there), and ivo_stone, no WG member, reads
    # wg-private as a guest (the outsider whose press there the flows refuse).
    rooms = {c["name"]: c for c in seed["channels"]}
    rooms["moderators"]["permission_overwrites"].append({"role": "wg-member", "allow": VIEW_CHANNEL})
    rooms["wg-private"]["permission_overwrites"].append({"member": "ivo_stone", "allow": VIEW_CHANNEL})
    return without_limits(seed)


@dataclass
class World:
    """Everything a scenario touches."""

    ledger: Ledger
    platforms: Platforms
    discourse_sb: Any
    discourse_url: str
    discord_sb: Any
    discord_url: str
    people: dict[str, int]
    mailbox: Any = None  # the loopback SMTP server outcome e-mails go to

    def mails(self, to: str) -> list[dict[str, Any]]:
        """The e-mails the SMTP sandbox received for ``to``."""
        return [m for m in self.mailbox.messages() if to in m["to"]]

    def writes(self) -> dict[str, int]:
        """Write requests per endpoint on both sandboxes (the idempotency yardstick)."""
        out = {}
        for name, url in (("discourse", self.discourse_url), ("discord", self.discord_url)):
            state = httpx.get(f"{url}/_sandbox/state", timeout=10).json()
            for endpoint, n in state["requests"].items():
                if not endpoint.startswith("GET"):
                    out[f"{name} {endpoint}"] = n
        return out

    @classmethod
    def served(
        cls,
        ledger: Ledger,
        platforms: Platforms,
        people: dict[str, int],
        *,
        forum: tuple[Any, str],
        discord: tuple[Any, str],
        mailbox: Any = None,
    ) -> World:
        """The world of ``forum`` and ``discord``, each (its sandbox, the URL it is served at)."""
        return cls(
            ledger=ledger,
            platforms=platforms,
            discourse_sb=forum[0],
            discourse_url=forum[1],
            discord_sb=discord[0],
            discord_url=discord[1],
            people=people,
            mailbox=mailbox,
        )

    def discourse_state(self) -> dict[str, Any]:
        return httpx.get(f"{self.discourse_url}/_sandbox/state", timeout=10).json()

    def discord_state(self) -> dict[str, Any]:
        return httpx.get(f"{self.discord_url}/_sandbox/state", timeout=10).json()


def link_accounts(session: Any, person: Any, *, at: datetime, **users: Any) -> None:
    """``person``'s platform accounts (``discourse=user, discord=user``) as identities, by the operator."""
    for platform, user in users.items():
        repo.add_identity(
            session,
            person,
            platform=platform,
            actor="operator",
            external_id=user.id,
            username=user.username,
            at=at,
        )


def want_role(
    session: Any,
    person: Any,
    platform: str,
    role: str,
    *,
    desired: bool = True,
    decision_ref: str = "test",
    at: datetime = NOW,
) -> None:
    """Record the operator's decision that ``person`` should (not) hold ``role`` on ``platform``."""
    repo.set_desired_platform_role(
        session,
        person,
        platform=platform,
        role=role,
        desired=desired,
        actor="operator",
        decision_ref=decision_ref,
        at=at,
    )


def seed_members(
    session: Any, *, forum: Any, discord: Any, charter: Any, start: datetime, names: tuple[str, ...] | list[str] = ()
) -> dict[str, int]:
    """The WG's members (``MEMBERS``) in the ledger, with their sandbox accounts, a term from
    ``start`` and their desired WG group/role on both platforms: handle → person id."""
    people = {}
    for name in names or MEMBERS:
        person = repo.create_person(session, handle=name, actor="operator", at=start)
        link_accounts(session, person, at=start, discourse=forum.find_user(name), discord=discord.find_user(name))
        repo.start_membership(
            session,
            person,
            actor="operator",
            starts_at=start,
            ends_at=term_window(start, charter=charter).end,
            origin="import",
            at=start,
        )
        for platform, role in (("discourse", "group:working-group"), ("discord", "group:wg-member")):
            want_role(session, person, platform, role, decision_ref="roster", at=start)
        people[name] = person.id
    return people


@contextmanager
def serve_world(ledger: Ledger, *, mailbox: Any = None, **build: Any) -> Iterator[World]:
    """The seeded WG on ``ledger`` (migrated here): seven active members (term started 100 days
    ago) on the Forum and Discord sandboxes served on loopback; ``build`` adds to
    ``Platforms.build`` (``mailer``, ``dsf_members``). The flows use them while it is open."""
    upgrade(ledger)
    dsb = DiscourseConnector.sandbox(seed=discourse_seed())
    csb = DiscordConnector.sandbox(seed=discord_seed())
    with LoopbackServer(dsb.app) as d_srv, LoopbackServer(csb.app) as c_srv:
        forum = dsb.connect(d_srv.url)
        discord = csb.connect(c_srv.url)
        charter = default_charter()
        platforms = forum_and_discord(forum, discord, charter=charter, **build)
        start = NOW - timedelta(days=100)
        with ledger.transaction() as session:
            people = seed_members(session, forum=forum, discord=discord, charter=charter, start=start)
        with use(ledger=ledger, platforms=platforms):
            yield World.served(
                ledger, platforms, people, forum=(dsb, d_srv.url), discord=(csb, c_srv.url), mailbox=mailbox
            )
        forum.close()
        discord.close()


@pytest.fixture
def world(tmp_path: Path, prefect_server: None) -> Iterator[World]:
    """The seeded WG (``serve_world``), outcome e-mails to a loopback SMTP server."""
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    with SmtpSandbox() as mailbox:
        mailer = SmtpMailer(
            settings=SmtpSettings(
                _env_file=None, host=mailbox.host, port=mailbox.port, tls="none", sender="wg@example.org"
            )
        )
        with serve_world(ledger, mailbox=mailbox, dsf_members={"ursula_finch"}, mailer=mailer) as seeded:
            yield seeded
    ledger.dispose()


def put_event(
    world: World,
    *,
    source: str,
    kind: str,
    route: str,
    data: dict[str, Any],
    attributes: dict[str, str] | None = None,
    key: str,
) -> int:
    """Store an inbox event as the gateway does."""
    with world.ledger.transaction() as session:
        event, _ = repo.inbox_put(
            session,
            dedupe_key=key,
            source=source,
            kind=kind,
            route=route,
            payload={"data": data, "attributes": attributes or {}, "actor": None},
            received_at=NOW,
        )
        return event.id


def store_verified(ledger: Ledger, event: Any, *, source: str, route: str, received_at: datetime = NOW) -> int:
    """A verified inbound ``event`` stored in the inbox as the gateway does: the row's id."""
    data = json.loads(json.dumps(dict(event.data), default=str))
    with ledger.transaction() as session:
        row, _ = repo.inbox_put(
            session,
            dedupe_key=event.dedupe_key,
            source=source,
            kind=event.kind,
            route=route,
            payload={"data": data, "attributes": dict(event.attributes), "actor": event.actor},
            received_at=received_at,
        )
        return row.id


def discord_event(world: World, *, kind: str, payload: dict[str, Any], route: str) -> int:
    """A signed Discord interaction from the sandbox, verified and stored as the gateway does."""
    headers, body = world.discord_sb.signed_request(kind=kind, payload=payload)
    event = world.platforms.space("discord").connector.verify(headers=headers, body=body)
    return store_verified(world.ledger, event, source="discord", route=route)


def press_button(world: World, user: str, message: dict[str, Any], custom_id: str, *, route: str = "confirm") -> int:
    """``user`` presses the button ``custom_id`` of the Discord ``message``: the stored event's id."""
    payload = {"user": user, "custom_id": custom_id, "message_id": message["id"], "channel_id": message["channel_id"]}
    return discord_event(world, kind="component", route=route, payload=payload)


@dataclass
class Gateway:
    """The gateway served on 127.0.0.1 for a scenario, verifying with the sandboxes' own keys."""

    url: str
    app: Any
    applications_category: str


@contextmanager
def serve_gateway(
    world: World, *, ideas_category: str = "", commons_categories: str = "", **settings: Any
) -> Iterator[Gateway]:
    """The real gateway app (store-only dispatch: a test runs each stored event with
    ``flows.inbox.handle_event``, as the task worker does) on a loopback port; the Forum
    sandbox's webhooks and the Discord sandbox's interactions are sent to it."""
    category = next(c["id"] for c in world.discourse_state()["categories"] if c["name"] == "Applications")
    values = {
        **GatewaySettings().model_dump(),
        "discourse_webhook_secret": SecretStr(FORUM_HOOK_SECRET),
        "discord_public_key": world.discord_sb.public_key,
        "slack_signing_secret": None,
        "form_secret": SecretStr("form-secret-invented"),
        "discourse_applications_categories": str(category),
        "discourse_ideas_categories": ideas_category,
        "discourse_commons_categories": commons_categories,
        "dispatch": False,
        **settings,
    }

    lookup = UsernameLookup({name: space.directory for name, space in world.platforms.spaces.items()})
    app = create_app(
        settings=GatewaySettings.model_construct(**values),
        ledger=world.ledger,
        dispatcher=StoreOnlyDispatcher(),
        charter=world.platforms.charter,
        confirm_secret=CONFIRM_SECRET,
        lookup=lookup,
    )
    with LoopbackServer(app) as server:
        world.discourse_sb.webhook.url = f"{server.url}/hooks/discourse"
        httpx.post(
            f"{world.discord_url}/_sandbox/interactions_url", json={"url": f"{server.url}/hooks/discord"}, timeout=10
        ).raise_for_status()
        try:
            yield Gateway(url=server.url, app=app, applications_category=str(category))
        finally:
            world.discourse_sb.webhook.url = None


def open_forum_topic(world: World, author: str, *, title: str, category: int | str, raw: str) -> dict[str, Any]:
    """``author`` opens a topic in ``category`` on the Forum, as a person does: the first post."""
    created = httpx.post(
        f"{world.discourse_url}/posts.json",
        timeout=15,
        headers={"Api-Key": world.discourse_sb.api_key, "Api-Username": author},
        json={"title": title, "category": int(category), "raw": raw},
    )
    assert created.status_code == 200, created.text
    return created.json()


@pytest.fixture
def gateway(world: World) -> Iterator[Gateway]:
    """The gateway of :func:`serve_gateway`, for one test."""
    with serve_gateway(world) as served:
        yield served


def apply_proven(
    world: World, username: str, *, nominator: str | None = None, discord: bool = False, now: datetime | None = None
) -> dict[str, Any]:
    """An application whose accounts the source proved (a Forum topic's author; with ``discord``
    also the same name's Discord account, as the /apply modal proves it): confirmed at once,
    so eligibility runs straight away."""
    proven = {"discourse": world.platforms.space("discourse").directory.find_user(username).id}
    if discord:
        proven["discord"] = world.platforms.space("discord").directory.find_user(username).id
    return intake(
        forum_username=username,
        discord_username=username if discord else None,
        motivation="I answer newcomers' questions every week.",
        experience="Moderation of a regional user group.",
        nominator=nominator,
        source="discourse",
        source_ref=f"test:{username}",
        proven_accounts=proven,
        now=now or NOW,
    )


def forum_pms(world: World, username: str) -> list[str]:
    """The Forum private messages (raw) that greet ``username``."""
    return [p["raw"] for p in world.discourse_state()["posts"] if p["raw"].startswith(f"Hello {username},")]


def discord_dms(world: World, username: str) -> list[dict[str, Any]]:
    """The Discord DMs (as the sandbox holds them) that greet ``username``."""
    return [m for m in world.discord_state()["messages"] if f"Hello {username}," in (m["content"] or "")]


def press_vote(world: World, ref: dict[str, Any], user: str, option: int, *, now: datetime) -> str:
    """``user`` presses ballot button ``option`` (0 yes, 1 no, 2 abstain) on Discord: a signed
    interaction from the sandbox, stored and handled as the gateway and worker do."""
    event = discord_event(
        world,
        kind="ballot_vote",
        route="vote",
        payload={
            "user": user,
            "custom_id": f"cfb:{ref['ballot_id']}:{option}",
            "message_id": ref["message_id"],
            "channel_id": ref["thread_id"],
        },
    )
    return handle_vote(event_id=event, ledger=world.ledger, platforms=world.platforms, now=now)
