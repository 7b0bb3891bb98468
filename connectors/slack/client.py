"""The Slack Web API client: ``slack_sdk.WebClient`` behind our retry policy and error tree.

This is the one place where Slack answers become charterflow errors. Slack answers almost every
failure with HTTP 200 and ``{"ok": false, "error": "<code>"}``
(https://api.slack.com/web#evaluating_responses); rate limiting is HTTP 429 with an integer
``Retry-After`` (https://api.slack.com/apis/rate-limits). Retries use slack_sdk's own
``RetryHandler`` classes, subclassed only so that sleeping is injectable (tests scale time).
"""

from __future__ import annotations

import http.client
import logging
import math
import random
import socket
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.error import URLError

from pydantic import SecretStr
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_interval_calculators import BackoffRetryIntervalCalculator
from slack_sdk.http_retry.handler import RetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.webhook import WebhookClient

from connectors.errors import ConfigError, ConnectorError, FatalError, RetriableError
from connectors.http import Redactor

__all__ = [
    "PLATFORM",
    "SlackApiClient",
    "SlackConfigError",
    "SlackErrorInfo",
    "SlackFatalError",
    "SlackRetriableError",
    "retry_after_seconds",
    "CONFIG_ERRORS",
    "RETRIABLE_ERRORS",
]

PLATFORM = "slack"
log = logging.getLogger("charterflow.connectors.slack")

Sleep = Callable[[float], None]

# ok:false codes that mean "fix the app's settings", not "retry" (https://api.slack.com/web#errors).
CONFIG_ERRORS = frozenset(
    {
        "not_authed",
        "invalid_auth",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "no_permission",
        "missing_scope",
        "not_allowed_token_type",
        "team_access_not_granted",
        "ekm_access_denied",
        "two_factor_setup_required",
        "enterprise_is_restricted",
    }
)
# ok:false codes Slack documents as transient.
RETRIABLE_ERRORS = frozenset(
    {
        "ratelimited",
        "rate_limited",
        "internal_error",
        "fatal_error",
        "service_unavailable",
        "request_timeout",
        "team_added_to_org",
    }
)

# What to do about the common codes, appended to the error message.
_HINTS = {
    "invalid_auth": "check CHARTERFLOW_SLACK_BOT_TOKEN (a bot token, xoxb-…)",
    "not_authed": "CHARTERFLOW_SLACK_BOT_TOKEN is empty",
    "token_revoked": "the app was uninstalled or the token revoked: reinstall it and set the new token",
    "account_inactive": "the app was uninstalled or its bot deactivated: reinstall it",
    "missing_scope": "add the scope to the app (OAuth & Permissions) and reinstall it",
    "channel_not_found": "check the channel ID (CHARTERFLOW_SLACK_BOARD_CHANNEL) and that the app can see it",
    "not_in_channel": "invite the app to the channel (/invite @<app name>)",
    "is_archived": "the channel is archived: unarchive it or configure another one",
    "users_not_found": "no member of the workspace has that e-mail address",
    "user_not_found": "no such user id in the workspace",
    "invalid_blocks": "the Block Kit payload was refused (a builder bug: please report it)",
    "msg_too_long": "the message text is too long",
    "msg_blocks_too_long": "the blocks hold too much text in all (a builder bug: please report it)",
    "cant_update_message": "only messages posted by this app can be updated",
    "message_not_found": "the message to update no longer exists",
}


class SlackErrorInfo:
    """Mixin for the errors below: ``slack_error`` is Slack's code, ``method`` the API method."""

    slack_error: str
    method: str


class SlackConfigError(ConfigError, SlackErrorInfo):
    """``ConfigError`` from Slack (``invalid_auth``, ``missing_scope``…), with Slack's code."""

    def __init__(self, message: str, *, slack_error: str, method: str) -> None:
        super().__init__(message)
        self.slack_error = slack_error
        self.method = method


class SlackFatalError(FatalError, SlackErrorInfo):
    """``FatalError`` from Slack (``channel_not_found``, ``invalid_blocks``…), with Slack's code."""

    def __init__(self, message: str, *, slack_error: str, method: str, status: int | None = None) -> None:
        super().__init__(message, platform=PLATFORM, status=status)
        self.slack_error = slack_error
        self.method = method


