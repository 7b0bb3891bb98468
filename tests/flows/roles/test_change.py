"""The `roles-change` flow against the Forum and Discord sandboxes on 127.0.0.1."""

from __future__ import annotations

from datetime import timedelta

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

from connectors.base import Role
from flows.kit import context
from flows.reconcile import reconcile_person
from flows.roles.change import roles_change
from flows.roles.plan import build_plan
from flows.roles.training import roles_training_reminders
from ledger import repo
from ledger.platforms import record_state
from tests.support.membership import NOW
from tests.support.roles import audit_entries, holders, want


def change(words: str, reason: str, **options):
    """``roles_change`` of ``words`` (``<action> <role> <platform> <person>``) for ``reason``, at ``NOW``."""
    action, role, platform, person = words.split()
    return roles_change(action=action, role=role, platform=platform, person=person, reason=reason, now=NOW, **options)


def role_writes(w) -> dict[str, int]:
    """Write requests that change roles (not messages)."""
    return {k: v for k, v in w.writes().items() if any(s in k for s in ("moderation", "admin", "/roles", "group"))}


def wg_texts(w) -> list[str]:
    forum = [p["raw"] for p in w.discourse_state()["posts"]]
    discord = [m["content"] or "" for m in w.discord_state()["messages"]]
    return forum + discord


def artifacts(state) -> list:
    with get_client(sync_client=True) as client:
        return client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id]))
        )


def test_a_moderator_grant_is_recorded_applied_and_announced(roles_world):
    result = change("grant moderator discourse felix_oakes", "covers the European evenings")
    assert result["status"] == "applied", result
    assert "felix_oakes" in holders(roles_world, "discourse", Role.moderator())
    decision = result["decision"]
    assert decision.startswith("roles-change:")
    assert result["key"] == f"grant:discourse:felix_oakes:moderator:{decision}"
    with roles_world.ledger.read() as session:
        rows = repo.platform_roles_of(session, repo.get_person(session, "felix_oakes"))
        row = next(r for r in rows if r.role == "moderator")
        assert (row.desired, row.observed, row.decision_ref) == (True, True, decision)
    (entry,) = audit_entries(roles_world, "roles.change")
    assert entry["reason"] == "covers the European evenings" and entry["decision"] == decision
    announced = [t for t in wg_texts(roles_world) if "felix_oakes now holds **moderator**" in t]
    assert len(announced) == 2  # the WG's space on the Forum and on Discord

    writes = roles_world.writes()
    again = change("grant moderator discourse felix_oakes", "covers the European evenings")
    assert again["status"] == "unchanged"
    assert roles_world.writes() == writes


def test_a_discord_admin_grant_is_applied(roles_world):
    before = role_writes(roles_world)
    result = change("grant admin discord gale_morrow", "third admin for the holidays")
    assert result["status"] == "applied", result
    assert holders(roles_world, "discord", Role.admin()) == {"cleo_marsh", "dario_fenwick", "gale_morrow"}
    assert sum(role_writes(roles_world).values()) == sum(before.values()) + 1


@pytest.mark.parametrize(
    "kwargs, part",
    [
        ({"person": "nobody_here"}, "person"),
        ({"platform": "myspace"}, "platform"),
        ({"role": "overlord"}, "role"),
        ({"role": "group:secret-club"}, "role"),
        ({"action": "promote"}, "action"),
        ({"reason": " "}, "reason"),
    ],
)
def test_unknown_parts_are_refused_naming_which(roles_world, kwargs, part):
    params = {
        "action": "grant",
        "role": "moderator",
        "platform": "discord",
        "person": "felix_oakes",
        "reason": "because",
        **kwargs,
    }
    before = roles_world.writes()
    result = roles_change(**params, now=NOW)
    assert result["status"] == "refused" and result["part"] == part, result
    assert roles_world.writes() == before


def test_a_person_without_the_platform_identity_is_refused(roles_world):
    with roles_world.ledger.transaction() as session:
        person = repo.create_person(session, handle="zora_quint", actor="operator", at=NOW)
        repo.add_identity(
            session, person, platform="discourse", actor="operator", external_id=None, username="zora_quint", at=NOW
        )
    result = change("grant moderator discord zora_quint", "because")
    assert result["status"] == "refused" and result["part"] == "identity"
    assert "zora_quint has no discord identity" in result["reason"]


