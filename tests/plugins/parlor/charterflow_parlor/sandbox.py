"""Parlor's sandbox: its whole (invented) REST API in memory, as a Starlette app."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from charterflow_parlor.connector import ParlorConnector
from connectors.base import Ballot, ConformanceSamples, Role

NOW = datetime.now(UTC).replace(microsecond=0)


def default_seed() -> dict[str, Any]:
    """Two members of the ``working-group`` group, one admin, a lurker to grant roles to."""
    old = (NOW - timedelta(days=500)).isoformat()
    return {
        "users": [
            {"username": "parlor_host", "admin": True, "created_at": old, "posts": 900, "days_visited": 400},
            {"username": "cleo_marsh", "created_at": old, "posts": 50, "days_visited": 90},
            {"username": "dario_fenwick", "created_at": old, "posts": 40, "days_visited": 80},
            {"username": "tamsin_reed", "created_at": old, "posts": 3, "days_visited": 5},
        ],
        "groups": {"working-group": ["cleo_marsh", "dario_fenwick"]},
    }


class ParlorSandbox:
    """The platform's state and its app; ``connect(url)`` gives a connector pointed at it."""

    samples = ConformanceSamples(
        username="cleo_marsh",
        missing_username="nobody_here",
        grantable_role=Role.group("helpers"),
        channel="wg",
        recipients=("cleo_marsh", "dario_fenwick"),
        voters=("cleo_marsh", "dario_fenwick"),
        voters_group="working-group",
    )

    def __init__(self, *, seed: Mapping[str, Any] | None = None) -> None:
        seed = default_seed() if seed is None else seed
        self.token = "parlor-" + secrets.token_hex(12)
        self._lock = threading.Lock()
        self.users: dict[str, dict[str, Any]] = {}
        for n, user in enumerate(seed.get("users", []), start=1):
            self.users[str(n)] = {
                "id": str(n),
                "admin": False,
                "posts": 0,
                "days_visited": 0,
                "last_seen_at": NOW.isoformat(),
                **user,
            }
        self.groups: dict[str, set[str]] = {
            name: {self._id(u) for u in members} for name, members in seed.get("groups", {}).items()
        }
        self.messages: list[dict[str, Any]] = []
        self.polls: dict[str, dict[str, Any]] = {}
        self.requests: dict[str, int] = {}
        self.app = Starlette(
            routes=[
                Route("/api/users/{username}", self._user),
                Route("/api/staff", self._staff),
                Route("/api/groups/{group}", self._group),
                Route("/api/groups/{group}/{uid}", self._membership, methods=["PUT", "DELETE"]),
                Route("/api/messages", self._message, methods=["POST"]),
                Route("/api/polls", self._open_poll, methods=["POST"]),
                Route("/api/polls/{pid}", self._poll, methods=["GET", "PATCH"]),
                Route("/api/polls/{pid}/votes", self._vote, methods=["POST"]),
                Route("/_sandbox/state", self._state),
            ]
        )

    def _id(self, username: str) -> str:
        return next(u["id"] for u in self.users.values() if u["username"] == username)

    async def _guard(self, request: Request) -> JSONResponse | None:
        key = f"{request.method} {request.scope['route'].path}" if "route" in request.scope else request.url.path
        self.requests[key] = self.requests.get(key, 0) + 1
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        return None

    async def _user(self, request: Request) -> JSONResponse:
        if (denied := await self._guard(request)) is not None:
            return denied
        name = request.path_params["username"]
        found = [u for u in self.users.values() if u["username"] == name or u["id"] == name]
        return JSONResponse(found[0]) if found else JSONResponse({"error": "no such user"}, status_code=404)

    async def _staff(self, request: Request) -> JSONResponse:
        if (denied := await self._guard(request)) is not None:
            return denied
        return JSONResponse([u for u in self.users.values() if u["admin"]])

    async def _group(self, request: Request) -> JSONResponse:
        if (denied := await self._guard(request)) is not None:
            return denied
        members = self.groups.get(request.path_params["group"], set())
        return JSONResponse([self.users[i] for i in sorted(members)])

    async def _membership(self, request: Request) -> JSONResponse:
        if (denied := await self._guard(request)) is not None:
            return denied
        uid = request.path_params["uid"]
        if uid not in self.users:
            return JSONResponse({"error": "no such user"}, status_code=404)
        with self._lock:
            members = self.groups.setdefault(request.path_params["group"], set())
            (members.add if request.method == "PUT" else members.discard)(uid)
        return JSONResponse({"members": sorted(members)})

    async def _message(self, request: Request) -> JSONResponse:
        if (denied := await self._guard(request)) is not None:
            return denied
        body = await request.json()
        with self._lock:
            # The platform's own idempotency: a message with a key already used is returned.
            same = [m for m in self.messages if body.get("key") and m["key"] == body["key"]]
            if same:
                return JSONResponse(same[0])
            mid = str(len(self.messages) + 1)
            message = {
                "id": mid,
                "thread": body.get("thread") or mid,
                "key": body.get("key"),
                "to": body.get("to"),
                "channel": body.get("channel"),
                "title": body.get("title"),
                "text": body.get("text", ""),
            }
            self.messages.append(message)
        return JSONResponse(message, status_code=201)

    async def _open_poll(self, request: Request) -> JSONResponse:
        if (denied := await self._guard(request)) is not None:
            return denied
        body = await request.json()
        with self._lock:
            same = [p for p in self.polls.values() if body.get("key") and p["key"] == body["key"]]
            if same:
                return JSONResponse(same[0])
            pid = str(len(self.polls) + 1)
            self.polls[pid] = {
                "id": pid,
                "key": body.get("key"),
                "question": body["question"],
                "options": [{"id": f"{pid}-{n}", "label": label} for n, label in enumerate(body["options"])],
                "group": body.get("group"),
                "open": True,
                "votes": {},
            }
        return JSONResponse(self.polls[pid], status_code=201)

    async def _poll(self, request: Request) -> JSONResponse:
        if (denied := await self._guard(request)) is not None:
            return denied
        poll = self.polls.get(request.path_params["pid"])
        if poll is None:
            return JSONResponse({"error": "no such poll"}, status_code=404)
        if request.method == "PATCH":
            poll["open"] = False
        return JSONResponse(poll)

    async def _vote(self, request: Request) -> JSONResponse:
        # A member's vote, as the platform's own client sends it (bearer = the member).
        poll = self.polls.get(request.path_params["pid"])
        body = await request.json()
        if poll is None or not poll["open"]:
            return JSONResponse({"error": "poll closed"}, status_code=409)
        voter = self._id(body["voter"])
        if poll["group"] and voter not in self.groups.get(poll["group"], set()):
            return JSONResponse({"error": "not in the voters' group"}, status_code=403)
        poll["votes"][voter] = body["option"]
        return JSONResponse(poll)

    async def _state(self, request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "users": list(self.users.values()),
                "requests": dict(self.requests),
                "groups": {g: sorted(self.users[i]["username"] for i in m) for g, m in self.groups.items()},
                "messages": self.messages,
                "polls": list(self.polls.values()),
            }
        )

    # The Sandbox protocol

    def client_info(self, base_url: str) -> dict[str, Any]:
        """What a client needs: the URL and the token."""
        return {"CHARTERFLOW_PARLOR_URL": base_url, "CHARTERFLOW_PARLOR_TOKEN": self.token}

    def connect(self, base_url: str, **options: Any) -> Any:
        """A connector pointed at the sandbox."""
        return ParlorConnector(url=base_url, token=self.token, **options)

    def cast_vote(self, base_url: str, ballot: Ballot, *, voter: str, option_index: int) -> None:
        """``voter`` votes through the platform's API."""
        httpx.post(
            f"{base_url}/api/polls/{ballot.id}/votes",
            timeout=10,
            json={"voter": voter, "option": ballot.options[option_index].id},
        ).raise_for_status()

    def signed_request(self, *, kind: str, payload: Mapping[str, Any]) -> tuple[dict[str, str], bytes]:
        """Parlor pushes nothing (the connector declares no ``Inbound``)."""
        raise NotImplementedError("Parlor sends no inbound requests")
