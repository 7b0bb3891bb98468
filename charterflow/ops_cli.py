"""`charterflow doctor` and `charterflow deploy` (registered by ``charterflow.cli``).

``doctor`` checks each configured platform (read-only) and prints one line per check, ``ok`` or
``FAIL`` with what to fix; it exits 1 when a check failed or nothing is configured.
``deploy --work-pool NAME`` registers every deployment to a Prefect work pool (see
``charterflow/deploy.py``). Other errors: one ``error:`` line on stderr, exit 2.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import typer

from charterflow.cli_errors import fail, one_line_errors


def doctor(
    platform: list[str] | None = typer.Option(
        None,
        "--platform",
        help="Check only this platform (repeatable): discord, discourse, slack, or a plugin's (matrix).",
    ),
    sandboxes: bool = typer.Option(
        False, "--sandboxes", help="Check the three sandboxes (default seeds) served on 127.0.0.1 instead."
    ),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per check instead of text lines."),
) -> None:
    """Check tokens, permissions, role positions, scopes, configured names and secrets."""
    # lazy: start-up: the connectors, the flows' and the gateway's settings (doctor)
    from charterflow.doctor import run_doctor
    from charterflow.doctor import sandboxes as serve_sandboxes

    # Each failure becomes a check line; the connectors' retry logs would only repeat it.
    logging.getLogger("charterflow.connectors").setLevel(logging.CRITICAL)
    with one_line_errors():
        if sandboxes:
            with serve_sandboxes() as fields:
                report = run_doctor(platforms=platform, overrides=fields, env_file=None)
        else:
            report = run_doctor(platforms=platform)
    for check in report.checks:
        typer.echo(json.dumps(check.as_dict(), ensure_ascii=False) if as_json else check.line())
    if not as_json:
        for name in report.skipped:
            typer.echo(f"--    {name:<9} not configured (no CHARTERFLOW_{name.upper()}_* variable): skipped")
    failures = sum(not c.ok for c in report.checks)
    platforms_run = sorted({c.platform for c in report.checks} - {"gateway"})
    if not platforms_run:
        typer.echo(
            "FAIL  no platform is configured: set the CHARTERFLOW_DISCORD_*, CHARTERFLOW_DISCOURSE_* or "
            "CHARTERFLOW_SLACK_* variables (docs/production.md), or try --sandboxes",
            err=False,
        )
        raise typer.Exit(1)
    if not as_json:
        typer.echo(
            f"{len(report.checks)} checks, {failures} failed" if failures else f"{len(report.checks)} checks, all ok"
        )
    raise typer.Exit(1 if failures else 0)


def _job_variables(pairs: list[str]) -> dict[str, object]:
    out: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            fail(f"--job-variable {pair!r}: expected KEY=VALUE (VALUE may be JSON)")
        try:
            out[key.strip()] = json.loads(value)
        except ValueError:
            out[key.strip()] = value
    return out


def deploy(
    work_pool: str = typer.Option(..., "--work-pool", help="The Prefect work pool to register the deployments to."),
    create_pool: bool = typer.Option(False, "--create-pool", help="Create the pool if it does not exist."),
    pool_type: str = typer.Option(
        "process", "--pool-type", help="Type of a pool made by --create-pool: process, docker, kubernetes…"
    ),
    image: str | None = typer.Option(
        None, "--image", help="Docker/Kubernetes pools: an image with charterflow installed."
    ),
    working_dir: Path | None = typer.Option(
        None, "--working-dir", help="Where flow runs start (process pools default to this directory)."
    ),
    work_queue: str | None = typer.Option(None, "--work-queue", help="A queue of the pool (default: its default)."),
    job_variable: list[str] | None = typer.Option(
        None, "--job-variable", help="KEY=VALUE job variable for every deployment (repeatable; VALUE may be JSON)."
    ),
) -> None:
    """Register every deployment, with its schedules, to a Prefect work pool (for workers)."""
    # lazy: start-up: httpx, Prefect
    import httpx
    from prefect.settings import PREFECT_API_URL

    from charterflow.deploy import deploy_to_pool  # lazy: start-up: Prefect and every flow (deploy)

    if not work_pool.strip():
        fail("--work-pool needs a name")
    api = PREFECT_API_URL.value()
    if not api:  # else Prefect would start a throwaway in-process server no worker can see
        fail(
            "PREFECT_API_URL is not set: set it to the Prefect server the workers poll "
            "(e.g. http://prefect.internal:4200/api)"
        )
    variables = _job_variables(job_variable or [])
    with one_line_errors():
        try:
            done = deploy_to_pool(
                work_pool=work_pool.strip(),
                create_pool=create_pool,
                pool_type=pool_type,
                image=image,
                working_dir=working_dir,
                work_queue=work_queue,
                job_variables=variables,
                echo=typer.echo,
            )
        except httpx.HTTPError as exc:
            fail(
                f"cannot reach the Prefect API at {api} ({type(exc).__name__}): start the server or fix PREFECT_API_URL"
            )
        except Exception as exc:  # Prefect's own errors (a refused deployment) as one line
            if type(exc).__module__.startswith("prefect"):
                fail(f"Prefect refused: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
            raise
    typer.echo(
        f"{len(done)} deployments in work pool {work_pool!r}; start a worker with: "
        f"prefect worker start --pool {work_pool}"
    )


# The commands this module adds to `charterflow`: charterflow/cli.py does
# `app.add_typer(ops_cli.app)`.
app = typer.Typer()
app.command("doctor")(doctor)
app.command("deploy")(deploy)
