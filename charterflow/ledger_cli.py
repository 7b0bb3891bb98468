"""`charterflow db|audit|roster|person` commands (the ledger's command line).

The database is ``CHARTERFLOW_DATABASE_URL`` (default: SQLite under ``CHARTERFLOW_HOME``).
Errors print one line ``error: …`` to stderr and exit 2; a failed ``audit verify`` exits 1.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import typer

from charterflow.cli_errors import fail as _fail
from charterflow.cli_errors import one_line_errors as _errors
from charterflow.stack import process_alive

ACTOR_HELP = "Who acts, as an audit reference (operator, person:12, …)."


class _DryRun(Exception):
    """Raised inside a transaction to roll it back on purpose."""


def _ledger(*, current: bool = True) -> Any:
    # lazy: start-up: pydantic-settings, SQLAlchemy and the ledger
    from charterflow.settings import get_settings
    from ledger import Ledger
    from ledger.migrate import require_current

    ledger = Ledger(get_settings().ledger_url())
    if current:
        require_current(ledger)
    return ledger


@contextmanager
def _output(path: Path | None) -> Iterator[IO[str]]:
    if path is None or str(path) == "-":
        yield sys.stdout
        sys.stdout.flush()
        return
    with open(path, "w", encoding="utf-8", newline="") as handle:
        yield handle


def _check_actor(actor: str) -> str:
    from ledger.audit import _REF  # lazy: start-up: SQLAlchemy and the ledger

    if not _REF.match(actor):
        raise ValueError(f"--actor {actor!r}: use a reference such as operator or person:12")
    return actor


def _instances(pairs: list[str]) -> dict[str, str]:
    """``--instance PLATFORM=INSTANCE`` options as a mapping (a Forum URL gives its host)."""
    from connectors.base import url_instance  # lazy: start-up: the connectors

    found: dict[str, str] = {}
    for pair in pairs:
        platform, _, value = pair.partition("=")
        platform, value = platform.strip().lower(), value.strip()
        if platform not in ("discourse", "discord", "slack") or not value:
            raise ValueError(f"--instance {pair!r}: use discourse=HOST, discord=GUILD_ID or slack=TEAM_ID")
        found[platform] = url_instance(value) if "://" in value else value.lower() if platform == "discourse" else value
    return found


# The commands this module adds to `charterflow`: charterflow/cli.py does
# `app.add_typer(ledger_cli.app)`.
app = typer.Typer()
db_app = typer.Typer(help="The ledger database: migrate its schema, back it up, restore it.", no_args_is_help=True)
audit_app = typer.Typer(help="The hash-chained audit log: verify it, export it.", no_args_is_help=True)
roster_app = typer.Typer(help="Import or export the WG's people, terms and roles.", no_args_is_help=True)
person_app = typer.Typer(help="One person's data: export it, erase it (R-PRIVACY-2).", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(audit_app, name="audit")
app.add_typer(roster_app, name="roster")
app.add_typer(person_app, name="person")


@db_app.command("upgrade")
def db_upgrade(
    instance: list[str] = typer.Option(
        [],
        "--instance",
        help="PLATFORM=INSTANCE: whose ids the stored keys are, for "
        "migration 0012 (discourse=forum.example.org or its URL, discord=GUILD_ID, "
        "slack=TEAM_ID); default: CHARTERFLOW_DISCOURSE_URL, CHARTERFLOW_DISCORD_GUILD_ID.",
    ),
) -> None:
    """Bring the ledger database to the current schema (safe to run again)."""
    from ledger.migrate import upgrade  # lazy: start-up: SQLAlchemy and the ledger

    with _errors():
        instances = _instances(instance)
        ledger = _ledger(current=False)
        before, after = upgrade(ledger, instances=instances)
        if before == after:
            typer.echo(f"ledger {ledger.url} is at schema {after} already")
        else:
            typer.echo(f"ledger {ledger.url} upgraded from {before or 'empty'} to {after}")


@db_app.command("backup")
def db_backup(
    file: Path = typer.Argument(..., help="The backup file to write."),
    force: bool = typer.Option(False, "--force", help="Replace FILE if it exists."),
) -> None:
    """Copy the ledger while the stack runs (SQLite online backup, PostgreSQL pg_dump) and
    print its audit head, also written to FILE.head: keep that apart from the backup."""
    from ledger.backup import backup, head_file  # lazy: start-up: SQLAlchemy and the ledger

    with _errors():
        ledger = _ledger()
        head = backup(ledger, file, force=force)
    typer.echo(f"backup of {ledger.url} written to {file}")
    typer.echo(
        f"audit head: {head}  (also in {head_file(file)}; check a ledger against it "
        f"with `charterflow audit verify --expect-head {head}`)"
    )


@db_app.command("restore")
def db_restore(
    file: Path = typer.Argument(..., help="A file written by `charterflow db backup`."),
) -> None:
    """Fill an empty ledger database from a backup, then verify its audit chain (against
    FILE.head when present); exit 1 if the chain is broken or not the witnessed one."""
    # lazy: start-up: SQLAlchemy and the ledger
    from ledger.backup import restore
    from ledger.migrate import current_revision, head_revision

    with _errors():
        ledger = _ledger(current=False)
        restored = restore(ledger, file)
        revision = current_revision(ledger)
    if not restored.verify.ok:
        _fail(f"restored {file} into {ledger.url}, but {restored.verify.message()}", code=1)
    witnessed = " (the witnessed head)" if restored.witnessed else ""
    typer.echo(f"restored {file} into {ledger.url}: {restored.verify.message()}{witnessed}")
    if revision != head_revision():
        typer.echo(f"the backup is at schema {revision}: run `charterflow db upgrade` next")


@audit_app.command("verify")
def audit_verify(
    expect_head: str | None = typer.Option(
        None,
        "--expect-head",
        help="SEQ:HASH, a head witnessed earlier (printed by `db "
        "backup`, `audit verify`, the quarterly report): also catches entries deleted "
        "from the end.",
    ),
    file: Path | None = typer.Option(None, "--file", help="Verify an export file instead of the database."),
    fmt: str = typer.Option("jsonl", "--format", help="Format of --file: jsonl or csv."),
) -> None:
    """Check the audit log link by link; exit 1 naming the first bad entry."""
    from ledger import audit  # lazy: start-up: SQLAlchemy and the ledger

    with _errors():
        if file is not None:
            with open(file, encoding="utf-8", newline="") as handle:
                try:
                    result = audit.verify_chain(audit.read_export(handle, fmt=fmt), expect_head=expect_head)
                except (json.JSONDecodeError, KeyError) as exc:
                    raise ValueError(f"{file}: not an audit export: {exc}") from None
        else:
            ledger = _ledger()
            with ledger.read() as session:
                result = audit.verify(session, expect_head=expect_head)
    if not result.ok:
        _fail(result.message(), code=1)
    typer.echo(result.message())


@audit_app.command("export")
def audit_export(
    fmt: str = typer.Option("jsonl", "--format", help="jsonl or csv."),
    output: Path | None = typer.Option(None, "--output", "-o", help="File to write (default: standard output)."),
) -> None:
    """Write the whole audit log out, oldest entry first."""
    from ledger import audit  # lazy: start-up: SQLAlchemy and the ledger

    with _errors():
        if fmt not in ("jsonl", "csv"):
            raise ValueError(f"--format {fmt!r}: use jsonl or csv")
        ledger = _ledger()
        with ledger.read() as session, _output(output) as out:
            audit.export(session, out, fmt=fmt)


@roster_app.command("import")
def roster_import(
    file: Path = typer.Argument(..., help="The roster TOML (see examples/roster.toml)."),
    actor: str = typer.Option("operator", "--actor", help=ACTOR_HELP),
    dry_run: bool = typer.Option(False, "--dry-run", help="Check and report, write nothing."),
    charter: Path | None = typer.Option(None, "--charter", help="Charter TOML."),
) -> None:
    """Import people, identities, terms and WG roles; refuses a file that breaks a rule."""
    # lazy: start-up: the charter loader (pydantic), SQLAlchemy and the ledger
    from charterflow.charter import load_configured_charter
    from ledger.roster import import_roster, load_roster

    with _errors():
        _check_actor(actor)
        loaded = load_configured_charter(charter)
        roster = load_roster(file, charter=loaded)
        ledger = _ledger()
        try:
            with ledger.transaction() as session:
                report = import_roster(session, roster, charter=loaded, actor=actor)
                if dry_run:
                    raise _DryRun  # rolls the transaction back
        except _DryRun:
            pass
    for warning in report.warnings:
        typer.echo(f"warning: {warning}", err=True)
    verb = "would change" if dry_run else "changed"
    typer.echo(
        f"{file}: {len(roster.people)} people; {verb} {report.changes} record(s): "
        f"{len(report.created)} created, {len(report.updated)} updated"
    )


def _export(output: Path | None, text_of: Callable[[Any], str]) -> None:
    """Write what ``text_of`` reads from the ledger (one read transaction) to ``output``."""
    with _errors():
        ledger = _ledger()
        with ledger.read() as session:
            text = text_of(session)
        with _output(output) as out:
            out.write(text)


@roster_app.command("export")
def roster_export(
    output: Path | None = typer.Option(None, "--output", "-o", help="File to write (default: standard output)."),
) -> None:
    """Write people, identities, terms, WG roles and reference lists as roster TOML."""
    from ledger.roster import export_roster  # lazy: start-up: SQLAlchemy and the ledger

    _export(output, export_roster)


@person_app.command("export")
def person_export(
    person: str = typer.Argument(..., help="Person id or handle."),
    output: Path | None = typer.Option(None, "--output", "-o", help="File to write (default: standard output)."),
) -> None:
    """Everything the ledger holds about a person, as JSON."""
    # lazy: start-up: SQLAlchemy and the ledger
    from ledger.privacy import export_person
    from ledger.repo import get_person

    _export(
        output,
        lambda session: (
            json.dumps(export_person(session, get_person(session, person)), ensure_ascii=False, indent=2) + "\n"
        ),
    )


@person_app.command("erase")
def person_erase(
    person: str = typer.Argument(..., help="Person id or handle."),
    reason: str = typer.Option(..., "--reason", help="Why (kept in the ledger, hashed in the audit log)."),
    actor: str = typer.Option("operator", "--actor", help=ACTOR_HELP),
    skip_prefect: bool = typer.Option(
        False, "--skip-prefect", help="Erase the ledger only, leaving Prefect's runs and artifacts as they are."
    ),
) -> None:
    """Erase a person's personal data, keep the decisions, record the erasure; their names
    and answers are also redacted from Prefect's runs and artifacts (R-PRIVACY-3)."""
    # lazy: start-up: SQLAlchemy and the ledger
    from ledger.privacy import erase_person, personal_values
    from ledger.repo import get_person

    api = None if skip_prefect else _prefect_api()
    redacted: dict[str, int] = {}

    def work(session: Any) -> tuple[int, int]:
        target = get_person(session, person)
        values = personal_values(session, target)
        erasure = erase_person(session, target, reason=reason, actor=actor)
        if api is not None:
            # Inside the transaction: when Prefect cannot be reached nothing is erased, so
            # the values to search for are not lost.
            redacted.update(_redact_prefect(api, values, replacement=f"erased-{erasure.person_id}"))
        return erasure.person_id, erasure.id

    with _errors():
        _check_actor(actor)
        ledger = _ledger()
        # lazy: start-up: Prefect and the flows
        from flows.commons.erase import erase_before_ledger  # R-COMMS: copies on the platforms

        bridged = erase_before_ledger(ledger, person)
        person_id, erasure_id = ledger.run(work)
    if bridged is not None:
        typer.echo(
            f"common room: {bridged['copies_deleted']} bridged cop(ies) deleted, "
            f"{len(bridged['refused'])} refused by their platform"
        )
    typer.echo(f"person:{person_id} erased (erasure {erasure_id}); decisions kept")
    if api is None:
        typer.echo(
            "Prefect: not searched ("
            + ("--skip-prefect" if skip_prefect else "PREFECT_API_URL is not set and no `charterflow up` is running")
            + ")"
        )
    else:
        typer.echo(
            f"Prefect ({api}): redacted {redacted['artifacts']} artifact(s), "
            f"{redacted['flow_runs']} flow run(s), {redacted['task_runs']} task run(s)"
        )


