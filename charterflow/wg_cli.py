"""`charterflow wg roles|appoint`: the working group's own roles (R-ROLE-APPOINT).

``wg roles`` reads the ledger: who holds what since when, what is vacant and who fills it, and
the appointments under way. ``wg appoint ROLE HANDLE`` starts the charter's way of filling the
role, after checking it against R-ROLE-*: Chair and Co-Chair a WG ballot (``--by`` the proposing
member), the CoC Liaison a confirmation link e-mailed to the CoC WG's contact, the Board Liaison
a question in the Board's Slack channel. The explanation (the rule and any warning) is printed;
a refusal exits 2 and nothing is announced.
"""

from __future__ import annotations

import json
from typing import Any

import typer

from charterflow.cli_errors import fail
from charterflow.cli_errors import migrated_ledger as _ledger
from charterflow.cli_errors import one_line_errors as _errors

ROLE_NAMES = {
    "chair": "chair",
    "co-chair": "co_chair",
    "co_chair": "co_chair",
    "coc-liaison": "coc_liaison",
    "coc_liaison": "coc_liaison",
    "board-liaison": "board_liaison",
    "board_liaison": "board_liaison",
}

wg_app = typer.Typer(
    help="The working group's own roles: who holds what, appointments (R-ROLE-APPOINT).", no_args_is_help=True
)


def table(found: dict[str, Any]) -> str:
    """The roles as ``wg roles`` prints them."""
    lines = [f"{'role':<15} {'holder':<18} {'since':<11} how it is filled"]
    for r in found["roles"]:
        holder = r["holder"] or ("(vacant, optional)" if r["optional"] else "(vacant)")
        lines.append(
            f"{r['label']:<15} {holder:<18} {r['since'] or '-':<11} {r['appointed_by']}"
            + (f" (assigned by {r['assigned_by']})" if r["assigned_by"] else "")
        )
    if found["open"]:
        lines.append("under way:")
        lines.extend(
            f"  #{o['id']} {o['label']}: {o['nominee']} ({o['status']}, via {o['via']}"
            + (f", ballot {o['ballot']}" if o["ballot"] else "")
            + ")"
            for o in found["open"]
        )
    lines.append("vacant: " + (", ".join(found["vacant"]) or "none"))
    return "\n".join(lines)


@wg_app.command("roles")
def roles_command(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Who holds each WG role, what is vacant, and the appointments under way."""
    from flows.wg_roles.common import status  # lazy: start-up: Prefect and the flows

    with _errors():
        found = status(_ledger())
    typer.echo(json.dumps(found, indent=2) if as_json else table(found))


@wg_app.command("appoint")
def appoint_command(
    role: str = typer.Argument(..., help="chair, co-chair, coc-liaison or board-liaison."),
    handle: str = typer.Argument(..., help="The nominee's WG handle."),
    by: str | None = typer.Option(
        None, "--by", help=("Chair/Co-Chair: the proposing voting member's handle; Board Liaison: who asks.")
    ),
) -> None:
    """Start filling ROLE with HANDLE the charter's way, after the R-ROLE-* check."""
    name = ROLE_NAMES.get(role.strip().lower())
    if name is None:
        fail(f"role: {role!r} is not one of chair, co-chair, coc-liaison, board-liaison")
    with _errors():
        out = _start(name, handle, by)
    typer.echo(out["explanation"])
    if out["status"] == "refused":
        raise typer.Exit(2)
    where = {
        "voting": f"ballot {out.get('ballot')} is open on {', '.join(out.get('platforms', []))}",
        "pending": "waiting for the "
        + ("CoC WG contact's confirmation (link e-mailed)" if name == "coc_liaison" else "Board's decision in Slack"),
    }
    typer.echo(f"appointment #{out['appointment']}: {where.get(out['status'], out['status'])}")


def _start(role: str, handle: str, by: str | None) -> dict[str, Any]:
    from flows.kit import context  # lazy: start-up: Prefect and the flows

    if role in ("chair", "co_chair"):
        from flows.wg_roles.ballot import open_step  # lazy: start-up: Prefect and the flows

        if not by:
            fail("--by: a Chair or Co-Chair is proposed by a voting member (their handle)")
        return open_step(context(None), role=role, nominee=handle, proposed_by=by)
    if role == "coc_liaison":
        from flows.wg_roles.coc import name_step  # lazy: start-up: Prefect and the flows

        return name_step(context(None), nominee=handle)
    # lazy: start-up: Prefect and the flows
    from flows.board.common import board_context
    from flows.wg_roles.board import ask_step

    return ask_step(board_context(None), nominee=handle, requested_by=by or "operator")


# `charterflow` adds this module with `app.add_typer(wg_cli.app)`.
app = typer.Typer()
app.add_typer(wg_app, name="wg")
