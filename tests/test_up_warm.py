"""What a warm `charterflow up` skips: the ledger's migration when the SQLite ledger is already at
the code's head, and the Prefect server's own migrations when its database is at the schema the
same Prefect version left at its last start. Real databases: the ledger migrated by alembic,
Prefect's migrated by `prefect server database upgrade`. (The whole stack: tests/test_up.py.)"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
from pydantic import SecretStr

from charterflow.settings import Settings
from charterflow.up import (
    MIGRATE_ON_START,
    PREFECT_SCHEMA_STAMP,
    ROUTES_SOURCES,
    ROUTES_VARIABLE,
    keep_routes,
    kept_routes,
    ledger_at_head,
    migration_head,
    prefect_schema_current,
    prefect_server,
    remember_prefect_schema,
)
from flows.forking import forked
from flows.inbox_routing import full_routes_snapshot
from ledger.db import Ledger
from ledger.migrate import MIGRATIONS, downgrade, head_revision, upgrade


def _script(folder: Path, revision: str, down: str) -> None:
    (folder / f"{revision}_step.py").write_text(
        f'"""A step."""\nrevision = "{revision}"\ndown_revision{down}\n\n\ndef upgrade():\n    pass\n'
    )


def test_the_head_read_as_text_is_alembics_own():
    assert migration_head(MIGRATIONS / "versions") == head_revision()


def test_two_heads_or_a_merge_over_several_lines_are_left_to_alembic(tmp_path):
    _script(tmp_path, "0001", " = None")
    _script(tmp_path, "0002", ': str | None = "0001"')
    assert migration_head(tmp_path) == "0002"
    _script(tmp_path, "0003", " = '0001'")
    assert migration_head(tmp_path) is None  # 0002 and 0003
    _script(tmp_path, "0004", ' = ("0002", "0003")')
    assert migration_head(tmp_path) == "0004"
    _script(tmp_path, "0005", ' = (\n    "0004",\n)')
    assert migration_head(tmp_path) is None


def test_the_ledger_is_at_head_only_once_migrated_to_it(tmp_path):
    settings = Settings(home=tmp_path)
    assert not ledger_at_head(settings)  # no file yet
    ledger = Ledger(settings.ledger_url())
    try:
        upgrade(ledger)
        assert ledger_at_head(settings)
        downgrade(ledger, "0019")
        assert not ledger_at_head(settings)
        upgrade(ledger)
        assert ledger_at_head(settings)
    finally:
        ledger.dispose()
    # Another database: the migration itself decides.
    other = Settings(home=tmp_path, database_url=SecretStr(f"sqlite:///{tmp_path / 'ledger.db'}"))
    assert not ledger_at_head(other)


@pytest.fixture(scope="module")
def prefect_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Prefect database migrated by Prefect itself, in its default place."""
    home = tmp_path_factory.mktemp("prefect-home")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["PREFECT_HOME"] = str(home)
    done = subprocess.run(
        [sys.executable, "-m", "prefect", "server", "database", "upgrade", "-y"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (home / "prefect.db").is_file()
    return home


def test_prefects_migrations_are_skipped_only_at_the_schema_its_last_start_left(tmp_path, prefect_home):
    env = {"PREFECT_HOME": str(prefect_home)}
    assert not prefect_schema_current(tmp_path, env)  # never started here
    remember_prefect_schema(tmp_path, env)
    assert prefect_schema_current(tmp_path, env)
    stamp = (tmp_path / PREFECT_SCHEMA_STAMP).read_text()

    # The operator chose a database, or a profile may have: Prefect migrates as it always does.
    assert not prefect_schema_current(tmp_path, {**env, "PREFECT_API_DATABASE_CONNECTION_URL": "x"})
    # The database is not the one of the last start (another revision).
    with sqlite3.connect(prefect_home / "prefect.db") as db:
        (revision,) = db.execute("SELECT version_num FROM alembic_version").fetchone()
        db.execute("UPDATE alembic_version SET version_num = 'older'")
    try:
        assert not prefect_schema_current(tmp_path, env)
    finally:
        with sqlite3.connect(prefect_home / "prefect.db") as db:
            db.execute("UPDATE alembic_version SET version_num = ?", (revision,))
    assert prefect_schema_current(tmp_path, env)
    # Another Prefect version wrote the stamp.
    (tmp_path / PREFECT_SCHEMA_STAMP).write_text(stamp.replace('"prefect": "', '"prefect": "0.'))
    assert not prefect_schema_current(tmp_path, env)
    (tmp_path / PREFECT_SCHEMA_STAMP).write_text("{not json")
    assert not prefect_schema_current(tmp_path, env)


def _heal(exited_at: datetime) -> None:
    """`up`'s healing after a restart; not reached here."""


def test_the_server_is_told_to_skip_its_migrations_on_a_warm_start_only(tmp_path, prefect_home, monkeypatch):
    for key in [k for k in os.environ if k.startswith("PREFECT_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("PREFECT_HOME", str(prefect_home))
    settings = Settings(home=tmp_path)
    (tmp_path / PREFECT_SCHEMA_STAMP).unlink(missing_ok=True)
    cold = prefect_server(settings, home=tmp_path, heal=_heal)[1]
    assert cold is not None and MIGRATE_ON_START not in cold.env
    remember_prefect_schema(tmp_path, cold.env)
    warm = prefect_server(settings, home=tmp_path, heal=_heal)[1]
    assert warm is not None and warm.env[MIGRATE_ON_START] == "false"
    # An operator's own value wins.
    monkeypatch.setenv(MIGRATE_ON_START, "true")
    assert prefect_server(settings, home=tmp_path, heal=_heal)[1].env[MIGRATE_ON_START] == "true"


def test_the_gateways_routes_are_kept_until_a_module_they_came_from_changes(tmp_path):
    assert kept_routes(tmp_path) is None  # none kept yet
    forked(keep_routes, tmp_path).result(timeout=300)
    kept = kept_routes(tmp_path)
    assert kept is not None
    assert json.loads(kept.read_text()) == json.loads(json.dumps(forked(full_routes_snapshot).result(timeout=300)))
    sources = json.loads((tmp_path / ROUTES_SOURCES).read_text())
    inbox_file = next(path for path in sources["files"] if path.endswith(os.path.join("flows", "inbox.py")))

    # The gateway takes them without importing flows.inbox (nor Prefect), and routes as they say.
    probe = (
        "import json, sys; from gateway.app import load_routes_apart; load_routes_apart(); "
        "from flows import inbox_routing as r; "
        "print(json.dumps({'imported': 'flows.inbox' in sys.modules, 'snapshot': r.routes_snapshot()}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        env={**os.environ, ROUTES_VARIABLE: str(kept)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    served = json.loads(done.stdout.splitlines()[-1])
    assert served["imported"] is False
    assert served["snapshot"]["task_key"] == json.loads(kept.read_text())["task_key"]

    # flows/inbox.py changed since (another size): they are taken anew.
    sources["files"][inbox_file][1] += 1
    (tmp_path / ROUTES_SOURCES).write_text(json.dumps(sources))
    assert kept_routes(tmp_path) is None


def test_a_start_without_migrations_leaves_the_stamp_as_it_was(tmp_path, prefect_home):
    env = {"PREFECT_HOME": str(prefect_home)}
    remember_prefect_schema(tmp_path, {**env, MIGRATE_ON_START: "false"})
    assert not (tmp_path / PREFECT_SCHEMA_STAMP).exists()  # nothing known about that schema
    remember_prefect_schema(tmp_path, env)
    stamp = (tmp_path / PREFECT_SCHEMA_STAMP).read_text()
    remember_prefect_schema(tmp_path, {**env, MIGRATE_ON_START: "false"})
    assert (tmp_path / PREFECT_SCHEMA_STAMP).read_text() == stamp


def test_routes_are_kept_when_a_module_loaded_earlier_has_since_been_removed(tmp_path, monkeypatch):
    # An uninstalled plugin stays in sys.modules of a process that imported it (a forked child
    # inherits it): taking the routes skips its vanished file instead of failing.
    folder = tmp_path / "gone"
    folder.mkdir()
    (folder / "vanished_plugin_module.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(folder))
    __import__("vanished_plugin_module")
    (folder / "vanished_plugin_module.py").unlink()
    home = tmp_path / "home"
    home.mkdir()
    try:
        forked(keep_routes, home).result(timeout=300)
    finally:
        sys.modules.pop("vanished_plugin_module", None)
    assert kept_routes(home) is not None
    files = json.loads((home / ROUTES_SOURCES).read_text())["files"]
    assert not any(path.endswith("vanished_plugin_module.py") for path in files)
