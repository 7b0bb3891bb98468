"""The hourly drift audit (R-ADMIN-3) against the Forum, Discord and Slack sandboxes."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import select

from connectors.base import Role
from flows.roles.drift import find_drift, fingerprint, roles_drift_audit
from flows.roles.plan import RolesPlan
from ledger.models import AuditEntry
from ledger.models_roles import RoleDriftReport
from rules import Assignment, default_charter, plan_roles
from tests.support.membership import NOW


def discord_reports(w) -> list[str]:
    return [m["content"] or "" for m in w.discord_state()["messages"] if "Role drift" in (m["content"] or "")]


def by_hand(w, platform: str, username: str, role: Role, *, grant: bool = True) -> None:
    """A person changes a role directly on the platform (through its API, as its UI does)."""
    space = w.platforms.space(platform)
    user = space.directory.find_user(username)
    (space.roles.grant if grant else space.roles.revoke)(user, role, reason="done by hand")


def test_a_grant_made_by_hand_is_reported_once_then_resolved_once(roles_world, slack_box):
    w = roles_world
    clean = roles_drift_audit(now=NOW)
    assert clean["status"] == "clean", clean["findings"]
    assert discord_reports(w) == []

    by_hand(w, "discord", "hana_pike", Role.admin())
    found = roles_drift_audit(now=NOW + timedelta(hours=1))
    assert found["status"] == "drift"
    assert "discord: hana_pike holds admin without a ledger decision" in found["findings"]["unrecorded"]
    (report,) = discord_reports(w)
    assert "hana_pike holds admin without a ledger decision" in report
    assert "Repair plan" in report and "verdict: allowed" in report
    slack = [t for t in slack_box.texts() if "Role drift" in t]
    assert len(slack) == 1 and "hana_pike" in slack[0]  # a group DM to the two admins

    # The same drift an hour later: not reported again.
    writes = w.writes()
    again = roles_drift_audit(now=NOW + timedelta(hours=2))
    assert again["status"] == "already-reported"
    assert w.writes() == writes and len(discord_reports(w)) == 1
    assert len([t for t in slack_box.texts() if "Role drift" in t]) == 1

    # Nothing was repaired.
    holders = {u.username for u in w.platforms.space("discord").roles.list_holders(Role.admin())}
    assert "hana_pike" in holders

    # Undone by hand: "resolved" once, then nothing.
    by_hand(w, "discord", "hana_pike", Role.admin(), grant=False)
    resolved = roles_drift_audit(now=NOW + timedelta(hours=3))
    assert resolved["status"] == "resolved"
    assert any("Role drift resolved" in t for t in discord_reports(w))
    assert roles_drift_audit(now=NOW + timedelta(hours=4))["status"] == "clean"
    with w.ledger.read() as session:
        statuses = [r.status for r in session.scalars(select(RoleDriftReport).order_by(RoleDriftReport.id))]
        actions = [a for a in session.scalars(select(AuditEntry.action).where(AuditEntry.action.like("roles.drift-%")))]
    assert statuses == ["drift", "resolved"]
    assert actions == ["roles.drift-drift", "roles.drift-resolved"]


def test_drift_is_reported_while_another_platform_does_not_answer(roles_world):
    """R-ADMIN-3: the Forum answers 503 to every read; Discord's drift is still reported within
    the hour (the Forum's verdict unknown), and not called resolved while the Forum is unread."""
    w = roles_world
    by_hand(w, "discord", "hana_pike", Role.admin())
    faults = f"{w.discourse_url}/_sandbox/faults"
    httpx.post(faults, json={"error_rate": 1.0, "error_status": 503, "methods": ["GET"]}, timeout=10)
    try:
        found = roles_drift_audit(now=NOW)
        assert found["status"] == "drift" and found["unreached"] == ["discourse"]
        assert "discord: hana_pike holds admin without a ledger decision" in found["findings"]["unrecorded"]
        assert len(discord_reports(w)) == 1
        by_hand(w, "discord", "hana_pike", Role.admin(), grant=False)
        assert roles_drift_audit(now=NOW + timedelta(hours=1))["status"] == "already-reported"
    finally:
        httpx.post(faults, json={}, timeout=10).raise_for_status()
    assert roles_drift_audit(now=NOW + timedelta(hours=2))["status"] == "resolved"


def test_a_changed_drift_is_reported_again_with_the_repair_plan(roles_world, slack_box):
    w = roles_world
    by_hand(w, "discourse", "felix_oakes", Role.moderator())
    first = roles_drift_audit(now=NOW)
    assert first["status"] == "drift"
    # A ledger admin removed by hand: the repair plan grants it back; R-ADMIN-2 is broken now.
    by_hand(w, "discord", "dario_fenwick", Role.admin(), grant=False)
    second = roles_drift_audit(now=NOW + timedelta(hours=1))
    assert second["status"] == "drift" and second["fingerprint"] != first["fingerprint"]
    assert any("dario_fenwick should hold admin but does not" in f for f in second["findings"]["changes"])
    assert any(f.startswith("R-ADMIN-2 discord") for f in second["findings"]["invariants"])
    reports = discord_reports(w)
    assert len(reports) == 2
    assert "+ grant admin to dario_fenwick" in reports[1]
    # Still nothing repaired.
    holders = {u.username for u in w.platforms.space("discord").roles.list_holders(Role.admin())}
    assert holders == {"cleo_marsh"}


def test_find_drift_is_pure_and_its_fingerprint_stable():
    charter = default_charter()
    observed = frozenset(
        {
            Assignment(platform="discord", role="admin", person="ash"),
            Assignment(platform="discord", role="admin", person="birch"),
            Assignment(platform="discord", role="admin", person="discord:stranger"),
        }
    )
    shown = RolesPlan(
        plan=plan_roles(observed, observed, charter=charter),
        observed=observed,
        desired=observed,
        people={"ash": 1, "birch": 2},
        rows=(("ash", "discord", "admin", True), ("birch", "discord", "admin", True)),
    )
    findings = find_drift(shown, charter=charter)
    assert findings == {
        "changes": [],
        "invariants": [],
        "unrecorded": ["discord: discord:stranger holds admin without a ledger decision"],
    }
    assert fingerprint(findings) == fingerprint(find_drift(shown, charter=charter))
