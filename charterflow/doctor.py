"""`charterflow doctor`: check the configured platforms before going live, one line per check.

A platform counts as configured when any of its ``CHARTERFLOW_<PLATFORM>_*`` variables is set
(in the environment or ``.env``); each configured one runs its connector's read-only checks
(``connectors/<platform>/doctor.py``) with the names the flows use (``CHARTERFLOW_MEMBERSHIP_*``
overrides, the gateway's Forum category ids). A platform whose settings do not load fails with
the loader's message, which names variables, never values. A connector plugin adds its own
checks through the entry-point group ``charterflow.doctor`` (below), run the same way when its
``CHARTERFLOW_<NAME>_*`` variables are set. ``--sandboxes`` runs the same checks
against the three sandboxes (default seeds) served on 127.0.0.1, to see what a healthy setup
prints. No secret is ever printed.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import uvicorn
from dotenv import dotenv_values

from connectors.discord import doctor as discord_doctor
from connectors.discord.connector import DiscordConnector
from connectors.discord.settings import DiscordSettings
from connectors.discourse import doctor as discourse_doctor
from connectors.discourse.connector import DiscourseConnector
from connectors.discourse.settings import DiscourseSettings
from connectors.doctor import Check, failed, passed
from connectors.errors import ConfigError
from connectors.slack import doctor as slack_doctor
from connectors.slack.connector import SlackConnector
from connectors.slack.settings import SlackSettings
from flows.commons.bridges import CommonsSettings, parse_bridges
from flows.platforms import MembershipSettings
from gateway.settings import GatewaySettings

__all__ = ["DOCTOR_GROUP", "PLATFORMS", "DoctorReport", "plugin_doctors", "run_doctor", "sandboxes"]

PLATFORMS = ("discord", "discourse", "slack")
# A plugin's checks: ``name = "pkg.module:run"`` where ``run(**settings_fields) -> list[Check]``
# loads its own settings (``ConfigError`` naming what is missing) and calls the platform read-only.
DOCTOR_GROUP = "charterflow.doctor"


def plugin_doctors(group: str = DOCTOR_GROUP) -> dict[str, Any]:
    """The plugins' check functions by platform name (built-in names excluded); one that cannot
    be loaded maps to the exception, reported as a failed check, never fatal."""
    found: dict[str, Any] = {}
    for ep in sorted(entry_points(group=group), key=lambda e: e.name):
        if ep.name in PLATFORMS:
            continue
        try:
            found[ep.name] = ep.load()
        except Exception as exc:  # noqa: BLE001 - a broken plugin is one FAIL line
            found[ep.name] = exc
    return found


@dataclass
class DoctorReport:
    """The checks that ran and the platforms left out because nothing configures them."""

    checks: list[Check] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when at least one check ran and none failed."""
        return bool(self.checks) and all(c.ok for c in self.checks)


def _configured(platform: str, env_file: Path | None) -> bool:
    prefix = f"CHARTERFLOW_{platform.upper()}_"
    if any(k.upper().startswith(prefix) and v for k, v in os.environ.items()):
        return True
    if env_file is not None and env_file.is_file():
        return any(str(k).upper().startswith(prefix) and v for k, v in dotenv_values(env_file).items())
    return False


