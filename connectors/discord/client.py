"""A thin httpx client for Discord's REST API v10, behind the shared ``HttpPolicy``.

This is the one place where Discord answers become charterflow errors
(https://discord.com/developers/docs/topics/opcodes-and-status-codes#json). Requests carry
``Authorization: Bot <token>`` and the ``User-Agent: DiscordBot ($url, $versionNumber)`` that
Discord requires (https://discord.com/developers/docs/reference#user-agent); ids are strings.

After a 401 (the token is wrong) the client stops sending at once, and after ``max_forbidden``
403s within 10 minutes it stops too: Discord bans an IP for a while after 10,000 401/403/429 answers in
10 minutes (https://discord.com/developers/docs/topics/rate-limits#invalid-request-limit), so a
loop of refused requests must not be allowed to spend that budget.
"""

from __future__ import annotations

import hashlib
import logging
import random
import re
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import SecretStr

from connectors.discord.ratelimit import DiscordRateLimits
from connectors.discord.settings import DiscordSettings
from connectors.errors import ConfigError, FatalError
from connectors.http import Clock, HttpPolicy, Redactor, RetryPolicy

__all__ = [
    "PLATFORM",
    "USER_AGENT",
    "CannotDirectMessage",
    "DiscordAPIError",
    "DiscordClient",
    "MissingPermissions",
    "log",
]

PLATFORM = "discord"
USER_AGENT = "DiscordBot (https://github.com/charterflow/charterflow, 0.1.0)"
log = logging.getLogger("charterflow.connectors.discord")

# JSON error codes we treat specially (https://discord.com/developers/docs/topics/opcodes-and-status-codes).
UNKNOWN_CHANNEL = 10003
UNKNOWN_MESSAGE = 10008
UNKNOWN_MEMBER = 10007
UNKNOWN_ROLE = 10011
UNKNOWN_USER = 10013
MISSING_ACCESS = 50001
CANNOT_DM = 50007
MISSING_PERMISSIONS = 50013
INVALID_FORM_BODY = 50035
THREAD_ALREADY_CREATED = 160004
INDEX_NOT_READY = 110000

_FORBIDDEN_WINDOW = 600.0  # Discord counts invalid requests per 10 minutes
# Interaction tokens let anyone answer as the app for 15 minutes: never logged.
# https://discord.com/developers/docs/interactions/receiving-and-responding#followup-messages
_TOKEN_PATHS = (r"(/webhooks/\d+/)[^/?\s]+", r"(/interactions/\d+/)[^/?\s]+")
_MAJOR_PARAMS = ("guild_id", "channel_id", "interaction_token", "webhook_id", "application_id", "interaction_id")
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


class DiscordAPIError(FatalError):
    """Discord refused a request; ``code`` is its JSON error code (0 when there was none)."""

    def __init__(self, message: str, *, status: int | None, code: int = 0) -> None:
        super().__init__(message, platform=PLATFORM, status=status)
        self.code = code


class MissingPermissions(DiscordAPIError):
    """403 with code 50013: the bot lacks a permission or the role is above the bot's highest role."""


class CannotDirectMessage(DiscordAPIError):
    """403 with code 50007: a member does not accept DMs from the bot.

    ``user_ids`` are the members who could not be reached (a recipient no longer in the server: as
    the caller named them); ``delivered`` holds the ``MessageRef``s of
    the DMs that did go out, so the caller can fall back to a mention in the WG channel for the rest.
    """

    def __init__(self, message: str, *, user_ids: tuple[str, ...], delivered: tuple[Any, ...] = ()) -> None:
        super().__init__(message, status=403, code=CANNOT_DM)
        self.user_ids = user_ids
        self.delivered = delivered


def _flatten_errors(errors: Any, path: str = "") -> list[str]:
    """``{"content": {"_errors": [{"code", "message"}]}}`` → ``["content: message"]``."""
    out: list[str] = []
    if isinstance(errors, Mapping):
        for key, value in errors.items():
            if key == "_errors" and isinstance(value, list):
                for item in value:
                    if isinstance(item, Mapping):
                        out.append(f"{path or 'body'}: {item.get('message', item.get('code', '?'))}")
            else:
                out.extend(_flatten_errors(value, f"{path}.{key}" if path else str(key)))
    return out