class SlackRetriableError(RetriableError, SlackErrorInfo):
    """``RetriableError`` from Slack (429 after the retries, 5xx, dropped connection)."""

    def __init__(
        self,
        message: str,
        *,
        slack_error: str,
        method: str,
        status: int | None = None,
        retry_after: float = 1.0,
        ambiguous: bool = False,
    ) -> None:
        super().__init__(message, platform=PLATFORM, status=status, retry_after=retry_after, ambiguous=ambiguous)
        self.slack_error = slack_error
        self.method = method


def retry_after_seconds(headers: Mapping[str, Any]) -> int | None:
    """Slack's ``Retry-After`` as whole seconds, or ``None`` when absent or unreadable.

    Slack sends an integer (https://api.slack.com/apis/rate-limits#headers); slack_sdk's own
    handler crashes with ``ValueError`` on anything else, so a fractional value is rounded up.
    Header values may be lists (slack_sdk's retry ``HttpResponse``) or strings.
    """
    for key, value in headers.items():
        if str(key).lower() != "retry-after":
            continue
        if isinstance(value, (list, tuple)):
            value = value[0] if value else None
        try:
            seconds = float(str(value).strip())
        except (TypeError, ValueError):
            return None
        if math.isnan(seconds) or math.isinf(seconds):
            return None
        return max(0, math.ceil(seconds))
    return None


