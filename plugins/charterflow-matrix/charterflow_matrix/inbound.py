"""Verify and parse what Synapse pushes to an Application Service.

The homeserver sends ``PUT /_matrix/app/v1/transactions/{txnId}`` with ``Authorization: Bearer
<hs_token>`` and ``{"events": [...]}``; it resends a transaction until it gets a 200, with the same
id (https://spec.matrix.org/v1.11/application-service-api/#pushing-events). A bearer token signs
no body: what we check is the token, in constant time. Every event becomes one ``InboundEvent``
keyed by its event id, so a replayed transaction, or one event in two transactions, is stored once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any
from urllib.parse import quote

from pydantic import SecretStr

from connectors.base import InboundEvent, instance_key
from connectors.errors import InvalidSignature
from connectors.jsonbody import NotJson, read_json

__all__ = ["COMMANDS", "PLATFORM", "ROUTES", "AppserviceVerifier", "parse_command", "room_attributes"]

PLATFORM = "matrix"
COMMANDS = ("apply", "idea", "optin", "leave", "propose", "link", "help", "report")
# Which charter process handles each kind of event this verifier gives: the entry point
# ``charterflow.inbound_routes`` (``flows.inbox_routing.plugin_routes``) reads this table, so
# the core routes Matrix events without naming Matrix. Values are the core's route names.
ROUTES: dict[str, str] = {
    "apply": "intake",
    "idea": "idea",
    "optin": "renewal-opt-in",
    "leave": "leave",
    "propose": "board-proposal",
    "link": "link",
    "ballot_vote": "vote",
    # The common room (R-COMMS): a person's message, edit or redaction; the core's handler
    # relays it when its room is bridged and leaves it otherwise.
    "message": "commons",
    "message_edited": "commons",
    "message_redacted": "commons",
    "help": "guides-help",  # `!help <topic>`: the matching guides, answered in the room (R-GUIDE)
    # R-SAFE-1: `!report <reason>` as a reply to the reported message; a moderator's `claim`,
    # `resolve <outcome>` or `refer` as a thread reply (the core acts only in a report's thread).
    "report": "safety-report",
    "room_command": "safety-command",
}
ROOM_COMMANDS = ("claim", "resolve", "refer")
POLL_RESPONSE_TYPES = ("m.poll.response", "org.matrix.msc3381.poll.response")
MAX_EVENTS = 1000  # Synapse sends at most 100 events (and 100 ephemeral) per transaction


def parse_command(body: str) -> tuple[str, str] | None:
    """``("apply", "rest of line")`` for a message ``!apply rest of line``; ``None`` otherwise.
    Unknown ``!words`` give ``("command", …)`` so they are kept, never dropped."""
    text = (body or "").strip()
    if not text.startswith("!") or len(text) < 2 or text[1].isspace():
        return None
    word, _, rest = text[1:].partition(" ")
    name = word.lower()
    return (name if name in COMMANDS else "command"), rest.strip()


def _fields(kind: str, args: str) -> dict[str, str]:
    """The neutral fields of a command's arguments: ``!apply why | experience | nominator``
    gives ``field.why``…; ``!link discord cleo_marsh`` gives ``link.platform`` and
    ``link.username`` (the account the member is already known by)."""
    if kind == "apply":
        parts = [p.strip() for p in args.split("|")]
        names = ("field.why", "field.experience", "field.nominator")
        return {name: part[:2000] for name, part in zip(names, parts, strict=False) if part}
    if kind == "link":
        first, _, username = args.strip().partition(" ")
        if not username.strip():  # `!link <code>`: the second step
            return {"link.code": first.strip().lower()[:40]}
        return {"link.platform": first.strip().lower()[:24], "link.username": username.strip().lstrip("@")[:100]}
    return {}


ROOM_TEXT_MAX = 65_536  # an event holds no more (https://spec.matrix.org/v1.11/client-server-api/#size-limits)
_FILES = ("m.image", "m.file", "m.video", "m.audio")


def room_attributes(event: Mapping[str, Any], content: Mapping[str, Any]) -> dict[str, str]:
    """The neutral attributes of a message in a room the common room may bridge (``flows/README.md``,
    "Inbound events from a plugin platform"): ``room.change`` (``new``, ``edit``: an ``m.replace``,
    ``delete``: a redaction), ``room.key`` (the room id), ``room.message_id`` (the event the
    change is about), ``room.thread_id`` (``<room>/<root>`` for an ``m.thread`` reply),
    ``room.text``, ``room.url`` and ``room.attachments`` (a file's message, as a matrix.to link)."""
    room, event_id = str(event["room_id"]), str(event["event_id"])
    relates = _relates(content)
    out = {"room.key": room}
    if event.get("type") == "m.room.redaction":
        # Room versions 11+ carry ``redacts`` in the content, older ones at the top level.
        target = content.get("redacts") or event.get("redacts")
        return {**out, "room.change": "delete", "room.message_id": str(target or "")[:300]}
    if relates.get("rel_type") == "m.replace":
        new = content.get("m.new_content")
        new = new if isinstance(new, dict) else {}
        return {
            **out,
            "room.change": "edit",
            "room.message_id": str(relates.get("event_id") or "")[:300],
            "room.text": str(new.get("body") or "")[:ROOM_TEXT_MAX],
            "room.url": _matrix_to(room, str(relates.get("event_id") or "")),
        }
    url = _matrix_to(room, event_id)
    out.update(
        {
            "room.change": "new",
            "room.message_id": event_id,
            "room.url": url,
            "room.text": str(content.get("body") or "")[:ROOM_TEXT_MAX],
        }
    )
    if relates.get("rel_type") == "m.thread" and isinstance(relates.get("event_id"), str):
        out["room.thread_id"] = f"{room}/{relates['event_id']}"
    if content.get("msgtype") in _FILES:
        out["room.attachments"] = url  # the file opens with the message, for members of the room only
    return out


class AppserviceVerifier:
    """Checks the ``hs_token`` and parses a transaction; needs no call to the homeserver."""

    def __init__(self, *, hs_token: SecretStr | None, server_name: str, own_users: Sequence[str] = ()) -> None:
        self._token = hs_token.get_secret_value().encode() if hs_token else b""
        self.instance = server_name
        self.own_users = frozenset(own_users)

    def __repr__(self) -> str:
        return f"AppserviceVerifier(server_name={self.instance!r})"

    def authenticate(self, headers: Mapping[str, str]) -> None:
        """``InvalidSignature``: status 401 without a token, 403 with a wrong one (the spec's
        ``M_UNAUTHORIZED`` and ``M_FORBIDDEN``)."""
        given = {k.lower(): v for k, v in headers.items()}.get("authorization", "")
        scheme, _, token = given.partition(" ")
        if not self._token or scheme.lower() != "bearer" or not token.strip():
            raise InvalidSignature("matrix: push without the homeserver's token", platform=PLATFORM, status=401)
        if not hmac.compare_digest(token.strip().encode(), self._token):
            raise InvalidSignature("matrix: push with a wrong homeserver token", platform=PLATFORM, status=403)

    def verify_transaction(self, *, headers: Mapping[str, str], body: bytes) -> list[InboundEvent]:
        """Authenticate, then parse every event. What is not a transaction, or not an event, is
        kept as one ``malformed`` event (keyed by its digest), never refused: Synapse resends a
        refused transaction with backoff forever and sends nothing after it
        (synapse/appservice/scheduler.py, ``_Recoverer``), so a 400 would stall every later event."""
        self.authenticate(headers)
        try:
            data, notes = read_json(body)
        except NotJson:
            return [self.malformed(body)]
        events = data.get("events") if isinstance(data, dict) else None
        if not isinstance(events, list) or len(events) > MAX_EVENTS:
            return [self.malformed(body)]
        out = []
        for item in events:
            try:
                event = self.parse_event(item)
            except InvalidSignature:
                event = self.malformed(json.dumps(item, sort_keys=True).encode())
            out.append(replace(event, notes=tuple(notes)) if notes else event)
        return out

    def malformed(self, raw: bytes) -> InboundEvent:
        """What an authenticated push held that is not an event: kept for the working group to
        look at (no route takes it), once per content."""
        digest = hashlib.sha256(raw).hexdigest()[:32]
        return InboundEvent(
            platform=PLATFORM,
            instance=self.instance,
            dedupe_key=instance_key(PLATFORM, self.instance, "malformed", digest),
            kind="malformed",
            attributes={"sha256": digest},
            data={"malformed": raw[:65_536].decode("utf-8", "replace")},
        )

    def verify(self, *, headers: Mapping[str, str], body: bytes) -> InboundEvent:
        """The first event of a transaction."""
        events = self.verify_transaction(headers=headers, body=body)
        if not events:
            raise InvalidSignature("matrix: push holds no event", platform=PLATFORM, status=400)
        return events[0]

    def parse_event(self, event: Any) -> InboundEvent:
        """One pushed event: ``!apply``/``!idea``… messages become the command's kind, poll
        answers ``ballot_vote``, the rest keep their Matrix type."""
        if not isinstance(event, dict) or not all(
            isinstance(event.get(k), str) and event.get(k) for k in ("event_id", "type", "room_id", "sender")
        ):
            raise InvalidSignature(
                "matrix: a pushed event lacks event_id, type, room_id or sender", platform=PLATFORM, status=400
            )
        content = event["content"] if isinstance(event.get("content"), dict) else {}
        kind = event["type"][:80]
        sender = event["sender"][:300]
        # The neutral attributes the core's handlers read (flows/README.md, "Inbound events
        # from a plugin platform"): the account (its id as the connector's UserRef.id, its
        # username), and per kind the ballot, the answer, the application's fields.
        local = sender[1:].split(":", 1)[0] if sender.endswith(f":{self.instance}") else sender
        attributes = {
            "room_id": event["room_id"],
            "event_id": event["event_id"],
            "sender": sender,
            "user_id": sender,
            "username": local,
            # The connector's Messenger.reply thread id: answers go where it was said.
            "reply_to": f"{event['room_id']}/{event['event_id']}",
        }
        kind = _kind_and_attributes(event, content, kind, attributes)
        if event["sender"] in self.own_users:
            attributes["own"] = "true"
        return InboundEvent(
            platform=PLATFORM,
            instance=self.instance,
            dedupe_key=instance_key(PLATFORM, self.instance, "event", event["event_id"]),
            kind=kind,
            actor=event["sender"],
            attributes=attributes,
            data=event,
        )


def _matrix_to(room: str, event_id: str) -> str:
    return f"https://matrix.to/#/{quote(room, safe='')}/{quote(event_id, safe='')}"


def _relates(content: Mapping[str, Any]) -> dict[str, Any]:
    relates = content.get("m.relates_to")
    return relates if isinstance(relates, dict) else {}


def _kind_and_attributes(event: dict[str, Any], content: dict[str, Any], kind: str, attributes: dict[str, str]) -> str:
    """The core's kind of a pushed event, adding its attributes (a command's, a poll answer's,
    a room message's) to ``attributes``."""
    if (kind == "m.room.message" and _relates(content).get("rel_type") == "m.replace") or kind == "m.room.redaction":
        attributes.update(room_attributes(event, content))
        return "message_edited" if kind == "m.room.message" else "message_redacted"
    if kind == "m.room.message" and isinstance(content.get("body"), str):
        return _message_kind(event, content, attributes)
    if kind in POLL_RESPONSE_TYPES:
        attributes.update(_poll_answer(event, content))
        return "ballot_vote"
    if kind == "m.room.member":
        attributes["membership"] = str(content.get("membership", ""))
        attributes["target"] = str(event.get("state_key", ""))
    return kind


def _message_kind(event: dict[str, Any], content: dict[str, Any], attributes: dict[str, str]) -> str:
    """``!apply``/``!idea``… become the command's kind, a thread reply ``claim``… the
    ``room_command`` kind; any other message is ``message``."""
    quoted, body = strip_reply_fallback(content["body"])
    room_command = _room_command(event, content, body)
    if room_command:
        attributes.update(room_command)
        return "room_command"
    command = parse_command(body)
    if command is not None and command[0] == "report":
        attributes.update(_report(event, content, command[1], quoted))
        return "report"
    if command is None:
        attributes.update(room_attributes(event, content))
        return "message"
    attributes["args"] = command[1][:2000]
    attributes["command"] = content["body"].strip()[1:].split(" ", 1)[0][:80]
    attributes.update(_fields(command[0], attributes["args"]))
    return command[0]


def _poll_answer(event: dict[str, Any], content: dict[str, Any]) -> dict[str, str]:
    """A poll answer's ballot and option (a spoilt answer, none or not text, is kept with no
    option: the handler refuses it)."""
    ballot = f"{event['room_id']}/{_relates(content).get('event_id', '')}"
    chosen = content.get("m.selections")
    for key in ("org.matrix.msc3381.poll.response", "m.poll.response"):  # Element's, an older stable
        block = content.get(key)
        if not isinstance(chosen, list) and isinstance(block, dict):
            chosen = block.get("answers")
    option = str(chosen[0])[:80] if isinstance(chosen, list) and chosen and isinstance(chosen[0], str) else ""
    return {"ballot": ballot, "ballot_id": ballot, "option_id": option}


def strip_reply_fallback(body: str) -> tuple[str, str]:
    """``(quoted, rest)`` of a body that starts with a reply fallback (``> <@who:server> text``
    lines, then a blank line), which older clients still send
    (https://spec.matrix.org/v1.11/client-server-api/#fallbacks-for-rich-replies); else
    ``("", body)``."""
    lines = (body or "").split("\n")
    if not lines or not lines[0].startswith("> "):
        return "", body
    count = next((i for i, line in enumerate(lines) if not line.startswith(">")), len(lines))
    quoted = "\n".join(line[2:] if line.startswith("> ") else line[1:] for line in lines[:count])
    return quoted, "\n".join(lines[count:]).strip()


def _room_command(event: dict[str, Any], content: dict[str, Any], body: str) -> dict[str, str]:
    """A thread reply whose first word is ``claim``, ``resolve`` or ``refer``: the neutral
    ``command.*`` attributes the core's ``safety-command`` handler reads; else ``{}``."""
    relates = _relates(content)
    first = (body.strip().split(None, 1) or [""])[0].casefold().rstrip(",.:;!")
    if (
        relates.get("rel_type") != "m.thread"
        or not isinstance(relates.get("event_id"), str)
        or first not in ROOM_COMMANDS
    ):
        return {}
    return {"command.text": body.strip()[:2000], "command.thread_id": f"{event['room_id']}/{relates['event_id']}"[:600]}


def _report(event: dict[str, Any], content: dict[str, Any], reason: str, quoted: str) -> dict[str, str]:
    """The neutral ``report.*`` attributes of ``!report <reason>`` sent as a reply: the replied-to
    event (``m.relates_to.m.in_reply_to``) is the reported message; its author and text come
    from the reply fallback when the client sent one (Synapse gives nothing more in the push).
    A ``!report`` that replies to nothing carries no ``report.target_message_id``."""
    # The command itself: the core removes it from the room, so the reported person cannot see
    # who reported them.
    out = {
        "report.reason": reason[:2000],
        "report.command_room": str(event["room_id"])[:300],
        "report.command_message_id": str(event["event_id"])[:300],
    }
    relates = _relates(content)
    reply = relates.get("m.in_reply_to")
    target = reply.get("event_id") if isinstance(reply, dict) else None
    if not isinstance(target, str) or not target.startswith("$") or relates.get("is_falling_back"):
        return out
    room = str(event["room_id"])
    out.update(
        {
            "report.target_message_id": target[:300],
            "report.target_channel_id": room[:300],
            "report.target_link": f"https://matrix.to/#/{quote(room, safe='')}/{quote(target, safe='')}",
        }
    )
    author, _, text = quoted.partition(" ")
    if author.startswith("<@") and author.endswith(">"):
        out["report.target_account"] = author[1:-1][:300]
        out["report.target_username"] = author[2:-1].split(":", 1)[0][:100]
        out["report.content"] = text.strip()[:4000]
    return out
