"""`charterflow reports draft` (issue 10, R-REPORT): render a quarter's report locally.

Writes, into ``--out`` (default ``./report-<quarter>``): ``forum.md`` (the public Forum post,
charts linked as the PNG files beside it), ``discord.txt`` (the announcement), ``board.json``
(the Slack Block Kit message to the Board) and ``<quarter>-membership.png``,
``-moderation.png``, ``-ideas.png``. Nothing is stored in the ledger and nothing is posted. The
privacy check (R-PRIVACY) runs as for publishing: a refused draft is not written and the command
exits 1 naming the text and the kind of private string (never the string). Other errors: one
line ``error: …``, exit 2.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import typer

from charterflow.cli_errors import migrated_ledger as _ledger
from charterflow.cli_errors import one_line_errors


def draft_command(
    quarter: str | None = typer.Option(
        None, "--quarter", "-q", help="The quarter, e.g. 2026Q3 (default: the quarter just ended)."
    ),
    out: Path | None = typer.Option(None, "--out", "-o", help="Directory to write to (default ./report-<quarter>)."),
) -> None:
    """Render the quarterly report (three texts and three charts) without publishing it."""
    # lazy: start-up: Prefect and the flows, rules (pydantic)
    from flows.reports.quarterly import chart_files, draft
    from rules.reports import Quarter

    with one_line_errors():
        now = datetime.now(UTC)
        q = Quarter.parse(quarter) if quarter else Quarter.just_ended(now)
        d = draft(_ledger(), q, now=now)
        if not d.privacy.allowed:
            typer.echo(f"refused by {d.privacy.ruling}: {d.privacy.reason}; nothing written", err=True)
            raise typer.Exit(1)
        folder = out or Path(f"report-{q.label}")
        folder.mkdir(parents=True, exist_ok=True)
        files = {
            "forum.md": f"# {d.texts.forum_title}\n\n{d.texts.forum}",
            "discord.txt": d.texts.discord + "\n",
            "board.json": d.texts.board_json(),
        }
        for name, text in files.items():
            (folder / name).write_text(text, encoding="utf-8")
        names = chart_files(q)
        for chart, png in d.charts.items():
            (folder / names[chart]).write_bytes(png)
    if q.end > now:
        typer.echo(f"note: {q.label} has not ended yet; the figures are partial", err=True)
    for name in [*files, *names.values()]:
        typer.echo(str(folder / name))


# The commands this module adds to `charterflow`: charterflow/cli.py does
# `app.add_typer(reports_cli.app)`.
app = typer.Typer()
reports = typer.Typer(
    help="Quarterly reports (R-REPORT): draft locally; publishing needs a member's approval (see docs/reports.md).",
    no_args_is_help=True,
)
reports.command("draft")(draft_command)
app.add_typer(reports, name="reports")
