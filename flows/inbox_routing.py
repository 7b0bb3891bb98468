"""The gateway's half of the inbox: the routing table, the route registry and the dispatch of
stored events as Prefect background task runs, over plain HTTP. It imports neither Prefect nor
any flow, so the gateway process holds neither (``bench/README.md``, start-up and memory).
:mod:`flows.inbox` is the whole inbox (handlers, the task, the worker) and re-exports all of
this; its docstring tells how an event travels.

The registry (:data:`HANDLERS`, :data:`COMMAND_ROUTES`, :data:`COMPONENT_ROUTES`,
:data:`DEFERRED_ROUTES`, :data:`ROUTES`) is filled when :mod:`flows.inbox` is imported (the
capability packages register their routes there); the served gateway, which must not import
it, loads a snapshot of it taken in a short-lived child (:func:`load_routes`).
"""

from __future__ import annotations

import base64
import logging
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import entry_points
from operator import attrgetter
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr
from sqlalchemy.orm import Session

from connectors.slack.blocks import BOARD_ACTION_PREFIX
from flows.membership.tokens import CONFIRM_PREFIX, OPTIN_PREFIX
from ledger import repo
from ledger.db import Ledger
from ledger.models import InboxEvent

log = logging.getLogger("charterflow.inbox")

AWAITING_HANDLER = repo.AWAITING_HANDLER

# The inbox task (flows.inbox defines it with these): the gateway writes its runs' bodies.
TASK_NAME = "inbox-dispatch"
TASK_RETRIES = 2
TASK_RETRY_DELAYS = (2, 10)


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
    COMMONS = "commons"  # a message of a bridged room, pushed (R-COMMS, issue 22)
    LINK = "link"  # a member links another platform's account to their membership (issue 20)
    LINK_CONFIRM = "link-confirm"  # the member confirms that link from an account we know
    HELP = "guides-help"  # /help [topic]: the matching guides (R-GUIDE, flows.guides.help)
    SAFETY_REPORT = "safety-report"  # a community report by message command (R-SAFE-1, flows.safety)
    SAFETY_COMMAND = "safety-command"  # a moderator's claim/resolve/refer reply in a report's thread
    UNKNOWN = "unknown"  # acknowledged, logged and kept; nothing to do


@dataclass(frozen=True, kw_only=True)
class RoutingConfig:
    """What routing needs from the deployment: the Discourse categories (ids, as strings)
    whose new topics are applications and ideas."""

    discourse_applications_categories: frozenset[str] = frozenset()
    discourse_ideas_categories: frozenset[str] = frozenset()
    discourse_commons_categories: frozenset[str] = frozenset()  # the common room's (R-COMMS)
    # The Forum accounts the bot posts as (the connector's Api-Username, and ``system``),
    # casefolded: their posts come back by webhook and are recognised as the bot's own.
    discourse_own_usernames: frozenset[str] = frozenset({"system"})
    # Slack action ids of the Board decision buttons start with this (connectors.slack.blocks).
    slack_board_action_prefix: str = BOARD_ACTION_PREFIX


