"""`charterflow roles plan|apply|dump|import|training` (roles as code, issue 9).

``plan`` reads the desired platform roles from the ledger and the observed ones from every
configured platform and prints the difference per platform (grants, revocations) and the
guardrails' verdict (R-ADMIN-1, R-ADMIN-2, R-ADMIN-3, the removal limit). Nothing is sent.
``apply --confirm`` applies exactly the plan it prints and records every change; without
``--confirm`` it is the same as ``plan``. A refused plan exits 1, naming the ruling and the
state that would have resulted; ``--override-reason`` lets it through and records the reason.
A platform that is not reached (not configured, or not answering) makes the verdict on it
*unknown*: ``plan`` says so, ``apply --confirm`` sends nothing (exit 1) unless overridden.
A Discourse admin grant is reported ``PENDING`` (Discourse e-mailed a confirmation link to its
API admin; ``roles plan`` shows it applied once the link is opened). A platform refusing a change
(Discord 50013, Discourse 404 on admin routes) stops the run: what was applied is listed, then
``FAILED`` with the platform's instruction, exit 1; running apply again sends only the rest.
``dump [--out FILE]`` writes today's observed roles in the roster format; ``import FILE`` records
them as the ledger's wishes. ``training`` lists who has and has not acknowledged the moderation
guide; ``training ack HANDLE PLATFORM`` records an acknowledgement received another way.
Other errors print one line ``error: …`` to stderr and exit 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from charterflow.cli_errors import one_line_errors as _errors
from connectors.errors import ConnectorError

OVERRIDE_HELP = (
    "Apply a plan the guardrails refuse; the reason is recorded in the audit log and the refusals become warnings."
)


def _run(*, confirm: bool, override_reason: str | None, actor: str) -> None:
    # lazy: start-up: Prefect and the flows
    from flows.kit import context
    from flows.roles.plan import apply_plan, build_plan, decision_ref_for, explain, format_plan, record_refusal

    with _errors():
        if override_reason is not None and not override_reason.strip():
            raise ValueError("--override-reason needs a reason")
        ctx = context(None)
        try:
            shown = build_plan(ctx, override_reason=override_reason, tolerate_unreachable=True)
        except ConnectorError as exc:  # reading a platform failed: say what to fix there
            raise ConnectorError(explain(exc.platform, str(exc)), platform=exc.platform, status=exc.status) from None
        typer.echo(format_plan(shown))
        if not shown.allowed:
            if confirm:
                record_refusal(ctx, shown, decision_ref=decision_ref_for(ctx), actor=actor)
            typer.echo(f"refused by {shown.plan.decision.ruling}: nothing sent", err=True)
            raise typer.Exit(1)
        if not confirm:
            typer.echo("dry run: nothing sent (apply with `charterflow roles apply --confirm`)")
            return
        if shown.unreached and not override_reason:
            # R-ADMIN-3 looks at every platform at once: a plan judged on some cannot be sent.
            typer.echo(
                f"verdict unknown for {', '.join(sorted(shown.unreached))}: nothing sent "
                "(reach every platform, or apply with --override-reason)",
                err=True,
            )
            raise typer.Exit(1)
        if not shown.plan.changes:
            typer.echo("nothing to apply")
            return
        _report(apply_plan(ctx, shown, decision_ref=decision_ref_for(ctx), actor=actor))


def _report(result: dict[str, Any]) -> None:
    """One line per change applied, pending, failed or not applied; exit 1 unless all applied."""
    for key in result["applied"]:
        typer.echo(f"applied {key}")
    for key in result["pending"]:
        typer.echo(
            f"PENDING {key}: Discourse e-mailed a confirmation link to its API admin; "
            "the grant counts once it is opened (check with `charterflow roles plan`)"
        )
    for key, why in result["failed"].items():
        typer.echo(f"FAILED {key}: {why}")
    for key in result["not_applied"]:
        if key not in result["pending"] and key not in result["failed"]:
            typer.echo(f"NOT applied {key}")
    for item in result["refused"] + result["unexpected"]:
        typer.echo(f"unexpected: {item}")
    if result["failed"]:
        typer.echo(
            "stopped at the first platform error: fix the platform setting above, "
            "then apply again (only what is missing is sent)",
            err=True,
        )
    if result["not_applied"] or result["refused"] or result["unexpected"]:
        raise typer.Exit(1)


# The commands this module adds to `charterflow`: charterflow/cli.py does
# `app.add_typer(roles_cli.app)`.
app = typer.Typer()
roles = typer.Typer(help="Platform roles as code: plan, then apply (R-ADMIN-1..3).", no_args_is_help=True)


@roles.command("plan")
def plan_cmd(
    override_reason: str | None = typer.Option(None, "--override-reason", help=OVERRIDE_HELP),
) -> None:
    """Show the difference between the ledger and the platforms, and the verdict. Sends nothing."""
    _run(confirm=False, override_reason=override_reason, actor="operator")


@roles.command("apply")
def apply_cmd(
    confirm: bool = typer.Option(False, "--confirm", help="Send the changes (else a dry run)."),
    override_reason: str | None = typer.Option(None, "--override-reason", help=OVERRIDE_HELP),
    actor: str = typer.Option("operator", "--actor", help="Who acts, as an audit reference (operator, person:12, …)."),
) -> None:
    """Apply exactly the plan shown, and record every change (only with --confirm)."""
    _run(confirm=confirm, override_reason=override_reason, actor=actor)


@roles.command("dump")
def dump_cmd(
    out: Path | None = typer.Option(None, "--out", help="Write to FILE (default: stdout)."),
) -> None:
    """Write today's observed platform roles in the roster format (reads only)."""
    # lazy: start-up: Prefect and the flows
    from flows.kit import context
    from flows.roles.dump import dump_roles

    with _errors():
        text = dump_roles(context(None))
        if out is None:
            typer.echo(text)
        else:
            out.write_text(text + "\n", encoding="utf-8")
            typer.echo(f"wrote {out}", err=True)


