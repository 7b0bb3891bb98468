"""`charterflow roles plan|apply` against the Forum and Discord sandboxes on 127.0.0.1."""

from __future__ import annotations

from typer.testing import CliRunner

from connectors.base import Role
from flows.kit import context
from flows.roles.plan import build_plan
from tests.support.roles import audit_entries, holders, want

runner = CliRunner()


def total(writes: dict[str, int]) -> int:
    return sum(writes.values())


def _three_changes(w) -> None:
    want(w, "felix_oakes", "discourse", "moderator")
    want(w, "gale_morrow", "discord", "admin")
    want(w, "dario_fenwick", "discord", "admin", desired=False)


def test_a_ledger_matching_the_platforms_plans_nothing(roles_world):
    shown = build_plan(context(None))
    assert shown.plan.changes == ()
    assert shown.allowed
    # the Forum's ``system`` account is an admin the ledger does not know: kept, unmanaged
    assert any(a.person == "discourse:system" and a.role == "admin" for a in shown.observed)


def test_plan_and_dry_run_send_nothing(roles_world, cli):
    _three_changes(roles_world)
    before = roles_world.writes()
    for args in (["roles", "plan"], ["roles", "apply"]):
        result = runner.invoke(cli, args)
        assert result.exit_code == 0, result.output
        out = result.output
        assert "discourse: 1 change(s)" in out and "discord: 2 change(s)" in out
        assert "+ grant moderator to felix_oakes" in out
        assert "+ grant admin to gale_morrow" in out
        assert "- revoke admin from dario_fenwick" in out
        assert "verdict: allowed" in out
        assert "nothing sent" in out
    assert roles_world.writes() == before


def test_apply_makes_exactly_the_plan_and_a_second_apply_nothing(roles_world, cli):
    _three_changes(roles_world)
    before = total(roles_world.writes())
    result = runner.invoke(cli, ["roles", "apply", "--confirm"])
    assert result.exit_code == 0, result.output
    applied = [line for line in result.output.splitlines() if line.startswith("applied ")]
    assert len(applied) == 3
    # one role write per change; besides them only the new moderator's guide (a Discord DM:
    # open the DM channel, send the message)
    writes = roles_world.writes()
    roles_only = {k: v for k, v in writes.items() if "/roles/" in k or "moderation" in k}
    assert total(roles_only) == 3
    assert total(writes) - before == 5
    guide = [m for m in roles_world.discord_state()["messages"] if "Moderating the Forum" in (m["content"] or "")]
    assert len(guide) == 1
    assert "felix_oakes" in holders(roles_world, "discourse", Role.moderator())
    assert holders(roles_world, "discord", Role.admin()) == {"cleo_marsh", "gale_morrow"}
    # recorded: the run, and each observed change on the person's rows
    (run,) = audit_entries(roles_world, "roles.apply")
    assert len(run["changes"]) == 3 and run["allowed"] is True
    observed = audit_entries(roles_world, "platform-role.observed")
    assert {(e["platform"], e["role"], e["observed"]) for e in observed} >= {
        ("discourse", "moderator", True),
        ("discord", "admin", True),
        ("discord", "admin", False),
    }

    after = roles_world.writes()
    again = runner.invoke(cli, ["roles", "apply", "--confirm"])
    assert again.exit_code == 0, again.output
    assert "nothing to apply" in again.output
    assert roles_world.writes() == after
    assert len(audit_entries(roles_world, "roles.apply")) == 1


def test_removing_the_last_but_one_admin_is_refused(roles_world, cli):
    want(roles_world, "cleo_marsh", "discord", "admin", desired=False)
    before = roles_world.writes()
    result = runner.invoke(cli, ["roles", "apply", "--confirm"])
    assert result.exit_code == 1, result.output
    assert "verdict: REFUSED (R-ADMIN-2)" in result.output
    assert "resulting admins on discord: dario_fenwick" in result.output
    assert roles_world.writes() == before
    assert holders(roles_world, "discord", Role.admin()) == {"cleo_marsh", "dario_fenwick"}
    (refused,) = audit_entries(roles_world, "roles.refused")
    assert refused["ruling"] == "R-ADMIN-2"


def test_one_person_becoming_admin_everywhere_is_refused(roles_world, cli):
    want(roles_world, "avery_quill", "discord", "admin")
    before = roles_world.writes()
    result = runner.invoke(cli, ["roles", "plan"])
    assert result.exit_code == 1, result.output
    assert "verdict: REFUSED (R-ADMIN-1)" in result.output
    assert "R-ADMIN-1 avery_quill" in result.output
    assert "resulting admins on discord: avery_quill, cleo_marsh, dario_fenwick" in result.output
    assert roles_world.writes() == before


def test_an_override_is_applied_and_its_reason_recorded(roles_world, cli):
    want(roles_world, "cleo_marsh", "discord", "admin", desired=False)
    reason = "cleo steps down today; a second admin is elected next week"
    result = runner.invoke(cli, ["roles", "apply", "--confirm", "--override-reason", reason])
    assert result.exit_code == 0, result.output
    assert f"override recorded: {reason}" in result.output
    assert "R-ADMIN-2 discord" in result.output  # shown as a warning
    assert holders(roles_world, "discord", Role.admin()) == {"dario_fenwick"}
    (run,) = audit_entries(roles_world, "roles.apply")
    assert run["override_reason"] == reason
    assert run["warnings"] and run["warnings"][0].startswith("R-ADMIN-2")


def test_too_many_removals_in_one_run_are_refused(roles_world, cli):
    for handle in ("avery_quill", "bram_tolliver", "cleo_marsh", "dario_fenwick", "felix_oakes", "gale_morrow"):
        want(roles_world, handle, "discord", "group:wg-member", desired=False)
    result = runner.invoke(cli, ["roles", "plan"])
    assert result.exit_code == 1
    assert "the plan revokes 6 roles; at most 5" in result.output


def test_an_empty_override_reason_is_an_error(roles_world, cli):
    result = runner.invoke(cli, ["roles", "plan", "--override-reason", " "])
    assert result.exit_code == 2
    assert "error: --override-reason needs a reason" in result.output
