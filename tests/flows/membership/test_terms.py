"""A year passes: reminders once each, opt-in renews from the old end date; a member who does not
opt in lapses after the grace period with roles revoked on both platforms. Leave."""

from __future__ import annotations

from datetime import timedelta

from flows.membership.leave import leave
from flows.membership.renewal import opt_in, renewal
from ledger.models import MembershipStatus, Person
from tests.support.membership import NOW

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
