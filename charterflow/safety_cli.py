"""`charterflow safety …` (issue 22): the community report queue from the shell.

``report`` prints the figures (R-SAFE-3: counts and response times per platform, never names);
``list`` the queue; ``claim``, ``resolve`` and ``refer`` act on a report as a moderator (the
Forum's moderators, who have no buttons, and operators); ``coc-outcome`` is the CoC Liaison's
record of the CoC WG's outcome (R-SAFE-2); ``remind`` runs the reminder once now.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import typer

from charterflow.cli_errors import fail, one_line_errors

safety_app = typer.Typer(
    help="Community reports: the queue, the CoC referral, the figures (issue 22).", no_args_is_help=True
)


# `charterflow` adds this module with `app.add_typer(safety_cli.app)`.
app = typer.Typer()
app.add_typer(safety_app, name="safety")


def format_figures(found: dict) -> str:
    """The figures as text, one block per platform."""
    period = found.get("period") or {}
    lines = [f"Community reports {(period.get('start') or '')[:10]} to {(period.get('end') or '')[:10]} (R-SAFE-3)"]
    for platform, f in found["platforms"].items():
        first, done = f["first_response_hours"], f["resolution_hours"]
        lines += [
            "",
            f"{platform}: {f['reports']} reports, {f['open']} still open",
            f"  first response, hours: median {first['median']}, p90 {first['p90']}",
            f"  resolution, hours:     median {done['median']}, p90 {done['p90']}",
            "  outcomes: " + ", ".join(f"{o} {n}" for o, n in f["outcomes"].items()),
        ]
    return "\n".join(lines)


@safety_app.command("report")
def report(
    days: int = typer.Option(90, "--days", min=1, help="How many days back (default 90)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Median and p90 time to first response and to resolution per platform, counts by outcome."""
    # lazy: start-up: Prefect and the flows
    from flows.platforms import current_ledger
    from flows.safety.flows import figures_between

    now = datetime.now(UTC)
    with one_line_errors():
        found = figures_between(current_ledger(), now - timedelta(days=days), now)
    typer.echo(json.dumps(found) if as_json else format_figures(found))


@safety_app.command("list")
def list_reports(
    state: str | None = typer.Option(None, "--state", help="open, claimed, resolved or referred."),
) -> None:
    """The queue, oldest first (a referred report shows only that it was referred: R-SAFE-2)."""
    # lazy: start-up: Prefect and the flows, SQLAlchemy and the ledger
    from flows.platforms import current_ledger
    from ledger import safety as queue_ledger

    with one_line_errors():
        with current_ledger().read() as session:
            rows = queue_ledger.queue(session, states=(state,) if state else None)
            out = [
                f"{r.id:>5}  {r.state:<8}  {r.platform:<9}  a {r.target_kind}"
                + (
                    ""
                    if r.state == "referred"
                    else f"  {r.target_username or r.target_link or ''}"
                    + (f"  claimed by {r.claimed_by}" if r.claimed_by else "")
                    + (f"  outcome {r.outcome}" if r.outcome else "")
                )
                for r in rows
            ]
    typer.echo("\n".join(out) if out else "no reports")


def _by(by: str) -> str:
    if not by.strip():
        fail("--by: a name is needed")
    return by.strip()


@safety_app.command("claim")
def claim(report_id: int = typer.Argument(...), by: str = typer.Option(..., "--by", help="The moderator.")) -> None:
    """Claim a report (once; a second claim says who holds it)."""
    # lazy: start-up: Prefect and the flows
    from flows.kit import context
    from flows.safety import queue

    with one_line_errors():
        _, text = queue.claim(context(None), report_id, by=_by(by), actor="operator", is_moderator=True)
    typer.echo(text)


@safety_app.command("resolve")
def resolve(
    report_id: int = typer.Argument(...),
    outcome: str = typer.Option(..., "--outcome", help="no_action, warned, removed_content or sanctioned."),
    by: str = typer.Option(..., "--by", help="The moderator."),
) -> None:
    """Resolve a report with an outcome; its reporter is told it was handled (never the outcome)."""
    # lazy: start-up: Prefect and the flows
    from flows.kit import context
    from flows.safety import queue

    with one_line_errors():
        result, text = queue.resolve(
            context(None), report_id, outcome=outcome, by=_by(by), actor="operator", is_moderator=True
        )
    if result.startswith("refused"):
        fail(text)
    typer.echo(text)


@safety_app.command("refer")
def refer(report_id: int = typer.Argument(...), by: str = typer.Option(..., "--by", help="The moderator.")) -> None:
    """Mark a report as a Code of Conduct matter: it goes privately to the CoC Liaison (R-SAFE-2)."""
    # lazy: start-up: Prefect and the flows
    from flows.kit import context
    from flows.safety import queue

    with one_line_errors():
        result, text = queue.refer(context(None), report_id, by=_by(by), is_moderator=True, actor="operator")
    if result.startswith("refused"):
        fail(text)
    typer.echo(text)


@safety_app.command("coc-outcome")
def coc_outcome(
    report_id: int = typer.Argument(...),
    by: str = typer.Option(..., "--by", help="The CoC Liaison's handle."),
    text: str = typer.Option(..., "--text", help="The CoC WG's outcome, as the liaison records it."),
) -> None:
    """The CoC Liaison records the CoC WG's outcome of a referred report (R-SAFE-2)."""
    # lazy: start-up: Prefect and the flows
    from flows.kit import context
    from flows.safety import queue

    if not text.strip():
        fail("--text: the outcome is needed")
    with one_line_errors():
        result, answer = queue.record_coc_outcome(context(None), report_id, by_handle=_by(by), outcome=text.strip())
    if result == "refused":
        fail(answer)
    typer.echo(answer)


@safety_app.command("remind")
def remind() -> None:
    """Remind the moderators' rooms of unclaimed reports now (what the hourly deployment runs)."""
    from flows.safety.flows import safety_reminders  # lazy: start-up: Prefect and the flows

    with one_line_errors():
        typer.echo(json.dumps(safety_reminders()))
