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

import base64
import logging
import os
import re
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from prefect import task

from ledger import repo
from ledger.db import Ledger
from ledger.models import InboxEvent

__all__ = [
    "AWAITING_HANDLER",
    "HANDLERS",
    "ROUTES",
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

AWAITING_HANDLER = repo.AWAITING_HANDLER
ACTOR = "flow:inbox"


class Route:
    """The names of the routes: each is the flow (or built-in step) that handles an event."""

    INTAKE = "intake"  # a membership application (issue 8)
    IDEA = "idea"  # an idea for the backlog (issue 10)
    OPT_IN = "renewal-opt-in"  # R-TERM-2 (issue 9)
    LEAVE = "leave"  # R-LEAVE (issue 9)
    VOTE = "vote"  # a ballot button (issue 8/9)
    CONFIRM = "confirm"  # R-APP-2: the applicant's Confirm button in a Discord DM (issue 8)
    BOARD_DECISION = "board-decision"  # a Slack Board button (issue 10)
    BOARD_PROPOSAL = "board-proposal"  # Discord /propose: a proposal for the Board (issue 10)
    APPLY_MODAL = "apply-modal"  # Discord /apply: the gateway answers with the form itself
    PING = "ping"  # a platform checking that we answer
    OWN = "own"  # what the bot itself posted, coming back by webhook: stored processed, no run
    UNKNOWN = "unknown"  # acknowledged, logged and kept; nothing to do


@dataclass(frozen=True, kw_only=True)
class RoutingConfig:
    """What routing needs from the deployment: the Discourse categories (ids, as strings)
    whose new topics are applications and ideas."""

    discourse_applications_categories: frozenset[str] = frozenset()
    discourse_ideas_categories: frozenset[str] = frozenset()
    # The Forum accounts the bot posts as (the connector's Api-Username, and ``system``),
    # casefolded: their posts come back by webhook and are recognised as the bot's own.
    discourse_own_usernames: frozenset[str] = frozenset({"system"})
    # Slack action ids of the Board decision buttons start with this (connectors.slack.blocks).
    slack_board_action_prefix: str = field(default_factory=lambda: _slack_board_prefix())


def _slack_board_prefix() -> str:
    try:
        from connectors.slack.blocks import BOARD_ACTION_PREFIX
    except Exception:  # noqa: BLE001 - the Slack connector is optional here; its documented prefix
        return "board_"
    return str(BOARD_ACTION_PREFIX)


# The routing table, in one place: (source, kind, condition, route). `route_for` applies it;
# the gateway's README prints it.
ROUTES: tuple[tuple[str, str, str, str], ...] = (
    ("discourse", "topic_created", "category in the applications categories (noted; the answers come with its first post)", Route.INTAKE),
    ("discourse", "post_created", "first post of a topic in the applications categories", Route.INTAKE),
    ("discourse", "post_edited", "first post of a topic in the applications categories, edited", Route.INTAKE),
    ("discourse", "topic_created", "category in the ideas categories", Route.IDEA),
    ("discourse", "ping", "", Route.PING),
    ("discourse", "*", "posted by the bot's own account (the API username, system)", Route.OWN),
    ("discord", "ping", "(answered PONG, not stored)", Route.PING),
    ("discord", "apply", "slash command /apply", Route.APPLY_MODAL),
    ("discord", "apply_submitted", "the /apply modal submitted", Route.INTAKE),
    ("discord", "idea", "slash command /idea", Route.IDEA),
    ("discord", "optin", "slash command /optin", Route.OPT_IN),
    ("discord", "leave", "slash command /leave", Route.LEAVE),
    ("discord", "propose", "slash command /propose", Route.BOARD_PROPOSAL),
    ("discord", "ballot_vote", "a ballot button", Route.VOTE),
    ("discord", "component", "a Confirm button (custom_id cfc:…)", Route.CONFIRM),
    ("discord", "component", "an Opt-in button (custom_id cfo:…)", Route.OPT_IN),
    ("slack", "block_actions", "a Board decision button", Route.BOARD_DECISION),
    ("slack", "url_verification", "(answered with the challenge, not stored)", Route.PING),
    ("form", "application", "the public /apply form", Route.INTAKE),
    ("form", "confirm", "the confirmation page's button (POST /confirm/<token>)", Route.CONFIRM),
    ("form", "optin", "the opt-in page's button (POST /optin/<token>)", Route.OPT_IN),
    ("*", "*", "anything else", Route.UNKNOWN),
)


# Routes added by later capabilities (roles, ideas, reports, moderation): each package's
# ``handlers.register()`` calls :func:`register_route`. Discord slash command name → route, and
# Discord button custom_id prefix → route; ``DEFERRED_ROUTES`` are answered "thinking…" at once.
COMMAND_ROUTES: dict[str, str] = {}
COMPONENT_ROUTES: dict[str, str] = {}
DEFERRED_ROUTES: set[str] = set()


def register_route(route: str, handler: Callable[..., str], *, discord_command: str | None = None,
                   discord_component_prefix: str | None = None, condition: str = "") -> None:
    """Route a Discord slash command and/or button prefix to ``route``, handled by ``handler``
    (``handler(*, ledger, event) -> result_ref``, idempotent). The gateway answers such an
    interaction with a deferred ephemeral message; the handler follows up."""
    global ROUTES
    if discord_command:
        COMMAND_ROUTES[discord_command] = route
        row = ("discord", discord_command, condition or f"slash command /{discord_command}", route)
        if row not in ROUTES:
            ROUTES = ROUTES[:-1] + (row,) + ROUTES[-1:]
    if discord_component_prefix:
        COMPONENT_ROUTES[discord_component_prefix] = route
        row = ("discord", "component", condition or f"a button (custom_id {discord_component_prefix}…)", route)
        if row not in ROUTES:
            ROUTES = ROUTES[:-1] + (row,) + ROUTES[-1:]
    DEFERRED_ROUTES.add(route)
    HANDLERS[route] = handler


def route_for(*, source: str, kind: str, attributes: Mapping[str, str],
              config: RoutingConfig, actor: str | None = None) -> str:
    """The route of an event (see :data:`ROUTES`); ``unknown`` when nothing matches. ``actor``:
    the platform account that caused it (a Forum post's author)."""
    if source == "discourse":
        if kind == "ping":
            return Route.PING
        if actor and actor.casefold() in config.discourse_own_usernames:
            return Route.OWN
        category = str(attributes.get("category_id", ""))
        if kind == "topic_created":
            if category and category in config.discourse_applications_categories:
                return Route.INTAKE
            if category and category in config.discourse_ideas_categories:
                return Route.IDEA
        if kind in ("post_created", "post_edited") and str(attributes.get("post_number")) == "1" \
                and category and category in config.discourse_applications_categories:
            return Route.INTAKE  # an application's answers (R-APP-1), first sent or edited
        return Route.UNKNOWN
    if source == "discord":
        if kind == "component":
            custom_id = str(attributes.get("custom_id", ""))
            from flows.membership.tokens import CONFIRM_PREFIX, OPTIN_PREFIX

            if custom_id.startswith(CONFIRM_PREFIX):
                return Route.CONFIRM
            if custom_id.startswith(OPTIN_PREFIX):
                return Route.OPT_IN
            for prefix, route in COMPONENT_ROUTES.items():
                if custom_id.startswith(prefix):
                    return route
            return Route.UNKNOWN
        return {
            "ping": Route.PING,
            "apply": Route.APPLY_MODAL,
            "apply_submitted": Route.INTAKE,
            "idea": Route.IDEA,
            "optin": Route.OPT_IN,
            "leave": Route.LEAVE,
            "propose": Route.BOARD_PROPOSAL,
            "ballot_vote": Route.VOTE,
            **COMMAND_ROUTES,
        }.get(kind, Route.UNKNOWN)
    if source == "slack":
        if kind == "url_verification":
            return Route.PING
        if kind == "block_actions" and str(attributes.get("action_id", "")).startswith(
                config.slack_board_action_prefix):
            return Route.BOARD_DECISION
        return Route.UNKNOWN
    if source == "form":
        return {"application": Route.INTAKE, "confirm": Route.CONFIRM,
                "optin": Route.OPT_IN}.get(kind, Route.UNKNOWN)
    return Route.UNKNOWN


# --------------------------------------------------------------------------------------------
# Handlers

Handler = Callable[..., str]
"""``handler(*, ledger, event) -> result_ref``: acts on one event. It must be idempotent (it may
run again after a crash before the event was marked processed) and raise to leave the event
unprocessed. The returned reference (``application:12``) is stored on the event."""


def _ping(*, ledger: Ledger, event: InboxEvent) -> str:
    return "ping:answered"


def _unknown(*, ledger: Ledger, event: InboxEvent) -> str:
    # Kept in the inbox for the record; nothing acts on it.
    log.info("inbox event %s (%s/%s) has no route; kept", event.id, event.source, event.kind)
    return "no-route"


def _modal(*, ledger: Ledger, event: InboxEvent) -> str:
    return "discord:modal-shown"


def _own(*, ledger: Ledger, event: InboxEvent) -> str:
    return "discourse:own-post"


HANDLERS: dict[str, Handler] = {Route.PING: _ping, Route.UNKNOWN: _unknown,
                                Route.APPLY_MODAL: _modal, Route.OWN: _own}
"""Route → handler. Issues 8-10 register intake, idea, opt-in, leave, vote, Board decision."""


def _membership_handler(handle: Callable[..., str]) -> Handler:
    """Adapt a ``flows.membership.handlers`` function to the inbox's handler signature."""

    def run(*, ledger: Ledger, event: InboxEvent) -> str:
        from datetime import UTC

        from flows.platforms import current_platforms, use

        platforms = current_platforms()
        # The flows the handler starts read the ledger through flows.platforms: make it this one.
        with use(ledger=ledger, platforms=platforms):
            return handle(event_id=event.id, ledger=ledger, platforms=platforms,
                          now=datetime.now(UTC))

    return run


def _register_membership() -> None:
    from flows.membership import handlers as membership

    for route, handle in ((Route.INTAKE, membership.handle_intake),
                          (Route.CONFIRM, membership.handle_confirm),
                          (Route.OPT_IN, membership.handle_optin),
                          (Route.LEAVE, membership.handle_leave),
                          (Route.VOTE, membership.handle_vote)):
        HANDLERS[route] = _membership_handler(handle)


_register_membership()


def _register_board() -> None:
    from flows.board.decision import handle_board_decision
    from flows.board.escalation import handle_board_proposal

    HANDLERS[Route.BOARD_DECISION] = handle_board_decision
    HANDLERS[Route.BOARD_PROPOSAL] = handle_board_proposal


_register_board()


def _register_capabilities() -> None:
    # Each capability package owns its routes (flows/<package>/handlers.py: register()).
    import importlib

    for name in ("flows.roles.handlers", "flows.ideas.handlers", "flows.reports.handlers",
                 "flows.moderation.handlers"):
        importlib.import_module(name).register()




def register_handler(route: str, handler: Handler) -> None:
    """Make ``handler`` handle ``route`` (events held as ``awaiting-handler`` are dispatched
    again by the drain loop of a gateway that has it registered too)."""
    HANDLERS[route] = handler


_register_capabilities()


def handle_event(ledger: Ledger, event_id: int, *, actor: str = ACTOR) -> str:
    """Handle one inbox event, at most once in effect: ``already-processed``,
    ``awaiting-handler``, ``missing`` or the handler's result reference."""
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
        log.warning("inbox event %s (%s/%s) refused: unreadable payload (%s)", event_id,
                    event.source, event.kind, type(exc).__name__)
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
    from prefect.exceptions import ParameterTypeError

    from connectors.errors import CharterflowError

    if not (event.payload or {}).get("notes") or isinstance(exc, CharterflowError):
        return False
    return isinstance(exc, (TypeError, ValueError, KeyError, AttributeError, IndexError,
                            ParameterTypeError))


# --------------------------------------------------------------------------------------------
# Prefect: the background task and its dispatch

_KEY = re.compile(r"^inbox-(\d+)-(\d+)$")


def dispatch_key(event_id: int, attempt: int) -> str:
    """The task run's dynamic key: one per event and dispatch attempt."""
    return f"inbox-{event_id}-{attempt}"


def _ledger_from_settings() -> Ledger:
    from charterflow.settings import get_settings

    global _worker_ledger
    with _worker_lock:  # the worker runs several events at once: one ledger (one pool) for all
        if _worker_ledger is None:
            _worker_ledger = Ledger(get_settings().ledger_url())
        return _worker_ledger


_worker_ledger: Ledger | None = None
_worker_lock = threading.Lock()


# persist_result=False: the result is the event's own record in the ledger. A result storage
# that is a path (never written) saves every run a request for the server's default storage.
@task(name="inbox-dispatch", retries=2, retry_delay_seconds=[2, 10], log_prints=False,
      persist_result=False, result_storage=Path(tempfile.gettempdir()))
def handle_inbox_event() -> str:
    """Handle the inbox event named by this run's dynamic key (``inbox-<id>-<attempt>``)."""
    from prefect.context import TaskRunContext

    context = TaskRunContext.get()
    match = _KEY.match(context.task_run.dynamic_key if context else "")
    if match is None:
        raise ValueError("inbox-dispatch runs are started by the gateway (dynamic key inbox-<id>-<n>)")
    started = time.perf_counter()
    result = handle_event(_ledger_from_settings(), int(match.group(1)))
    # In the worker's log: how long the handler took, apart from Prefect's part of the run.
    log.info("inbox event %s: %s in %.0f ms", match.group(1), result[:80],
             (time.perf_counter() - started) * 1000)
    return result


@dataclass(frozen=True, kw_only=True)
class DispatchResult:
    """What :func:`dispatch_event` did: ``started`` (a run exists now), ``skipped`` (nothing to
    claim), or ``deferred`` (Prefect unreachable: claim released)."""

    outcome: str
    event_id: int
    task_run_id: str | None = None
    received_at: datetime | None = None
    error: str | None = None


# Prefect's own client waits 2 s (then 4, 8…) before it repeats a request answered 503, and at
# least 2 s even with PREFECT_CLIENT_MAX_RETRIES=0. The server answers 503 when its database was
# busy for a moment (SQLite: another write committed between this request's read and its write),
# and nothing of the request was stored: sooner is safe, the dynamic key dedupes anyway.
CREATE_RETRY_DELAYS = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6)
RETRY_STATUSES = frozenset({429, 502, 503})


