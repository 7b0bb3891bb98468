"""Verification and parsing of Discord interactions (the inbound "interactions endpoint").

Discord signs each interaction it POSTs to us: ``X-Signature-Ed25519`` is the hex Ed25519
signature of ``X-Signature-Timestamp + raw body`` made with the application's key pair; we verify
it with the application's public key and must answer **401** when it does not match, since
Discord deliberately sends invalid signatures to check (https://discord.com/developers/docs/
interactions/overview#setting-up-an-endpoint-validating-security-request-headers). Every malformed
header, key, timestamp or body therefore becomes ``InvalidSignature`` here, never another
exception: a 500 to one of those probes gets the endpoint removed. The timestamp must also be
within ``max_age`` seconds of now (a replay window; Discord's docs do not set one, 5 minutes is
the common choice).

``parse_interaction`` turns a verified payload into an ``InboundEvent``:

========================== ================= =====================================================
interaction                ``kind``          ``attributes``
========================== ================= =====================================================
PING (1)                   ``ping``
slash command (2)          the command name  ``command``, one entry per option (``option.<name>``)
                           (``apply``, ``idea``, ``optin``, ``leave``, …)
button (3), ballot         ``ballot_vote``   ``ballot_id``, ``option_id``, ``message_id``
button (3), other          ``component``     ``custom_id``
modal submit (5), /apply   ``apply_submitted`` ``field.<custom_id>`` for each answer
modal submit (5), other    ``modal_submit``  ``custom_id``, ``field.<custom_id>``
autocomplete (4)           ``autocomplete``  ``command``
========================== ================= =====================================================

Every event also has ``interaction_id``, ``interaction_token`` (for the follow-up webhook; valid
15 minutes), ``application_id``, ``user_id``, ``username``, ``guild_id``, ``channel_id``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from cryptography.exceptions import InvalidSignature as _CryptoInvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from connectors.base import InboundEvent, instance_key
from connectors.discord import payloads
from connectors.errors import ConfigError, InvalidSignature
from connectors.jsonbody import NotJson, read_json

__all__ = [
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "InteractionVerifier",
    "parse_interaction",
    "sign_interaction",
]

PLATFORM = "discord"
SIGNATURE_HEADER = "X-Signature-Ed25519"
TIMESTAMP_HEADER = "X-Signature-Timestamp"
_HEX_SIGNATURE = re.compile(r"[0-9a-fA-F]{128}")
_HEX_KEY = re.compile(r"[0-9a-fA-F]{64}")
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_MAX_BODY = 1 << 20  # Discord's interactions are a few KB; refuse absurd bodies before hashing

PING, APPLICATION_COMMAND, MESSAGE_COMPONENT, AUTOCOMPLETE, MODAL_SUBMIT = 1, 2, 3, 4, 5


def _header(headers: Mapping[str, Any], name: str) -> str | None:
    wanted = name.lower()
    try:
        items = list(headers.items())
    except Exception:  # noqa: BLE001 - a broken mapping is a bad request, not a crash
        return None
    for key, value in items:
        if isinstance(key, bytes):
            key = key.decode("latin-1")
        if isinstance(key, str) and key.lower() == wanted:
            if isinstance(value, bytes):
                value = value.decode("latin-1")
            return value if isinstance(value, str) else None
    return None


def _refuse(why: str, status: int = 401) -> InvalidSignature:
    return InvalidSignature(f"Discord interaction refused: {why}", platform=PLATFORM, status=status)


class InteractionVerifier:
    """Checks ``X-Signature-Ed25519`` over timestamp + raw body, then parses the interaction.

    ``public_key`` is the application's public key (64 hex characters; ``ConfigError`` otherwise).
    ``now`` returns Unix seconds (injectable for tests).
    """

    def __init__(self, *, public_key: str, max_age: float = 300.0, now: Callable[[], float] = time.time) -> None:
        if not isinstance(public_key, str) or not _HEX_KEY.fullmatch(public_key.strip()):
            raise ConfigError("CHARTERFLOW_DISCORD_PUBLIC_KEY must be 64 hexadecimal characters")
        try:
            self._key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key.strip()))
        except ValueError:
            raise ConfigError("CHARTERFLOW_DISCORD_PUBLIC_KEY is not a valid Ed25519 public key") from None
        self.public_key = public_key.strip().lower()
        self.max_age = max_age
        self._now = now

    def __repr__(self) -> str:
        return f"InteractionVerifier(public_key={self.public_key[:8]}…)"

    def check(self, *, headers: Mapping[str, Any], body: bytes) -> None:
        """Raise ``InvalidSignature`` (status 401) unless the request is signed by the application."""
        signature = _header(headers, SIGNATURE_HEADER)
        timestamp = _header(headers, TIMESTAMP_HEADER)
        if not signature or not timestamp:
            raise _refuse(f"missing {SIGNATURE_HEADER} or {TIMESTAMP_HEADER}")
        signature, timestamp = signature.strip(), timestamp.strip()
        if not _HEX_SIGNATURE.fullmatch(signature):
            raise _refuse("the signature is not 128 hexadecimal characters")
        if not _TIMESTAMP.fullmatch(timestamp):
            raise _refuse("the timestamp is not Unix seconds")
        if not isinstance(body, (bytes, bytearray)) or len(body) > _MAX_BODY:
            raise _refuse("the body is missing or too large")
        if abs(self._now() - int(timestamp)) > self.max_age:
            raise _refuse("the timestamp is outside the replay window")
        try:
            self._key.verify(bytes.fromhex(signature), timestamp.encode("ascii") + bytes(body))
        except (_CryptoInvalidSignature, ValueError, TypeError):
            raise _refuse("the signature does not match") from None

    def verify(self, *, headers: Mapping[str, Any], body: bytes) -> InboundEvent:
        """The parsed interaction; ``InvalidSignature`` with status 401 for a bad signature, 400 for
        a signed body that is not an interaction."""
        self.check(headers=headers, body=body)
        try:
            payload, notes = read_json(bytes(body))
        except NotJson:
            raise _refuse("the body is not JSON", status=400) from None
        event = parse_interaction(payload)
        return replace(event, notes=tuple(notes)) if notes else event


def sign_interaction(private_key: Ed25519PrivateKey, body: bytes, *, timestamp: int | None = None) -> dict[str, str]:
    """Headers that sign ``body`` as Discord does (for sandboxes and tests)."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = private_key.sign(stamp.encode("ascii") + body).hex()
    return {SIGNATURE_HEADER: signature, TIMESTAMP_HEADER: stamp, "Content-Type": "application/json"}


