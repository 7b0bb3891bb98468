"""`charterflow guides check|publish|status` and `charterflow training schedule|list`: the
community guides and training sessions (R-GUIDE).

``check`` reads the guide files and prints each broken one by name and line (exit 1), and each
platform a guide names that has no connector installed (kept; skipped at publish).
``publish`` publishes every guide to every platform that takes it and points newcomers at them
(welcome screens and messages, Discord's onboarding prompt), printing what changed; a broken
guide is printed as ``error: <file>:<line>: …`` and not published, a platform refusing the
welcome or onboarding step as one ``error:`` line naming it (exit 1 once the others are done).
``status`` shows where each guide is published and whether the text shown is current, and
whether each onboarding prompt is in step with the guides. ``training schedule`` creates a
session's events and announcements once.
Other errors print one line ``error: …`` and exit 2.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import typer

from charterflow.cli_errors import migrated_ledger as _ledger
from charterflow.cli_errors import one_line_errors as _errors
from flows.guides.library import guides_dir, load_guides

guides_app = typer.Typer(help="The community guides (R-GUIDE).", no_args_is_help=True)
training_app = typer.Typer(help="Community training sessions on the guides (R-GUIDE).", no_args_is_help=True)


def _ctx() -> Any:
    from flows.kit import context  # lazy: start-up: Prefect, for `charterflow --help`

    return context(None, ledger=_ledger())


def _table(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> str:
    cells = [[str(r.get(c) if r.get(c) is not None else "-") for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines)


@guides_app.command("check")
def check_cmd() -> None:
    """Check every guide's front matter; print the broken ones by file and line, and the
    platforms named that have no connector installed."""
    from flows.guides.publish import skipped_platforms  # lazy: start-up: Prefect, for `charterflow --help`

    with _errors():
        guides, errors = load_guides()
    for guide in guides:
        typer.echo(f"ok     {guide.slug}: {guide.title} ({', '.join(guide.platforms)}; {guide.audience})")
    _echo_skipped(skipped_platforms(guides))
    for error in errors:
        typer.echo(f"error: {error}", err=True)
    typer.echo(f"{len(guides)} guide(s) in {guides_dir()}, {len(errors)} broken")
    if errors:
        raise typer.Exit(1)


@guides_app.command("publish")
def publish_cmd(
    force: bool = typer.Option(False, "--force", help="Send the texts again even where they are current."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Publish every guide where it belongs (edited in place when changed) and point newcomers
    at them; print what changed."""
    # lazy: start-up: Prefect, for `charterflow --help`
    from flows.guides.publish import (
        onboarding_step,
        publish_step,
        refusals,
        refused_line,
        skipped_platforms,
        welcome_step,
    )

    with _errors():
        ctx = _ctx()
        guides, errors = load_guides()
        skipped = skipped_platforms(guides)
        rows = publish_step(ctx, guides, errors, force=force)
        welcome = welcome_step(ctx, guides)
        onboarding = onboarding_step(ctx, guides)
    if as_json:
        out = {"guides": rows, "welcome": welcome, "onboarding": onboarding, "skipped": skipped}
        typer.echo(json.dumps(out, indent=2, default=str))
    else:
        shown = [r for r in rows if r["change"] != "refused"]
        typer.echo(
            _table(shown, ("guide", "platform", "change", "version", "mode", "url")) if shown else "no guide published"
        )
        for w in welcome:
            if not w.get("refused"):
                typer.echo(f"newcomers on {w['platform']}: pointed at {w['guides']} guide(s) ({w['where']})")
        for o in onboarding:
            if o.get("refused"):
                continue
            state = "changed" if o.get("changed") else "already in step"
            typer.echo(f"onboarding on {o['platform']}: {o['options']} guide(s) in the {o['where']} ({state})")
        _echo_skipped(skipped)
    for error in errors:
        typer.echo(f"error: {error} (not published)", err=True)
    if refused := refusals(welcome, onboarding):
        typer.echo(f"error: {refused_line(refused)}", err=True)
    if errors or refused:
        raise typer.Exit(1)


@guides_app.command("status")
def status_cmd(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Where each guide is published and whether the text shown there is the current one."""
    # lazy: start-up: Prefect, for `charterflow --help`
    from flows.guides.publish import skipped_platforms, status_rows
    from flows.kit import Ctx

    with _errors():
        guides, errors = load_guides()
        rows = status_rows(Ctx(ledger=_ledger(), platforms=None, now=datetime.now(UTC)), guides)  # type: ignore[arg-type]  # reads the ledger only
    if as_json:
        typer.echo(json.dumps(rows, indent=2, default=str))
    else:
        typer.echo(_table(rows, ("guide", "platform", "state", "version", "mode", "url")) if rows else "no guides")
        _echo_skipped(skipped_platforms(guides))
    for error in errors:
        typer.echo(f"error: {error}", err=True)


def _echo_skipped(skipped: list[dict[str, Any]]) -> None:
    for skip in skipped:
        typer.echo(f"{skip['line']} (guides kept, skipped there: {', '.join(skip['guides'])})")


def _when(text: str) -> datetime:
    try:
        at = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"--at: {text!r} is not a date and time like 2027-01-20T17:00Z") from None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


@training_app.command("schedule")
def schedule_cmd(
    guide: str = typer.Argument(..., help="The guide's file name without .md, e.g. asking-questions."),
    at: str = typer.Option(..., "--at", help="Start, UTC: 2027-01-20T17:00Z."),
    minutes: int = typer.Option(60, "--minutes", help="Length (15 to 480)."),
    location: str = typer.Option("", "--location", help="Where (a voice channel, a video link)."),
) -> None:
    """Schedule a training session on a guide: an event and an announcement on each platform
    the guide is for; the same guide and start again sends nothing new."""
    from flows.guides.training import find_guide, schedule_step  # lazy: start-up: Prefect

    with _errors():
        ctx = _ctx()
        out = schedule_step(
            ctx, find_guide(ctx, guide), starts_at=_when(at), minutes=minutes, location=location or None
        )
    typer.echo(
        f"training #{out['session']} {'scheduled' if out['created'] else 'was already scheduled'}: "
        f"{out['title']} at {out['starts_at']}"
    )
    for platform, ref in out["platforms"].items():
        typer.echo(f"  {platform}: " + ", ".join(f"{k} {v}" for k, v in ref.items() if v))


@training_app.command("list")
def list_cmd() -> None:
    """Training sessions from a year ago on."""
    from ledger import guides as shelf_ledger  # lazy: start-up: SQLAlchemy, for `charterflow --help`

    with _errors():
        now = datetime.now(UTC)
        with _ledger().read() as session:
            rows = [
                {
                    "id": r.id,
                    "guide": r.slug,
                    "starts": f"{r.starts_at:%Y-%m-%d %H:%M}",
                    "title": r.title,
                    "platforms": ", ".join(sorted(r.events or {})),
                }
                for r in shelf_ledger.training_between(session, now - timedelta(days=365), now + timedelta(days=3650))
            ]
    typer.echo(_table(rows, ("id", "guide", "starts", "platforms", "title")) if rows else "no training sessions")


# `charterflow` adds this module with `app.add_typer(guides_cli.app)`.
app = typer.Typer()
app.add_typer(guides_app, name="guides")
app.add_typer(training_app, name="training")
