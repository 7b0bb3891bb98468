"""`charterflow budget list|spend|close|link|seed`: budget requests from the Board's decision to
what was spent (R-BUDGET). They act on the ledger only (``flows.board.budget``); a refusal is
audited and printed as one line ``error: … (R-BUDGET)``, exit 2, as every other bad input.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import typer

from charterflow.cli_errors import migrated_ledger as _ledger
from charterflow.cli_errors import one_line_errors as _errors
from charterflow.cli_table import fixed_columns

COLUMNS = (
    ("id", 5),
    ("state", 10),
    ("cur", 4),
    ("asked", 12),
    ("approved", 12),
    ("spent", 12),
    ("left", 12),
    ("flag", 4),
    ("title", 0),
)


def _table(rows: list[dict[str, Any]], totals: dict[str, dict[str, str]]) -> str:
    lines = fixed_columns(COLUMNS, (_cells(r) for r in rows))
    for cur, t in totals.items():
        lines.append(
            f"total {cur}: asked {t['requested']}, approved {t['approved']}, spent {t['spent']}, left {t['left']}"
        )
    return "\n".join(lines)


def _cells(r: dict[str, Any]) -> dict[str, str]:
    return {
        "id": f"#{r['id']}",
        "state": r["state"],
        "cur": r["currency"] or "-",
        "asked": r["asked"] or "-",
        "approved": r["approved"] or "-",
        "spent": r["spent"],
        "left": r["left"] or "-",
        "flag": f"!{len(r['flagged'])}" if r["flagged"] else "",
        "title": r["title"][:70],
    }


def list_command(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Every budget request: state, amount asked, approved, spent, left, flagged records
    (spending over the approved amount), and the totals per currency."""
    from flows.board.budget import list_requests  # lazy: start-up: Prefect and the flows

    with _errors():
        found = list_requests(_ledger())
    if as_json:
        typer.echo(json.dumps(found, indent=2))
    elif not found["requests"]:
        typer.echo("no budget requests yet")
    else:
        typer.echo(_table(found["requests"], found["totals"]))


def spend_command(
    proposal: int = typer.Argument(..., help="The budget request (proposal number)."),
    amount: str = typer.Argument(..., help="How much, at most two decimals (e.g. 120.50)."),
    reference: str = typer.Option(
        ..., "--reference", "-r", help=("Invoice, receipt or link; the same one records nothing new.")
    ),
    by: str = typer.Option(..., "--by", help=("Your WG handle (only active members record spending).")),
    currency: str | None = typer.Option(None, "--currency", help="ISO 4217 code (default: the request's)."),
    reason: str | None = typer.Option(
        None,
        "--reason",
        help=("Why, when this goes over the approved amount (the record is then flagged in the Board's report)."),
    ),
) -> None:
    """Record spending on an approved budget request (R-BUDGET)."""
    from flows.board.budget import record_spending  # lazy: start-up: Prefect and the flows

    with _errors():
        out = record_spending(
            _ledger(),
            proposal_id=proposal,
            amount=amount,
            reference=reference,
            by=by,
            currency=currency,
            reason=reason,
            now=datetime.now(UTC),
        )
    word = "recorded" if out["recorded"] else "already recorded"
    flag = " (flagged: over the approved amount)" if out["flagged"] else ""
    typer.echo(
        f"{word}: {out['amount']} {out['currency']} on proposal #{out['proposal']}{flag}; "
        f"spent {out['spent']} of {out['approved']}, left {out['left']}"
    )


def close_command(
    proposal: int = typer.Argument(..., help="The budget request (proposal number)."),
    by: str = typer.Option(..., "--by", help="Your WG handle (an active member)."),
) -> None:
    """Close a decided budget request: no more spending is recorded on it."""
    from flows.board.budget import close_request  # lazy: start-up: Prefect and the flows

    with _errors():
        out = close_request(_ledger(), proposal_id=proposal, by=by, now=datetime.now(UTC))
    typer.echo(
        f"proposal #{proposal} {'closed' if out['closed'] else 'was already closed'}: "
        f"spent {out['spent']} of {out['approved'] or '-'} {out['currency']}"
    )


def link_command(
    idea: int = typer.Argument(..., help="The backlog item (idea number)."),
    proposal: int = typer.Argument(..., help="The budget request it led to."),
) -> None:
    """Link an idea about money to its budget request."""
    from flows.board.budget import link_idea  # lazy: start-up: Prefect and the flows

    with _errors():
        out = link_idea(_ledger(), idea_id=idea, proposal_id=proposal, now=datetime.now(UTC), actor="operator")
    note = "" if out["classified_as_money"] else " (note: triage did not classify it as money)"
    typer.echo(f"idea #{idea} {'linked to' if out['linked'] else 'was already linked to'} proposal #{proposal}{note}")


def seed_command() -> None:
    """File the charter's own budget ideas in the backlog (source ``charter``), once."""
    from flows.ideas.triage import seed_charter_ideas  # lazy: start-up: Prefect and the flows

    with _errors():
        rows = seed_charter_ideas(_ledger(), now=datetime.now(UTC))
    for r in rows:
        typer.echo(f"idea #{r['idea']} {'filed' if r['filed'] else 'already filed'}: {r['title']}")


# The commands this module adds to `charterflow`: charterflow/cli.py does
# `app.add_typer(budget_cli.app)`.
app = typer.Typer()
budget = typer.Typer(help="Budget requests from the Board's decision to spending (R-BUDGET).", no_args_is_help=True)
budget.command("list")(list_command)
budget.command("spend")(spend_command)
budget.command("close")(close_command)
budget.command("link")(link_command)
budget.command("seed")(seed_command)
app.add_typer(budget, name="budget")