class DiscordClient:
    """Sends requests to Discord's REST API as one bot.

    ``api_url`` includes the version (``https://discord.com/api/v10``); ``transport``, ``clock``
    and ``rng`` are injectable for tests. One instance per token; thread-safe.
    """

    def __init__(
        self,
        *,
        api_url: str,
        token: SecretStr,
        global_rate_limit: int = 50,
        global_rate_window: float = 1.0,
        timeout: float = 15.0,
        max_retries: int = 4,
        max_forbidden: int = 3,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.limits = DiscordRateLimits(global_limit=global_rate_limit, global_window=global_rate_window, clock=clock)
        self.policy = HttpPolicy(
            platform=PLATFORM,
            limiter=self.limits,  # type: ignore[arg-type]  # same interface as RateLimiter
            retry=retry or RetryPolicy(max_retries=max_retries),
            retry_after=self.limits.retry_after,
            default_retry_after=1.0,
            redactor=Redactor(secrets=[token.get_secret_value()], patterns=_TOKEN_PATHS),
            clock=clock,
            rng=rng,
        )
        self._http = httpx.Client(
            base_url=self.api_url,
            transport=transport,
            timeout=timeout,
            follow_redirects=False,
            event_hooks={"response": [self.limits.observe]},
        )
        # The only place the token is unwrapped. Interaction webhooks and callbacks are sent
        # without it: they are authorised by the interaction token in their URL.
        self._auth = {"Authorization": f"Bot {token.get_secret_value()}"}
        self._base_headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        self.max_forbidden = max_forbidden
        self._lock = threading.Lock()
        self._forbidden: list[float] = []  # when recent 403s came (monotonic seconds)
        self._clock = self.policy.clock
        self._stopped: str | None = None

    @classmethod
    def from_settings(cls, settings: DiscordSettings, **options: Any) -> DiscordClient:
        """A client for the bot of ``settings`` (the connector's and the doctor's); ``options`` are
        the other ``__init__`` keywords (``transport``, ``retry``, ...) and override the settings'."""
        configured = {
            "global_rate_limit": settings.global_rate_limit,
            "global_rate_window": settings.global_rate_window,
            "timeout": settings.timeout,
            "max_retries": settings.max_retries,
            "max_forbidden": settings.max_forbidden,
        }
        return cls(api_url=settings.api_url, token=settings.token, **(configured | options))

    def __repr__(self) -> str:
        return f"DiscordClient(api_url={self.api_url!r})"

    def close(self) -> None:
        """Close the underlying HTTP connections."""
        self._http.close()

    @property
    def redact(self) -> Redactor:
        """The redactor that knows the token."""
        return self.policy.redact

    @property
    def stopped(self) -> str | None:
        """Why the client stopped sending (after 401/repeated 403), or ``None``."""
        return self._stopped

    def resume(self) -> None:
        """Allow sending again after the cause of a stop was fixed (for example a permission)."""
        with self._lock:
            self._stopped = None
            self._forbidden.clear()

    def request(
        self,
        method: str,
        template: str,
        *,
        what: str,
        path: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | list[tuple[str, Any]] | None = None,
        json_body: Any = None,
        reason: str | None = None,
        ok: tuple[int, ...] = (200,),
        auth: bool = True,
        idempotent: bool | None = None,
    ) -> httpx.Response:
        """Send ``method template`` (``/guilds/{guild_id}/...`` filled from ``path``).

        Returns the response when its status is in ``ok``; raises ``DiscordAPIError`` (or a
        subclass) for other 4xx, ``ConfigError`` for 401, ``RetriableError`` for exhausted 429/5xx.
        ``reason`` goes to ``X-Audit-Log-Reason`` (URL-encoded, at most 512 characters).
        """
        if self._stopped:
            raise FatalError(
                f"Discord: not sending {method} {template}: the client stopped after {self._stopped}; "
                "fix the cause, then restart (or call resume())",
                platform=PLATFORM,
            )
        values = dict(path or {})
        url = _PLACEHOLDER.sub(lambda m: quote(str(values[m.group(1)]), safe="@"), template)
        headers = dict(self._base_headers)
        if auth:
            headers.update(self._auth)
        if reason:
            # 1-512 URL-encoded UTF-8 characters (https://discord.com/developers/docs/resources/audit-log).
            headers["X-Audit-Log-Reason"] = quote(reason.strip()[:512], safe=" ")
        request = self._http.build_request(method, url, params=params, json=json_body, headers=headers)
        param = next((p for p in _MAJOR_PARAMS if p in values), None)
        major = str(values[param]) if param else ""
        if param == "interaction_token":
            # Follow-ups are limited per interaction, not per application (their webhook_id is
            # the application id): https://github.com/discord/discord-api-docs/issues/2701.
            # A digest: the token itself never sits in the limiter's tables.
            major = hashlib.sha256(major.encode()).hexdigest()[:16]
        if idempotent is None:
            # Writes are not retried blindly, even the idempotent-looking PUT/DELETE: the connector
            # re-reads the platform first (HttpPolicy.ensure), so no change is ever sent twice.
            idempotent = method.upper() in ("GET", "HEAD")
        with self.limits.route((method.upper(), template, major)):
            response = self.policy.send(self._http, request, idempotent=idempotent)
        if response.status_code in ok:
            return response
        raise self._error(response, what=what, auth=auth)

    def json(self, response: httpx.Response, *, what: str) -> Any:
        """The JSON body of ``response``; ``FatalError`` if it is not JSON."""
        try:
            return response.json()
        except ValueError:
            raise FatalError(
                f"Discord answered {what} with HTTP {response.status_code} but not JSON",
                platform=PLATFORM,
                status=response.status_code,
            ) from None

    def _error(self, response: httpx.Response, *, what: str, auth: bool) -> Exception:
        status = response.status_code
        try:
            body = response.json()
        except ValueError:
            body = None
        code = 0
        message = ""
        details: list[str] = []
        if isinstance(body, dict):
            given = body.get("code")
            code = given if isinstance(given, int) else 0
            message = str(body.get("message") or "")
            details = _flatten_errors(body.get("errors"))
        text = self.redact("; ".join([message, *details]).strip("; ") or response.text[:200] or response.reason_phrase)
        if status == 401 and auth:
            with self._lock:
                self._stopped = "HTTP 401 (invalid bot token)"
            return ConfigError(
                f"Discord rejected the bot token (HTTP 401: {text}); set CHARTERFLOW_DISCORD_TOKEN to the "
                "token shown under Developer Portal → your application → Bot. No further requests are sent."
            )
        if status == 403 and auth:
            with self._lock:
                now = self._clock.monotonic()
                self._forbidden = [t for t in self._forbidden if t > now - _FORBIDDEN_WINDOW] + [now]
                if len(self._forbidden) >= self.max_forbidden:
                    self._stopped = f"{len(self._forbidden)} HTTP 403 answers within 10 minutes"
            if code == MISSING_PERMISSIONS:
                return MissingPermissions(
                    f"Discord refused {what}: Missing Permissions (403, code 50013): {text}",
                    status=status,
                    code=code,
                )
        suffix = f", code {code}" if code else ""
        return DiscordAPIError(f"Discord refused {what} (HTTP {status}{suffix}): {text}", status=status, code=code)
