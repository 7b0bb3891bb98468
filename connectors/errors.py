"""The one exception tree of charterflow, named for what the caller does next.

::

    CharterflowError                 anything charterflow raises on purpose
    ├── ConfigError                  fix the settings or the charter file, then start again
    ├── PolicyViolation              the charter refused; show ``ruling`` and ``reason``, do not retry
    └── ConnectorError               a platform call failed
        ├── RetriableError           try again after ``retry_after`` seconds (429, 5xx, timeout);
        │                            ``ambiguous``: a write may have landed, re-read before resending
        └── FatalError               do not retry; a person must act (other 4xx, bad signature)
            ├── InvalidSignature     an inbound request failed verification: answer 401, drop it
            └── AnswerElsewhere      the interaction cannot be answered in place: tell the person
                                     another way (a direct message)

Raise, never return False. Messages never contain a secret: connectors redact before raising.
"""

from __future__ import annotations

from typing import Any


class CharterflowError(Exception):
    """Base of every error charterflow raises on purpose."""


class ConfigError(CharterflowError):
    """Settings, a charter file or another operator-maintained file is missing or invalid."""


class PolicyViolation(CharterflowError):
    """The charter refused an action; ``ruling`` names the R-… id that refused it."""

    def __init__(self, reason: str, *, ruling: str, evidence: dict[str, Any] | None = None) -> None:
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
    """Temporary: rate limited, server error or timeout. Retry after ``retry_after`` seconds.

    ``ambiguous`` is true when a write failed in a way that does not tell whether the platform
    applied it (a dropped connection, a 5xx): re-read the platform before sending it again.
    """

    def __init__(
        self,
        message: str,
        *,
        platform: str,
        status: int | None = None,
        retry_after: float = 1.0,
        ambiguous: bool = False,
    ) -> None:
        super().__init__(message, platform=platform, status=status)
        self.retry_after = retry_after
        self.ambiguous = ambiguous


class FatalError(ConnectorError):
    """Permanent for this request: retrying will not help; the message says what to change."""


class InvalidSignature(FatalError):
    """An inbound request (webhook, interaction) is unsigned or its signature does not match.

    The gateway answers 401 and drops the request; nothing in it may be trusted or stored.
    """


class AnswerElsewhere(FatalError):
    """An interaction cannot be answered where it was made: the platform dropped it because our
    first answer did not reach it in time (the person saw it fail). The work it asked for may be
    done all the same: tell the person another way (a direct message); no retry helps."""
