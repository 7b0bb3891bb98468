"""One httpx client for the client-server and Synapse admin APIs, behind the shared HttpPolicy.

Matrix errors are ``{"errcode": "M_…", "error": "…"}``; a 429 carries ``retry_after_ms`` (and,
from Synapse 1.9x, a ``Retry-After`` header).
https://spec.matrix.org/v1.11/client-server-api/#standard-error-response
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import SecretStr

from connectors.errors import ConfigError, FatalError
from connectors.http import Clock, HttpPolicy, RateLimiter, Redactor, RetryPolicy

__all__ = ["PLATFORM", "MatrixClient", "q", "retry_after"]

PLATFORM = "matrix"
log = logging.getLogger("charterflow.connectors.matrix")


def q(value: str) -> str:
    """A path segment (room ids, aliases and user ids hold ``!#@:``)."""
    return quote(value, safe="")


def retry_after(response: httpx.Response) -> float | None:
    """The wait a 429 asks for: ``Retry-After`` seconds, else the body's ``retry_after_ms``."""
    header = response.headers.get("Retry-After")
    if header:
        try:
            return float(header)
        except ValueError:
            pass
    try:
        ms = response.json().get("retry_after_ms")
    except (ValueError, AttributeError):
        return None
    return float(ms) / 1000 if isinstance(ms, (int, float)) else None


class MatrixClient:
    """``request(method, path, what=…)`` returns the decoded JSON or raises from the error tree."""

    def __init__(
        self,
        *,
        base_url: str,
        token: SecretStr,
        timeout: float = 20.0,
        max_retries: int = 4,
        rate_limit: int = 50,
        transport: httpx.BaseTransport | None = None,
        clock: Clock | None = None,
        retry: RetryPolicy | None = None,
        extra_secrets: tuple[SecretStr | None, ...] = (),
    ) -> None:
        secret = token.get_secret_value()
        redactor = Redactor(secrets=[secret, *(s.get_secret_value() for s in extra_secrets if s)])
        self.policy = HttpPolicy(
            platform=PLATFORM,
            limiter=RateLimiter(limit=rate_limit, window=1.0, clock=clock),
            retry=retry or RetryPolicy(max_retries=max_retries),
            retry_after=retry_after,
            default_retry_after=1.0,
            redactor=redactor,
            clock=clock,
        )
        self.http = httpx.Client(
            base_url=base_url,
            timeout=timeout,
            transport=transport,
            trust_env=False,
            headers={"Authorization": f"Bearer {secret}"},
        )

    def close(self) -> None:
        """Close the connection pool."""
        self.http.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        what: str,
        json_body: Any = None,
        params: Mapping[str, Any] | None = None,
        idempotent: bool | None = None,
        missing_ok: bool = False,
    ) -> dict[str, Any]:
        """Send; the JSON body. ``idempotent`` defaults to true for GET and for a PUT (Matrix
        PUTs are keyed by a transaction id or a state key: sending one twice changes nothing).
        ``missing_ok``: a 404 returns ``{}``."""
        if idempotent is None:
            idempotent = method in ("GET", "PUT")
        request = self.http.build_request(method, path, json=json_body, params=params)
        response = self.policy.send(self.http, request, idempotent=idempotent)
        if response.status_code < 300:
            return response.json() if response.content else {}
        try:
            body = response.json()
        except ValueError:
            body = {}
        code = str(body.get("errcode", "")) if isinstance(body, dict) else ""
        message = self.policy.redact(
            f"matrix: {what}: HTTP {response.status_code} {code} "
            f"{(body.get('error', '') if isinstance(body, dict) else '')}".strip()
        )
        if response.status_code == 404 and missing_ok:
            return {}
        if response.status_code == 401 or code in ("M_UNKNOWN_TOKEN", "M_MISSING_TOKEN"):
            raise ConfigError(f"{message}; check CHARTERFLOW_MATRIX_ACCESS_TOKEN")
        if response.status_code == 403 and code == "M_FORBIDDEN" and path.startswith("/_synapse/admin/"):
            # Synapse's admin API answers 403 to anyone but a server admin
            # (synapse/rest/admin/_base.py, assert_requester_is_admin): a setup fault, not "no such user".
            raise ConfigError(
                f"{message}; the bot (CHARTERFLOW_MATRIX_ACCESS_TOKEN's user) must be a server admin:"
                ' PUT /_synapse/admin/v1/users/<bot>/admin {"admin": true}'
            )
        raise FatalError(message, platform=PLATFORM, status=response.status_code)

    def get(self, path: str, *, what: str, params: Mapping[str, Any] | None = None, missing_ok: bool = False) -> Any:
        """``GET`` (retried on 5xx and dropped connections): the JSON body, an object or (room
        state) a list."""
        return self.request("GET", path, what=what, params=params, missing_ok=missing_ok)


def event_filter(**fields: Any) -> str:
    """A RoomEventFilter as the ``filter`` query parameter."""
    return json.dumps(fields, separators=(",", ":"))
