"""`charterflow ideas list|add`: the ideas backlog (R-IDEA-1, R-IDEA-2).

``list`` prints the backlog from the ledger (filters ``--status`` and ``--platform``, repeatable;
``--json`` for scripts). ``add`` files an idea as an operator (source ``operator``), once per
``--ref`` (or per title and body). Errors print one line ``error: …`` and exit 2.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import typer

from charterflow.cli_errors import migrated_ledger as _ledger
from charterflow.cli_errors import one_line_errors as _errors
from charterflow.cli_table import fixed_columns

PLATFORMS = ("discord", "discourse", "slack", "general")
COLUMNS = (
    ("id", 4),
    ("status", 11),
    ("platform", 9),
    ("board", 24),
    ("dup", 5),
    ("age", 4),
    ("flag", 4),
    ("author", 18),
    ("title", 0),
)


def _check(values: list[str], *, known: tuple[str, ...] | list[str], option: str) -> list[str]:
    for value in values:
        if value not in known:
            raise ValueError(f"{option}: unknown value {value!r} (known: {', '.join(known)})")
    return values


def _table(rows: list[dict[str, Any]]) -> str:
    return "\n".join(fixed_columns(COLUMNS, (_cells(r) for r in rows)))


def _cells(r: dict[str, Any]) -> dict[str, str]:
    return {
        "id": f"#{r['id']}",
        "status": r["status"],
        "platform": r["platform"] or "-",
        "board": r["board"] or "-",
        "dup": f"#{r['duplicate_of']}" if r["duplicate_of"] else "-",
        "age": f"{r['age_days']}d",
        "flag": "!" if r["flagged"] else "",
        "author": r["author"][:18],
        "title": r["title"][:80],
    }


# The commands this module adds to `charterflow`: charterflow/cli.py does
# `app.add_typer(ideas_cli.app)`.
app = typer.Typer()
ideas = typer.Typer(help="The ideas backlog (R-IDEA-1, R-IDEA-2).", no_args_is_help=True)


@ideas.command("list")
def list_cmd(
    status: list[str] | None = typer.Option(
        None,
        "--status",
        "-s",
        help="Only this status (repeatable): new, triaged, accepted, declined, duplicate, in-progress, done.",
    ),
    platform: list[str] | None = typer.Option(
        None, "--platform", "-p", help="Only this platform (repeatable): discord, discourse, slack, general."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (one list of objects)."),
) -> None:
    """Show the backlog: number, status, platform, Board or WG, likely duplicate, age,
    flag (waiting too long), author and title."""
    # lazy: start-up: the charter loader (pydantic), Prefect and the flows
    from charterflow.charter import load_configured_charter
    from flows.ideas.common import backlog_rows

    with _errors():
        charter = load_configured_charter()
        statuses = _check(list(status or []), known=charter.ideas.statuses, option="--status")
        platforms = _check(list(platform or []), known=PLATFORMS, option="--platform")
        with _ledger().read() as session:
            rows = backlog_rows(
                session, charter=charter, now=datetime.now(UTC), status=statuses or None, platform=platforms or None
            )
    if as_json:
        typer.echo(json.dumps(rows, indent=2, default=str))
    elif not rows:
        typer.echo("no ideas" + (" match" if statuses or platforms else " yet"))
    else:
        typer.echo(_table(rows))


@ideas.command("add")
def add_cmd(
    title: str = typer.Argument(..., help="The idea in one line (at most 300 characters)."),
    body: str = typer.Option("", "--body", help="Details."),
    author: str = typer.Option("", "--author", help="The WG handle (or another handle) of the person it comes from."),
    url: str = typer.Option("", "--url", help="Where it was suggested (http/https)."),
    ref: str = typer.Option("", "--ref", help="Your reference: the same one files nothing new."),
) -> None:
    """File an idea as an operator (source ``operator``); prints its number."""
    # lazy: start-up: the charter loader (pydantic), Prefect and the flows, SQLAlchemy and the ledger
    from charterflow.charter import load_configured_charter
    from flows.ideas.common import validate_idea
    from flows.ideas.intake import check_url, operator_key
    from ledger import ideas as backlog
    from ledger import repo
    from ledger.errors import NotFound

    with _errors():
        load_configured_charter()
        idea = validate_idea(title=title, body=body)
        link = check_url(url)
        author = author.strip()
        if len(author) > 100:
            raise ValueError("--author: more than 100 characters")
        with _ledger().transaction() as session:
            person = None
            if author:
                try:
                    person = repo.get_person(session, author)
                except NotFound:
                    person = None
            row, created = backlog.file_idea(
                session,
                title=idea.title,
                body=idea.body,
                source="operator",
                source_key=operator_key(idea, ref),
                source_url=link,
                author=person,
                author_handle=author or None,
                actor="operator",
                at=datetime.now(UTC),
            )
            idea_id = row.id
    typer.echo(f"idea #{idea_id} {'filed' if created else 'was already filed'}")


app.add_typer(ideas, name="ideas")
