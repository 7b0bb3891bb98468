"""Signed tokens for confirmation links and buttons (R-APP-2) and opt-in links (R-TERM-2).

Pure functions, no I/O: ``make_token`` signs ``purpose.subject.identity.expires`` with
HMAC-SHA256 under the shared secret (``CHARTERFLOW_MEMBERSHIP_CONFIRM_SECRET``); ``read_token``
checks it in constant time. The gateway's pages ``/confirm/<token>`` and ``/optin/<token>`` show
a button that POSTs the token (a GET never consumes it); the POST is stored as an inbox event
whose handler (``flows.membership.handlers``) calls ``confirm_identity`` or the opt-in flow.

A token is ``c.12.34.1767225600.<32 hex>``: at most about 60 characters, so it fits a Discord
``custom_id`` (100) after its ``cfc:`` prefix.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import SecretStr

from connectors.errors import PolicyViolation

__all__ = ["CONFIRM_PREFIX", "OPTIN_PREFIX", "TokenClaims", "make_token", "read_token"]

CONFIRM_PREFIX = "cfc:"  # Discord button custom_id prefix of a confirmation (R-APP-2)
OPTIN_PREFIX = "cfo:"  # Discord button custom_id prefix of an opt-in (R-TERM-2)
_PURPOSES = {"confirm": "c", "optin": "o"}
_SHAPE = re.compile(r"^([co])\.(\d{1,12})\.(\d{1,12})\.(\d{1,12})\.([0-9a-f]{32})$")


@dataclass(frozen=True, kw_only=True)
class TokenClaims:
    """What a valid token says: for ``confirm``, subject = application id and identity = the
    identity to confirm; for ``optin``, subject = term id and identity = the member's person id."""

    purpose: str
    subject: int
    identity: int
    expires_at: datetime


def _key(secret: SecretStr | str) -> bytes:
    value = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
    if not value:
        raise ValueError("the token secret is empty")
    return value.encode("utf-8")


def make_token(*, secret: SecretStr | str, purpose: str, subject: int, identity: int,
               expires_at: datetime) -> str:
    """A signed token for ``purpose`` (``confirm`` or ``optin``)."""
    if purpose not in _PURPOSES:
        raise ValueError(f"purpose is one of {sorted(_PURPOSES)}")
    body = f"{_PURPOSES[purpose]}.{int(subject)}.{int(identity)}.{int(expires_at.timestamp())}"
    mac = hmac.new(_key(secret), body.encode("ascii"), hashlib.sha256).hexdigest()[:32]
    return f"{body}.{mac}"


def read_token(token: str, *, secret: SecretStr | str, purpose: str, now: datetime) -> TokenClaims:
    """The claims of a valid, unexpired token for ``purpose``; ``PolicyViolation`` otherwise
    (ruling R-APP-2 for confirmations, R-TERM-2 for opt-ins)."""
    ruling = "R-APP-2" if purpose == "confirm" else "R-TERM-2"
    match = _SHAPE.match((token or "").strip())
    if match is None or match.group(1) != _PURPOSES.get(purpose):
        raise PolicyViolation("this link is not valid", ruling=ruling)
    body = token.strip().rsplit(".", 1)[0]
    expected = hmac.new(_key(secret), body.encode("ascii"), hashlib.sha256).hexdigest()[:32]
    if not hmac.compare_digest(expected, match.group(5)):
        raise PolicyViolation("this link is not valid", ruling=ruling)
    expires = datetime.fromtimestamp(int(match.group(4)), UTC)
    if now > expires:
        raise PolicyViolation("this link has expired", ruling=ruling)
    return TokenClaims(purpose=purpose, subject=int(match.group(2)), identity=int(match.group(3)),
                       expires_at=expires)
