"""Settings of charterflow, read from ``CHARTERFLOW_*`` environment variables and ``.env``.

Secrets are ``SecretStr``: unwrap them only where a client is built, never log them.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything charterflow reads from its environment. Each field is ``CHARTERFLOW_<NAME>``."""

    model_config = SettingsConfigDict(
        env_prefix="CHARTERFLOW_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    home: Path = Field(
        default=Path(".charterflow"),
        description="Folder for local state: Prefect's database, the SQLite ledger, logs.",
    )
    charter_file: Path | None = Field(
        default=None,
        description="The charter TOML; unset means the shipped DSF Online Community WG charter.",
    )
    database_url: SecretStr | None = Field(
        default=None,
        description="Ledger database URL (postgresql+psycopg://…); unset means SQLite under home.",
    )
    prefect_host: str = Field(default="127.0.0.1", description="Where `up` binds Prefect's server.")
    prefect_port: int = Field(default=4200, ge=1, le=65535, description="Prefect server port.")
    sandboxes: bool = Field(
        default=True,
        description="`up` starts a seeded sandbox for each platform without credentials (false: "
        "such a platform is not served).",
    )
    inspector_port: int = Field(
        default=8090, ge=0, le=65535, description="Port of the sandbox inspector on 127.0.0.1 (0: any free port)."
    )
    inspector_allowed_hosts: str = Field(
        default="",
        description="Host names the sandbox inspector answers to besides 127.0.0.1 and localhost "
        "(comma-separated, `name` or `name:port`); any other Host header is refused "
        "(DNS rebinding).",
    )
    sandbox_discord_port: int = Field(
        default=0, ge=0, le=65535, description="Port of the Discord sandbox on 127.0.0.1 (0: any free port)."
    )
    sandbox_discourse_port: int = Field(
        default=0, ge=0, le=65535, description="Port of the Forum sandbox on 127.0.0.1 (0: any free port)."
    )
    sandbox_slack_port: int = Field(
        default=0, ge=0, le=65535, description="Port of the Slack sandbox on 127.0.0.1 (0: any free port)."
    )
    use_up: bool = Field(
        default=True,
        description="Commands that act on the platforms or the ledger (roles, moderation, ideas, "
        "reports, roster, …) use the settings of the `up` running under "
        "CHARTERFLOW_HOME, and say so (false: your own settings only).",
    )
    sandbox_webhook_retry: str = Field(
        default="",
        description="Seconds after which the Forum sandbox sends again a webhook the gateway answered "
        "other than 2xx, as Discourse does with retry_web_hook_events on (comma-separated, e.g. "
        "60,300,1500,7500; empty, Discourse's default: never). One that got no answer is never sent "
        "again; hooks-redeliver asks for it.",
    )
    sandbox_smtp_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        description=(
            "Port of the loopback SMTP sandbox `up` runs when CHARTERFLOW_SMTP_HOST is unset (0: any free port)."
        ),
    )
    inbox_dispatch: Literal["pull", "push"] = Field(
        default="pull",
        description="How stored inbox events reach their handler. `pull`: the workers claim them "
        "from the ledger and run each as a task run of an `inbox` flow run (flows/inbox_pump.py). "
        "`push`: the gateway creates a background task run per event through the Prefect API and "
        "a task worker serves them (about 16 ms more CPU per event).",
    )
    inbox_concurrency: int = Field(
        default=3,
        ge=1,
        le=100,
        description="Inbox events the workers handle at once (`pull`: the pump's task runs, with as "
        "many claimed ahead; `push`: the task worker's runs). Events past it wait in the ledger, in "
        "order. More helps when handlers wait on slow platforms; on two busy cores 3 kept the "
        "acknowledgement p99 at 28-34 ms at 20 events/s, 10 at 46-60 ms (bench/README.md, intake).",
    )
    inbox_workers: int | None = Field(
        default=None,
        ge=1,
        le=8,
        description="Processes that handle inbox events: `up`'s `workers` and `inbox-2`, `inbox-3`, "
        "... beside it, each with its own pump (CHARTERFLOW_INBOX_CONCURRENCY at once). Unset: 2 on "
        "PostgreSQL, where one process's interpreter lock caps the intake (near 25 events/s on two "
        "cores, one pump's answers waited to be claimed: p50 0.4-1.6 s against 0.08 s with two), "
        "and 1 on SQLite, which writes one transaction at a time anyway and where each "
        "process costs about 140 MiB (bench/README.md, intake).",
    )
    inline_max_interval: int = Field(
        default=900,
        ge=0,
        le=86_400,
        description="Seconds: a deployment scheduled at least this often (an interval schedule) runs "
        "in the workers' process, a thread per run, instead of a process per run (about 4 s of CPU "
        "and 120 MiB each: `commons-poll` every minute, the 5- and 15-minute ones). 0 runs every "
        "flow run in a process of its own (flows/inline_runs.py).",
    )
    worker_stall_seconds: int = Field(
        default=300,
        ge=10,
        description="`up` restarts the workers when inbox events wait this long "
        "and nothing was handled meanwhile; those events are dispatched again.",
    )

    def inbox_worker_count(self) -> int:
        """How many processes handle inbox events (:attr:`inbox_workers`, or its default)."""
        if self.inbox_workers is not None:
            return self.inbox_workers
        return 2 if self.ledger_url().startswith("postgresql") else 1

    def ledger_url(self) -> str:
        """The ledger's SQLAlchemy URL (a secret: do not log it unredacted)."""
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{(self.home / 'ledger.db').resolve()}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
