"""The roles file's ``platform_roles`` (pydantic, as the charter and roster files): pure parsing,
each mistake one ``ConfigError`` naming the file, the person and the field."""

from __future__ import annotations

import pytest

from flows.roles.dump import parse_roles_file
from ledger.errors import ConfigError

HEAD = '[roster]\nformat = 1\n\n[[person]]\nhandle = "avery_quill"\n'


def test_roles_by_handle_and_the_roster_without_them():
    text = (
        HEAD + 'platform_roles = { discord = ["admin"], discourse = ["moderator", "group:wg"] }\n\n'
        '[[person]]\nhandle = "bram_tolliver"\n'
    )
    rest, roles = parse_roles_file(text, source="roles.toml")
    assert roles == {"avery_quill": {"discord": ["admin"], "discourse": ["moderator", "group:wg"]}}
    assert "platform_roles" not in rest and 'handle = "bram_tolliver"' in rest


@pytest.mark.parametrize(
    "line, message",
    [
        (
            'platform_roles = { discord = ["overlord"] }',
            "roles.toml: person[0].platform_roles.discord: unknown role 'overlord' (admin, moderator or group:<name>)",
        ),
        ('platform_roles = { matrix = ["admin"] }', "roles.toml: person[0].platform_roles.matrix: unknown field"),
        (
            'platform_roles = { discord = [" "] }',
            "roles.toml: person[0].platform_roles.discord: expected a list of roles",
        ),
        (
            'platform_roles = { discord = "admin" }',
            "roles.toml: person[0].platform_roles.discord: Input should be a valid list",
        ),
        ('platform_roles = "admin"', "roles.toml: person[0].platform_roles: Input should be"),
    ],
)
def test_a_bad_entry_names_the_person_and_the_field(line, message):
    with pytest.raises(ConfigError) as caught:
        parse_roles_file(HEAD + line + "\n", source="roles.toml")
    assert str(caught.value).startswith(message), str(caught.value)
