"""The sandbox kit: what every platform sandbox is built on (DESIGN convention 12).

A sandbox subclasses ``Sandbox`` and keeps only its platform's behaviour: its seed, its state,
its route handlers (registered on a ``Routes`` table) and its error shapes. The kit gives it
request reading (Starlette's ``Request``), routing with a distinct answer for routes it does not
emulate (``not_emulated``), the fault middleware, rate-limit windows, the control API under
``/_sandbox/`` (``state``, ``faults``, ``reset`` and the sandbox's own ``@control`` routes) and
the lifespan.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import json
import math
import random
import re
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from email import policy as email_policy
from email.parser import BytesParser
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar
from urllib.parse import parse_qs, unquote

from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import compile_path
from starlette.types import ASGIApp, Receive, Scope, Send

from connectors.errors import ConfigError

__all__ = [
    "KEEP_ALIVE_SECONDS",
    "NOT_EMULATED_STATUS",
    "Call",
    "FaultMiddleware",
    "Reply",
    "Routes",
    "Sandbox",
    "SeedModel",
    "SlidingWindow",
    "TokenBucket",
    "after_find",
    "check_faults",
    "control",
    "data_file",
    "lifespan",
    "load_seed",
    "multipart",
    "not_emulated",
    "read_body",
    "shaped",
]

# A route the sandbox does not emulate must not look like the platform's "not found": a connector
# calling a new endpoint would pass its tests for the wrong reason. A known route with an unknown
# id keeps the platform's real 404.
NOT_EMULATED_STATUS = 501
# How long a server of a sandbox keeps an idle connection open (uvicorn's ``timeout_keep_alive``,
# 5 s by default). Longer than clients keep one in their pools (aiohttp 15 s, httpx 5 s), as the
# platforms' edges are: a client that waited out a rate limit (discord.py sleeps about 5 s for
# a message bucket) must not send on a connection the server is closing under it, which it
# reports as "Server disconnected".
KEEP_ALIVE_SECONDS = 75


def not_emulated(method: str, path: str) -> str:
    """The message of a sandbox's answer to a route it does not emulate."""
    return f"not emulated by the sandbox: {method.upper()} {path}"


def data_file(module_file: str, name: str) -> Any:
    """The JSON data file ``name`` beside ``module_file`` (a seed, response shapes), parsed."""
    return json.loads((Path(module_file).parent / name).read_text(encoding="utf-8"))


def shaped(template: Mapping[str, Any], /, **values: Any) -> dict[str, Any]:
    """A copy of ``template`` (a response shape from a data file) with ``values`` set."""
    # Copy only what is mutable: 20,000 members are serialized at once.
    copied = {k: copy.deepcopy(v) if isinstance(v, (dict, list)) else v for k, v in template.items()}
    return {**copied, **values}


class SeedModel(BaseModel):
    """A part of a seed: an unknown key is an error (a typo in a seed file must not pass)."""

    model_config = ConfigDict(extra="forbid")


def load_seed(
    model: type[BaseModel], raw: Mapping[str, Any], overrides: Mapping[str, Any] | None = None, *, key: str = "settings"
) -> Any:
    """``raw`` (with ``overrides`` merged into its ``key`` object) validated as ``model``; a bad
    seed is a ``ConfigError`` naming the first wrong field."""
    data = dict(copy.deepcopy(raw))
    if overrides:
        data[key] = {**dict(data.get(key) or {}), **overrides}
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigError(f"invalid sandbox seed: {'.'.join(str(p) for p in first['loc'])}: {first['msg']}") from None


# ---- requests and answers ------------------------------------------------------------------