def run_doctor(
    *,
    platforms: Sequence[str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    env_file: Path | None = Path(".env"),
) -> DoctorReport:
    """Run the checks of ``platforms`` (default: every configured one). ``overrides`` gives a
    platform's settings fields explicitly (``--sandboxes``); such a platform counts as configured."""
    overrides = overrides or {}
    report = DoctorReport()
    membership = MembershipSettings()
    gateway = GatewaySettings()
    plugins = plugin_doctors()
    known = (*PLATFORMS, *plugins)
    for platform in platforms or known:
        if platform not in known:
            raise ValueError(f"unknown platform {platform!r}: one of {', '.join(known)}")
        given = dict(overrides.get(platform) or {})
        if not given and not _configured(platform, env_file):
            if platforms:
                report.checks.append(
                    failed(
                        platform,
                        "settings",
                        f"no CHARTERFLOW_{platform.upper()}_* variable is set",
                        "configure it (see docs/production.md) or leave it out",
                    )
                )
            else:
                report.skipped.append(platform)
            continue
        try:
            if platform in plugins:
                report.checks.extend(_check_plugin(platform, plugins[platform], given))
            else:
                report.checks.extend(_check_platform(platform, given, membership=membership, gateway=gateway))
        except ConfigError as exc:
            report.checks.append(failed(platform, "settings", str(exc), "set the variables named"))
    report.checks.extend(_shared_secrets(membership, gateway))
    return report


def _check_platform(platform: str, given: dict[str, Any], *, membership: Any, gateway: Any) -> list[Check]:
    if platform == "discord":
        discord = DiscordSettings.load(**given)
        channel = membership.discord_channel or discord.wg_channel_id or "wg-private"
        return discord_doctor.check(
            discord,
            channels=[channel],
            wg_role=membership.discord_role,
            interactions_url=_public(gateway, discord_doctor.HOOK_PATH),
        )
    if platform == "discourse":
        ids = sorted(gateway.applications_categories() | gateway.ideas_categories())
        return discourse_doctor.check(
            DiscourseSettings.load(**given),
            category=membership.discourse_category,
            group=membership.discourse_group,
            category_ids=ids,
            webhook_url=_public(gateway, discourse_doctor.HOOK_PATH),
        )
    try:
        rooms = _slack_rooms(CommonsSettings())
    except ValueError as exc:
        return [failed(platform, "common room", str(exc), "correct CHARTERFLOW_COMMONS_BRIDGES")]
    return slack_doctor.check(SlackSettings.load(**given), rooms=rooms)


def _public(gateway: Any, route: str) -> str | None:
    """The gateway's public URL of a platform's hook ``route``, if known."""
    return f"{gateway.public_url.rstrip('/')}{route}" if gateway.public_url else None


def _slack_rooms(commons: CommonsSettings) -> list[str]:
    """The Slack channels the common room's bridges name (Slack takes part only when named)."""
    raw = (commons.bridges or "").strip()
    if not raw or raw.lower() == "none":
        return []
    return list(dict.fromkeys(b.rooms["slack"] for b in parse_bridges(raw) if "slack" in b.rooms))


def _check_plugin(platform: str, run: Any, given: dict[str, Any]) -> list[Check]:
    """A plugin's checks; a plugin that fails to load or raises is one failed check (its
    exception's type only: a plugin's message could hold a value)."""
    if isinstance(run, Exception):
        return [
            failed(
                platform,
                "plugin",
                f"its doctor entry point cannot load ({type(run).__name__})",
                f"reinstall the plugin that registers {platform!r} in {DOCTOR_GROUP}",
            )
        ]
    try:
        checks = list(run(**given))
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - reported, never fatal
        return [
            failed(platform, "doctor", f"the plugin's checks stopped ({type(exc).__name__})", "see the plugin's README")
        ]
    return checks


def _shared_secrets(membership: Any, gateway: Any) -> list[Check]:
    """Secrets shared by the gateway and the workers: unset is fine on one machine only."""
    out = []
    for name, value, what in (
        ("CHARTERFLOW_MEMBERSHIP_CONFIRM_SECRET", membership.confirm_secret, "confirmation and opt-in links"),
        ("CHARTERFLOW_GATEWAY_FORM_SECRET", gateway.form_secret, "the application form's CSRF tokens"),
    ):
        if value is not None and value.get_secret_value():
            out.append(passed("gateway", name, f"set (signs {what})"))
        else:
            out.append(
                passed(
                    "gateway",
                    name,
                    f"unset: a random value per machine signs {what}; set one value "
                    "everywhere before running the gateway or workers on several machines",
                )
            )
    return out


# --------------------------------------------------------------------------------------------
# --sandboxes


class _Served:
    """A sandbox's ASGI app served by uvicorn on 127.0.0.1 from a daemon thread."""

    def __init__(self, app: Any) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="critical", access_log=False, lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("a sandbox did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


@contextmanager
def sandboxes(seeds: Mapping[str, Mapping[str, Any]] | None = None) -> Iterator[dict[str, dict[str, Any]]]:
    """The three sandboxes (default seeds unless ``seeds`` names one) served on 127.0.0.1; yields
    each platform's settings fields pointing at its sandbox, for :func:`run_doctor`'s overrides."""
    seeds = seeds or {}
    served: list[_Served] = []
    try:
        fields: dict[str, dict[str, Any]] = {}
        # As a live setup is: the Forum's webhook and Discord's interactions go to a gateway (the
        # checks only read, so nothing is sent).
        hooks = {
            "discourse": {"webhook_url": f"http://127.0.0.1:8080{discourse_doctor.HOOK_PATH}"},
            "discord": {"interactions_url": f"http://127.0.0.1:8080{discord_doctor.HOOK_PATH}"},
        }
        for name, cls in (("discord", DiscordConnector), ("discourse", DiscourseConnector), ("slack", SlackConnector)):
            box = cls.sandbox(seed=seeds.get(name), **hooks.get(name, {}))
            server = _Served(box.app)
            served.append(server)
            prefix = f"CHARTERFLOW_{name.upper()}_"
            fields[name] = {k.removeprefix(prefix).lower(): v for k, v in box.client_info(server.url)["env"].items()}
        yield fields
    finally:
        for server in served:
            server.stop()