class _Handler(RetryHandler):
    """slack_sdk's two retry hooks with their keyword signatures written once: a subclass says
    whether to retry (``_retry``) and how long to wait first (``_wait``); the sleep is injectable."""

    _sleep: Sleep

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        return self._retry(state, request, response, error)

    def prepare_for_next_attempt(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        state.next_attempt_requested = True
        self._sleep(self._wait(state, response, error))
        state.increment_current_attempt()

    def _retry(
        self, state: RetryState, request: HttpRequest, response: HttpResponse | None, error: Exception | None
    ) -> bool:
        """slack_sdk's own answer (the next class in the MRO)."""
        return super()._can_retry(state=state, request=request, response=response, error=error)

    def _wait(self, state: RetryState, response: HttpResponse | None, error: Exception | None) -> float:
        raise NotImplementedError


class _RateLimitHandler(_Handler, RateLimitErrorRetryHandler):
    """slack_sdk's 429 handler: sleep ``Retry-After`` (+ jitter) through an injectable ``sleep``,
    give up (so the caller sees a ``RetriableError``) when Slack asks for more than ``max_wait``."""

    def __init__(self, *, max_retry_count: int, sleep: Sleep, rng: random.Random, max_wait: float) -> None:
        RateLimitErrorRetryHandler.__init__(self, max_retry_count=max_retry_count)
        self._sleep = sleep
        self._rng = rng
        self._max_wait = max_wait

    def _retry(
        self, state: RetryState, request: HttpRequest, response: HttpResponse | None, error: Exception | None
    ) -> bool:
        if response is None or response.status_code != 429:
            return False
        wait = retry_after_seconds(response.headers)
        return wait is None or wait <= self._max_wait

    def _wait(self, state: RetryState, response: HttpResponse | None, error: Exception | None) -> float:
        wait = retry_after_seconds(response.headers) if response is not None else None
        # As slack_sdk does: the header's seconds plus up to one second of jitter.
        duration = (1 if wait is None else wait) + self._rng.random()
        log.info("slack: rate limited (HTTP 429), waiting %.2fs (attempt %d)", duration, state.current_attempt + 1)
        return duration


class _SleepingMixin(_Handler):
    def _wait(self, state: RetryState, response: HttpResponse | None, error: Exception | None) -> float:
        duration = self.interval_calculator.calculate_sleep_duration(state.current_attempt)
        log.info(
            "slack: %s, retrying in %.2fs",
            type(error).__name__ if error else f"HTTP {response.status_code if response else '?'}",
            duration,
        )
        return duration


class _ServerErrorHandler(_SleepingMixin, ServerErrorRetryHandler):
    """slack_sdk's 500/503 handler with an injectable sleep (only for calls safe to repeat)."""

    def __init__(self, *, max_retry_count: int, sleep: Sleep, backoff: float) -> None:
        ServerErrorRetryHandler.__init__(
            self,
            max_retry_count=max_retry_count,
            interval_calculator=BackoffRetryIntervalCalculator(backoff_factor=backoff),
        )
        self._sleep = sleep


class _ConnectionErrorHandler(_SleepingMixin, ConnectionErrorRetryHandler):
    """slack_sdk's connection-error handler with an injectable sleep.

    ``refused_only`` retries only when the connection was never made (the request cannot have
    reached Slack): that is what non-repeatable writes (``chat.postMessage``) use.
    """

    def __init__(self, *, max_retry_count: int, sleep: Sleep, backoff: float, refused_only: bool) -> None:
        ConnectionErrorRetryHandler.__init__(
            self,
            max_retry_count=max_retry_count,
            interval_calculator=BackoffRetryIntervalCalculator(backoff_factor=backoff),
            # slack_sdk's defaults plus what urllib raises when a connection drops mid-response
            # (IncompleteRead and other HTTPExceptions) or times out.
            error_types=[URLError, ConnectionResetError, http.client.HTTPException, TimeoutError],
        )
        self._sleep = sleep
        self._refused_only = refused_only

    def _retry(
        self, state: RetryState, request: HttpRequest, response: HttpResponse | None, error: Exception | None
    ) -> bool:
        if self._refused_only:
            return _never_sent(error)
        return super()._retry(state, request, response, error)


def _never_sent(error: BaseException | None) -> bool:
    reason = getattr(error, "reason", error)
    return isinstance(reason, (ConnectionRefusedError, socket.gaierror))


class SlackApiClient:
    """Calls Web API methods through two ``WebClient``s sharing one token and base URL.

    ``call`` (reads and repeatable writes: ``auth.test``, ``users.lookupByEmail``,
    ``conversations.open``, ``chat.update``…) retries 429, 500/503 and dropped connections.
    ``call_once`` (``chat.postMessage``) retries only what Slack surely did not process: a 429
    and a refused connection. A 5xx or a dropped connection after sending raises
    ``RetriableError(ambiguous=True)``: the caller re-reads before posting again.
    """

    def __init__(
        self,
        *,
        token: SecretStr,
        base_url: str,
        timeout: int = 20,
        max_rate_limit_retries: int = 10,
        max_retries: int = 2,
        max_wait: float = 120.0,
        backoff: float = 0.5,
        sleep: Sleep | None = None,
        rng: random.Random | None = None,
        extra_secrets: tuple[SecretStr | None, ...] = (),
    ) -> None:
        self.base_url = base_url
        self.sleep: Sleep = sleep or time.sleep
        rng = rng or random.Random()
        self.redact = Redactor(
            secrets=[token.get_secret_value(), *(s.get_secret_value() for s in extra_secrets if s is not None)]
        )
        self.max_wait = max_wait
        rate = _RateLimitHandler(
            max_retry_count=max_rate_limit_retries + max_retries, sleep=self.sleep, rng=rng, max_wait=max_wait
        )
        # slack_sdk's RetryState counts every retry of a call, whichever handler asked for it;
        # the rate-limit handler's budget covers both kinds, the others stop at max_retries.
        repeatable: list[RetryHandler] = [
            rate,
            _ServerErrorHandler(max_retry_count=max_retries, sleep=self.sleep, backoff=backoff),
            _ConnectionErrorHandler(max_retry_count=max_retries, sleep=self.sleep, backoff=backoff, refused_only=False),
        ]
        once: list[RetryHandler] = [
            rate,
            _ConnectionErrorHandler(max_retry_count=max_retries, sleep=self.sleep, backoff=backoff, refused_only=True),
        ]
        self._repeatable = repeatable
        self._timeout = timeout
        # The only place the token is unwrapped. ``proxy`` stays unset: WebClient then honours
        # HTTPS_PROXY/NO_PROXY from the environment, as urllib does.
        secret = token.get_secret_value()
        self._web = WebClient(
            token=secret,
            base_url=base_url,
            timeout=timeout,
            retry_handlers=repeatable,
            logger=logging.getLogger("charterflow.connectors.slack.sdk"),
        )
        self._web_once = WebClient(
            token=secret,
            base_url=base_url,
            timeout=timeout,
            retry_handlers=once,
            logger=logging.getLogger("charterflow.connectors.slack.sdk"),
        )

    def __repr__(self) -> str:
        return f"SlackApiClient(base_url={self.base_url!r})"

    def call(
        self, method: str, *, what: str, json: Mapping[str, Any] | None = None, params: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Call ``method`` (repeatable) and return its JSON; our errors on failure."""
        return self._send(self._web, method, what=what, json=json, params=params, repeatable=True)

    def call_once(
        self, method: str, *, what: str, json: Mapping[str, Any] | None = None, params: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Call a write that must not be repeated blindly; see the class docstring."""
        return self._send(self._web_once, method, what=what, json=json, params=params, repeatable=False)

    def post_response_url(self, url: str, body: Mapping[str, Any], *, what: str) -> None:
        """POST ``body`` to an interaction's ``response_url`` (no token: the URL is the credential).

        Slack answers a spent or expired URL with HTTP 404 ``used_url``/``expired_url`` and a bad
        payload with 400 (https://api.slack.com/interactivity/handling#message_responses).
        """
        hook = WebhookClient(
            url=url,
            timeout=self._timeout,
            retry_handlers=self._repeatable,
            logger=logging.getLogger("charterflow.connectors.slack.sdk"),
        )
        try:
            response = hook.send_dict(dict(body))
        except (URLError, OSError, http.client.HTTPException, SlackClientError) as exc:
            raise SlackRetriableError(
                f"Slack response_url ({what}) failed: {type(exc).__name__}",
                slack_error="connection_error",
                method="response_url",
            ) from None
        if response.status_code == 200:
            return
        code = self.redact(str(response.body or "").strip()[:100]) or f"http_{response.status_code}"
        if response.status_code == 429 or response.status_code >= 500:
            raise SlackRetriableError(
                f"Slack response_url ({what}) answered HTTP {response.status_code}: {code}",
                slack_error=code,
                method="response_url",
                status=response.status_code,
            )
        hint = {
            "expired_url": ": the 30 minutes to answer this click have passed",
            "used_url": ": this click was already answered 5 times",
        }.get(code, "")
        raise SlackFatalError(
            f"Slack response_url ({what}) refused: {code}{hint}",
            slack_error=code,
            method="response_url",
            status=response.status_code,
        )

    def _send(
        self,
        web: WebClient,
        method: str,
        *,
        what: str,
        json: Mapping[str, Any] | None,
        params: Mapping[str, Any] | None,
        repeatable: bool,
    ) -> dict[str, Any]:
        try:
            response = web.api_call(
                method,
                json=dict(json) if json is not None else None,
                params=dict(params) if params is not None else None,
            )
        except SlackApiError as exc:
            raise self._api_error(exc, method=method, what=what, repeatable=repeatable) from None
        except (URLError, OSError, http.client.HTTPException, SlackClientError, ValueError) as exc:
            # Transport failures surface raw from urllib (IncompleteRead, a reset, a timeout).
            never_sent = _never_sent(exc)
            message = self.redact(f"Slack {method} ({what}) failed: {type(exc).__name__}: {exc}")
            if isinstance(exc, SlackClientError) and not isinstance(exc, SlackApiError):
                raise SlackFatalError(message, slack_error="client_error", method=method) from None
            raise SlackRetriableError(
                message + ("" if never_sent or repeatable else "; the call may or may not have been applied"),
                slack_error="connection_error",
                method=method,
                retry_after=1.0,
                ambiguous=not never_sent and not repeatable,
            ) from None
        data = response.data if isinstance(response.data, dict) else {}
        return dict(data)

    def _api_error(
        self, exc: SlackApiError, *, method: str, what: str, repeatable: bool
    ) -> ConnectorError | ConfigError:
        response = exc.response
        status = getattr(response, "status_code", None)
        data = response.data if isinstance(getattr(response, "data", None), dict) else {}
        code = str(data.get("error") or (f"http_{status}" if status else "unknown_error"))
        code = self.redact(code)[:100]
        detail = ""
        if code == "missing_scope" and data.get("needed"):
            detail = f" (needs {self.redact(data['needed'])}; the token has {self.redact(data.get('provided', '?'))})"
        if code == "invalid_blocks" and data.get("errors"):
            detail = " (" + self.redact("; ".join(str(e) for e in data["errors"])[:300]) + ")"
        hint = _HINTS.get(code)
        message = f"Slack {method} ({what}) failed: {code}{detail}" + (f": {hint}" if hint else "")
        if status == 429:
            wait = retry_after_seconds(getattr(response, "headers", {}) or {})
            return SlackRetriableError(
                message + f"; retry after {wait if wait is not None else '?'}s",
                slack_error=code,
                method=method,
                status=429,
                retry_after=float(wait if wait is not None else 1),
            )
        if status is not None and status >= 500:
            return SlackRetriableError(
                message + ("" if repeatable else "; the call may or may not have been applied"),
                slack_error=code,
                method=method,
                status=status,
                retry_after=1.0,
                ambiguous=not repeatable,
            )
        if code in CONFIG_ERRORS:
            return SlackConfigError(message, slack_error=code, method=method)
        if code in RETRIABLE_ERRORS:
            return SlackRetriableError(message, slack_error=code, method=method, status=status, retry_after=1.0)
        return SlackFatalError(message, slack_error=code, method=method, status=status)
