"""The sandboxes process of `charterflow up` (``python -m charterflow.inspector``).

It serves, in one process on 127.0.0.1, the sandbox of each platform `up` found without
credentials, seeded with the fictional community of :mod:`charterflow.seed`, and the inspector
(:mod:`charterflow.inspector.app`). `up` passes what it needs in one environment variable,
``CHARTERFLOW_SANDBOX_SPEC`` (JSON: ports, the per-run secrets, the gateway's URL), so the
secrets are never written to disk nor printed. Once the servers listen it posts the seeded ideas
on the Forum, registers the Discord slash commands, points the Forum webhook and the Discord
interactions at the gateway, and only then answers ``GET /healthz`` on the inspector with 200.
SIGINT/SIGTERM stop every server at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from charterflow.sandbox_state import SandboxStore
from charterflow.seed import build
from charterflow.settings import get_settings
from connectors.discord.sandbox import DiscordSandbox
from connectors.discourse.sandbox import DiscourseSandbox
from connectors.email import SmtpSandbox
from connectors.sandboxkit import KEEP_ALIVE_SECONDS
from connectors.slack.sandbox import SlackSandbox

SPEC_VARIABLE = "CHARTERFLOW_SANDBOX_SPEC"


@dataclass(kw_only=True)
class Running:
    """The sandboxes and their URLs, as the inspector sees them."""

    urls: dict[str, str]  # platform -> base URL
    gateway_url: str
    discourse_api_key: str | None = None
    community: Any = None
    mailbox: Any = None  # the loopback SMTP sandbox, when `up` runs one
    ready: bool = False
    problems: list[str] = field(default_factory=list)


class _Server(uvicorn.Server):
    # Several servers share this process: the process handles the signals once, for all.
    @contextlib.contextmanager
    def capture_signals(self):
        yield


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


def build_sandboxes(spec: dict[str, Any], community: Any) -> dict[str, Any]:
    """The sandbox objects the spec asks for, with its secrets."""
    boxes: dict[str, Any] = {}
    wanted = spec["platforms"]
    if "discord" in wanted:
        seed = community.discord_seed()
        seed.update(token=wanted["discord"]["token"], private_key=wanted["discord"]["private_key"])
        boxes["discord"] = DiscordSandbox(seed=seed)
    if "discourse" in wanted:
        seed = community.discourse_seed()
        conf = wanted["discourse"]
        seed.update(
            api_keys=[{"key": conf["api_key"], "username": None, "description": "charterflow up"}],
            first_event_id=int(conf.get("first_event_id", 1)),
            # The site its webhooks name: the URL the gateway knows it by (issue 19).
            instance=f"http://{spec['host']}:{conf['port']}",
        )
        seed["webhook"] = {"url": None, "secret": conf["webhook_secret"]}
        if conf.get("webhook_retry_delays") is not None:
            seed["settings"] = {**seed.get("settings", {}), "webhook_retry_delays": conf["webhook_retry_delays"]}
        boxes["discourse"] = DiscourseSandbox(seed=seed)
    if "slack" in wanted:
        seed = community.slack_seed()
        seed.update(bot_token=wanted["slack"]["bot_token"], signing_secret=wanted["slack"]["signing_secret"])
        boxes["slack"] = SlackSandbox(seed=seed)
    return boxes


def prepare(
    spec: dict[str, Any], boxes: dict[str, Any], running: Running, restored: frozenset[str] = frozenset()
) -> None:
    """What happens once the sandboxes listen: ideas on the Forum (before the webhook points
    anywhere: they are the community's old ideas; not again on a ``restored`` Forum), the Discord
    commands, then the webhook, the interactions URL and Slack's events URL pointed at the
    gateway."""
    gateway = spec["gateway_url"].rstrip("/")
    if "discourse" in boxes and "discourse" not in restored:
        url, key = running.urls["discourse"], spec["platforms"]["discourse"]["api_key"]
        for idea in running.community.ideas:
            response = httpx.post(
                f"{url}/posts.json",
                timeout=10,
                headers={"Api-Key": key, "Api-Username": idea["author"]},
                json={"title": idea["title"], "raw": idea["body"], "category": 7},
            )
            if response.status_code != 200:
                running.problems.append(f"idea not seeded: HTTP {response.status_code}")
    _point_at_gateway(spec, boxes, frozenset({"discourse"}))
    if "discourse" in boxes:
        boxes["discourse"].resume_webhooks()  # those pending when the process stopped
    if "discord" in boxes:
        connector = boxes["discord"].connect(running.urls["discord"])
        try:
            connector.register_commands(scope="guild")
        finally:
            connector.close()
        _point_at_gateway(spec, boxes, frozenset({"discord"}))
    if "slack" in boxes:
        # The Events API: a bridged Slack channel's messages reach the common room (R-COMMS).
        boxes["slack"].events_url = f"{gateway}/hooks/slack"


def _point_at_gateway(spec: dict[str, Any], boxes: dict[str, Any], names: frozenset[str]) -> None:
    """The Forum's webhook and Discord's interactions URL of ``names`` pointed at the gateway."""
    gateway = spec["gateway_url"].rstrip("/")
    if "discourse" in names and "discourse" in boxes:
        boxes["discourse"].webhook.url = f"{gateway}/hooks/discourse"
    if "discord" in names and "discord" in boxes:
        boxes["discord"].interactions_url = f"{gateway}/hooks/discord"


def restore(spec: dict[str, Any], boxes: dict[str, Any], store: Any) -> frozenset[str]:
    """Put back each sandbox's saved state (this process was restarted); the restored ones point
    at the gateway at once, before any server listens, as a platform keeps its webhook across its
    own restarts: a topic created between the first request served and :func:`prepare` sent no
    webhook, and was lost (issue 19, the chaos test)."""
    restored = frozenset(name for name, box in boxes.items() if store and store.restore(name, box))
    _point_at_gateway(spec, boxes, restored)
    return restored


def _allowed_hosts() -> list[str]:
    """``CHARTERFLOW_INSPECTOR_ALLOWED_HOSTS``: comma-separated names (``name`` or ``name:port``)
    the inspector answers to besides its bound address and ``localhost``."""
    return [h.strip() for h in get_settings().inspector_allowed_hosts.split(",") if h.strip()]


def _store(spec: dict[str, Any]) -> Any:
    """Where this run keeps the sandboxes' state (``state_dir``), so a restart serves it again."""
    if not spec.get("state_dir"):
        return None
    secrets = [v for conf in spec["platforms"].values() for v in conf.values() if isinstance(v, str)]
    return SandboxStore(Path(spec["state_dir"]), secrets=secrets)


def _ledger_url() -> str | None:
    # The same ledger as up's other processes (CHARTERFLOW_HOME / _DATABASE_URL in the environment).
    try:
        return get_settings().ledger_url()
    except Exception:  # noqa: BLE001 - settings that do not load: no reports page, the rest serves
        return None


async def _run(spec: dict[str, Any]) -> int:
    # lazy: start-up: FastAPI and the templates stay out of `up`'s sandbox_env (build_sandboxes)
    from charterflow.inspector.app import create_app

    host = spec.get("host", "127.0.0.1")
    community = build(today=date.fromisoformat(spec["today"]) if spec.get("today") else None)
    boxes = build_sandboxes(spec, community)
    store = _store(spec)
    restored = restore(spec, boxes, store)
    if restored:
        print(f"sandboxes: state restored for {', '.join(sorted(restored))}", file=sys.stderr)
    sockets = {name: _bind(host, int(spec["platforms"][name]["port"])) for name in boxes}
    sockets["inspector"] = _bind(host, int(spec["inspector_port"]))
    running = _running(spec, host=host, community=community, sockets=sockets, names=list(boxes))
    apps = {name: store.watch(name, box) if store else box.app for name, box in boxes.items()}
    apps["inspector"] = create_app(
        running=running,
        prefect_ui=spec.get("prefect_ui"),
        port=sockets["inspector"].getsockname()[1],
        allowed_hosts=_allowed_hosts(),
        ledger_url=_ledger_url(),
    )
    servers = {
        name: _Server(
            uvicorn.Config(
                app,
                log_level="warning",
                access_log=False,
                lifespan="on",
                timeout_graceful_shutdown=3,
                timeout_keep_alive=KEEP_ALIVE_SECONDS,
            )
        )
        for name, app in apps.items()
    }
    await _serve(servers, sockets, prepared=lambda: prepare(spec, boxes, running, restored), running=running)
    _close(boxes, running)
    return 0


def _running(
    spec: dict[str, Any], *, host: str, community: Any, sockets: dict[str, socket.socket], names: list[str]
) -> Running:
    """What the inspector shows: the sandboxes' URLs on their bound ports, and the SMTP
    sandbox's mailbox when the spec asks for one."""
    running = Running(
        urls={name: f"http://{host}:{sockets[name].getsockname()[1]}" for name in names},
        gateway_url=spec["gateway_url"],
        community=community,
        discourse_api_key=(spec["platforms"].get("discourse") or {}).get("api_key"),
    )
    if spec.get("smtp"):
        running.mailbox = SmtpSandbox(host=host, port=int(spec["smtp"]["port"])).start()
    return running


async def _serve(
    servers: dict[str, Any], sockets: dict[str, socket.socket], *, prepared: Any, running: Running
) -> None:
    """Serve every app on its socket until SIGINT/SIGTERM; once all listen, run ``prepared``
    (in a thread) and say ready on /healthz, or the problem."""
    loop = asyncio.get_running_loop()

    def stop() -> None:
        for server in servers.values():
            server.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    tasks = [asyncio.create_task(server.serve(sockets=[sockets[name]])) for name, server in servers.items()]
    while not all(s.started for s in servers.values()):
        if any(t.done() for t in tasks):
            break
        await asyncio.sleep(0.05)
    if all(s.started for s in servers.values()):
        try:
            await asyncio.to_thread(prepared)
            running.ready = True
        except Exception as exc:  # noqa: BLE001 - reported on /healthz and in the log
            running.problems.append(f"{type(exc).__name__}: {exc}")
            print(f"sandboxes: preparing failed: {type(exc).__name__}: {exc}", file=sys.stderr)
    await asyncio.gather(*tasks, return_exceptions=True)


def _close(boxes: dict[str, Any], running: Running) -> None:
    if running.mailbox is not None:
        running.mailbox.stop()
    for box in boxes.values():
        close = getattr(box, "close", None)
        if callable(close):
            close()


def main() -> None:
    """Read ``CHARTERFLOW_SANDBOX_SPEC`` and serve until SIGINT/SIGTERM."""
    raw = os.environ.get(SPEC_VARIABLE)
    if not raw:
        print(f"error: {SPEC_VARIABLE} is not set (this process is started by `charterflow up`)", file=sys.stderr)
        sys.exit(2)
    sys.exit(asyncio.run(_run(json.loads(raw))))
