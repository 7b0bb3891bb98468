"""R-ADMIN-2 (WG members only count) and R-ADMIN-4 (ending a membership) against the Forum and
Discord sandboxes on 127.0.0.1.

Seeded admins (conftest): Forum avery_quill, bram_tolliver and the Forum's own ``system``;
Discord cleo_marsh, dario_fenwick."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from connectors.base import Role
from flows.kit import context
from flows.membership.leave import leave
from flows.membership.renewal import renewal
from flows.platforms import parse_role
from flows.roles.change import roles_change
from flows.roles.drift import audit_drift
from flows.roles.plan import build_plan, format_plan
from flows.roles.revocations import roles_admin_revocations
from ledger import repo
from ledger.models import Person
from ledger.models_roles import AdminRevocation
from tests.support.membership import NOW, discord_dms, forum_pms
from tests.support.roles import want

SYSTEM_LINE = "Forum: 2 admins count (avery_quill, bram_tolliver); not counted: discourse:system (platform account)"


def holders(w, platform: str, role: str) -> set[str]:
    return {u.username for u in w.platforms.space(platform).roles.list_holders(parse_role(role))}


def grant(w, platform: str, handle: str, role: str) -> None:
    """The WG's wish recorded in the ledger and applied on the platform (test setup)."""
    want(w, handle, platform, role)
    space = w.platforms.space(platform)
    space.roles.grant(space.directory.find_user(handle), parse_role(role), reason="test setup")


def wg_posts(w) -> list[str]:
    """What the bot posted in the WG's spaces: Forum topics (title and first post) and Discord
    messages."""
    forum = w.discourse_state()
    raw = {p["id"]: p["raw"] for p in forum["posts"]}
    topics = [t["title"] + "\n" + raw.get((t["post_ids"] or [None])[0], "") for t in forum["topics"]]
    return topics + [m["content"] or "" for m in w.discord_state()["messages"]]


def desired(w, handle: str) -> dict[tuple[str, str], bool]:
    with w.ledger.read() as session:
        rows = repo.platform_roles_of(session, repo.get_person(session, handle))
        return {(r.platform.value, r.role): r.desired for r in rows}


def revocations(w) -> list[tuple[str, str, int]]:
    with w.ledger.read() as session:
        return [
            (r.platform, r.status, r.reminders)
            for r in session.scalars(select(AdminRevocation).order_by(AdminRevocation.id))
        ]


# --- R-ADMIN-2: system does not count ---------------------------------------------------------


def test_R_ADMIN_2_plan_counts_members_only_and_refuses_system_as_second_admin(roles_world):
    w = roles_world
    ctx = context(NOW)
    text = format_plan(build_plan(ctx))
    assert SYSTEM_LINE in text
    # Revoking bram's Forum admin leaves avery and `system`: one admin who counts.
    want(w, "bram_tolliver", "discourse", "admin", desired=False)
    shown = build_plan(ctx)
    assert not shown.allowed and shown.plan.decision.ruling == "R-ADMIN-2"
    text = format_plan(shown)
    assert ("Forum: 1 admin counts (avery_quill); not counted: discourse:system (platform account)") in text
    # A Forum admin whose membership ended does not count either.
    want(w, "bram_tolliver", "discourse", "admin", desired=True)
    with w.ledger.transaction() as session:
        person = repo.get_person(session, "avery_quill")
        repo.end_membership(
            session,
            repo.open_membership(session, person),
            status="left",
            actor="operator",
            at=NOW,
            keep=[("discourse", "admin")],
        )
    assert (
        "Forum: 1 admin counts (bram_tolliver); not counted: discourse:system (platform "
        "account), avery_quill (not a WG member)"
    ) in format_plan(build_plan(context(NOW)))


def test_R_ADMIN_2_drift_audit_reports_a_forum_left_with_system_as_second_admin(roles_world):
    w = roles_world
    clean = audit_drift(context(NOW), slack_channel=None)
    assert clean["status"] == "clean" and SYSTEM_LINE in clean["admins"]
    # bram's admin is revoked by hand on the Forum: avery and `system` are left.
    space = w.platforms.space("discourse")
    space.roles.revoke(space.directory.find_user("bram_tolliver"), Role.admin(), reason="by hand")
    found = audit_drift(context(NOW + timedelta(hours=1)), slack_channel=None)
    assert found["status"] == "drift"
    assert any(
        f
        == (
            "R-ADMIN-2 discourse: discourse has 1 admin who counts toward R-ADMIN-2 "
            "(avery_quill); at least 2 are required; not counted: discourse:system "
            "(platform account)"
        )
        for f in found["findings"]["invariants"]
    ), found["findings"]
    report = [t for t in wg_posts(w) if "Role drift found" in t or "roles audit" in t]
    assert report and "not counted: discourse:system (platform account)" in report[-1]


# --- R-ADMIN-4: lapse with three counted admins ------------------------------------------------


