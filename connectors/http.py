"""The HTTP policy every connector shares: rate limiting, bounded retries, redaction.

One ``HttpPolicy`` wraps one connector's ``httpx.Client``. It is the single place where raw httpx
errors become charterflow errors, and it decides what is retried:

- **429** is always retried (the request was refused before it was processed), after the
  platform's own hint (``retry_after`` callable: Discourse ``Retry-After`` then
  ``extras.wait_seconds``; Discord ``X-RateLimit-Reset-After``), and every caller sharing the
  policy waits with it, so one rate-limit window costs at most one 429.
- **5xx, timeouts and dropped connections** are retried with exponential backoff and jitter, but
  only for requests marked ``idempotent`` (reads). For a write the outcome is unknown, so the
  policy raises ``RetriableError(ambiguous=True)`` and the connector re-reads the platform before
  deciding to send the write again (``HttpPolicy.ensure``).
- **Other 4xx** (401/403/404/422...) are never retried; the response goes back to the connector,
  which maps it to ``ConfigError`` or ``FatalError`` with a message saying what to change.

Requests are also paced by a client-side sliding-window limiter sized to the platform's documented
limit, so a burst waits exactly as long as the limit requires instead of collecting 429s.
Clock, sleep and randomness are injectable; secrets are redacted from every log line and message.
"""

from __future__ import annotations

import enum
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol, TypeVar

import httpx

from connectors.errors import RetriableError

__all__ = [
    "Clock",
    "SystemClock",
    "Redactor",
    "RateLimiter",
    "RetryPolicy",
    "HttpPolicy",
    "WriteOutcome",
]

log = logging.getLogger("charterflow.connectors.http")
T = TypeVar("T")


class Clock(Protocol):
    """Time as the policy sees it; tests inject a fake one."""

    def monotonic(self) -> float:
        """Seconds on a monotonic clock."""
        ...

    def sleep(self, seconds: float) -> None:
        """Block for ``seconds``."""
        ...


class SystemClock:
    """The real clock: ``time.monotonic`` and ``time.sleep``."""

    def monotonic(self) -> float:
        """Seconds on the process's monotonic clock."""
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        """Sleep for ``seconds`` (nothing when not positive)."""
        if seconds > 0:
            time.sleep(seconds)


class Redactor:
    """Replaces every known secret in a string with ``***``.

    Secrets shorter than 4 characters are ignored (redacting "a" would mangle every message).
    """

    MASK = "***"

    def __init__(self, *, secrets: Iterable[str | None] = (), patterns: Iterable[str] = ()) -> None:
        self._secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)
        # Secrets known only by where they appear (a per-request token in a URL path): each
        # pattern's first group is kept, the rest of the match is masked.
        self._patterns = [re.compile(p) for p in patterns]

    def __call__(self, text: object) -> str:
        out = str(text)
        for secret in self._secrets:
            out = out.replace(secret, self.MASK)
        for pattern in self._patterns:
            out = pattern.sub(lambda m: m.group(1) + self.MASK, out)
        return out

    def __repr__(self) -> str:
        return f"Redactor(<{len(self._secrets)} secrets>)"


class _Slot:
    __slots__ = ("ts", "in_flight")

    def __init__(self, ts: float) -> None:
        self.ts = ts
        self.in_flight = True


