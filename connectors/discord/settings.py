"""Settings of the Discord connector: ``CHARTERFLOW_DISCORD_*`` variables and ``.env``."""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from connectors.settings import base_url, load_settings

__all__ = ["DiscordSettings", "ENV_PREFIX", "DEFAULT_API_URL"]

ENV_PREFIX = "CHARTERFLOW_DISCORD_"
DEFAULT_API_URL = "https://discord.com/api/v10"
_SNOWFLAKE = re.compile(r"^(0|[1-9][0-9]{0,19})$")
_PUBLIC_KEY = re.compile(r"^[0-9a-fA-F]{64}$")


def _snowflake(value: Any) -> Any:
    if value is None:
        return None
    text = str(value).strip()
    if not _SNOWFLAKE.match(text):
        raise ValueError("must be a Discord id (a snowflake: digits only)")
    return text


class DiscordSettings(BaseSettings):
    """How to reach one Discord server (guild) as one bot. Each field is ``CHARTERFLOW_DISCORD_<NAME>``.

    The bot token is a ``SecretStr`` unwrapped only in ``DiscordClient`` to build the
    ``Authorization`` header. The application public key is public (Discord shows it on the
    application's page) and is only used to verify interactions.
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_file=".env", env_file_encoding="utf-8", extra="ignore")

    token: SecretStr = Field(description="The bot token (Developer Portal → Bot → Reset Token).")
    public_key: str = Field(description="The application's public key, 64 hex characters (verifies interactions).")
    application_id: str = Field(description="The application id (a snowflake).")
    guild_id: str = Field(description="The server (guild) id the working group lives in.")
    wg_member_role_id: str | None = Field(default=None, description="Role id of 'wg-member' (unset: found by name).")
    moderator_role_id: str | None = Field(default=None, description="Role id of 'moderator' (unset: found by name).")
    admin_role_id: str | None = Field(default=None, description="Role id of 'admin' (unset: found by name).")
    wg_channel_id: str | None = Field(
        default=None, description="The working group's private channel (default channel for posts and ballots)."
    )
    api_url: str = Field(default=DEFAULT_API_URL, description="REST base URL including the version.")
    global_rate_limit: int = Field(
        default=50, ge=1, description="Requests per window for the whole bot (Discord: 50/s)."
    )
    global_rate_window: float = Field(default=1.0, gt=0, description="The global limit's window, seconds.")
    timeout: float = Field(default=15.0, gt=0, description="Per-request timeout, seconds.")
    max_retries: int = Field(default=4, ge=0, le=10, description="Retries of 5xx/timeouts per read.")
    max_forbidden: int = Field(
        default=5,
        ge=1,
        le=100,
        description="403 answers within 10 minutes after which the client stops sending (invalid-request budget).",
    )
    activity_days: int = Field(default=90, ge=1, le=3650, description="Message-count window for activity, days.")
    search_index_attempts: int = Field(
        default=3, ge=1, le=20, description="How often a 202 'index not yet available' search is retried."
    )
    search_index_max_wait: float = Field(
        default=10.0, ge=0, description="Longest total wait for the search index, seconds; then activity is unknown."
    )
    interaction_max_age: float = Field(
        default=300.0,
        gt=0,
        description="Interactions whose signed timestamp is older (or newer) than this are refused.",
    )

    _ids = field_validator(
        "application_id",
        "guild_id",
        "wg_member_role_id",
        "moderator_role_id",
        "admin_role_id",
        "wg_channel_id",
        mode="before",
    )(_snowflake)

    @field_validator("public_key")
    @classmethod
    def _public_key(cls, value: str) -> str:
        value = value.strip()
        if not _PUBLIC_KEY.match(value):
            raise ValueError("must be the application's public key: 64 hexadecimal characters")
        return value.lower()

    @field_validator("api_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        return base_url(value)

    @field_validator("token")
    @classmethod
    def _token(cls, value: SecretStr) -> SecretStr:
        raw = value.get_secret_value().strip()
        if raw.lower().startswith("bot "):  # people paste the whole header value
            raw = raw[4:].strip()
        if not raw or any(ch.isspace() for ch in raw):
            raise ValueError("must be the bot token alone (no spaces)")
        return SecretStr(raw)

    def __repr__(self) -> str:
        return (
            f"DiscordSettings(api_url={self.api_url!r}, application_id={self.application_id!r}, "
            f"guild_id={self.guild_id!r}, token=SecretStr('**********'))"
        )

    __str__ = __repr__

    @classmethod
    def load(cls, **overrides: Any) -> DiscordSettings:
        """Read the environment (and ``.env``); ``ConfigError`` naming each bad or missing variable.

        The message never contains a value, so a mistyped token is not echoed.
        """
        return load_settings(cls, prefix=ENV_PREFIX, label="Discord", **overrides)