def test_R_ADMIN_4_lapse_revokes_admin_and_wg_role_but_keeps_moderator(roles_world):
    w = roles_world
    grant(w, "discord", "hana_pike", "admin")
    grant(w, "discord", "hana_pike", "moderator")
    assert holders(w, "discord", "admin") == {"cleo_marsh", "dario_fenwick", "hana_pike"}
    with w.ledger.transaction() as session:  # hana's term ended 35 days ago: past the grace
        term = session.get(Person, w.people["hana_pike"]).memberships[-1].terms[-1]
        term.starts_at, term.ends_at = NOW - timedelta(days=400), NOW - timedelta(days=35)
    result = renewal(now=NOW)
    assert result["lapsed"] == ["hana_pike"]
    assert holders(w, "discord", "admin") == {"cleo_marsh", "dario_fenwick"}
    assert "hana_pike" in holders(w, "discord", "moderator")  # R-MOD: stays
    assert "hana_pike" not in holders(w, "discord", "group:wg-member")
    assert "hana_pike" not in holders(w, "discourse", "group:working-group")
    wishes = desired(w, "hana_pike")
    assert wishes[("discord", "moderator")] is True and wishes[("discord", "admin")] is False
    assert revocations(w) == []


# --- R-ADMIN-4: a leave that would leave one counted admin -------------------------------------


def test_R_ADMIN_4_leave_waits_reminds_and_completes_after_a_new_admin(roles_world):
    w = roles_world
    result = leave(member="dario_fenwick", reason="moving on", now=NOW)
    assert result["waiting"] == ["discord"]
    # The admin role stays, the WG role goes, the wait is in the ledger.
    assert holders(w, "discord", "admin") == {"cleo_marsh", "dario_fenwick"}
    assert "dario_fenwick" not in holders(w, "discord", "group:wg-member")
    assert desired(w, "dario_fenwick")[("discord", "admin")] is True
    assert revocations(w) == [("discord", "waiting", 0)]
    told = [t for t in wg_posts(w) if "Discord needs a new admin" in t]
    assert len(told) == 2  # the WG's space on the Forum and on Discord
    assert "Discord: 1 admin counts (cleo_marsh)" in told[0]

    assert list(roles_admin_revocations(now=NOW + timedelta(days=1))["revocations"].values()) == ["waiting"]
    reminded = roles_admin_revocations(now=NOW + timedelta(days=7, hours=1))
    assert list(reminded["revocations"].values()) == ["reminded"]
    assert len([t for t in wg_posts(w) if "Discord needs a new admin (reminder 1)" in t]) == 2
    before = w.writes()
    assert list(roles_admin_revocations(now=NOW + timedelta(days=7, hours=2))["revocations"].values()) == ["waiting"]
    assert w.writes() == before  # a reminder once

    appointed = roles_change(
        action="grant",
        role="admin",
        platform="discord",
        person="gale_morrow",
        reason="replaces dario_fenwick",
        now=NOW + timedelta(days=8),
    )
    assert appointed["status"] == "applied", appointed
    done = roles_admin_revocations(now=NOW + timedelta(days=8, hours=1))
    assert list(done["revocations"].values()) == ["done"]
    assert holders(w, "discord", "admin") == {"cleo_marsh", "gale_morrow"}
    assert revocations(w) == [("discord", "done", 1)]
    assert any("Discord has enough admins again" in t for t in wg_posts(w))
    assert roles_admin_revocations(now=NOW + timedelta(days=9))["revocations"] == {}


# --- R-ADMIN-4 in advance: the opt-in reminder --------------------------------------------------


def test_R_ADMIN_4_opt_in_reminder_warns_when_a_lapse_would_leave_a_platform_short(roles_world):
    w = roles_world
    end = NOW - timedelta(days=100) + timedelta(days=365)
    result = renewal(now=end - timedelta(days=30) + timedelta(hours=1))
    warnings = {r["member"]: r["admin_warning"] for r in result["reminded"]}
    assert warnings["avery_quill"] == ["the Forum"] and warnings["dario_fenwick"] == ["Discord"]
    assert warnings["felix_oakes"] == []
    assert any("If you lapse, the Forum keeps one admin (bram_tolliver)" in p for p in forum_pms(w, "avery_quill"))
    assert any(
        "If you lapse, Discord keeps one admin (cleo_marsh)" in (m["content"] or "")
        for m in discord_dms(w, "dario_fenwick")
    )
    assert not any("If you lapse" in p for p in forum_pms(w, "felix_oakes"))


def test_R_ADMIN_2_a_bot_holding_admin_on_discord_is_a_platform_account(roles_world):
    w = roles_world
    space = w.platforms.space("discord")
    bot = space.connector.get_member(space.connector.settings.application_id).user
    space.roles.grant(bot, Role.admin(), reason="test setup: an integration made admin by hand")
    text = format_plan(build_plan(context(NOW)))
    assert (
        f"Discord: 2 admins count (cleo_marsh, dario_fenwick); not counted: discord:{bot.username} (platform account)"
    ) in text
