"""What a confirmation link (R-APP-2) or an opt-in link (R-TERM-2) stands for, for the gateway's
pages: ``GET /confirm/<token>`` and ``GET /optin/<token>`` show it with a button that POSTs, and
the POST is stored in the inbox and handled by the ``confirm`` / ``renewal-opt-in`` handlers.

Read-only: :func:`describe_link` checks the token (``flows.membership.tokens``) and reads the
ledger; it never changes anything, so a GET (a link preview, a mail scanner) consumes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

from pydantic import SecretStr
from sqlalchemy.orm import Session

from connectors.errors import PolicyViolation
from flows.membership.tokens import read_token
from flows.presentation import label
from ledger import repo
from ledger.db import Ledger
from ledger.models import Application, Identity, Membership, Person, Term
from rules.links import LINK_RULINGS, ConfirmLinkFacts, OptInLinkFacts, confirm_link_state, optin_link_state

__all__ = ["LinkView", "describe_link"]

LinkState = Literal["ready", "done", "closed", "invalid"]
# The page's states are the rules' codes (``rules.links``).
_STATES: dict[str, LinkState] = {"ready": "ready", "done": "done", "closed": "closed", "invalid": "invalid"}


@dataclass(frozen=True, kw_only=True)
class LinkView:
    """A link as its page shows it.

    ``state``: ``ready`` (show the button), ``done`` (nothing left to do: already confirmed or
    opted in), ``closed`` (the application or membership ended) or ``invalid`` (a bad, tampered
    or expired token, or one naming nothing we hold). ``reason`` is a sentence for the person.
    """

    purpose: Literal["confirm", "optin"]
    state: LinkState
    reason: str
    ruling: str
    application_id: int | None = None
    platform_label: str | None = None
    username: str | None = None
    expires_on: date | None = None
    term_ends_on: date | None = None


def describe_link(
    *, ledger: Ledger, purpose: Literal["confirm", "optin"], token: str, secret: SecretStr | str, now: datetime
) -> LinkView:
    """What ``token`` stands for now (see :class:`LinkView`); reads only."""
    ruling = LINK_RULINGS[purpose]
    try:
        claims = read_token(token, secret=secret, purpose=purpose, now=now, channel="web")
    except PolicyViolation as exc:
        return LinkView(purpose=purpose, state="invalid", reason=exc.reason, ruling=ruling)
    except ValueError:  # the secret is empty: no token can be valid
        return LinkView(purpose=purpose, state="invalid", reason="this link is not valid", ruling=ruling)
    with ledger.read() as session:
        if purpose == "confirm":
            return _confirm_view(session, claims.subject, claims.identity, claims.expires_at.date())
        return _optin_view(session, claims.subject, claims.identity, claims.expires_at.date())


def _confirm_view(session: Session, application_id: int, identity_id: int, expires_on: date) -> LinkView:
    app = session.get(Application, application_id)
    identity = session.get(Identity, identity_id)
    named = repo.effect_get(session, key=f"application:{application_id}:identities")
    named_ids = named["ref"].get("identities", []) if named is not None else []
    if app is None or identity is None or identity_id not in named_ids:
        state = confirm_link_state(ConfirmLinkFacts(belongs=False))
        return LinkView(purpose="confirm", state="invalid", ruling=state.ruling, reason=state.reason)
    state = confirm_link_state(
        ConfirmLinkFacts(
            belongs=True,
            status=app.status.value,
            confirmed=identity_id in {c.identity_id for c in app.confirmations},
        )
    )
    return LinkView(
        purpose="confirm",
        state=_STATES[state.code],
        reason=state.reason,
        ruling=state.ruling,
        application_id=app.id,
        platform_label=label(identity.platform.value),
        username=identity.username,
        expires_on=expires_on,
    )


def _optin_view(session: Session, term_id: int, person_id: int, expires_on: date) -> LinkView:
    term = session.get(Term, term_id)
    person = session.get(Person, person_id)
    membership = session.get(Membership, term.membership_id) if term is not None else None
    if term is None or person is None or membership is None or membership.person_id != person_id:
        state = optin_link_state(OptInLinkFacts(belongs=False))
        return LinkView(purpose="optin", state="invalid", ruling=state.ruling, reason=state.reason)
    state = optin_link_state(
        OptInLinkFacts(
            belongs=True,
            membership_status=membership.status.value,
            latest_term=not (membership.terms and membership.terms[-1].id != term_id),
        )
    )
    return LinkView(
        purpose="optin",
        state=_STATES[state.code],
        reason=state.reason,
        ruling=state.ruling,
        expires_on=expires_on,
        term_ends_on=term.ends_at.date(),
    )