class RateLimiter:
    """A thread-safe sliding-window limiter: at most ``limit`` requests in any ``window`` seconds.

    A request's slot is stamped when its *response* arrives (``release``), which is never earlier
    than when the server counted it; pacing from that stamp cannot overrun a server-side sliding
    window, whatever the network latency. ``pause`` blocks every caller (after a 429).
    ``limit=None`` disables pacing but keeps ``pause``.
    """

    def __init__(self, *, limit: int | None, window: float, clock: Clock | None = None) -> None:
        if limit is not None and limit < 1:
            raise ValueError("limit must be at least 1 (or None for no limit)")
        if window <= 0:
            raise ValueError("window must be positive")
        self.limit = limit
        self.window = float(window)
        self._clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._slots: list[_Slot] = []
        self._paused_until = float("-inf")
        self.waited = 0.0  # total seconds callers spent waiting here (for measurements)

    def acquire(self) -> _Slot:
        """Wait until a request may be sent; returns the slot to ``release`` when it is answered."""
        while True:
            with self._lock:
                now = self._clock.monotonic()
                wait = self._paused_until - now
                if wait <= 0 and self.limit is not None:
                    horizon = now - self.window
                    self._slots = [s for s in self._slots if s.in_flight or s.ts > horizon]
                    if len(self._slots) >= self.limit:
                        oldest = min(s.ts for s in self._slots)
                        # An in-flight slot's stamp moves forward when it is released: poll.
                        wait = max(oldest + self.window - now, 0.001)
                if wait <= 0:
                    slot = _Slot(now)
                    self._slots.append(slot)
                    return slot
                self.waited += wait
            self._clock.sleep(wait)

    def release(self, slot: _Slot) -> None:
        """Mark ``slot`` answered now (its place in the window starts counting from here)."""
        with self._lock:
            slot.ts = self._clock.monotonic()
            slot.in_flight = False

    def pause(self, seconds: float) -> None:
        """Hold every caller back for ``seconds`` from now (the platform said so)."""
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock.monotonic() + seconds)


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How often and how long to retry.

    ``max_retries`` bounds retries of 5xx/timeouts/dropped connections; ``max_rate_limit_retries``
    bounds 429 retries; ``max_wait`` caps one wait (a platform asking for more is reported as a
    ``RetriableError`` carrying its ``retry_after`` instead of blocking a worker for an hour).
    Backoff is ``min(max_delay, base_delay * 2**n)`` scaled by a random factor in [0.5, 1].
    """

    max_retries: int = 4
    max_rate_limit_retries: int = 8
    base_delay: float = 0.25
    max_delay: float = 8.0
    max_wait: float = 120.0

    def backoff(self, retry_number: int, rng: random.Random) -> float:
        """Seconds to wait before retry number ``retry_number`` (0-based), with jitter."""
        delay = min(self.max_delay, self.base_delay * (2**retry_number))
        return delay * (0.5 + rng.random() / 2)


class WriteOutcome(str, enum.Enum):
    """What ``HttpPolicy.ensure`` found: the write was not needed, or it was applied."""

    UNCHANGED = "unchanged"
    APPLIED = "applied"


_TRANSIENT_STATUSES = frozenset({500, 502, 503, 504, 520, 521, 522, 524})


class HttpPolicy:
    """Sends requests through one ``httpx.Client`` with pacing, retries and error translation.

    ``retry_after`` reads the platform's wait hint from a 429 (or any response: return ``None``
    when there is none); ``default_retry_after`` is used for a 429 without a readable hint.
    """

    def __init__(
        self,
        *,
        platform: str,
        limiter: RateLimiter | None = None,
        retry: RetryPolicy | None = None,
        retry_after: Callable[[httpx.Response], float | None] | None = None,
        default_retry_after: float = 10.0,
        redactor: Redactor | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.platform = platform
        self.clock = clock or SystemClock()
        self.limiter = limiter or RateLimiter(limit=None, window=1.0, clock=self.clock)
        self.retry = retry or RetryPolicy()
        self._retry_after = retry_after or _retry_after_header
        self.default_retry_after = default_retry_after
        self.redact = redactor or Redactor()
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self.stats: dict[str, int] = {"requests": 0, "429": 0, "5xx": 0, "transport_errors": 0}

    def __repr__(self) -> str:
        return f"HttpPolicy(platform={self.platform!r}, limit={self.limiter.limit}/{self.limiter.window}s)"

    def _count(self, key: str) -> None:
        with self._lock:
            self.stats[key] = self.stats.get(key, 0) + 1

    def send(self, client: httpx.Client, request: httpx.Request, *, idempotent: bool) -> httpx.Response:
        """Send ``request``; return the response unless it is a 429/5xx/transport failure.

        Raises ``RetriableError`` when retries are exhausted, or at once for a write whose
        outcome is unknown (``ambiguous=True``: re-read before sending it again).
        """
        what = self.redact(f"{request.method} {request.url.path}")
        errors = 0
        limited = 0
        while True:
            slot = self.limiter.acquire()
            started = self.clock.monotonic()
            try:
                response = client.send(request)
                response.read()
            except httpx.TransportError as exc:
                self.limiter.release(slot)
                self._count("transport_errors")
                # A connection that was never made cannot have delivered the request.
                sent = not isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))
                kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "connection failed"
                message = self.redact(f"{self.platform}: {what} {kind}: {type(exc).__name__}: {exc}")
                if sent and not idempotent:
                    raise _ambiguous(message, platform=self.platform) from None
                if errors >= self.retry.max_retries:
                    raise RetriableError(
                        f"{message} (gave up after {errors + 1} attempts)",
                        platform=self.platform,
                        retry_after=self.retry.max_delay,
                    ) from None
                delay = self.retry.backoff(errors, self._rng)
                errors += 1
                log.warning("%s; retry %d in %.2fs", message, errors, delay)
                self.clock.sleep(delay)
                continue
            self.limiter.release(slot)
            self._count("requests")
            elapsed = (self.clock.monotonic() - started) * 1000
            log.debug("%s %s -> %d (%.0f ms)", self.platform, what, response.status_code, elapsed)

            if response.status_code == 429:
                self._count("429")
                hint = self._retry_after(response)
                wait = self.default_retry_after if hint is None else max(hint, 0.0)
                if wait > self.retry.max_wait or limited >= self.retry.max_rate_limit_retries:
                    raise RetriableError(
                        f"{self.platform}: {what} rate limited; retry after {wait:g}s (after {limited + 1} attempts)",
                        platform=self.platform,
                        status=429,
                        retry_after=wait,
                    )
                limited += 1
                log.info("%s: %s rate limited, waiting %.2fs", self.platform, what, wait)
                self.limiter.pause(wait)
                continue

            if response.status_code in _TRANSIENT_STATUSES:
                self._count("5xx")
                message = f"{self.platform}: {what} answered HTTP {response.status_code}"
                if not idempotent:
                    raise _ambiguous(message, platform=self.platform, status=response.status_code)
                if errors >= self.retry.max_retries:
                    raise RetriableError(
                        f"{message} (gave up after {errors + 1} attempts)",
                        platform=self.platform,
                        status=response.status_code,
                        retry_after=self.retry.max_delay,
                    )
                delay = self.retry.backoff(errors, self._rng)
                errors += 1
                log.warning("%s; retry %d in %.2fs", message, errors, delay)
                self.clock.sleep(delay)
                continue
            return response

    def ensure(
        self, *, is_done: Callable[[], bool], write: Callable[[], T], what: str
    ) -> tuple[WriteOutcome, T | None]:
        """Apply a write at most once: re-read the platform before every attempt.

        ``is_done`` reads the platform (retried like any read) and says whether the wanted state
        already holds; ``write`` sends the change. After an ambiguous failure the next round's
        ``is_done`` tells whether the failed attempt was in fact applied, so a write is never sent
        again once it has taken effect. Bounded by ``RetryPolicy.max_retries``.
        """
        failures = 0
        while True:
            if is_done():
                return (WriteOutcome.APPLIED if failures else WriteOutcome.UNCHANGED), None
            try:
                return WriteOutcome.APPLIED, write()
            except RetriableError as exc:
                if exc.status == 429 or failures >= self.retry.max_retries:
                    raise
                delay = self.retry.backoff(failures, self._rng)
                failures += 1
                log.warning(
                    "%s: %s failed (%s); re-reading before retry %d in %.2fs",
                    self.platform,
                    self.redact(what),
                    self.redact(exc),
                    failures,
                    delay,
                )
                self.clock.sleep(delay)


def _ambiguous(message: str, *, platform: str, status: int | None = None) -> RetriableError:
    return RetriableError(
        f"{message}; the write may or may not have been applied",
        platform=platform,
        status=status,
        ambiguous=True,
    )


def _retry_after_header(response: httpx.Response) -> float | None:
    """``Retry-After`` as seconds (RFC 9110 allows an HTTP date too; platforms here send seconds)."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None
