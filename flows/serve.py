"""Serve every deployment of charterflow from one runner process (``python -m flows.serve``).

`charterflow up` starts this next to the Prefect server. Later issues add their deployments
to :func:`deployments`.
"""

from __future__ import annotations

import sys

from prefect import serve


def deployments() -> list:
    """Every deployment the runner serves, with its schedules."""
    from flows.whatif import what_if

    return [
        what_if.to_deployment(
            name="operator",
            description="Ask the charter a what-if question (see rules/README.md).",
            tags=["charterflow", "rules"],
        ),
    ]


def main() -> None:
    """Serve until SIGTERM or SIGINT (Prefect's runner shuts down gracefully on both)."""
    try:
        serve(*deployments(), print_starting_message=False)
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