# The routing table, in one place: (source, kind, condition, route). `route_for` applies it;
# the gateway's README prints it.
ROUTES: tuple[tuple[str, str, str, str], ...] = (
    (
        "discourse",
        "topic_created",
        "category in the applications categories (noted; the answers come with its first post)",
        Route.INTAKE,
    ),
    ("discourse", "post_created", "first post of a topic in the applications categories", Route.INTAKE),
    ("discourse", "post_edited", "first post of a topic in the applications categories, edited", Route.INTAKE),
    ("discourse", "topic_created", "category in the ideas categories", Route.IDEA),
    ("discourse", "ping", "", Route.PING),
    ("discourse", "post_created|post_edited|post_destroyed", "category in the common room's categories", Route.COMMONS),
    ("discourse", "*", "posted by the bot's own account (the API username, system)", Route.OWN),
    (
        "discourse",
        "post_created",
        "a post starting /help (in a topic, or a private message to the system user)",
        Route.HELP,
    ),
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
    ("slack", "message", "a channel's message, edit or deletion (Events API; relayed if bridged)", Route.COMMONS),
    ("slack", "message", "the app's own message coming back", Route.OWN),
    ("form", "application", "the public /apply form", Route.INTAKE),
    ("form", "confirm", "the confirmation page's button (POST /confirm/<token>)", Route.CONFIRM),
    ("form", "optin", "the opt-in page's button (POST /optin/<token>)", Route.OPT_IN),
    (
        "discourse",
        "reviewable_created",
        "a Forum flag: a flagged post's review opened (R-SAFE-1)",
        "safety-flag",
    ),
    (
        "discourse",
        "reviewable_score_updated",
        "a Forum flag: another flag on a post under review (R-SAFE-1)",
        "safety-flag",
    ),
    (
        "discourse",
        "post_created",
        "a reply outside categories starting claim, resolve or refer (a report's private message, R-SAFE-1)",
        "safety-command",
    ),
    ("form", "report", "the public /report form (R-SAFE-1)", "safety-form"),
    ("*", "*", "anything else", Route.UNKNOWN),
)


# The first word of a moderator's reply in a report's Forum private message (flows.safety).
SAFETY_COMMANDS = frozenset({"claim", "resolve", "refer"})


# Routes added by later capabilities (roles, ideas, reports, moderation): each package's
# ``handlers.register()`` calls :func:`register_route`. Discord slash command name → route, and
# Discord button custom_id prefix → route; ``DEFERRED_ROUTES`` are answered "thinking…" at once.
COMMAND_ROUTES: dict[str, str] = {}
COMPONENT_ROUTES: dict[str, str] = {}
DEFERRED_ROUTES: set[str] = set()


def register_route(
    route: str,
    handler: Callable[..., str],
    *,
    discord_command: str | None = None,
    discord_component_prefix: str | None = None,
    form_kind: str | None = None,
    condition: str = "",
) -> None:
    """Route a Discord slash command and/or button prefix to ``route``, handled by ``handler``
    (``handler(*, ledger, event) -> result_ref``, idempotent). The gateway answers such an
    interaction with a deferred ephemeral message; the handler follows up. ``form_kind``: a
    gateway page's event kind (source ``form``) that goes to ``route``."""
    global ROUTES
    if form_kind:
        row = ("form", form_kind, condition or f"a gateway page ({form_kind})", route)
        if row not in ROUTES:
            ROUTES = ROUTES[:-1] + (row,) + ROUTES[-1:]
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


# Connector plugins route their own platform's events as data: the entry-point group
# ``charterflow.inbound_routes`` names, per platform, a mapping ``{kind: route}`` whose kinds
# are those the plugin's verifier gives (``!apply`` → ``apply``) and whose routes are
# :class:`Route` values. The events' attributes are the neutral ones ``flows/README.md`` lists
# ("Inbound events from a plugin platform"). Built-in sources are not overridden.
ROUTES_GROUP = "charterflow.inbound_routes"
_BUILT_IN_SOURCES = frozenset({"discourse", "discord", "slack", "form"})
_plugin_tables: dict[str, dict[str, str]] | None = None


def plugin_routes() -> dict[str, dict[str, str]]:
    """Platform → {kind: route} from the ``charterflow.inbound_routes`` entry points, loaded
    once; a table that fails to load, or names a route that does not exist, is logged and left
    out (its events are kept, routed ``unknown``)."""
    global _plugin_tables, ROUTES
    if _plugin_tables is not None:
        return _plugin_tables
    known = {v for k, v in vars(Route).items() if not k.startswith("_") and isinstance(v, str)}
    tables: dict[str, dict[str, str]] = {}
    for ep in sorted(entry_points(group=ROUTES_GROUP), key=lambda e: e.name):
        if ep.name in _BUILT_IN_SOURCES:
            continue
        try:
            table = {str(k): str(v) for k, v in dict(ep.load()).items()}
        except Exception as exc:  # noqa: BLE001 - a broken plugin is reported, never fatal
            log.error("inbox: routes of %r cannot load: %s", ep.name, type(exc).__name__)
            continue
        wrong = sorted(v for v in table.values() if v not in known)
        if wrong:
            log.error("inbox: routes of %r name unknown routes %s; left out", ep.name, wrong)
            continue
        tables[ep.name] = table
    _plugin_tables = tables
    rows = tuple(
        (name, kind, "a plugin platform's event", route)
        for name, table in tables.items()
        for kind, route in table.items()
    )
    ROUTES = ROUTES[:-1] + tuple(r for r in rows if r not in ROUTES) + ROUTES[-1:]
    return tables