def test_a_refused_change_names_the_ruling_and_the_resulting_state(roles_world):
    before = role_writes(roles_world)
    state = change("revoke admin discord cleo_marsh", "steps down", return_state=True)
    result = state.result()
    assert result["status"] == "refused" and result["ruling"] == "R-ADMIN-2"
    assert result["resulting_state"]["discord"]["admin"] == ["dario_fenwick"]
    assert role_writes(roles_world) == before
    assert holders(roles_world, "discord", Role.admin()) == {"cleo_marsh", "dario_fenwick"}
    (refused,) = audit_entries(roles_world, "roles.refused")
    assert refused["admins_after"]["discord"] == ["dario_fenwick"]
    (artifact,) = artifacts(state)
    assert "R-ADMIN-2" in artifact.data and "dario_fenwick" in artifact.data
    assert any("Refused by **R-ADMIN-2**" in t for t in wg_texts(roles_world))
    with roles_world.ledger.read() as session:  # nothing desired was recorded
        rows = repo.platform_roles_of(session, repo.get_person(session, "cleo_marsh"))
        assert next(r for r in rows if r.platform.value == "discord" and r.role == "admin").desired


def test_admin_everywhere_is_refused_and_an_override_recorded(roles_world):
    refused = change("grant admin discord avery_quill", "cover")
    assert refused["status"] == "refused" and refused["ruling"] == "R-ADMIN-1"
    reason = "one week only while the Discord admins travel"
    result = change("grant admin discord avery_quill", "cover", override_reason=reason)
    assert result["status"] == "applied", result
    assert "avery_quill" in holders(roles_world, "discord", Role.admin())
    (entry,) = audit_entries(roles_world, "roles.change")
    assert entry["override_reason"] == reason
    assert any(f"Guardrails overridden by the operator: {reason}" in t for t in wg_texts(roles_world))


def test_a_guide_that_could_not_be_sent_is_sent_again_by_the_daily_pass(roles_world):
    """R-TRAIN: the new moderator's Discord DMs were closed when the role was granted; the
    daily pass sends the guide once they can receive it, and only once."""
    w = roles_world
    member = next(m for m in w.discord_sb.members.values() if m.get("username") == "gale_morrow")

    def guides() -> list[str]:
        texts = [m["content"] or "" for m in w.discord_state()["messages"]]
        return [t for t in texts if "Hello gale_morrow, you are now a moderator" in t]

    member["accepts_dms"] = False
    assert change("grant moderator discord gale_morrow", "needs cover")["status"] == "applied"
    assert guides() == []
    member["accepts_dms"] = True
    roles_training_reminders(now=NOW + timedelta(days=1))
    assert len(guides()) == 1
    roles_training_reminders(now=NOW + timedelta(days=2))
    assert len(guides()) == 1


def test_nothing_is_granted_on_a_retiring_platform(roles_world):
    """R-PLATFORM: Discord is retiring (its roles are being revoked); a wish recorded for it
    afterwards (a new member's WG role, a moderator) grants nothing there, and a role held
    there stays for the retirement to revoke."""
    w = roles_world
    with w.ledger.transaction() as session:
        record_state(
            session,
            platform="discord",
            state="retiring",
            actor="test",
            decided_by="board:operator",
            charter_platforms=w.platforms.charter.platforms,
            at=NOW,
        )
    want(w, "felix_oakes", "discord", "moderator")
    shown = build_plan(context(NOW))
    assert shown.plan.changes == () and any("felix_oakes: moderator on discord" in s for s in shown.skipped)
    result = reconcile_person(context(NOW), w.people["felix_oakes"], decision_ref="test", actor="test")
    assert result["applied"] == [] and "felix_oakes" not in holders(w, "discord", Role.moderator())
    held = reconcile_person(context(NOW), w.people["cleo_marsh"], decision_ref="test", actor="test")
    assert held["applied"] == [] and "cleo_marsh" in holders(w, "discord", Role.admin())
