"""Settings of the Discourse connector: ``CHARTERFLOW_DISCOURSE_*`` variables and ``.env``."""

from __future__ import annotations

from typing import Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from connectors.settings import base_url, load_settings

ENV_PREFIX = "CHARTERFLOW_DISCOURSE_"


class DiscourseSettings(BaseSettings):
    """How to reach one Discourse site. Each field is ``CHARTERFLOW_DISCOURSE_<NAME>``.

    Secrets are ``SecretStr``; they are unwrapped only in ``DiscourseClient`` to build headers.
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_file=".env", env_file_encoding="utf-8", extra="ignore")

    url: str = Field(description="The site's base URL, e.g. https://forum.example.org")
    api_key: SecretStr = Field(description="An admin API key (Global scope, single user: see README).")
    api_username: str = Field(
        default="system", description="The admin account the key acts as (the Api-Username header)."
    )
    webhook_secret: SecretStr | None = Field(
        default=None, description="The secret set on the site's webhook; unset refuses every webhook."
    )
    category: str = Field(
        default="Working Group",
        description="Name of the private category where topics and ballots are posted.",
    )
    group: str = Field(
        default="working-group",
        description="Name of the working group's Discourse group (ballot voters, group PMs).",
    )
    admin_rate_limit: int = Field(
        default=60,
        ge=1,
        description="Admin API requests allowed per window, shared by all admin keys of the site"
        " (Discourse's DISCOURSE_MAX_ADMIN_API_REQS_PER_MINUTE).",
    )
    admin_rate_window: float = Field(default=60.0, gt=0, description="That limit's window, seconds.")
    timeout: float = Field(default=20.0, gt=0, description="Per-request timeout, seconds.")
    max_retries: int = Field(default=4, ge=0, le=10, description="Retries of 5xx/timeouts per call.")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return base_url(value)

    def __repr__(self) -> str:  # SecretStr already masks; keep the repr short and obviously safe
        return (
            f"DiscourseSettings(url={self.url!r}, api_username={self.api_username!r}, "
            f"api_key=SecretStr('**********'), category={self.category!r}, group={self.group!r})"
        )

    __str__ = __repr__

    @classmethod
    def load(cls, **overrides: Any) -> DiscourseSettings:
        """Read the environment (and ``.env``); ``ConfigError`` naming each bad or missing variable."""
        return load_settings(cls, prefix=ENV_PREFIX, label="Discourse", **overrides)
