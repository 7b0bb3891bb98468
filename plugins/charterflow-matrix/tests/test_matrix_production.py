"""What a production homeserver run by someone else does that our own Synapse config made easy:
a bot that is not a server admin, a bot Synapse rate limits as a person (its defaults), polls as
Element sends and shows them, and a member from another server. Each against the real Synapse."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from charterflow_matrix import doctor, payloads
from charterflow_matrix.client import q
from charterflow_matrix.connector import MODERATOR_LEVEL, MatrixConnector
from charterflow_matrix.homeserver import Homeserver, register_user
from charterflow_matrix.sandbox import seed_community
from charterflow_matrix.settings import MatrixSettings
from connectors.base import ChangeStatus, Role
from connectors.errors import ConfigError, FatalError


def _registered(homeserver: Any, *, admin: bool) -> str:
    """A fresh account's token, registered as a production operator would (no rate-limit override)."""
    creds = homeserver.credentials
    with httpx.Client(base_url=creds.base_url, timeout=30, trust_env=False) as client:
        return register_user(
            client,
            creds.registration_secret,
            f"bot_{secrets.token_hex(4)}",
            password=secrets.token_urlsafe(16),
            admin=admin,
        )


def _checks(community: Any, token: str) -> dict[str, Any]:
    settings = community.settings(access_token=token)
    return {c.name: c for c in doctor.check(settings)}


def test_a_bot_that_is_not_a_server_admin_is_told_so_not_that_the_user_is_missing(
    community: Any, homeserver: Any
) -> None:
    token = _registered(homeserver, admin=False)
    connector = community.connect(community.url, access_token=token)
    try:
        # Synapse's admin API answers 403 M_FORBIDDEN to a non-admin (synapse/rest/admin/_base.py).
        with pytest.raises(ConfigError) as refused:
            connector.find_user("avery_quill")
        assert "server admin" in str(refused.value) and "no user" not in str(refused.value)
        assert token not in str(refused.value)
        with pytest.raises(ConfigError, match="server admin"):
            connector.platform_reports()
    finally:
        connector.close()
    checks = _checks(community, token)
    assert not checks["token"].ok and "not a server admin" in checks["token"].detail
    assert all(token not in c.detail + c.fix for c in checks.values())


def test_doctor_fails_a_bot_that_synapse_rate_limits_as_a_person(community: Any, homeserver: Any) -> None:
    fresh = _checks(community, _registered(homeserver, admin=True))
    assert not fresh["ratelimit"].ok and "override_ratelimit" in fresh["ratelimit"].fix
    ours = _checks(community, community.credentials.bot_token)
    assert ours["ratelimit"].ok, ours["ratelimit"]


def test_a_poll_is_sent_as_element_shows_it_and_elements_votes_count(community: Any, matrix: Any) -> None:
    ballot = matrix.open_ballot(
        channel="working-group", question="Adopt the rota?", options=["Yes", "No"], voters_group="working-group"
    )
    room, _, start_id = ballot.id.partition("/")
    url = community.credentials.base_url
    with community.as_member(url, "cleo_marsh") as cleo:
        start = cleo.get(f"/_matrix/client/v3/rooms/{q(room)}/event/{q(start_id)}").raise_for_status().json()
        # What matrix-js-sdk and ruma parse (MSC3381's unstable form, MSC1767 v1 text).
        assert start["type"] == "org.matrix.msc3381.poll.start"
        poll = start["content"]["org.matrix.msc3381.poll.start"]
        assert poll["question"]["org.matrix.msc1767.text"] == "Adopt the rota?"
        assert [(a["id"], a["org.matrix.msc1767.text"]) for a in poll["answers"]] == [("a1", "Yes"), ("a2", "No")]
        # Cleo votes from Element: the unstable type and content.
        cleo.put(
            f"/_matrix/client/v3/rooms/{q(room)}/send/org.matrix.msc3381.poll.response/{payloads.txn_id(None)}",
            json={
                "m.relates_to": {"rel_type": "m.reference", "event_id": start_id},
                "org.matrix.msc3381.poll.response": {"answers": ["a2"]},
            },
        ).raise_for_status()
    community.cast_vote(url, ballot, voter="dario_fenwick", option_index=0)  # the stable form
    assert sorted((v.voter.username, v.option_id) for v in matrix.read_votes(ballot)) == [
        ("cleo_marsh", "a2"),
        ("dario_fenwick", "a1"),
    ]
    matrix.close_ballot(ballot, result="Yes 1, No 1")
    with community.as_member(url, "cleo_marsh") as cleo:
        page = cleo.get(
            f"/_matrix/client/v1/rooms/{q(room)}/relations/{q(start_id)}/m.reference/org.matrix.msc3381.poll.end"
        ).raise_for_status()
    [end] = page.json()["chunk"]
    assert "Yes 1, No 1" in end["content"]["org.matrix.msc1767.text"]


def test_a_member_of_another_server_is_looked_up_by_profile_not_the_admin_api(matrix: Any) -> None:
    # Synapse's admin API refuses remote users ("Can only look up local users",
    # synapse/rest/admin/users.py); this Synapse federates with no one, so the profile fails too.
    with pytest.raises(FatalError) as missing:
        matrix.find_user("@ines_okafor:elsewhere.example")
    assert "profile of @ines_okafor:elsewhere.example" in str(missing.value)
    assert "Federation denied" in str(missing.value) and "local users" not in str(missing.value)
    with pytest.raises(FatalError, match="another server"):
        matrix.activity(matrix._ref("@ines_okafor:elsewhere.example"))


