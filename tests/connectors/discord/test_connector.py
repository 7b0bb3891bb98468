"""The Discord connector against its sandbox on 127.0.0.1: directory, activity, roles, messages,
ballots, events, errors and the 401/403 stop."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from connectors.base import ChangeStatus, Role
from connectors.discord.client import CannotDirectMessage, MissingPermissions
from connectors.discord.connector import RoleRequest
from connectors.discord.sandbox import DiscordSandbox, default_seed
from connectors.errors import ConfigError, FatalError
from tests.support.discord import COMMAND_NAMES


def test_find_user_by_name_and_by_id_and_missing(discord: Any) -> None:
    c = discord.connect()
    cleo = c.find_user("cleo_marsh")
    assert cleo.platform == "discord" and cleo.id.isdigit() and cleo.display_name == "Cleo Marsh"
    assert c.find_user(cleo.id) == cleo
    assert c.find_user("@Cleo_Marsh") == cleo  # case-insensitive, leading @ allowed
    with pytest.raises(FatalError, match="'cleo'.*not found"):
        c.find_user("cleo")  # a prefix is not the user
    with pytest.raises(FatalError, match="not found"):
        c.find_user("999999999999999999")


def test_activity_counts_messages_of_the_last_90_days(discord: Any) -> None:
    c = discord.connect()
    act = c.activity(c.find_user("avery_quill"))
    assert act.created_at == datetime(2022, 6, 12, 10, 0, tzinfo=UTC)  # joined_at
    assert act.post_count == 42  # recent_messages; the 300 older ones are outside the window
    assert act.last_posted_at is not None and act.last_posted_at > datetime.now(UTC) - timedelta(days=90)
    assert act.days_visited is None and act.last_seen_at is None  # Discord does not report these


def test_index_not_ready_is_retried_within_a_bound(discord: Any) -> None:
    c = discord.connect(search_index_attempts=3, search_index_max_wait=10.0)
    discord.sandbox.settings.search_index_retry_after = 0
    discord.faults(search_not_indexed=2)
    act = c.activity(c.find_user("cleo_marsh"))
    assert act.post_count == 9
    assert discord.state()["responses"]["GET /guilds/{guild_id}/messages/search"] == {"202": 2, "200": 1}


def test_index_never_ready_gives_unknown_not_zero(discord: Any) -> None:
    c = discord.connect(search_index_attempts=3)
    discord.sandbox.settings.search_index_retry_after = 0
    discord.faults(search_not_indexed=-1)
    act = c.activity(c.find_user("cleo_marsh"))
    assert act.post_count is None and act.last_posted_at is None
    assert discord.state()["responses"]["GET /guilds/{guild_id}/messages/search"] == {"202": 3}


def test_index_wait_longer_than_the_bound_is_not_waited_for(discord: Any) -> None:
    c = discord.connect(search_index_attempts=5, search_index_max_wait=1.0)
    discord.sandbox.settings.search_index_retry_after = 2  # Discord's usual hint
    discord.faults(search_not_indexed=-1)
    assert c.message_count(c.find_user("cleo_marsh").id) == (None, None)
    assert discord.state()["responses"]["GET /guilds/{guild_id}/messages/search"] == {"202": 1}


def test_member_list_pages_with_after(serve: Any) -> None:
    seed = default_seed()
    seed["generated_members"] = 2500
    box = serve(DiscordSandbox(seed=seed))
    c = box.connect()
    members = c.list_members()
    assert len(members) == 2500 + 7  # generated + seeded + the bot
    assert len({m.user.id for m in members}) == len(members)
    assert box.state()["requests"]["GET /guilds/{guild_id}/members"] == 3
    small = list(c.iter_members(page_size=500))
    assert [m.user.id for m in small] == [m.user.id for m in members]


def test_staff_and_holders(discord: Any) -> None:
    c = discord.connect()
    assert {u.username for u in c.list_staff()} == {"avery_quill", "bram_tolliver"}
    assert {u.username for u in c.list_holders(Role.group("wg-member"))} == {
        "avery_quill",
        "cleo_marsh",
        "dario_fenwick",
    }


def test_role_changes_carry_the_audit_reason_and_happen_once(discord: Any) -> None:
    c = discord.connect()
    esme = c.find_user("esme_voss")
    wg = Role.group("wg-member")
    assert c.grant(esme, wg, reason="R-MEM-1 decision 41").status is ChangeStatus.APPLIED
    assert c.grant(esme, wg, reason="R-MEM-1 decision 41").status is ChangeStatus.UNCHANGED
    assert c.revoke(esme, wg, reason="R-LEAVE decision 42 (à bientôt)").status is ChangeStatus.APPLIED
    changes = discord.state()["role_changes"]
    assert [(ch["action"], ch["role"], ch["reason"]) for ch in changes] == [
        ("grant", "wg-member", "R-MEM-1 decision 41"),
        ("revoke", "wg-member", "R-LEAVE decision 42 (à bientôt)"),
    ]
    with pytest.raises(ValueError):
        c.grant(esme, wg, reason=" ")


def test_role_above_the_bot_is_a_clear_error_naming_role_and_fix(discord: Any) -> None:
    c = discord.connect()
    with pytest.raises(MissingPermissions) as err:
        c.grant(c.find_user("cleo_marsh"), Role.group("owners"), reason="test")
    text = str(err.value)
    assert err.value.code == 50013 and err.value.status == 403
    assert "'owners'" in text and "'charterflow'" in text and "Server Settings" in text and "drag" in text
    assert discord.state()["role_changes"] == []


def test_unknown_role_name_is_fatal_and_names_it(discord: Any) -> None:
    c = discord.connect()
    with pytest.raises(FatalError, match="'no-such-role'"):
        c.grant(c.find_user("cleo_marsh"), Role.group("no-such-role"), reason="test")


def test_role_ids_from_settings_and_unknown_role_id(discord: Any) -> None:
    c = discord.connect(moderator_role_id="123456789012345678")
    with pytest.raises(FatalError, match="10011"):
        c.grant(c.find_user("cleo_marsh"), Role.moderator(), reason="test")


def test_bulk_role_changes_use_observed_roles(discord: Any) -> None:
    c = discord.connect()
    members = {m.user.id: m for m in c.list_members()}
    plan = [
        RoleRequest(action="grant", user=m.user, role=Role.group("wg-member"), reason="bulk")
        for m in members.values()
        if not m.bot
    ]
    results = c.apply_role_changes(plan, observed={uid: m.roles for uid, m in members.items()})
    assert sum(r.status is ChangeStatus.APPLIED for r in results) == 3  # bram, esme, felix
    assert sum(r.status is ChangeStatus.UNCHANGED for r in results) == 3
    assert "GET /guilds/{guild_id}/members/{user_id}" not in discord.state()["requests"]


def test_wrong_token_stops_after_one_401(discord: Any) -> None:
    c = discord.connect(token=SecretStr("wrong.token-value-abcdef"))
    with pytest.raises(ConfigError) as err:
        c.find_user("cleo_marsh")
    assert "CHARTERFLOW_DISCORD_TOKEN" in str(err.value) and "wrong.token-value-abcdef" not in str(err.value)
    for _ in range(3):
        with pytest.raises(FatalError, match="stopped"):
            c.find_user("cleo_marsh")
    assert discord.state()["responses"]["GET /guilds/{guild_id}/members/search"] == {"401": 1}


def test_repeated_403_stops_sending(discord: Any) -> None:
    c = discord.connect(max_forbidden=2)
    felix = c.find_user("felix_oakes")
    owners = Role.group("owners")
    c.guild_roles()
    # Grant twice with the member already read, so only the refused PUTs are sent.
    for _ in range(2):
        with pytest.raises(MissingPermissions):
            c._change("revoke", felix, owners, reason="test", observed=frozenset({c.role_id(owners)}))
    with pytest.raises(FatalError, match="stopped after 2 HTTP 403 answers within 10 minutes"):
        c.find_user("cleo_marsh")
    refused = discord.state()["responses"]["DELETE /guilds/{guild_id}/members/{user_id}/roles/{role_id}"]
    assert refused == {"403": 2}
    c.client.resume()
    assert c.find_user("cleo_marsh").username == "cleo_marsh"


def test_long_text_is_split_on_lines_and_never_pings(serve: Any) -> None:
    discord = serve(DiscordSandbox(time_scale=0.01))
    c = discord.connect()
    lines = [f"line {i:03d} @everyone <@&1> " + "x" * 60 for i in range(80)]
    refs = c.send_text(channel="wg-private", text="\n".join(lines), key="long-1")
    messages = [m for m in discord.state()["messages"] if m["channel_id"] == refs[0].thread_id]
    assert len(refs) == len(messages) >= 3
    assert all(len(m["content"]) <= 2000 for m in messages)
    assert "\n".join(m["content"] for m in messages) == "\n".join(lines)
    assert all(m["allowed_mentions"] == {"parse": []} for m in messages)
    again = c.send_text(channel="wg-private", text="\n".join(lines), key="long-1")
    assert again == refs  # the same key: Discord returns the messages already made (enforce_nonce)
    assert len(discord.state()["messages"]) == len(messages)


def test_post_opens_a_thread_and_replies_go_there(discord: Any) -> None:
    c = discord.connect()
    first = c.post(channel="wg-private", title="Quarterly report", text="Draft attached.", key="q-report")
    assert first.thread_id == first.id  # a thread started on a message shares its id
    reply = c.reply(thread_id=first.thread_id, text="Looks good.")
    assert reply.thread_id == first.thread_id
    again = c.post(channel="wg-private", title="Quarterly report", text="Draft attached.", key="q-report")
    assert again == first
    state = discord.state()
    assert [m["content"] for m in state["messages"]] == ["**Quarterly report**\nDraft attached.", "Looks good."]


def test_dm_refused_by_one_member_is_reported_with_the_rest_delivered(discord: Any) -> None:
    c = discord.connect()
    with pytest.raises(CannotDirectMessage) as err:
        c.direct_message(recipients=["esme_voss", "cleo_marsh"], title="Your application", text="Please confirm.")
    esme = c.find_user("esme_voss")
    assert err.value.user_ids == (esme.id,) and err.value.code == 50007
    assert len(err.value.delivered) == 1 and "mention them" in str(err.value)


def test_private_thread_with_members(discord: Any) -> None:
    c = discord.connect()
    cleo = c.find_user("cleo_marsh")
    ref = c.private_thread(channel=None, name="Application: cleo_marsh", members=[cleo], text="Discussion here.")
    channel = next(ch for ch in discord.state()["channels"] if ch["id"] == ref.thread_id)
    assert channel["type"] == 12 and cleo.id in channel["members"] and channel["invitable"] is False


def test_ballot_votes_change_until_close_and_result_is_shown(discord: Any) -> None:
    c = discord.connect()
    sb = discord.sandbox
    ballot = c.open_ballot(
        channel="wg-private",
        question="Approve Esme Voss?",
        options=["Yes", "No", "Abstain"],
        voters_group="wg-member",
        closes_at=datetime.now(UTC) + timedelta(days=7),
        key="b-1",
    )
    cast = sb.press(
        discord.url,
        user="cleo_marsh",
        channel_id=ballot.message.thread_id,
        message_id=ballot.message.id,
        option_index=0,
    )
    answer = cast["response"]
    assert cast["status"] == 200 and not cast["failed"]
    assert answer["type"] == 4 and answer["data"]["flags"] == 64 and "Yes" in answer["data"]["content"]
    changed = sb.press(
        discord.url,
        user="cleo_marsh",
        channel_id=ballot.message.thread_id,
        message_id=ballot.message.id,
        option_index=1,
    )
    assert "changed to **No**" in changed["response"]["data"]["content"]
    # The outsider sees wg-private (an owner: Administrator) but is not in wg-member; one who
    # cannot see it cannot press at all (403 50001, as on Discord).
    outsider = sb.press(
        discord.url,
        user="felix_oakes",
        channel_id=ballot.message.thread_id,
        message_id=ballot.message.id,
        option_index=0,
    )
    assert "only members of wg-member" in outsider["response"]["data"]["content"]
    sb.cast_vote(discord.url, ballot, voter="dario_fenwick", option_index=1)
    assert sorted((v.voter.username, v.option_id) for v in c.read_votes(ballot)) == [
        ("cleo_marsh", "1"),
        ("dario_fenwick", "1"),
    ]
    closed = c.close_ballot(ballot)
    assert not closed.is_open
    message = next(m for m in discord.state()["messages"] if m["id"] == ballot.message.id)
    assert message["content"].startswith("**Ballot closed:**") and "- No: 2" in message["content"]
    assert message["components"] == []  # the buttons are gone: nobody can press one any more
    with pytest.raises(RuntimeError, match="no such button"):
        sb.cast_vote(discord.url, ballot, voter="avery_quill", option_index=0)


def test_vote_after_close_time_is_refused(discord: Any) -> None:
    c = discord.connect()
    ballot = c.open_ballot(
        channel="wg-private", question="Quick poll", options=["A", "B"], closes_at=datetime.now(UTC) + timedelta(days=1)
    )
    late = discord.connect(now=lambda: datetime.now(UTC) + timedelta(days=2), vote_store=c.votes)
    assert late is not None
    result = discord.sandbox.press(
        discord.url,
        user="cleo_marsh",
        channel_id=ballot.message.thread_id,
        message_id=ballot.message.id,
        option_index=0,
    )
    assert "closed" in result["response"]["data"]["content"]
    assert c.read_votes(ballot) == []


def test_scheduled_event_is_external_and_not_duplicated(discord: Any) -> None:
    c = discord.connect()
    start = (datetime.now(UTC) + timedelta(days=40)).replace(microsecond=0)
    event = c.schedule_event(
        title="Q3 working group call",
        starts_at=start,
        ends_at=start + timedelta(hours=1),
        location="https://meet.example.invalid/ocwg",
        description="Agenda in the forum.",
        reason="R-MEET quarterly call",
    )
    again = c.schedule_event(
        title="Q3 working group call",
        starts_at=start,
        ends_at=start + timedelta(hours=1),
        location="https://meet.example.invalid/ocwg",
    )
    assert again == event and event.location == "https://meet.example.invalid/ocwg"
    state = discord.state()
    assert len(state["events"]) == 1 and state["events"][0]["entity_type"] == 3
    assert state["audit_log"][-1]["reason"] == "R-MEET quarterly call"
    with pytest.raises(FatalError, match="in the past"):
        c.schedule_event(
            title="Yesterday", starts_at=start - timedelta(days=80), ends_at=start - timedelta(days=79, hours=23)
        )
    with pytest.raises(ValueError):
        c.schedule_event(title="Backwards", starts_at=start, ends_at=start - timedelta(hours=1))


def test_slash_commands_modal_and_followups_through_the_sandbox(discord: Any) -> None:
    c = discord.connect()
    sb = discord.sandbox
    assert [r["name"] for r in c.register_commands()] == COMMAND_NAMES
    ping = sb._control_post(discord.url, {"type": "ping", "user": "cleo_marsh"})
    assert ping["response"] == {"type": 1} and not ping["failed"]
    apply = sb.command(discord.url, user="esme_voss", name="apply")
    modal = apply["response"]
    assert modal["type"] == 9 and [row["components"][0]["custom_id"] for row in modal["data"]["components"]] == [
        "forum_username",
        "why",
        "experience",
    ]
    submitted = sb.submit_modal(
        discord.url,
        user="esme_voss",
        custom_id="cf:apply",
        fields={"forum_username": "esme_voss", "why": "To help.", "experience": "Moderation."},
    )
    assert submitted["response"]["type"] == 5 and not submitted["failed"]
    idea = sb.command(discord.url, user="cleo_marsh", name="idea", options={"text": "Office hours"})
    assert idea["response"]["type"] == 5
    # The flow that handles the idea answers later through the interaction webhook.
    token = next(t for t, r in sb.interactions.items() if r["id"] == idea["interaction_id"])
    refs = c.followup(token, "Thanks, your idea is filed as #12.\n" + "More detail. " * 200)
    assert len(refs) == 2
    c.edit_original(token, "Idea received.")
    with pytest.raises(RuntimeError, match="not registered"):
        sb.command(discord.url, user="cleo_marsh", name="unknown-command")


def test_answers_reach_discord_within_3_seconds_or_the_interaction_fails(serve: Any) -> None:
    box = serve(DiscordSandbox(settings={"interaction_timeout": 0.3}))
    c = box.connect()
    for _ in range(3):
        result = box.sandbox.command(box.url, user="cleo_marsh", name="optin")
        assert not result["failed"] and result["response"]["type"] == 5 and result["elapsed"] < 0.3

    def slow(headers: Any, body: bytes) -> tuple[int, Any]:
        time.sleep(0.6)
        return c.handle_interaction(headers=headers, body=body)

    box.sandbox.set_interaction_sink(slow)
    late = box.sandbox.command(box.url, user="cleo_marsh", name="optin")
    assert late["failed"] and "did not answer within" in late["error"]
    box.sandbox.set_interaction_sink(lambda h, b: (500, {"oops": True}))
    broken = box.sandbox.command(box.url, user="cleo_marsh", name="optin")
    assert broken["failed"] and "HTTP 500" in broken["error"]


def test_a_rooms_messages_withheld_for_want_of_the_message_content_intent_are_a_fatal_error_naming_it(serve):
    # Without the intent Discord sends another's message with nothing in it; copying it would
    # post empty messages into the common room, so the connector says what to turn on instead.
    seed = default_seed()
    seed["application_flags"] = 1 << 15  # Server Members only
    box = serve(DiscordSandbox(seed=seed))
    connector = box.connect()
    said = {"user": "bram_tolliver", "channel": "moderators", "content": "Raid in #general"}  # a moderator
    httpx.post(f"{box.url}/_sandbox/messages", json=said, timeout=10).raise_for_status()
    with pytest.raises(FatalError, match="turn on the Message Content Intent"):
        connector.room_messages(room="moderators", after=None, limit=10)
    # The bot's own messages still come whole: only others' are withheld.
    alone = serve(DiscordSandbox(seed=seed)).connect()
    alone.room_post(room="moderators", text="From the WG")
    assert [m.text for m in alone.room_messages(room="moderators", after=None)] == ["From the WG"]
