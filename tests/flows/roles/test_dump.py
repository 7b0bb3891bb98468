"""`charterflow roles dump` and `roles import`: bootstrap roles as code from today's platforms."""

from __future__ import annotations

import tomllib

import pytest
from typer.testing import CliRunner

from connectors.base import Role
from flows.kit import context
from flows.roles.dump import import_roles, parse_roles_file
from flows.roles.plan import build_plan
from ledger import repo
from ledger.errors import ConfigError
from tests.support.membership import NOW

runner = CliRunner()


def test_dump_writes_the_observed_roles_in_the_roster_format(world, cli, tmp_path):
    # The seeded world: the ledger knows the members and their WG groups, not who is admin;
    # on Discord an account the ledger does not know moderates by hand.
    discord = world.platforms.space("discord")
    discord.roles.grant(discord.directory.find_user("ivo_stone"), Role.moderator(), reason="done by hand")
    before = world.writes()
    out = tmp_path / "roles.toml"
    result = runner.invoke(cli, ["roles", "dump", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert world.writes() == before  # reads only
    data = tomllib.loads(out.read_text())
    people = {p["handle"]: p for p in data["person"]}
    assert data["roster"]["format"] == 1
    assert "system" not in people  # the Forum's own account is left out
    assert people["avery_quill"]["platform_roles"] == {
        "discord": ["group:wg-member"],
        "discourse": ["admin", "group:working-group"],
    }
    assert people["cleo_marsh"]["platform_roles"]["discord"] == ["admin", "group:wg-member"]
    assert people["ivo_stone"]["discord"]["username"] == "ivo_stone"
    assert people["ivo_stone"]["platform_roles"] == {"discord": ["moderator"]}

    # Imported: the ledger now wants exactly what the platforms show; the plan is empty.
    imported = runner.invoke(cli, ["roles", "import", str(out)])
    assert imported.exit_code == 0, imported.output
    assert "5 role(s) recorded as desired" in imported.output  # 4 admins + ivo's moderator
    shown = build_plan(context(NOW))
    assert shown.plan.changes == () and shown.allowed
    with world.ledger.read() as session:
        ivo = repo.get_person(session, "ivo_stone")
        assert [(r.platform.value, r.role, r.desired) for r in repo.platform_roles_of(session, ivo)] == [
            ("discord", "moderator", True)
        ]
    again = runner.invoke(cli, ["roles", "import", str(out)])
    assert "0 role(s) recorded" in again.output


def test_an_edited_dump_with_a_bad_role_is_refused_naming_the_field(world):
    text = """[roster]
format = 1

[[person]]
handle = "avery_quill"
platform_roles = { discord = ["overlord"] }
"""
    with pytest.raises(ConfigError, match=r"person\[0\]\.platform_roles\.discord: unknown role 'overlord'"):
        import_roles(context(NOW), text, source="roles.toml", actor="operator")
    with pytest.raises(ConfigError, match="write each person's platform_roles on one line"):
        parse_roles_file(
            text.replace('platform_roles = { discord = ["overlord"] }', '[person.platform_roles]\ndiscord = ["admin"]'),
            source="roles.toml",
        )
