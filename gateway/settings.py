"""Settings of the gateway: ``CHARTERFLOW_GATEWAY_*``, plus the three platform secrets it
verifies with, read under the connectors' own names (``CHARTERFLOW_DISCOURSE_WEBHOOK_SECRET``,
``CHARTERFLOW_DISCORD_PUBLIC_KEY``, ``CHARTERFLOW_SLACK_SIGNING_SECRET``) so one ``.env`` serves
both. Secrets are ``SecretStr``; unset means that platform's route answers 503.
"""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

MiB = 1 << 20


def _ids(text: str) -> frozenset[str]:
    return frozenset(part.strip() for part in text.split(",") if part.strip())


class GatewaySettings(BaseSettings):
    """Everything the gateway reads from its environment."""

    model_config = SettingsConfigDict(
        env_prefix="CHARTERFLOW_GATEWAY_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
    )

    host: str = Field(default="0.0.0.0", description="Interface to listen on (the one public port).")
    port: int = Field(default=8080, ge=0, le=65535, description="Port to listen on.")
    public_url: str | None = Field(default=None, description="Public base URL, for printing the form URL.")
    forwarded_allow_ips: str = Field(
        default="127.0.0.1", description="Proxies trusted for X-Forwarded-For (the client IP used by the rate limit)."
    )
    max_body_bytes: int = Field(default=MiB, gt=0, description="Largest webhook body accepted (413 above).")
    body_timeout: float = Field(
        default=30.0,
        gt=0,
        description=(
            "Seconds a client has to send a request's whole body (408 after: a client that stops "
            "half-way does not hold a connection)."
        ),
    )
    max_form_bytes: int = Field(default=64 * 1024, gt=0, description="Largest /apply post accepted.")
    form_secret: SecretStr | None = Field(
        default=None, description="Signs the form's CSRF tokens; unset = random per process (set it for replicas)."
    )
    form_token_max_age: int = Field(default=4 * 3600, gt=0, description="Seconds a form stays valid.")
    apply_rate_limit: int = Field(default=10, ge=1, description="POST /apply per client IP per window.")
    apply_rate_window: float = Field(default=600.0, gt=0, description="That window, seconds.")
    discourse_applications_categories: str = Field(
        default="", description="Comma-separated Discourse category ids whose new topics are applications."
    )
    discourse_ideas_categories: str = Field(
        default="", description="Comma-separated Discourse category ids whose new topics are ideas."
    )
    discourse_commons_categories: str = Field(
        default="",
        description="Comma-separated Discourse category ids of the common room's bridged "
        "categories (R-COMMS): their posts, edits and deletions are relayed.",
    )
    drain_interval: float = Field(default=2.0, gt=0, description="Seconds between drain-loop passes.")
    stale_after: float = Field(
        default=600.0,
        gt=0,
        description="A dispatched event with no sign of its run after this many seconds is dispatched again.",
    )
    dispatch: bool = Field(default=True, description="Start runs in Prefect (false: only store).")
    dispatch_threads: int = Field(
        default=4, ge=1, le=32, description="Runs started in Prefect side by side (one POST each)."
    )

    discourse_api_username: str = Field(
        default="system",
        description="The Forum account the bot posts as (the Discourse connector's "
        "Api-Username): its posts coming back by webhook start no run.",
        validation_alias=AliasChoices("CHARTERFLOW_DISCOURSE_API_USERNAME", "discourse_api_username"),
    )
    discourse_webhook_secret: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("CHARTERFLOW_DISCOURSE_WEBHOOK_SECRET", "discourse_webhook_secret")
    )
    discourse_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("CHARTERFLOW_DISCOURSE_URL", "discourse_url"),
        description="The Forum's base URL: its webhooks are keyed by its host; a delivery "
        "naming another site is refused (400).",
    )
    discord_public_key: str | None = Field(
        default=None, validation_alias=AliasChoices("CHARTERFLOW_DISCORD_PUBLIC_KEY", "discord_public_key")
    )
    slack_signing_secret: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("CHARTERFLOW_SLACK_SIGNING_SECRET", "slack_signing_secret")
    )

    def applications_categories(self) -> frozenset[str]:
        """The applications category ids as a set."""
        return _ids(self.discourse_applications_categories)

    def own_usernames(self) -> frozenset[str]:
        """The Forum accounts whose posts are the bot's own (casefolded): the API username and
        ``system``, Discourse's own account that API keys without a user act as."""
        return frozenset({self.discourse_api_username.strip().casefold(), "system"} - {""})

    def ideas_categories(self) -> frozenset[str]:
        """The ideas category ids as a set."""
        return _ids(self.discourse_ideas_categories)

    def commons_categories(self) -> frozenset[str]:
        """The common room's category ids as a set."""
        return _ids(self.discourse_commons_categories)
