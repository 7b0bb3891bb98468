"""`charterflow moderation …` (issue 13): the consistency report, the links between accounts,
acknowledging an alert from the Forum side, and running the sync or the digest by hand.

Moderation data is for moderators and WG members only: run these where only they read the
output. The report names people by ledger reference (``person:12``), never by name.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import typer

from charterflow.cli_errors import fail, one_line_errors


def _when(value: str | None, option: str) -> datetime | None:
    from flows.moderation.sync import parse_since  # lazy: start-up: Prefect and the flows

    if value is None:
        return None
    try:
        return parse_since(value)
    except ValueError as exc:
        fail(f"{option}: {exc}")


def _format(figures: dict, label: str = "") -> str:
    period = f"{figures['period']['start'][:10]} to {figures['period']['end'][:10]}"
    lines = [
        f"Moderation consistency, {label + ': ' if label else ''}{period}",
        f"{figures['actions']} actions",
        "",
        "Actions per platform and type:",
    ]
    lines += [
        f"  {platform}: " + ", ".join(f"{a} {n}" for a, n in counts.items())
        for platform, counts in figures["per_platform"].items()
    ] or ["  none"]
    flag = figures["flag_to_action"]
    if not flag["flags_handled"]:
        median = "none (no flag was handled)"
    else:
        median = "n/a" if flag["median_minutes"] is None else f"{flag['median_minutes']} minutes"
        median += f" ({flag['with_flag_time']} of {flag['flags_handled']} handled flags have a flag time)"
    lines += ["", f"Forum, median time from flag to action: {median}", "", "Sanctioned on one platform only:"]
    lines += [
        f"  {i['subject']}: on {', '.join(i['sanctioned_on'])}; not on {', '.join(i['not_on'])}"
        for i in figures["one_platform_only"]
    ] or ["  none"]
    lines += ["", "Moderators' reasons, grouped:"]
    lines += [
        f"  {r['count']:>4}  {r['reason']}  ({', '.join(f'{a} {n}' for a, n in r['actions'].items())})"
        for r in figures["reasons"]
    ] or ["  none"]
    return "\n".join(lines)


# The commands this module adds to `charterflow`: charterflow/cli.py does
# `app.add_typer(moderation_cli.app)`.
app = typer.Typer()
group = typer.Typer(
    help="Consistent moderation across platforms: report, links, alerts (issue 13).", no_args_is_help=True
)
links = typer.Typer(help="Links between one person's accounts on two platforms.", no_args_is_help=True)
group.add_typer(links, name="links")
app.add_typer(group, name="moderation")


@group.command("report")
def report(
    since: str | None = typer.Option(
        None, "--since", help="Start date, YYYY-MM-DD (UTC; default: the start of this quarter)."
    ),
    until: str | None = typer.Option(None, "--until", help="End date (default: now)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Actions per platform and type, Forum flag-to-action time, people sanctioned on one
    platform only, moderators' reasons grouped. Without --since: this quarter so far."""
    # lazy: start-up: Prefect and the flows, rules (pydantic)
    from flows.moderation.figures import figures_between
    from flows.platforms import current_ledger
    from rules.reports import Quarter

    now = datetime.now(UTC)
    label = ""
    start = _when(since, "--since")
    if start is None:
        quarter = Quarter.of(now)
        start = quarter.start
        label = f"this quarter ({quarter.label})" + (" so far" if until is None else "")
    end = _when(until, "--until") or now
    if end <= start:
        fail(f"--until: must be after {'--since' if since else 'the start of this quarter'}")
    with one_line_errors():
        figures = figures_between(current_ledger(), start, end)
    typer.echo(json.dumps(figures, ensure_ascii=False) if as_json else _format(figures, label))


@group.command("ack")
def ack(
    alert_id: int = typer.Argument(..., help="The alert number (in the alert's text)."),
    by: str = typer.Option(..., "--by", help="Who acknowledges (a moderator's name)."),
) -> None:
    """Acknowledge an alert (the Forum has no button; Discord's button does the same)."""
    # lazy: start-up: Prefect and the flows, SQLAlchemy and the ledger
    from flows.kit import context
    from flows.moderation.alerts import show_acknowledged
    from ledger import moderation as modlog

    with one_line_errors():
        if not by.strip():
            raise ValueError("--by: a name is needed")
        ctx = context(None)
        with ctx.ledger.transaction() as session:
            alert, first = modlog.acknowledge_alert(session, alert_id, by=by.strip(), at=ctx.now, actor="operator")
            who = alert.acknowledged_by
        show_acknowledged(ctx, alert_id)
    typer.echo(f"alert {alert_id} acknowledged by {who}" + ("" if first else " (already)"))


def _decide(link_id: int, by: str, confirm: bool) -> None:
    # lazy: start-up: Prefect and the flows, SQLAlchemy and the ledger
    from flows.kit import context
    from flows.moderation.alerts import raise_alerts, show_link_decision
    from ledger import moderation as modlog

    with one_line_errors():
        if not by.strip():
            raise ValueError("--by: a name is needed")
        ctx = context(None)
        with ctx.ledger.transaction() as session:
            link, first = modlog.decide_link(
                session, link_id, confirm=confirm, by=by.strip(), at=ctx.now, actor="operator"
            )
            status = link.status
        show_link_decision(ctx, link_id)
        if status == "confirmed":
            raise_alerts(ctx)
    typer.echo(f"link {link_id}: {status}" + ("" if first else " (already decided)"))


@links.command("list")
def list_links(status: str | None = typer.Option(None, "--status", help="suggested, confirmed or rejected.")) -> None:
    """The links (newest first)."""
    # lazy: start-up: Prefect and the flows, SQLAlchemy and the ledger
    from flows.platforms import current_ledger
    from ledger import moderation as modlog

    with one_line_errors():
        with current_ledger().read() as session:
            rows = modlog.links(session, status=status)
            out = [
                f"{r.id:>5}  {r.status:<9}  {r.platform_a}:{r.username_a or r.account_a} = "
                f"{r.platform_b}:{r.username_b or r.account_b}  ({r.basis}"
                + (f", {r.decided_by}" if r.decided_by else "")
                + ")"
                for r in rows
            ]
    typer.echo("\n".join(out) if out else "no links")


@links.command("confirm")
def confirm(link_id: int = typer.Argument(...), by: str = typer.Option(..., "--by")) -> None:
    """A moderator confirms a suggested link: it is used from now on."""
    _decide(link_id, by, True)


@links.command("reject")
def reject(link_id: int = typer.Argument(...), by: str = typer.Option(..., "--by")) -> None:
    """A moderator rejects a suggested link: it is never used."""
    _decide(link_id, by, False)


@group.command("sync")
def sync() -> None:
    """Read every platform's moderation log once now (what the every-15-minutes deployment runs)."""
    from flows.moderation.sync import moderation_sync  # lazy: start-up: Prefect and the flows

    with one_line_errors():
        typer.echo(json.dumps(moderation_sync(), default=str))


@group.command("digest")
def digest(day: str | None = typer.Option(None, "--day", help="The day, YYYY-MM-DD (default: yesterday).")) -> None:
    """Post the digest of a day to every moderator space (once per day and platform)."""
    from flows.moderation.digest import moderation_digest  # lazy: start-up: Prefect and the flows

    when = _when(day, "--day")
    with one_line_errors():
        typer.echo(json.dumps(moderation_digest(day=when.date() if when else None), default=str))