def _discourse_category_route(kind: str, attributes: Mapping[str, str], config: RoutingConfig) -> str | None:
    """A Forum topic or post routed by its category; ``None`` when the category decides nothing."""
    category = str(attributes.get("category_id", ""))
    if not category:
        return None
    if kind == "topic_created":
        if category in config.discourse_applications_categories:
            return Route.INTAKE
        if category in config.discourse_ideas_categories:
            return Route.IDEA
    if kind in ("post_created", "post_edited", "post_destroyed") and category in config.discourse_commons_categories:
        return Route.COMMONS
    if (
        kind in ("post_created", "post_edited")
        and str(attributes.get("post_number")) == "1"
        and category in config.discourse_applications_categories
    ):
        return Route.INTAKE  # an application's answers (R-APP-1), first sent or edited
    return None


# Discourse sends flags as a post's review opening and growing (it has no flag webhook).
FLAG_EVENTS = ("reviewable_created", "reviewable_score_updated")


def _first_word(text: object) -> str:
    return (str(text)[:40].split(None, 1) or [""])[0].casefold()


def _discourse_route(kind: str, attributes: Mapping[str, str], config: RoutingConfig, actor: str | None) -> str:
    if kind == "ping":
        return Route.PING
    if actor and actor.casefold() in config.discourse_own_usernames:
        return Route.OWN
    by_category = _discourse_category_route(kind, attributes, config)
    if by_category is not None:
        return by_category
    if kind == "post_created" and _first_word(attributes.get("raw", "")) == "/help":
        return Route.HELP  # a member asks for the guides (flows.guides.help, R-GUIDE)
    if kind in FLAG_EVENTS and attributes.get("reviewable_type") == "ReviewableFlaggedPost":
        return "safety-flag"  # a Forum flag is a community report (flows.safety, R-SAFE-1)
    if (
        kind == "post_created"
        and not attributes.get("category_id")
        and str(attributes.get("post_number")) != "1"
        and _first_word(attributes.get("raw", "")).rstrip(",.:;!") in SAFETY_COMMANDS
    ):
        return "safety-command"  # a moderator's command in a report's private message (flows.safety)
    return Route.UNKNOWN


def _discord_component_route(custom_id: str) -> str:
    prefixes = {CONFIRM_PREFIX: Route.CONFIRM, OPTIN_PREFIX: Route.OPT_IN, **COMPONENT_ROUTES}
    return next((route for prefix, route in prefixes.items() if custom_id.startswith(prefix)), Route.UNKNOWN)


def _discord_route(kind: str, attributes: Mapping[str, str], config: RoutingConfig, actor: str | None) -> str:
    if kind == "component":
        return _discord_component_route(str(attributes.get("custom_id", "")))
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


def _slack_route(kind: str, attributes: Mapping[str, str], config: RoutingConfig, actor: str | None) -> str:
    if kind == "url_verification":
        return Route.PING
    if kind == "message" and attributes.get("own") == "true":
        return Route.OWN  # the app's own post coming back (R-COMMS): nothing to relay
    if kind == "message" and "room.change" in attributes:
        return Route.COMMONS  # a channel's message: relayed when the channel is bridged
    if kind == "block_actions" and str(attributes.get("action_id", "")).startswith(config.slack_board_action_prefix):
        return Route.BOARD_DECISION
    return Route.UNKNOWN


