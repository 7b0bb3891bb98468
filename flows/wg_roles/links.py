"""Signed links for the CoC WG contact's confirmation (R-ROLE-APPOINT, R-ROLE-COC). Pure.

A token is ``r.<appointment id>.<expires>.<32 hex>``: HMAC-SHA256 under the shared confirmation
secret (``CHARTERFLOW_MEMBERSHIP_CONFIRM_SECRET``) over a body that starts with its own domain,
so a membership confirmation token can never pass for one of these (nor the reverse). The
gateway checks it before showing the page (``gateway/wg_roles.py``); the handler checks it
again and acts once (the appointment must still be pending).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from pydantic import SecretStr

from flows.signing import LinkFormat, read_link, sign_link

__all__ = ["FORM_KIND", "PATH", "LinkClaims", "make_link_token", "read_link_token"]

PATH = "/wg-role"  # the gateway's page: <gateway>/wg-role/<token>
FORM_KIND = "wg_role_confirm"  # the inbox event its button stores (source ``form``)


@dataclass(frozen=True, kw_only=True)
class LinkClaims:
    appointment_id: int
    expires_at: datetime


_FORMAT = LinkFormat(
    purpose="wg-role",
    prefix="r",
    domain="charterflow:wg-role-confirm:",
    shape=re.compile(r"r\.(\d{1,12})\.(\d{1,12})\.([0-9a-f]{32})"),
    expiry_group=2,
    mac_group=3,
    claims=lambda match, expires_at, _: LinkClaims(appointment_id=int(match.group(1)), expires_at=expires_at),
)


def make_link_token(*, secret: SecretStr | str, appointment_id: int, expires_at: datetime) -> str:
    return sign_link(_FORMAT, secret=secret, fields=(int(appointment_id),), expires_at=expires_at)


def read_link_token(token: str, *, secret: SecretStr | str, now: datetime) -> LinkClaims:
    """The claims of a valid, unexpired token; ``PolicyViolation`` (R-ROLE-APPOINT) otherwise."""
    return read_link(_FORMAT, token, secret=secret, now=now)
