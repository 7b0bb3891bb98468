"""A runner serving only the ballot closer (which onboards approved applicants), for the
reliability suite's SIGKILL test: ``python -m tests.reliability.serve_closer``."""

from __future__ import annotations

from prefect import serve

from flows.membership.ballot import close_due_ballots

DEPLOYMENT = "reliability-closer"

if __name__ == "__main__":
    serve(
        close_due_ballots.to_deployment(name=DEPLOYMENT, tags=["charterflow", "reliability"]),
        print_starting_message=False,
        pause_on_shutdown=False,
    )
