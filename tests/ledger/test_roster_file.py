"""The roster file's schema (pydantic, as the charter file's): every mistake is one
``ConfigError`` naming the file, the person's line and the field."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from ledger.errors import ConfigError
from ledger.models import Platform, WgRole
from ledger.roster import load_roster, parse_roster
from rules import default_charter

CHARTER = default_charter()
HEAD = "[roster]\nformat = 1\n\n"
ADA = '[[person]]\nhandle = "ada"\nterms = [{ start = 2025-02-01 }]\n'


def _parse(text: str):
    return parse_roster(HEAD + text, source="roster.toml", charter=CHARTER)


@pytest.mark.parametrize(
    "body, message",
    [
        (
            '[[person]]\nhandle = "avery_quill"\ndiscord = {}\n',
            "roster.toml: person 'avery_quill' (line 4): discord: expected { id = …, username = … }",
        ),
        (
            '[[person]]\nhandle = "avery_quill"\nhome = "discord"\n',
            "roster.toml: person 'avery_quill' (line 4): home: unknown field",
        ),
        ('[[person]]\nname = "Avery Quill"\n', "roster.toml: person[0] (line 4): handle: required field is missing"),
        (
            '[[person]]\nhandle = "erased-7"\n',
            "roster.toml: person 'erased-7' (line 4): handle: 'erased-' names are reserved",
        ),
        (
            ADA + '\n[[person]]\nhandle = "bram_tolliver"\nemail = "bram.example.org"\n',
            "roster.toml: person 'bram_tolliver' (line 8): email: 'bram.example.org' is not an e-mail address",
        ),
        (
            '[[person]]\nhandle = "cleo_marsh"\nterms = [{ start = 2025-02-01, end = 2025-01-01 }]\n',
            "roster.toml: person 'cleo_marsh' (line 4): terms[0]: ends before it starts",
        ),
        (
            '[[person]]\nhandle = "cleo_marsh"\nterms = [{ start = 2025-02-01 }, { start = 2025-06-01 }]\n',
            "roster.toml: person 'cleo_marsh' (line 4): terms[1]: overlaps the term before it",
        ),
        (
            '[[person]]\nhandle = "dario_fenwick"\nmembership = "lapsed"\n',
            "roster.toml: person 'dario_fenwick' (line 4): membership 'lapsed' needs at least one term",
        ),
        (
            '[[person]]\nhandle = "dario_fenwick"\nterms = [{ start = 2025-02-01 }]\nended = 2025-03-01\n',
            "roster.toml: person 'dario_fenwick' (line 4): ended: only a lapsed, left or removed membership ends",
        ),
        (
            '[[person]]\nhandle = "wren_halloway"\nmembership = "gone"\n',
            "roster.toml: person 'wren_halloway' (line 4): membership: Input should be",
        ),
        (
            '[[person]]\nhandle = "wren_halloway"\nterms = [{ start = "soon" }]\n',
            "roster.toml: person 'wren_halloway' (line 4): terms.0.start: expected a date like 2025-01-15",
        ),
        ("[teams]\nx = 1\n", "roster.toml: teams: unknown field"),
        (
            '[lists]\nboard_members = ["hollis"]\nboard_members_file = "board.toml"\n',
            "roster.toml: lists: give board_members or board_members_file, not both",
        ),
        ('[lists]\nboard = ["hollis"]\n', "roster.toml: lists.board: unknown field"),
        ('[roles]\nwizard = "ada"\n', "roster.toml: roles: wizard: unknown role (use "),
        ('[roles]\nchair = { handle = "ada", by = "operator" }\n', "roster.toml: roles.chair.by: unknown field"),
        ("[roster]\nformat = 2\n", "roster.toml: not valid TOML"),  # a second [roster] table
    ],
)
def test_a_mistake_names_the_file_the_line_and_the_field(body: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _parse(body)
    assert str(caught.value).startswith(message), str(caught.value)
    assert "\n" not in str(caught.value)


def test_an_unsupported_format_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"^roster.toml: roster.format: Input should be 1"):
        parse_roster("[roster]\nformat = 2\n", source="roster.toml", charter=CHARTER)


def test_several_mistakes_in_one_person_are_listed_together() -> None:
    with pytest.raises(ConfigError) as caught:
        _parse('[[person]]\nhandle = "ada"\nname = ""\nhome_platform = "myspace"\nslack = { id = "" }\n')
    assert str(caught.value) == (
        "roster.toml: person 'ada' (line 4): name: expected a non-empty text of at most 200 characters; "
        "home_platform: 'myspace' is not one of the charter's platforms (discourse, discord); "
        "slack.id: expected a non-empty text of at most 64 characters"
    )


def test_a_valid_file_gives_the_same_roster_as_before() -> None:
    roster = _parse(
        ADA + 'name = " Ada Quillfeather "\ndiscord = { id = 400000000000000002, username = "ada.q" }\n'
        'email = "ada@example.org"\nmembership = "left"\n\n'
        '[roles]\nchair = "ada"\nco_chair = ""\nsc_liaison = { handle = "ada", since = 2025-03-01 }\n'
    )
    [ada] = roster.people
    assert (ada.handle, ada.name, ada.membership, ada.line) == ("ada", "Ada Quillfeather", "left", 4)
    assert [(a.platform, a.external_id, a.username) for a in ada.accounts] == [
        (Platform.DISCORD, "400000000000000002", "ada.q"),
        (Platform.EMAIL, None, "ada@example.org"),
    ]
    assert ada.terms[0].end == datetime(2026, 2, 1, tzinfo=UTC)  # the charter's 365 days
    assert ada.ended == ada.terms[0].end
    assert roster.roles[WgRole.CHAIR].handle == "ada" and roster.roles[WgRole.CO_CHAIR].handle is None
    assert roster.roles[WgRole.SC_LIAISON].since == datetime(2025, 3, 1, tzinfo=UTC)
    assert roster.roles[WgRole.CHAIR].assigned_by == "roster-import"


def test_a_list_file_member_is_checked_like_an_inline_one(tmp_path: Path) -> None:
    (tmp_path / "board.toml").write_text('members = ["hollis", { handle = "" }]\n')
    (tmp_path / "roster.toml").write_text(HEAD + '[lists]\nboard_members_file = "board.toml"\n')
    with pytest.raises(ConfigError, match=r"board.toml: members: 1: expected a non-empty text"):
        load_roster(tmp_path / "roster.toml", charter=CHARTER)