def prefect_http(api_url: str, *, timeout: float = 10.0) -> httpx.Client:
    """A kept-alive HTTP client for the Prefect API at ``api_url``, with the credentials of
    Prefect's settings (``PREFECT_API_AUTH_STRING`` or ``PREFECT_API_KEY``), if any."""
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_KEY

    headers: dict[str, str] = {}
    auth_string, api_key = PREFECT_API_AUTH_STRING.value(), PREFECT_API_KEY.value()
    if auth_string:
        headers["Authorization"] = "Basic " + base64.b64encode(auth_string.encode()).decode()
    elif api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return httpx.Client(base_url=api_url.rstrip("/") + "/", headers=headers, timeout=timeout)


def run_tags(route: str) -> list[str]:
    """The tags of an event's background run."""
    return ["charterflow", "inbox", f"route:{route}"]


def task_run_body(*, event_id: int, attempt: int, route: str) -> dict[str, Any]:
    """The ``POST /task_runs/`` body of an event's background run: Scheduled and deferred (so
    the server pushes it to a subscribed task worker), named ``inbox-<route>-<id>``, keyed
    ``inbox-<id>-<attempt>``, tagged ``charterflow``, ``inbox`` and ``route:<route>``."""
    from prefect.client.schemas.actions import TaskRunCreate
    from prefect.client.schemas.objects import TaskRunPolicy
    from prefect.states import Scheduled, to_state_create

    task = handle_inbox_event
    state = Scheduled()
    state.state_details.deferred = True
    delays = task.retry_delay_seconds
    body = TaskRunCreate(
        name=f"inbox-{route}-{event_id}", flow_run_id=None, task_key=task.task_key,
        dynamic_key=dispatch_key(event_id, attempt), task_version=task.version,
        tags=run_tags(route),
        empirical_policy=TaskRunPolicy(
            retries=task.retries, retry_jitter_factor=task.retry_jitter_factor,
            retry_delay=[int(d) for d in delays] if isinstance(delays, list) else delays),
        state=to_state_create(state), task_inputs={})
    return body.model_dump(mode="json", exclude={"id"})


