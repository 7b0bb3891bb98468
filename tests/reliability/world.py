"""The reliability suite's world: the three platform sandboxes on 127.0.0.1 (Forum, Discord, Slack),
a migrated SQLite ledger, the real gateway, and 30 invented applicants; plus what the suite
records for its final checks (every configured secret, every log line, every sandbox state).

Built on the membership and Board tests' seeds (``tests/support/membership.py``,
``tests/support/board.py``) so the scenario speaks the same working group.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr
from sqlalchemy import select

from connectors.discord.connector import DiscordConnector
from connectors.discourse.connector import DiscourseConnector
from connectors.slack.sandbox import SlackSandbox, default_seed
from flows.board.common import use_slack
from flows.platforms import use
from gateway.app import create_app
from gateway.dispatch import StoreOnlyDispatcher
from ledger.db import Ledger
from ledger.migrate import upgrade
from ledger.models import Base
from ledger.roster import import_roster, parse_roster
from rules import default_charter
from tests.support.board import BOARD_CHANNEL, ROSTER
from tests.support.gateway import gateway_settings
from tests.support.membership import (
    CONFIRM_SECRET,
    FORUM_HOOK_SECRET,
    NOW,
    World,
    discord_seed,
    discourse_seed,
    forum_and_discord,
    seed_members,
)
from tests.support.net import LoopbackServer

# 30 invented applicants: six given names times five family names, none a real person's handle.
_GIVEN = ["alder", "briony", "caspian", "delphine", "ember", "fennick"]
_FAMILY = ["thornquist", "valewright", "marrowby", "quillon", "ashgrove"]
APPLICANTS = [f"{g}_{f}" for f in _FAMILY for g in _GIVEN]
FORM_SECRET = "form-secret-invented-reliability-7731"
IDEAS_CATEGORY_NAME = "Ideas"


def _iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def reliability_discourse_seed() -> dict[str, Any]:
    """The membership seed plus the applicants (active on the Forum for over a year) and an
    Ideas category."""
    seed = discourse_seed()
    for name in APPLICANTS:
        seed["users"].append(
            {
                "username": name,
                "name": name.replace("_", " ").title(),
                "created_at": _iso(NOW - timedelta(days=400)),
                "last_seen_at": _iso(NOW - timedelta(days=2)),
                "days_visited": 40,
                "post_count": 12,
            }
        )
    seed["categories"].append({"name": IDEAS_CATEGORY_NAME})
    return seed


def reliability_discord_seed() -> dict[str, Any]:
    seed = discord_seed()
    seed["members"] += [
        {"username": name, "joined_at": "2024-01-01T00:00:00Z", "recent_messages": 3} for name in APPLICANTS
    ]
    return seed


def slack_seed() -> dict[str, Any]:
    """The Slack sandbox's default workspace with the Board channel the Board tests use."""
    seed = default_seed()
    assert seed["board_channel"] == BOARD_CHANNEL, seed["board_channel"]
    return seed


@dataclass
class Stack:
    """One world: ``world`` as the membership tests know it, plus Slack and the gateway."""

    world: World
    slack_sb: SlackSandbox
    slack_url: str
    gateway_url: str
    ideas_category: str
    # One client for the suite's own requests: ``httpx.post`` builds a TLS context per call
    # (~20 ms of CPU), and the faulted run sets its faults six times a step.
    http: httpx.Client
    secrets: dict[str, str] = field(default_factory=dict)

    @property
    def urls(self) -> dict[str, str]:
        return {"discourse": self.world.discourse_url, "discord": self.world.discord_url, "slack": self.slack_url}

    def states(self) -> dict[str, dict[str, Any]]:
        return {name: self.http.get(f"{url}/_sandbox/state").json() for name, url in self.urls.items()}

    def set_faults(self, faults: dict[str, Any]) -> None:
        """The same fault settings on all three sandboxes (``{}`` clears)."""
        for url in self.urls.values():
            self.http.post(f"{url}/_sandbox/faults", json=faults).raise_for_status()


