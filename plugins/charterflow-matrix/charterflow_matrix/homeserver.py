"""A real Synapse homeserver on loopback: configured, started and stopped by our own code.

``Homeserver(workdir).start()`` writes a config (SQLite, a free 127.0.0.1 port, a registration
shared secret, rate limits kept on but sized for tests, an Application Service registration
whose ``url`` points at the gateway), starts ``python -m synapse.app.homeserver`` as a child
process, waits for ``/_matrix/client/versions`` and registers the bot as a server admin through
the shared-secret admin registration API. ``stop()`` ends the child (SIGTERM, then SIGKILL).

Synapse docs: https://element-hooks.github.io/synapse/latest/usage/configuration/config_documentation.html
"""

from __future__ import annotations

import ctypes
import hashlib
import hmac
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from connectors.ports import unused_port

__all__ = ["Credentials", "Homeserver", "RateLimits", "free_port"]

SERVER_NAME = "localhost"
APPSERVICE_PATH = "/hooks/matrix"  # the gateway hook's prefix (charterflow_matrix.hook)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now, for Synapse to bind (below the ephemeral range:
    ``connectors.ports``)."""
    return unused_port()


@dataclass(frozen=True, kw_only=True)
class RateLimits:
    """Synapse's ``rc_*`` limits we set: on (tests see real 429s) but high enough for a suite.

    https://element-hooks.github.io/synapse/latest/usage/configuration/config_documentation.html#ratelimiting
    """

    message_per_second: float = 2.0
    message_burst: int = 10
    # Members are limited; the bot is exempted per user (override_ratelimit), as a bot should be.

    def config(self) -> dict[str, Any]:
        """The ``rc_*`` config keys."""
        wide = {"per_second": 1000, "burst_count": 1000}
        return {
            "rc_message": {"per_second": self.message_per_second, "burst_count": self.message_burst},
            "rc_registration": wide,
            "rc_login": {"address": wide, "account": wide, "failed_attempts": wide},
            "rc_joins": {"local": wide, "remote": wide},
            "rc_invites": {"per_room": wide, "per_user": wide, "per_issuer": wide},
            "rc_admin_redaction": wide,
            "rc_room_creation": wide,
            "rc_3pid_validation": wide,
        }


@dataclass(frozen=True, kw_only=True)
class Credentials:
    """What a client needs: the homeserver URL, the bot's token, the appservice tokens."""

    base_url: str
    server_name: str
    bot_user_id: str
    bot_token: str = field(repr=False)
    as_token: str = field(repr=False)
    hs_token: str = field(repr=False)
    registration_secret: str = field(repr=False)

    def as_json(self) -> dict[str, str]:
        """For ``credentials.json`` beside the config (the stack reads it)."""
        return {
            "base_url": self.base_url,
            "server_name": self.server_name,
            "bot_user_id": self.bot_user_id,
            "bot_token": self.bot_token,
            "as_token": self.as_token,
            "hs_token": self.hs_token,
            "registration_secret": self.registration_secret,
        }


