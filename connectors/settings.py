"""What every connector's settings class shares: loading with errors that name variables."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import ValidationError
from pydantic_settings import BaseSettings

from connectors.errors import ConfigError

S = TypeVar("S", bound=BaseSettings)


def base_url(value: str) -> str:
    """A settings validator's check of a platform's base URL: http(s), no trailing slash."""
    value = value.strip().rstrip("/")
    if not value.startswith(("http://", "https://")):
        raise ValueError("must start with http:// or https://")
    return value


def load_settings(cls: type[S], *, prefix: str, label: str, **overrides: Any) -> S:
    """``cls`` read from the environment (and ``.env``); a ``ConfigError`` naming each bad or
    missing ``<prefix><FIELD>`` variable. The message never contains a value, so a mistyped
    secret is not echoed."""
    try:
        return cls(**overrides)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else "?"
            kind = "is not set" if err["type"] == "missing" else f"is invalid: {err['msg']}"
            problems.append(f"{prefix}{field.upper()} {kind}")
        raise ConfigError(f"{label} settings: " + "; ".join(problems)) from None
