"""A year passes: reminders once each, opt-in renews from the old end date; a member who does not
opt in lapses after the grace period with roles revoked on both platforms. Leave."""

from __future__ import annotations

from datetime import timedelta

from flows.membership.leave import leave
from flows.membership.renewal import opt_in, renewal
from ledger.models import MembershipStatus, Person
from ledger.repo import update_identity
from tests.support.membership import NOW, discord_dms, forum_pms

START = NOW - timedelta(days=100)
END = START + timedelta(days=365)


def test_reminders_opt_in_and_lapse(world):
    at30 = END - timedelta(days=30) + timedelta(hours=1)
    first = renewal(now=at30)
    assert {r["days"] for r in first["reminded"]} == {30} and len(first["reminded"]) == 7
    before = world.writes()
    assert renewal(now=at30 + timedelta(hours=2))["reminded"] == []  # once each
    assert world.writes() == before
    renewed = opt_in(member="avery_quill", now=at30 + timedelta(days=1))
    assert renewed["starts_at"] == END.isoformat() and renewed["renewed"]
    assert opt_in(member="avery_quill", now=at30 + timedelta(days=2))["renewed"] is False
    at7 = END - timedelta(days=7) + timedelta(hours=1)
    assert {r["member"] for r in renewal(now=at7)["reminded"]} == set(world.people) - {"avery_quill"}
    for name in ("bram_tolliver", "cleo_marsh", "dario_fenwick", "felix_oakes", "gale_morrow"):
        opt_in(member=name, now=at7 + timedelta(hours=1))
    result = renewal(now=END + timedelta(days=8))
    assert result["lapsed"] == ["hana_pike"]
    with world.ledger.read() as session:
        person = session.get(Person, world.people["hana_pike"])
        assert person.memberships[-1].status == MembershipStatus.LAPSED
    assert (
        "hana_pike" not in next(g for g in world.discourse_state()["groups"] if g["name"] == "working-group")["members"]
    )
    assert any(c["action"] == "revoke" for c in world.discord_state()["role_changes"])
    before = world.writes()
    renewal(now=END + timedelta(days=8))
    assert world.writes() == before


def test_a_reminder_a_platform_did_not_take_is_sent_there_the_next_day(world):
    # avery_quill's Discord DMs are closed on the day of the 30-day reminder: the Forum's reaches
    # her, Discord's does not (R-TERM-2: reminders on the member's platforms).
    member = next(m for m in world.discord_sb.members.values() if m.get("username") == "avery_quill")
    member["accepts_dms"] = False
    at30 = END - timedelta(days=30) + timedelta(hours=1)
    assert len(renewal(now=at30)["reminded"]) == 7
    assert len(forum_pms(world, "avery_quill")) == 1 and not discord_dms(world, "avery_quill")
    # Open again the next day: the daily run sends it on Discord, and nothing twice.
    member["accepts_dms"] = True
    assert [r["member"] for r in renewal(now=at30 + timedelta(days=1))["reminded"]] == ["avery_quill"]
    assert len(forum_pms(world, "avery_quill")) == 1 and len(discord_dms(world, "avery_quill")) == 1
    assert renewal(now=at30 + timedelta(days=2))["reminded"] == []


def test_leave(world):
    result = leave(member="gale_morrow", reason="moving on", now=NOW)
    assert result["status"] == "left"
    assert (
        "gale_morrow"
        not in next(g for g in world.discourse_state()["groups"] if g["name"] == "working-group")["members"]
    )
    before = world.writes()
    leave(member="gale_morrow", reason="moving on", now=NOW)
    assert world.writes() == before


def test_a_renamed_member_is_reached_by_id_never_whoever_took_their_old_name(world):
    """cleo_marsh was linked when her name was quinn_harbor; quinn_harbor is someone else's name
    now, on both platforms. Her opt-in's confirmation reaches her account, read by its id and
    greeted by the name it has now: nothing goes to the other person."""
    with world.ledger.transaction() as session:
        for identity in session.get(Person, world.people["cleo_marsh"]).identities:
            update_identity(session, identity, actor="operator", username="quinn_harbor")
    at = END - timedelta(days=30) + timedelta(hours=1)
    assert opt_in(member="cleo_marsh", now=at)["renewed"]
    cleo = {p: world.platforms.space(p).directory.find_user("cleo_marsh").id for p in ("discourse", "discord")}
    [pm] = [t for t in world.discourse_state()["topics"] if t["archetype"] == "private_message"]
    assert pm["allowed"] == [["user", int(cleo["discourse"])]]
    assert forum_pms(world, "cleo_marsh") and not forum_pms(world, "quinn_harbor")
    [dm] = discord_dms(world, "cleo_marsh")
    dm_channel = next(c for c in world.discord_state()["channels"] if c["id"] == dm["channel_id"])
    assert dm_channel["recipient_id"] == cleo["discord"]
    assert not discord_dms(world, "quinn_harbor")
    with world.ledger.read() as session:  # the rename is recorded
        assert {i.username for i in session.get(Person, world.people["cleo_marsh"]).identities} == {"cleo_marsh"}
