"""rules/links.py: signed links (R-APP-2, R-TERM-2, R-ROLE-APPOINT), one table row per outcome."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rules.links import (
    ConfirmLinkFacts,
    OptInLinkFacts,
    SignedLink,
    check_link,
    confirm_link_state,
    optin_link_state,
)

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
LATER = NOW + timedelta(days=7)


@pytest.mark.parametrize(
    ("link", "allowed", "ruling", "code", "reason"),
    [
        (SignedLink(purpose="confirm", authentic=False), False, "R-APP-2", "invalid", "this link is not valid"),
        (SignedLink(purpose="optin", authentic=False), False, "R-TERM-2", "invalid", "this link is not valid"),
        (SignedLink(purpose="wg-role", authentic=False), False, "R-ROLE-APPOINT", "invalid", "this link is not valid"),
        # Authentic but unreadable expiry cannot be trusted.
        (SignedLink(purpose="confirm", authentic=True), False, "R-APP-2", "invalid", "this link is not valid"),
        (
            SignedLink(purpose="confirm", authentic=True, expires_at=LATER, made_for="discord", used_on="web"),
            False,
            "R-APP-2",
            "wrong-channel",
            "this code works only with the Confirm / Opt in button in the Discord direct message we sent",
        ),
        (
            SignedLink(purpose="optin", authentic=True, expires_at=LATER, made_for="web", used_on="discord"),
            False,
            "R-TERM-2",
            "wrong-channel",
            "this code works only with the web page its link opens (from the Forum message or e-mail we sent)",
        ),
        # The channel is checked before the expiry.
        (
            SignedLink(purpose="confirm", authentic=True, expires_at=NOW - timedelta(seconds=1), made_for="web"),
            False,
            "R-APP-2",
            "wrong-channel",
            "this code works only with the web page its link opens (from the Forum message or e-mail we sent)",
        ),
        (
            SignedLink(purpose="wg-role", authentic=True, expires_at=NOW - timedelta(seconds=1)),
            False,
            "R-ROLE-APPOINT",
            "expired",
            "this link has expired",
        ),
        (SignedLink(purpose="coc-outcome", authentic=False), False, "R-SAFE-2", "invalid", "this link is not valid"),
        (
            SignedLink(purpose="coc-outcome", authentic=True, expires_at=NOW - timedelta(seconds=1)),
            False,
            "R-SAFE-2",
            "expired",
            "this link has expired",
        ),
        (SignedLink(purpose="coc-outcome", authentic=True, expires_at=NOW), True, "R-SAFE-2", "valid", None),
        # The expiry moment itself is still good; a link made before channels works anywhere.
        (SignedLink(purpose="wg-role", authentic=True, expires_at=NOW), True, "R-ROLE-APPOINT", "valid", None),
        (
            SignedLink(purpose="optin", authentic=True, expires_at=LATER, used_on="discord"),
            True,
            "R-TERM-2",
            "valid",
            None,
        ),
        (
            SignedLink(purpose="confirm", authentic=True, expires_at=LATER, made_for="web", used_on="web"),
            True,
            "R-APP-2",
            "valid",
            None,
        ),
    ],
)
def test_check_link(link, allowed, ruling, code, reason):
    decision = check_link(link, now=NOW)
    assert (decision.allowed, decision.ruling, decision.code) == (allowed, ruling, code)
    if reason is not None:
        assert decision.reason == reason


@pytest.mark.parametrize(
    ("facts", "code", "reason"),
    [
        (ConfirmLinkFacts(belongs=False), "invalid", "this link does not belong to an application"),
        (ConfirmLinkFacts(belongs=True), "invalid", "this link does not belong to an application"),
        (
            ConfirmLinkFacts(belongs=True, status="expired"),
            "closed",
            "this application is closed: it was not confirmed in time and has expired",
        ),
        (ConfirmLinkFacts(belongs=True, status="withdrawn"), "closed", "this application is closed: it was withdrawn"),
        (ConfirmLinkFacts(belongs=True, status="refused"), "closed", "this application is closed: it was not accepted"),
        (
            ConfirmLinkFacts(belongs=True, status="rejected"),
            "closed",
            "this application is closed: the members' vote on it has ended",
        ),
        (
            ConfirmLinkFacts(belongs=True, status="voting"),
            "done",
            "the application is already confirmed from this account",
        ),
        (
            ConfirmLinkFacts(belongs=True, status="open", confirmed=True),
            "done",
            "the application is already confirmed from this account",
        ),
        (ConfirmLinkFacts(belongs=True, status="open"), "ready", "waiting for your confirmation"),
    ],
)
def test_r_app_2_confirm_link_state(facts, code, reason):
    decision = confirm_link_state(facts)
    assert (decision.ruling, decision.code, decision.reason) == ("R-APP-2", code, reason)
    assert decision.allowed is (code == "ready")


@pytest.mark.parametrize(
    ("facts", "code", "reason"),
    [
        (OptInLinkFacts(belongs=False), "invalid", "this link does not belong to a membership"),
        (OptInLinkFacts(belongs=True), "invalid", "this link does not belong to a membership"),
        (OptInLinkFacts(belongs=True, membership_status="lapsed"), "closed", "this membership has ended (lapsed)"),
        (OptInLinkFacts(belongs=True, membership_status="left"), "closed", "this membership has ended (left)"),
        (
            OptInLinkFacts(belongs=True, membership_status="active", latest_term=False),
            "done",
            "you have already opted in for the next term",
        ),
        (OptInLinkFacts(belongs=True, membership_status="active"), "ready", "waiting for your opt-in"),
    ],
)
def test_r_term_2_optin_link_state(facts, code, reason):
    decision = optin_link_state(facts)
    assert (decision.ruling, decision.code, decision.reason) == ("R-TERM-2", code, reason)
    assert decision.allowed is (code == "ready")
