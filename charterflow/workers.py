"""The Prefect-side processes of `charterflow up`. `up` runs one, ``python -m charterflow.workers
both``: every deployment, with its schedules (Prefect's runner), and the inbox pump that handles
the gateway's inbox events, on one event loop (:mod:`flows.serving`). For operators who want them
apart, ``python -m charterflow.workers runner`` and ``python -m charterflow.workers inbox`` run
one each.

The runner side imports Prefect and every flow while the server starts, then waits for its
``/health`` (rather than failing and being restarted); ``inbox`` alone waits first and imports
after, leaving the CPU to what `up` waits for. The runner writes the names of its deployments
to ``<home>/flows-deployments.json``, and `up` waits until the server has them (on a warm start,
from the last run: the runner is then still registering them again when the banner shows, as it
always was).

One process holds Prefect and the flows once: 137 MiB less than two after the demo (bench/README.md,
start-up). A first attempt hung after a restart of the Prefect server: its task worker ran on
Prefect's global loop thread, which a run's thread waited for while holding the lock Prefect's
services share; :mod:`flows.serving` keeps our loop off that thread.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import urllib.request
from datetime import timedelta
from pathlib import Path

API_WAIT_SECONDS = 300.0
DEPLOYMENTS_FILE = "flows-deployments.json"
READY_FILE_ENV = "CHARTERFLOW_READY_FILE"  # set by `up` for an inbox pump it watches


def wait_for_api() -> None:
    """Until the Prefect server answers (the runner would fail at once without it). The
    standard library's client and `up`'s ``PREFECT_API_URL``: a process can wait before it
    imports Prefect."""
    url = os.environ.get("PREFECT_API_URL", "").rstrip("/")
    if not url:  # not started by `up`: Prefect's own settings (a profile, say)
        from prefect.settings import PREFECT_API_URL  # lazy: start-up: Prefect, only without `up`

        url = str(PREFECT_API_URL.value() or "").rstrip("/")
    deadline = time.monotonic() + API_WAIT_SECONDS
    while url and time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (OSError, ValueError):  # refused, timed out, or an HTTP error status
            pass
        time.sleep(0.1)


def announce(names: list[str]) -> None:
    """Write the deployment names for `up`, atomically."""
    # lazy: start-up: pydantic-settings stays out of the inbox worker until the server answers
    from charterflow.settings import get_settings

    home = get_settings().home
    home.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".flows-", dir=home)
    with os.fdopen(fd, "w") as out:
        json.dump(names, out)
    os.replace(tmp, home / DEPLOYMENTS_FILE)


def serve_deployments() -> int:
    """Serve every deployment until SIGTERM/SIGINT (the frequent ones in this process, the
    others a process per run; ``CHARTERFLOW_INLINE_MAX_INTERVAL``); the exit code. Also
    `charterflow serve`."""
    # lazy: start-up: Prefect and every flow, in the runner only (the inbox worker waits first)
    from charterflow.settings import get_settings
    from flows.serve import deployments
    from flows.serving import serve

    served = deployments()
    names = sorted(f"{d.flow_name}/{d.name}" for d in served)
    wait_for_api()
    announce(names)
    return serve(served, [], limit=None, inline_max=timedelta(seconds=get_settings().inline_max_interval))


def runner() -> None:
    """Serve every deployment until SIGTERM/SIGINT."""
    sys.exit(serve_deployments())


def inbox() -> None:
    """Serve the inbox task until SIGTERM/SIGINT."""
    # Prefect and every flow only once the server answers: meanwhile the two cores go to the
    # server, the runner, the gateway and the sandboxes, which the banner waits for (about
    # 5 s of CPU out of a warm start's way; bench/README.md). Events that come before the
    # worker serves wait as Prefect's scheduled task runs.
    wait_for_api()
    # flows.inbox, not a second copy as __main__: the capability packages register their
    # handlers into flows.inbox.
    from flows.inbox import main as serve  # lazy: start-up: Prefect and every flow, once the server answers

    serve([], serving=_ready)


def _ready() -> None:
    """Say this pump serves, where `up` looks (charterflow.up: the banner waits for a second
    pump; the stall watch gives a restarted one time to start)."""
    ready = os.environ.get(READY_FILE_ENV)
    if ready:
        Path(ready).parent.mkdir(parents=True, exist_ok=True)
        Path(ready).write_text(str(os.getpid()))


def both() -> None:
    """Serve every deployment and the inbox task, in one process, until SIGTERM/SIGINT."""
    # lazy: start-up: Prefect and every flow, imported while the server starts (as the runner)
    from charterflow.settings import get_settings
    from flows.inbox import inbox_serving, prepare
    from flows.serve import deployments
    from flows.serving import serve

    served = deployments()
    names = sorted(f"{d.flow_name}/{d.name}" for d in served)
    wait_for_api()
    announce(names)
    prepare()
    settings = get_settings()
    tasks, pump = inbox_serving(limit=settings.inbox_concurrency)
    _ready()
    sys.exit(serve(served, tasks, pump=pump, inline_max=timedelta(seconds=settings.inline_max_interval)))


def main(argv: list[str] | None = None) -> None:
    role = (sys.argv[1:] if argv is None else argv)[:1]
    if role == ["both"]:
        both()
    elif role == ["runner"]:
        runner()
    elif role == ["inbox"]:
        inbox()
    else:
        print("usage: python -m charterflow.workers both|runner|inbox (started by `charterflow up`)", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
