"""A loopback emulator of the Slack Web API methods charterflow uses, on the sandbox kit: every
method is ``POST /api/<method>``, failures are HTTP 200 ``{"ok": false, "error": "<code>"}`` as on
Slack (``specs/API-NOTES.md`` section 3). What it emulates, its clock and its control routes: the
package README, "The sandbox"."""

from __future__ import annotations

import asyncio
import functools
import json
import random
import secrets
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode

import httpx
from pydantic import Field

from connectors.base import Ballot, ConformanceSamples, Role
from connectors.errors import ConfigError
from connectors.sandboxkit import (
    NOT_EMULATED_STATUS,
    Call,
    Reply,
    SeedModel,
    TokenBucket,
    after_find,
    check_faults,
    control,
    data_file,
    load_seed,
    not_emulated,
    shaped,
)
from connectors.slack.blocks import blocks_text_length
from connectors.slack.connector import SlackConnector
from connectors.slack.sandbox_events import KINDS, SCOPE_PREFIX, BotEvent, EventsApi, kind_of, public, signed_headers
from connectors.slack.settings import SlackSettings

__all__ = ["SlackSandbox", "SandboxSeed", "default_seed", "INTERACTION_TYPES"]

# The fixed fields of the answers (Slack's Web API spec: objs_conversation, objs_user): data.
_shapes = data_file(__file__, "shapes.json")

INTERACTION_TYPES = frozenset(
    {
        "block_actions",
        "block_suggestion",
        "interactive_message",
        "message_action",
        "shortcut",
        "view_closed",
        "view_submission",
    }
)
RESPONSE_URL_USES, RESPONSE_URL_TTL = 5, 30 * 60  # "up to 5 times within 30 minutes"
# Each method's tier, in requests a minute per workspace (Tier 2: 20, 3: 50, 4: 100;
# https://api.slack.com/apis/rate-limits): a minute's worth may go at once ("sporadic bursts
# are welcome"), then the tier's pace. chat.postMessage has its own limit (SeedLimits).
_TIERS = {
    **dict.fromkeys(("conversations.list", "users.list"), 20),
    **dict.fromkeys(("chat.update", "chat.delete", "conversations.open", "conversations.info"), 50),
    **dict.fromkeys(("conversations.history", "conversations.replies", "users.lookupByEmail"), 50),
    **dict.fromkeys(("conversations.members", "users.info"), 100),
}


class SeedUser(SeedModel):
    """A member of the sandbox workspace (invented people only)."""

    id: str = Field(pattern=r"^[UW][A-Z0-9]{2,}$")
    name: str
    real_name: str
    email: str | None = None
    is_admin: bool = False
    deleted: bool = False
    tz: str = "Europe/Amsterdam"


class SeedChannel(SeedModel):
    """A channel; the app's bot can post only where it is a member."""

    id: str = Field(pattern=r"^[CG][A-Z0-9]{2,}$")
    name: str
    is_private: bool = False
    is_archived: bool = False
    members: list[str] = []
    bot_member: bool = True


class SeedLimits(SeedModel):
    """``chat.postMessage``: ``per_second`` messages per channel, bursts up to ``burst``."""

    per_second: float = Field(default=1.0, gt=0)
    burst: int = Field(default=3, ge=1)


class SandboxSeed(SeedModel):
    """The whole initial state of a sandbox workspace (token and secret random when unset)."""

    team_id: str = "T0SANDBOX"
    team_name: str = "Sandbox Foundation"
    team_domain: str = "sandbox-foundation"
    app_id: str = "A0CHARTER"
    bot_user_id: str = "U0CHARTER"
    bot_id: str = "B0CHARTER"
    bot_name: str = "charterflow"
    bot_token: str | None = None
    signing_secret: str | None = None
    users: list[SeedUser]
    channels: list[SeedChannel]
    board_channel: str
    limits: SeedLimits = SeedLimits()
    # Sent back in ``x-oauth-scopes`` on every authenticated answer as Slack does
    # (https://api.slack.com/scopes); `charterflow doctor` compares them with its needs.
    bot_scopes: list[str] = [
        "chat:write",
        "im:write",
        "mpim:write",
        "users:read",
        "users:read.email",
        "channels:history",
        "groups:history",
        "im:history",
        "mpim:history",
        "channels:read",  # conversations.info: the common room's channel (R-COMMS)
        "groups:read",
    ]
    # The bot events the app subscribes to (its Event Subscriptions page; charterflow's are
    # these two): the Events API sends only these, and only from conversations the bot is in.
    bot_events: list[BotEvent] = ["message.channels", "message.groups"]


def default_seed() -> dict[str, Any]:
    """The default workspace: invented Board members and members, a private Board channel."""
    return data_file(__file__, "seed.json")


# ---- Block Kit validation (the subset of https://api.slack.com/reference/block-kit/blocks we send)


def _too_long(value: Any, limit: int, where: str) -> list[str]:
    return [f"must be less than {limit + 1} characters [json-pointer:{where}]"] * (len(str(value)) > limit)


def _duplicates(items: list[Any], where: str, name: str) -> list[str]:
    """Slack's error for each of ``items`` (blocks, actions) with the ``name`` id of an earlier
    one; ``where``: the path of item ``{}``."""
    ids = [item.get(name) if isinstance(item, dict) else None for item in items]
    return [
        f"duplicate {name} [json-pointer:{where.format(i)}/{name}]"
        for i, v in enumerate(ids)
        if v is not None and v in ids[:i]
    ]