@dataclass
class Reply:
    """One answer: a JSON ``body`` (or ``text``, or ``raw`` bytes), a status and headers."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    text: str | None = None
    raw: bytes | None = None


@dataclass
class Call:
    """One request as a handler sees it: ``params`` from the route, ``user`` set by the sandbox."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    client_ip: str = "127.0.0.1"
    params: dict[str, str] = field(default_factory=dict)
    files: list[dict[str, Any]] = field(default_factory=list)
    user: dict[str, Any] = field(default_factory=dict)  # who the sandbox authenticated (empty until then)
    base_url: str = ""

    def json(self) -> Any:
        """The JSON body (``None`` when empty); ``ValueError`` when malformed."""
        return json.loads(self.body) if self.body else None

    def json_object(self) -> dict[str, Any] | None:
        """The JSON body when it is an object, else ``None`` (malformed JSON too)."""
        try:
            data = self.json()
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def form(self) -> dict[str, Any]:
        """Query, form-encoded and JSON-object parameters merged (a name ending ``[]`` or given
        twice is a list); malformed JSON counts as no body."""
        is_json = "json" in self.headers.get("content-type", "")
        fields = parse_qs(self.body.decode("utf-8", "replace"), keep_blank_values=True) if not is_json else {}
        grouped = {k: self.query.get(k, []) + fields.get(k, []) for k in {**self.query, **fields}}
        out: dict[str, Any] = {k: v if k.endswith("[]") or len(v) > 1 else v[0] for k, v in grouped.items()}
        if is_json:
            out.update(self.json_object() or {})
        return out


def multipart(content_type: str, body: bytes) -> list[tuple[str, str | None, str, bytes]] | None:
    """The parts of a multipart/form-data body as (name, filename, content type, bytes); ``None``
    when it is not one."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    message = BytesParser(policy=email_policy.HTTP).parsebytes(head + body)
    if not message.is_multipart():
        return None
    return [
        (
            str(part.get_param("name", header="content-disposition")),
            part.get_filename(),
            part.get_content_type(),
            # a leaf part decodes to bytes; a nested multipart has no bytes of its own
            payload if isinstance(payload := part.get_payload(decode=True), bytes) else b"",
        )
        for part in message.iter_parts()
    ]


async def lifespan(receive: Receive, send: Send, *, on_shutdown: Callable[[], None] | None = None) -> None:
    """Answer an ASGI lifespan scope until shutdown (calling ``on_shutdown`` then)."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            if on_shutdown is not None:
                on_shutdown()
            return await send({"type": "lifespan.shutdown.complete"})


async def read_body(receive: Receive) -> bytes:
    """The whole body of an HTTP request, however many messages it came in."""
    return await Request({"type": "http"}, receive).body()


# ---- routing --------------------------------------------------------------------------------


def after_find(handler: Callable[..., Reply], find: Callable[..., Any]) -> Callable[..., Reply]:
    """``handler`` run with what ``find(sandbox, call)`` found as its third argument, unless
    ``find`` refused (answered a ``Reply``): then that is the answer."""

    def run(sandbox: Any, call: Any) -> Reply:
        found = find(sandbox, call)
        return found if isinstance(found, Reply) else handler(sandbox, call, found)

    return run


class Routes:
    """A sandbox's route table: ``@routes("GET", "/users/{id}.json", **options)``. Templates use
    Starlette's ``{name}`` syntax; a literal segment wins over a placeholder; ``optional_json``
    also matches the path without its ``.json``; ``bind`` gives the handler keyword arguments
    (one handler, several routes); ``find(sandbox, call)`` looks up what the path names before the
    handler runs: its refusal (a ``Reply``, the platform's 404…) is the answer, else the handler
    gets the object as its third argument. ``defaults``: the options of a route not setting them.
    A route is a namespace: ``method``, ``template``, ``regex``, ``handler`` and its options."""

    def __init__(self, **defaults: Any) -> None:
        self.routes: list[SimpleNamespace] = []
        self.defaults = defaults

    def __call__(
        self,
        method: str,
        template: str,
        *,
        optional_json: bool = False,
        bind: Mapping[str, Any] | None = None,
        find: Callable[..., Any] | None = None,
        **meta: Any,
    ) -> Callable[[Callable[..., Reply]], Callable[..., Reply]]:
        def register(fn: Callable[..., Reply]) -> Callable[..., Reply]:
            # Lazy placeholders: with ``optional_json`` the ``.json`` is the suffix's, not the id's.
            regex = re.compile(compile_path(template)[0].pattern.replace("[^/]+)", "[^/]+?)"))
            if optional_json:
                regex = re.compile(regex.pattern.replace(r"\.json$", r"(?:\.json)?$"))
            handler = functools.partial(fn, **bind) if bind else fn
            if find is not None:
                handler = after_find(handler, find)
            self.routes.append(
                SimpleNamespace(
                    method=method, template=template, regex=regex, handler=handler, **{**self.defaults, **meta}
                )
            )
            self.routes.sort(key=lambda r: r.template.count("{"))
            return fn

        return register

    def match(self, method: str, *paths: str) -> tuple[SimpleNamespace | None, dict[str, str]]:
        """The route for ``method`` and the first of ``paths`` one matches, with its params."""
        for path in paths:
            for route in self.routes:
                m = route.regex.match(path) if route.method == method else None
                if m:
                    return route, {k: unquote(v) for k, v in m.groupdict().items()}
        return None, {}

    def template_at(self, path: str) -> str | None:
        """The template of a route at ``path`` for any method, or None: a sandbox asks it whether
        a method it does not route there is the platform's 405 or one it does not emulate."""
        return next((r.template for r in self.routes if r.regex.match(path)), None)


