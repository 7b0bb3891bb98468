"""The moderation tests' seeded platforms and helpers (their ``world`` fixture, in
tests/flows/moderation/conftest.py, overrides the membership one)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from ledger import repo
from ledger.db import Ledger
from flows.platforms import Platforms

NOW = datetime.now(UTC).replace(microsecond=0)


def forum_seed() -> dict[str, Any]:
    """Forum: an admin, a moderator, the WG member, the look-alike."""
    users = [{"id": -1, "username": "system", "admin": True, "moderator": True, "trust_level": 4},
             {"username": "avery_quill", "name": "Avery Quill", "admin": True, "trust_level": 4},
             {"username": "bram_tolliver", "name": "Bram Tolliver", "moderator": True, "trust_level": 3},
             {"username": "cleo_marsh", "name": "Cleo Marsh", "trust_level": 2},
             {"username": "rowan_vale", "name": "Rowan Vale", "trust_level": 1},
             {"username": "dario_fenwick", "name": "Dario Fenwick", "trust_level": 1}]
    return {"api_username": "system", "users": users,
            "groups": [{"name": "working-group", "members": ["avery_quill", "cleo_marsh"]},
                       {"name": "moderators", "members": ["bram_tolliver"]}],
            "categories": [{"name": "General"},
                           {"name": "Working Group", "read_restricted": True, "permissions": {"working-group": 1}}],
            "settings": {"admin_api_limit": 100000, "admin_api_window": 1.0}}


def discord_seed() -> dict[str, Any]:
    """Discord: the same people, plus ``esme_voss``; limits out of the way."""
    from connectors.discord.sandbox import DEFAULT_BUCKETS, default_seed

    seed = default_seed()
    seed["members"] = [
        {"username": "avery_quill", "roles": ["wg-member", "admin"]},
        {"username": "bram_tolliver", "roles": ["moderator"]},
        {"username": "cleo_marsh", "roles": ["wg-member"]},
        {"username": "rowan_vale", "roles": []},
        {"username": "esme_voss", "roles": []},
    ]
    seed["settings"] = {"global_limit": 100000, "buckets": {k: [100000, 1.0] for k in DEFAULT_BUCKETS}}
    return seed


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
        self.forum.client.request("PUT", f"/admin/users/{user.id}/suspend.json", what="suspend",
                                  json_body={"suspend_until": until, "reason": reason})

    def moderators_channel(self) -> list[dict[str, Any]]:
        """Messages in the Discord moderators' channel, oldest first."""
        state = self.discord_state()
        cid = next(c["id"] for c in state["channels"] if c["name"] == "moderators")
        return [m for m in state["messages"] if m["channel_id"] == cid]

    def forum_moderator_pms(self) -> list[dict[str, Any]]:
        """Private messages sent to the Forum's moderators group (first posts)."""
        state = self.forum_state()
        gid = next(g["id"] for g in state["groups"] if g["name"] == "moderators")
        topics = {t["id"] for t in state["topics"]
                  if t["archetype"] == "private_message" and ["group", gid] in t["allowed"]}
        return [p for p in state["posts"] if p["topic_id"] in topics and p["post_number"] == 1]


def press(world: World, *, user: str, message: dict[str, Any], custom_id: str) -> str:
    """``user`` presses the button ``custom_id`` on a Discord message: a signed interaction from
    the sandbox, verified, routed and stored as the gateway does, then handled as the worker
    does (``flows.inbox.handle_event``), after the gateway's deferred answer."""
    from flows import inbox

    headers, body = world.discord_sb.signed_request(kind="component", payload={
        "user": user, "custom_id": custom_id, "message_id": message["id"], "channel_id": message["channel_id"]})
    event = world.discord.verify(headers=headers, body=body)
    # The gateway's first answer: a deferred ephemeral "thinking…" (the handler follows up).
    from connectors.discord.payloads import deferred

    world.discord.callback(event, deferred(ephemeral=True))
    route = inbox.route_for(source="discord", kind=event.kind, attributes=event.attributes,
                            config=inbox.RoutingConfig())
    data = json.loads(json.dumps(dict(event.data), default=str))
    with world.ledger.transaction() as session:
        row, _ = repo.inbox_put(session, dedupe_key=event.dedupe_key, source="discord", kind=event.kind,
                                route=route, payload={"data": data, "attributes": dict(event.attributes),
                                                      "actor": event.actor}, received_at=NOW)
        event_id = row.id
    return inbox.handle_event(world.ledger, event_id)


def buttons(message: dict[str, Any]) -> list[str]:
    """The custom_ids of a message's buttons."""
    return [b["custom_id"] for row in message["components"] for b in row["components"]]
