"""`charterflow platforms [--history] [--json]` and `charterflow platforms retire NAME`: the
approved community platforms as the ledger records them (R-PLATFORM, issue 20).

The list shows each platform's state (approved, trial, retiring, retired), since when, a
trial's end date, whether the admin invariants (R-ADMIN-1/2) count it today, and whether a
connector for it is installed (entry point ``charterflow.connectors``): a platform in the list
without one is shown, never an error. ``--history`` adds every recorded step. ``retire`` continues
the retirement of a ``retiring`` platform (revoke its managed roles, then retire it); it needs
the platforms and the ledger, like ``roles apply``. Errors print one line ``error: …``, exit 2.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from importlib.metadata import entry_points
from typing import Any

import typer

from charterflow.cli_errors import migrated_ledger as _ledger
from charterflow.cli_errors import one_line_errors as _errors

GROUP = "charterflow.connectors"


def _day(at: datetime | None) -> str:
    return f"{at:%Y-%m-%d}" if at else "-"


def rows(session: Any, *, charter: Any, now: datetime) -> list[dict[str, Any]]:
    """One dict per platform: name, state, since, trial end, counted, connector."""
    # lazy: start-up: SQLAlchemy and the ledger, rules (pydantic)
    from ledger import platforms as ledger_platforms
    from rules.platforms import admin_platforms

    states = ledger_platforms.states(session, charter_platforms=charter.platforms)
    counted = set(admin_platforms(states, at=now))
    installed = {ep.name for ep in entry_points(group=GROUP)}
    return [
        {
            "platform": name,
            "state": s.state,
            "since": s.since,
            "trial_ends_at": s.trial_ends_at,
            "first_admin_at": s.first_admin_at,
            "admin_invariants": name in counted,
            "connector": "installed" if name in installed else "not installed",
        }
        for name, s in states.items()
    ]


def history_rows(session: Any) -> list[dict[str, Any]]:
    """Every recorded step, oldest first."""
    from ledger import platforms as ledger_platforms  # lazy: start-up: SQLAlchemy and the ledger

    return [
        {
            "id": r.id,
            "platform": r.platform,
            "state": r.state,
            "since": r.since,
            "trial_ends_at": r.trial_ends_at,
            "decided_by": r.decided_by,
            "proposal": r.proposal_id,
            "note": r.note,
        }
        for r in ledger_platforms.history(session)
    ]


def _table(items: list[dict[str, Any]], recorded: bool) -> str:
    lines = ["platform    state     since       trial ends  R-ADMIN  connector"]
    for r in items:
        lines.append(
            f"{r['platform'][:11]:<11} {r['state']:<9} {_day(r['since']):<11} "
            f"{_day(r['trial_ends_at']):<11} {'counts' if r['admin_invariants'] else '-':<8} "
            f"{r['connector']}"
        )
    if not recorded:
        lines.append("(from the charter file: no change recorded in the ledger yet)")
    return "\n".join(lines)


def _history(items: list[dict[str, Any]]) -> str:
    lines = ["history:"]
    for r in items:
        end = f" until {_day(r['trial_ends_at'])}" if r["trial_ends_at"] else ""
        by = f" by {r['decided_by']}" + (f" (proposal {r['proposal']})" if r["proposal"] else "")
        note = f": {r['note']}" if r["note"] else ""
        lines.append(f"  {_day(r['since'])} {r['platform']} {r['state']}{end}{by}{note}")
    return "\n".join(lines)


# The commands this module adds to `charterflow`: charterflow/cli.py does
# `app.add_typer(platforms_cli.app)`.
app = typer.Typer()
platforms = typer.Typer(
    help="The approved community platforms and their history (R-PLATFORM).", invoke_without_command=True
)


@platforms.callback()
def list_cmd(
    ctx: typer.Context,
    history: bool = typer.Option(False, "--history", help="Also every recorded step."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List the platforms: state, since, trial end, counted by R-ADMIN-1/2, connector."""
    if ctx.invoked_subcommand is not None:
        return
    from charterflow.charter import load_configured_charter  # lazy: start-up: the charter loader (pydantic)

    with _errors():
        charter = load_configured_charter()
        with _ledger().read() as session:
            items = rows(session, charter=charter, now=datetime.now(UTC))
            steps = history_rows(session)
    if as_json:
        out: dict[str, Any] = {"platforms": items}
        if history:
            out["history"] = steps
        typer.echo(json.dumps(out, indent=2, default=str))
        return
    typer.echo(_table(items, recorded=bool(steps)))
    if history:
        typer.echo(_history(steps) if steps else "history: nothing recorded yet")


@platforms.command("retire")
def retire_cmd(platform: str = typer.Argument(..., help="A retiring platform's name.")) -> None:
    """Continue a retiring platform's retirement: revoke its managed roles, then retire it."""
    # lazy: start-up: Prefect and the flows, rules (pydantic)
    from flows.kit import context
    from flows.platforms_state import retire
    from rules.platforms import check_name

    with _errors():
        name = check_name(platform)
        ctx = context(None)
        result = retire(ctx, platform=name, decision_ref=f"platform-retire:{name}")
    for key in result.get("revoked", []):
        typer.echo(f"revoked {key}")
    typer.echo(f"{name}: {result['status']}: {result['reason']}")
    if result["status"] != "retired":
        raise typer.Exit(1)


app.add_typer(platforms, name="platforms")
