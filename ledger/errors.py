"""The ledger's errors: branches of the one tree in ``connectors.errors`` (its only import there).

::

    CharterflowError
    ├── ConfigError
    │   └── LedgerUnavailable   the database cannot be reached, is locked, or is not migrated:
    │                           the message names the URL (password redacted); fix and rerun
    ├── PolicyViolation         a roster or a write broke a hard rule; carries ``ruling``
    ├── NotFound                no such person, ballot, … (a typo in an id or handle)
    └── Conflict                the record exists with other data (an identity of someone else,
                                a taken handle): a person must sort it out
"""

from __future__ import annotations

from connectors.errors import CharterflowError, ConfigError, PolicyViolation

__all__ = ["CharterflowError", "ConfigError", "LedgerUnavailable", "NotFound", "Conflict", "PolicyViolation"]


class LedgerUnavailable(ConfigError):
    """The ledger database cannot be used right now; ``url`` is already redacted."""

    def __init__(self, message: str, *, url: str, retry_safe: bool = False) -> None:
        super().__init__(message)
        self.url = url
        # True when nothing of the failed transaction was stored, so running it again is safe.
        self.retry_safe = retry_safe


class NotFound(CharterflowError):
    """The record asked for does not exist."""


class Conflict(CharterflowError):
    """The write contradicts what the ledger holds (a taken handle, someone else's account)."""
