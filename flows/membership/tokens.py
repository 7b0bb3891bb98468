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

import re
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from pydantic import SecretStr

from flows.signing import LinkFormat, normalise, read_link, sign_link
from rules.links import LinkPurpose

__all__ = ["CHANNELS", "CONFIRM_PREFIX", "OPTIN_PREFIX", "TokenClaims", "make_token", "normalise_token", "read_token"]

CONFIRM_PREFIX = "cfc:"  # Discord button custom_id prefix of a confirmation (R-APP-2)
OPTIN_PREFIX = "cfo:"  # Discord button custom_id prefix of an opt-in (R-TERM-2)
CHANNELS = {"web": "w", "discord": "d"}


@dataclass(frozen=True, kw_only=True)
class TokenClaims:
    """What a valid token says: for ``confirm``, subject = application id and identity = the
    identity to confirm; for ``optin``, subject = term id and identity = the member's person id."""

    purpose: str
    subject: int
    identity: int
    expires_at: datetime
    channel: str | None = None  # None: a token made before channels


def _claims(purpose: str, match: re.Match[str], expires_at: datetime, made_for: str | None) -> TokenClaims:
    return TokenClaims(
        purpose=purpose,
        subject=int(match.group(2)),
        identity=int(match.group(3)),
        expires_at=expires_at,
        channel=made_for,
    )


def _format(purpose: LinkPurpose, prefix: str) -> LinkFormat[TokenClaims]:
    # No MAC domain: these tokens were signed before the other kinds (their domains keep them apart).
    return LinkFormat(
        purpose=purpose,
        prefix=prefix,
        domain="",
        shape=re.compile(prefix + r"\.(?:([wd])\.)?(\d{1,12})\.(\d{1,12})\.(\d{1,12})\.([0-9a-f]{32})"),
        channel_group=1,
        expiry_group=4,
        mac_group=5,
        channels={code: name for name, code in CHANNELS.items()},
        claims=partial(_claims, purpose),
    )


_FORMATS = {"confirm": _format("confirm", "c"), "optin": _format("optin", "o")}


def _format_of(purpose: str) -> LinkFormat[TokenClaims]:
    if purpose not in _FORMATS:
        raise ValueError(f"purpose is one of {sorted(_FORMATS)}")
    return _FORMATS[purpose]


def make_token(
    *, secret: SecretStr | str, purpose: str, subject: int, identity: int, expires_at: datetime, channel: str
) -> str:
    """A signed token for ``purpose`` (``confirm`` or ``optin``) delivered on ``channel``
    (``web``: a link; ``discord``: a DM button)."""
    fmt = _format_of(purpose)
    if channel not in CHANNELS:
        raise ValueError(f"channel is one of {sorted(CHANNELS)}")
    return sign_link(fmt, secret=secret, fields=(CHANNELS[channel], int(subject), int(identity)), expires_at=expires_at)


def normalise_token(raw: str) -> str:
    """``raw`` without surrounding whitespace and trailing punctuation (what copying a link out
    of a sentence adds); the result is a token or refused by :func:`read_token`."""
    return normalise(raw)


def read_token(token: str, *, secret: SecretStr | str, purpose: str, now: datetime, channel: str) -> TokenClaims:
    """The claims of a valid, unexpired token for ``purpose`` redeemed on ``channel`` (``web``
    or ``discord``); ``PolicyViolation`` otherwise (ruling R-APP-2 for confirmations, R-TERM-2
    for opt-ins), naming where the token works when it came through the wrong channel;
    ``ValueError`` for a purpose that is neither."""
    return read_link(_format_of(purpose), token, secret=secret, now=now, channel=channel)
