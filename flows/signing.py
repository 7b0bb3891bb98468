"""The MAC of the signed links the gateway's pages take (the CoC Liaison's confirmation,
``flows.wg_roles.links``; the CoC WG's outcome, ``flows.safety.links``). Pure, no Prefect: the
served gateway imports it. Each link kind signs a body that starts with its own domain, so no
token passes for another kind's."""

from __future__ import annotations

import hashlib
import hmac

from pydantic import SecretStr

__all__ = ["signature"]


def signature(secret: SecretStr | str, domain: str, body: str) -> str:
    """32 hex characters of HMAC-SHA256 over ``domain + body`` under ``secret``; ``ValueError``
    when the secret is empty (then no link can be valid)."""
    value = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
    if not value:
        raise ValueError("the token secret is empty")
    return hmac.new(value.encode("utf-8"), (domain + body).encode("ascii"), hashlib.sha256).hexdigest()[:32]
