"""Fixtures for the Discord tests: the sandbox served over real HTTP on 127.0.0.1."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.discord.sandbox import DiscordSandbox


@pytest.fixture
def discord(serve: Any) -> Any:
    """The Discord sandbox with its default seed, on 127.0.0.1 (a ``RunningSandbox``)."""
    return serve(DiscordSandbox())