def create_task_run(http: httpx.Client, body: Mapping[str, Any], *,
                    sleep: Callable[[float], None] = time.sleep) -> str:
    """``POST /task_runs/``; the run's id. A 429/502/503 is sent again after
    :data:`CREATE_RETRY_DELAYS`; anything else (and the last 503) raises an ``httpx`` error."""
    for delay in (*CREATE_RETRY_DELAYS, None):
        response = http.post("task_runs/", json=body)
        if response.status_code in RETRY_STATUSES and delay is not None:
            sleep(delay)
            continue
        response.raise_for_status()
        return str(response.json()["id"])
    raise AssertionError("unreachable")


@dataclass(frozen=True, kw_only=True)
class Claim:
    """An event claimed for dispatch: the run to start is keyed by ``attempt``."""

    event_id: int
    attempt: int
    route: str
    received_at: datetime | None


def claim_events(ledger: Ledger, event_ids: list[int], *, stale_before: datetime | None = None,
                 actor: str = "gateway") -> list[Claim]:
    """Claim ``event_ids`` (those still to dispatch) in one write transaction: the ledger's
    writers take turns, and a batch takes one turn instead of one per event."""
    with ledger.read() as session:
        # Most events reach this twice (the gateway's notice and a drain pass): the second
        # needs no write transaction, which every ledger writer would wait for.
        wanted = []
        for event_id in event_ids:
            event = session.get(InboxEvent, event_id)
            if event is None or event.processed_at is not None or (
                    event.dispatched_at is not None and event.dispatch_note is None
                    and (stale_before is None or event.dispatched_at >= stale_before)):
                continue
            wanted.append(event_id)
    if not wanted:
        return []
    claims = []
    with ledger.transaction() as session:
        for event_id in wanted:
            event = repo.inbox_claim(session, event_id, actor=actor, stale_before=stale_before,
                                     handled_routes=HANDLERS.keys())
            if event is not None:
                claims.append(Claim(event_id=event_id, attempt=event.dispatch_attempts,
                                    route=event.route or Route.UNKNOWN, received_at=event.received_at))
    return claims


