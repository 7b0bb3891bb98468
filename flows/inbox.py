"""The Prefect side of the gateway: the routing table, and the background task that handles one
inbox event (``python -m flows.inbox`` serves it from a long-running task worker).

How an event travels (``gateway/README.md`` has the whole picture):

1. the gateway verifies a request, stores it with ``ledger.repo.inbox_put`` under its dedupe key
   and the route :func:`route_for` chose, and acknowledges;
2. a dispatcher (the gateway's, or its drain loop after an outage) calls :func:`dispatch_event`:
   it claims the event in the ledger (``inbox_claim``: one claimer wins) and creates a
   *background task run* of :data:`handle_inbox_event` in Prefect, named ``inbox-<route>-<id>``,
   under the dynamic key ``inbox-<id>-<attempt>``. Prefect returns the existing run for a key it
   already has, so a start that reached Prefect but whose answer was lost is not started twice;
   when Prefect cannot be reached the claim is released and the drain loop tries again;
3. the task worker runs it: :func:`handle_event` re-reads the event, does nothing when it is
   already processed, calls the handler of its route and marks it processed. A route whose flow
   is not built yet leaves the event unprocessed with the note ``awaiting-handler``; it is
   dispatched again when a handler for that route is registered.

The run carries no parameters: the event id is in its dynamic key. That keeps Prefect's result
storage out of the path (the gateway and the task worker need not share a file system) and
makes a dispatch one HTTP request.
"""

from __future__ import annotations

import faulthandler
import logging
import os
import re
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import task
from prefect.concurrency.services import ConcurrencySlotAcquisitionWithLeaseService
from prefect.context import TaskRunContext
from prefect.events import emit_event
from prefect.exceptions import ParameterTypeError

import flows.inbox_routing as routing
from charterflow.settings import get_settings
from connectors.errors import CharterflowError
from flows.board.decision import handle_board_decision
from flows.board.escalation import handle_board_proposal
from flows.commons import handlers as commons_handlers
from flows.guides import handlers as guides_handlers
from flows.ideas import handlers as ideas_handlers

# Routing and dispatch live in flows.inbox_routing (no Prefect, no flow: the gateway imports only
# that); they are this module's too, and the registry below fills theirs.
from flows.inbox_routing import (  # noqa: F401 - re-exported
    AWAITING_HANDLER,
    COMMAND_ROUTES,
    COMPONENT_ROUTES,
    CREATE_RETRY_DELAYS,
    DEFERRED_ROUTES,
    HANDLERS,
    RETRY_STATUSES,
    TASK_NAME,
    TASK_RETRIES,
    TASK_RETRY_DELAYS,
    Claim,
    DispatchResult,
    Handler,
    Route,
    RoutingConfig,
    claim_events,
    create_task_run,
    dispatch_event,
    dispatch_key,
    load_routes,
    prefect_http,
    prefect_setting,
    register_handler,
    register_route,
    register_task_key,
    route_for,
    routes_snapshot,
    run_tags,
    start_claimed,
    task_run_body,
)
from flows.membership import handlers as membership
from flows.membership.link import handle_link
from flows.moderation import handlers as moderation_handlers
from flows.platforms import current_platforms, use
from flows.reports import handlers as reports_handlers
from flows.roles import handlers as roles_handlers
from flows.safety import handlers as safety_handlers
from flows.wg_roles import handlers as wg_roles_handlers
from ledger import repo
from ledger.db import Ledger
from ledger.models import InboxEvent

__all__ = [
    "AWAITING_HANDLER",
    "HANDLERS",
    "ROUTES",  # noqa: F822 - served by __getattr__ below: rebound on each registration
    "Route",
    "RoutingConfig",
    "dispatch_event",
    "dispatch_key",
    "handle_event",
    "handle_inbox_event",
    "main",
    "register_handler",
    "register_route",
    "route_for",
]

log = logging.getLogger("charterflow.inbox")

ACTOR = "flow:inbox"


# --------------------------------------------------------------------------------------------
# Handlers


def _membership_handler(handle: Callable[..., str]) -> Handler:
    """Adapt a ``flows.membership.handlers`` function to the inbox's handler signature."""

    def run(*, ledger: Ledger, event: InboxEvent) -> str:
        platforms = current_platforms()
        # The flows the handler starts read the ledger through flows.platforms: make it this one.
        with use(ledger=ledger, platforms=platforms):
            return handle(event_id=event.id, ledger=ledger, platforms=platforms, now=datetime.now(UTC))

    return run