def sandbox_secrets(*, discourse_sb: Any, discord_sb: Any, slack_sb: SlackSandbox) -> dict[str, str]:
    """Every credential the connectors and the gateway are configured with (values)."""
    return {
        "discord token": discord_sb.token,
        "discourse api key": discourse_sb.api_key,
        "discourse webhook secret": discourse_sb.webhook.secret,
        "slack bot token": slack_sb.bot_token,
        "slack signing secret": slack_sb.signing_secret,
        "confirm secret": CONFIRM_SECRET,
        "form secret": FORM_SECRET,
    }


@contextmanager
def stack(tmp: Path, *, ledger_url: str | None = None) -> Iterator[Stack]:
    """A fresh world in ``tmp``: seeded WG (7 members), applicants, Board roster, gateway."""
    tmp.mkdir(parents=True, exist_ok=True)
    ledger = Ledger(ledger_url or f"sqlite:///{tmp / 'ledger.db'}", lock_timeout=30)
    upgrade(ledger)
    dsb = DiscourseConnector.sandbox(seed=reliability_discourse_seed())
    csb = DiscordConnector.sandbox(seed=reliability_discord_seed())
    ssb = SlackSandbox(seed=slack_seed(), time_factor=0.02)
    charter = default_charter()
    with LoopbackServer(dsb.app) as d_srv, LoopbackServer(csb.app) as c_srv, LoopbackServer(ssb.app) as s_srv:
        forum = dsb.connect(d_srv.url)
        discord = csb.connect(c_srv.url)
        slack = ssb.connect(s_srv.url)
        platforms = forum_and_discord(forum, discord, charter=charter, dsf_members=set())
        start = NOW - timedelta(days=100)
        with ledger.transaction() as session:
            people = seed_members(session, forum=forum, discord=discord, charter=charter, start=start)
            import_roster(session, parse_roster(ROSTER, charter=charter), charter=charter, actor="operator", at=NOW)
        categories = {
            c["name"]: str(c["id"]) for c in httpx.get(f"{d_srv.url}/_sandbox/state", timeout=10).json()["categories"]
        }
        settings = gateway_settings(
            discourse_webhook_secret=SecretStr(FORUM_HOOK_SECRET),
            discord_public_key=csb.public_key,
            slack_signing_secret=SecretStr(ssb.signing_secret),
            form_secret=SecretStr(FORM_SECRET),
            discourse_applications_categories=categories["Applications"],
            discourse_ideas_categories=categories[IDEAS_CATEGORY_NAME],
        )
        app = create_app(
            settings=settings,
            ledger=ledger,
            dispatcher=StoreOnlyDispatcher(),
            charter=charter,
            confirm_secret=CONFIRM_SECRET,
        )
        with LoopbackServer(app) as g_srv, httpx.Client(timeout=30) as http:
            hooks = {"url": f"{g_srv.url}/hooks/discord"}
            http.post(f"{c_srv.url}/_sandbox/interactions_url", json=hooks).raise_for_status()
            world = World.served(ledger, platforms, people, forum=(dsb, d_srv.url), discord=(csb, c_srv.url))
            with use(ledger=ledger, platforms=platforms), use_slack(slack):
                yield Stack(
                    world=world,
                    slack_sb=ssb,
                    slack_url=s_srv.url,
                    gateway_url=g_srv.url,
                    ideas_category=categories[IDEAS_CATEGORY_NAME],
                    http=http,
                    secrets=sandbox_secrets(discourse_sb=dsb, discord_sb=csb, slack_sb=ssb),
                )
        forum.close()
        discord.close()
        close = getattr(slack, "close", None)
        if close:
            close()
    ledger.dispose()


# --------------------------------------------------------------------------------------------
# Normalised final states