def _form_route(kind: str, attributes: Mapping[str, str], config: RoutingConfig, actor: str | None) -> str:
    # the table's rows, registered pages' included
    return next((r for s, k, _, r in ROUTES if s == "form" and k == kind), Route.UNKNOWN)


_SOURCES: dict[str, Callable[[str, Mapping[str, str], RoutingConfig, str | None], str]] = {
    "discourse": _discourse_route,
    "discord": _discord_route,
    "slack": _slack_route,
    "form": _form_route,
}


def route_for(
    *, source: str, kind: str, attributes: Mapping[str, str], config: RoutingConfig, actor: str | None = None
) -> str:
    """The route of an event (see :data:`ROUTES`); ``unknown`` when nothing matches. ``actor``:
    the platform account that caused it (a Forum post's author)."""
    built_in = _SOURCES.get(source)
    if built_in is not None:
        return built_in(kind, attributes, config, actor)
    table = plugin_routes().get(source)
    if table is not None:
        if str(attributes.get("own", "")) == "true":
            return Route.OWN  # the bot's own event, pushed back to us
        return table.get(kind, Route.UNKNOWN)
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


HANDLERS: dict[str, Handler] = {Route.PING: _ping, Route.UNKNOWN: _unknown, Route.APPLY_MODAL: _modal, Route.OWN: _own}
"""Route → handler. Issues 8-10 register intake, idea, opt-in, leave, vote, Board decision."""


def register_handler(route: str, handler: Handler) -> None:
    """Make ``handler`` handle ``route`` (events held as ``awaiting-handler`` are dispatched
    again by the drain loop of a gateway that has it registered too)."""
    HANDLERS[route] = handler


def _handled_by_worker(*, ledger: Ledger, event: InboxEvent) -> str:
    raise RuntimeError("this route is handled by the inbox task worker (flows.inbox), not here")


def routes_snapshot() -> dict[str, Any]:
    """The registry as plain data (picklable): what :func:`load_routes` restores."""
    plugins = plugin_routes()
    return {
        "routes": [list(row) for row in ROUTES],
        "commands": dict(COMMAND_ROUTES),
        "plugins": {k: dict(v) for k, v in plugins.items()},
        "components": list(COMPONENT_ROUTES.items()),
        "deferred": sorted(DEFERRED_ROUTES),
        "handled": sorted(HANDLERS),
        "task_key": _task_key,
    }


def full_routes_snapshot() -> dict[str, Any]:
    """:func:`routes_snapshot` once :mod:`flows.inbox` registered every capability's routes
    (run it in a child that may import Prefect and every flow)."""
    # lazy: start-up: Prefect and every flow, which the gateway holding this module must not load
    import flows.inbox  # noqa: F401 - registers

    return routes_snapshot()


def routes_loaded() -> bool:
    """Whether the registry is complete here: :mod:`flows.inbox` imported, or a snapshot loaded."""
    return _snapshot_loaded or "flows.inbox" in sys.modules


def ensure_routes() -> None:
    """Complete the registry if it is not (by importing :mod:`flows.inbox`)."""
    if not routes_loaded():
        # lazy: start-up: Prefect and every flow, which the gateway holding this module must not load
        import flows.inbox  # noqa: F401 - registers


def load_routes(snapshot: Mapping[str, Any]) -> None:
    """Restore a :func:`routes_snapshot` taken in a process that imported :mod:`flows.inbox`:
    routing then matches that process's. Each handled route gets a stand-in handler: the
    gateway only asks which routes have one, the task worker calls them."""
    global ROUTES, _snapshot_loaded, _task_key, _plugin_tables
    ROUTES = tuple(tuple(row) for row in snapshot["routes"])
    if "plugins" in snapshot:
        _plugin_tables = {k: dict(v) for k, v in snapshot["plugins"].items()}
    _task_key = snapshot["task_key"]
    COMMAND_ROUTES.update(snapshot["commands"])
    COMPONENT_ROUTES.update(dict(snapshot["components"]))  # registration order: first prefix wins
    DEFERRED_ROUTES.update(snapshot["deferred"])
    for route in snapshot["handled"]:
        HANDLERS.setdefault(route, _handled_by_worker)
    _snapshot_loaded = True


