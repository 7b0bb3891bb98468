"""`charterflow demo`: drive one story through a running `charterflow up` (see ``charterflow.demo``)."""

from __future__ import annotations

import typer

from charterflow.cli_errors import fail


def demo(
    timeout: float = typer.Option(120.0, "--timeout", min=1.0, help="Seconds each step may take to show its effect."),
) -> None:
    """Apply, confirm, vote and onboard; add a moderator; escalate a platform trial to the Board
    and approve it in Slack; file and triage an idea. Each step prints the Prefect UI links of
    its flow runs. Needs `charterflow up` running with the same CHARTERFLOW_HOME."""
    import httpx  # lazy: start-up: httpx

    # lazy: start-up: the demo (SQLAlchemy and the ledger), pydantic-settings
    from charterflow.demo import DemoFailed, run_demo
    from charterflow.settings import get_settings

    settings = get_settings()
    try:
        runs = run_demo(home=settings.home.resolve(), ledger_url=settings.ledger_url(), say=typer.echo, timeout=timeout)
    except DemoFailed as exc:
        fail(str(exc), code=1)
    except httpx.HTTPStatusError as exc:
        fail(
            f"{exc.request.method} {exc.request.url.path} answered HTTP {exc.response.status_code}: "
            f"{exc.response.text[:200]}",
            code=1,
        )
    except httpx.HTTPError as exc:
        fail(f"the running stack did not answer ({type(exc).__name__}); is `charterflow up` still up?", code=1)
    typer.echo(f"{len(runs)} runs, each linked above.")


# The commands this module adds to `charterflow`: charterflow/cli.py does
# `app.add_typer(demo_cli.app)`.
app = typer.Typer()
app.command("demo")(demo)