_SNOWFLAKE = re.compile(r"(?<![\w.])\d{15,20}(?![\w])")
_SLACK_TS = re.compile(r"\b\d{9,10}\.\d{6,10}\b")  # message ts and trigger ids
_ISO = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?")
_DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")
_INTERACTION_TOKEN = re.compile(r"itok_[\w\-]+")
_EPOCH = re.compile(r"(?<!\d)1[6-9]\d{8}(?!\d)")
_CLOCK = re.compile(r"\b\d{2}:\d{2} UTC\b")
_RESPONSE_URL = re.compile(r"(/actions/T\w+/\d+/)[\w-]+")  # the path is URL-safe base64
# URLs, and the Forum instance in keys (discourse:127.0.0.1:PORT:topic:N)
_LOOPBACK = re.compile(r"127\.0\.0\.1:\d+")
_HEX = re.compile(r"\b[0-9a-f]{32,}\b")
_TOKEN = re.compile(r"(/confirm/|/optin/|/opt-in/|token=)[\w.\-]+")


def scrub(text: str) -> str:
    """Strip what legitimately differs between two runs of the same scenario: platform ids made
    from the clock (Discord snowflakes, Slack timestamps), random interaction tokens, ports, times,
    hashes and signed tokens."""
    text = _TOKEN.sub(r"\1<token>", text)
    text = _INTERACTION_TOKEN.sub("<itok>", text)
    text = _RESPONSE_URL.sub(r"\1<secret-path>", text)  # Slack's random response_url path
    text = _LOOPBACK.sub("127.0.0.1:<port>", text)  # each run's sandboxes have their ports
    text = _HEX.sub("<hex>", text)
    text = _ISO.sub("<time>", text)
    # The scenario's clock is "now" where each run started: dates, epochs and clock times differ.
    text = _DATE.sub("<date>", text)
    text = _SLACK_TS.sub("<ts>", text)
    text = _EPOCH.sub("<epoch>", text)
    text = _CLOCK.sub("<hh:mm> UTC", text)
    return _SNOWFLAKE.sub("<id>", text)


def scrub_obj(value: Any) -> Any:
    """:func:`scrub` applied to every string (and clock-made number) of a JSON-like value."""
    if isinstance(value, dict):
        return {scrub(str(k)): scrub_obj(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub_obj(v) for v in value]
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)) and len(str(int(value))) >= 9 and not 0 < value < 10**9:
        return "<id>"  # snowflakes and epoch-made numbers
    return value


def _value(value: Any) -> Any:
    if isinstance(value, datetime):
        return "<time>"
    if hasattr(value, "value") and not isinstance(value, (str, int, float)):  # enums
        value = value.value
    if isinstance(value, (dict, list)):
        return scrub_obj(value)
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            return scrub(value)
        if isinstance(parsed, (dict, list)):
            return _value(parsed)
        return scrub(value)
    return value


# ``raw``: an inbox event's bytes as received (each run's ids and times, escaped); its parsed
# payload beside it is compared, scrubbed.
_LEDGER_SKIP = re.compile(r"^(id|seq|.*_at|.*hash.*|prev_.*|.*_token.*|nonce|raw)$")


def ledger_snapshot(ledger: Ledger) -> dict[str, list[str]]:
    """Every table's rows without ids, times and hashes, each row as sorted JSON, rows sorted."""
    out: dict[str, list[str]] = {}
    with ledger.read() as session:
        for table in Base.metadata.sorted_tables:
            rows = []
            for row in session.execute(select(table)).mappings():
                rows.append(
                    json.dumps(
                        {k: _value(v) for k, v in row.items() if not _LEDGER_SKIP.match(k)}, sort_keys=True, default=str
                    )
                )
            out[table.name] = sorted(rows)
    # The records of private interaction answers are compared on their own (see is_answer).
    answers = [r for r in out["audit_log"] if _is_answer_effect(json.loads(r))]
    out["audit_log"] = [r for r in out["audit_log"] if r not in answers]
    out["interaction answer effects"] = answers
    return out


