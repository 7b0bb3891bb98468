"""Flow runs that a killed process left ``Running``: each run that a process of ours runs itself
(the inbox's flow runs, the inline scheduled runs) carries a ``host:<host>-<pid>`` tag, and the
process `up` starts in its place marks those whose process is gone ``Crashed``, so the UI does not
show them running for ever."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterId,
    FlowFilter,
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
    FlowRunFilterTags,
)
from prefect.client.schemas.objects import StateType
from prefect.states import Crashed

from flows.kit import process_gone

log = logging.getLogger("charterflow.workers")


def host_tag() -> str:
    """The tag that names this process on this host (``host:<host>-<pid>``)."""
    return f"host:{socket.gethostname()}-{os.getpid()}"


def dead_process(tags: Sequence[str], host: str) -> int | None:
    """The pid of a ``host:<host>-<pid>`` tag when that process no longer runs, else None
    (another host's, this process's, or alive)."""
    prefix = f"host:{host}-"
    for tag in tags:
        pid = tag.removeprefix(prefix) if tag.startswith(prefix) else ""
        if pid.isdigit() and process_gone(int(pid)):
            return int(pid)
    return None


def end_orphans(
    client: Any,
    *,
    what: str,
    flows: FlowFilter | None = None,
    deployments: list[UUID] | None = None,
    tags: Sequence[str] = (),
) -> int:
    """Mark ``Crashed`` the flow runs still ``Running`` (of ``flows``, or of ``deployments``,
    with ``tags``) whose process on this host no longer runs (killed: `up` started this one in
    its place), so the UI does not show them running for ever; how many. ``client`` is a sync
    Prefect client; a failure costs only the display."""
    host = socket.gethostname()
    try:
        runs = client.read_flow_runs(
            flow_filter=flows,
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=deployments)) if deployments else None,
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.RUNNING])),
                tags=FlowRunFilterTags(all_=list(tags)) if tags else None,
            ),
            limit=200,
        )
        ended = 0
        for run in runs:
            pid = dead_process(run.tags, host)
            if pid is not None:
                message = f"its workers process ({host}, pid {pid}) ended while it ran"
                client.set_flow_run_state(run.id, Crashed(message=message), force=True)
                log.info("%s: flow run %s marked crashed: %s", what, run.name, message)
                ended += 1
        return ended
    except Exception as exc:  # noqa: BLE001 - the Prefect API down: the runs stay as shown
        log.warning("%s: could not look for orphaned flow runs (%s)", what, type(exc).__name__)
        return 0
