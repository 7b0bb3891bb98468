"""``check(settings)``: the Matrix side of ``charterflow doctor`` (``connectors.doctor``'s pattern):
read-only calls, one ``Check`` each, never a secret in a detail.

- ``homeserver``: ``/_matrix/client/versions`` answers;
- ``token``: the access token is the bot's, and the bot is a server admin (the admin API needs it);
- ``ratelimit``: the bot is exempt from Synapse's rate limits (an override only an admin sets);
- ``rooms``: the space, the WG room and the moderators' room exist;
- ``space rooms``: the bot is in every child room of the space (roles are set only there);
- ``power``: the bot outranks the admins in every community room (it created the room, in room
  version 12, or holds more than 100), or it could not demote an admin;
- ``appservice``: Synapse pings the registered appservice (the gateway's hook) and it answers
  (``POST /_matrix/client/v1/appservice/{id}/ping``, https://spec.matrix.org/v1.11/client-server-api/#post_matrixclientv1appserviceappserviceidping).
"""

from __future__ import annotations

from typing import Any

import httpx

from charterflow_matrix.client import PLATFORM, q
from charterflow_matrix.connector import ADMIN_LEVEL, MatrixConnector
from charterflow_matrix.settings import MatrixSettings
from connectors.doctor import Check, failed, passed
from connectors.errors import CharterflowError

__all__ = ["check", "run"]


def run(**fields: Any) -> list[Check]:
    """The entry point ``charterflow doctor`` calls (group ``charterflow.doctor``): the settings
    from ``CHARTERFLOW_MATRIX_*`` (``fields`` override them; ``ConfigError`` names what is
    missing), then :func:`check`."""
    return check(MatrixSettings.load(**fields))


def check(settings: MatrixSettings, *, transport: httpx.BaseTransport | None = None) -> list[Check]:
    """Every check, in order; later ones are skipped when the homeserver or token fails."""
    checks: list[Check] = []
    base = settings.homeserver_url
    try:
        with httpx.Client(transport=transport, timeout=settings.timeout, trust_env=False) as plain:
            versions = plain.get(f"{base}/_matrix/client/versions").json()
        checks.append(passed(PLATFORM, "homeserver", f"{base} speaks {', '.join(versions.get('versions', [])[-2:])}"))
    except (httpx.HTTPError, ValueError) as exc:
        return [
            failed(
                PLATFORM,
                "homeserver",
                f"{base} does not answer ({type(exc).__name__})",
                "start the homeserver or fix CHARTERFLOW_MATRIX_HOMESERVER_URL",
            )
        ]
    connector = MatrixConnector(settings=settings, transport=transport)
    try:
        try:
            me = connector.me
            admin = connector._admin_user(me).get("admin")
        except CharterflowError as exc:
            return [
                *checks,
                failed(
                    PLATFORM,
                    "token",
                    str(exc),
                    "set CHARTERFLOW_MATRIX_ACCESS_TOKEN to the bot's token and make the bot a server admin",
                ),
            ]
        checks.append(
            passed(PLATFORM, "token", f"bot {me}, server admin")
            if admin
            else failed(
                PLATFORM,
                "token",
                f"bot {me} is not a server admin",
                'make it one: PUT /_synapse/admin/v1/users/<bot>/admin {"admin": true}',
            )
        )
        if admin:
            checks.append(_ratelimit(connector, me))
        checks.extend(_rooms_and_power(connector, me))
        checks.append(_appservice(settings, transport))
    finally:
        connector.close()
    return checks


