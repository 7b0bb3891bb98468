"""A loopback emulator of the Discourse endpoints charterflow uses, on the sandbox kit. It behaves
as Discourse does where that matters to a client (``specs/API-NOTES.md`` section 2); what it
emulates and its control routes: ``connectors/README.md``, "The Discourse sandbox"."""

from __future__ import annotations

import copy
import hashlib
import html
import json
import math
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import httpx
from pydantic import Field, field_validator

from connectors.base import Ballot, ConformanceSamples, Role
from connectors.discourse.connector import DiscourseConnector
from connectors.discourse.doctor import WEBHOOK_EVENTS
from connectors.discourse.inbound import sign_body
from connectors.discourse.settings import DiscourseSettings
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

__all__ = ["DiscourseSandbox", "SandboxSeed", "default_seed"]

# Every field the OpenAPI document requires of each answer, with a neutral default (it forbids
# additional properties on most): a handler copies one and fills in what it knows.
_shapes = SimpleNamespace(**data_file(__file__, "shapes.json"))
_EVENT_TYPES = {"reviewable_score_updated": "reviewable_updated"}  # the type a webhook subscribes to
# Discourse's granular API key scopes (ApiKeyScope.default_mappings) and the routes here each covers.
_SCOPES: dict[str, dict[str, list[str]]] = data_file(__file__, "scopes.json")


# Who an unauthenticated request acts as: sees what an anonymous visitor of a public site sees.
ANONYMOUS: dict[str, Any] = {
    "id": None,
    "username": "",
    "name": "",
    "admin": False,
    "moderator": False,
    "email": None,
    "trust_level": 0,
    "anonymous": True,
}


# A username's and a group name's characters and length (User/Group validations).
_NAME = r"[A-Za-z0-9_.\-]{2,60}"


class SeedUser(SeedModel):
    """A user of the sandbox site (invented people only)."""

    id: int | None = None
    username: str = Field(pattern=f"^{_NAME}$")
    name: str | None = None
    email: str | None = None
    admin: bool = False
    moderator: bool = False
    trust_level: int = Field(default=1, ge=0, le=4)
    created_at: datetime = datetime(2023, 1, 10, 9, 0, tzinfo=UTC)
    last_seen_at: datetime | None = None
    last_posted_at: datetime | None = None
    days_visited: int = 0
    post_count: int = 0
    likes_given: int = 0
    likes_received: int = 0
    second_factor_enabled: bool = False
    active: bool = True


class SeedGroup(SeedModel):
    """A group and its members (by username)."""

    id: int | None = None
    name: str = Field(pattern=f"^{_NAME}$")
    full_name: str | None = None
    members: list[str] = []


class SeedCategory(SeedModel):
    """A category; ``read_restricted`` makes it private."""

    id: int | None = None
    name: str
    slug: str | None = None
    read_restricted: bool = False
    permissions: dict[str, int] = {}  # group name -> 1 full, 2 create_post, 3 readonly
    color: str = "0088CC"
    # What the composer starts with for a new topic here (category settings → Topic Template).
    topic_template: str | None = None


class SeedApiKey(SeedModel):
    """An admin API key; ``username`` null means "All users" (any Api-Username); ``scopes`` empty
    means Scope Global, else a granular key's ``resource:action`` scopes (``scopes.json``)."""

    key: str = Field(min_length=8)
    username: str | None = None
    description: str = ""
    scopes: list[str] = []

    @field_validator("scopes")
    @classmethod
    def _known(cls, scopes: list[str]) -> list[str]:
        if unknown := sorted(set(scopes) - set(_SCOPES)):
            raise ValueError(f"not Discourse scopes: {unknown}; its scopes: {sorted(_SCOPES)}")
        return scopes


class SeedSettings(SeedModel):
    """Site and global settings the sandbox honours (Discourse's defaults)."""

    admin_api_limit: int = Field(default=60, ge=1)
    admin_api_window: float = Field(default=60.0, gt=0)
    ip_limit: int | None = Field(default=None, ge=1)  # off: Discourse exempts private IPs
    ip_window: float = Field(default=10.0, gt=0)
    min_topic_title_length: int = 15
    min_post_length: int = 20
    min_first_post_length: int = 20
    min_personal_message_title_length: int = 2
    min_personal_message_post_length: int = 10
    max_post_length: int = Field(default=32000, ge=1)
    unique_posts_mins: float = 5.0
    grant_admin_confirmation_hours: float = 3.0
    # A delivery answered other than 2xx is sent again after these delays, as Discourse's
    # retry_web_hook_events does (on: 1, 5, 25, 125 min), under a new X-Discourse-Event-Id; then
    # dropped. [] (that setting's default, off) sends each once. A delivery not answered at all
    # (the gateway down) is never sent again (app/jobs/regular/emit_web_hook_event.rb).
    webhook_retry_delays: list[float] = []


class SeedWebhook(SeedModel):
    """Where the sandbox sends webhooks (``url`` null: nowhere), the secret it signs with, whether
    it is active and the event types it sends (Discourse's names; ``ping`` is always sent)."""

    url: str | None = None
    secret: str | None = None
    active: bool = True
    events: list[str] = [*WEBHOOK_EVENTS, "ping"]  # charterflow's webhook, as the doctor wants it

    @field_validator("events")
    @classmethod
    def _known(cls, events: list[str]) -> list[str]:
        if unknown := sorted(set(events) - {"ping", *_shapes.WEB_HOOK_EVENT_TYPES}):
            raise ValueError(f"not Discourse event types: {unknown}; its types: {sorted(_shapes.WEB_HOOK_EVENT_TYPES)}")
        return events


class SandboxSeed(SeedModel):
    """The whole initial state of a sandbox (``charterflow sandbox discourse --seed FILE``)."""

    instance: str | None = None
    api_username: str = "system"
    api_keys: list[SeedApiKey] = []
    users: list[SeedUser]
    groups: list[SeedGroup] = []
    categories: list[SeedCategory] = []
    settings: SeedSettings = SeedSettings()
    webhook: SeedWebhook = SeedWebhook()
    # X-Discourse-Event-Id of the first webhook; a restarted sandbox in front of a kept ledger
    # starts above the old ids so its events are not taken for replays.
    first_event_id: int = Field(default=1, ge=1)