for _route, _handle in (
    (Route.LINK, handle_link),
    (Route.INTAKE, membership.handle_intake),
    (Route.CONFIRM, membership.handle_confirm),
    (Route.OPT_IN, membership.handle_optin),
    (Route.LEAVE, membership.handle_leave),
    (Route.VOTE, membership.handle_vote),
):
    HANDLERS[_route] = _membership_handler(_handle)

HANDLERS[Route.BOARD_DECISION] = handle_board_decision
HANDLERS[Route.BOARD_PROPOSAL] = handle_board_proposal

# Each capability package owns its routes (flows/<package>/handlers.py: register()), registered
# in this order (a Discord button prefix registered first wins).
for _package in (
    roles_handlers,
    ideas_handlers,
    reports_handlers,
    moderation_handlers,
    wg_roles_handlers,
    guides_handlers,
    commons_handlers,
    safety_handlers,
):
    _package.register()


def handle_event(ledger: Ledger, event_id: int, *, actor: str = ACTOR, claimed: InboxEvent | None = None) -> str:
    """Handle one inbox event, at most once in effect: ``already-processed``,
    ``awaiting-handler``, ``missing`` or the handler's result reference. ``claimed``: the event
    as this process claimed it a moment ago (not read again)."""
    event = claimed
    if event is None:
        with ledger.read() as session:  # a read: the ledger's writers need not wait for it
            event = session.get(InboxEvent, event_id)
    if event is None:
        return "missing"
    if event.processed_at is not None:
        return "already-processed"
    handler = HANDLERS.get(event.route or Route.UNKNOWN)
    if handler is None:
        with ledger.transaction() as session:
            event = session.get(InboxEvent, event_id, populate_existing=True)
            if event is None:
                return "missing"
            repo.inbox_set_note(session, event, note=AWAITING_HANDLER, actor=actor)
        return AWAITING_HANDLER
    try:
        result = handler(ledger=ledger, event=event)
    except Exception as exc:
        if not _refusable(event, exc):
            raise
        # A signed body that was valid but unusual JSON (its payload holds notes: a cut deep
        # part, a huge number kept as text): what the handler cannot read is refused, recorded.
        log.warning(
            "inbox event %s (%s/%s) refused: unreadable payload (%s)",
            event_id,
            event.source,
            event.kind,
            type(exc).__name__,
        )
        result = f"refused:unusual-body:{type(exc).__name__}"
    with ledger.transaction() as session:
        event = session.get(InboxEvent, event_id, populate_existing=True)
        if event is None:  # erased meanwhile
            return "missing"
        repo.inbox_mark_processed(session, event, actor=actor, result_ref=str(result)[:200])
    return str(result)


def _refusable(event: InboxEvent, exc: Exception) -> bool:
    """Whether a handler's failure on ``event`` is about its unusual payload (refuse it), not a
    passing fault (raise: the event stays for the next attempt)."""
    if not (event.payload or {}).get("notes") or isinstance(exc, CharterflowError):
        return False
    return isinstance(exc, (TypeError, ValueError, KeyError, AttributeError, IndexError, ParameterTypeError))


# --------------------------------------------------------------------------------------------
# Prefect: the background task and its dispatch

_KEY = re.compile(r"^inbox-(\d+)-(\d+)$")


def _ledger_from_settings() -> Ledger:
    global _worker_ledger
    with _worker_lock:  # the worker runs several events at once: one ledger (one pool) for all
        if _worker_ledger is None:
            _worker_ledger = Ledger(get_settings().ledger_url())
        return _worker_ledger


_worker_ledger: Ledger | None = None
_worker_lock = threading.Lock()


# persist_result=False: the result is the event's own record in the ledger. A result storage
# that is a path (never written) saves every run a request for the server's default storage.
TASK_OPTIONS: dict[str, Any] = {
    "name": TASK_NAME,
    "retries": TASK_RETRIES,
    "retry_delay_seconds": list(TASK_RETRY_DELAYS),
    "log_prints": False,
    "persist_result": False,
    "result_storage": Path(tempfile.gettempdir()),
}


@task(**TASK_OPTIONS)
def handle_inbox_event() -> str:
    """Handle the inbox event named by this run's dynamic key (``inbox-<id>-<attempt>``): the
    gateway's background runs (``push`` mode)."""
    context = TaskRunContext.get()
    match = _KEY.match(context.task_run.dynamic_key if context else "")
    if match is None:
        raise ValueError("inbox-dispatch runs are started by the gateway (dynamic key inbox-<id>-<n>)")
    return _handle_timed(int(match.group(1)))