class Homeserver:
    """One Synapse child process, its config and data in ``workdir``."""

    def __init__(
        self,
        workdir: Path | str,
        *,
        appservice_url: str | None = None,
        port: int | None = None,
        bot_localpart: str = "charterflow",
        rate_limits: RateLimits | None = None,
        python: str | None = None,
        die_with_parent: bool = False,
        extra_config: dict[str, Any] | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        # Synapse must accept the registration even before the gateway runs: it only calls the
        # URL when it has events to push, and retries with backoff until the gateway answers.
        self.appservice_url = appservice_url or "http://127.0.0.1:9/unused"
        self.bot_localpart = bot_localpart
        self.rate_limits = rate_limits or RateLimits()
        self.python = python or sys.executable
        self.die_with_parent = die_with_parent
        # Settings a production server may have that ours does not (``default_room_version``).
        self.extra_config = dict(extra_config or {})
        self.process: subprocess.Popen[bytes] | None = None
        self.credentials: Credentials | None = None
        self.started_in: float | None = None

    # ---- config ----------------------------------------------------------------------------

    @property
    def config_path(self) -> Path:
        return self.workdir / "homeserver.yaml"

    @property
    def log_path(self) -> Path:
        return self.workdir / "homeserver.log"

    def _secrets(self) -> dict[str, str]:
        # Kept across restarts of one workdir, so tokens and the database stay valid.
        path = self.workdir / "secrets.json"
        if path.exists():
            return json.loads(path.read_text())
        values = {
            name: secrets.token_urlsafe(32)
            for name in ("registration_shared_secret", "macaroon_secret_key", "form_secret", "as_token", "hs_token")
        }
        _write_private(path, json.dumps(values))
        return values

    def write_config(self) -> Path:
        """Write the config, the appservice registration and the signing key (once)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        values = self._secrets()
        registration = {
            "id": "charterflow",
            "url": self.appservice_url.rstrip("/"),
            "as_token": values["as_token"],
            "hs_token": values["hs_token"],
            "sender_localpart": f"{self.bot_localpart}-appservice",
            # The bot, not exclusive (it is an ordinary account): Synapse pushes every event of
            # each room where a user of the namespace is joined (synapse/appservice/__init__.py,
            # _matches_user_in_member_list), so the community's rooms and the bot's DMs, never
            # other people's rooms (a room regex "!.*" would push every private room on the
            # server, and commands from rooms the bot cannot answer in). rate_limited is left
            # at its default: the plugin makes no request with the as_token but doctor's ping.
            "namespaces": {
                "users": [{"exclusive": False, "regex": re.escape(f"@{self.bot_localpart}:{SERVER_NAME}")}],
                "aliases": [],
                "rooms": [],
            },
        }
        _write_private(self.workdir / "appservice.yaml", json.dumps(registration, indent=2))
        key = self.workdir / "signing.key"
        if not key.exists():
            # lazy: start-up: signedjson (Synapse's) only to write a new config; the gateway's hook imports this module
            from signedjson.key import generate_signing_key, write_signing_keys

            with key.open("w") as handle:
                write_signing_keys(handle, [generate_signing_key("a_cf")])
        (self.workdir / "media").mkdir(exist_ok=True)
        (self.workdir / "log.yaml").write_text(
            json.dumps(
                {
                    "version": 1,
                    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
                    "handlers": {
                        "file": {"class": "logging.FileHandler", "formatter": "plain", "filename": str(self.log_path)}
                    },
                    "root": {"level": "WARNING", "handlers": ["file"]},
                    "disable_existing_loggers": False,
                }
            )
        )
        config: dict[str, Any] = {
            "server_name": SERVER_NAME,
            "public_baseurl": self.base_url + "/",
            "pid_file": str(self.workdir / "homeserver.pid"),
            "listeners": [
                {
                    "port": self.port,
                    "bind_addresses": ["127.0.0.1"],
                    "type": "http",
                    "tls": False,
                    "x_forwarded": False,
                    "resources": [{"names": ["client"], "compress": False}],
                }
            ],
            "database": {"name": "sqlite3", "args": {"database": str(self.workdir / "homeserver.db")}},
            "log_config": str(self.workdir / "log.yaml"),
            "media_store_path": str(self.workdir / "media"),
            "signing_key_path": str(key),
            "registration_shared_secret": values["registration_shared_secret"],
            "macaroon_secret_key": values["macaroon_secret_key"],
            "form_secret": values["form_secret"],
            "report_stats": False,
            "enable_metrics": False,
            "trusted_key_servers": [],
            "suppress_key_server_warning": True,
            "federation_domain_whitelist": [],
            "app_service_config_files": [str(self.workdir / "appservice.yaml")],
            "presence": {"enabled": False},
            "url_preview_enabled": False,
            **self.rate_limits.config(),
            **self.extra_config,
        }
        # JSON is YAML: no YAML writer needed.
        _write_private(self.config_path, json.dumps(config, indent=2))
        return self.config_path

    # ---- process ---------------------------------------------------------------------------

    def command(self) -> list[str]:
        """The command line that runs this homeserver (every path in its config is absolute, so
        a supervisor may run it again from any directory)."""
        return [self.python, "-m", "synapse.app.homeserver", "--config-path", str(self.config_path)]

    def environment(self) -> dict[str, str]:
        """The environment it runs with."""
        return {**os.environ, "SYNAPSE_ASYNC_IO_REACTOR": "0"}

    def start(self, *, timeout: float = 60.0) -> Credentials:
        """Start Synapse, wait until it answers, register the bot; the bot's credentials."""
        started = time.monotonic()
        self.write_config()
        log = self.log_path.with_suffix(".out").open("ab")
        self.process = subprocess.Popen(
            self.command(),
            cwd=self.workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=self.environment(),
            preexec_fn=_die_with_parent if self.die_with_parent else None,
        )
        log.close()
        deadline = started + timeout
        with httpx.Client(base_url=self.base_url, timeout=5, trust_env=False) as client:
            while True:
                if self.process.poll() is not None:
                    tail = self.log_path.with_suffix(".out").read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"synapse exited with {self.process.returncode}: {tail}")
                try:
                    if client.get("/_matrix/client/versions").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"synapse did not answer within {timeout:g}s; see {self.log_path}")
                time.sleep(0.2)
            self.credentials = self._bot(client)
        _write_private(self.workdir / "credentials.json", json.dumps(self.credentials.as_json()))
        self.started_in = time.monotonic() - started
        return self.credentials

    def _bot(self, client: httpx.Client) -> Credentials:
        values = self._secrets()
        saved = self.workdir / "credentials.json"
        token = None
        if saved.exists():  # a restart: the bot exists; check its token still works
            token = json.loads(saved.read_text()).get("bot_token")
            if (
                client.get(
                    "/_matrix/client/v3/account/whoami", headers={"Authorization": f"Bearer {token}"}
                ).status_code
                != 200
            ):
                token = None
        if token is None:
            token = register_user(
                client,
                values["registration_shared_secret"],
                self.bot_localpart,
                password=secrets.token_urlsafe(24),
                admin=True,
            )
            # https://element-hooks.github.io/synapse/latest/admin_api/user_admin_api.html#set-ratelimit
            client.post(
                f"/_synapse/admin/v1/users/@{self.bot_localpart}:{SERVER_NAME}/override_ratelimit",
                headers={"Authorization": f"Bearer {token}"},
                json={"messages_per_second": 0, "burst_count": 0},
            ).raise_for_status()
        return Credentials(
            base_url=self.base_url,
            server_name=SERVER_NAME,
            bot_user_id=f"@{self.bot_localpart}:{SERVER_NAME}",
            bot_token=token,
            as_token=values["as_token"],
            hs_token=values["hs_token"],
            registration_secret=values["registration_shared_secret"],
        )

    def alive(self) -> bool:
        """True while the child runs."""
        return self.process is not None and self.process.poll() is None

    def stop(self, *, timeout: float = 15.0) -> None:
        """SIGTERM, wait, then SIGKILL; idempotent."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def __enter__(self) -> Homeserver:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (config, registration, tokens), from its creation."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    path.chmod(0o600)


def _die_with_parent() -> None:
    """In the child: SIGTERM when the process that started it ends, even by SIGKILL (Linux's
    PR_SET_PDEATHSIG; elsewhere nothing), so a killed ``up`` or test run leaves no Synapse."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG


def register_user(
    client: httpx.Client, shared_secret: str, localpart: str, *, password: str, admin: bool = False
) -> str:
    """Register ``localpart`` through Synapse's shared-secret admin API; its access token.

    https://element-hooks.github.io/synapse/latest/admin_api/register_api.html
    """
    nonce = client.get("/_synapse/admin/v1/register").raise_for_status().json()["nonce"]
    mac = hmac.new(shared_secret.encode(), digestmod=hashlib.sha1)
    mac.update(
        b"\x00".join([nonce.encode(), localpart.encode(), password.encode(), b"admin" if admin else b"notadmin"])
    )
    response = client.post(
        "/_synapse/admin/v1/register",
        json={
            "nonce": nonce,
            "username": localpart,
            "password": password,
            "admin": admin,
            "mac": mac.hexdigest(),
        },
    )
    response.raise_for_status()
    return response.json()["access_token"]
