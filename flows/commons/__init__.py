"""The common room (R-COMMS, issue 22): the moderators' and the WG's private rooms on each
platform bridged, both ways; see ``README.md`` beside this file."""

from __future__ import annotations

from flows.commons.bridges import Bridge, CommonsSettings, bridges, parse_bridges, room_writer, use_room_connectors
from flows.commons.handlers import handle_commons, relay_pushed
from flows.commons.poll import commons_poll, poll_room
from flows.commons.relay import relay_delete, relay_edit, relay_new

__all__ = [
    "Bridge",
    "CommonsSettings",
    "bridges",
    "commons_poll",
    "handle_commons",
    "parse_bridges",
    "poll_room",
    "relay_delete",
    "relay_edit",
    "relay_new",
    "relay_pushed",
    "room_writer",
    "use_room_connectors",
]
