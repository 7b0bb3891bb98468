"""A thin httpx client for the Discourse REST API, behind the shared ``HttpPolicy``.

This is the one place where Discourse answers become charterflow errors. API reference:
https://docs.discourse.org/ (the OpenAPI document saved in ``specs/discourse/openapi.json``).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping
from typing import Any

import httpx
from pydantic import SecretStr

from connectors.discourse.settings import DiscourseSettings
from connectors.errors import ConfigError, FatalError
from connectors.http import Clock, HttpPolicy, RateLimiter, Redactor, RetryPolicy

__all__ = ["DiscourseClient", "discourse_retry_after", "PLATFORM"]

PLATFORM = "discourse"
log = logging.getLogger("charterflow.connectors.discourse")

# Discourse's answer to an unknown key or a username the key may not act as (403, invalid_access).
_INVALID_CREDENTIALS = "api username or key is invalid"


def discourse_retry_after(response: httpx.Response) -> float | None:
    """Seconds to wait after a Discourse 429: ``Retry-After`` first, then ``extras.wait_seconds``.

    Discourse sends both on its application 429 (JSON, ``error_type: rate_limit``) but only
    ``Retry-After`` on the per-IP middleware's plain-text 429. See "Available settings for global
    rate limits and throttling", https://meta.discourse.org/t/78612
    """
    header = response.headers.get("Retry-After")
    if header is not None:
        try:
            return float(header)
        except ValueError:
            pass
    try:
        body = response.json()
    except ValueError:
        return None
    if isinstance(body, dict):
        wait = (body.get("extras") or {}).get("wait_seconds")
        if isinstance(wait, (int, float)):
            return float(wait)
    return None


class DiscourseClient:
    """Sends authenticated requests to one Discourse site (``Api-Key`` + ``Api-Username``).

    ``transport`` and ``base_url`` are injectable; the sandbox is reached over real HTTP.
    """

    def __init__(
        self,
        *,
        base_url: str,
        api_key: SecretStr,
        api_username: str,
        admin_rate_limit: int | None = 60,
        admin_rate_window: float = 60.0,
        timeout: float = 20.0,
        max_retries: int = 4,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        extra_secrets: tuple[SecretStr | None, ...] = (),
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_username = api_username
        redactor = Redactor(secrets=[api_key.get_secret_value(), *(s.get_secret_value() for s in extra_secrets if s)])
        self.policy = HttpPolicy(
            platform=PLATFORM,
            limiter=RateLimiter(limit=admin_rate_limit, window=admin_rate_window, clock=clock),
            retry=retry or RetryPolicy(max_retries=max_retries),
            retry_after=discourse_retry_after,
            # pydiscourse's fallback for a 429 without a readable hint.
            default_retry_after=10.0,
            redactor=redactor,
            clock=clock,
            rng=rng,
        )
        self._http = httpx.Client(
            base_url=self.base_url,
            transport=transport,
            timeout=timeout,
            follow_redirects=False,
            headers={
                # The only place the key is unwrapped.
                "Api-Key": api_key.get_secret_value(),
                "Api-Username": api_username,
                "Accept": "application/json",
                "User-Agent": "charterflow-discourse/0.1",
            },
        )

    @classmethod
    def from_settings(cls, settings: DiscourseSettings, **options: Any) -> DiscourseClient:
        """A client for the site and key of ``settings`` (the connector's and the doctor's);
        ``options`` are the other ``__init__`` keywords (``max_retries``, ``transport``, ...)."""
        return cls(
            base_url=settings.url,
            api_key=settings.api_key,
            api_username=settings.api_username,
            admin_rate_limit=settings.admin_rate_limit,
            admin_rate_window=settings.admin_rate_window,
            timeout=settings.timeout,
            extra_secrets=(settings.webhook_secret,),
            **options,
        )

    def __repr__(self) -> str:
        return f"DiscourseClient(base_url={self.base_url!r}, api_username={self.api_username!r})"

    def close(self) -> None:
        """Close the underlying HTTP connections."""
        self._http.close()

    @property
    def redact(self) -> Redactor:
        """The redactor that knows this client's secrets."""
        return self.policy.redact

    def request(
        self,
        method: str,
        path: str,
        *,
        what: str,
        params: Mapping[str, Any] | list[tuple[str, Any]] | None = None,
        json_body: Mapping[str, Any] | None = None,
        admin_route: bool = False,
        ok_statuses: tuple[int, ...] = (200,),
        as_user: str | None = None,
    ) -> httpx.Response:
        """Send one request and return the response if its status is in ``ok_statuses``.

        ``what`` names the object for error messages ("Discourse user 'avery'"). Reads are
        retried on 5xx/timeouts; writes raise ``RetriableError(ambiguous=True)`` instead (see
        ``HttpPolicy.ensure``). Other failures raise ``ConfigError`` or ``FatalError``.
        """
        # ``as_user``: act as that user (an "All users" key may), e.g. to read their own vote.
        request = self._http.build_request(
            method,
            path,
            params=params,
            json=dict(json_body) if json_body is not None else None,
            headers={"Api-Username": as_user} if as_user else None,
        )
        response = self.policy.send(self._http, request, idempotent=method.upper() in ("GET", "HEAD"))
        if response.status_code in ok_statuses:
            return response
        raise self._error(response, what=what, admin_route=admin_route)

    def get(
        self, path: str, *, what: str, params: Any = None, admin_route: bool = False, as_user: str | None = None
    ) -> Any:
        """GET ``path`` and return its JSON (as ``as_user`` when given)."""
        return self.json(
            self.request("GET", path, what=what, params=params, admin_route=admin_route, as_user=as_user), what=what
        )

    def json(self, response: httpx.Response, *, what: str) -> Any:
        """The JSON body of ``response``; ``FatalError`` if it is not JSON."""
        try:
            return response.json()
        except ValueError:
            raise FatalError(
                f"Discourse answered {what} with HTTP {response.status_code} but not JSON"
                f" ({response.headers.get('content-type', 'no content type')})",
                platform=PLATFORM,
                status=response.status_code,
            ) from None

    def _error(self, response: httpx.Response, *, what: str, admin_route: bool) -> Exception:
        status = response.status_code
        errors: list[str] = []
        error_type = ""
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            errors = [str(e) for e in body.get("errors") or [] if e]
            error_type = str(body.get("error_type") or "")
        detail = self.redact("; ".join(errors) or response.text[:200] or response.reason_phrase)
        if status in (401, 403) and (_INVALID_CREDENTIALS in detail.lower() or status == 401):
            return ConfigError(
                "Discourse rejected the API credentials (HTTP "
                f"{status}: {detail}). Fix CHARTERFLOW_DISCOURSE_API_KEY (a key with Scope Global: "
                "Discourse refuses a granular key this way on every call its scopes do not cover), or "
                f"CHARTERFLOW_DISCOURSE_API_USERNAME (now {self.api_username!r}) if the key is a "
                "single-user key for another account."
            )
        if status == 404:
            message = f"{what} not found on Discourse (HTTP 404)"
            if admin_route:
                # AdminConstraint routes answer 404, not 403, to a non-admin caller.
                message += (
                    f"; or the API user {self.api_username!r} is not an admin"
                    " (Discourse answers 404 on admin routes to non-admins)"
                )
            return FatalError(message, platform=PLATFORM, status=404)
        kind = f" {error_type}" if error_type else ""
        return FatalError(f"Discourse refused {what} (HTTP {status}{kind}): {detail}", platform=PLATFORM, status=status)