def _s(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    return str(value)


def _options(options: Any, prefix: str = "option.") -> dict[str, str]:
    out: dict[str, str] = {}
    if not isinstance(options, list):
        return out
    for opt in options[:25]:
        if not isinstance(opt, dict) or not isinstance(opt.get("name"), str):
            continue
        if isinstance(opt.get("options"), list):  # a subcommand
            out[f"{prefix}{opt['name']}"] = ""
            out.update(_options(opt["options"], f"{prefix}{opt['name']}."))
        elif opt.get("value") is not None and not isinstance(opt.get("value"), (dict, list)):
            out[f"{prefix}{opt['name']}"] = str(opt["value"])
    return out


def _modal_fields(components: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    if not isinstance(components, list):
        return out
    for row in components:
        if not isinstance(row, dict):
            continue
        listed = row.get("components")
        inner = listed if isinstance(listed, list) else [row.get("component", row)]
        for comp in inner:
            if isinstance(comp, dict) and isinstance(comp.get("custom_id"), str) and isinstance(comp.get("value"), str):
                out[f"field.{comp['custom_id']}"] = comp["value"]
    return out


DM_INSTANCE = "@me"


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _people_attributes(payload: dict[str, Any], interaction_id: str) -> dict[str, str]:
    """Who acted and where: the attributes every interaction's event has."""
    member = _dict(payload.get("member"))
    # In a guild the user is inside ``member``; in a DM at the top level.
    user = _dict(member.get("user") if isinstance(member.get("user"), dict) else payload.get("user"))
    attributes: dict[str, str] = {
        "interaction_id": interaction_id,
        "interaction_token": _s(payload.get("token")) or "",
        "application_id": _s(payload.get("application_id")) or "",
        "user_id": _s(user.get("id")) or "",
        "username": _s(user.get("username")) or "",
        "guild_id": _s(payload.get("guild_id")) or "",
        "channel_id": (_s(payload.get("channel_id")) or _s(_dict(payload.get("channel")).get("id")) or ""),
    }
    roles = member.get("roles")
    if isinstance(roles, list):
        attributes["member_roles"] = ",".join(str(r) for r in roles if isinstance(r, (str, int)))
    return attributes


def _command(itype: int, payload: dict[str, Any], data: dict[str, Any], attributes: dict[str, str]) -> str:
    name = _s(data.get("name"))
    if not name:
        raise _refuse("the command has no name", status=400)
    attributes["command"] = name
    attributes.update(_options(data.get("options")))
    return name if itype == APPLICATION_COMMAND else "autocomplete"


def _component(itype: int, payload: dict[str, Any], data: dict[str, Any], attributes: dict[str, str]) -> str:
    custom_id = _s(data.get("custom_id")) or ""
    attributes["custom_id"] = custom_id
    attributes["message_id"] = _s(_dict(payload.get("message")).get("id")) or ""
    ballot = payloads.parse_ballot_custom_id(custom_id)
    if ballot is None:
        return "component"
    attributes["ballot_id"], attributes["option_id"] = ballot
    return "ballot_vote"


def _modal(itype: int, payload: dict[str, Any], data: dict[str, Any], attributes: dict[str, str]) -> str:
    custom_id = _s(data.get("custom_id")) or ""
    attributes["custom_id"] = custom_id
    attributes.update(_modal_fields(data.get("components")))
    return "apply_submitted" if custom_id == payloads.APPLY_MODAL_ID else "modal_submit"


# interaction type -> what adds its own attributes and names the event's kind
_BY_TYPE: dict[int, Callable[[int, dict[str, Any], dict[str, Any], dict[str, str]], str]] = {
    APPLICATION_COMMAND: _command,
    AUTOCOMPLETE: _command,
    MESSAGE_COMPONENT: _component,
    MODAL_SUBMIT: _modal,
}


def parse_interaction(payload: Any) -> InboundEvent:
    """An ``InboundEvent`` from a verified interaction (see the module docstring for the kinds).

    ``InvalidSignature`` with status 400 when the payload is not an interaction object.
    """
    if not isinstance(payload, dict):
        raise _refuse("the body is not a JSON object", status=400)
    itype = payload.get("type")
    if not isinstance(itype, int) or isinstance(itype, bool):
        raise _refuse("the interaction has no type", status=400)
    interaction_id = _s(payload.get("id"))
    if itype == PING:
        return InboundEvent(
            platform=PLATFORM,
            dedupe_key=f"discord:ping:{interaction_id or 'none'}",
            kind="ping",
            attributes={"interaction_id": interaction_id or ""},
            data=payload,
        )
    if not interaction_id or not re.fullmatch(r"[0-9]{1,20}", interaction_id):
        raise _refuse("the interaction has no id", status=400)
    attributes = _people_attributes(payload, interaction_id)
    by_type = _BY_TYPE.get(itype)
    if by_type is None:
        raise _refuse(f"unknown interaction type {itype}", status=400)
    kind = by_type(itype, payload, _dict(payload.get("data")), attributes)
    # The instance is the guild (signed, in the payload); "@me" for a direct message, as
    # Discord's own paths name that scope (/channels/@me).
    instance = attributes["guild_id"] or DM_INSTANCE
    return InboundEvent(
        platform=PLATFORM,
        dedupe_key=instance_key(PLATFORM, instance, interaction_id),
        instance=instance,
        kind=kind,
        actor=attributes["user_id"] or None,
        attributes=attributes,
        data=payload,
    )