def start_claimed(ledger: Ledger, claim: Claim, *, client: httpx.Client,
                  actor: str = "gateway") -> DispatchResult:
    """Start the run of a claimed event; Prefect unreachable: release the claim (``deferred``)."""
    try:
        run_id = create_task_run(client, task_run_body(event_id=claim.event_id, attempt=claim.attempt,
                                                       route=claim.route))
    except Exception as exc:  # noqa: BLE001 - any failure to reach Prefect defers the event
        with ledger.transaction() as session:
            event = session.get(InboxEvent, claim.event_id, populate_existing=True)
            if event is not None:
                repo.inbox_release(session, event, actor=actor, reason="prefect-unreachable")
        return DispatchResult(outcome="deferred", event_id=claim.event_id, error=type(exc).__name__)
    return DispatchResult(outcome="started", event_id=claim.event_id, task_run_id=run_id,
                          received_at=claim.received_at)


def dispatch_event(ledger: Ledger, event_id: int, *, client: httpx.Client,
                   stale_before: datetime | None = None, actor: str = "gateway") -> DispatchResult:
    """Claim ``event_id`` and start its background task run through ``client`` (a
    :func:`prefect_http` client). Exactly one run per claim; see the module docstring."""
    claims = claim_events(ledger, [event_id], stale_before=stale_before, actor=actor)
    if not claims:
        return DispatchResult(outcome="skipped", event_id=event_id)
    return start_claimed(ledger, claims[0], client=client, actor=actor)