# ---- rate-limit windows ---------------------------------------------------------------------


class SlidingWindow:
    """At most ``limit`` hits in any ``window`` seconds."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit, self.window, self.hits = limit, window, list[float]()

    def wait(self, now: float) -> float | None:
        """``None`` (and the hit counted) when allowed, else the seconds until a slot frees."""
        self.hits[:] = [t for t in self.hits if t > now - self.window]
        if len(self.hits) >= self.limit:
            return self.hits[0] + self.window - now
        self.hits.append(now)
        return None


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved."""

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate, self.burst, self.tokens, self.last = rate, burst, float(burst), now

    def wait(self, now: float) -> int | None:
        """``None`` (and a token taken) when allowed, else whole seconds to wait (at least 1)."""
        self.tokens = min(float(self.burst), self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return None
        return max(1, math.ceil((1.0 - self.tokens) / self.rate))


# ---- faults ---------------------------------------------------------------------------------

COMMON_FAULTS = frozenset(
    {"error_rate", "error_status", "latency", "drop_rate", "drop_phase", "drop_times", "storm", "seed"}
)


def check_faults(
    data: Mapping[str, Any], *, extra: Iterable[str] = (), storm_keys: Iterable[str] = (), whole_seconds: bool = True
) -> dict[str, Any]:
    """The common fault settings of ``POST /_sandbox/faults``, checked: ``error_rate`` /
    ``error_status`` (that share of requests answered with that 5xx), ``drop_rate`` /
    ``drop_phase`` (close that share of connections before or after the request was applied;
    ``drop_times``: only the first N drawn, and with a sandbox's ``methods`` only those methods),
    ``latency`` (seconds added), ``seed`` (repeatable draws), ``storm`` (the next ``count``
    requests answered 429 with ``retry_after``, whole seconds unless ``whole_seconds`` is false,
    plus the platform's ``storm_keys``). The ``extra`` keys are left to the sandbox; ``ValueError``
    names a bad or unknown setting."""
    if unknown := set(data) - COMMON_FAULTS - set(extra):
        raise ValueError(f"unknown fault settings: {', '.join(sorted(unknown))}")
    out: dict[str, Any] = {}
    for name, kind, low, high, rule in (
        ("error_rate", float, 0, 1, "between 0 and 1"),
        ("drop_rate", float, 0, 1, "between 0 and 1"),
        ("error_status", int, 500, 599, "a 5xx status"),
        ("latency", float, 0, 30, "between 0 and 30 seconds"),
        ("drop_times", int, 0, math.inf, "0 or more"),
    ):
        if name in data:
            out[name] = kind(data[name])
            if not low <= out[name] <= high:
                raise ValueError(f"{name} must be {rule}")
    if "drop_phase" in data:
        if data["drop_phase"] not in ("before", "after"):
            raise ValueError("drop_phase must be 'before' or 'after'")
        out["drop_phase"] = data["drop_phase"]
    if "seed" in data:
        out["seed"] = int(data["seed"])
    storm = data.get("storm")
    if "storm" in data and not isinstance(storm, Mapping):
        raise ValueError("storm must be an object")
    if storm:
        retry = storm.get("retry_after", 1)
        out["storm"] = {
            "count": int(storm.get("count", 0)),
            "retry_after": max(1, int(retry)) if whole_seconds else float(retry),
            **{key: storm.get(key) for key in storm_keys},
        }
    return out


class FaultMiddleware:
    """ASGI middleware injecting ``latency`` and dropped connections (``drop_rate``,
    ``drop_phase``, ``drop_times``, ``methods``) from ``faults()``; paths under ``skip`` pass
    untouched. Usable in front of any ASGI app (a proxy to a real server, too)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        faults: Callable[[], Mapping[str, Any]],
        rng: Callable[[], random.Random],
        skip: tuple[str, ...] = ("/_sandbox/",),
    ) -> None:
        self.app, self.faults, self.rng, self.skip = app, faults, rng, skip

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.skip):
            return await self.app(scope, receive, send)
        faults = self.faults()
        if faults.get("latency"):
            await asyncio.sleep(float(faults["latency"]))
        methods = faults.get("methods")
        drop = (
            bool(faults.get("drop_rate"))
            and (not methods or scope["method"] in methods)
            and self.rng().random() < float(faults["drop_rate"])
        )
        if drop and "drop_times" in faults and isinstance(faults, dict):
            # One event loop serves the sandbox: counting down here needs no lock.
            drop = faults["drop_times"] > 0
            faults["drop_times"] -= drop
        if not drop:
            return await self.app(scope, receive, send)
        if faults.get("drop_phase", "after") == "after":  # apply the request, send its answer nowhere
            await self.app(scope, receive, lambda message: asyncio.sleep(0))
        # Start a response and never finish it: the client sees the connection drop mid-response.
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"4096")],
            }
        )


# ---- the sandbox base class -----------------------------------------------------------------


def control(name: str, method: str = "POST") -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Mark a sandbox method as the control route ``METHOD /_sandbox/<name>``; it takes
    ``(call, data)`` (data: the JSON object sent) and returns a ``Reply`` (or awaits one)."""

    def mark(fn: Callable[..., Any]) -> Callable[..., Any]:
        fn._control = (method, f"/_sandbox/{name}")  # type: ignore[attr-defined]  # a mark the app reads
        return fn

    return mark


class Sandbox:
    """The plumbing of a platform sandbox; ``sandbox.app`` (the sandbox itself) is its ASGI app.

    A subclass sets ``routes`` and implements ``_reset()`` (the state from the seed), ``state()``
    (the inspector's JSON snapshot, no secret in it), ``handle(call)`` (the platform's answer,
    called with the lock held), ``error(status, message)`` (its error
    shape) and optionally ``parse_faults(data)``. ``GET /_sandbox/state``, ``POST
    /_sandbox/faults`` and ``POST /_sandbox/reset`` come with it; ``@control`` adds more.
    """

    routes: ClassVar[Routes]
    json_type: ClassVar[str] = "application/json; charset=utf-8"
    compact_json: ClassVar[bool] = False
    raw_paths: ClassVar[bool] = False  # match the undecoded path (Discord)
    ok_body: ClassVar[dict[str, Any]] = {"ok": True}
    faults_body: ClassVar[dict[str, Any]] = {}
    control_forms: ClassVar[bool] = False  # control routes also take form-encoded bodies
    fault_free: ClassVar[tuple[str, ...]] = ("/_sandbox/",)  # paths the fault middleware skips

    def _setup(self) -> None:
        """Call from ``__init__`` before ``_reset()``."""
        self._lock = threading.RLock()
        self.faults: dict[str, Any] = {}
        self._rng = random.Random()
        self.app = self
        self._asgi = FaultMiddleware(
            self._serve, faults=lambda: self.faults, rng=lambda: self._rng, skip=self.fault_free
        )
        self._controls = {
            fn._control: fn for name in dir(type(self)) if hasattr(fn := getattr(type(self), name), "_control")
        }

    # ---- hooks ----

    def _reset(self) -> None:
        raise NotImplementedError

    def state(self) -> dict[str, Any]:
        raise NotImplementedError

    def handle(self, call: Call) -> Reply:
        raise NotImplementedError

    def error(self, status: int, message: str) -> Reply:
        return Reply(status, {"error": message})

    def parse_faults(self, data: Mapping[str, Any]) -> dict[str, Any]:
        return check_faults(data)

    # ---- what every sandbox counts ----

    def _reset_stats(self) -> None:
        """No faults, no counts (from ``_reset``): requests per route, answers per route and
        status, the 429s given."""
        self.requests: Counter[str] = Counter()
        self.responses: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.rate_limited: list[dict[str, Any]] = []
        self.faults, self._rng, self._started = {}, random.Random(), time.monotonic()

    def count(self, key: str, outcome: Any) -> None:
        self.requests[key] += 1
        self.responses[key][str(outcome)] += 1

    def note_limited(self, **fields: Any) -> None:
        """Log a 429 (``at``: seconds since the reset)."""
        self.rate_limited.append({"at": round(time.monotonic() - self._started, 4), **fields})

    def stats(self) -> dict[str, Any]:
        """The counts and faults, for ``state()``."""
        return {
            "requests": dict(self.requests),
            "responses": {k: dict(v) for k, v in self.responses.items()},
            "rate_limited": list(self.rate_limited),
            "faults": dict(self.faults),
        }

    def close(self) -> None:
        """Called at lifespan shutdown."""

    # ---- faults a handler injects where its platform would fail ----

    def injected_status(self, default: int) -> int | None:
        """The 5xx to answer with when the ``error_rate`` draw says so."""
        rate = float(self.faults.get("error_rate") or 0)
        if rate and self._rng.random() < rate:
            return int(self.faults.get("error_status") or default)
        return None

    def take_storm(self, matches: Callable[[Mapping[str, Any]], bool] = lambda storm: True) -> dict[str, Any] | None:
        """The storm settings when a 429 storm has a request left for this one (counted down)."""
        storm = self.faults.get("storm")
        if storm and storm.get("count", 0) > 0 and matches(storm):
            storm["count"] -= 1
            return storm
        return None

    # ---- ASGI ----

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI entry point."""
        if scope["type"] == "lifespan":
            return await lifespan(receive, send, on_shutdown=self.close)
        if scope["type"] == "http":
            await self._asgi(scope, receive, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        body = await request.body()
        path = scope.get("raw_path", b"").decode("latin-1").split("?", 1)[0] if self.raw_paths else ""
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        call = Call(
            method=request.method.upper(),
            path=path or scope["path"],
            query=query,
            body=body,
            headers={k.lower(): v for k, v in request.headers.items()},
            client_ip=(scope.get("client") or ("127.0.0.1", 0))[0],
            base_url=f"{scope.get('scheme', 'http')}://{request.headers.get('host', '127.0.0.1')}",
        )
        if scope["path"].startswith("/_sandbox/"):
            reply = await self._control(call)
        else:
            with self._lock:
                reply = self.handle(call)
        await self.render(reply)(scope, receive, send)

    def render(self, reply: Reply) -> Response:
        headers = dict(reply.headers)
        if reply.status in (204, 301, 302):
            content = b""
        elif reply.text is not None:
            content = reply.text.encode("utf-8")
            headers.setdefault("content-type", "text/plain; charset=utf-8")
        else:
            content = (
                reply.raw
                if reply.raw is not None
                else json.dumps(
                    reply.body, ensure_ascii=False, separators=(",", ":") if self.compact_json else None
                ).encode("utf-8")
            )
            headers.setdefault("content-type", self.json_type)
        return Response(content, status_code=reply.status, headers=headers)

    # ---- the control API ----

    async def _control(self, call: Call) -> Reply:
        if call.method == "GET" and call.path == "/_sandbox/state":
            return Reply(200, self.state())
        try:
            data = call.form() if self.control_forms else (call.json() or {})
        except ValueError:
            return self.error(400, "invalid_json")
        if not isinstance(data, dict):
            return self.error(400, "a JSON object is expected")
        if call.method == "POST" and call.path == "/_sandbox/faults":
            try:
                faults = self.parse_faults(data)
            except (ValueError, TypeError) as exc:
                return self.error(400, str(exc))
            with self._lock:
                self.faults = faults
                if "seed" in faults:
                    self._rng = random.Random(faults["seed"])
            return Reply(200, {**self.faults_body, "faults": faults})
        if call.method == "POST" and call.path == "/_sandbox/reset":
            self._reset()
            return Reply(200, dict(self.ok_body))
        handler = self._controls.get((call.method, call.path))
        if handler is None:
            return self.error(404, "unknown control route")
        reply = handler(self, call, data)
        return await reply if asyncio.iscoroutine(reply) else reply
