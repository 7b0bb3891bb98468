"""Signed links for the CoC WG contact's confirmation (R-ROLE-APPOINT, R-ROLE-COC). Pure.

A token is ``r.<appointment id>.<expires>.<32 hex>``: HMAC-SHA256 under the shared confirmation
secret (``CHARTERFLOW_MEMBERSHIP_CONFIRM_SECRET``) over a body that starts with its own domain,
so a membership confirmation token can never pass for one of these (nor the reverse). The
gateway checks it before showing the page (``gateway/wg_roles.py``); the handler checks it
again and acts once (the appointment must still be pending).
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import SecretStr

from connectors.errors import PolicyViolation
from flows.signing import signature
from rules.links import SignedLink, check_link

__all__ = ["FORM_KIND", "PATH", "LinkClaims", "make_link_token", "read_link_token"]

PATH = "/wg-role"  # the gateway's page: <gateway>/wg-role/<token>
FORM_KIND = "wg_role_confirm"  # the inbox event its button stores (source ``form``)
_SHAPE = re.compile(r"r\.(\d{1,12})\.(\d{1,12})\.([0-9a-f]{32})")
_DOMAIN = "charterflow:wg-role-confirm:"


@dataclass(frozen=True, kw_only=True)
class LinkClaims:
    appointment_id: int
    expires_at: datetime


def _mac(secret: SecretStr | str, body: str) -> str:
    return signature(secret, _DOMAIN, body)


def make_link_token(*, secret: SecretStr | str, appointment_id: int, expires_at: datetime) -> str:
    body = f"r.{int(appointment_id)}.{int(expires_at.timestamp())}"
    return f"{body}.{_mac(secret, body)}"


def read_link_token(token: str, *, secret: SecretStr | str, now: datetime) -> LinkClaims:
    """The claims of a valid, unexpired token; ``PolicyViolation`` (R-ROLE-APPOINT) otherwise."""
    token = (token or "").strip().rstrip(" .,;:!?)]}>'\"")
    match = _SHAPE.fullmatch(token)
    authentic = match is not None and hmac.compare_digest(_mac(secret, token.rsplit(".", 1)[0]), match.group(3))
    expires = datetime.fromtimestamp(int(match.group(2)), UTC) if match is not None and authentic else None
    decision = check_link(SignedLink(purpose="wg-role", authentic=authentic, expires_at=expires), now=now)
    if match is None or expires is None or not decision.allowed:
        raise PolicyViolation(decision.reason, ruling=decision.ruling)
    return LinkClaims(appointment_id=int(match.group(1)), expires_at=expires)
