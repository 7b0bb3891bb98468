"""The pure payload builders: Discord's limits and shapes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.discord import payloads
from flows import inbox
from flows.safety.common import MESSAGE_COMMAND
from tests.support.discord import COMMAND_NAMES


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet=st.sampled_from("ab \n"), max_size=7000), limit=st.integers(min_value=5, max_value=2000))
def test_split_text_respects_the_limit_and_keeps_every_word(text: str, limit: int) -> None:
    pieces = payloads.split_text(text, limit=limit)
    assert all(0 < len(p) <= limit for p in pieces)
    assert "".join("".join(pieces).split()) == "".join(text.split())


def test_split_text_cuts_at_line_boundaries_first() -> None:
    lines = [f"{i:04d} " + "y" * 95 for i in range(60)]
    pieces = payloads.split_text("\n".join(lines))
    assert len(pieces) == 4 and all(len(p) <= 2000 for p in pieces)
    assert [line for p in pieces for line in p.split("\n")] == lines


def test_message_enforces_2000_and_never_pings() -> None:
    body = payloads.message("hi @everyone")
    assert body["allowed_mentions"] == {"parse": []}
    assert len(payloads.message("x" * 2000)["content"]) == 2000
    with pytest.raises(ValueError, match="2000"):
        payloads.message("x" * 2001)
    with pytest.raises(ValueError):
        payloads.message("   ")
    nonced = payloads.message("x", nonce="k" * 25)
    assert nonced["enforce_nonce"] is True
    with pytest.raises(ValueError):
        payloads.message("x", nonce="k" * 26)


def test_messages_put_the_title_first_and_derive_nonces() -> None:
    bodies = payloads.messages("body " * 900, title="A  title\nwith newline", nonce="k" + "0" * 20)
    assert bodies[0]["content"].startswith("**A title with newline**\n")
    assert len({b["nonce"] for b in bodies}) == len(bodies) and all(len(b["nonce"]) <= 25 for b in bodies)


def test_ballot_buttons_identify_ballot_and_choice() -> None:
    body = payloads.ballot_message(
        ballot_id="b1", question="Adopt?", options=["Yes", "No", "Abstain"], closes_at=datetime(2026, 12, 1, tzinfo=UTC)
    )
    buttons = [c for row in body["components"] for c in row["components"]]
    assert [b["custom_id"] for b in buttons] == ["cfb:b1:0", "cfb:b1:1", "cfb:b1:2"]
    assert payloads.parse_ballot_custom_id("cfb:b1:2") == ("b1", "2")
    assert payloads.parse_ballot_custom_id("cfb:b1:x") is None and payloads.parse_ballot_custom_id("") is None
    assert "<t:1796083200:F>" in body["content"]
    many = payloads.ballot_message(ballot_id="b2", question="Pick", options=[f"o{i}" for i in range(12)])
    assert [len(r["components"]) for r in many["components"]] == [5, 5, 2]
    with pytest.raises(ValueError):
        payloads.ballot_message(ballot_id="b3", question="Pick", options=["only one"])
    with pytest.raises(ValueError):
        payloads.ballot_custom_id("bad id!", "0")


def test_result_message_removes_buttons_and_shows_the_merged_result() -> None:
    body = payloads.ballot_result_message(ballot_id="b1", question="Adopt?", options=["Yes", "No"], counts=[3, 1])
    assert "4 votes cast." in body["content"] and "- Yes: 3" in body["content"]
    assert body["components"] == []  # an empty list removes the buttons on edit
    merged = payloads.ballot_result_message(
        ballot_id="b1",
        question="Adopt?",
        options=["Yes", "No"],
        counts=[0, 0],
        result="Closed: passed, 4 yes, 1 no, 0 abstain of 7 (Discord 3, Forum 2)",
    )
    assert merged["content"] == (
        "**Ballot closed:** Adopt?\nClosed: passed, 4 yes, 1 no, 0 abstain of 7 (Discord 3, Forum 2)"
    )
    # Counts kept elsewhere (none in the store) never show as "0 votes".
    empty = payloads.ballot_result_message(ballot_id="b1", question="Adopt?", options=["Yes", "No"], counts=[0, 0])
    assert empty["content"] == "**Ballot closed:** Adopt?" and empty["components"] == []


def test_ballot_text_is_shortened_visibly_to_fit_one_message() -> None:
    case = "**Why:** " + "I help newcomers every week. " * 60 + "\n**Experience:** " + "Moderation. " * 100
    body = payloads.ballot_message(
        ballot_id="b1",
        question="Approve avery?",
        options=["Yes", "No"],
        closes_at=datetime(2026, 12, 1, tzinfo=UTC),
        voters_note="Members may vote.",
        text=case,
    )
    content = body["content"]
    assert len(content) <= 2000 and content.startswith("**Ballot:** Approve avery?\n**Why:** I help")
    assert "… [shortened: too long for one Discord message]" in content
    assert content.endswith("Press a button to vote; press another to change your vote until the ballot closes.")
    short = payloads.ballot_message(ballot_id="b1", question="Approve avery?", options=["Yes", "No"], text="Fits.")
    assert "Fits." in short["content"] and "shortened" not in short["content"]


def test_interaction_responses() -> None:
    assert payloads.pong() == {"type": 1}
    eph = payloads.ephemeral("Only you see this")
    assert eph["type"] == 4 and eph["data"]["flags"] == 64 and eph["data"]["allowed_mentions"] == {"parse": []}
    assert payloads.deferred() == {"type": 5, "data": {"flags": 64}}
    assert payloads.deferred_update() == {"type": 6}
    assert len(payloads.followup("z " * 1500)) == 2
    with pytest.raises(ValueError):
        payloads.ephemeral("x" * 2001)


def test_apply_modal_has_the_three_questions_of_r_app_1() -> None:
    modal = payloads.apply_modal()
    assert modal["type"] == 9 and modal["data"]["custom_id"] == payloads.APPLY_MODAL_ID
    inputs = [row["components"][0] for row in modal["data"]["components"]]
    assert [i["custom_id"] for i in inputs] == ["forum_username", "why", "experience"]
    assert all(i["type"] == 4 and len(i["label"]) <= 45 and i["max_length"] <= 4000 for i in inputs)
    assert [i["required"] for i in inputs] == [False, True, True]


def test_commands_are_valid_discord_command_definitions() -> None:
    names = [c["name"] for c in payloads.COMMANDS]
    assert names == COMMAND_NAMES
    for command in payloads.COMMANDS:
        if command["type"] == 3:  # a message command: any case, spaces, no description
            assert 1 <= len(command["name"]) <= 32 and command["description"] == ""
        else:
            assert command["name"].islower() and 1 <= len(command["description"]) <= 100


def test_the_report_message_command_is_the_one_the_safety_flows_route() -> None:
    # R-SAFE-1: the registered name is what the interaction carries and the inbox routes.
    [report] = [c for c in payloads.COMMANDS if c["type"] == 3]
    assert report["name"] == MESSAGE_COMMAND
    assert inbox.COMMAND_ROUTES[MESSAGE_COMMAND] == "safety-report"


def test_welcome_screen_enforces_discords_limits_never_cuts() -> None:
    # R-GUIDE: the welcome screen points newcomers at the guides channel.
    body = payloads.welcome_screen("New here? Start with the guides.", [("123", "Community guides")])
    assert body == {
        "enabled": True,
        "description": "New here? Start with the guides.",
        "welcome_channels": [
            {"channel_id": "123", "description": "Community guides", "emoji_id": None, "emoji_name": None}
        ],
    }
    with pytest.raises(ValueError, match="140"):
        payloads.welcome_screen("x" * 141, [])
    with pytest.raises(ValueError, match="50"):
        payloads.welcome_screen("ok", [("123", "y" * 51)])
    with pytest.raises(ValueError, match="at most 5"):
        payloads.welcome_screen("ok", [(str(i), "c") for i in range(6)])


def test_onboarding_update_keeps_other_prompts_and_sends_nothing_when_in_step():
    theirs = {
        "id": "11",
        "title": "What brings you here?",
        "options": [
            {
                "id": "12",
                "title": "Learning",
                "description": "",
                "emoji": {"id": None, "name": "\U0001f4da", "animated": False},
                "role_ids": ["5"],
                "channel_ids": [],
            }
        ],
        "single_select": True,
        "required": False,
        "in_onboarding": True,
        "type": 0,
    }
    current = {"guild_id": "1", "prompts": [theirs], "default_channel_ids": ["7"], "enabled": True, "mode": 1}
    long_title = "How to ask a good question on the Forum, and where to ask it"
    body, pid = payloads.onboarding_update(
        current, title="Guides", options=[(long_title, "https://example.org/1")], channel_id="9", new_id="99"
    )
    assert pid == "99" and (body["default_channel_ids"], body["enabled"], body["mode"]) == (["7"], True, 1)
    kept, ours = body["prompts"]
    assert (
        kept["id"] == "11"
        and kept["options"][0]["emoji_name"] == "\U0001f4da"
        and kept["options"][0]["role_ids"] == ["5"]
    )
    [option] = ours["options"]
    assert len(option["title"]) <= 50 and option["title"].endswith("\u2026") and option["channel_ids"] == ["9"]
    # What Discord answers after that PUT: the same prompt, the option with an id of its own.
    shown = {**ours, "options": [{**option, "id": "100", "emoji": {"id": None, "name": None, "animated": False}}]}
    after = {**current, "prompts": [theirs, shown]}
    assert payloads.onboarding_update(
        after, title="Guides", options=[(long_title, "https://example.org/1")], channel_id="9", new_id="98"
    ) == (None, "99")
    renamed, _ = payloads.onboarding_update(
        after, title="Guides", options=[("Asking", "")], channel_id="9", new_id="98", prompt_id="99"
    )
    assert renamed["prompts"][1]["id"] == "99" and renamed["prompts"][1]["options"][0]["id"] is None
    with pytest.raises(ValueError, match="1 to 50 options"):
        payloads.onboarding_update(current, title="Guides", options=[("A", "")] * 51, channel_id="9", new_id="98")
    with pytest.raises(ValueError, match="description"):
        payloads.onboarding_update(current, title="Guides", options=[("A", "x" * 101)], channel_id="9", new_id="98")


def test_plain_text_reads_discord_markup_as_the_client_shows_it() -> None:
    """https://discord.com/developers/docs/reference#message-formatting: ids become names, custom
    emoji their name, a timestamp a UTC time; what Discord cannot name reads as it shows it, and
    text that only looks like markup stays."""
    text = (
        "<@1> <@!2> <@&3> <#4> </role add:5> <:party:6> <a:wave:7> <t:1618953630:R> <@&99> <#98> "
        "<@someone> <https://example.org> a <b> c"
    )
    plain = payloads.plain_text(text, users={"1": "avery_quill"}, roles={"3": "moderator"}, channels={"4": "general"})
    assert plain == (
        "@avery_quill @unknown-user @moderator #general /role add :party: :wave: 2021-04-20 21:20 UTC "
        "@deleted-role #unknown <@someone> <https://example.org> a <b> c"
    )
