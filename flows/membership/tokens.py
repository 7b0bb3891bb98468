"""Signed tokens for confirmation links and buttons (R-APP-2) and opt-in links (R-TERM-2).

Pure functions, no I/O: ``make_token`` signs ``purpose.subject.identity.expires`` with
HMAC-SHA256 under the shared secret (``CHARTERFLOW_MEMBERSHIP_CONFIRM_SECRET``); ``read_token``
checks it in constant time. The gateway's pages ``/confirm/<token>`` and ``/optin/<token>`` show
a button that POSTs the token (a GET never consumes it); the POST is stored as an inbox event
whose handler (``flows.membership.handlers``) calls ``confirm_identity`` or the opt-in flow.

A token is ``c.w.12.34.1767225600.<32 hex>``: at most about 62 characters, so it fits a Discord
``custom_id`` (100) after its ``cfc:`` prefix. The second field is the channel it was delivered
on, signed with the rest (issue 19): ``w`` for a link (a Forum personal message or an e-mail),
redeemed on the gateway's web page only; ``d`` for a Discord direct message's button, redeemed by
that button only. Tokens made before channels (``c.12.34.…``) are read as valid on both until
they expire.

A token as pasted or typed is first normalised (:func:`normalise_token`): surrounding
whitespace and trailing punctuation (a link copied with the sentence's full stop) are dropped;
anything else that is not exactly a token is refused. The gateway dedupes on the normalised
token, so ``…abc.`` and ``…abc`` are one press.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import SecretStr

from connectors.errors import PolicyViolation
from rules.links import LinkPurpose, SignedLink, check_link

__all__ = ["CHANNELS", "CONFIRM_PREFIX", "OPTIN_PREFIX", "TokenClaims", "make_token", "normalise_token", "read_token"]

CONFIRM_PREFIX = "cfc:"  # Discord button custom_id prefix of a confirmation (R-APP-2)
OPTIN_PREFIX = "cfo:"  # Discord button custom_id prefix of an opt-in (R-TERM-2)
_PURPOSES = {"confirm": "c", "optin": "o"}
CHANNELS = {"web": "w", "discord": "d"}
_CHANNEL_OF = {code: name for name, code in CHANNELS.items()}
_SHAPE = re.compile(r"([co])\.(?:([wd])\.)?(\d{1,12})\.(\d{1,12})\.(\d{1,12})\.([0-9a-f]{32})")
_TRAILING = " \t\r\n.,;:!?)]}>'\""


@dataclass(frozen=True, kw_only=True)
class TokenClaims:
    """What a valid token says: for ``confirm``, subject = application id and identity = the
    identity to confirm; for ``optin``, subject = term id and identity = the member's person id."""

    purpose: str
    subject: int
    identity: int
    expires_at: datetime
    channel: str | None = None  # None: a token made before channels


def _key(secret: SecretStr | str) -> bytes:
    value = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
    if not value:
        raise ValueError("the token secret is empty")
    return value.encode("utf-8")


def make_token(
    *, secret: SecretStr | str, purpose: str, subject: int, identity: int, expires_at: datetime, channel: str
) -> str:
    """A signed token for ``purpose`` (``confirm`` or ``optin``) delivered on ``channel``
    (``web``: a link; ``discord``: a DM button)."""
    if purpose not in _PURPOSES:
        raise ValueError(f"purpose is one of {sorted(_PURPOSES)}")
    if channel not in CHANNELS:
        raise ValueError(f"channel is one of {sorted(CHANNELS)}")
    body = f"{_PURPOSES[purpose]}.{CHANNELS[channel]}.{int(subject)}.{int(identity)}.{int(expires_at.timestamp())}"
    mac = hmac.new(_key(secret), body.encode("ascii"), hashlib.sha256).hexdigest()[:32]
    return f"{body}.{mac}"


def normalise_token(raw: str) -> str:
    """``raw`` without surrounding whitespace and trailing punctuation (what copying a link out
    of a sentence adds); the result is a token or refused by :func:`read_token`."""
    return (raw or "").strip().rstrip(_TRAILING)


def read_token(token: str, *, secret: SecretStr | str, purpose: str, now: datetime, channel: str) -> TokenClaims:
    """The claims of a valid, unexpired token for ``purpose`` redeemed on ``channel`` (``web``
    or ``discord``); ``PolicyViolation`` otherwise (ruling R-APP-2 for confirmations, R-TERM-2
    for opt-ins), naming where the token works when it came through the wrong channel."""
    link_purpose: LinkPurpose = "confirm" if purpose == "confirm" else "optin"
    token = normalise_token(token)
    match = _SHAPE.fullmatch(token)
    if match is None or match.group(1) != _PURPOSES.get(purpose):
        authentic = False
    else:
        expected = hmac.new(_key(secret), token.rsplit(".", 1)[0].encode("ascii"), hashlib.sha256).hexdigest()[:32]
        authentic = hmac.compare_digest(expected, match.group(6))
    if match is None or not authentic:
        decision = check_link(SignedLink(purpose=link_purpose, authentic=False), now=now)
        raise PolicyViolation(decision.reason, ruling=decision.ruling)
    made_for = _CHANNEL_OF.get(match.group(2) or "")
    expires = datetime.fromtimestamp(int(match.group(5)), UTC)
    decision = check_link(
        SignedLink(purpose=link_purpose, authentic=True, expires_at=expires, made_for=made_for, used_on=channel),
        now=now,
    )
    if not decision.allowed:
        raise PolicyViolation(decision.reason, ruling=decision.ruling)
    return TokenClaims(
        purpose=purpose, subject=int(match.group(3)), identity=int(match.group(4)), expires_at=expires, channel=made_for
    )
