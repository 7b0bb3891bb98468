"""Signed links and what they stand for: an application's confirmation (R-APP-2), a member's
opt-in (R-TERM-2), the CoC WG contact's confirmation of a Liaison (R-ROLE-APPOINT) and the CoC
Liaison's record of the CoC WG's outcome (R-SAFE-2).

Pure: the flows check the signature (``flows.membership.tokens``, ``flows.wg_roles.links``) and
read the ledger; these functions decide whether the link is good (:func:`check_link`) and what
its page offers (:func:`confirm_link_state`, :func:`optin_link_state`). Each answer is a
:class:`~rules.decision.CodedDecision`; the flow words the page from ``code``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from rules.decision import CodedDecision

__all__ = [
    "LINK_RULINGS",
    "LinkPurpose",
    "WORKS_ON",
    "ConfirmLinkFacts",
    "OptInLinkFacts",
    "SignedLink",
    "check_link",
    "confirm_link_state",
    "optin_link_state",
]

LinkPurpose = Literal["confirm", "optin", "wg-role", "coc-outcome"]
# The ruling a link of each purpose answers under.
LINK_RULINGS: dict[str, str] = {
    "confirm": "R-APP-2",
    "optin": "R-TERM-2",
    "wg-role": "R-ROLE-APPOINT",
    "coc-outcome": "R-SAFE-2",
}
# Where a link or button made for a channel works, said to the person who tried it elsewhere.
WORKS_ON = {
    "web": "the web page its link opens (from the Forum message or e-mail we sent)",
    "discord": "the Confirm / Opt in button in the Discord direct message we sent",
}
_INVALID = "this link is not valid"


@dataclass(frozen=True, kw_only=True)
class SignedLink:
    """A link as its signature check read it. ``authentic``: its shape, purpose and signature
    are right (``expires_at`` is None only when it is not). ``made_for`` is the channel it was
    delivered on (None: any, a link made before channels); ``used_on`` where it came back."""

    purpose: LinkPurpose
    authentic: bool
    expires_at: datetime | None = None
    made_for: str | None = None
    used_on: str | None = None


def check_link(link: SignedLink, *, now: datetime) -> CodedDecision:
    """A link is good when authentic, used on the channel it was made for and not expired (its
    expiry moment included), checked in that order: ``invalid``, ``wrong-channel``, ``expired``
    or ``valid``."""
    ruling = LINK_RULINGS[link.purpose]
    if not link.authentic or link.expires_at is None:
        return CodedDecision(allowed=False, ruling=ruling, code="invalid", reason=_INVALID)
    if link.made_for is not None and link.made_for != link.used_on:
        return CodedDecision(
            allowed=False,
            ruling=ruling,
            code="wrong-channel",
            reason=f"this code works only with {WORKS_ON.get(link.made_for, link.made_for)}",
        )
    if now > link.expires_at:
        return CodedDecision(allowed=False, ruling=ruling, code="expired", reason="this link has expired")
    return CodedDecision(allowed=True, ruling=ruling, code="valid", reason="the link is valid")


# Why an application's confirmation link has nothing left to confirm, by application status.
_CLOSED = {
    "expired": "it was not confirmed in time and has expired",
    "withdrawn": "it was withdrawn",
    "refused": "it was not accepted",
    "rejected": "the members' vote on it has ended",
}


@dataclass(frozen=True, kw_only=True)
class ConfirmLinkFacts:
    """What the ledger holds about a valid confirmation link. ``belongs``: the application and
    the account exist and the application named the account at intake; ``status`` is the
    application's; ``confirmed``: this account confirmed it already."""

    belongs: bool
    status: str | None = None
    confirmed: bool = False


def confirm_link_state(facts: ConfirmLinkFacts) -> CodedDecision:
    """R-APP-2: what a confirmation link's page offers: ``invalid`` (naming nothing we hold),
    ``closed`` (the application ended unconfirmed or was decided), ``done`` (nothing left to
    confirm from this account) or ``ready`` (show the button; the only ``allowed`` one)."""
    if not facts.belongs or facts.status is None:
        return CodedDecision(
            allowed=False, ruling="R-APP-2", code="invalid", reason="this link does not belong to an application"
        )
    if facts.status in _CLOSED:
        return CodedDecision(
            allowed=False,
            ruling="R-APP-2",
            code="closed",
            reason=f"this application is closed: {_CLOSED[facts.status]}",
        )
    if facts.status != "open" or facts.confirmed:
        return CodedDecision(
            allowed=False,
            ruling="R-APP-2",
            code="done",
            reason="the application is already confirmed from this account",
        )
    return CodedDecision(allowed=True, ruling="R-APP-2", code="ready", reason="waiting for your confirmation")


@dataclass(frozen=True, kw_only=True)
class OptInLinkFacts:
    """What the ledger holds about a valid opt-in link. ``belongs``: the term and the person
    exist and the term is of the person's membership; ``membership_status`` is that
    membership's; ``latest_term``: the link's term is still the membership's latest."""

    belongs: bool
    membership_status: str | None = None
    latest_term: bool = True


def optin_link_state(facts: OptInLinkFacts) -> CodedDecision:
    """R-TERM-2: what an opt-in link's page offers: ``invalid``, ``closed`` (the membership
    ended), ``done`` (opted in already: a newer term exists) or ``ready`` (``allowed``)."""
    if not facts.belongs or facts.membership_status is None:
        return CodedDecision(
            allowed=False, ruling="R-TERM-2", code="invalid", reason="this link does not belong to a membership"
        )
    if facts.membership_status != "active":
        return CodedDecision(
            allowed=False,
            ruling="R-TERM-2",
            code="closed",
            reason=f"this membership has ended ({facts.membership_status})",
        )
    if not facts.latest_term:
        return CodedDecision(
            allowed=False, ruling="R-TERM-2", code="done", reason="you have already opted in for the next term"
        )
    return CodedDecision(allowed=True, ruling="R-TERM-2", code="ready", reason="waiting for your opt-in")
