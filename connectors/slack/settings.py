"""Settings of the Slack connector: ``CHARTERFLOW_SLACK_*`` variables and ``.env``."""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from connectors.settings import load_settings

__all__ = ["SlackSettings", "ENV_PREFIX", "CHANNEL_ID"]

ENV_PREFIX = "CHARTERFLOW_SLACK_"

# Conversation ids: C… public channel, G… private channel / multi-person DM, D… direct message.
# https://api.slack.com/docs/conversations-api#conversation-ids
CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{2,}$")


class SlackSettings(BaseSettings):
    """How to reach one Slack workspace. Each field is ``CHARTERFLOW_SLACK_<NAME>``.

    Secrets are ``SecretStr``; they are unwrapped only where the ``WebClient`` and the
    request verifier are built.
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_file=".env", env_file_encoding="utf-8", extra="ignore")

    bot_token: SecretStr = Field(description="The app's bot token (xoxb-…), from OAuth & Permissions.")
    signing_secret: SecretStr | None = Field(
        default=None,
        description="The app's signing secret (Basic Information); unset refuses every inbound request.",
    )
    board_channel: str = Field(
        description="The ID (C…/G…) of the Board's channel, where escalations and reports are posted."
    )
    base_url: str = Field(default="https://slack.com/api/", description="Web API base URL (the sandbox's in tests).")
    response_url_hosts: tuple[str, ...] = Field(
        default=("hooks.slack.com",),
        description="Hosts a response_url from an interaction may point at (the sandbox's host is added"
        " automatically when base_url is a loopback URL).",
    )
    timeout: int = Field(default=20, ge=1, description="Per-request timeout, seconds.")
    max_rate_limit_retries: int = Field(
        default=10, ge=0, le=50, description="How many HTTP 429 answers one call waits through."
    )
    max_retries: int = Field(
        default=2, ge=0, le=10, description="Retries of 5xx answers and dropped connections per call."
    )
    max_wait: float = Field(
        default=120.0,
        gt=0,
        description="The longest Retry-After honoured in-process; longer ones raise RetriableError.",
    )

    @field_validator("board_channel")
    @classmethod
    def _channel(cls, value: str) -> str:
        value = value.strip()
        if not CHANNEL_ID.match(value):
            raise ValueError(
                "must be a channel ID such as C0123ABCD (channel details → About → Channel ID), not a name"
            )
        return value

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        value = value.strip()
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value if value.endswith("/") else value + "/"

    def __repr__(self) -> str:
        return (
            f"SlackSettings(base_url={self.base_url!r}, board_channel={self.board_channel!r}, "
            "bot_token=SecretStr('**********'), signing_secret="
            + ("None" if self.signing_secret is None else "SecretStr('**********')")
            + ")"
        )

    __str__ = __repr__

    @classmethod
    def load(cls, **overrides: Any) -> SlackSettings:
        """Read the environment (and ``.env``); ``ConfigError`` naming each bad or missing variable."""
        return load_settings(cls, prefix=ENV_PREFIX, label="Slack", **overrides)
