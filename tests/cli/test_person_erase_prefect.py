"""`charterflow person erase` and Prefect (R-PRIVACY-3): an unreachable Prefect erases nothing
(the strings to redact there would be lost); `--skip-prefect` erases the ledger only and says so.
The redaction itself is tested end to end in tests/flows/membership/test_privacy.py."""

from __future__ import annotations

import pytest
from prefect.settings import PREFECT_API_URL, temporary_settings
from typer.testing import CliRunner

from charterflow import ledger_cli
from charterflow.settings import get_settings
from flows.privacy import Redactor
from ledger import Ledger, repo
from ledger.migrate import upgrade
from ledger.models import Person
from tests.support.cli import cli_with
from tests.support.net import free_port


@pytest.fixture
def ledger_with_person(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    ledger = Ledger(url)
    upgrade(ledger)
    with ledger.transaction() as session:
        pid = repo.create_person(session, handle="tamsin_reed", actor="operator").id
    monkeypatch.setenv("CHARTERFLOW_DATABASE_URL", url)
    monkeypatch.setenv("CHARTERFLOW_HOME", str(tmp_path / "home"))
    get_settings.cache_clear()
    yield ledger, pid
    get_settings.cache_clear()
    ledger.dispose()


def _erase(*args: str):
    return CliRunner().invoke(cli_with(ledger_cli.app), ["person", "erase", *args])


def test_unreachable_prefect_erases_nothing(ledger_with_person):
    ledger, pid = ledger_with_person
    api = f"http://127.0.0.1:{free_port()}/api"
    with temporary_settings({PREFECT_API_URL: api}):
        result = _erase(str(pid), "--reason", "asked by e-mail")
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: Prefect at {api} could not be searched")
    assert "nothing erased" in result.stderr and "--skip-prefect" in result.stderr
    with ledger.read() as session:
        person = session.get(Person, pid)
        assert person.handle == "tamsin_reed" and person.erased_at is None


def test_skip_prefect_erases_the_ledger_only(ledger_with_person):
    ledger, pid = ledger_with_person
    with temporary_settings({PREFECT_API_URL: f"http://127.0.0.1:{free_port()}/api"}):
        result = _erase(str(pid), "--reason", "asked by e-mail", "--skip-prefect")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"person:{pid} erased (erasure 1); decisions kept",
        "Prefect: not searched (--skip-prefect)",
    ]
    with ledger.read() as session:
        assert session.get(Person, pid).handle == f"erased-{pid}"


@pytest.mark.parametrize(
    "text,expected",
    [
        ("intake-tamsin_reed", "intake-erased-7"),  # inside a run name
        ("Tamsin_Reed onboarded", "erased-7 onboarded"),  # handles compare case-insensitively
        ("tamsin_reeds", "tamsin_reeds"),  # another word: left alone
        ('{"why": "I said \\"hi\\" there"}', '{"why": "erased-7"}'),  # an answer as JSON holds it
    ],
    ids=["run-name", "case", "other-word", "json-escaped"],
)
def test_redactor_replaces_whole_values(text, expected):
    redactor = Redactor(["tamsin_reed", 'I said "hi" there'], replacement="erased-7")
    assert redactor.text(text) == expected
    assert redactor.data({"k": [text]}) == {"k": [expected]}