def _ratelimit(connector: MatrixConnector, me: str) -> Check:
    # Synapse's defaults throttle the bot as a person: rc_message 0.2/s, and rc_invites.per_user
    # 5 invites to one member then one per 333 s (synapse/config/ratelimiting.py). Only a
    # per-user override of 0 lifts every limiter for it (synapse/api/ratelimiting.py,
    # can_do_action); an operator sets it by hand.
    override = connector.client.get(f"/_synapse/admin/v1/users/{q(me)}/override_ratelimit", what="the bot's rate limit")
    if override and not override.get("messages_per_second"):
        return passed(PLATFORM, "ratelimit", f"bot {me} is exempt from Synapse's rate limits")
    return failed(
        PLATFORM,
        "ratelimit",
        f"bot {me} is rate limited as a person (Synapse's defaults: 0.2 messages/s; 5 invites to"
        " one member, then one per 333 s)",
        f'POST /_synapse/admin/v1/users/{me}/override_ratelimit {{"messages_per_second": 0, "burst_count": 0}}',
    )


def _rooms_and_power(connector: MatrixConnector, me: str) -> list[Check]:
    settings = connector.settings
    try:
        for channel in (settings.wg_room, settings.moderators_room):
            connector.room_id(channel)
        rooms = connector.community_rooms()
    except CharterflowError as exc:
        return [
            failed(
                PLATFORM,
                "rooms",
                str(exc),
                "create the space and rooms, or fix CHARTERFLOW_MATRIX_SPACE,"
                " _WG_ROOM, _MODERATORS_ROOM and _ALIAS_PREFIX",
            )
        ]
    out = [passed(PLATFORM, "rooms", f"space and {len(rooms) - 1} rooms")]
    outside = [room for room in connector.space_children() if room not in rooms]
    if outside:
        out.append(
            failed(
                PLATFORM,
                "space rooms",
                f"the bot is not in {len(outside)} rooms of the space ({outside[0]}…): roles are not set there",
                "invite the bot to those rooms and give it a power level above 100, or remove them from the space",
            )
        )
    weak = []
    for room in rooms:
        state = connector.client.get(f"/_matrix/client/v3/rooms/{q(room)}/state", what="room state")
        create: dict[str, Any] = next(e for e in state if e.get("type") == "m.room.create")
        # Since room version 11 the creator is the create event's sender (MSC2175); from 12 the
        # creators outrank every power level (MSC4289).
        creators = {create.get("sender"), *create.get("content", {}).get("additional_creators", [])}
        v12_creator = str(create.get("content", {}).get("room_version")) == "12" and me in creators
        if not v12_creator and connector._levels(room).get(me, 0) <= ADMIN_LEVEL:
            weak.append(room)
    if weak:
        out.append(
            failed(
                PLATFORM,
                "power",
                f"the bot does not outrank admins in {len(weak)} rooms ({weak[0]}…)",
                "raise the bot's power level above 100 in those rooms (or let it create them)",
            )
        )
    else:
        out.append(
            passed(PLATFORM, "power", f"the bot outranks admins (100) and moderators (50) in {len(rooms)} rooms")
        )
    return out


def _appservice(settings: MatrixSettings, transport: httpx.BaseTransport | None) -> Check:
    if settings.as_token is None:
        return failed(
            PLATFORM,
            "appservice",
            "CHARTERFLOW_MATRIX_AS_TOKEN is not set",
            "set it to the registration's as_token so doctor can ask Synapse to ping the gateway",
        )
    with httpx.Client(transport=transport, timeout=settings.timeout, trust_env=False) as plain:
        answer = plain.post(
            f"{settings.homeserver_url}/_matrix/client/v1/appservice/{q(settings.appservice_id)}/ping",
            json={},
            headers={"Authorization": f"Bearer {settings.as_token.get_secret_value()}"},
        )
    if answer.status_code == 200:
        return passed(PLATFORM, "appservice", f"Synapse reached the gateway in {answer.json().get('duration_ms')} ms")
    try:
        code = answer.json().get("errcode", "")
    except ValueError:
        code = ""
    return failed(
        PLATFORM,
        "appservice",
        f"ping answered HTTP {answer.status_code} {code}".strip(),
        "start the gateway at the registration's url, and check that its hs_token is CHARTERFLOW_MATRIX_HS_TOKEN",
    )
