"""The CoC Liaison's signed link for recording the CoC WG's outcome of a referred report
(R-SAFE-2), where the liaison has no buttons (the Forum, Matrix, the CoC WG's e-mail).

A token is ``s.<report id>.<person id>.<expires>.<32 hex>``: HMAC-SHA256 under the shared
confirmation secret (``CHARTERFLOW_MEMBERSHIP_CONFIRM_SECRET``) over a body that starts with its
own domain, so no other link's token passes for one of these. It is bound to the report and to
the liaison it was made for: a link sent to a liaison who has since been replaced stops working.

The gateway's page ``/coc-outcome/<token>`` (``gateway/routers/coc_outcome.py``) reads it with
:func:`describe_link` (read only: a GET changes nothing), and its CSRF-checked POST stores one
inbox event (kind :data:`FORM_KIND`) under :func:`dedupe_key`, one per token: the link is single
use. The handler (``flows.safety.handlers.handle_coc_link``) checks it all again and records the
outcome. No Prefect and no flow here: the served gateway imports this module.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.errors import PolicyViolation
from flows.safety.common import COC_OUTCOMES, settings
from flows.signing import LinkFormat, read_link, sign_link
from flows.signing import normalise as normalise_link
from ledger import safety as queue_ledger
from ledger.db import Ledger
from ledger.errors import NotFound
from ledger.models import InboxEvent, Person, WgRole, WgRoleAssignment

__all__ = [
    "FORM_KIND",
    "PATH",
    "LinkClaims",
    "LinkView",
    "dedupe_key",
    "describe_link",
    "liaison_of",
    "make_link_token",
    "normalise",
    "read_link_token",
]

PATH = "/coc-outcome"  # the gateway's page: <gateway>/coc-outcome/<token>
FORM_KIND = "coc_outcome"  # the inbox event its button stores (source ``form``)
_CLIP = 200  # characters of a pasted token read at most


@dataclass(frozen=True, kw_only=True)
class LinkClaims:
    report_id: int
    person_id: int
    expires_at: datetime


_FORMAT = LinkFormat(
    purpose="coc-outcome",
    prefix="s",
    domain="charterflow:safety-coc-outcome:",
    shape=re.compile(r"s\.(\d{1,12})\.(\d{1,12})\.(\d{1,12})\.([0-9a-f]{32})"),
    expiry_group=3,
    mac_group=4,
    clip=_CLIP,
    claims=lambda match, expires_at, _: LinkClaims(
        report_id=int(match.group(1)), person_id=int(match.group(2)), expires_at=expires_at
    ),
)


def make_link_token(*, secret: SecretStr | str, report_id: int, person_id: int, expires_at: datetime) -> str:
    """The token of ``report_id``'s link for the liaison ``person_id`` (pure)."""
    return sign_link(_FORMAT, secret=secret, fields=(int(report_id), int(person_id)), expires_at=expires_at)


def normalise(raw: str) -> str:
    """A token as pasted: without surrounding blanks and the sentence's trailing punctuation."""
    return normalise_link(raw, clip=_CLIP)


def read_link_token(token: str, *, secret: SecretStr | str, now: datetime) -> LinkClaims:
    """The claims of a valid, unexpired token; ``PolicyViolation`` (R-SAFE-2) otherwise."""
    return read_link(_FORMAT, token, secret=secret, now=now)


def dedupe_key(token: str) -> str:
    """The inbox dedupe key of the link's one use (one per normalised token)."""
    return "form:coc-outcome:" + hashlib.sha256(normalise(token).encode("utf-8")).hexdigest()[:40]


def liaison_of(session: Session) -> Person | None:
    """The CoC Liaison (R-ROLE-COC): the ledger's holder of the role, else the person whose
    handle is ``CHARTERFLOW_SAFETY_COC_LIAISON``."""
    pid = session.scalar(
        select(WgRoleAssignment.person_id).where(
            WgRoleAssignment.role == WgRole.COC_LIAISON, WgRoleAssignment.ends_at.is_(None)
        )
    )
    if pid is not None:
        return session.get(Person, pid)
    handle = settings().coc_liaison
    return session.scalar(select(Person).where(Person.handle == handle)) if handle else None


@dataclass(frozen=True, kw_only=True)
class LinkView:
    """A link as its page shows it. ``state``: ``ready`` (show the outcomes), ``used`` (the link
    was used: nothing more), ``closed`` (the report is no longer referred) or ``invalid`` (bad,
    tampered or expired, or not the current liaison's). ``reason``: a sentence for the liaison;
    never a name or a word of the report (the page is on the open web)."""

    state: Literal["ready", "used", "closed", "invalid"]
    reason: str
    report_id: int | None = None
    expires_at: datetime | None = None
    outcomes: tuple[tuple[str, str], ...] = tuple(COC_OUTCOMES.items())


def describe_link(*, ledger: Ledger, token: str, secret: SecretStr | str, now: datetime) -> LinkView:
    """What ``token`` stands for now (see :class:`LinkView`); reads only."""
    try:
        claims = read_link_token(token, secret=secret, now=now)
    except PolicyViolation as exc:
        return LinkView(state="invalid", reason=exc.reason)
    except ValueError:  # the secret is empty: no token can be valid
        return LinkView(state="invalid", reason="this link is not valid")
    with ledger.read() as session:
        person = liaison_of(session)
        if person is None or person.id != claims.person_id:
            return LinkView(state="invalid", reason="this link was made for another CoC Liaison")
        try:
            state = queue_ledger.get(session, claims.report_id).state
        except NotFound:
            return LinkView(state="invalid", reason="this link does not belong to a report")
        used = session.scalar(select(InboxEvent.id).where(InboxEvent.dedupe_key == dedupe_key(token)))
    if used is not None:
        found: Literal["ready", "used", "closed"] = "used"
        reason = "this link was used before; it records one outcome"
    elif state != "referred":
        found, reason = "closed", f"report #{claims.report_id} is {state}, not referred"
    else:
        found, reason = "ready", "waiting for the CoC WG's outcome"
    return LinkView(state=found, reason=reason, report_id=claims.report_id, expires_at=claims.expires_at)
