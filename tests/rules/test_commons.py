"""R-COMMS as pure functions: what the common room relays, how a copy reads, limits, titles,
deletions. Table-driven, one case per reading of the ruling."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rules.commons import content_hash, conversation_title, deleted_ids, fit, relay_decision, relay_text, targets


@pytest.mark.parametrize(
    ("own", "is_copy", "text", "attachments", "allowed", "reason"),
    [
        (False, False, "Spam wave tonight", (), True, "a person's message"),
        (True, False, "a digest the bot posted", (), False, "own account"),
        (False, True, "**avery_quill** (Discord): hello", (), False, "a copy"),
        (False, False, "   ", (), False, "nothing to relay"),
        (False, False, "", ("https://cdn.example.org/a.png",), True, "a person's message"),
    ],
)
def test_r_comms_relays_people_never_the_bridge_itself(own, is_copy, text, attachments, allowed, reason):
    decision = relay_decision(own=own, is_copy=is_copy, text=text, attachments=attachments)
    assert decision.allowed is allowed and decision.ruling == "R-COMMS" and reason in decision.reason


def test_r_comms_copies_go_to_every_other_platform_once():
    assert targets(["discord", "discourse", "matrix", "discord"], "discord") == ["discourse", "matrix"]


def test_r_comms_a_copy_names_author_and_platform_and_links_attachments():
    text = relay_text(
        author="wren_halloway",
        platform="Forum",
        text=" Queue is clear. ",
        attachments=("https://forum.example.org/uploads/a.png",),
    )
    assert text == "**wren_halloway** (Forum): Queue is clear.\n[attachment] https://forum.example.org/uploads/a.png"
    assert relay_text(author="bram_tolliver", platform="Discord", text="", attachments=("u",)).startswith(
        "**bram_tolliver** (Discord):\n[attachment] u"
    )


@pytest.mark.parametrize(
    ("length", "limit"), [(10, 2000), (2000, 2000), (2001, 2000), (50_000, 2000), (40_000, 32_000)]
)
def test_r_comms_a_long_message_is_shortened_with_a_link_to_the_original(length, limit):
    text = ("word " * length)[:length]
    out = fit(text, limit=limit, link="https://discord.com/channels/1/2/3")
    assert len(out) <= limit
    if length <= limit:
        assert out == text
    else:
        assert out.endswith("[shortened: read it all at https://discord.com/channels/1/2/3]")


@given(st.text(min_size=0, max_size=3000), st.integers(min_value=60, max_value=2500))
def test_fit_never_exceeds_the_limit(text, limit):
    assert len(fit(text, limit=limit, link="https://forum.example.org/t/7")) <= limit


@pytest.mark.parametrize(
    ("title", "text", "expected"),
    [
        ("Holiday cover for the queue", "body", "Holiday cover for the queue"),
        (None, "Spam wave in #help tonight\nmore", "Spam wave in #help tonight"),
        (None, "ok", "ok (cleo_marsh on Discord)"),
        (None, "", "From cleo_marsh on Discord"),
        (None, "**Bold** start of a long enough line", "Bold start of a long enough line"),
    ],
)
def test_r_comms_a_conversation_is_titled_from_its_source(title, text, expected):
    out = conversation_title(title=title, text=text, author="cleo_marsh", platform="Discord")
    assert out == expected and 15 <= len(out) <= 100


def test_a_title_longer_than_a_thread_name_is_cut():
    assert len(conversation_title(title="x" * 300, text="", author="a", platform="Forum")) == 100


def test_r_comms_edits_are_seen_by_their_digest():
    assert content_hash("a") == content_hash("a") != content_hash("b") != content_hash("b", ("u",))


@pytest.mark.parametrize(
    ("known", "window", "complete", "gone"),
    [
        ({"10", "12", "15"}, ["10", "15", "16"], False, {"12"}),
        ({"5", "12"}, ["10", "12"], False, set()),  # 5 is older than the window: unknown
        ({"5", "12"}, ["10", "12"], True, {"5"}),  # the window is the whole room
        ({"5"}, [], False, set()),
        ({"5"}, [], True, {"5"}),
    ],
)
def test_r_comms_deletions_follow_only_within_what_was_listed(known, window, complete, gone):
    assert deleted_ids(known, window, complete=complete) == gone


def test_an_attachment_signed_again_is_the_same_content() -> None:
    """Discord's CDN signs an attachment's link and issues it again (a new query, the same file)."""
    old = "https://cdn.discordapp.com/attachments/1/2/raid.png?ex=65d903de&is=65c68ede&hm=24&"
    new = "https://cdn.discordapp.com/attachments/1/2/raid.png?ex=65da555e&is=65d903de&hm=9f&"
    assert content_hash("t", (old,)) == content_hash("t", (new,)) != content_hash("t", ("https://x/other.png",))