@roles.command("import")
def import_cmd(
    file: Path = typer.Argument(..., help="A file written by `roles dump` (edited or not)."),
    actor: str = typer.Option("operator", "--actor", help="Who acts, as an audit reference."),
) -> None:
    """Record a dump's people, accounts and platform roles in the ledger (sends nothing)."""
    # lazy: start-up: Prefect and the flows
    from flows.kit import context
    from flows.roles.dump import import_roles

    with _errors():
        text = file.read_text(encoding="utf-8")
        result = import_roles(context(None), text, source=str(file), actor=actor)
        typer.echo(
            f"{file}: {result['people']} people; {result['recorded']} role(s) "
            f"recorded as desired ({result['decision']}); see `charterflow roles plan`"
        )


training = typer.Typer(
    help="Moderator training (R-TRAIN): who has acknowledged the guide.", invoke_without_command=True
)


@training.callback()
def training_list(ctx: typer.Context) -> None:
    """List, per platform, who has and has not acknowledged the moderation guide, since when."""
    if ctx.invoked_subcommand is not None:
        return
    # lazy: start-up: Prefect and the flows
    from flows.kit import context
    from flows.roles.training import training_status

    with _errors():
        rows = training_status(context(None))
    if not rows:
        typer.echo("no moderator has been sent a moderation guide yet")
        return
    for platform in sorted({r["platform"] for r in rows}):
        mine = [r for r in rows if r["platform"] == platform]
        done = [r for r in mine if r["acknowledged_at"]]
        typer.echo(f"{platform}: {len(done)} of {len(mine)} acknowledged")
        for r in mine:
            since = f"{r['since']:%Y-%m-%d}" if r["since"] else "never sent"
            if r["acknowledged_at"]:
                state = f"acknowledged since {since}"
            elif r["sent_at"]:
                state = f"NOT acknowledged, sent {since}, {r['reminders']} reminder(s)"
            else:
                state = "NOT acknowledged, guide never sent"
            gone = "" if r["moderator"] else " (no longer a moderator)"
            typer.echo(f"  {r['handle']}: {state}{gone}")


@training.command("ack")
def training_ack(
    person: str = typer.Argument(..., help="The moderator's WG handle or person id."),
    platform: str = typer.Argument(..., help="discourse or discord"),
    actor: str = typer.Option("operator", "--actor", help="Who records it (audit reference)."),
) -> None:
    """Record an acknowledgement received another way (e.g. a Forum reply)."""
    # lazy: start-up: Prefect and the flows
    from flows.kit import context
    from flows.roles.training import acknowledge_by_operator

    with _errors():
        try:
            new = acknowledge_by_operator(context(None), person=person, platform=platform, actor=actor)
        except LookupError as exc:
            raise ValueError(str(exc).strip("'\"")) from None
    typer.echo("recorded" if new else "already acknowledged")


roles.add_typer(training, name="training")
app.add_typer(roles, name="roles")
