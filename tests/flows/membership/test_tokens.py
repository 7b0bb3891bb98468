"""Confirmation and opt-in tokens are bound to the channel they were sent on (issue 19), and a
token as pasted is normalised or refused before anything else (``flows.membership.tokens``)."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest

from connectors.errors import PolicyViolation
from flows.membership.tokens import make_token, normalise_token, read_token

NOW = datetime(2026, 6, 1, tzinfo=UTC)
SECRET = "token-secret-invented"


def token(purpose: str = "confirm", channel: str = "web") -> str:
    return make_token(
        secret=SECRET, purpose=purpose, subject=12, identity=34, expires_at=NOW + timedelta(days=7), channel=channel
    )


@pytest.mark.parametrize("purpose", ["confirm", "optin"])
@pytest.mark.parametrize(
    "sent, redeemed, where", [("discord", "web", "Discord direct message"), ("web", "discord", "web page")]
)
def test_a_token_works_only_on_the_channel_it_was_sent_on(purpose, sent, redeemed, where):
    good = token(purpose, sent)
    assert read_token(good, secret=SECRET, purpose=purpose, now=NOW, channel=sent).channel == sent
    with pytest.raises(PolicyViolation) as refused:
        read_token(good, secret=SECRET, purpose=purpose, now=NOW, channel=redeemed)
    assert where in refused.value.reason
    assert refused.value.ruling == ("R-APP-2" if purpose == "confirm" else "R-TERM-2")


def test_the_channel_is_signed():
    forged = token(channel="discord").replace("c.d.", "c.w.", 1)
    with pytest.raises(PolicyViolation, match="not valid"):
        read_token(forged, secret=SECRET, purpose="confirm", now=NOW, channel="web")


def test_a_token_made_before_channels_still_works_until_it_expires():
    body = f"c.12.34.{int((NOW + timedelta(days=7)).timestamp())}"
    legacy = f"{body}.{hmac.new(SECRET.encode(), body.encode(), hashlib.sha256).hexdigest()[:32]}"
    for channel in ("web", "discord"):
        claims = read_token(legacy, secret=SECRET, purpose="confirm", now=NOW, channel=channel)
        assert (claims.subject, claims.identity, claims.channel) == (12, 34, None)


@pytest.mark.parametrize("suffix", [".", " ", "\n", ").", '"', " . ", "\t,"])
def test_trailing_punctuation_and_whitespace_are_dropped(suffix):
    good = token()
    assert normalise_token(good + suffix) == good
    assert read_token(good + suffix, secret=SECRET, purpose="confirm", now=NOW, channel="web").subject == 12


@pytest.mark.parametrize("suffix", ["x", "0", ".abc", " x", "-", "\x00"])
def test_other_extra_characters_are_refused(suffix):
    with pytest.raises(PolicyViolation, match="not valid"):
        read_token(token() + suffix, secret=SECRET, purpose="confirm", now=NOW, channel="web")
