"""`charterflow gateway`: serve the gateway alone (webhooks, interactions, the /apply form);
`charterflow inbox list|retry`: the events it received that are not handled yet."""

from __future__ import annotations

import typer

from charterflow.cli_errors import migrated_ledger as ledger
from charterflow.cli_errors import one_line_errors

# The commands this module adds to `charterflow`: charterflow/cli.py does
# `app.add_typer(gateway_cli.app)`.
app = typer.Typer()

inbox = typer.Typer(help="The gateway's inbox: events received and not handled yet.", no_args_is_help=True)
app.add_typer(inbox, name="inbox")


@inbox.command("list")
def inbox_list(limit: int = typer.Option(100, "--limit", min=1, max=10_000)) -> None:
    """Every unprocessed event, oldest first: its route, attempts and state. An event noted
    dispatch-gave-up was dispatched five times without being handled (see its runs in
    the Prefect UI: task runs named inbox-<route>-<id>); `charterflow inbox retry ID`."""
    from ledger import repo  # lazy: start-up: SQLAlchemy and the ledger

    with one_line_errors():
        with ledger().read() as session:
            rows = repo.inbox_unprocessed(session, limit=limit)
            typer.echo(f"{'id':>6}  {'received (UTC)':16}  {'source/kind':28}  {'route':18}  tries  state")
            for e in rows:
                state = e.dispatch_note or ("dispatched" if e.dispatched_at else "waiting")
                typer.echo(
                    f"{e.id:>6}  {e.received_at:%Y-%m-%d %H:%M}  "
                    f"{(e.source + '/' + e.kind)[:28]:28}  {(e.route or '-')[:18]:18}  "
                    f"{e.dispatch_attempts:>5}  {state}"
                )
            typer.echo(f"{len(rows)} unprocessed")


@inbox.command("retry")
def inbox_retry(event_id: int = typer.Argument(..., help="The event's id (inbox list).")) -> None:
    """Dispatch an unprocessed event again, as a new run (the gateway's drain loop starts
    it within seconds). The handlers are idempotent: nothing done already is done twice."""
    from ledger import repo  # lazy: start-up: SQLAlchemy and the ledger

    with one_line_errors():
        with ledger().transaction() as session:
            event = repo.inbox_retry(session, event_id, actor="operator")
            typer.echo(f"inbox:{event.id} ({event.route}) will be dispatched again (attempt {event.dispatch_attempts})")


@app.command("gateway")
def gateway(
    host: str | None = typer.Option(None, "--host", help="Interface (default CHARTERFLOW_GATEWAY_HOST, 0.0.0.0)."),
    port: int | None = typer.Option(
        None, "--port", help="Port (default CHARTERFLOW_GATEWAY_PORT, 8080; 0 = any free port)."
    ),
) -> None:
    """Serve the gateway until Ctrl-C; prints the form URL. Prefect: PREFECT_API_URL."""
    from gateway.serve import serve  # lazy: start-up: the gateway (FastAPI)

    code = serve(host, port)
    if code:
        raise typer.Exit(code)