def _text(obj: Any, where: str, limit: int, plain_only: bool = False) -> list[str]:
    if not isinstance(obj, dict) or obj.get("type") not in ("plain_text", "mrkdwn"):
        return [f"must be a text object [json-pointer:{where}]"]
    errors = [f"must be a plain_text object [json-pointer:{where}/type]"] * (plain_only and obj["type"] != "plain_text")
    if not isinstance(text := obj.get("text"), str) or not text:
        return [*errors, f"must be more than 0 characters [json-pointer:{where}/text]"]
    return errors + _too_long(text, limit, f"{where}/text")


def _button(el: Any, where: str) -> list[str]:
    if not isinstance(el, dict) or el.get("type") != "button":
        return [f"unsupported element type [json-pointer:{where}]"]
    confirm = el["confirm"] if isinstance(el.get("confirm"), dict) else {}
    return [
        *_text(el.get("text"), f"{where}/text", 75, True),
        *_too_long(el.get("action_id", ""), 255, f"{where}/action_id"),
        *_too_long(el.get("value", ""), 2000, f"{where}/value"),
        *[f"must be one of primary, danger [json-pointer:{where}/style]"]
        * (el.get("style", "primary") not in ("primary", "danger")),
        *(
            _text(confirm.get("title"), f"{where}/confirm/title", 100, True)
            + _text(confirm.get("text"), f"{where}/confirm/text", 300)
            if el.get("confirm") is not None
            else []
        ),
    ]


def _elements(block: dict[str, Any], where: str, most: int, check: Callable[[Any, str], list[str]]) -> list[str]:
    if not isinstance(els := block.get("elements"), list) or not 1 <= len(els) <= most:
        return [f"must have 1 to {most} items [json-pointer:{where}/elements]"]
    errors = [e for j, el in enumerate(els) for e in check(el, f"{where}/elements/{j}")]
    return errors + _duplicates(els, f"{where}/elements/{{}}", "action_id")


def _section(block: dict[str, Any], where: str) -> list[str]:
    errors = [] if "text" in block or "fields" in block else [f"must provide text or fields [json-pointer:{where}]"]
    errors += _text(block["text"], f"{where}/text", 3000) if "text" in block else []
    if not isinstance(fields := block.get("fields", []), list) or len(fields) > 10:
        return [*errors, f"must be less than 11 items [json-pointer:{where}/fields]"]
    return errors + [e for j, f in enumerate(fields) for e in _text(f, f"{where}/fields/{j}", 2000)]


# Each block type we send and its check.
_BLOCK_CHECKS: dict[str, Callable[[dict[str, Any], str], list[str]]] = {
    "section": _section,
    "divider": lambda block, where: [],
    "header": lambda block, where: _text(block.get("text"), f"{where}/text", 150, True),
    "context": lambda block, where: _elements(block, where, 10, lambda el, at: _text(el, at, 3000)),
    "actions": lambda block, where: _elements(block, where, 25, _button),
}


def validate_blocks(blocks: Any) -> list[str]:
    """Slack's ``invalid_blocks`` messages for ``blocks`` (empty when valid)."""
    if not isinstance(blocks, list):
        return ["must be an array [json-pointer:/blocks]"]
    errors = ["must be less than 51 items [json-pointer:/blocks]"] * (len(blocks) > 50)
    for i, block in enumerate(blocks):
        if not isinstance(block, dict):
            errors.append(f"must be an object [json-pointer:/blocks/{i}]")
            continue
        errors += _too_long(block.get("block_id", ""), 255, f"/blocks/{i}/block_id")
        check = _BLOCK_CHECKS.get(kind) if isinstance(kind := block.get("type"), str) else None
        errors += (
            check(block, f"/blocks/{i}")
            if check
            else [f"unsupported type: {str(kind)[:40]} [json-pointer:/blocks/{i}/type]"]
        )
    return errors + _duplicates(blocks, "/blocks/{}", "block_id")


# ---- answers and arguments


def _ok(**fields: Any) -> Reply:
    return Reply(200, {"ok": True, **fields})


def _fail(error: str, **fields: Any) -> Reply:
    # Slack answers errors with HTTP 200 (https://api.slack.com/web#evaluating_responses).
    return Reply(200, {"ok": False, "error": error, **fields})


def _limited(retry_after: int) -> Reply:
    return Reply(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(max(1, int(retry_after)))})


class _Args(dict):
    """A method's arguments from the query, a form body or a JSON body."""

    def flag(self, name: str) -> bool:
        return str(self.get(name, "")).lower() in ("1", "true")

    def json_arg(self, name: str) -> Any:
        value = self.get(name)
        try:
            return json.loads(value) if isinstance(value, str) else value
        except ValueError:
            return value


_METHODS: dict[str, Callable[[SlackSandbox, _Args], Reply]] = {}  # Web API method name: its handler


def _method(
    name: str, find: Callable[..., Any] | None = None, scope: str | None = None
) -> Callable[[Callable[..., Reply]], Any]:
    """Register a Web API method; ``find``: the lookup its arguments name (``after_find``);
    ``scope``: the bot scope it needs, refused ``missing_scope`` before anything else, or, with
    ``{kind}``, the one of the conversation found (Slack asks ``groups:history`` for a private
    channel's history, ``channels:history`` for a public one's)."""

    def register(fn: Callable[..., Reply]) -> Callable[..., Reply]:
        handler = after_find(fn, find) if find else fn
        if scope is None:
            _METHODS[name] = handler
        elif "{kind}" in scope and find:
            _METHODS[name] = after_find(
                lambda sb, args, conv: (
                    sb._missing(scope.format(kind=SCOPE_PREFIX[kind_of(conv)])) or fn(sb, args, conv)
                ),
                find,
            )
        else:
            _METHODS[name] = lambda sb, args: sb._missing(scope) or handler(sb, args)
        return fn  # undecorated: one handler can serve several methods

    return register


