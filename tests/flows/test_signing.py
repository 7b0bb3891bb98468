"""The one signed-link reader (``flows.signing``): every kind of link is written and read by it,
so each refusal is checked once here on two invented formats, one bound to a channel."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from connectors.errors import PolicyViolation
from flows.signing import LinkFormat, normalise, read_link, sign_link

NOW = datetime(2026, 6, 1, tzinfo=UTC)
LATER = NOW + timedelta(days=3)
SECRET = "signing-secret-invented"

# A link bound to a channel (like a confirmation) and one that is not (like the CoC outcome's).
BOUND = LinkFormat(
    purpose="confirm",
    prefix="t",
    domain="test:bound:",
    shape=re.compile(r"t\.(?:([wd])\.)?(\d{1,12})\.(\d{1,12})\.([0-9a-f]{32})"),
    channel_group=1,
    expiry_group=3,
    mac_group=4,
    channels={"w": "web", "d": "discord"},
    claims=lambda match, expires_at, made_for: (int(match.group(2)), expires_at, made_for),
)
FREE = LinkFormat(
    purpose="coc-outcome",
    prefix="u",
    domain="test:free:",
    shape=re.compile(r"u\.(\d{1,12})\.(\d{1,12})\.([0-9a-f]{32})"),
    expiry_group=2,
    mac_group=3,
    clip=60,
    claims=lambda match, expires_at, _: (int(match.group(1)), expires_at, None),
)


def bound(channel: str = "w", subject: int = 7) -> str:
    return sign_link(BOUND, secret=SECRET, fields=(channel, subject), expires_at=LATER)


def refusal(fmt: LinkFormat[Any], token: str, *, now: datetime = NOW, channel: str | None = None) -> PolicyViolation:
    with pytest.raises(PolicyViolation) as refused:
        read_link(fmt, token, secret=SECRET, now=now, channel=channel)
    return refused.value


def test_a_good_link_gives_its_claims_and_its_channel():
    assert read_link(BOUND, bound() + ".", secret=SECRET, now=NOW, channel="web") == (7, LATER, "web")
    token = sign_link(FREE, secret=SECRET, fields=(41,), expires_at=LATER)
    assert read_link(FREE, token, secret=SECRET, now=NOW) == (41, LATER, None)


def test_the_expiry_moment_itself_is_still_good_and_a_second_later_is_expired():
    assert read_link(BOUND, bound(), secret=SECRET, now=LATER, channel="web")[0] == 7
    refused = refusal(BOUND, bound(), now=LATER + timedelta(seconds=1), channel="web")
    assert (refused.reason, refused.ruling) == ("this link has expired", "R-APP-2")


@pytest.mark.parametrize(
    "tamper",
    [
        lambda t: t.replace(".7.", ".8.", 1),  # another subject
        lambda t: t.replace("t.w.", "t.d.", 1),  # another channel
        lambda t: t[:-1] + ("0" if t[-1] != "0" else "1"),  # another MAC
        lambda t: t.rsplit(".", 1)[0] + "." + "0" * 32,
    ],
)
def test_a_tampered_link_is_invalid(tamper):
    refused = refusal(BOUND, tamper(bound()), channel="web")
    assert (refused.reason, refused.ruling) == ("this link is not valid", "R-APP-2")


def test_another_secret_or_another_kind_is_invalid():
    other = sign_link(BOUND, secret="another-secret", fields=("w", 7), expires_at=LATER)
    assert refusal(BOUND, other, channel="web").reason == "this link is not valid"
    # Same fields, same shape, but signed for the other kind's domain: a token never passes for another kind.
    forged = sign_link(replace(BOUND, domain="test:other:"), secret=SECRET, fields=("w", 7), expires_at=LATER)
    assert refusal(BOUND, forged, channel="web").ruling == "R-APP-2"
    # A token of one kind read as the other: wrong shape, refused under the reader's ruling.
    free = sign_link(FREE, secret=SECRET, fields=(7,), expires_at=LATER)
    assert refusal(BOUND, free, channel="web").ruling == "R-APP-2"
    assert refusal(FREE, bound()).ruling == "R-SAFE-2"


@pytest.mark.parametrize("token", ["", "t", "t.w.7", "t.w.7.1.abc", " x ", "t.w.7.1780272000." + "g" * 32])
def test_a_malformed_link_is_invalid(token):
    assert refusal(BOUND, token, channel="web").reason == "this link is not valid"


def test_a_link_works_only_on_the_channel_it_was_made_for():
    refused = refusal(BOUND, bound("d"), channel="web")
    assert refused.ruling == "R-APP-2"
    assert "Discord direct message" in refused.reason
    assert read_link(BOUND, bound("d"), secret=SECRET, now=NOW, channel="discord")[2] == "discord"


def test_a_link_made_without_a_channel_works_on_every_channel():
    body = f"t.7.{int(LATER.timestamp())}"
    legacy = sign_link(BOUND, secret=SECRET, fields=(7,), expires_at=LATER)
    assert legacy.startswith(body + ".")
    for channel in ("web", "discord"):
        assert read_link(BOUND, legacy, secret=SECRET, now=NOW, channel=channel) == (7, LATER, None)


def test_an_empty_secret_signs_nothing_and_reads_nothing():
    with pytest.raises(ValueError, match="secret is empty"):
        sign_link(BOUND, secret="", fields=("w", 7), expires_at=LATER)
    with pytest.raises(ValueError, match="secret is empty"):
        read_link(BOUND, bound(), secret="", now=NOW, channel="web")


def test_normalise_drops_trailing_punctuation_and_clips_what_it_reads():
    assert normalise("  t.w.1.2.ab).\t,\n") == "t.w.1.2.ab"
    token = sign_link(FREE, secret=SECRET, fields=(41,), expires_at=LATER)
    assert read_link(FREE, token + " " * 80 + "x", secret=SECRET, now=NOW)[0] == 41  # past the clip: unread
    assert refusal(BOUND, bound() + " " * 80 + "x", channel="web").reason == "this link is not valid"