_snapshot_loaded = False
_task_key: str | None = None


def register_task_key(key: str) -> None:
    """The inbox task's key in Prefect (:mod:`flows.inbox` tells it). Prefect derives it from a
    hash of the task function's code object, which only importing the task can tell; the task
    worker takes only runs created under it."""
    global _task_key
    _task_key = key


def task_key() -> str:
    """The key :func:`task_run_body` creates runs under."""
    if _task_key is None:
        ensure_routes()
    if _task_key is None:
        raise RuntimeError("the inbox task's key is unknown: flows.inbox was not imported")
    return _task_key


# --------------------------------------------------------------------------------------------
# Dispatch: the background task run of an event


def dispatch_key(event_id: int, attempt: int) -> str:
    """The task run's dynamic key: one per event and dispatch attempt."""
    return f"inbox-{event_id}-{attempt}"


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
    auth_string, api_key = prefect_setting("PREFECT_API_AUTH_STRING"), prefect_setting("PREFECT_API_KEY")
    headers: dict[str, str] = {}
    if auth_string:
        headers["Authorization"] = "Basic " + base64.b64encode(auth_string.encode()).decode()
    elif api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return httpx.Client(base_url=api_url.rstrip("/") + "/", headers=headers, timeout=timeout)


def prefect_setting(name: str) -> str | None:
    """A Prefect client setting (``PREFECT_API_URL``, ``PREFECT_API_KEY``, …). Read from the
    environment when no file Prefect reads could set it (how `charterflow up` runs its
    processes); otherwise from Prefect's settings, which also read its profile, ``.env``,
    ``prefect.toml`` and ``pyproject.toml`` (importing Prefect: 2-3 s and some 36 MiB)."""
    if not _prefect_files():
        return os.environ.get(name) or None
    import prefect.settings  # lazy: start-up: Prefect, only when a settings file may set this

    # Prefect's settings module makes its PREFECT_* objects on attribute access (no vars()).
    value = attrgetter(name)(prefect.settings).value()
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    return str(value) if value else None


def _prefect_files() -> bool:
    """Whether a file Prefect reads settings from may set some
    (https://docs.prefect.io/v3/develop/settings-and-profiles)."""
    home = Path(os.environ.get("PREFECT_HOME") or Path.home() / ".prefect").expanduser()
    profiles = Path(os.environ.get("PREFECT_PROFILES_PATH") or home / "profiles.toml").expanduser()
    if Path("prefect.toml").exists():
        return True
    for path, marker in ((profiles, "PREFECT_"), (Path(".env"), "PREFECT_"), (Path("pyproject.toml"), "[tool.prefect")):
        try:
            if marker in path.read_text(errors="replace"):
                return True
        except OSError:
            continue
    return False


def run_tags(route: str) -> list[str]:
    """The tags of an event's background run (the inbox worker makes their concurrency service
    before serving, ``flows.inbox.main``)."""
    return ["charterflow", "inbox", f"route:{route}"]


def task_run_body(*, event_id: int, attempt: int, route: str) -> dict[str, Any]:
    """The ``POST /task_runs/`` body of an event's background run: Scheduled and deferred (so
    the server pushes it to a subscribed task worker), named ``inbox-<route>-<id>``, keyed
    ``inbox-<id>-<attempt>``, tagged ``charterflow``, ``inbox`` and ``route:<route>``. Written
    out, not built with Prefect's ``TaskRunCreate`` (a test checks that it validates as one)."""
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    return {
        "name": f"inbox-{route}-{event_id}",
        "flow_run_id": None,
        "task_key": task_key(),
        "dynamic_key": dispatch_key(event_id, attempt),
        "task_version": None,
        "tags": run_tags(route),
        "empirical_policy": {
            "retries": TASK_RETRIES,
            "retry_delay": list(TASK_RETRY_DELAYS),
            "retry_jitter_factor": None,
        },
        "state": {"type": "SCHEDULED", "name": "Scheduled", "state_details": {"scheduled_time": now, "deferred": True}},
        "task_inputs": {},
    }