class SlackSandbox(EventsApi):
    """A Slack workspace in memory, served as an ASGI app (``sandbox.app``).

    ``seed`` is a mapping in the ``SandboxSeed`` shape (``default_seed()`` when ``None``);
    ``time_factor`` scales the sandbox's clock (see the module docstring); ``limits`` overrides
    ``seed["limits"]``.
    """

    fault_free = ("/_sandbox/", "/actions/")
    faults_body = {"ok": True}

    def __init__(
        self,
        *,
        seed: Mapping[str, Any] | None = None,
        time_factor: float = 1.0,
        limits: Mapping[str, Any] | None = None,
    ) -> None:
        if time_factor <= 0:
            raise ConfigError("time_factor must be positive")
        self.seed = load_seed(SandboxSeed, seed if seed is not None else default_seed(), limits, key="limits")
        self.time_factor = float(time_factor)
        self.bot_token = self.seed.bot_token or "xoxb-sandbox-" + secrets.token_hex(20)
        self.signing_secret = self.seed.signing_secret or secrets.token_hex(16)
        self._setup()
        self._init_events()
        self._reset()

    def __repr__(self) -> str:
        return f"SlackSandbox(team={self.seed.team_id!r}, time_factor={self.time_factor:g})"

    def _reset(self) -> None:
        seed, bot = self.seed, self.seed.bot_user_id
        with self._lock:
            self.users = {u.id: u.model_dump() for u in seed.users}
            self.users[bot] = {
                "id": bot,
                "name": seed.bot_name,
                "real_name": seed.bot_name,
                "email": None,
                "is_admin": False,
                "deleted": False,
                "tz": "UTC",
                "is_bot": True,
            }
            if unknown := [(c.name, m) for c in seed.channels for m in c.members if m not in self.users]:
                raise ConfigError(
                    f"invalid sandbox seed: channel {unknown[0][0]!r} member {unknown[0][1]!r} is not a user"
                )
            self.channels = {
                c.id: {
                    **c.model_dump(exclude={"members", "bot_member"}),
                    "is_im": False,
                    "is_mpim": False,
                    "members": set(c.members) | ({bot} if c.bot_member else set()),
                }
                for c in seed.channels
            }
            if seed.board_channel not in self.channels:
                raise ConfigError("invalid sandbox seed: board_channel is not a channel")
            self.messages = defaultdict(list)
            # What the Board's clicks did: ephemeral answers, response_url posts, the clicks.
            self.ephemeral: list[dict[str, Any]] = []
            self.response_posts: list[dict[str, Any]] = []
            self.interactions: list[dict[str, Any]] = []
            self.response_urls: dict[str, dict[str, Any]] = {}
            self._buckets: dict[str, TokenBucket] = {}  # per channel (chat.postMessage), per method ("tier:…")
            self._reset_stats()
            self._last_ts = 0.0
            self.created = int(time.time())  # the workspace and its seeded channels, in Unix seconds

    def _now(self) -> float:
        """Sandbox seconds since start (real seconds divided by ``time_factor``)."""
        return (time.monotonic() - self._started) / self.time_factor

    # ---- the framework's Sandbox protocol ----------------------------------------------------

    @property
    def samples(self) -> ConformanceSamples:
        """Names from the default seed the conformance suite exercises."""
        return ConformanceSamples(
            username="wren.halloway@example.org",
            missing_username="nobody.by.this.name@example.org",
            grantable_role=Role.group("board"),  # unused: Slack declares no RoleManager
            channel=self.seed.board_channel,
            recipients=("U0TOBI002", "pella.marchetti@example.org"),
            inbound_kind="app_mention",
            inbound_payload={"text": "hello"},
        )  # an Events API callback

    def client_info(self, base_url: str) -> dict[str, Any]:
        """Base URL, credentials and the matching ``CHARTERFLOW_SLACK_*`` variables."""
        base_url = base_url.rstrip("/")
        return {
            "connector": "slack",
            "base_url": f"{base_url}/api/",
            "credentials": {"bot_token": self.bot_token, "signing_secret": self.signing_secret},
            "headers": {"Authorization": f"Bearer {self.bot_token}"},
            "env": {
                "CHARTERFLOW_SLACK_BASE_URL": f"{base_url}/api/",
                "CHARTERFLOW_SLACK_BOT_TOKEN": self.bot_token,
                "CHARTERFLOW_SLACK_SIGNING_SECRET": self.signing_secret,
                "CHARTERFLOW_SLACK_BOARD_CHANNEL": self.seed.board_channel,
            },
            # the members of the Board channel (the seed's Board list), without the bot
            "board": sorted(self.channels[self.seed.board_channel]["members"] - {self.seed.bot_user_id}),
            "time_factor": self.time_factor,
            "control": {name: f"{base_url}/_sandbox/{name}" for name in ("state", "faults", "interact")},
        }

    def connect(self, base_url: str, **options: Any) -> Any:
        """A ``SlackConnector`` for this sandbox; ``options`` override settings fields, except
        ``sleep``, ``clock`` and ``rng`` which go to the connector. Unless ``sleep`` is given,
        the connector sleeps in the sandbox's time scale."""
        extra = {k: options.pop(k) for k in ("sleep", "clock", "rng") if k in options}
        if "sleep" not in extra and self.time_factor != 1.0:
            extra["sleep"] = lambda seconds: time.sleep(max(0.0, seconds) * self.time_factor)
        values: dict[str, Any] = {
            "bot_token": self.bot_token,
            "signing_secret": self.signing_secret,
            "board_channel": self.seed.board_channel,
            "base_url": f"{base_url.rstrip('/')}/api/",
            "response_url_hosts": (httpx.URL(base_url).netloc.decode("ascii"),),
            "timeout": 10,
            **options,
        }
        return SlackConnector(settings=SlackSettings(_env_file=None, **values), **extra)

    def cast_vote(self, base_url: str, ballot: Ballot, *, voter: str, option_index: int) -> None:
        """Slack has no ballots here (the connector declares no BallotBox)."""
        raise NotImplementedError("the Slack connector has no BallotBox")

    def signed_request(self, *, kind: str, payload: Mapping[str, Any]) -> tuple[dict[str, str], bytes]:
        """Headers and raw body of a request Slack would send, signed with the signing secret.

        Interaction types (``block_actions``…) are form-encoded ``payload=<JSON>``;
        ``url_verification`` and every other kind are Events API JSON (the ``event_callback``
        envelope of the sandbox's own deliveries, wrapping ``{"type": kind, **payload}``).
        """
        content_type = "application/x-www-form-urlencoded" if kind in INTERACTION_TYPES else "application/json"
        if kind in INTERACTION_TYPES:
            data = {
                "type": kind,
                "team": {"id": self.seed.team_id, "domain": self.seed.team_domain},
                "api_app_id": self.seed.app_id,
                "trigger_id": self._trigger_id(),
                **payload,
            }
            body = urlencode({"payload": json.dumps(data, separators=(",", ":"))}).encode("utf-8")
        elif kind == "url_verification":
            body = json.dumps(
                {
                    "token": "sandbox-legacy-verification-token",
                    "challenge": secrets.token_urlsafe(24),
                    "type": kind,
                    **payload,
                }
            ).encode()
        else:
            body = json.dumps(self._envelope({"type": kind, "event_ts": self._next_ts(), **payload})).encode("utf-8")
        return signed_headers(self.signing_secret, body, content_type), body

    def _trigger_id(self) -> str:
        return f"{random.randint(10**9, 10**10)}.{random.randint(10**9, 10**10)}.{secrets.token_hex(16)}"

    # ---- interactions ------------------------------------------------------------------------

    def block_actions_payload(
        self, base_url: str, *, user: str, channel: str, ts: str, action_id: str
    ) -> dict[str, Any]:
        """The ``block_actions`` payload Slack sends when ``user`` clicks button ``action_id`` on
        message ``ts``; its ``response_url`` points at this sandbox (``base_url``)."""
        with self._lock:
            if (person := self.users.get(user)) is None:
                raise ValueError(f"no user {user!r} in the sandbox")
            if (message := self._find_message(channel, ts)) is None:
                raise ValueError(f"no message {ts} in channel {channel}")
            found = [
                (el, block.get("block_id"))
                for block in message.get("blocks") or []
                if block.get("type") == "actions"
                for el in block.get("elements", [])
                if isinstance(el, dict) and el.get("action_id") == action_id
            ]
            if not found:
                raise ValueError(f"message {ts} has no button {action_id!r}")
            button, block_id = found[-1]
            token, team = secrets.token_urlsafe(18), self.seed.team_id
            self.response_urls[token] = {"channel": channel, "ts": ts, "user": user, "issued": self._now(), "uses": 0}
            return {
                "type": "block_actions",
                "api_app_id": self.seed.app_id,
                "user": {"id": user, "username": person["name"], "name": person["name"], "team_id": team},
                "token": "sandbox-legacy-verification-token",
                "trigger_id": self._trigger_id(),
                "container": {"type": "message", "message_ts": ts, "channel_id": channel, "is_ephemeral": False},
                "team": {"id": team, "domain": self.seed.team_domain},
                "enterprise": None,  # not an Enterprise Grid workspace
                "is_enterprise_install": False,
                "channel": {"id": channel, "name": self.channels.get(channel, {}).get("name", "directmessage")},
                "message": public(message),
                "state": {"values": {}},
                "response_url": f"{base_url.rstrip('/')}/actions/{team}/{len(self.response_urls):010d}/{token}",
                "actions": [
                    {
                        "type": "button",
                        "action_id": action_id,
                        "block_id": block_id,
                        "text": button.get("text"),
                        "value": button.get("value"),
                        "action_ts": f"{time.time():.6f}",
                        **({"style": button["style"]} if "style" in button else {}),
                    }
                ],
            }

    def click(
        self, url: str, *, base_url: str, user: str, channel: str, ts: str, action_id: str, timeout: float = 3.0
    ) -> httpx.Response:
        """Click a button as ``user``: POST the signed ``block_actions`` request to ``url`` (the
        app's interactivity URL, e.g. the gateway's ``/hooks/slack``) and return its answer; an
        answer later than Slack's 3 s raises ``httpx.TimeoutException``, as the click fails on
        Slack (https://api.slack.com/interactivity/handling#acknowledgment_response)."""
        headers, body = self.signed_request(
            kind="block_actions",
            payload=self.block_actions_payload(base_url, user=user, channel=channel, ts=ts, action_id=action_id),
        )
        record: dict[str, Any] = {"url": url, "user": user, "status": None, "action_id": action_id, "message_ts": ts}
        try:
            response = httpx.post(url, content=body, headers=headers, timeout=timeout)
            record["status"] = response.status_code
        except httpx.HTTPError as exc:
            record["error"] = type(exc).__name__  # a click that failed is on record too (the inspector)
            raise
        finally:
            with self._lock:
                self.interactions.append(record)
        return response

    @control("interact")
    async def _interact(self, call: Call, data: dict[str, Any]) -> Reply:
        fields: dict[str, Any] = {k: str(data.get(k)) for k in ("user", "channel", "ts", "action_id")}
        try:
            answer = await asyncio.to_thread(self.click, str(data.get("url")), base_url=call.base_url, **fields)
        except ValueError as exc:
            return self.error(400, str(exc))
        except httpx.HTTPError as exc:
            return self.error(502, type(exc).__name__)
        return Reply(200, {"ok": True, "status": answer.status_code, "body": answer.text[:2000]})

    def state(self) -> dict[str, Any]:
        """Everything inspectable, JSON-ready (``GET /_sandbox/state``); no token, no secret."""
        with self._lock:
            return {
                "team": {"id": self.seed.team_id, "name": self.seed.team_name, "domain": self.seed.team_domain},
                "bot_user_id": self.seed.bot_user_id,
                "users": [dict(u) for u in self.users.values()],
                "channels": [
                    {**{k: v for k, v in c.items() if k != "members"}, "members": sorted(c["members"])}
                    for c in self.channels.values()
                ],
                "messages": {
                    cid: [{k: v for k, v in m.items() if not k.startswith("_")} for m in msgs]
                    for cid, msgs in self.messages.items()
                },
                "posted": {cid: len(msgs) for cid, msgs in self.messages.items()},
                "ephemeral": list(self.ephemeral),
                "response_posts": list(self.response_posts),
                "interactions": list(self.interactions),
                "events": {"url": self.events_url, "bot_events": self.bot_events, "deliveries": list(self.deliveries)},
                **(stats := self.stats()),
                "outcomes": stats["responses"],
                "limits": self.seed.limits.model_dump(),
                "time_factor": self.time_factor,
            }

    # ---- the platform ------------------------------------------------------------------------

    def error(self, status: int, message: str) -> Reply:
        return Reply(status, {"ok": False, "error": message})

    def parse_faults(self, data: Mapping[str, Any]) -> dict[str, Any]:
        return check_faults(data, storm_keys=("method", "channel"))

    def handle(self, call: Call) -> Reply:
        if call.path.startswith("/actions/") and call.method == "POST":
            return self._response_url(call)
        if not call.path.startswith("/api/"):
            return Reply(NOT_EMULATED_STATUS, text=not_emulated(call.method, call.path))
        reply = self._call_method(name := call.path.removeprefix("/api/"), call)
        self.count(name, str(reply.status) if reply.status != 200 else reply.body.get("error", "ok"))
        return reply

    def _call_method(self, name: str, call: Call) -> Reply:
        args, auth = _Args(call.form()), call.headers.get("authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else str(args.pop("token", ""))
        if storm := self.take_storm(
            lambda s: s.get("method") in (None, "", name) and s.get("channel") in (None, "", args.get("channel"))
        ):
            self.note_limited(at=round(self._now(), 4), kind="storm", method=name, channel=args.get("channel"))
            return _limited(storm["retry_after"])
        if status := self.injected_status(503):
            return Reply(status, text=f"sandbox: injected HTTP {status}\n")
        if "json" in call.headers.get("content-type", "") and call.body and call.json_object() is None:
            return _fail("invalid_json")
        # Slack's unknown_method is for names Slack lacks; this one may exist. HTTP 200 as every
        # method's failure on Slack: Slack's Node SDK retries any other status for ~30 minutes
        # (https://docs.slack.dev/tools/node-slack-sdk/reference/web-api/variables/retryPolicies).
        if name not in _METHODS:
            return _fail("not_emulated", detail=not_emulated(call.method, f"/api/{name}"))
        if name == "api.test":  # the one method that takes no token
            return _METHODS[name](self, args)
        if not token:
            return _fail("not_authed")
        if not secrets.compare_digest(token.encode(), self.bot_token.encode()):
            return _fail("invalid_auth")
        if per_minute := _TIERS.get(name):
            now = self._now()
            tier = self._buckets.setdefault(f"tier:{name}", TokenBucket(per_minute / 60, per_minute, now))
            if (wait := tier.wait(now)) is not None:
                self.note_limited(at=round(now, 4), kind="tier", method=name)
                return _limited(wait)
        reply = _METHODS[name](self, args)
        reply.headers["x-oauth-scopes"] = ",".join(self.seed.bot_scopes)
        return reply

    def _response_url(self, call: Call) -> Reply:
        issued = self.response_urls.get(call.path.rstrip("/").rsplit("/", 1)[-1])
        if issued is None or self._now() - issued["issued"] > RESPONSE_URL_TTL:
            return Reply(404, text="expired_url")
        if issued["uses"] >= RESPONSE_URL_USES:
            return Reply(404, text="used_url")
        if (data := call.json_object()) is None:
            return Reply(400, text="invalid_payload")
        if not data.get("text") and not data.get("blocks") and not data.get("delete_original"):
            return Reply(400, text="no_text")
        if "blocks" in data and validate_blocks(data["blocks"]):
            return Reply(400, text="invalid_blocks")
        issued["uses"] += 1
        channel, text, blocks = issued["channel"], data.get("text"), data.get("blocks")
        self.response_posts.append(
            {
                "to_user": issued["user"],
                "channel": channel,
                "message_ts": issued["ts"],
                "response_type": data.get("response_type", "ephemeral"),
                "replace_original": bool(data.get("replace_original")),
                "text": text,
                "blocks": blocks,
            }
        )
        original = self._find_message(channel, issued["ts"])
        if data.get("delete_original") and original is not None:
            self.messages[channel].remove(original)
        elif data.get("replace_original") and original is not None:
            original.update(
                text=data.get("text", ""),
                blocks=blocks or [],
                edited={"user": self.seed.bot_user_id, "ts": self._next_ts()},
            )
        elif data.get("response_type") == "in_channel":
            self._store(channel, text=str(text or ""), blocks=blocks or [], thread_ts=None, metadata=None)
        else:
            self.ephemeral.append({"user": issued["user"], "channel": channel, "text": text, "blocks": blocks})
        return Reply(200, {"ok": True})

    def _store(
        self, channel: str, *, text: str, blocks: list[Any], thread_ts: str | None, metadata: Any
    ) -> dict[str, Any]:
        """The app's message, stored (``metadata``: Slack's message metadata, kept when an object)."""
        # An app's bot user posts as a user with its bot_id and bot_profile, and no subtype:
        # "bot_message" is the legacy integrations' (https://api.slack.com/events/message/bot_message).
        message: dict[str, Any] = {
            "type": "message",
            "ts": self._next_ts(),
            "user": self.seed.bot_user_id,
            "bot_id": self.seed.bot_id,
            "app_id": self.seed.app_id,
            "bot_profile": {
                "id": self.seed.bot_id,
                "app_id": self.seed.app_id,
                "name": self.seed.bot_name,
                "deleted": False,
                "team_id": self.seed.team_id,
            },
            "team": self.seed.team_id,
            "text": text,
            "blocks": blocks,
            **({"thread_ts": thread_ts} if thread_ts else {}),
            **({"_metadata": metadata} if isinstance(metadata, dict) and metadata else {}),
        }
        if thread_ts and (parent := self._find_message(channel, thread_ts)) is not None:
            parent.update(thread_ts=thread_ts, reply_count=parent.get("reply_count", 0) + 1, latest_reply=message["ts"])
        self.messages[channel].append(message)
        return message

    def _conversation(self, args: _Args, *, by_name: bool = True) -> dict[str, Any] | Reply:
        """The channel ``args`` names; chat.postMessage & co. also take a channel name,
        conversations.info/members need the ID. A private channel without the bot is invisible."""
        channel = str(args.get("channel") or "")
        if by_name and channel and (channel.startswith("#") or channel not in self.channels):
            found = [c for c in self.channels.values() if c["name"] == channel.lstrip("#") and not c["is_im"]]
            return found[0] if found else _fail("channel_not_found")
        conv = self.channels.get(channel)
        if conv is None or (conv["is_private"] and self.seed.bot_user_id not in conv["members"]):
            return _fail("channel_not_found")
        return conv

    def _missing(self, scope: str) -> Reply | None:
        """Slack's refusal of a call whose token lacks ``scope``, naming it and those granted."""
        granted = self.seed.bot_scopes
        return None if scope in granted else _fail("missing_scope", needed=scope, provided=",".join(granted))


# ---- methods


def _text_and_blocks(args: _Args) -> tuple[str, list[Any]] | Reply:
    text = args.get("text")
    blocks = args.json_arg("blocks")
    if blocks is not None and (errors := validate_blocks(blocks)):
        return _fail(
            "invalid_blocks", errors=errors[:10], response_metadata={"messages": [f"[ERROR] {e}" for e in errors[:10]]}
        )
    # Slack's cap on all the blocks' text together, each block within its limits or not
    # (https://github.com/slackapi/bolt-js/issues/2509: "12,000 text characters").
    if blocks is not None and blocks_text_length(blocks) > 12_000:
        return _fail("msg_blocks_too_long")
    if not text and not blocks:
        return _fail("no_text")
    return (str(text or ""), list(blocks or [])) if len(str(text or "")) <= 40000 else _fail("msg_too_long")


@_method("auth.test")
def _auth_test(sb: SlackSandbox, args: _Args) -> Reply:
    return _ok(
        url=f"https://{sb.seed.team_domain}.slack.com/",
        team=sb.seed.team_name,
        user=sb.seed.bot_name,
        team_id=sb.seed.team_id,
        user_id=sb.seed.bot_user_id,
        bot_id=sb.seed.bot_id,
        is_enterprise_install=False,
    )


@_method("chat.postMessage", find=SlackSandbox._conversation, scope="chat:write")
def _post_message(sb: SlackSandbox, args: _Args, conv: dict[str, Any]) -> Reply:
    if conv["is_archived"]:
        return _fail("is_archived")
    # chat:write.public lets the app post in a public channel it is not in (https://api.slack.com/scopes/chat:write.public).
    anywhere = not conv["is_private"] and "chat:write.public" in sb.seed.bot_scopes
    if sb.seed.bot_user_id not in conv["members"] and not anywhere:
        return _fail("not_in_channel")
    if isinstance(checked := _text_and_blocks(args), Reply):
        return checked
    if thread_ts := args.get("thread_ts"):
        if (parent := sb._find_message(conv["id"], str(thread_ts))) is None:
            return _fail("thread_not_found")
        thread_ts = parent.get("thread_ts") or parent["ts"]  # a reply's ts means its parent's thread
    now, limits = sb._now(), sb.seed.limits
    bucket = sb._buckets.setdefault(conv["id"], TokenBucket(limits.per_second, limits.burst, now))
    if (wait := bucket.wait(now)) is not None:
        sb.note_limited(at=round(now, 4), kind="channel", method="chat.postMessage", channel=conv["id"])
        return _limited(wait)
    message = sb._store(
        conv["id"],
        text=checked[0],
        blocks=checked[1],
        thread_ts=str(thread_ts) if thread_ts else None,
        metadata=args.json_arg("metadata"),
    )
    sb._emit(conv["id"], sb._channel_event(conv["id"], message))
    return _ok(channel=conv["id"], ts=message["ts"], message=public(message))


@_method("chat.update", find=SlackSandbox._conversation, scope="chat:write")
def _update(sb: SlackSandbox, args: _Args, conv: dict[str, Any]) -> Reply:
    if (message := sb._find_message(conv["id"], str(args.get("ts") or ""))) is None:
        return _fail("message_not_found")
    if message.get("user") != sb.seed.bot_user_id:
        return _fail("cant_update_message")
    if isinstance(checked := _text_and_blocks(args), Reply):
        return checked
    message.update(
        text=checked[0],
        blocks=checked[1],
        edited={"user": sb.seed.bot_user_id, "ts": sb._next_ts()},
    )
    sb._emit(conv["id"], sb._hidden_event("message_changed", conv["id"], message=public(message)))
    return _ok(channel=conv["id"], ts=message["ts"], text=checked[0], message=public(message))


@_method("chat.delete", find=SlackSandbox._conversation, scope="chat:write")
def _delete(sb: SlackSandbox, args: _Args, conv: dict[str, Any]) -> Reply:
    if (message := sb._find_message(conv["id"], str(args.get("ts") or ""))) is None:
        return _fail("message_not_found")
    if message.get("user") != sb.seed.bot_user_id:
        return _fail("cant_delete_message")  # a bot token deletes only the app's own messages
    sb.messages[conv["id"]].remove(message)
    sb._emit(
        conv["id"],
        sb._hidden_event("message_deleted", conv["id"], deleted_ts=message["ts"], previous_message=public(message)),
    )
    return _ok(channel=conv["id"], ts=message["ts"])


@_method("conversations.open")
def _open(sb: SlackSandbox, args: _Args) -> Reply:
    raw = args.get("users")
    users = [str(u).strip() for u in (raw if isinstance(raw, list) else str(raw or "").split(",")) if str(u).strip()]
    if not users:
        return _fail("users_list_not_supplied")
    if len(users) > 8:
        return _fail("too_many_users")
    for uid in users:
        if (person := sb.users.get(uid)) is None:
            return _fail("user_not_found")
        if person.get("deleted"):
            return _fail("user_disabled")
    if refused := sb._missing("mpim:write" if len(set(users)) > 1 else "im:write"):
        return refused
    members = {*users, sb.seed.bot_user_id}
    if existing := [c for c in sb.channels.values() if (c["is_im"] or c["is_mpim"]) and c["members"] == members]:
        return _ok(channel={"id": existing[0]["id"]}, no_op=True, already_open=True)
    is_mpim = len(set(users)) > 1
    cid = f"{'G' if is_mpim else 'D'}0SBX{len(sb.channels):05d}"
    sb.channels[cid] = {
        "id": cid,
        "name": "mpdm-" + "--".join(sorted(set(users))) if is_mpim else cid,
        "is_private": True,
        "is_archived": False,
        "is_im": not is_mpim,
        "is_mpim": is_mpim,
        "members": members,
    }
    return _ok(channel={"id": cid})


def _page(items: list[Any], args: _Args) -> tuple[list[Any], str]:
    try:
        limit = max(1, min(999, int(args.get("limit") or 100)))
        start = int(args.get("cursor") or 0) if str(args.get("cursor") or "0").isdigit() else 0
    except ValueError:
        limit, start = 100, 0
    return items[start : start + limit], str(start + limit) if start + limit < len(items) else ""


def _messages(sb: SlackSandbox, args: _Args, messages: list[dict[str, Any]]) -> Reply:
    chunk, cursor = _page(messages, args)
    meta = args.flag("include_all_metadata")
    return _ok(
        messages=[public(m, with_metadata=meta) for m in chunk],
        has_more=bool(cursor),
        response_metadata={"next_cursor": cursor},
    )


@_method("conversations.history", find=SlackSandbox._conversation, scope="{kind}:history")
def _history(sb: SlackSandbox, args: _Args, conv: dict[str, Any]) -> Reply:
    if sb.seed.bot_user_id not in conv["members"]:
        return _fail("not_in_channel")
    return _messages(
        sb, args, [m for m in reversed(sb.messages.get(conv["id"], [])) if m.get("thread_ts") in (None, m["ts"])]
    )


@_method("conversations.replies", find=SlackSandbox._conversation, scope="{kind}:history")
def _replies(sb: SlackSandbox, args: _Args, conv: dict[str, Any]) -> Reply:
    if (parent := sb._find_message(conv["id"], str(args.get("ts") or ""))) is None:
        return _fail("thread_not_found")
    root = parent.get("thread_ts") or parent["ts"]
    return _messages(
        sb, args, [m for m in sb.messages.get(conv["id"], []) if m["ts"] == root or m.get("thread_ts") == root]
    )


def _by_email(sb: SlackSandbox, args: _Args) -> dict[str, Any] | Reply:
    email = str(args.get("email") or "").strip().lower()
    # A deactivated account is not found (https://api.slack.com/methods/users.lookupByEmail).
    found = (u for u in sb.users.values() if u.get("email") and u["email"].lower() == email and not u["deleted"])
    return next(found, _fail("users_not_found"))


@_method(
    "users.info",
    find=lambda sb, args: sb.users.get(str(args.get("user") or "")) or _fail("user_not_found"),
    scope="users:read",
)
@_method("users.lookupByEmail", find=_by_email, scope="users:read.email")
def _user_answer(sb: SlackSandbox, args: _Args, user: dict[str, Any]) -> Reply:
    return _ok(user=_user(sb, user))


# ---- read-only lookups (shapes from Slack's Web API spec: objs_conversation, objs_user)


# conversations.info and .members take only a channel ID
_channel_by_id = functools.partial(SlackSandbox._conversation, by_name=False)


@_method("conversations.info", find=_channel_by_id, scope="{kind}:read")
def _conversation_info(sb: SlackSandbox, args: _Args, conv: dict[str, Any]) -> Reply:
    return _ok(channel=_conversation_json(sb, conv, num_members=args.flag("include_num_members")))


def _conversation_json(sb: SlackSandbox, conv: Mapping[str, Any], *, num_members: bool) -> dict[str, Any]:
    """A conversation object (conversations.info, conversations.list)."""
    created, bot = sb.created, sb.seed.bot_user_id
    if conv["is_im"]:
        other = min(conv["members"] - {bot}, default=bot)  # the other person of the DM
        return shaped(_shapes["IM"], id=conv["id"], created=created, user=other)
    private, name = conv["is_private"], conv["name"]
    return shaped(
        _shapes["CHANNEL"],
        id=conv["id"],
        name=name,
        name_normalized=name,
        created=created,
        creator=bot,
        is_archived=conv["is_archived"],
        is_channel=not private,
        is_group=private and not conv["is_mpim"],
        is_general=name == "general",
        is_mpim=conv["is_mpim"],
        is_private=private,
        is_member=bot in conv["members"],
        **({"num_members": len(conv["members"])} if num_members else {}),
    )


@_method("conversations.list")
def _conversation_list(sb: SlackSandbox, args: _Args) -> Reply:
    """The conversations of the ``types`` asked (public channels by default); a bot sees the
    private ones, DMs and group DMs it is in."""
    types = {k.strip() for k in str(args.get("types") or "public_channel").split(",")}
    if not types <= set(KINDS):
        return _fail("invalid_types")
    for kind in (k for k in KINDS if k in types):
        if refused := sb._missing(f"{SCOPE_PREFIX[kind]}:read"):
            return refused
    found = [
        c
        for c in sorted(sb.channels.values(), key=lambda c: c["id"])
        if (kind := kind_of(c)) in types
        and (kind == "public_channel" or sb.seed.bot_user_id in c["members"])
        and not (c["is_archived"] and args.flag("exclude_archived"))
    ]
    return _listing(args, found, "channels", lambda c: _conversation_json(sb, c, num_members=True))


def _listing(args: _Args, items: list[Any], key: str, show: Callable[[Any], Any], **fields: Any) -> Reply:
    """A page of ``items`` (shown by ``show``) as ``key``, after Slack's refusal of a ``limit``
    outside 1-1000 or a cursor it did not hand out (conversations.list/members, users.list)."""
    limit = str(args.get("limit") or "100")
    if not limit.isdigit() or not 1 <= int(limit) <= 1000:
        return _fail("invalid_limit")
    if (cursor := str(args.get("cursor") or "")) and not cursor.isdigit():
        return _fail("invalid_cursor")
    chunk, next_cursor = _page(items, args)
    return _ok(**{key: [show(item) for item in chunk]}, **fields, response_metadata={"next_cursor": next_cursor})


@_method("conversations.members", find=_channel_by_id, scope="{kind}:read")
def _conversation_members(sb: SlackSandbox, args: _Args, conv: dict[str, Any]) -> Reply:
    return _listing(args, sorted(conv["members"]), "members", str)


@_method("users.list", scope="users:read")
def _user_list(sb: SlackSandbox, args: _Args) -> Reply:
    users = sorted(sb.users.values(), key=lambda u: u["id"])
    return _listing(args, users, "members", lambda u: _user(sb, u), cache_ts=int(time.time()))


@_method("api.test")
def _api_test(sb: SlackSandbox, args: _Args) -> Reply:
    """Slack's echo: the arguments back (``error`` asks for that error)."""
    echoed = {k: str(v) for k, v in args.items() if k != "token"}
    if "error" in echoed:
        return _fail(echoed["error"], args=echoed)
    return _ok(**({"args": echoed} if echoed else {}))


def _user(sb: SlackSandbox, user: Mapping[str, Any]) -> dict[str, Any]:
    """A user object (users.info, users.lookupByEmail, users.list)."""
    profile = shaped(
        _shapes["PROFILE"],
        real_name=user["real_name"],
        real_name_normalized=user["real_name"],
        display_name=user["name"],
        display_name_normalized=user["name"],
    )
    if "users:read.email" in sb.seed.bot_scopes and user.get("email"):
        profile["email"] = user["email"]  # only with that scope, as on Slack
    return shaped(
        _shapes["USER"],
        id=user["id"],
        team_id=sb.seed.team_id,
        name=user["name"],
        deleted=user["deleted"],
        real_name=user["real_name"],
        tz=user["tz"],
        is_admin=user["is_admin"],
        is_bot=bool(user.get("is_bot")),
        updated=sb.created,
        profile=profile,
    )
