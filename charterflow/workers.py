"""The `flows` process of `charterflow up`: the runner serving every deployment and the inbox
task worker, in one process (``python -m charterflow.workers``, started by ``up.py``).

Both import Prefect and every flow; one process holds them once, about 170 MiB less than two
(bench/startup.py). The runner keeps the main thread (it handles SIGTERM there); the task worker
runs on a thread with its own event loop. Should either end on its own, the whole process ends,
so that `up` restarts both and dispatches the inbox events in flight again.
"""

from __future__ import annotations

import os
import sys
import threading


def _task_worker() -> None:
    from flows import inbox

    try:
        inbox.main([])
    except BaseException as exc:  # noqa: BLE001 - anything: the process must not go on half
        print(f"flows: the inbox task worker stopped: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
    else:
        print("flows: the inbox task worker stopped", file=sys.stderr, flush=True)
    os._exit(3)


def main() -> None:
    """Serve the deployments and the inbox task until SIGTERM/SIGINT."""
    import flows.inbox  # noqa: F401 - imported here first, not by two threads at once
    from flows.serve import main as serve

    threading.Thread(target=_task_worker, name="inbox-task-worker", daemon=True).start()
    serve()


if __name__ == "__main__":
    main()
