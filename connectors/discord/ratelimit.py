"""Discord's rate limits, plugged into the shared ``HttpPolicy`` through its hooks.

Discord limits each route per top-level resource (guild, channel, webhook) with buckets it names
in ``X-RateLimit-Bucket`` (several routes may share one bucket), and the whole bot to 50 requests
per second. See https://discord.com/developers/docs/topics/rate-limits — "do not hard-code rate
limits": everything per route here is learned from the response headers.

How the pieces meet ``HttpPolicy`` (which knows one limiter, ``acquire``/``release``/``pause``):

- ``DiscordClient`` names the route of each request in ``DiscordRateLimits.route(...)`` (a
  thread-local context, since ``acquire()`` takes no argument) before calling ``HttpPolicy.send``.
- ``acquire`` waits for the route's bucket (``Remaining``/``Reset-After``) and then for the global
  sliding window (the shared ``RateLimiter``). A route whose bucket is still unknown sends one
  request at a time until the first answer names its bucket.
- ``observe`` is an httpx response hook: it reads the ``X-RateLimit-*`` headers of every answer.
- ``retry_after`` is the policy's 429 hook: it reads ``retry_after`` (a float, in the body) and
  ``X-RateLimit-Scope``; ``pause`` then holds back only what the 429 was about — every request
  for a global 429, the one bucket otherwise.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

import httpx

from connectors.http import Clock, RateLimiter, SystemClock
from connectors.http import _Slot as _GlobalSlot

__all__ = ["DiscordRateLimits", "RouteKey", "discord_retry_after"]

RouteKey = tuple[str, str, str]  # (method, route template, major parameter value)
# Idle buckets are forgotten beyond this many: every interaction's follow-ups get their own.
MAX_BUCKETS = 2048


def discord_retry_after(response: httpx.Response) -> float | None:
    """Seconds to wait after a Discord 429: the body's ``retry_after`` (a float), else headers.

    The 429 body is ``{"message", "retry_after": <float>, "global": <bool>, "code"?: <int>}``;
    ``Retry-After`` (whole seconds) and ``X-RateLimit-Reset-After`` are the fallbacks.
    https://discord.com/developers/docs/topics/rate-limits#exceeding-a-rate-limit
    """
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        value = body.get("retry_after")
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return max(float(value), 0.0)
    for header in ("Retry-After", "X-RateLimit-Reset-After"):
        raw = response.headers.get(header)
        if raw is not None:
            try:
                return max(float(raw), 0.0)
            except ValueError:
                continue
    return None


@dataclass
class _Bucket:
    limit: int | None = None  # None: not learned yet
    remaining: int = 1
    reset_at: float | None = None  # monotonic time the current window ends (None: unknown)
    blocked_until: float = float("-inf")  # after a 429 on this bucket
    inflight: int = 0
    window: float | None = None  # X-RateLimit-Reset of the newest window seen: names the window
    locally_reset: bool = False  # remaining was refilled locally when reset_at passed
    hits: int = 0  # 429s on this bucket (for measurements)
    names: set[str] = field(default_factory=set)


def _update(bucket: _Bucket, *, limit: int, remaining: int, window: float, reset_at: float) -> None:
    """Fold one answer's headers into ``bucket``.

    ``X-RateLimit-Reset`` (the server's window end, epoch seconds) names the window: an answer for
    an older window than the newest seen is ignored (it was in flight across a reset); an answer
    for a newer one starts that window here; within one window the lower count wins, since the
    server has not yet counted requests still in flight.
    """
    others = max(bucket.inflight - 1, 0)
    first = bucket.limit is None
    bucket.limit = limit
    if first:
        bucket.window, bucket.reset_at = window, reset_at
        bucket.remaining = max(remaining - others, 0)
        return
    if math.isnan(window):  # no Reset header: go by Reset-After alone
        newer = bucket.reset_at is None or reset_at > bucket.reset_at + 0.005
    elif bucket.window is None or math.isnan(bucket.window):
        newer = True
    elif window > bucket.window + 1e-6:
        newer = True
    elif window < bucket.window - 1e-6:
        return  # an answer from an older window
    else:
        newer = False
    if newer:
        if bucket.locally_reset:
            # Refilled here when reset_at passed (minus what was still in flight), and counted
            # down since: exact, unless the server counted more.
            bucket.remaining = min(bucket.remaining, remaining)
        else:
            # The server moved on before we noticed: what is in flight may not be counted yet.
            bucket.remaining = max(remaining - others, 0)
        bucket.window, bucket.reset_at = window, reset_at
        bucket.locally_reset = False
    else:
        bucket.remaining = min(bucket.remaining, remaining)
        if bucket.reset_at is None:
            bucket.reset_at = reset_at


class _Slot:
    __slots__ = ("bucket", "global_slot", "route")

    def __init__(self, bucket: _Bucket | None, global_slot: _GlobalSlot, route: RouteKey | None) -> None:
        self.bucket = bucket
        self.global_slot = global_slot
        self.route = route


class DiscordRateLimits:
    """Per-route buckets learned from headers, plus the global limit, as one ``HttpPolicy`` limiter.

    ``global_limit`` requests per ``global_window`` seconds for the whole bot (50/s on Discord).
    Thread-safe; one instance per bot token.
    """

    def __init__(self, *, global_limit: int = 50, global_window: float = 1.0, clock: Clock | None = None) -> None:
        self._clock = clock or SystemClock()
        self.global_limiter = RateLimiter(limit=global_limit, window=global_window, clock=self._clock)
        self.limit = global_limit
        self.window = global_window
        self._cond = threading.Condition()
        self._route_bucket: dict[RouteKey, str] = {}  # route -> X-RateLimit-Bucket
        self._buckets: dict[tuple[str, str], _Bucket] = {}  # (bucket hash, major) -> state
        self._unknown: dict[RouteKey, _Bucket] = {}  # routes whose bucket is not learned yet
        self._local = threading.local()
        self.stats: dict[str, int] = {"429_global": 0, "429_bucket": 0, "429_shared": 0}

    def __repr__(self) -> str:
        return f"DiscordRateLimits(global={self.limit}/{self.window:g}s, buckets={len(self._buckets)})"

    # ---- the route context ---------------------------------------------------------------

    def route(self, key: RouteKey | None) -> _RouteContext:
        """``with limits.route(key): policy.send(...)`` — the bucket the next requests use."""
        return _RouteContext(self, key)

    def _current(self) -> RouteKey | None:
        return getattr(self._local, "route", None)

    # ---- the limiter interface HttpPolicy uses --------------------------------------------

    def _bucket_for(self, route: RouteKey) -> _Bucket:
        name = self._route_bucket.get(route)
        if name is None:
            return self._unknown.setdefault(route, _Bucket())
        key = (name, route[2])
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket()
        return bucket

    def acquire(self) -> _Slot:
        """Wait for the route's bucket, then for the global window; returns the slot to release."""
        route = self._current()
        bucket: _Bucket | None = None
        if route is not None:
            with self._cond:
                while True:
                    bucket = self._bucket_for(route)
                    now = self._clock.monotonic()
                    wait = bucket.blocked_until - now
                    if wait <= 0:
                        if bucket.limit is None:
                            # Unknown bucket: one request at a time until an answer names it.
                            if bucket.inflight == 0:
                                break
                            wait = 0.05
                        else:
                            if bucket.reset_at is not None and now >= bucket.reset_at:
                                # A new window: requests still in flight may land in it.
                                bucket.remaining = max(bucket.limit - bucket.inflight, 0)
                                bucket.reset_at = None
                                bucket.locally_reset = True
                            if bucket.remaining > 0:
                                bucket.remaining -= 1
                                break
                            wait = (bucket.reset_at - now) if bucket.reset_at is not None else 0.05
                    self._cond.wait(timeout=max(wait, 0.0005))
                bucket.inflight += 1
        global_slot = self.global_limiter.acquire()
        slot = _Slot(bucket, global_slot, route)
        self._local.slot = slot
        return slot

    def release(self, slot: _Slot) -> None:
        """The request was answered (or failed): free its place."""
        self.global_limiter.release(slot.global_slot)
        if slot.bucket is not None:
            with self._cond:
                slot.bucket.inflight -= 1
                self._cond.notify_all()

    def pause(self, seconds: float) -> None:
        """After a 429: hold back every request (global scope) or only this bucket's."""
        scope = getattr(self._local, "last_scope", None)
        slot: _Slot | None = getattr(self._local, "slot", None)
        if scope == "global" or slot is None or slot.bucket is None:
            self.global_limiter.pause(seconds)
            return
        with self._cond:
            until = self._clock.monotonic() + seconds
            slot.bucket.blocked_until = max(slot.bucket.blocked_until, until)
            slot.bucket.remaining = 0
            slot.bucket.reset_at = max(slot.bucket.reset_at or until, until)
            self._cond.notify_all()

    # ---- hooks ---------------------------------------------------------------------------------

    def observe(self, response: httpx.Response) -> None:
        """httpx response hook: learn the bucket of the current route from ``X-RateLimit-*``."""
        slot: _Slot | None = getattr(self._local, "slot", None)
        if slot is None or slot.route is None:
            return
        headers = response.headers
        name = headers.get("X-RateLimit-Bucket")
        now = self._clock.monotonic()
        with self._cond:
            if name is None:
                # No bucket (an error page, an unlimited route): stop serialising this route.
                if slot.bucket is not None and slot.bucket.limit is None and response.status_code < 500:
                    slot.bucket.limit = 1_000_000
                    slot.bucket.remaining = 1_000_000
                self._cond.notify_all()
                return
            try:
                limit = int(headers.get("X-RateLimit-Limit", ""))
                remaining = int(headers.get("X-RateLimit-Remaining", ""))
                reset_after = float(headers.get("X-RateLimit-Reset-After", ""))
            except ValueError:
                return
            try:
                window = float(headers.get("X-RateLimit-Reset", "nan"))
            except ValueError:
                window = float("nan")
            route = slot.route
            if self._route_bucket.get(route) != name:
                if len(self._buckets) >= MAX_BUCKETS:
                    self._prune(now)
                self._route_bucket[route] = name
                learned = self._bucket_for(route)
                old = slot.bucket
                if old is not None and old is not learned:
                    # Move the in-flight count over so release() balances on the right bucket.
                    learned.inflight += 1
                    old.inflight -= 1
                    slot.bucket = learned
                    self._unknown.pop(route, None)
            bucket = slot.bucket if slot.bucket is not None else self._bucket_for(route)
            bucket.names.add(f"{route[0]} {route[1]}")
            _update(bucket, limit=limit, remaining=remaining, window=window, reset_at=now + reset_after)
            if response.status_code == 429:
                bucket.remaining = 0
            self._cond.notify_all()

    def _prune(self, now: float) -> None:
        """Forget buckets with nothing in flight whose window has passed (held: ``_cond``); a
        route of a forgotten bucket is learned again by its next answer."""
        idle = {
            key
            for key, b in self._buckets.items()
            if b.inflight == 0 and b.blocked_until < now and (b.reset_at is None or b.reset_at < now)
        }
        for key in idle:
            del self._buckets[key]
        self._route_bucket = {r: n for r, n in self._route_bucket.items() if (n, r[2]) not in idle}

    def retry_after(self, response: httpx.Response) -> float | None:
        """The policy's 429 hook: the wait, and which scope ``pause`` should hold back."""
        scope = (response.headers.get("X-RateLimit-Scope") or "").lower()
        is_global = response.headers.get("X-RateLimit-Global", "").lower() == "true"
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and body.get("global") is True:
            is_global = True
        if is_global:
            scope = "global"
        self._local.last_scope = scope or "user"
        with self._cond:
            key = {"global": "429_global", "shared": "429_shared"}.get(scope, "429_bucket")
            self.stats[key] += 1
            slot: _Slot | None = getattr(self._local, "slot", None)
            if slot is not None and slot.bucket is not None:
                slot.bucket.hits += 1
        return discord_retry_after(response)

    def snapshot(self) -> dict[str, object]:
        """What was learned: buckets (routes, limit, 429s) and 429 counts, for measurements."""
        with self._cond:
            return {
                "buckets": {
                    f"{name}:{major}": {"routes": sorted(b.names), "limit": b.limit, "429": b.hits}
                    for (name, major), b in self._buckets.items()
                },
                "stats": dict(self.stats),
                "global_waited": round(self.global_limiter.waited, 4),
            }


class _RouteContext:
    def __init__(self, limits: DiscordRateLimits, key: RouteKey | None) -> None:
        self._limits = limits
        self._key = key
        self._previous: RouteKey | None = None

    def __enter__(self) -> None:
        local = self._limits._local
        self._previous = getattr(local, "route", None)
        local.route = self._key
        local.slot = None
        local.last_scope = None

    def __exit__(self, *exc: object) -> None:
        local = self._limits._local
        local.route = self._previous
        local.slot = None