def create_task_run(http: httpx.Client, body: Mapping[str, Any], *, sleep: Callable[[float], None] = time.sleep) -> str:
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
    # The event as claimed (detached from its session): the pump's run of it need not read it
    # again (``HANDED``).
    event: InboxEvent | None = field(default=None, compare=False, repr=False)


# Events a pump has claimed and submitted, by id, until their run takes them: the run reads the
# event from here instead of the ledger (a transaction fewer per event, issue 19 point 7). A
# claim holds the event for this pump alone, so what was read at the claim is still true.
HANDED: dict[int, InboxEvent] = {}


def claim_events(
    ledger: Ledger, event_ids: list[int], *, stale_before: datetime | None = None, actor: str = "gateway"
) -> list[Claim]:
    """Claim ``event_ids`` (those still to dispatch) in one write transaction: the ledger's
    writers take turns, and a batch takes one turn instead of one per event."""
    with ledger.read() as session:
        # Most events reach this twice (the gateway's notice and a drain pass): the second
        # needs no write transaction, which every ledger writer would wait for.
        wanted = []
        for event_id in event_ids:
            event = session.get(InboxEvent, event_id)
            if (
                event is None
                or event.processed_at is not None
                or (
                    event.dispatched_at is not None
                    and event.dispatch_note is None
                    and (stale_before is None or event.dispatched_at >= stale_before)
                )
            ):
                continue
            wanted.append(event_id)
    if not wanted:
        return []
    with ledger.transaction() as session:
        return claim_in(session, wanted, stale_before=stale_before, actor=actor)


def claim_in(session: Session, event_ids: list[int], *, stale_before: datetime | None, actor: str) -> list[Claim]:
    """Claim ``event_ids`` inside the caller's write transaction; the claims that were taken."""
    claims = []
    for event_id in event_ids:
        event = repo.inbox_claim(
            session, event_id, actor=actor, stale_before=stale_before, handled_routes=HANDLERS.keys()
        )
        if event is not None:
            claims.append(
                Claim(
                    event_id=event_id,
                    attempt=event.dispatch_attempts,
                    route=event.route or Route.UNKNOWN,
                    received_at=event.received_at,
                    event=event,
                )
            )
    return claims


def release_claims(ledger: Ledger, claims: list[Claim], *, actor: str, reason: str) -> None:
    """Undo ``claims`` whose runs were not started, in one write transaction: the next claimer
    takes them at once (``repo.inbox_release``)."""
    with ledger.transaction() as session:
        for claim in claims:
            event = session.get(InboxEvent, claim.event_id, populate_existing=True)
            if event is not None:
                repo.inbox_release(session, event, actor=actor, reason=reason)


def start_claimed(ledger: Ledger, claim: Claim, *, client: httpx.Client, actor: str = "gateway") -> DispatchResult:
    """Start the run of a claimed event; Prefect unreachable: release the claim (``deferred``)."""
    try:
        run_id = create_task_run(
            client, task_run_body(event_id=claim.event_id, attempt=claim.attempt, route=claim.route)
        )
    except Exception as exc:  # noqa: BLE001 - any failure to reach Prefect defers the event
        release_claims(ledger, [claim], actor=actor, reason="prefect-unreachable")
        return DispatchResult(outcome="deferred", event_id=claim.event_id, error=type(exc).__name__)
    return DispatchResult(outcome="started", event_id=claim.event_id, task_run_id=run_id, received_at=claim.received_at)


def dispatch_event(
    ledger: Ledger, event_id: int, *, client: httpx.Client, stale_before: datetime | None = None, actor: str = "gateway"
) -> DispatchResult:
    """Claim ``event_id`` and start its background task run through ``client`` (a
    :func:`prefect_http` client). Exactly one run per claim; see the module docstring."""
    claims = claim_events(ledger, [event_id], stale_before=stale_before, actor=actor)
    if not claims:
        return DispatchResult(outcome="skipped", event_id=event_id)
    return start_claimed(ledger, claims[0], client=client, actor=actor)
