"""The one exception tree of charterflow, named for what the caller does next.

::

    CharterflowError                 anything charterflow raises on purpose
    ├── ConfigError                  fix the settings or the charter file, then start again
    ├── PolicyViolation              the charter refused; show ``ruling`` and ``reason``, do not retry
    └── ConnectorError               a platform call failed
        ├── RetriableError           try again after ``retry_after`` seconds (429, 5xx, timeout)
        └── FatalError               do not retry; a person must act (other 4xx, bad signature)

Raise, never return False. Messages never contain a secret: connectors redact before raising.
"""

from __future__ import annotations


class CharterflowError(Exception):
    """Base of every error charterflow raises on purpose."""


class ConfigError(CharterflowError):
    """Settings, a charter file or another operator-maintained file is missing or invalid."""


class PolicyViolation(CharterflowError):
    """The charter refused an action; ``ruling`` names the R-… id that refused it."""

    def __init__(self, reason: str, *, ruling: str, evidence: dict | None = None) -> None:
        super().__init__(f"{ruling}: {reason}")
        self.ruling = ruling
        self.reason = reason
        self.evidence = dict(evidence or {})


class ConnectorError(CharterflowError):
    """A call to a platform failed. ``platform`` names it; ``status`` is the HTTP status if any."""

    def __init__(self, message: str, *, platform: str, status: int | None = None) -> None:
        super().__init__(message)
        self.platform = platform
        self.status = status


class RetriableError(ConnectorError):
    """Temporary: rate limited, server error or timeout. Retry after ``retry_after`` seconds."""

    def __init__(
        self, message: str, *, platform: str, status: int | None = None, retry_after: float = 1.0
    ) -> None:
        super().__init__(message, platform=platform, status=status)
        self.retry_after = retry_after


class FatalError(ConnectorError):
    """Permanent for this request: retrying will not help; the message says what to change."""
