"""Parlor's connector: the four capabilities a membership lifecycle needs, over httpx."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, ClassVar

import httpx

from connectors.base import (
    COMMUNITY_CAPABILITIES,
    Activity,
    Ballot,
    BallotBox,
    BallotOption,
    BallotRequest,
    Capability,
    ChangeStatus,
    MessageRef,
    Role,
    RoleChange,
    RoleKind,
    UserRef,
    Vote,
    url_instance,
)
from connectors.errors import ConfigError, FatalError, RetriableError

PLATFORM = "parlor"


class ParlorConnector(BallotBox):
    """Talks to one Parlor site with a bearer token."""

    name: ClassVar[str] = PLATFORM
    capabilities: ClassVar[frozenset[Capability]] = COMMUNITY_CAPABILITIES
    docs_url: ClassVar[str] = "https://parlor.example.invalid/docs/api"

    def __init__(self, *, url: str, token: str, transport: httpx.BaseTransport | None = None) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.url, transport=transport, timeout=10.0, headers={"Authorization": f"Bearer {token}"}
        )

    @classmethod
    def from_env(cls, **overrides: Any) -> ParlorConnector:
        """From ``CHARTERFLOW_PARLOR_URL`` and ``CHARTERFLOW_PARLOR_TOKEN``."""
        url = overrides.get("url") or os.environ.get("CHARTERFLOW_PARLOR_URL", "")
        token = overrides.get("token") or os.environ.get("CHARTERFLOW_PARLOR_TOKEN", "")
        if not url or not token:
            raise ConfigError("set CHARTERFLOW_PARLOR_URL and CHARTERFLOW_PARLOR_TOKEN")
        return cls(url=url, token=token)

    @classmethod
    def sandbox(cls, *, seed: Mapping[str, Any] | None = None, **options: Any) -> Any:
        """A ``ParlorSandbox``."""
        # lazy: cycle: charterflow_parlor.sandbox imports this module
        from charterflow_parlor.sandbox import ParlorSandbox

        return ParlorSandbox(seed=seed, **options)

    def close(self) -> None:
        """Release the HTTP client."""
        self._http.close()

    @property
    def instance(self) -> str:
        """The site's host."""
        return url_instance(self.url)

    def working_group_space(self) -> tuple[str, str]:
        """The WG's channel and group on Parlor."""
        return "wg", "working-group"

    def _call(self, method: str, path: str, *, what: str, body: Any = None) -> Any:
        try:
            response = self._http.request(method, path, json=body)
        except httpx.TransportError as exc:
            raise RetriableError(f"Parlor {what}: {type(exc).__name__}", platform=PLATFORM) from exc
        if response.status_code >= 500:
            raise RetriableError(
                f"Parlor {what}: {response.status_code}", platform=PLATFORM, status=response.status_code
            )
        if response.status_code >= 400:
            raise FatalError(
                f"Parlor {what}: {response.status_code} {response.text[:200]}",
                platform=PLATFORM,
                status=response.status_code,
            )
        return response.json()

    def _user(self, row: Mapping[str, Any]) -> UserRef:
        return UserRef(platform=PLATFORM, id=str(row["id"]), username=str(row["username"]))

    # Directory

    def find_user(self, username: str) -> UserRef:
        """The account called ``username``."""
        return self._user(self._call("GET", f"/api/users/{username}", what=f"user {username!r}"))

    def activity(self, user: UserRef) -> Activity:
        """Account age, posts, days visited, last seen."""
        row = self._call("GET", f"/api/users/{user.id}", what=f"user {user.id}")
        return Activity(
            user=user,
            created_at=datetime.fromisoformat(row["created_at"]),
            last_seen_at=datetime.fromisoformat(row["last_seen_at"]),
            post_count=int(row["posts"]),
            days_visited=int(row["days_visited"]),
        )

    def list_staff(self) -> list[UserRef]:
        """The site's admins."""
        return [self._user(r) for r in self._call("GET", "/api/staff", what="staff")]

    # RoleManager

    def list_holders(self, role: Role) -> list[UserRef]:
        """Members of the group, or the admins."""
        if role.kind is not RoleKind.GROUP:
            return self.list_staff()
        return [self._user(r) for r in self._call("GET", f"/api/groups/{role.name}", what=f"group {role.name}")]

    def _change(self, user: UserRef, role: Role, *, reason: str, grant: bool) -> RoleChange:
        if not reason.strip():
            raise ValueError("a role change needs an audit reason")
        if role.kind is not RoleKind.GROUP:
            raise FatalError(f"Parlor grants groups only, not {role}", platform=PLATFORM, status=400)
        action = "grant" if grant else "revoke"
        held = user.id in {u.id for u in self.list_holders(role)}
        if held == grant:  # re-read first: a retry reports UNCHANGED
            return RoleChange(user=user, role=role, action=action, status=ChangeStatus.UNCHANGED, reason=reason)
        self._call(
            "PUT" if grant else "DELETE",
            f"/api/groups/{role.name}/{user.id}",
            what=f"{action} {role} to {user.username}",
        )
        return RoleChange(user=user, role=role, action=action, status=ChangeStatus.APPLIED, reason=reason)

    def grant(self, user: UserRef, role: Role, *, reason: str) -> RoleChange:
        """Add ``user`` to the group."""
        return self._change(user, role, reason=reason, grant=True)

    def revoke(self, user: UserRef, role: Role, *, reason: str) -> RoleChange:
        """Remove ``user`` from the group."""
        return self._change(user, role, reason=reason, grant=False)

    # Messenger

    def _send(self, body: dict[str, Any], *, what: str) -> MessageRef:
        row = self._call("POST", "/api/messages", body=body, what=what)
        return MessageRef(platform=PLATFORM, id=str(row["id"]), thread_id=str(row["thread"]))

    def post(self, *, channel: str, title: str, text: str, key: str | None = None) -> MessageRef:
        """A new thread in ``channel``."""
        return self._send({"channel": channel, "title": title, "text": text, "key": key}, what="post")

    def reply(self, *, thread_id: str, text: str, key: str | None = None) -> MessageRef:
        """A reply in the thread."""
        return self._send({"thread": thread_id, "text": text, "key": key}, what="reply")

    def direct_message(self, *, recipients: Sequence[str], title: str, text: str, key: str | None = None) -> MessageRef:
        """A private message."""
        return self._send({"to": list(recipients), "title": title, "text": text, "key": key}, what="DM")

    # BallotBox

    def _ballot(self, row: Mapping[str, Any]) -> Ballot:
        return Ballot(
            platform=PLATFORM,
            id=str(row["id"]),
            question=str(row["question"]),
            is_open=bool(row["open"]),
            options=tuple(BallotOption(id=o["id"], label=o["label"]) for o in row["options"]),
        )

    def open_ballot_for(self, request: BallotRequest) -> Ballot:
        """A poll (idempotent by ``key``)."""
        row = self._call(
            "POST",
            "/api/polls",
            what="poll",
            body={
                "channel": request.channel,
                "question": request.question,
                "options": list(request.options),
                "group": request.voters_group,
                "key": request.key,
            },
        )
        return replace(self._ballot(row), closes_at=request.closes_at)

    def read_votes(self, ballot: Ballot) -> list[Vote]:
        """Every vote, with the voter."""
        row = self._call("GET", f"/api/polls/{ballot.id}", what=f"poll {ballot.id}")
        out = []
        for uid, option in sorted(row["votes"].items()):
            voter = self._user(self._call("GET", f"/api/users/{uid}", what=f"user {uid}"))
            out.append(Vote(voter=voter, option_id=str(option)))
        return out

    def close_ballot(self, ballot: Ballot, *, result: str | None = None) -> Ballot:
        """Close the poll (closing twice is fine)."""
        return self._ballot(self._call("PATCH", f"/api/polls/{ballot.id}", what=f"close poll {ballot.id}"))