def test_a_report_of_a_person_reaches_the_poll_and_the_moderation_log(community: Any, matrix: Any) -> None:
    # Element's "Report user" (spec v1.14) files a user report, which Synapse keeps apart from
    # event reports (GET /_synapse/admin/v1/user_reports).
    with community.as_member(community.credentials.base_url, "wren_halloway") as wren:
        wren.post(
            f"/_matrix/client/v3/users/{q('@bram_tolliver:localhost')}/report",
            json={"reason": "sends strangers unsolicited invites"},
        ).raise_for_status()
    [report] = [r for r in matrix.platform_reports() if r.reason == "sends strangers unsolicited invites"]
    assert report.id.startswith("user-") and report.message_id is None
    assert (report.reporter.username, report.target.username) == ("wren_halloway", "bram_tolliver")
    [entry] = [
        e
        for e in matrix.moderation_entries(after=None, limit=1000)
        if e.raw.get("id") and e.id.endswith(f"report-{report.id}")
    ]
    assert entry.kind == "content_report" and entry.target.username == "bram_tolliver"


def test_a_room_of_the_space_the_bot_is_not_in_is_left_out_and_named_by_doctor(community: Any, matrix: Any) -> None:
    url, bot = community.credentials.base_url, community.credentials.bot_token
    space = matrix.community_rooms()[0]
    with community.as_member(url, "cleo_marsh") as cleo:
        theirs = cleo.post("/_matrix/client/v3/createRoom", json={"name": "Book club"}).raise_for_status().json()
    child = f"/_matrix/client/v3/rooms/{q(space)}/state/m.space.child/{q(theirs['room_id'])}"
    with httpx.Client(base_url=url, timeout=30, trust_env=False, headers={"Authorization": f"Bearer {bot}"}) as admin:
        admin.put(child, json={"via": ["localhost"]}).raise_for_status()
        try:
            # A non-member reading the room's power levels gets 403: the grant must not fail on it.
            user = matrix.find_user("wren_halloway")
            assert matrix.grant(user, Role.moderator(), reason="R-MOD-1: trial").status is ChangeStatus.APPLIED
            assert theirs["room_id"] not in matrix.community_rooms()
            assert user.id in {u.id for u in matrix.list_holders(Role.moderator())}
            checks = _checks(community, bot)
            assert not checks["space rooms"].ok and theirs["room_id"] in checks["space rooms"].detail
            matrix.revoke(user, Role.moderator(), reason="R-MOD-1: trial over")
        finally:
            admin.put(child, json={}).raise_for_status()  # no via: no longer a child


def test_on_a_server_pinned_to_room_version_10_the_guides_room_gives_the_bot_150(tmp_path: Path) -> None:
    # Synapse's own default is 12 (creators outrank every level, MSC4289); many production servers
    # pin an older one, where the creator is an ordinary 100 and cannot demote an admin.
    with Homeserver(tmp_path / "v10", extra_config={"default_room_version": "10"}, die_with_parent=True) as server:
        creds = server.credentials
        assert creds is not None
        rooms = {"rooms": {"working-group": [], "moderators": []}}
        users = seed_community(creds.base_url, creds.bot_token, creds.server_name, prefix="", seed=rooms)
        users.ensure("ines_okafor")
        settings = MatrixSettings(
            _env_file=None,
            homeserver_url=creds.base_url,
            server_name=creds.server_name,
            access_token=SecretStr(creds.bot_token),
        )
        connector = MatrixConnector(settings=settings)
        try:
            guides = connector.guides_room()
            levels = connector._power_levels(guides)
            assert levels["users"][creds.bot_user_id] == 150
            ines = connector.find_user("ines_okafor")
            connector._set_level(guides, ines, 100, "R-ADMIN-1: elected")
            connector._set_level(guides, ines, None, "R-ADMIN-3: term ended")  # refused at 100
            assert ines.id not in connector._levels(guides)
            power = {c.name: c for c in doctor.check(settings)}["power"]
            # The space and the two rooms the seed made at 100 are named; the guides room is not.
            assert not power.ok and "in 3 rooms" in power.detail, power
        finally:
            connector.close()


def test_a_room_whose_users_default_is_50_keeps_no_revoked_moderator(community: Any, matrix: Any) -> None:
    url, bot = community.credentials.base_url, community.credentials.bot_token
    space = matrix.community_rooms()[0]
    with httpx.Client(base_url=url, timeout=30, trust_env=False, headers={"Authorization": f"Bearer {bot}"}) as admin:
        lenient = (
            admin.post(
                "/_matrix/client/v3/createRoom",
                json={"name": "Everyone moderates", "power_level_content_override": {"users_default": 50}},
            )
            .raise_for_status()
            .json()["room_id"]
        )
        child = f"/_matrix/client/v3/rooms/{q(space)}/state/m.space.child/{q(lenient)}"
        admin.put(child, json={"via": ["localhost"]}).raise_for_status()
        try:
            user = matrix.find_user("wren_halloway")
            matrix.grant(user, Role.moderator(), reason="R-MOD-1: trial")
            assert matrix.revoke(user, Role.moderator(), reason="R-MOD-1: over").status is ChangeStatus.APPLIED
            # Removing them from ``users`` alone would leave them at the room's default, 50.
            assert matrix._level_of(lenient, user.id) < MODERATOR_LEVEL
        finally:
            admin.put(child, json={}).raise_for_status()