def main(argv: list[str] | None = None) -> None:
    """``python -m flows.inbox``: a task worker serving :data:`handle_inbox_event` until
    SIGTERM/SIGINT. ``--limit N`` caps concurrent runs (default 10)."""
    from prefect.task_worker import serve

    args = list(sys.argv[1:] if argv is None else argv)
    limit = int(args[args.index("--limit") + 1]) if "--limit" in args else 10
    log.setLevel(logging.INFO)  # one line per event handled, beside Prefect's own
    import faulthandler
    import signal

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
    from prefect.events import emit_event

    emit_event(event="charterflow.inbox-worker.started",
               resource={"prefect.resource.id": f"charterflow.inbox-worker.{os.getpid()}"})
    # A run's tags are checked for concurrency limits through a Prefect service made once per
    # set of tags, by the first run with that set, in the run's thread: it holds a lock all of
    # Prefect's services share while Prefect's loop thread starts it. That thread also runs the
    # task worker, and when it emits an event meanwhile it waits for the same lock: the worker
    # hung for good after "Received" of the first run of a route (bench/README.md, intake).
    # Made here, before serving, for every route a run can have.
    from prefect.concurrency.services import ConcurrencySlotAcquisitionWithLeaseService

    for route in sorted(HANDLERS):
        ConcurrencySlotAcquisitionWithLeaseService.instance(frozenset(f"tag:{t}" for t in run_tags(route)))
    # One Prefect client for every run. The worker runs each one in a copy of this context;
    # without a client in it, each run made its own, and a new httpx client builds an SSL
    # context (reading the CA bundle): a third of the worker's CPU at 20 events a second
    # (bench/README.md, intake). httpx clients are thread-safe; Prefect shares one between the
    # threads of a flow's task runner the same way.
    from prefect.context import SyncClientContext

    try:
        with SyncClientContext():
            serve(handle_inbox_event, limit=limit)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    # `python -m flows.inbox` runs this file as `__main__`, a second copy of the module; the
    # capability packages register their routes in `flows.inbox`, so serve that one.
    import flows.inbox

    flows.inbox.main()