def _prefect_api() -> str | None:
    """The Prefect API the erasure searches: ``PREFECT_API_URL``, else the running `up`'s."""
    from prefect.settings import PREFECT_API_URL  # lazy: start-up: Prefect

    from charterflow.settings import get_settings  # lazy: start-up: pydantic-settings

    if PREFECT_API_URL.value():
        return str(PREFECT_API_URL.value()).rstrip("/")
    try:
        lock = json.loads((get_settings().home / "up.json").read_text())
    except (OSError, ValueError):
        return None
    pid = lock.get("pid")
    if not lock.get("api_url") or not isinstance(pid, int) or not process_alive(pid):
        return None
    return str(lock["api_url"]).rstrip("/")


def _redact_prefect(api: str, values: list[str], *, replacement: str) -> dict[str, int]:
    import httpx  # lazy: start-up: httpx

    # lazy: start-up: Prefect and the flows
    from flows.inbox import prefect_http
    from flows.privacy import redact

    try:
        with prefect_http(api, timeout=30.0) as http:
            return redact(http, values, replacement=replacement)
    except httpx.HTTPError as exc:
        raise ValueError(
            f"Prefect at {api} could not be searched ({type(exc).__name__}): nothing "
            "erased; start it, or use --skip-prefect to erase the ledger only"
        ) from None
