"""Each capability of the Matrix connector against the real Synapse (through the pass-through
proxy), checked by reading Synapse back with other credentials."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from charterflow_matrix import payloads
from charterflow_matrix.client import q
from charterflow_matrix.connector import MODERATOR_LEVEL, REASON_KEY, SERVER_ADMINS
from connectors.base import ChangeStatus, Role
from connectors.errors import ConfigError, FatalError
from connectors.registry import load_connector


def bot(community: Any) -> httpx.Client:
    creds = community.credentials
    return httpx.Client(
        base_url=creds.base_url, timeout=30, trust_env=False, headers={"Authorization": f"Bearer {creds.bot_token}"}
    )


def room_events(community: Any, room: str, event_type: str) -> list[dict[str, Any]]:
    with bot(community) as client:
        page = client.get(
            f"/_synapse/admin/v1/rooms/{q(room)}/messages",
            params={"dir": "b", "limit": 200, "filter": f'{{"types":["{event_type}"]}}'},
        ).json()
    return page["chunk"]


def test_the_entry_point_loads_the_connector() -> None:
    cls = load_connector("matrix")
    assert cls.__name__ == "MatrixConnector" and cls.name == "matrix"


def test_from_env_names_the_missing_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HOMESERVER_URL", "SERVER_NAME", "ACCESS_TOKEN"):
        monkeypatch.delenv(f"CHARTERFLOW_MATRIX_{name}", raising=False)
    with pytest.raises(ConfigError) as missing:
        load_connector("matrix").from_env(_env_file=None)
    assert "CHARTERFLOW_MATRIX_ACCESS_TOKEN" in str(missing.value)


def test_a_wrong_token_is_a_config_error_that_never_shows_the_token(community: Any) -> None:
    connector = community.connect(community.url, access_token="syt_wrong_token_for_the_test")
    with pytest.raises(ConfigError) as bad:
        connector.find_user("avery_quill")
    assert "syt_wrong_token_for_the_test" not in str(bad.value) and "ACCESS_TOKEN" in str(bad.value)
    connector.close()


def test_directory_reads_creation_last_seen_and_the_last_message(community: Any, matrix: Any) -> None:
    user = matrix.find_user("cleo_marsh")
    assert user.id == "@cleo_marsh:localhost" and user.display_name == "Cleo Marsh"
    assert matrix.find_user("@cleo_marsh:localhost") == user
    assert matrix.activity(user).last_posted_at is None
    token = community.users.login("cleo_marsh")  # her own login: Synapse records where she was seen
    with httpx.Client(
        base_url=community.credentials.base_url,
        timeout=30,
        trust_env=False,
        headers={"Authorization": f"Bearer {token}"},
    ) as client:
        client.put(
            f"/_matrix/client/v3/rooms/{q(community.room('general'))}/send/m.room.message/t1",
            json={"msgtype": "m.text", "body": "hello from cleo"},
        ).raise_for_status()
    activity = matrix.activity(user)
    now = datetime.now(UTC)
    assert activity.created_at <= now and activity.last_posted_at is not None
    assert abs((activity.last_posted_at - now).total_seconds()) < 120
    # The member acted with a token: Synapse records when it was last seen, writing its
    # client-IP table in batches every few seconds.
    deadline = time.monotonic() + 20
    while activity.last_seen_at is None and time.monotonic() < deadline:
        time.sleep(1)
        activity = matrix.activity(user)
    assert activity.last_seen_at is not None and activity.last_seen_at >= activity.created_at - timedelta(seconds=1)
    staff = matrix.list_staff()
    assert "@charterflow:localhost" in {u.id for u in staff}
    assert all(u.platform_account for u in staff if u.id == "@charterflow:localhost")


def test_admin_is_power_100_in_the_space_and_every_room_with_the_reason(community: Any, matrix: Any) -> None:
    user = matrix.find_user("dario_fenwick")
    change = matrix.grant(user, Role.admin(), reason="R-ADMIN-1: elected by the WG")
    assert change.status is ChangeStatus.APPLIED
    rooms = matrix.community_rooms()
    assert len(rooms) == 4
    with bot(community) as client:
        for room in rooms:
            levels = client.get(f"/_matrix/client/v3/rooms/{q(room)}/state/m.room.power_levels/").json()
            assert levels["users"][user.id] == 100
            assert levels[REASON_KEY] == "R-ADMIN-1: elected by the WG"
    assert user.id in {u.id for u in matrix.list_holders(Role.admin())}
    assert matrix.grant(user, Role.admin(), reason="again").status is ChangeStatus.UNCHANGED
    assert matrix.revoke(user, Role.admin(), reason="R-ADMIN-3: term ended").status is ChangeStatus.APPLIED
    assert user.id not in {u.id for u in matrix.list_holders(Role.admin())}


def test_a_moderator_already_set_in_some_rooms_is_completed_in_the_others(community: Any, matrix: Any) -> None:
    user = matrix.find_user("wren_halloway")
    space = matrix.community_rooms()[0]
    matrix._set_level(space, user, MODERATOR_LEVEL, "set by hand")  # half-done, as after a crash
    assert matrix.grant(user, Role.moderator(), reason="finish it").status is ChangeStatus.APPLIED
    assert all(matrix._levels(r).get(user.id) == MODERATOR_LEVEL for r in matrix.community_rooms())
    matrix.revoke(user, Role.moderator(), reason="done")


def test_a_group_is_a_room_invite_and_kick_carry_the_reason(community: Any, matrix: Any) -> None:
    user = matrix.find_user("wren_halloway")
    group = Role.group("working-group")
    assert user.id not in {u.id for u in matrix.list_holders(group)}
    assert matrix.grant(user, group, reason="the WG voted them in").status is ChangeStatus.APPLIED
    assert user.id in {u.id for u in matrix.list_holders(group)}
    assert matrix.revoke(user, group, reason="stepped down").status is ChangeStatus.APPLIED
    members = room_events(community, community.room("working-group"), "m.room.member")
    reasons = [e["content"].get("reason") for e in members if e["state_key"] == user.id]
    assert "the WG voted them in" in reasons and "stepped down" in reasons
    with pytest.raises(FatalError):
        matrix.grant(user, Role.group("no-such-room"), reason="x")


def test_server_admin_is_synapses_flag(community: Any, matrix: Any) -> None:
    user = matrix.find_user("bram_tolliver")
    role = Role.group(SERVER_ADMINS)
    assert matrix.grant(user, role, reason="homeserver operator").status is ChangeStatus.APPLIED
    with bot(community) as client:
        assert client.get(f"/_synapse/admin/v2/users/{q(user.id)}").json()["admin"] is True
    assert user.id in {u.id for u in matrix.list_staff()}
    assert matrix.revoke(user, role, reason="handed over").status is ChangeStatus.APPLIED
    assert matrix.revoke(user, role, reason="handed over").status is ChangeStatus.UNCHANGED


def test_a_keyed_post_is_sent_once_and_replies_thread(community: Any, matrix: Any) -> None:
    first = matrix.post(channel="general", title="Quarterly report", text="Numbers <b>inside</b>.", key="report-q3")
    again = matrix.post(channel="general", title="Quarterly report", text="Numbers <b>inside</b>.", key="report-q3")
    assert again == first
    events = [
        e for e in room_events(community, community.room("general"), "m.room.message") if e["event_id"] == first.id
    ]
    assert len(events) == 1 and "&lt;b&gt;" in events[0]["content"]["formatted_body"]
    reply = matrix.reply(thread_id=first.thread_id, text="A follow-up.", key="report-q3-reply")
    with bot(community) as client:
        event = client.get(f"/_matrix/client/v3/rooms/{q(community.room('general'))}/event/{q(reply.id)}").json()
    assert event["content"]["m.relates_to"] == {
        "rel_type": "m.thread",
        "event_id": first.id,
        "is_falling_back": True,
        "m.in_reply_to": {"event_id": first.id},
    }


def test_direct_messages_reuse_one_room_per_recipient_set(community: Any, matrix: Any) -> None:
    one = matrix.direct_message(recipients=["cleo_marsh"], title="Your application", text="Received.")
    two = matrix.direct_message(recipients=["@cleo_marsh:localhost"], title="Your application", text="Voted.")
    assert one.thread_id.split("/")[0] == two.thread_id.split("/")[0] and one.id != two.id
    with pytest.raises(FatalError) as missing:
        matrix.direct_message(recipients=["nobody_at_all"], title="x", text="y")
    assert "nobody_at_all" in str(missing.value)


def test_an_oversized_message_is_shortened_visibly_and_accepted(community: Any, matrix: Any) -> None:
    text = "ü" * 70_000  # two bytes each: far over Matrix's 65,536-byte event
    ref = matrix.post(channel="general", title="Long", text=text)
    with bot(community) as client:
        body = client.get(f"/_matrix/client/v3/rooms/{q(community.room('general'))}/event/{q(ref.id)}").json()[
            "content"
        ]["body"]
    assert "shortened to fit Matrix's event size" in body
    assert payloads.content_size(payloads.message(title="Long", text=text)) <= payloads.MAX_CONTENT_BYTES


def test_ballots_count_each_members_last_answer_before_the_end(community: Any, matrix: Any) -> None:
    ballot = matrix.open_ballot(
        channel="working-group",
        question="Admit avery_quill?",
        options=["Yes", "No"],
        voters_group="working-group",
        closes_at=datetime.now(UTC) + timedelta(days=14),
        text="The application is in the thread.",
    )
    url = community.credentials.base_url
    community.cast_vote(url, ballot, voter="cleo_marsh", option_index=1)
    community.cast_vote(url, ballot, voter="cleo_marsh", option_index=0)  # changed their mind
    community.cast_vote(url, ballot, voter="dario_fenwick", option_index=1)
    votes = matrix.read_votes(ballot)
    assert sorted((v.voter.username, v.option_id) for v in votes) == [("cleo_marsh", "a1"), ("dario_fenwick", "a2")]
    closed = matrix.close_ballot(ballot, result="Yes 1, No 1 (all platforms: Yes 5, No 2)")
    assert not closed.is_open
    community.cast_vote(url, ballot, voter="dario_fenwick", option_index=0)  # too late
    assert sorted((v.voter.username, v.option_id) for v in matrix.read_votes(closed)) == [
        ("cleo_marsh", "a1"),
        ("dario_fenwick", "a2"),
    ]
    matrix.close_ballot(closed)
    ends = [
        e
        for e in room_events(community, community.room("working-group"), payloads.POLL_END)
        if e["content"]["m.relates_to"]["event_id"] == ballot.id.split("/")[1]
    ]
    assert len(ends) == 1 and "all platforms: Yes 5" in ends[0]["content"]["m.text"][0]["body"]


def test_votes_from_outside_the_voters_group_do_not_count(community: Any, matrix: Any) -> None:
    ballot = matrix.open_ballot(
        channel="general", question="Adopt the idea?", options=["Yes", "No"], voters_group="working-group"
    )
    community.cast_vote(community.credentials.base_url, ballot, voter="avery_quill", option_index=0)
    community.cast_vote(community.credentials.base_url, ballot, voter="cleo_marsh", option_index=1)
    assert [(v.voter.username, v.option_id) for v in matrix.read_votes(ballot)] == [("cleo_marsh", "a2")]


def test_a_secret_ballot_is_refused(matrix: Any) -> None:
    with pytest.raises(FatalError):
        matrix.open_ballot(channel="working-group", question="Secret?", options=["Yes", "No"], secret=True)


def test_moderation_log_holds_bans_kicks_redactions_and_reports(community: Any, matrix: Any) -> None:
    general = community.room("general")
    url = community.credentials.base_url
    with community.as_member(url, "bram_tolliver") as bram:
        spam = bram.put(
            f"/_matrix/client/v3/rooms/{q(general)}/send/m.room.message/spam1",
            json={"msgtype": "m.text", "body": "buy now"},
        ).json()["event_id"]
    with community.as_member(url, "cleo_marsh") as cleo:
        cleo.post(
            f"/_matrix/client/v3/rooms/{q(general)}/report/{q(spam)}", json={"reason": "spam", "score": -100}
        ).raise_for_status()
    before = matrix.moderation_entries(after=None, limit=1000)
    cursor = before[-1].id if before else None
    with bot(community) as client:
        client.put(
            f"/_matrix/client/v3/rooms/{q(general)}/redact/{q(spam)}/r1", json={"reason": "spam"}
        ).raise_for_status()
        client.post(
            f"/_matrix/client/v3/rooms/{q(general)}/kick",
            json={"user_id": "@bram_tolliver:localhost", "reason": "first warning"},
        ).raise_for_status()
        client.post(
            f"/_matrix/client/v3/rooms/{q(general)}/ban",
            json={"user_id": "@bram_tolliver:localhost", "reason": "second time"},
        ).raise_for_status()
    assert "content_report" in {e.kind for e in before}
    # The process's Synapse keeps the other tests' reports too: this one is the report of spam.
    report = next(e for e in before if e.kind == "content_report" and e.changes.get("event_id") == spam)
    assert report.reason == "spam" and report.moderator.username == "cleo_marsh"
    new = matrix.moderation_entries(after=cursor, limit=1000)
    assert [(e.kind, e.reason) for e in new] == [
        ("redaction", "spam"),
        ("kick", "first warning"),
        ("ban", "second time"),
    ]
    assert new[2].target.username == "bram_tolliver" and new[2].link.startswith("https://matrix.to/#/")
    assert matrix.moderation_entries(after=new[-1].id) == []
    assert len(matrix.moderation_entries(after=cursor, limit=2)) == 2


def test_the_core_never_imports_the_plugin() -> None:
    root = Path(__file__).resolve().parents[3]
    found = [
        str(p.relative_to(root))
        for package in ("rules", "connectors", "flows", "ledger", "gateway", "charterflow")
        for p in sorted((root / package).rglob("*.py"))
        if "charterflow_matrix" in p.read_text(encoding="utf-8")
    ]
    assert found == []
