"""Which private rooms form a bridge (R-COMMS): configuration only.

``CHARTERFLOW_COMMONS_BRIDGES`` lists the bridges, ``;``-separated, each
``name: platform=room, platform=room`` (a room is a channel or category, by name or id), e.g.
``moderators: discord=moderators, discourse=Moderators; wg: discord=wg-private, discourse=Working Group``.
Unset, two bridges: ``moderators`` (the room called ``moderators`` on every served platform, or
``CHARTERFLOW_COMMONS_MODERATORS_<PLATFORM>``) and ``wg`` (each platform's WG space, the one the
membership flows use). ``none`` turns the bridge off. Only platforms whose connector is a
``RoomWriter`` take part; a platform that is also a ``RoomReader`` is polled
(``commons-poll``), the others push (the gateway's ``commons`` route).

A bridge may name a platform the WG does not run its community on (the Board's Slack workspace,
a channel shared with the CoC committee, R-COMMS): its connector is built from the registry
(``CHARTERFLOW_<PLATFORM>_*``) for the bridge alone and never becomes a community platform
(:func:`room_writer`; tests and ``up`` install their own with :func:`use_room_connectors`).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from connectors.base import Instanced, RoomWriter
from connectors.errors import FatalError
from connectors.registry import load_connector
from flows.platforms import Platforms

__all__ = ["Bridge", "CommonsSettings", "bridges", "parse_bridges", "room_writer", "use_room_connectors"]

log = logging.getLogger("charterflow.commons")


class CommonsSettings(BaseSettings):
    """``CHARTERFLOW_COMMONS_*`` (see the module docstring)."""

    model_config = SettingsConfigDict(env_prefix="CHARTERFLOW_COMMONS_", env_file=".env", extra="ignore")
    bridges: str | None = Field(
        default=None,
        description=(
            "The common room's bridges: 'name: platform=room, ...; name: ...' (unset: moderators "
            "and wg on every platform; none: off). A room is a Discord channel, a Forum category, a "
            "Matrix room (alias or id) or a Slack channel **ID**; Slack (a channel shared with the CoC "
            "committee) takes part only when named here, with its `CHARTERFLOW_SLACK_*` settings."
        ),
    )
    poll_threads: int = Field(
        default=25,
        ge=0,
        le=200,
        description=("How many of a polled room's most recent conversation threads each poll reads too."),
    )


@dataclass(frozen=True, kw_only=True)
class Bridge:
    """One bridge: a room on each platform (platform name -> room)."""

    name: str
    rooms: dict[str, str] = field(default_factory=dict)


def parse_bridges(text: str) -> list[Bridge]:
    """``'name: platform=room, ...; ...'`` as bridges; ``ValueError`` naming what is wrong."""
    out: list[Bridge] = []
    for part in (p.strip() for p in text.split(";")):
        if not part:
            continue
        name, sep, rest = part.partition(":")
        if not sep or not name.strip():
            raise ValueError(f"commons bridge {part!r}: expected 'name: platform=room, ...'")
        rooms: dict[str, str] = {}
        for pair in (r.strip() for r in rest.split(",")):
            platform, eq, room = pair.partition("=")
            if not eq or not platform.strip() or not room.strip():
                raise ValueError(f"commons bridge {name.strip()!r}: {pair!r} is not platform=room")
            rooms[platform.strip().lower()] = room.strip()
        out.append(Bridge(name=name.strip().lower(), rooms=rooms))
    return out


def bridges(platforms: Platforms, settings: CommonsSettings | None = None) -> list[Bridge]:
    """The bridges in force, restricted to platforms whose connector is a ``RoomWriter`` (served,
    or bridge-only: :func:`room_writer`) and to rooms the platform has (a default ``moderators``
    room missing on one platform is left out, logged); a bridge left with fewer than two rooms
    bridges nothing and is left out."""
    raw = (settings or CommonsSettings()).bridges
    if raw is not None and raw.strip().lower() == "none":
        return []
    if raw is None or not raw.strip():
        wanted = [
            Bridge(
                name="moderators",
                rooms={
                    p: os.environ.get(f"CHARTERFLOW_COMMONS_MODERATORS_{p.upper().replace('-', '_')}", "").strip()
                    or "moderators"
                    for p in platforms.names()
                },
            ),
            Bridge(name="wg", rooms={p: s.wg_channel for p, s in platforms.spaces.items()}),
        ]
    else:
        wanted = parse_bridges(raw)
    out = []
    for bridge in wanted:
        rooms = {p: r for p, r in bridge.rooms.items() if _has_room(platforms, p, r)}
        if len(rooms) >= 2:
            out.append(Bridge(name=bridge.name, rooms=rooms))
    return out


# Bridge-only connectors by platform name (built once per process; ``None``: not configured).
_bridge_only: dict[str, Any] = {}
_bridge_only_lock = threading.Lock()


def room_writer(platforms: Platforms, platform: str) -> tuple[RoomWriter, str] | None:
    """``platform``'s ``RoomWriter`` and the instance it talks to: the served platform's
    connector, else a bridge-only one built from the registry (``None`` when there is neither,
    or the connector writes no rooms)."""
    space = platforms.space(platform)
    if space is not None:
        writer = space.capable(RoomWriter)
        return (writer, space.instance) if writer is not None else None
    with _bridge_only_lock:
        if platform not in _bridge_only:
            try:
                _bridge_only[platform] = load_connector(platform).from_env()
            except Exception as exc:  # noqa: BLE001 - a platform not configured is not bridged
                log.warning("commons: %s is not bridged (%s)", platform, type(exc).__name__)
                _bridge_only[platform] = None
        connector = _bridge_only[platform]
    if not isinstance(connector, RoomWriter):
        return None
    return connector, connector.instance if isinstance(connector, Instanced) else ""


@contextmanager
def use_room_connectors(**connectors: Any) -> Iterator[None]:
    """Bridge-only connectors by platform name inside the block (``slack=connector``)."""
    with _bridge_only_lock:
        before = dict(_bridge_only)
        _bridge_only.update(connectors)
    try:
        yield
    finally:
        with _bridge_only_lock:
            _bridge_only.clear()
            _bridge_only.update(before)


def _has_room(platforms: Platforms, platform: str, room: str) -> bool:
    found = room_writer(platforms, platform)
    if found is None:
        return False
    writer = found[0]
    try:
        writer.room_key(room)  # connectors cache what they resolved
    except FatalError as exc:
        log.warning("commons: %s has no room %r (%s); not bridged there", platform, room, exc.status)
        return False
    return True
