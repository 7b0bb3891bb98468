"""The moderation tests' seeded platforms and helpers (their ``world`` fixture, in
tests/flows/moderation/conftest.py, overrides the membership one)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from connectors.discord.connector import DiscordConnector
from connectors.discord.payloads import deferred
from connectors.discord.sandbox import default_seed
from connectors.discourse.connector import DiscourseConnector
from flows import inbox
from flows.platforms import Platforms, use
from ledger import repo
from ledger.db import Ledger
from ledger.migrate import upgrade
from tests.support.membership import forum_and_discord, link_accounts, store_verified, without_limits
from tests.support.net import LoopbackServer

NOW = datetime.now(UTC).replace(microsecond=0)


def forum_seed() -> dict[str, Any]:
    """Forum: an admin, a moderator, the WG member, the look-alike."""
    users = [
        {"id": -1, "username": "system", "admin": True, "moderator": True, "trust_level": 4},
        {"username": "avery_quill", "name": "Avery Quill", "admin": True, "trust_level": 4},
        {"username": "bram_tolliver", "name": "Bram Tolliver", "moderator": True, "trust_level": 3},
        {"username": "cleo_marsh", "name": "Cleo Marsh", "trust_level": 2},
        {"username": "rowan_vale", "name": "Rowan Vale", "trust_level": 1},
        {"username": "dario_fenwick", "name": "Dario Fenwick", "trust_level": 1},
    ]
    return {
        "api_username": "system",
        "users": users,
        "groups": [
            {"name": "working-group", "members": ["avery_quill", "cleo_marsh"]},
            {"name": "moderators", "members": ["bram_tolliver"]},
        ],
        "categories": [
            {"name": "General"},
            {"name": "Working Group", "read_restricted": True, "permissions": {"working-group": 1}},
        ],
        "settings": {"admin_api_limit": 100000, "admin_api_window": 1.0},
    }


def discord_seed() -> dict[str, Any]:
    """Discord: the same people, plus ``esme_voss``; limits out of the way."""
    seed = default_seed()
    seed["members"] = [
        {"username": "avery_quill", "roles": ["wg-member", "admin"]},
        {"username": "bram_tolliver", "roles": ["moderator"]},
        {"username": "cleo_marsh", "roles": ["wg-member"]},
        {"username": "rowan_vale", "roles": []},
        {"username": "esme_voss", "roles": []},
    ]
    return without_limits(seed)


@dataclass
class World:
    """Everything a scenario touches."""

    ledger: Ledger
    platforms: Platforms
    forum_sb: Any
    forum_url: str
    discord_sb: Any
    discord_url: str
    people: dict[str, int]

    @property
    def forum(self) -> Any:
        return self.platforms.space("discourse").connector

    @property
    def discord(self) -> Any:
        return self.platforms.space("discord").connector

    def forum_state(self) -> dict[str, Any]:
        return httpx.get(f"{self.forum_url}/_sandbox/state", timeout=10).json()

    def discord_state(self) -> dict[str, Any]:
        return httpx.get(f"{self.discord_url}/_sandbox/state", timeout=10).json()

    def forum_act(self, **body: Any) -> dict[str, Any]:
        """A Forum moderator acts by hand (a staff action log row)."""
        r = httpx.post(f"{self.forum_url}/_sandbox/staff_action", json=body, timeout=10)
        r.raise_for_status()
        return r.json()

    def discord_act(self, **body: Any) -> dict[str, Any]:
        """A Discord moderator acts by hand (a guild audit-log entry)."""
        r = httpx.post(f"{self.discord_url}/_sandbox/audit_log", json=body, timeout=10)
        r.raise_for_status()
        return r.json()

    def suspend_on_forum(self, username: str, *, until: str = "2099-01-01T00:00:00Z", reason: str) -> None:
        """Suspend through the Forum's own API (as the API user)."""
        user = self.forum.find_user(username)
        self.forum.client.request(
            "PUT",
            f"/admin/users/{user.id}/suspend.json",
            what="suspend",
            json_body={"suspend_until": until, "reason": reason},
        )

    def moderators_channel(self) -> list[dict[str, Any]]:
        """Messages in the Discord moderators' channel, oldest first."""
        state = self.discord_state()
        cid = next(c["id"] for c in state["channels"] if c["name"] == "moderators")
        return [m for m in state["messages"] if m["channel_id"] == cid]

    def forum_moderator_pms(self) -> list[dict[str, Any]]:
        """Private messages sent to the Forum's moderators group (first posts)."""
        state = self.forum_state()
        gid = next(g["id"] for g in state["groups"] if g["name"] == "moderators")
        topics = {
            t["id"] for t in state["topics"] if t["archetype"] == "private_message" and ["group", gid] in t["allowed"]
        }
        return [p for p in state["posts"] if p["topic_id"] in topics and p["post_number"] == 1]


def press(world: World, *, user: str, message: dict[str, Any], custom_id: str) -> str:
    """``user`` presses the button ``custom_id`` on a Discord message: a signed interaction from
    the sandbox, verified, routed and stored as the gateway does, then handled as the worker
    does (``flows.inbox.handle_event``), after the gateway's deferred answer."""
    headers, body = world.discord_sb.signed_request(
        kind="component",
        payload={
            "user": user,
            "custom_id": custom_id,
            "message_id": message["id"],
            "channel_id": message["channel_id"],
        },
    )
    event = world.discord.verify(headers=headers, body=body)
    # The gateway's first answer: a deferred ephemeral "thinking…" (the handler follows up).

    world.discord.callback(event, deferred(ephemeral=True))
    route = inbox.route_for(
        source="discord", kind=event.kind, attributes=event.attributes, config=inbox.RoutingConfig()
    )
    return inbox.handle_event(
        world.ledger, store_verified(world.ledger, event, source="discord", route=route, received_at=NOW)
    )


def buttons(message: dict[str, Any]) -> list[str]:
    """The custom_ids of a message's buttons."""
    return [b["custom_id"] for row in message["components"] for b in row["components"]]


@contextmanager
def moderation_world(
    tmp_path: Path,
    *,
    names: tuple[str, ...] = ("cleo_marsh", "avery_quill"),
    extra: Callable[[Any, dict[str, int]], None] | None = None,
) -> Iterator[World]:
    """The seeded Forum and Discord sandboxes, served on loopback, and a ledger with ``names``
    linked to both (``extra(session, people)`` adds more in the same transaction); the flows of
    this process use its ledger and platforms while it is open."""
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    upgrade(ledger)
    fsb = DiscourseConnector.sandbox(seed=forum_seed())
    dsb = DiscordConnector.sandbox(seed=discord_seed())
    with LoopbackServer(fsb.app) as f_srv, LoopbackServer(dsb.app) as d_srv:
        forum = fsb.connect(f_srv.url, max_retries=1)
        discord = dsb.connect(d_srv.url, max_retries=1)
        platforms = forum_and_discord(forum, discord, secret="test-only-secret")
        people: dict[str, int] = {}
        with ledger.transaction() as session:
            for name in names:
                person = repo.create_person(session, handle=name, actor="operator", at=NOW)
                link_accounts(session, person, at=NOW, discourse=forum.find_user(name), discord=discord.find_user(name))
                people[name] = person.id
            if extra is not None:
                extra(session, people)
        with use(ledger=ledger, platforms=platforms):
            yield World(
                ledger=ledger,
                platforms=platforms,
                forum_sb=fsb,
                forum_url=f_srv.url,
                discord_sb=dsb,
                discord_url=d_srv.url,
                people=people,
            )
        forum.close()
        discord.close()
    ledger.dispose()
