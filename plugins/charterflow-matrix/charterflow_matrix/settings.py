"""Settings of the Matrix connector: ``CHARTERFLOW_MATRIX_*`` variables and ``.env``."""

from __future__ import annotations

from typing import Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from connectors.settings import base_url, load_settings

ENV_PREFIX = "CHARTERFLOW_MATRIX_"


class MatrixSettings(BaseSettings):
    """How to reach one homeserver and which rooms are the community's.

    Rooms are named by alias: the channel ``working-group`` is ``#<alias_prefix>working-group:<server_name>``;
    a room id (``!…``) or a full alias (``#…``) is used as given.
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_file=".env", env_file_encoding="utf-8", extra="ignore")

    homeserver_url: str = Field(description="The client-server API base URL, e.g. https://matrix.example.org")
    server_name: str = Field(description="The homeserver's name (the part after ':' in user ids).")
    access_token: SecretStr = Field(description="The bot's access token; the bot is a server admin.")
    hs_token: SecretStr | None = Field(
        default=None,
        description="The appservice registration's hs_token (verifies Synapse's pushes); unset refuses every push.",
    )
    as_token: SecretStr | None = Field(
        default=None,
        description="The appservice registration's as_token"
        " (only ``doctor`` uses it: it asks Synapse to ping the gateway).",
    )
    appservice_id: str = Field(default="charterflow", description="The appservice registration's id.")
    alias_prefix: str = Field(default="", description="Prefix of every room alias (several communities on one server).")
    space: str = Field(default="community", description="The community's space (alias localpart).")
    wg_room: str = Field(default="working-group", description="The working group's private room.")
    moderators_room: str = Field(default="moderators", description="The moderators' room.")
    guides_room: str = Field(default="guides", description="The community guides' room (created once if missing).")
    bot_user: str = Field(default="charterflow", description="The bot's localpart (its pushes are its own).")
    appservice_sender: str = Field(
        default="charterflow-appservice", description="The appservice's own user (a platform account)."
    )
    timeout: float = Field(default=20.0, gt=0, description="Per-request timeout, seconds.")
    max_retries: int = Field(default=4, ge=0, le=10, description="Retries of 5xx/timeouts per call.")
    rate_limit: int = Field(default=50, ge=1, description="Requests per second we pace ourselves to.")

    @field_validator("homeserver_url")
    @classmethod
    def _url(cls, value: str) -> str:
        return base_url(value)

    def __repr__(self) -> str:
        return f"MatrixSettings(homeserver_url={self.homeserver_url!r}, server_name={self.server_name!r})"

    @classmethod
    def load(cls, **overrides: Any) -> MatrixSettings:
        """From the environment; ``ConfigError`` naming each missing variable, never a value."""
        return load_settings(cls, prefix=ENV_PREFIX, label="Matrix", **overrides)
