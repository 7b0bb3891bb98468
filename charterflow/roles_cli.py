"""`charterflow roles plan|apply` (roles as code, issue 9).

``plan`` reads the desired platform roles from the ledger and the observed ones from every
configured platform and prints the difference per platform (grants, revocations) and the
guardrails' verdict (R-ADMIN-1, R-ADMIN-2, R-ADMIN-3, the removal limit). Nothing is sent.
``apply --confirm`` applies exactly the plan it prints and records every change; without
``--confirm`` it is the same as ``plan``. A refused plan exits 1, naming the ruling and the
state that would have resulted; ``--override-reason`` lets it through and records the reason.
Other errors print one line ``error: …`` to stderr and exit 2.
"""

from __future__ import annotations

from typing import Optional

import typer

from charterflow.cli_errors import fail as _fail, one_line_errors as _errors

OVERRIDE_HELP = ("Apply a plan the guardrails refuse; the reason is recorded in the audit log "
                 "and the refusals become warnings.")




def _run(*, confirm: bool, override_reason: Optional[str], actor: str) -> None:
    from flows.membership.common import context
    from flows.roles.plan import apply_plan, build_plan, decision_ref_for, format_plan, record_refusal

    with _errors():
        if override_reason is not None and not override_reason.strip():
            raise ValueError("--override-reason needs a reason")
        ctx = context(None)
        shown = build_plan(ctx, override_reason=override_reason)
        typer.echo(format_plan(shown))
        if not shown.allowed:
            if confirm:
                record_refusal(ctx, shown, decision_ref=decision_ref_for(ctx), actor=actor)
            typer.echo(f"refused by {shown.plan.decision.ruling}: nothing sent", err=True)
            raise typer.Exit(1)
        if not confirm:
            typer.echo("dry run: nothing sent (apply with `charterflow roles apply --confirm`)")
            return
        if not shown.plan.changes:
            typer.echo("nothing to apply")
            return
        result = apply_plan(ctx, shown, decision_ref=decision_ref_for(ctx), actor=actor)
        for key in result["applied"]:
            typer.echo(f"applied {key}")
        for key in result["not_applied"]:
            typer.echo(f"NOT applied {key}")
        for item in result["refused"] + result["unexpected"]:
            typer.echo(f"unexpected: {item}")
        if result["not_applied"] or result["refused"] or result["unexpected"]:
            raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add the ``roles`` command group to ``app``."""
    roles = typer.Typer(help="Platform roles as code: plan, then apply (R-ADMIN-1..3).",
                        no_args_is_help=True)

    @roles.command("plan")
    def plan_cmd(
        override_reason: Optional[str] = typer.Option(None, "--override-reason", help=OVERRIDE_HELP),
    ) -> None:
        """Show the difference between the ledger and the platforms, and the verdict. Sends nothing."""
        _run(confirm=False, override_reason=override_reason, actor="operator")

    @roles.command("apply")
    def apply_cmd(
        confirm: bool = typer.Option(False, "--confirm", help="Send the changes (else a dry run)."),
        override_reason: Optional[str] = typer.Option(None, "--override-reason", help=OVERRIDE_HELP),
        actor: str = typer.Option("operator", "--actor",
                                  help="Who acts, as an audit reference (operator, person:12, …)."),
    ) -> None:
        """Apply exactly the plan shown, and record every change (only with --confirm)."""
        _run(confirm=confirm, override_reason=override_reason, actor=actor)

    app.add_typer(roles, name="roles")
