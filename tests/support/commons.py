"""Helpers of the common room's tests (R-COMMS), here and in the Matrix plugin's: a person
writes in a Discord channel, and the copies the bridge made on Discord and the Forum."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.membership import World


def say(world: World, user: str, text: str, *, channel: str = "moderators", **extra: Any) -> dict[str, Any]:
    """``user`` writes in a Discord channel (or thread), as a person does."""
    reply = httpx.post(
        f"{world.discord_url}/_sandbox/messages",
        timeout=10,
        json={"user": user, "channel": channel, "content": text, **extra},
    )
    reply.raise_for_status()
    return reply.json()


def forum_copies(world: World, containing: str) -> list[dict[str, Any]]:
    """The Forum's posts whose raw text holds ``containing``."""
    return [p for p in world.discourse_state()["posts"] if containing in p["raw"]]


def discord_copies(world: World, containing: str) -> list[dict[str, Any]]:
    """The Discord messages whose content holds ``containing``."""
    return [m for m in world.discord_state()["messages"] if containing in (m["content"] or "")]