def default_seed() -> dict[str, Any]:
    """The default site: invented members, a private working-group category and group."""
    return data_file(__file__, "seed.json")


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse_ts(value: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "topic"


def _error(status: int, message: str, error_type: str | None = None, **extra: Any) -> Reply:
    return Reply(status, {"errors": [message], **({"error_type": error_type} if error_type else {}), **extra})


def _not_found() -> Reply:
    return _error(404, "The requested URL or resource could not be found.", "not_found")


def _invalid_access(message: str = "You are not permitted to view the requested resource.") -> Reply:
    return _error(403, message, "invalid_access")


def _key_allows(key: SeedApiKey, method: str, route: Any) -> bool:
    """``ApiKey#request_allowed?``: a Global key (no scopes) may call anything, a granular one what
    one of its scopes covers, and ``session#scopes``; Discourse refuses the rest as it refuses a
    wrong key (the route the sandbox lacks still answers 501)."""
    covered = {r for s in key.scopes for r in _SCOPES[s]["routes"]}
    asked = {f"{method} *", f"{method} {route.template}"} if route else set()
    return not key.scopes or not asked or route.template == "/session/scopes.json" or bool(covered & asked)


def _invalid_parameters(message: str) -> Reply:
    return _error(400, message, "invalid_parameters")


# ``access``: who a route exists for, "user", "staff" or "admin".
_route = Routes(access="user")


class DiscourseSandbox(Sandbox):
    """A Discourse site in memory, served as an ASGI app (``sandbox.app``).

    ``seed`` is a mapping in the ``SandboxSeed`` shape (``default_seed()`` when ``None``);
    ``settings`` overrides ``seed["settings"]`` (for example ``admin_api_window=2.0`` to scale
    the admin limit down for a test); ``webhook_url``/``webhook_secret`` override the seed's.
    """

    routes = _route
    ok_body = {"success": "OK"}
    control_forms = True

    def __init__(
        self,
        *,
        seed: Mapping[str, Any] | None = None,
        settings: Mapping[str, Any] | None = None,
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
    ) -> None:
        raw = dict(seed if seed is not None else default_seed())
        raw["webhook"] = {
            **dict(raw.get("webhook") or {}),
            **{k: v for k, v in (("url", webhook_url), ("secret", webhook_secret)) if v is not None},
        }
        self.seed = load_seed(SandboxSeed, raw, settings)
        self._setup()
        self._webhook_wake = threading.Event()
        self._webhook_closed = False
        self._webhook_thread: threading.Thread | None = None
        # Called (outside the lock) after the sandbox changed on its own (a webhook delivery),
        # so a keeper of its state can save it (charterflow.sandbox_state).
        self.on_change: Callable[[], None] | None = None
        self._reset()

    # ---- state -------------------------------------------------------------------------------

    def _reset(self) -> None:
        seed = self.seed
        with self._lock:
            self.settings = seed.settings.model_copy()
            keys = seed.api_keys or [SeedApiKey(key="sbx_" + secrets.token_hex(24), description="sandbox (all users)")]
            self.api_keys = {k.key: k for k in keys}
            self.webhook = seed.webhook.model_copy(
                update={
                    "secret": "whsec_" + secrets.token_hex(16) if seed.webhook.secret is None else seed.webhook.secret
                }
            )
            self.users: dict[int, dict[str, Any]] = {}
            for u in seed.users:
                uid = max([0, *self.users]) + 1 if u.id is None else u.id
                if uid in self.users or self._user_by_name(u.username):
                    raise ConfigError(f"invalid sandbox seed: duplicate user {u.username!r}")
                self.users[uid] = {**u.model_dump(), "id": uid}
            self._seeded_user(seed.api_username, "api_username")
            groups = (
                {
                    "id": i if g.id is None else g.id,
                    "name": g.name,
                    "full_name": g.full_name,
                    "members": dict.fromkeys(
                        (self._seeded_user(name, f"group {g.name!r} member")["id"] for name in g.members),
                        "2024-01-01T00:00:00.000Z",
                    ),
                }
                for i, g in enumerate(seed.groups, start=41)
            )
            self.groups = {g["id"]: g for g in groups}
            categories = (
                {**c.model_dump(), "id": i if c.id is None else c.id, "slug": c.slug or _slug(c.name)}
                for i, c in enumerate(seed.categories, start=4)
            )
            self.categories = {cat["id"]: cat for cat in categories}
            self.topics: dict[int, dict[str, Any]] = {}
            self.posts: dict[int, dict[str, Any]] = {}
            self._next_topic, self._next_post = 100, 1000
            self.role_changes: list[dict[str, Any]] = []
            self.pending_admin: dict[str, dict[str, Any]] = {}
            self.emails: list[dict[str, Any]] = []
            self.webhook_deliveries: list[dict[str, Any]] = []
            # Deliveries not answered 2xx yet: {event_id, event, url, body, headers, attempts, due}.
            self.webhook_pending: list[dict[str, Any]] = []
            self.hook_events: dict[str, dict[str, Any]] = {}  # WebHookEvent rows by id (sandbox_hooks.py)
            self.uploads: dict[int, dict[str, Any]] = {}
            self.staff_actions: list[dict[str, Any]] = []
            self.flags: list[dict[str, Any]] = []  # {id, post_id, user_id, type, at}
            self._next_event = seed.first_event_id
            self._admin_hits = SlidingWindow(self.settings.admin_api_limit, self.settings.admin_api_window)
            self._ip_hits: dict[str, SlidingWindow] = {}
            self._reset_stats()

    def _user_by_name(self, username: str) -> dict[str, Any] | None:
        return next((u for u in self.users.values() if u["username"].lower() == username.lower()), None)

    def _seeded_user(self, username: str, where: str) -> dict[str, Any]:
        if (user := self._user_by_name(username)) is None:
            raise ConfigError(f"invalid sandbox seed: {where} {username!r} is not a user")
        return user

    def _group_by_name(self, name: str) -> dict[str, Any] | None:
        return next((g for g in self.groups.values() if g["name"].lower() == name.lower()), None)

    @property
    def api_key(self) -> str:
        """The first API key (what ``client_info`` hands out)."""
        return next(iter(self.api_keys))

    @property
    def instance(self) -> str:
        """The site URL used in ``X-Discourse-Instance`` (set from the first request's Host)."""
        return self.seed.instance or getattr(self, "_instance", "http://127.0.0.1")

    # ---- the framework's Sandbox protocol ----------------------------------------------------

    # Names from the default seed the conformance suite exercises.
    samples = ConformanceSamples(
        username="cleo_marsh",
        missing_username="nobody_by_this_name",
        grantable_role=Role.group("board"),
        channel="Working Group",
        recipients=("cleo_marsh", "working-group"),
        voters=("cleo_marsh", "dario_fenwick"),
        voters_group="working-group",
        inbound_kind="post_created",
        inbound_payload={"post": {"id": 7, "topic_id": 3, "post_number": 2, "username": "cleo_marsh", "raw": "hello"}},
    )

    def client_info(self, base_url: str) -> dict[str, Any]:
        """Base URL, credentials and the matching ``CHARTERFLOW_DISCOURSE_*`` variables."""
        base_url = base_url.rstrip("/")
        return {
            "connector": "discourse",
            "base_url": base_url,
            "credentials": {
                "api_key": self.api_key,
                "api_username": self.seed.api_username,
                "webhook_secret": self.webhook.secret,
            },
            "headers": {"Api-Key": self.api_key, "Api-Username": self.seed.api_username},
            "env": {
                "CHARTERFLOW_DISCOURSE_URL": base_url,
                "CHARTERFLOW_DISCOURSE_API_KEY": self.api_key,
                "CHARTERFLOW_DISCOURSE_API_USERNAME": self.seed.api_username,
                "CHARTERFLOW_DISCOURSE_WEBHOOK_SECRET": self.webhook.secret,
                "CHARTERFLOW_DISCOURSE_ADMIN_RATE_LIMIT": str(self.settings.admin_api_limit),
                "CHARTERFLOW_DISCOURSE_ADMIN_RATE_WINDOW": f"{self.settings.admin_api_window:g}",
            },
            "admin_api_limit": {
                "requests": self.settings.admin_api_limit,
                "window_seconds": self.settings.admin_api_window,
            },
            "control": {"state": f"{base_url}/_sandbox/state", "faults": f"{base_url}/_sandbox/faults"},
        }

    def connect(self, base_url: str, **options: Any) -> Any:
        """A ``DiscourseConnector`` for this sandbox; ``options`` override settings fields,
        except ``transport``, ``clock``, ``rng`` and ``retry`` which go to the connector."""
        extra = {k: options.pop(k) for k in ("transport", "clock", "rng", "retry") if k in options}
        vars(self).setdefault("_instance", base_url.rstrip("/"))  # the site URL its webhooks name
        values: dict[str, Any] = {
            "url": base_url,
            **self.client_info(base_url)["credentials"],
            "category": "Working Group",
            "group": "working-group",
            "admin_rate_limit": self.settings.admin_api_limit,
            "admin_rate_window": self.settings.admin_api_window,
            "timeout": 10.0,
            "max_retries": 4,
            **options,
        }
        return DiscourseConnector(settings=DiscourseSettings(_env_file=None, **values), **extra)

    def cast_vote(self, base_url: str, ballot: Ballot, *, voter: str, option_index: int) -> None:
        """Vote as ``voter`` through ``PUT /polls/vote`` (an all-users key acting as the voter)."""
        httpx.put(
            f"{base_url.rstrip('/')}/polls/vote",
            headers={"Api-Key": self.api_key, "Api-Username": voter},
            json={"post_id": int(ballot.id), "poll_name": "vote", "options": [ballot.options[option_index].id]},
            timeout=10.0,
        ).raise_for_status()

    # ---- state snapshot ----------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """Everything inspectable, JSON-ready (``GET /_sandbox/state``)."""
        with self._lock:
            return {
                "users": [
                    {k: _iso(v) if isinstance(v, datetime) else v for k, v in u.items()}
                    for u in sorted(self.users.values(), key=lambda u: u["id"])
                ],
                "groups": [
                    {
                        "id": g["id"],
                        "name": g["name"],
                        "full_name": g["full_name"],
                        "members": sorted(self.users[m]["username"] for m in g["members"]),
                    }
                    for g in self.groups.values()
                ],
                "categories": list(self.categories.values()),
                "topics": [
                    {k: v for k, v in t.items() if k != "posts"} | {"post_ids": list(t["posts"])}
                    for t in self.topics.values()
                ],
                "posts": [{k: v for k, v in p.items() if k != "polls"} for p in self.posts.values()],
                "polls": [
                    {
                        "post_id": p["id"],
                        **{k: poll[k] for k in ("name", "status", "public", "results", "groups")},
                        "options": [{"id": o["id"], "label": o["label"]} for o in poll["options"]],
                        "votes": {self.users[uid]["username"]: opts for uid, opts in poll["votes"].items()},
                    }
                    for p in self.posts.values()
                    for poll in p["polls"]
                ],
                "role_changes": list(self.role_changes),
                "staff_actions": copy.deepcopy(self.staff_actions),
                "flags": copy.deepcopy(self.flags),
                "pending_admin_confirmations": [
                    {k: v[k] for k in ("user_id", "requested_by", "expires_at")} for v in self.pending_admin.values()
                ],
                "emails": list(self.emails),
                "webhook": {"url": self.webhook.url, "events": self.webhook.events},
                "webhook_deliveries": list(self.webhook_deliveries),
                "webhook_pending": [
                    {k: p[k] for k in ("event_id", "event", "attempts", "due")} for p in self.webhook_pending
                ],
                "uploads": [{k: v for k, v in u.items() if k != "content"} for u in self.uploads.values()],
                "settings": self.settings.model_dump(),
                **self.stats(),
            }

    # ---- the platform ------------------------------------------------------------------------

    def error(self, status: int, message: str) -> Reply:
        return _invalid_parameters(message) if status == 400 else _not_found()

    def parse_faults(self, data: Mapping[str, Any]) -> dict[str, Any]:
        out = check_faults(data, extra=("methods",))
        methods = data.get("methods", [])
        if not isinstance(methods, list) or not all(isinstance(m, str) for m in methods):
            raise ValueError('methods must be a list of HTTP methods, e.g. ["PUT", "DELETE"]')
        return out | ({"methods": sorted({m.upper() for m in methods})} if "methods" in data else {})

    def _note_host(self, req: Call) -> None:
        if not hasattr(self, "_instance") and "host" in req.headers:
            self._instance = req.base_url

    def handle(self, req: Call) -> Reply:
        self._note_host(req)
        if storm := self.take_storm():
            return self._rate_limit_response(int(storm.get("retry_after", 1)), "storm", req)
        # errors injected only on the fault's methods when it names some (e.g. writes, not reads)
        if req.method in (self.faults.get("methods") or [req.method]) and (status := self.injected_status(503)):
            self.count(f"{req.method} {req.path}", status)
            return Reply(status, text=f"sandbox: injected HTTP {status}\n")
        # The paths a request may name a JSON route by: Rails takes the format from ``.json`` or
        # from ``Accept: application/json``, and ``/users/{u}`` is the older alias of ``/u/{u}``.
        json_asked = not req.path.endswith(".json") and "application/json" in req.headers.get("accept", "")
        paths = [req.path, *([req.path.rstrip("/") + ".json"] if json_asked else [])]
        route, params = _route.match(
            req.method, *paths, *["/u/" + p.removeprefix("/users/") for p in paths if p.startswith("/users/")]
        )
        response = self._handle_locked(req, route, params)
        self.count(f"{req.method} {route.template if route else req.path}", response.status)
        return response

    def _rate_limit_response(self, wait_seconds: int, kind: str, req: Call) -> Reply:
        self.note_limited(kind=kind, request=f"{req.method} {req.path}")
        wait_seconds = max(1, int(wait_seconds))
        time_left = f"{wait_seconds} second" + ("s" if wait_seconds != 1 else "")
        return Reply(
            429,
            {
                "errors": [
                    f"You’ve performed this action too many times. Please wait {time_left} before trying again."
                ],
                "error_type": "rate_limit",
                "extras": {"wait_seconds": wait_seconds, "time_left": time_left},
            },
            headers={"Retry-After": str(wait_seconds), "Discourse-Rate-Limit-Error-Code": "admin_api_key_rate_limit"},
        )

    def _handle_locked(self, req: Call, route: Any, params: dict[str, str]) -> Reply:
        """The IP limit, authentication, the admin limit, then routing: the admin/staff route
        constraints answer 404 when they fail; a visitor (no credentials, as on a public site) gets
        GETs only, anything else needs a login (403)."""
        now = time.monotonic()
        # 1. The per-IP middleware (RequestTracker) runs before anything else.
        # A window per client only while the limit is on (a reset clears them when it changes).
        if (limit := self.settings.ip_limit) is not None:
            hits = self._ip_hits.setdefault(req.client_ip, SlidingWindow(limit, self.settings.ip_window))
            if (wait := hits.wait(now)) is not None:
                self.note_limited(kind="ip", request=f"{req.method} {req.path}")
                wait = max(1, math.ceil(wait))
                return Reply(
                    429,
                    text=f"Slow down, too many requests from this IP address. Please retry again in {wait} seconds. "
                    "Error code: ip_10_secs_limit.",
                    headers={"Retry-After": str(wait)},
                )
        # 2. API key authentication. No key at all: an anonymous visitor of a public site.
        key, username = req.headers.get("api-key"), req.headers.get("api-username") or ""
        if key:
            api_key, user = self.api_keys.get(key), self._user_by_name(username) if username else None
            if (
                api_key is None
                or user is None
                or (api_key.username and api_key.username.lower() != username.lower())
                or not _key_allows(api_key, req.method, route)
            ):
                return _invalid_access(
                    "You are not permitted to view the requested resource. The API username or key is invalid."
                )
            # A key may not act as a suspended or deactivated user: Discourse's plain InvalidAccess
            # (lib/auth/default_current_user_provider.rb), not the bad-credentials message.
            if not user["active"] or _until_later(user.get("suspended_till")):
                return _invalid_access()
            # 3. The admin API limit, shared by every admin key of the site (a sliding window).
            if (wait := self._admin_hits.wait(now)) is not None:
                return self._rate_limit_response(math.ceil(wait), "admin_api", req)
        else:
            user = dict(ANONYMOUS)
        # 4. Routing.
        if route is None:
            return _error(NOT_EMULATED_STATUS, not_emulated(req.method, req.path), "not_emulated")
        if (route.access == "admin" and not user["admin"]) or (
            route.access == "staff" and not (user["admin"] or user["moderator"])
        ):
            return _not_found()
        if user.get("anonymous") and req.method != "GET":
            return _invalid_access()
        if req.body.strip() and "json" in req.headers.get("content-type", ""):
            try:
                json.loads(req.body)
            except ValueError:
                # Rails fails to parse the params (ActionDispatch ParseError) before any validation.
                return _invalid_parameters("You supplied invalid parameters to the request: the body is not valid JSON")
        req.params, req.user = params, user
        return route.handler(self, req)

    # ---- control routes --------------------------------------------------------------------

    async def _control(self, call: Call) -> Reply:
        self._note_host(call)
        return await super()._control(call)

    @control("confirm_admin")
    def _confirm_admin(self, req: Call, data: dict[str, Any]) -> Reply:
        with self._lock:
            for token, pending in list(self.pending_admin.items()):
                if str(pending["user_id"]) == str(data.get("user_id")) or token == data.get("token"):
                    target = self.users[self.pending_admin.pop(token)["user_id"]]
                    target["admin"] = True
                    self._record_role_change("grant_admin", target, pending["requested_by"], "confirmed")
                    return Reply(200, {"success": "OK", "user_id": target["id"]})
        return _not_found()

    @control("webhooks/ping")
    def _ping(self, req: Call, data: dict[str, Any]) -> Reply:
        self._emit("ping", {"ping": "OK"})
        return Reply(200, {"success": "OK"})

    @control("staff_action")
    def _staff_action(self, req: Call, data: dict[str, Any]) -> Reply:
        with self._lock:
            acting = self._user_by_name(str(data.get("acting_user") or ""))
            target = self._user_by_name(str(data["target_user"])) if data.get("target_user") else None
            if acting is None or (data.get("target_user") and target is None) or not data.get("action_name"):
                return _invalid_parameters("action_name and a known acting_user (and target_user) are required")
            return Reply(
                200,
                self.log_staff_action(
                    str(data["action_name"]),
                    acting=acting,
                    target=target,
                    details=str(data.get("details") or ""),
                    **{
                        k: data[k]
                        for k in ("context", "post_id", "topic_id", "new_value", "previous_value", "flagged_at")
                        if data.get(k) is not None
                    },
                ),
            )

    # ---- the staff action log ------------------------------------------------------------

    def log_staff_action(
        self,
        action_name: str,
        *,
        acting: Mapping[str, Any],
        target: Mapping[str, Any] | None,
        details: str = "",
        **extra: Any,
    ) -> dict[str, Any]:
        """Add a row to the staff action log (``UserHistorySerializer`` fields)."""
        entry = shaped(
            _shapes.STAFF_ACTION,
            id=len(self.staff_actions) + 1,
            action_name=action_name,
            details=details,
            action=_STAFF_ACTION_IDS.get(action_name, 0),
            created_at=_iso(datetime.now(UTC)),
            acting_user=self._basic_user(acting),
            target_user=target and self._basic_user(target),
            **extra,
        )
        self.staff_actions.append(entry)
        return entry

    # ---- serializers -------------------------------------------------------------------------

    def _avatar(self, user: Mapping[str, Any]) -> str:
        return f"/letter_avatar_proxy/v4/letter/{user['username'][0].lower()}/8e7dd6/{{size}}.png"

    def _basic_user(self, user: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "id": user["id"],
            "username": user["username"],
            "name": user["name"],
            "avatar_template": self._avatar(user),
        }

    def _user_groups(self, user: Mapping[str, Any]) -> list[dict[str, Any]]:
        return [
            shaped(
                _shapes.USER_GROUP,
                id=g["id"],
                name=g["name"],
                display_name=g["name"],
                full_name=g["full_name"],
                user_count=len(g["members"]),
            )
            for g in self.groups.values()
            if user["id"] in g["members"]
        ]

    def _admin_user(self, user: Mapping[str, Any], acting: Mapping[str, Any]) -> dict[str, Any]:
        # Not in the spec's schema (which forbids extra fields), so not sent: last_posted_at.
        return self._list_item(
            user,
            _shapes.ADMIN_USER,
            ip_address="127.0.0.1",
            can_grant_admin=bool(acting["admin"]) and not user["admin"],
            can_revoke_admin=bool(acting["admin"]) and user["admin"] and user["id"] != acting["id"],
            can_grant_moderation=bool(acting["admin"]) and not user["moderator"],
            can_revoke_moderation=bool(acting["admin"]) and user["moderator"],
            groups=self._user_groups(user),
        )

    def _list_item(
        self, user: Mapping[str, Any], shape: Mapping[str, Any] = _shapes.ADMIN_USER_LIST_ITEM, **more: Any
    ) -> dict[str, Any]:
        return shaped(
            shape,
            id=user["id"],
            username=user["username"],
            name=user["name"],
            avatar_template=self._avatar(user),
            active=user["active"],
            admin=user["admin"],
            moderator=user["moderator"],
            last_seen_at=_iso(user["last_seen_at"]),
            created_at=_iso(user["created_at"]),
            trust_level=user["trust_level"],
            days_visited=user["days_visited"],
            post_count=user["post_count"],
            time_read=user["days_visited"] * 600,
            posts_read_count=user["post_count"] * 7,
            topics_entered=user["days_visited"] * 2,
            **more,
        )

    def _user_show(self, user: Mapping[str, Any]) -> dict[str, Any]:
        groups = self._user_groups(user)
        return shaped(
            _shapes.USER_SHOW,
            id=user["id"],
            username=user["username"],
            name=user["name"] or "",
            avatar_template=self._avatar(user),
            last_posted_at=_iso(user["last_posted_at"]),
            last_seen_at=_iso(user["last_seen_at"]),
            created_at=_iso(user["created_at"]),
            trust_level=user["trust_level"],
            moderator=user["moderator"],
            admin=user["admin"],
            post_count=user["post_count"],
            time_read=user["days_visited"] * 600,
            second_factor_enabled=user["second_factor_enabled"],
            groups=groups,
            group_users=[{"group_id": g["id"], "user_id": user["id"], "notification_level": 3} for g in groups],
            system_avatar_template=self._avatar(user),
            user_option=shaped(_shapes.USER_SHOW["user_option"], user_id=user["id"]),
        )

    def _post_fields(
        self, post: Mapping[str, Any], template: Mapping[str, Any], acting: Mapping[str, Any]
    ) -> dict[str, Any]:
        author, topic = self.users[post["user_id"]], self.topics[post["topic_id"]]
        values = dict(
            id=post["id"],
            name=author["name"],
            username=author["username"],
            avatar_template=self._avatar(author),
            created_at=post["created_at"],
            updated_at=post["created_at"],
            cooked=post["cooked"],
            post_number=post["post_number"],
            posts_count=len(topic["posts"]),
            topic_id=topic["id"],
            topic_slug=topic["slug"],
            display_username=author["name"],
            yours=author["id"] == acting["id"],
            moderator=author["moderator"],
            admin=author["admin"],
            staff=bool(author["admin"] or author["moderator"]),
            user_id=author["id"],
            trust_level=author["trust_level"],
            post_url=f"/t/{topic['slug']}/{topic['id']}/{post['post_number']}",
            raw=post["raw"],
            topic_title=topic["title"],
            topic_html_title=html.escape(topic["title"]),
            topic_title_headline=html.escape(topic["title"]),
            category_id=topic["category_id"],
            excerpt=html.escape(post["raw"][:100]),
            truncated=len(post["raw"]) > 100,
        )
        return shaped(template, **{k: v for k, v in values.items() if k in template})

    def _poll_json(self, poll: Mapping[str, Any], post: Mapping[str, Any], user: Mapping[str, Any]) -> dict[str, Any]:
        """A poll as ``user`` reads it (``PollSerializer``): ``public`` only on a public poll, each
        option's count only when ``user`` may see results (``Poll#can_see_results?``); the number
        of voters always."""
        see = _can_see_results(poll, post, user)
        return {
            "name": poll["name"],
            "type": poll["type"],
            "status": poll["status"],
            "results": poll["results"],
            "chart_type": "bar",
            "title": None,
            "options": [
                {
                    "id": o["id"],
                    "html": o["html"],
                    **({"votes": sum(chosen.count(o["id"]) for chosen in poll["votes"].values())} if see else {}),
                }
                for o in poll["options"]
            ],
            "voters": len(poll["votes"]),
            **({"public": True} if poll["public"] else {}),
            **{key: poll[key] for key in ("groups", "close") if poll[key]},
        }

    # ---- writes ------------------------------------------------------------------------------

    def _record_role_change(
        self, action: str, target: Mapping[str, Any], acting: str, status: str = "applied", detail: str = ""
    ) -> None:
        self.role_changes.append(
            {
                "at": _iso(datetime.now(UTC)),
                "action": action,
                "user_id": target["id"],
                "username": target["username"],
                "acting_user": acting,
                "status": status,
                "detail": detail,
            }
        )

    def _emit(self, event: str, payload: dict[str, Any]) -> None:
        # WebHook::EVENT_NAME_TO_EVENT_TYPE_MAP: the event type a webhook subscribes to.
        if not (self.webhook.url and self.webhook.active) or _EVENT_TYPES.get(event, event) not in self.webhook.events:
            return
        with self._lock:
            headers, body = self.signed_request(kind=event, payload=payload)
            self.webhook_pending.append(
                {
                    "event_id": headers["X-Discourse-Event-Id"],
                    "event": event,
                    "url": self.webhook.url,
                    "body": body.decode("utf-8"),
                    "headers": headers,
                    "attempts": 0,
                    "due": time.time(),
                }
            )
        self.resume_webhooks()

    def resume_webhooks(self) -> None:
        """Make sure pending deliveries are being sent (also after the state was restored)."""
        with self._lock:
            if not self.webhook_pending or self._webhook_closed:
                return
            if self._webhook_thread is None or not self._webhook_thread.is_alive():
                self._webhook_thread = threading.Thread(
                    target=self._deliver_webhooks, name="sandbox-webhooks", daemon=True
                )
                self._webhook_thread.start()
        self._webhook_wake.set()

    def signed_request(self, *, kind: str, payload: Mapping[str, Any]) -> tuple[dict[str, str], bytes]:
        """A webhook delivery as this sandbox sends it (headers, raw body); it takes the next
        event id."""
        with self._lock:
            event_id, self._next_event = self._next_event, self._next_event + 1
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        headers = {
            "Content-Type": "application/json",
            "Host": "127.0.0.1",
            "User-Agent": "Discourse/3.5.0",
            "X-Discourse-Instance": self.instance,
            "X-Discourse-Event-Id": str(event_id),
            "X-Discourse-Event-Type": "ping" if kind == "ping" else kind.split("_", 1)[0],
            "X-Discourse-Event": kind,
            **({"X-Discourse-Event-Signature": sign_body(self.webhook.secret, body)} if self.webhook.secret else {}),
        }
        return headers, body

    def _deliver_webhooks(self) -> None:
        """Send the pending deliveries when due, earliest first; idle for 5 s: end."""
        idle_since = time.monotonic()
        with httpx.Client(timeout=20.0) as client:
            while not self._webhook_closed:
                with self._lock:
                    item = min(self.webhook_pending, key=lambda p: (p["due"], int(p["event_id"])), default=None)
                    if item is None and time.monotonic() - idle_since > 5.0:
                        self._webhook_thread = None  # the next _emit starts another
                        return
                if item is not None and item["due"] <= time.time():
                    idle_since = time.monotonic()
                    self._attempt(client, item)
                else:
                    self._webhook_wake.wait(min(item["due"] - time.time(), 1.0) if item else 1.0)
                    self._webhook_wake.clear()

    def _attempt(self, client: httpx.Client, item: dict[str, Any]) -> None:
        record = {
            "event_id": item["event_id"],
            "event": item["event"],
            "url": item["url"],
            "attempt": item["attempts"] + 1,
        }
        try:
            record["status"] = client.post(
                item["url"], content=item["body"].encode("utf-8"), headers=item["headers"]
            ).status_code
        except httpx.HTTPError as exc:
            record.update(status=None, error=type(exc).__name__)
        with self._lock:
            delays = self.settings.webhook_retry_delays
            item["attempts"] += 1
            self.hook_events[item["event_id"]] = {
                "id": int(item["event_id"]),
                "payload": item["body"],
                "headers": json.dumps(item["headers"]),
                "status": record["status"] or -1,  # Discourse's -1: no answer
                "created_at": self.hook_events.get(item["event_id"], {}).get("created_at", _iso(datetime.now(UTC))),
            }
            if record["status"] is not None and 200 <= record["status"] < 300:
                self.webhook_pending.remove(item)
            elif record["status"] is None or item["attempts"] > len(delays):
                self.webhook_pending.remove(item)
                record["gave_up"] = True
            else:  # Discourse's retry is a new emit job: a new WebHookEvent, so a new event id
                record["retry_in"] = delays[item["attempts"] - 1]
                item.update(due=time.time() + record["retry_in"], event_id=str(self._next_event))
                item["headers"] = {**item["headers"], "X-Discourse-Event-Id": item["event_id"]}
                self._next_event += 1
            self.webhook_deliveries.append(record)
        if self.on_change is not None:
            self.on_change()

    def close(self) -> None:
        """Stop the webhook sender (pending deliveries stay in the state, unsent)."""
        self._webhook_closed = True
        self._webhook_wake.set()

    def _reviewable(self, post: Mapping[str, Any], flags: list[dict[str, Any]]) -> dict[str, Any]:
        """A flagged post's review as Reviewable webhooks carry it (ReviewableFlaggedPostSerializer)."""
        topic = self.topics[post["topic_id"]]
        url = f"{self.instance}/t/{topic['slug']}/{topic['id']}"
        return shaped(
            _shapes.REVIEWABLE_FLAGGED_POST,
            id=flags[0]["id"],
            topic_id=topic["id"],
            topic_url=url,
            target_id=post["id"],
            post_id=post["id"],
            target_url=f"{url}/{post['post_number']}",
            target_created_at=post["created_at"],
            post_updated_at=post["created_at"],
            category_id=topic["category_id"],
            created_at=flags[0]["at"],
            score=float(len(flags)),
            created_by=self._basic_user(self.users[flags[0]["user_id"]]),
            target_created_by=self._basic_user(self.users[post["user_id"]]),
            raw=post["raw"],
            cooked=post["cooked"],
            reviewable_scores=[
                shaped(
                    _shapes.REVIEWABLE_SCORE,
                    id=f["id"],
                    created_at=f["at"],
                    user=self._basic_user(self.users[f["user_id"]]),
                    # The message opens a conversation with the moderators (ReviewableConversationSerializer).
                    reviewable_conversation=f["message"]
                    and {
                        "id": f["id"],
                        "permalink": f"{url}/{post['post_number']}",
                        "has_more": False,
                        "conversation_posts": [
                            {"id": f["id"], "excerpt": f["message"], "user": self._basic_user(self.users[f["user_id"]])}
                        ],
                    }
                    or None,
                    score_type={
                        "id": f["type"],
                        "title": _FLAG_TYPES[f["type"]][1],
                        "reviewable_priority": 0,
                        "icon": "flag",
                        "type": _FLAG_TYPES[f["type"]][0],
                    },
                )
                for f in flags
            ],
        )

    def _post_payload(self, post: Mapping[str, Any]) -> dict[str, Any]:
        author, topic = self.users[post["user_id"]], self.topics[post["topic_id"]]
        return {
            "post": {
                "id": post["id"],
                "name": author["name"],
                "username": author["username"],
                "avatar_template": self._avatar(author),
                "created_at": post["created_at"],
                "cooked": post["cooked"],
                "raw": post["raw"],
                "post_number": post["post_number"],
                "post_type": 1,
                "topic_id": topic["id"],
                "topic_slug": topic["slug"],
                "topic_title": topic["title"],
                "category_id": topic["category_id"],
                "topic_archetype": topic["archetype"],
                "user_id": author["id"],
            }
        }


# --------------------------------------------------------------------------------------------
# Endpoint handlers


def _int_param(value: str | None) -> int | None:
    try:
        return int(str(value).removesuffix(".json"))
    except (TypeError, ValueError):
        return None


def _target(sb: DiscourseSandbox, req: Call) -> dict[str, Any] | Reply:
    return sb.users.get(_int_param(req.params["id"]) or 0) or _not_found()


def _named_group(sb: DiscourseSandbox, req: Call) -> dict[str, Any] | Reply:
    return sb._group_by_name(req.params["name"]) or _not_found()


# UserHistory.actions ids of the rows the sandbox writes (others: 0).
_STAFF_ACTION_IDS = {
    "delete_user": 1,
    "suspend_user": 10,
    "unsuspend_user": 11,
    "delete_post": 19,
    "silence_user": 30,
    "unsilence_user": 31,
    "post_rejected": 89,
    "post_approved": 73,
}


@_route("GET", "/admin/logs/staff_action_logs.json", access="staff")
def _staff_action_logs(sb: DiscourseSandbox, req: Call) -> Reply:
    page, limit = _int_param(req.arg("page", "0")), _int_param(req.arg("limit", "200"))
    if page is None or page < 0 or limit is None:
        return _invalid_parameters("page and limit must be integers")
    limit = min(max(limit, 1), 200)
    rows = [
        r
        for r in reversed(sb.staff_actions)
        if not req.arg("action_name") or r["action_name"] == req.arg("action_name")
    ]
    return Reply(
        200,
        {
            "staff_action_logs": copy.deepcopy(rows[page * limit : (page + 1) * limit]),
            "total_rows_staff_action_logs": len(rows),
            "load_more_staff_action_logs": f"/admin/logs/staff_action_logs.json?limit={limit}&page={page + 1}",
            "extras": {
                "user_history_actions": [{"id": n, "action_id": i} for n, i in sorted(_STAFF_ACTION_IDS.items())]
            },
        },
    )


# PUT /admin/users/{id}/suspend.json {suspend_until, reason} and silence.json {silenced_till, reason}.
@_route(
    "PUT",
    "/admin/users/{id}/suspend.json",
    access="staff",
    bind={"kind": "suspend", "past": "suspended", "field": "suspend_until"},
    find=_target,
)
@_route(
    "PUT",
    "/admin/users/{id}/silence.json",
    access="staff",
    bind={"kind": "silence", "past": "silenced", "field": "silenced_till"},
    find=_target,
)
def _restrict(sb: DiscourseSandbox, req: Call, target: dict[str, Any], kind: str, past: str, field: str) -> Reply:
    data = req.form()
    if missing := next((name for name in (field, "reason") if not data.get(name)), None):
        return _invalid_parameters(f"param is missing or the value is empty: {missing}")
    if (until := _parse_ts(data[field])) is None:
        return _invalid_parameters(f"{field} is not a date")
    if target["admin"]:
        return _invalid_access()
    till, reason = _iso(until), str(data["reason"])
    target[f"{past}_till"] = till
    sb.log_staff_action(
        f"{kind}_user", acting=req.user, target=target, details=reason, new_value=till, post_id=data.get("post_id")
    )
    answer = {
        f"{kind}_reason": reason,
        f"full_{kind}_reason": reason,
        f"{past}_till": till,
        f"{past}_at": _iso(datetime.now(UTC)),
        f"{past}_by": _poster(sb, req.user),
    }
    return Reply(200, {"suspension": answer} if kind == "suspend" else {"silence": {"silenced": True, **answer}})


@_route("PUT", "/admin/users/{id}/unsuspend.json", access="staff", find=_target)
def _unsuspend(sb: DiscourseSandbox, req: Call, target: dict[str, Any]) -> Reply:
    # Admin::UsersController#unsuspend: clears the suspension, logs unsuspend_user.
    target.pop("suspended_till", None)
    sb.log_staff_action("unsuspend_user", acting=req.user, target=target)
    return Reply(200, {"suspension": {"suspended_till": None, "suspended_at": None}})


@_route("GET", "/session/scopes.json")
def _key_scopes(sb: DiscourseSandbox, req: Call) -> Reply:
    # SessionController#scopes (ApiKeyScopeSerializer): a Global key has none; 404 without a key.
    if (key := sb.api_keys.get(req.headers.get("api-key") or "")) is None:
        return _not_found()
    return Reply(
        200,
        {
            "scopes": [
                {
                    "resource": scope.split(":")[0],
                    "action": scope.split(":")[1].replace("_", " "),
                    "key": scope.split(":")[1],
                    "parameters": _SCOPES[scope]["parameters"],
                    "urls": [
                        f"{r.split()[1].removesuffix('.json')} ({r.split()[0]})" for r in _SCOPES[scope]["routes"]
                    ],
                    "allowed_parameters": {},
                }
                for scope in key.scopes
            ]
        },
    )


@_route("GET", "/u/{username}.json", find=lambda sb, req: sb._user_by_name(req.params["username"]) or _not_found())
def _get_user(sb: DiscourseSandbox, req: Call, user: dict[str, Any]) -> Reply:
    return Reply(200, {"user_badges": [], "user": sb._user_show(user)})


def _until_later(till: str | None) -> bool:
    return bool(till) and str(till) > str(_iso(datetime.now(UTC)))


# The lists of /admin/users/list/{flag}.json (AdminUserIndexQuery): suspended and silenced
# ("blocked" of old) while their *_till is ahead; nobody is suspect here.
_USER_LISTS: dict[str, Callable[[dict[str, Any]], bool]] = {
    "staff": lambda u: u["admin"] or u["moderator"],
    "active": lambda u: u["active"],
    "new": lambda u: u["trust_level"] == 0,
    "suspended": lambda u: _until_later(u.get("suspended_till")),
    **dict.fromkeys(("silenced", "blocked"), lambda u: _until_later(u.get("silenced_till"))),
    "suspect": lambda u: False,
}


@_route("GET", "/admin/users/list/{flag}.json", access="staff")
def _list_users(sb: DiscourseSandbox, req: Call) -> Reply:
    """``AdminUsersController#index``: a list it does not know is every user (``all``, as
    pydiscourse's ``user_by_email`` asks), narrowed by ``email`` (exact) or ``filter`` (a
    username or e-mail holding it)."""
    keep = _USER_LISTS.get(req.params["flag"], lambda u: True)
    email, part = (req.arg("email") or "").lower(), (req.arg("filter") or "").strip().lower()
    page = max(_int_param(req.arg("page", "1")) or 1, 1)
    users = [
        u
        for u in sorted(sb.users.values(), key=lambda u: u["id"])
        if keep(u)
        and (not email or (u["email"] or "").lower() == email)
        and (not part or part in u["username"].lower() or part in (u["email"] or "").lower())
    ]
    return Reply(200, [sb._list_item(u) for u in users[(page - 1) * 100 : page * 100]])


@_route("GET", "/admin/users/{id}.json", access="staff", find=_target)
def _admin_get_user(sb: DiscourseSandbox, req: Call, user: dict[str, Any]) -> Reply:
    return Reply(200, sb._admin_user(user, req.user or {}))


_ADMIN_ACTION: dict[str, Any] = {"access": "admin", "optional_json": True, "find": _target}


# Guardian#can_grant_moderation? is false for a moderator; nobody may revoke their own admin or
# the system user's (id below 0).
@_route("PUT", "/admin/users/{id}/grant_moderation.json", **_ADMIN_ACTION, bind={"role": "moderator", "grant": True})
@_route("PUT", "/admin/users/{id}/revoke_moderation.json", **_ADMIN_ACTION, bind={"role": "moderator", "grant": False})
@_route("PUT", "/admin/users/{id}/revoke_admin.json", **_ADMIN_ACTION, bind={"role": "admin", "grant": False})
def _set_role(sb: DiscourseSandbox, req: Call, target: dict[str, Any], role: str, grant: bool) -> Reply:
    if target[role] == grant or (role == "admin" and (target["id"] == req.user["id"] or target["id"] < 0)):
        return _invalid_access()
    target[role] = grant
    sb._record_role_change(
        f"{'grant' if grant else 'revoke'}_{'moderation' if role == 'moderator' else 'admin'}",
        target,
        req.user["username"],
    )
    return Reply(200, sb._admin_user(target, req.user))


@_route("PUT", "/admin/users/{id}/grant_admin.json", **_ADMIN_ACTION)
def _grant_admin(sb: DiscourseSandbox, req: Call, target: dict[str, Any]) -> Reply:
    if target["admin"]:
        return _invalid_access()
    if req.user["second_factor_enabled"]:
        # The second-factor challenge cannot be completed over the API.
        return Reply(403, {"second_factor_challenge_nonce": secrets.token_hex(16)})
    token, hours = secrets.token_hex(16), sb.settings.grant_admin_confirmation_hours
    sb.pending_admin[token] = {
        "user_id": target["id"],
        "requested_by": req.user["username"],
        "expires_at": _iso(datetime.now(UTC) + timedelta(hours=hours)),
    }
    sb.emails.append(
        {
            "to": req.user["email"] or f"{req.user['username']}@example.invalid",
            "type": "admin_confirmation",
            "about": target["username"],
            "token": token,
        }
    )
    sb._record_role_change("grant_admin", target, req.user["username"], "email_confirmation_required")
    return Reply(200, {"success": "OK", "email_confirmation_required": True})


@_route("GET", "/admin/api/web_hooks.json", access="admin")
def _web_hooks(sb: DiscourseSandbox, req: Call) -> Reply:
    # Admin::WebHooksController#index (AdminWebHookSerializer): the sandbox's one webhook, if it
    # has a URL; its last delivery's status (1 none yet, 2 failed, 3 succeeded; 4 inactive).
    hook, last = sb.webhook, (sb.webhook_deliveries or [{}])[-1].get("status")
    status = 4 if not hook.active else 1 if not sb.webhook_deliveries else 3 if last and 200 <= last < 300 else 2
    hooks = (
        [
            shaped(
                _shapes.WEB_HOOK,
                payload_url=hook.url,
                secret=hook.secret,
                active=hook.active,
                last_delivery_status=status,
                web_hook_event_types=[
                    {"id": _shapes.WEB_HOOK_EVENT_TYPES[e][0], "name": e, "group": _shapes.WEB_HOOK_EVENT_TYPES[e][1]}
                    for e in hook.events
                    if e != "ping"
                ],
            )
        ]
        if hook.url
        else []
    )
    return Reply(
        200,
        {
            "web_hooks": hooks,
            "extras": _shapes.WEB_HOOK_EXTRAS,
            "total_rows_web_hooks": len(hooks),
            "load_more_web_hooks": "/admin/api/web_hooks.json?limit=50&offset=50",
        },
    )


@_route("GET", "/admin/site_settings.json", access="admin")
def _site_settings(sb: DiscourseSandbox, req: Call) -> Reply:
    # Behind AdminConstraint on Discourse (a 404 to non-admins): `charterflow doctor` uses it to
    # prove the key reaches admin-only routes. Only the site title, never a secret setting.
    return Reply(
        200,
        {
            "site_settings": [
                {
                    "setting": "title",
                    "value": "Sandbox Forum",
                    "type": "string",
                    "category": "required",
                    "default": "Discourse",
                }
            ]
        },
    )


@_route("GET", "/groups/{name}.json", find=_named_group)
def _get_group(sb: DiscourseSandbox, req: Call, group: dict[str, Any]) -> Reply:
    return Reply(
        200,
        {
            "group": shaped(
                _shapes.GROUP_SHOW,
                id=group["id"],
                name=group["name"],
                full_name=group["full_name"],
                is_group_user=req.user["id"] in group["members"],
                automatic=group["name"] in _shapes.AUTO_GROUPS,
            ),
            "extras": {"visible_group_names": sorted(g["name"] for g in sb.groups.values())},
        },
    )


@_route("POST", "/admin/groups.json", access="admin")
def _create_group(sb: DiscourseSandbox, req: Call) -> Reply:
    """``Admin::GroupsController#create`` (``{"group": {name, full_name, usernames, ...}}``): a
    name taken by a group or a user is refused as Group's validation does; the listed users join."""
    data = req.form().get("group")
    if not isinstance(data, dict):
        return _invalid_parameters("param is missing or the value is empty: group")
    name = str(data.get("name") or "")
    if not re.fullmatch(_NAME, name):
        return _error(422, "Name must only include numbers, letters, dashes, dots, and underscores")
    if sb._group_by_name(name) or sb._user_by_name(name):
        return _error(422, "Name has already been taken")
    users = [u for n in str(data.get("usernames") or "").split(",") if (u := sb._user_by_name(n.strip()))]
    gid = max([40, *sb.groups]) + 1
    group = sb.groups[gid] = {
        "id": gid,
        "name": name,
        "full_name": data.get("full_name") or None,
        "members": {u["id"]: _iso(datetime.now(UTC)) for u in users},
    }
    basic = shaped(_shapes.BASIC_GROUP, id=gid, name=name, full_name=group["full_name"], user_count=len(users))
    return Reply(200, {"basic_group": basic | {"title": data.get("title") or None}})


@_route("GET", "/groups/search.json")
def _search_groups(sb: DiscourseSandbox, req: Call) -> Reply:
    """``GroupsController#search``: the first 20 groups by name whose name or full name holds
    ``term`` (the sandbox's groups are all visible and none automatic)."""
    term = (req.arg("term") or "").lower()
    found = [g for g in sb.groups.values() if term in g["name"].lower() or term in (g["full_name"] or "").lower()]
    return Reply(
        200,
        [
            shaped(_shapes.GROUP_SHOW, id=g["id"], name=g["name"], full_name=g["full_name"])
            | {"display_name": g["name"], "user_count": len(g["members"])}
            for g in sorted(found, key=lambda g: g["name"])[:20]
        ],
    )


@_route("GET", "/groups/{name}/members.json", find=_named_group)
def _group_members(sb: DiscourseSandbox, req: Call, group: dict[str, Any]) -> Reply:
    limit, offset = _int_param(req.arg("limit", "50")), _int_param(req.arg("offset", "0"))
    if limit is None or offset is None or limit < 1 or offset < 0:
        return _invalid_parameters("limit and offset must be non-negative integers")
    if limit > 1000:
        return _invalid_parameters("limit must be at most 1000")
    members = sorted(
        ((sb.users[uid], added) for uid, added in group["members"].items()), key=lambda m: m[0]["username"]
    )
    return Reply(
        200,
        {
            # Never posted or seen: the account's creation stands in (else the day it joined).
            "members": [
                shaped(
                    _shapes.GROUP_MEMBER,
                    id=user["id"],
                    username=user["username"],
                    name=user["name"],
                    avatar_template=sb._avatar(user),
                    last_posted_at=_iso(user["last_posted_at"]) or _iso(user["created_at"]) or added,
                    last_seen_at=_iso(user["last_seen_at"]) or _iso(user["created_at"]) or added,
                    added_at=added,
                )
                for user, added in members[offset : offset + limit]
            ],
            "owners": [],
            "meta": {"total": len(members), "limit": limit, "offset": offset},
        },
    )


def _membership(sb: DiscourseSandbox, req: Call) -> tuple[dict[str, Any], list[dict[str, Any]], list[str]] | Reply:
    """The group of the path, the known users the body names and the names unknown. An automatic
    group (moderators, trust_level_N…) is refused: Guardian#can_edit_group? is false for it
    (lib/guardian/group_guardian.rb)."""
    group = sb.groups.get(_int_param(req.params["id"]) or 0)
    names = [n.strip() for n in str(req.form().get("usernames") or "").split(",") if n.strip()]
    if group is None or group["name"] in _shapes.AUTO_GROUPS:
        return _invalid_access() if group else _not_found()
    if not names:
        return _invalid_parameters("param is missing or the value is empty: usernames")
    users = {u["id"]: u for n in names if (u := sb._user_by_name(n))}  # a name given twice counts once
    return group, list(users.values()), [n for n in names if sb._user_by_name(n) is None]


@_route("PUT", "/groups/{id}/members.json", find=_membership, bind={"add": True})
@_route("DELETE", "/groups/{id}/members.json", find=_membership, bind={"add": False})
def _change_members(
    sb: DiscourseSandbox, req: Call, found: tuple[dict[str, Any], list[dict[str, Any]], list[str]], add: bool
) -> Reply:
    # GroupsController#add_members and #remove_member: the users not yet in (still in) the group
    # are added (removed); adding only members already in is a 422, removing others skips them.
    group, users, missing = found
    changed = [u for u in users if (u["id"] in group["members"]) != add]
    if add and not users:
        return _invalid_parameters(f"Could not find user(s): {', '.join(missing)}")
    if add and not changed:
        already = sorted(u["username"] for u in users)
        noun = "is already a member" if len(already) == 1 else "are already members"
        return _error(422, f"{', '.join(already)} {noun} of this group.")
    for user in changed:
        if add:
            group["members"][user["id"]] = _iso(datetime.now(UTC))
        else:
            del group["members"][user["id"]]
        sb._record_role_change(f"group_{'add' if add else 'remove'}:{group['name']}", user, req.user["username"])
    # add_members also lists the e-mails it invited (none here); remove_member the names it skipped.
    skipped = missing + [u["username"] for u in users if u not in changed]
    more = {"emails": []} if add else {"skipped_usernames": skipped}
    return Reply(200, {"success": "OK", "usernames": [u["username"] for u in changed], **more})


def _category_json(sb: DiscourseSandbox, cat: Mapping[str, Any]) -> dict[str, Any]:
    return shaped(
        _shapes.CATEGORY,
        id=cat["id"],
        name=cat["name"],
        color=cat["color"],
        slug=cat["slug"],
        topic_count=sum(1 for t in sb.topics.values() if t["category_id"] == cat["id"]),
        post_count=sum(len(t["posts"]) for t in sb.topics.values() if t["category_id"] == cat["id"]),
        position=sorted(sb.categories).index(cat["id"]),
        read_restricted=cat["read_restricted"],
        topic_template=cat.get("topic_template"),
    )


@_route("GET", "/categories.json")
def _categories(sb: DiscourseSandbox, req: Call) -> Reply:
    anonymous = bool(req.user.get("anonymous"))
    return Reply(
        200,
        {
            "category_list": {
                "can_create_category": not anonymous,
                "can_create_topic": not anonymous,
                "categories": [
                    _category_json(sb, cat)
                    for cat in sorted(sb.categories.values(), key=lambda c: c["id"])
                    if not (anonymous and cat["read_restricted"])  # a visitor sees only the public categories
                ],
            }
        },
    )


_POLL_RE = re.compile(r"\[poll([^\]]*)\](.*?)\[/poll\]", re.DOTALL)


def _parse_polls(raw: str) -> list[dict[str, Any]] | str:
    polls: list[dict[str, Any]] = []
    for match in _POLL_RE.finditer(raw):
        attrs = {k: v.strip('"') for k, v in re.findall(r"(\w+)=(\"[^\"]*\"|\S+)", match.group(1))}
        labels = [m.group(1).strip() for m in re.finditer(r"^\s*(?:[*\-]|\d+\.)\s+(.+)$", match.group(2), re.MULTILINE)]
        name = attrs.get("name", "poll")
        if len(labels) < 2:
            return "Poll must have at least 2 options."
        if len(set(labels)) != len(labels) or any(p["name"] == name for p in polls):
            return f"Poll {'options' if len(set(labels)) != len(labels) else 'names'} must be unique."
        polls.append(
            {
                "name": name,
                "type": attrs.get("type", "regular"),
                "status": attrs.get("status", "open"),
                "public": attrs.get("public") == "true",
                "results": attrs.get("results", "always"),
                "groups": attrs.get("groups") or None,
                "close": attrs.get("close") or None,
                # The poll plugin names an option by an MD5 digest of its cooked HTML.
                "options": [
                    {"id": hashlib.md5(json.dumps([h]).encode("utf-8")).hexdigest(), "html": h, "label": label}  # noqa: S324 - not security
                    for label in labels
                    for h in [html.escape(label)]
                ],
                "votes": {},
            }
        )
    return polls


def _cook(raw: str) -> str:
    text = re.sub(r"<!--.*?-->", "", _POLL_RE.sub("", raw), flags=re.DOTALL).strip()
    return "".join(f"<p>{html.escape(p)}</p>" for p in text.split("\n\n") if p.strip())


def _recipient(sb: DiscourseSandbox, name: str) -> tuple[str, int] | None:
    user, group = sb._user_by_name(name), sb._group_by_name(name)
    return ("user", user["id"]) if user else ("group", group["id"]) if group else None


def _recipients(sb: DiscourseSandbox, data: Mapping[str, Any]) -> tuple[list[str], list[tuple[str, int]]]:
    """A private message's errors and recipients (users or groups, by name)."""
    names = [
        n.strip()
        for n in str(data.get("target_recipients") or data.get("target_usernames") or "").split(",")
        if n.strip()
    ]
    found = [(name, _recipient(sb, name)) for name in names]
    unknown = [f"Sorry, there is no user or group called {name}." for name, ref in found if ref is None]
    errors = unknown if names else ["You must choose a valid user."]
    return errors, [ref for _, ref in found if ref is not None]


def _new_topic_errors(
    sb: DiscourseSandbox, data: Mapping[str, Any], is_pm: bool
) -> tuple[list[str], list[tuple[str, int]], int | None]:
    """A new topic's errors, its PM recipients and its category."""
    errors, recipients = _recipients(sb, data) if is_pm else ([], [])
    category_id = None if is_pm else _int_param(data.get("category"))
    if category_id is not None and category_id not in sb.categories:
        errors.append("Category can't be blank")
    if (external_id := data.get("external_id")) and any(t["external_id"] == external_id for t in sb.topics.values()):
        errors.append("External ID has already been taken")
    # Topic's `unique_among` validation (app/models/topic.rb): a title is used once among the
    # site's topics, any case, PMs aside (the site setting allow_duplicate_topic_titles is off).
    if not is_pm and any(
        t["archetype"] == "regular" and t["title"].lower() == str(data.get("title") or "").strip().lower()
        for t in sb.topics.values()
    ):
        errors.append("Title has already been used")
    return errors, recipients, category_id


def _body_errors(sb: DiscourseSandbox, raw: str, min_body: int, acting: Mapping[str, Any]) -> list[str]:
    errors, settings = [], sb.settings
    if len(raw) > settings.max_post_length:
        # StrippedLengthValidator: the unstripped length, checked before the minimum.
        errors.append(f"Body is limited to {settings.max_post_length} characters; you entered {len(raw)}.")
    # StrippedLengthValidator.get_sanitized_value: HTML comments (one line each, Ruby's `.`) do
    # not count, an emoji code counts one, dots and commas once
    # (lib/validators/stripped_length_validator.rb).
    elif len(re.sub(r"\.{2,}|,{2,}|:\w+(:\w+)?:", "X", re.sub(r"<!--.*?-->", "", raw)).strip()) < min_body:
        errors.append(f"Body is too short (minimum is {min_body} characters)")
    # PostValidator#unique_post_validator: the same raw from the same user within
    # unique_posts_mins, staff exempt (lib/validators/post_validator.rb).
    if (
        raw.strip()
        and not (acting["admin"] or acting["moderator"])
        and any(
            p["user_id"] == acting["id"]
            and p["raw"].strip() == raw.strip()
            and p["_ts"] > time.time() - settings.unique_posts_mins * 60
            for p in sb.posts.values()
        )
    ):
        errors.append("Body is too similar to what you recently posted")
    return errors


@_route("POST", "/posts.json")
def _create_post(sb: DiscourseSandbox, req: Call) -> Reply:
    data, acting, settings = req.form(), req.user, sb.settings
    raw, is_pm, topic = str(data.get("raw") or ""), data.get("archetype") == "private_message", None
    if (topic_id := _int_param(data.get("topic_id"))) is not None:
        if (topic := sb.topics.get(topic_id)) is None:
            return _not_found()
        pm_reply, errors = topic["archetype"] == "private_message", []
        min_body = settings.min_personal_message_post_length if pm_reply else settings.min_post_length
    else:
        title = str(data.get("title") or "").strip()
        min_title = settings.min_personal_message_title_length if is_pm else settings.min_topic_title_length
        min_body = settings.min_personal_message_post_length if is_pm else settings.min_first_post_length
        # TopicTitleLengthValidator (max_topic_title_length: 255, its highest value), and on a
        # topic QualityTitleValidator's TextSentinel.title_sentinel (lib/text_sentinel.rb): 10
        # distinct bytes, a letter or digit, no word over title_max_word_length (30). An all-caps
        # title is not refused: title_prettify lowers it first (lib/text_cleaner.rb).
        errors = [
            message
            for message, wrong in (
                (f"Title is too short (minimum is {min_title} characters)", len(title) < min_title),
                ("Title is too long (maximum is 255 characters)", len(title) > 255),
                (
                    "Title seems unclear, is it a complete sentence?",
                    not is_pm
                    and (
                        len(set(title.encode())) < (10 if min_title > 10 else int(min_title * 0.7))
                        or not re.search(r"[^\W_]", title)
                        or re.search(r"[^\W_]{31,}", title)
                    ),
                ),
            )
            if wrong
        ]
    errors += _body_errors(sb, raw, min_body, acting)
    if isinstance(polls := _parse_polls(raw), str):
        errors.append(polls)
    if topic is None and not errors:
        errors, recipients, category_id = _new_topic_errors(sb, data, is_pm)
    if errors:
        return Reply(422, {"action": "create_post", "errors": errors})
    now = datetime.now(UTC)
    if new_topic := topic is None:
        topic = sb.topics[sb._next_topic] = {
            "id": sb._next_topic,
            "title": title,
            "slug": _slug(title),
            "category_id": category_id,
            "archetype": "private_message" if is_pm else "regular",
            "external_id": data.get("external_id") or None,
            "user_id": acting["id"],
            "created_at": _iso(now),
            "posts": [],
            "allowed": recipients,
        }
        sb._next_topic += 1
    post = sb.posts[sb._next_post] = {
        "id": sb._next_post,
        "topic_id": topic["id"],
        "raw": raw,
        # Numbers continue after a deleted post (Discourse's highest_post_number).
        "post_number": max((sb.posts[p]["post_number"] for p in topic["posts"]), default=0) + 1,
        "cooked": _cook(raw),
        "user_id": acting["id"],
        "created_at": _iso(now),
        "_ts": time.time(),
        "polls": polls,
    }
    sb._next_post += 1
    topic["posts"].append(post["id"])
    acting.update(post_count=acting["post_count"] + 1, last_posted_at=now)
    if new_topic:
        topic_json = {
            "id": topic["id"],
            "title": topic["title"],
            "fancy_title": html.escape(topic["title"]),
            "slug": topic["slug"],
            "posts_count": len(topic["posts"]),
            "created_at": topic["created_at"],
            "archetype": topic["archetype"],
            "category_id": topic["category_id"],
            "user_id": acting["id"],
            "external_id": topic["external_id"],
            "closed": False,
            "archived": False,
            "visible": True,
            "created_by": sb._basic_user(acting),
        }
        sb._emit("topic_created", {"topic": topic_json})
    sb._emit("post_created", sb._post_payload(post))
    return Reply(200, sb._post_fields(post, _shapes.POST_CREATED, acting))


def _writable_post(sb: DiscourseSandbox, req: Call) -> dict[str, Any] | Reply:
    """The post of the path when the caller may change it (its author or staff)."""
    post, acting = sb.posts.get(_int_param(req.params["id"]) or 0), req.user
    if post is None or not _visible(sb, post, acting):
        return _not_found()
    return post if post["user_id"] == acting["id"] or acting["admin"] or acting["moderator"] else _invalid_access()


@_route("PUT", "/posts/{id}.json", find=_writable_post)
def _update_post(sb: DiscourseSandbox, req: Call, post: dict[str, Any]) -> Reply:
    """Edit a post (its author or staff); Discourse sends ``post_edited`` to its webhooks."""
    acting, data = req.user, req.form()
    fields: dict[str, Any] = (
        data["post"]
        if isinstance(data.get("post"), dict)
        else {"raw": data.get("post[raw]"), "edit_reason": data.get("post[edit_reason]")}
    )
    raw = str(fields.get("raw") or "")
    minimum = sb.settings.min_first_post_length if post["post_number"] == 1 else sb.settings.min_post_length
    if len(raw.strip()) < minimum:
        return Reply(422, {"action": "create_post", "errors": [f"Body is too short (minimum is {minimum} characters)"]})
    if isinstance(polls := _parse_polls(raw), str):
        return Reply(422, {"action": "create_post", "errors": [polls]})
    post.update(
        raw=raw,
        cooked=_cook(raw),
        polls=polls or post["polls"],
        version=post.get("version", 1) + 1,
        edit_reason=fields.get("edit_reason"),
    )
    sb._emit("post_edited", sb._post_payload(post))
    # updatePost's answer: the post fields the spec lists for it (the post as shown has most of them).
    shown = {k: v for k, v in _post_show(sb, post, acting).items() if k in _shapes.POST_UPDATED}
    return Reply(
        200,
        {
            "post": shaped(
                _shapes.POST_UPDATED, **shown | {"version": post["version"], "edit_reason": post.get("edit_reason")}
            )
        },
    )


@_route("DELETE", "/posts/{id}.json", find=_writable_post)
def _destroy_post(sb: DiscourseSandbox, req: Call, post: dict[str, Any]) -> Reply:
    """Delete a post (author or staff: ``PostsController#destroy``, 200); a first post takes its
    topic. Discourse sends ``post_destroyed`` with the post as ``post_created`` has it."""
    payload = {"post": sb._post_payload(post)["post"] | {"deleted_at": _iso(datetime.now(UTC))}}
    topic = sb.topics[post["topic_id"]]
    for pid in list(topic["posts"]) if post["post_number"] == 1 else [post["id"]]:
        sb.posts.pop(pid, None)
        topic["posts"].remove(pid)
    if post["post_number"] == 1:
        sb.topics.pop(topic["id"], None)
    sb._emit("post_destroyed", payload)
    return Reply(200, {})


# Post action types that are flags (PostActionType.flag_types): each opens a review.
_FLAG_TYPES = {
    3: ("off_topic", "Off-Topic"),
    4: ("inappropriate", "Inappropriate"),
    7: ("notify_moderators", "Something Else"),
    8: ("spam", "Spam"),
}


@_route("POST", "/post_actions.json")
def _flag_post(sb: DiscourseSandbox, req: Call) -> Reply:
    """Flag a post (``PostActionsController#create``: ``id``, ``post_action_type_id``, ``message``; only the
    flag types are emulated). Discourse opens a review (``ReviewableFlaggedPostSerializer``) or
    adds the flag to the post's open one; the same flag twice by one user is refused."""
    data, acting = req.form(), req.user
    try:
        post_id, kind = int(data["id"]), int(data["post_action_type_id"])
    except (KeyError, TypeError, ValueError):
        return _invalid_parameters("id and post_action_type_id must be integers")
    if kind not in _FLAG_TYPES:  # a like, a bookmark…: loud, as every endpoint not emulated
        return _error(
            501, f"not emulated by the sandbox: POST /post_actions.json with post_action_type_id {kind}", "not_emulated"
        )
    if (post := sb.posts.get(post_id)) is None or not _visible(sb, post, acting):
        return _not_found()
    if any(f["post_id"] == post_id and f["user_id"] == acting["id"] and f["type"] == kind for f in sb.flags):
        return _invalid_access()
    sb.flags.append(
        {
            "id": len(sb.flags) + 1,
            "post_id": post_id,
            "user_id": acting["id"],
            "type": kind,
            "at": _iso(datetime.now(UTC)),
            "message": str(data.get("message") or "") if kind == 7 else "",  # "Something Else" says why
        }
    )
    # One review per post (its first flag's id), each flag a score. Discourse sends no flag
    # webhook: the review's creation, then each score added, as Reviewable events.
    flags = [f for f in sb.flags if f["post_id"] == post_id]
    payload = {"reviewable": sb._reviewable(post, flags)}
    if len(flags) == 1:
        sb._emit("reviewable_created", payload)
    sb._emit("reviewable_score_updated", payload)
    return Reply(200, _post_show(sb, post, acting))


_BASE62 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _base62(number: int) -> str:
    """An upload's short name: its SHA1 in base 62 (Upload.base62_sha1)."""
    return _base62(number // 62) + _BASE62[number % 62] if number else ""


@_route("POST", "/uploads.json")
def _create_upload(sb: DiscourseSandbox, req: Call) -> Reply:
    # UploadsController#create: a multipart body with upload_type and file; the same content
    # (SHA1) uploaded again returns the existing upload (UploadCreator).
    if "multipart/form-data" not in req.headers.get("content-type", ""):
        # Discourse downloads an upload given by `url` (pydiscourse's update_avatar): not here.
        if req.form().get("url"):
            return _error(NOT_EMULATED_STATUS, not_emulated("POST", "/uploads.json with a url"), "not_emulated")
        return _invalid_parameters("file")
    # text fields as str, files as dicts
    data: dict[str, Any] = {
        name: {"filename": filename, "content": content, "content_type": ctype}
        if filename is not None
        else content.decode("utf-8", "replace")
        for name, filename, ctype, content in multipart(req.headers["content-type"], req.body) or []
    }
    if not str(data.get("upload_type") or data.get("type") or "").strip():
        return _invalid_parameters("type")
    file = data.get("file")
    if not isinstance(file, dict) or not file["content"]:
        return Reply(422, {"errors": ["You must provide a file to upload."]})
    content: bytes = file["content"]
    sha1 = hashlib.sha1(content).hexdigest()  # noqa: S324 - Discourse's content key
    if (found := next((u for u in sb.uploads.values() if u["sha1"] == sha1), None)) is None:
        uid, filename = len(sb.uploads) + 1, str(file["filename"] or "upload")
        ext = filename.rsplit(".", 1)[-1].lower() if "." in filename else "bin"
        # A PNG's IHDR chunk: the width and height, big-endian, at bytes 16-24.
        width, height = (
            (int.from_bytes(content[16:20], "big"), int.from_bytes(content[20:24], "big"))
            if content[:8] == b"\x89PNG\r\n\x1a\n" and len(content) >= 24
            else (0, 0)
        )
        short = _base62(int(sha1, 16))
        found = sb.uploads[uid] = {
            "id": uid,
            "sha1": sha1,
            "url": f"/uploads/default/original/1X/{sha1}.{ext}",
            "original_filename": filename,
            "filesize": len(content),
            "width": width,
            "height": height,
            "thumbnail_width": width,
            "thumbnail_height": height,
            "extension": ext,
            "short_url": f"upload://{short}.{ext}",
            "short_path": f"/uploads/short-url/{short}.{ext}",
            "retain_hours": None,
            "human_filesize": f"{max(1, round(len(content) / 1024))} KB",
            "dominant_color": None,
            "thumbnail": None,
            "user_id": req.user["id"] if req.user else None,
            "content": content,
        }
    return Reply(200, {k: v for k, v in found.items() if k not in ("sha1", "user_id", "content")})


def _visible(
    sb: DiscourseSandbox, post: Mapping[str, Any], user: Mapping[str, Any], *, category: Mapping[str, Any] | None = None
) -> bool:
    """Whether ``user`` may read ``post`` (or, given ``category``, that category's topics)."""
    if user["admin"]:
        return True
    if category is None:
        topic = sb.topics[post["topic_id"]]
        if topic["archetype"] == "private_message":
            return user["id"] == topic["user_id"] or any(
                (kind == "user" and ref == user["id"]) or (kind == "group" and user["id"] in sb.groups[ref]["members"])
                for kind, ref in topic["allowed"]
            )
        category = sb.categories.get(topic["category_id"])
    return not (category and category["read_restricted"]) or _member_of(sb, user, category["permissions"])


def _member_of(sb: DiscourseSandbox, user: Mapping[str, Any], groups: Iterable[str]) -> bool:
    """Whether ``user`` is in one of the groups named (any case)."""
    names = {name.lower() for name in groups}
    return any(g["name"].lower() in names and user["id"] in g["members"] for g in sb.groups.values())


# Poll#is_closed? (plugins/poll/app/models/poll.rb): closed by hand or past its close time.
def _is_closed(poll: Mapping[str, Any]) -> bool:
    close = _parse_ts(poll["close"] or "") or datetime.max.replace(tzinfo=UTC)
    return poll["status"] == "closed" or close <= datetime.now(UTC)


def _can_see_results(poll: Mapping[str, Any], post: Mapping[str, Any], user: Mapping[str, Any]) -> bool:
    """``Poll#can_see_results?`` (plugins/poll/app/models/poll.rb)."""
    if poll["results"] == "staff_only":
        return bool(user["admin"] or user["moderator"])
    voted = user["id"] == post["user_id"] or user["id"] in poll["votes"]
    return poll["results"] == "always" or (poll["results"] == "on_vote" and voted) or _is_closed(poll)


def _post_show(sb: DiscourseSandbox, post: Mapping[str, Any], acting: Mapping[str, Any]) -> dict[str, Any]:
    out = sb._post_fields(post, _shapes.POST_SHOW, acting)
    if post["polls"]:
        out["polls"] = [sb._poll_json(p, post, acting) for p in post["polls"]]
        # The reader's own votes only (the poll plugin's ``polls_votes`` on PostSerializer).
        if own := {p["name"]: list(p["votes"][acting["id"]]) for p in post["polls"] if acting["id"] in p["votes"]}:
            out["polls_votes"] = own
    return out


@_route("GET", "/posts/{id}.json")
def _get_post(sb: DiscourseSandbox, req: Call) -> Reply:
    post = sb.posts.get(_int_param(req.params["id"]) or 0)
    if post is None or not _visible(sb, post, req.user):
        return _unseen(req, post is not None)
    return Reply(200, _post_show(sb, post, req.user))


def _unseen(req: Call, exists: bool) -> Reply:
    """Guardian#ensure_can_see!: a visitor is told to log in (403), a member sees "not found"."""
    return _invalid_access() if exists and req.user.get("anonymous") else _not_found()


@_route("GET", "/posts/by_number/{topic_id}/{number}.json")
def _post_by_number(sb: DiscourseSandbox, req: Call) -> Reply:
    topic, number = sb.topics.get(_int_param(req.params["topic_id"]) or 0), _int_param(req.params["number"]) or 0
    post = sb.posts[topic["posts"][number - 1]] if topic and 1 <= number <= len(topic["posts"]) else None
    if post is None or not _visible(sb, post, req.user):
        return _not_found()
    return Reply(200, _post_show(sb, post, req.user))


@_route("GET", "/posts.json")
def _latest_posts(sb: DiscourseSandbox, req: Call) -> Reply:
    before = _int_param(req.arg("before")) if req.arg("before") else None
    posts = [
        p
        for p in sorted(sb.posts.values(), key=lambda p: p["id"], reverse=True)
        if sb.topics[p["topic_id"]]["archetype"] != "private_message"
        and _visible(sb, p, req.user)
        and (before is None or p["id"] < before)
    ][:50]
    return Reply(200, {"latest_posts": [sb._post_fields(p, _shapes.LATEST_POST, req.user) for p in posts]})


@_route("GET", "/search.json")
def _search(sb: DiscourseSandbox, req: Call) -> Reply:
    """``SearchController#show``: the posts of regular topics ``req.user`` may read whose raw or
    topic title holds every word of ``q``, newest first, and the users and categories it names;
    Discourse's filters (``@user``, ``#category``, ``in:``, ``order:``…) are not emulated."""
    term = (req.arg("q") or req.arg("term") or "").strip()
    words = term.lower().split()
    if any(w[0] in "@#" or ":" in w for w in words):
        return _error(NOT_EMULATED_STATUS, not_emulated("GET", f"/search.json with q={term}"), "not_emulated")
    # min_search_term_length (3): a shorter term finds nothing and says why.
    short = len(term) < 3
    posts = [
        p
        for p in sorted(sb.posts.values(), key=lambda p: p["id"], reverse=True)
        if not short
        and sb.topics[p["topic_id"]]["archetype"] == "regular"
        and all(w in f"{p['raw']} {sb.topics[p['topic_id']]['title']}".lower() for w in words)
        and _visible(sb, p, req.user)
    ][:50]
    users = [u for u in sb.users.values() if not short and term.lower() in u["username"].lower() and u["id"] > 0]
    categories = [
        c
        for c in sb.categories.values()
        if not short and term.lower() in c["name"].lower() and _visible(sb, {}, req.user, category=c)
    ]
    found = [sb._post_fields(p, _shapes.SEARCH_POST, req.user) | {"blurb": html.escape(p["raw"][:200])} for p in posts]
    grouped = shaped(
        _shapes.GROUPED_SEARCH_RESULT,
        term=term,
        can_create_topic=not req.user.get("anonymous"),
        error="Your search term is too short." if short else None,
        post_ids=[p["id"] for p in posts],
        user_ids=[u["id"] for u in users],
        category_ids=[c["id"] for c in categories],
    )
    return Reply(
        200,
        {
            "posts": found,
            "users": [sb._basic_user(u) for u in users],
            "categories": [_category_json(sb, c) for c in categories],
            "tags": [],
            "groups": [],
            "grouped_search_result": grouped,
        },
    )


@_route(
    "GET",
    "/t/external_id/{external_id}.json",
    find=lambda sb, req: (
        next((t for t in sb.topics.values() if t["external_id"] == req.params["external_id"]), None) or _not_found()
    ),
)
def _topic_by_external_id(sb: DiscourseSandbox, req: Call, topic: dict[str, Any]) -> Reply:
    return Reply(301, headers={"Location": f"/t/{topic['slug']}/{topic['id']}.json"})


def _poster(sb: DiscourseSandbox, user: Mapping[str, Any]) -> dict[str, Any]:
    return {**sb._basic_user(user), "name": user["name"] or ""}


def _topic_fields(
    sb: DiscourseSandbox, topic: Mapping[str, Any], template: Mapping[str, Any], **more: Any
) -> dict[str, Any]:
    """``template`` (a shape) filled with what the sandbox knows of ``topic``, and ``more``."""
    last = sb.posts[topic["posts"][-1]] if topic["posts"] else None
    values = dict(
        id=topic["id"],
        title=topic["title"],
        fancy_title=html.escape(topic["title"]),
        slug=topic["slug"],
        posts_count=len(topic["posts"]),
        reply_count=max(0, len(topic["posts"]) - 1),
        highest_post_number=len(topic["posts"]),
        created_at=topic["created_at"],
        last_posted_at=last["created_at"] if last else topic["created_at"],
        bumped_at=last["created_at"] if last else topic["created_at"],
        archetype=topic["archetype"],
        user_id=topic["user_id"],
        # A topic posted without a category is in Uncategorized (uncategorized_category_id: 1).
        category_id=topic["category_id"] if topic["category_id"] is not None else 1,
        last_poster_username=sb.users[last["user_id"]]["username"] if last else "",
        excerpt=html.escape(sb.posts[topic["posts"][0]]["raw"][:100]) if topic["posts"] else "",
        posters=[
            {
                "extras": "latest single",
                "description": "Original Poster, Most Recent Poster",
                "user_id": topic["user_id"],
                "primary_group_id": None,
            }
        ],
    )
    return shaped(template, **{k: v for k, v in values.items() if k in template} | more)


def _readable_topic(sb: DiscourseSandbox, req: Call) -> dict[str, Any] | Reply:
    # Rails names it `:topic_id` on the posts route and `:id` on the topic's own; two numbers are
    # `t/:topic_id/:post_number`, routed before `t/:slug/:topic_id` (Discourse's config/routes.rb).
    p = req.params
    numbered = p.get("slug", "").isdigit() and p["id"].isdigit()
    topic = sb.topics.get(_int_param(p["slug"] if numbered else p.get("topic_id") or p["id"]) or 0)
    if topic is None or (topic["posts"] and not _visible(sb, sb.posts[topic["posts"][0]], req.user)):
        return _unseen(req, topic is not None)
    return topic


# Registered before /t/{slug}/{id}.json, which would take "posts" for an id (Rails' routes list
# `t/:topic_id/posts` first too).
@_route("GET", "/t/{topic_id}/posts.json", find=_readable_topic)
def _topic_posts(sb: DiscourseSandbox, req: Call, topic: dict[str, Any]) -> Reply:
    """TopicsController#posts (TopicViewPostsSerializer): the posts ``post_ids[]`` of a topic the
    reader may see, with ``raw`` when ``include_raw`` is given; none asked: the first chunk."""
    asked = {_int_param(v) for v in req.query.get("post_ids[]", []) + req.query.get("post_ids", [])}
    # `!!params[:include_raw]`: any value given, even "false", adds each post's raw.
    raw = req.arg("include_raw") is not None
    ids = [pid for pid in topic["posts"] if pid in asked] if asked else list(topic["posts"])[:20]
    posts = [
        sb._post_fields(sb.posts[pid], _shapes.TOPIC_POST, req.user) | ({"raw": sb.posts[pid]["raw"]} if raw else {})
        for pid in ids
    ]
    return Reply(200, {"post_stream": {"posts": posts}, "id": topic["id"]})


@_route("GET", "/t/{id}.json", find=_readable_topic)
@_route("GET", "/t/{slug}/{id}.json", find=_readable_topic)
def _topic_view(sb: DiscourseSandbox, req: Call, topic: dict[str, Any]) -> Reply:
    # TopicsController#show (TopicViewSerializer); the slug is not checked (Discourse redirects a
    # wrong one to the right one, the id decides).
    posts = [sb._post_fields(sb.posts[pid], _shapes.TOPIC_POST, req.user) for pid in topic["posts"]]
    details = shaped(
        _shapes.TOPIC_VIEW["details"],
        created_by=_poster(sb, sb.users[topic["user_id"]]),
        last_poster=_poster(sb, sb.users[sb.posts[topic["posts"][-1]]["user_id"]]),
        can_create_post=not req.user.get("anonymous"),
    )
    return Reply(
        200,
        _topic_fields(
            sb,
            topic,
            _shapes.TOPIC_VIEW,
            post_stream={"posts": posts, "stream": list(topic["posts"])},
            chunk_size=20,
            participant_count=len({sb.posts[pid]["user_id"] for pid in topic["posts"]}),
            word_count=sum(len(sb.posts[pid]["raw"].split()) for pid in topic["posts"]),
            details=details,
        ),
    )


def _readable_category(sb: DiscourseSandbox, req: Call) -> dict[str, Any] | Reply:
    # Category.find_by_slug_path_with_id: a trailing number is the id, else the slug.
    ref, cats = req.params["id"], sb.categories
    category = cats.get(_int_param(ref) or 0) or next((c for c in cats.values() if c["slug"] == ref), None)
    # A category one may not see does not exist for them.
    return category if category and _visible(sb, {}, req.user, category=category) else _not_found()


@_route("GET", "/c/{id}/show.json", find=_readable_category)
def _show_category(sb: DiscourseSandbox, req: Call, category: dict[str, Any]) -> Reply:
    """``CategoriesController#show`` (pydiscourse's ``category(id)``): the list's fields and the
    settings only its page has; everyone may see a public category, as on Discourse."""
    allowed = category["permissions"] or ({} if category["read_restricted"] else {"everyone": 1})
    # "everyone" is Discourse's automatic group 0; the sandbox's groups are all named ones.
    ids = {"everyone": 0} | {g["name"]: g["id"] for g in sb.groups.values()}
    permissions = [{"permission_type": kind, "group_name": g, "group_id": ids[g]} for g, kind in allowed.items()]
    listed = {k: v for k, v in _category_json(sb, category).items() if k not in _LIST_ONLY}
    return Reply(200, {"category": listed | shaped(_shapes.CATEGORY_SHOW, group_permissions=permissions)})


# What the category list shows and a category's page does not (CategoryDetailedSerializer).
_LIST_ONLY = ("topics_day", "topics_week", "topics_month", "topics_year", "topics_all_time", "subcategory_ids")


# /c/{id}.json and /c/{slug}/l/latest.json: ListController#category_default and #category_latest.
@_route("GET", "/latest.json", bind={"category": None})
@_route("GET", "/c/{slug}/{id}.json", find=_readable_category)
@_route("GET", "/c/{id}.json", find=_readable_category)
@_route("GET", "/c/{id}/l/latest.json", find=_readable_category)
def _topic_list(sb: DiscourseSandbox, req: Call, category: dict[str, Any] | None) -> Reply:
    """A TopicListSerializer answer: the regular topics ``req.user`` may see, last bumped first."""
    return _listed(
        sb, req, lambda t: t["archetype"] == "regular" and (category is None or t["category_id"] == category["id"])
    )


@_route(
    "GET",
    "/topics/private-messages/{username}.json",
    find=lambda sb, req: sb._user_by_name(req.params["username"]) or _not_found(),
)
def _private_messages(sb: DiscourseSandbox, req: Call, user: dict[str, Any]) -> Reply:
    # ListController#private_messages: Guardian#can_see_private_messages? (admin or oneself); the
    # messages the user started or was sent by name (group messages have their own list).
    if not (req.user["admin"] or req.user["id"] == user["id"]):
        return _invalid_access()
    return _listed(
        sb,
        req,
        lambda t: (
            t["archetype"] == "private_message"
            and (t["user_id"] == user["id"] or any(kind == "user" and ref == user["id"] for kind, ref in t["allowed"]))
        ),
    )


def _listed(sb: DiscourseSandbox, req: Call, keep: Callable[[dict[str, Any]], bool]) -> Reply:
    topics = sorted(
        (t for t in sb.topics.values() if keep(t) and t["posts"] and _visible(sb, sb.posts[t["posts"][0]], req.user)),
        key=lambda t: sb.posts[t["posts"][-1]]["id"],
        reverse=True,
    )
    users = {t["user_id"] for t in topics} | {sb.posts[t["posts"][-1]]["user_id"] for t in topics}
    return Reply(
        200,
        {
            "users": [_poster(sb, sb.users[u]) for u in sorted(users)],
            "primary_groups": [],
            "topic_list": {
                "can_create_topic": not req.user.get("anonymous"),
                "per_page": 30,
                "topics": [_topic_fields(sb, t, _shapes.TOPIC_LIST_ITEM) for t in topics[:30]],
            },
        },
    )


def _find_poll(sb: DiscourseSandbox, req: Call) -> tuple[dict, dict] | Reply:
    data = req.form()
    post = sb.posts.get(_int_param(data.get("post_id")) or 0)
    if post is None or not _visible(sb, post, req.user):
        return _invalid_parameters("post_id is invalid")
    poll = next((p for p in post["polls"] if p["name"] == data.get("poll_name")), None)
    return (post, poll) if poll else _invalid_parameters("poll_name is invalid")


@_route("PUT", "/polls/vote", find=_find_poll)
def _vote(sb: DiscourseSandbox, req: Call, found: tuple[dict, dict]) -> Reply:
    # DiscoursePoll::Poll.change_vote (plugins/poll/lib/poll.rb): the voter may post in the topic
    # (Guardian#can_create_post?: the category's Create or Reply permission, not silenced), the
    # poll is open and not past its close time, the voter is in one of its groups.
    (post, poll), data = found, req.form()
    perms = (sb.categories.get(sb.topics[post["topic_id"]]["category_id"]) or {}).get("permissions") or {}
    if _until_later(req.user.get("silenced_till")) or not (
        req.user["admin"]
        or not perms
        or perms.get("everyone", 3) < 3
        or _member_of(sb, req.user, [g for g, p in perms.items() if p < 3])
    ):
        return _error(422, "You can't vote because you can't post in this topic.")
    if _is_closed(poll):
        return _error(422, "Poll must be open to vote.")
    if poll["groups"] and not _member_of(sb, req.user, poll["groups"].split(",")):
        return _error(422, f"You need to be a member of {poll['groups']} to vote in this poll.")
    chosen = data.get("options") or data.get("options[]") or []
    chosen = [chosen] if isinstance(chosen, str) else list(chosen)
    if (
        not chosen
        or not {*chosen} <= {o["id"] for o in poll["options"]}
        or (poll["type"] == "regular" and len(chosen) != 1)
    ):
        return _error(422, "Your vote is invalid.")
    poll["votes"][req.user["id"]] = chosen
    return Reply(200, {"poll": sb._poll_json(poll, post, req.user), "vote": list(chosen)})


@_route("GET", "/polls/voters.json", find=_find_poll)
def _voters(sb: DiscourseSandbox, req: Call, found: tuple[dict, dict]) -> Reply:
    (post, poll), data = found, {k: v[0] for k, v in req.query.items()}
    # Poll#can_see_voters?: a public poll whose results this reader may see; nobody, staff
    # included, can list the voters of a secret poll. Discourse answers InvalidParameters.
    if not (poll["public"] and _can_see_results(poll, post, req.user)):
        return _invalid_parameters("You supplied invalid parameters to the request: poll_name")
    limit = max(1, min(50, _int_param(data.get("limit", "25")) or 25))
    page = max(1, _int_param(data.get("page", "1")) or 1)
    option_ids = [data["option_id"]] if data.get("option_id") else [o["id"] for o in poll["options"]]
    # serialized_voters (plugins/poll/lib/poll.rb): one option's voters by OFFSET and LIMIT; all
    # options' by rows `BETWEEN offset AND offset + limit` of 1-based row numbers, so there each
    # page after the first repeats the last voter of the one before.
    start = max(0, (page - 1) * limit - (not data.get("option_id")))
    chunks = {o: sorted(u for u, opts in poll["votes"].items() if o in opts)[start : page * limit] for o in option_ids}
    return Reply(
        200, {"voters": {o: [{**sb._basic_user(sb.users[i]), "title": None} for i in ids] for o, ids in chunks.items()}}
    )


@_route("PUT", "/polls/toggle_status", find=_find_poll)
def _toggle_status(sb: DiscourseSandbox, req: Call, found: tuple[dict, dict]) -> Reply:
    (post, poll), user = found, req.user
    if not (user["admin"] or user["moderator"] or user["id"] == post["user_id"]):
        return _error(422, "Only a staff member or the original poster can toggle a poll status.")
    if (status := req.form().get("status")) not in ("open", "closed"):
        return _invalid_parameters("status must be open or closed")
    poll["status"] = status
    return Reply(200, {"poll": sb._poll_json(poll, post, user)})


from connectors.discourse import sandbox_hooks as _hooks  # noqa: E402,F401 - registers its routes
from connectors.discourse import sandbox_welcome as _welcome  # noqa: E402,F401 - registers its routes