@task(**TASK_OPTIONS)
def handle_pulled_event(event_id: int) -> str:
    """Handle inbox event ``event_id``: the pump's runs (``pull`` mode, ``flows.inbox_pump``)."""
    # The event as the pump claimed it; a retry of the run reads it again.
    return _handle_timed(event_id, routing.HANDED.pop(event_id, None))


def _handle_timed(event_id: int, claimed: InboxEvent | None = None) -> str:
    started = time.perf_counter()
    result = handle_event(_ledger_from_settings(), event_id, claimed=claimed)
    # In the worker's log: how long the handler took, apart from Prefect's part of the run.
    log.info("inbox event %s: %s in %.0f ms", event_id, result[:80], (time.perf_counter() - started) * 1000)
    return result


register_task_key(handle_inbox_event.task_key)  # the gateway creates its runs under this key


def __getattr__(name: str) -> Any:
    # ROUTES is rebound (a tuple) whenever a route is registered: always the current one.
    if name == "ROUTES":
        return routing.ROUTES
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def prepare() -> None:
    """What a process serving :data:`handle_inbox_event` does before it serves (here, or
    beside the runner: ``python -m charterflow.workers both``)."""
    log.setLevel(logging.INFO)  # one line per event handled, beside Prefect's own
    # `kill -USR1 <pid>` prints every thread's stack to the worker's log: what a stuck worker waits on.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    # Open the ledger before the first run, not in the first runs' threads at once (when
    # events waited for the worker, the first ten arrive together).
    try:
        with _ledger_from_settings().read():
            pass
    except Exception as exc:  # noqa: BLE001 - the runs report it; the worker serves anyway
        log.warning("inbox worker: the ledger is not reachable yet (%s)", type(exc).__name__)
    # An event in Prefect's feed when a worker starts; it also starts Prefect's events client
    # here, once, instead of in the first runs' threads and the worker's loop at the same time.
    emit_event(
        event="charterflow.inbox-worker.started",
        resource={"prefect.resource.id": f"charterflow.inbox-worker.{os.getpid()}"},
    )
    # A run's tags are checked for concurrency limits through a Prefect service made once per
    # set of tags, by the first run with that set, in the run's thread, under a lock all of
    # Prefect's services share (flows/serving.py says how that hung a worker whose loop was
    # Prefect's). Made here, before serving, for every route a run can have: no run waits.
    for route in sorted(HANDLERS):
        ConcurrencySlotAcquisitionWithLeaseService.instance(frozenset(f"tag:{t}" for t in run_tags(route)))


def inbox_serving(*, limit: int) -> tuple[list[Any], Any]:
    """What serves the inbox in this process, as ``flows.serving.serve`` takes it: the task of a
    task worker (``push`` mode: the gateway creates the runs), or an inbox pump (``pull``, the
    default: ``flows.inbox_pump``)."""
    if get_settings().inbox_dispatch == "push":
        return [handle_inbox_event], None
    from flows.inbox_pump import InboxPump  # lazy: start-up: only the process that serves the inbox

    return [], InboxPump(ledger=_ledger_from_settings, task=handle_pulled_event, limit=limit)


def main(argv: list[str] | None = None, *, serving: Callable[[], None] | None = None) -> None:
    """``python -m flows.inbox``: serve the inbox (:func:`inbox_serving`) until SIGTERM/SIGINT.
    ``--limit N`` caps concurrent runs (default ``CHARTERFLOW_INBOX_CONCURRENCY``). ``serving``
    is called once the pump is made, just before it serves."""
    from flows.serving import serve  # lazy: start-up: ~1 s and 100 modules only the worker uses

    args = list(sys.argv[1:] if argv is None else argv)
    limit = int(args[args.index("--limit") + 1]) if "--limit" in args else get_settings().inbox_concurrency
    prepare()
    # The worker runs each run in a copy of its loop's context, which holds one Prefect client
    # (flows/serving.py): without one, each run made its own, and a new httpx client builds an
    # SSL context (reading the CA bundle): a third of the worker's CPU at 20 events a second
    # (bench/README.md, intake). httpx clients are thread-safe; Prefect shares one between the
    # threads of a flow's task runner the same way.
    tasks, pump = inbox_serving(limit=limit)
    if serving is not None:
        serving()
    sys.exit(serve([], tasks, limit=limit, pump=pump))


if __name__ == "__main__":
    # `python -m flows.inbox` runs this file as `__main__`, a second copy of the module; the
    # capability packages register their routes in `flows.inbox`, so serve that one.
    import flows.inbox

    flows.inbox.main()