def _is_answer_effect(row: dict[str, Any]) -> bool:
    payload = row.get("payload_json") or {}
    return (
        row.get("action") == "effect.done"
        and isinstance(payload, dict)
        and payload.get("platform") == "discord"
        and str(payload.get("about", "")).startswith("inbox:")
    )


# Request and fault bookkeeping differ by design between a clean run and a faulted one.
_STATE_SKIP = {
    "requests",
    "responses",
    "outcomes",
    "rate_limited",
    "limits",
    "faults",
    "time_factor",
    "guild",
    "interactions",
    "ephemeral",
    "response_posts",
}


def sandbox_snapshot(states: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The platforms' content (users, groups, roles, messages, posts, polls, role changes) with
    run-specific ids and times scrubbed."""
    out = {}
    for name, state in states.items():
        kept = {k: v for k, v in state.items() if k not in _STATE_SKIP}
        if name == "discord":
            # Private answers to interactions (ephemeral: flag 64) are compared on their own.
            kept["messages"] = [m for m in kept["messages"] if not is_answer(m)]
            kept["interaction answers"] = [m for m in state["messages"] if is_answer(m)]
        out[name] = scrub_obj(json.loads(json.dumps(kept, default=str)))
    return out


def is_answer(message: dict[str, Any]) -> bool:
    """A Discord message that answers an interaction privately (deferred answer or follow-up)."""
    return bool((message.get("flags") or 0) & 64)


def side_effects(states: dict[str, dict[str, Any]]) -> dict[str, int]:
    """Counts of what the platforms hold as done: messages, posts, DMs, role changes."""
    discord, forum, slack = states["discord"], states["discourse"], states["slack"]
    dm_channels = {c["id"] for c in discord["channels"] if c.get("type") == 1}
    return {
        "discord messages": sum(m["channel_id"] not in dm_channels and not is_answer(m) for m in discord["messages"]),
        "discord interaction answers": sum(is_answer(m) for m in discord["messages"]),
        "discord DMs": sum(m["channel_id"] in dm_channels for m in discord["messages"]),
        "discord role changes": len(discord["role_changes"]),
        "forum posts": len(forum["posts"]),
        "forum private messages": sum(t.get("archetype") == "private_message" for t in forum["topics"]),
        "forum role changes": len(forum["role_changes"]),
        "slack messages": sum(len(v) for v in slack["messages"].values()),
    }


_MARKER = re.compile(r"<!-- cf:([\w.\-]+) -->")


def duplicates(states: dict[str, dict[str, Any]]) -> list[str]:
    """Side effects done twice: two Discord messages with the same idempotency nonce, two Forum
    topics with the same ``external_id``, two Forum replies with the same key marker."""
    keys: dict[str, int] = {}

    def count(key: str) -> None:
        keys[key] = keys.get(key, 0) + 1

    for m in states["discord"]["messages"]:
        if m.get("nonce"):
            count(f"discord nonce {m['nonce']}")
    for t in states["discourse"]["topics"]:
        if t.get("external_id"):
            count(f"forum external_id {t['external_id']}")
    for p in states["discourse"]["posts"]:
        for marker in _MARKER.findall(p.get("raw") or ""):
            count(f"forum reply {marker}")
    return [f"{key} x{n}" for key, n in keys.items() if n > 1]


class LogCapture(logging.Handler):
    """Every log record of the process while installed (charterflow, connectors, Prefect)."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except Exception:  # noqa: BLE001 - a broken record must not break the run
            self.lines.append(repr(record.msg))

    @contextmanager
    def installed(self) -> Iterator[LogCapture]:
        loggers = [logging.getLogger(), logging.getLogger("prefect"), logging.getLogger("charterflow")]
        levels = [lg.level for lg in loggers]
        for lg in loggers:
            lg.addHandler(self)
        logging.getLogger("charterflow").setLevel(logging.DEBUG)
        try:
            yield self
        finally:
            for lg, level in zip(loggers, levels, strict=True):
                lg.removeHandler(self)
                lg.setLevel(level)


def utc(dt: datetime) -> datetime:
    return dt.astimezone(UTC)
