"""The signed links the gateway's pages take, written and read once for every kind: an
application's confirmation and a member's opt-in (``flows.membership.tokens``), the CoC WG
contact's confirmation of a Liaison (``flows.wg_roles.links``), the CoC Liaison's record of the
CoC WG's outcome (``flows.safety.links``). Pure, no Prefect: the served gateway imports it.

A kind is a :class:`LinkFormat`: the shape of its token, the ruling purpose it answers under,
the domain its MAC starts with (so no token passes for another kind's) and how its claims are
built. :func:`sign_link` writes a token; :func:`read_link` normalises it, checks its shape and
MAC, and asks ``rules.links.check_link`` whether it is good, raising the decision's
``PolicyViolation`` (its reason and ruling) when it is not.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Generic, TypeVar

from pydantic import SecretStr

from connectors.errors import PolicyViolation
from rules.links import LinkPurpose, SignedLink, check_link

__all__ = ["LinkFormat", "normalise", "read_link", "sign_link", "signature"]

C = TypeVar("C")
# What copying a link out of a sentence adds after it (besides whitespace).
_TRAILING = " \t\r\n.,;:!?)]}>'\""


def signature(secret: SecretStr | str, domain: str, body: str) -> str:
    """32 hex characters of HMAC-SHA256 over ``domain + body`` under ``secret``; ``ValueError``
    when the secret is empty (then no link can be valid)."""
    value = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
    if not value:
        raise ValueError("the token secret is empty")
    return hmac.new(value.encode("utf-8"), (domain + body).encode("ascii"), hashlib.sha256).hexdigest()[:32]


def normalise(raw: str, *, clip: int | None = None) -> str:
    """``raw`` (its first ``clip`` characters when given) without surrounding whitespace and
    trailing punctuation; the result is a token or refused by :func:`read_link`."""
    return (raw or "")[:clip].strip().rstrip(_TRAILING)


@dataclass(frozen=True, kw_only=True)
class LinkFormat(Generic[C]):
    """One kind of signed link. A token is ``<prefix>.<field>....<expires>.<32 hex MAC>``;
    ``shape`` matches it whole, ``expiry_group`` and ``mac_group`` are its groups of the expiry
    (Unix seconds) and the MAC; ``channel_group`` (optional, may not take part) holds the code of
    the channel it was made for, named by ``channels``. ``claims(match, expires_at, made_for)``
    builds what a good token says. ``clip`` bounds the characters read of a pasted token."""

    purpose: LinkPurpose
    prefix: str
    domain: str
    shape: re.Pattern[str]
    expiry_group: int
    mac_group: int
    claims: Callable[[re.Match[str], datetime, str | None], C]
    channel_group: int | None = None
    channels: Mapping[str, str] = field(default_factory=dict)
    clip: int | None = None


def sign_link(fmt: LinkFormat[C], *, secret: SecretStr | str, fields: Sequence[object], expires_at: datetime) -> str:
    """The token of ``fields`` (after the prefix, before the expiry) valid until ``expires_at``."""
    body = ".".join([fmt.prefix, *map(str, fields), str(int(expires_at.timestamp()))])
    return f"{body}.{signature(secret, fmt.domain, body)}"


def read_link(
    fmt: LinkFormat[C], token: str, *, secret: SecretStr | str, now: datetime, channel: str | None = None
) -> C:
    """The claims of a valid, unexpired ``token`` of ``fmt`` redeemed on ``channel``;
    ``PolicyViolation`` with ``check_link``'s reason and ruling otherwise (``invalid``,
    ``wrong-channel`` naming where it works, ``expired``); ``ValueError`` when the secret is
    empty and the token has the right shape."""
    token = normalise(token, clip=fmt.clip)
    match = fmt.shape.fullmatch(token)
    link = SignedLink(purpose=fmt.purpose, authentic=False)
    if match is not None and hmac.compare_digest(
        signature(secret, fmt.domain, token.rsplit(".", 1)[0]), match.group(fmt.mac_group)
    ):
        code = match.group(fmt.channel_group) if fmt.channel_group is not None else None
        expires = datetime.fromtimestamp(int(match.group(fmt.expiry_group)), UTC)
        link = SignedLink(
            purpose=fmt.purpose,
            authentic=True,
            expires_at=expires,
            made_for=fmt.channels.get(code or ""),
            used_on=channel,
        )
    decision = check_link(link, now=now)
    if match is None or link.expires_at is None or not decision.allowed:
        raise PolicyViolation(decision.reason, ruling=decision.ruling)
    return fmt.claims(match, link.expires_at, link.made_for)
