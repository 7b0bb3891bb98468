"""Verify and parse what Synapse pushes to an Application Service.

The homeserver sends ``PUT /_matrix/app/v1/transactions/{txnId}`` with ``Authorization: Bearer
<hs_token>`` and ``{"events": [...]}``; it resends a transaction until it gets a 200, with the same
id (https://spec.matrix.org/v1.11/application-service-api/#pushing-events). A bearer token signs
no body: what we check is the token, in constant time. Every event becomes one ``InboundEvent``
keyed by its event id, so a replayed transaction, or one event in two transactions, is stored once.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import SecretStr

from connectors.base import InboundEvent, instance_key
from connectors.errors import InvalidSignature

__all__ = ["COMMANDS", "PLATFORM", "ROUTES", "AppserviceVerifier", "parse_command"]

PLATFORM = "matrix"
COMMANDS = ("apply", "idea", "optin", "leave", "propose", "link", "help")
# Which charter process handles each kind of event this verifier gives: the entry point
# ``charterflow.inbound_routes`` (``flows.inbox_routing.plugin_routes``) reads this table, so
# the core routes Matrix events without naming Matrix. Values are the core's route names.
ROUTES: dict[str, str] = {
    "apply": "intake", "idea": "idea", "optin": "renewal-opt-in", "leave": "leave",
    "propose": "board-proposal", "link": "link", "ballot_vote": "vote",
}
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
        """Authenticate, then parse every event; ``InvalidSignature`` with status 400 for a body
        that is not a transaction (and nothing of it is kept)."""
        self.authenticate(headers)
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise InvalidSignature("matrix: push body is not JSON", platform=PLATFORM, status=400) from None
        events = data.get("events") if isinstance(data, dict) else None
        if not isinstance(events, list) or len(events) > MAX_EVENTS:
            raise InvalidSignature("matrix: push body has no events list", platform=PLATFORM, status=400)
        return [self.parse_event(e) for e in events]

    def verify(self, *, headers: Mapping[str, str], body: bytes) -> InboundEvent:
        """The first event of a transaction."""
        events = self.verify_transaction(headers=headers, body=body)
        if not events:
            raise InvalidSignature("matrix: push holds no event", platform=PLATFORM, status=400)
        return events[0]

    def parse_event(self, event: Any) -> InboundEvent:
        """One pushed event: ``!apply``/``!idea``… messages become the command's kind, poll
        answers ``ballot_vote``, the rest keep their Matrix type."""
        if not isinstance(event, dict) or not all(isinstance(event.get(k), str) and event.get(k)
                                                  for k in ("event_id", "type", "room_id", "sender")):
            raise InvalidSignature("matrix: a pushed event lacks event_id, type, room_id or sender",
                                   platform=PLATFORM, status=400)
        content = event["content"] if isinstance(event.get("content"), dict) else {}
        kind = event["type"][:80]
        sender = event["sender"][:300]
        # The neutral attributes the core's handlers read (flows/README.md, "Inbound events
        # from a plugin platform"): the account (its id as the connector's UserRef.id, its
        # username), and per kind the ballot, the answer, the application's fields.
        local = sender[1:].split(":", 1)[0] if sender.endswith(f":{self.instance}") else sender
        attributes = {"room_id": event["room_id"], "event_id": event["event_id"], "sender": sender,
                      "user_id": sender, "username": local,
                      # The connector's Messenger.reply thread id: answers go where it was said.
                      "reply_to": f"{event['room_id']}/{event['event_id']}"}
        if kind == "m.room.message" and isinstance(content.get("body"), str):
            command = parse_command(content["body"])
            kind = "message"
            if command is not None:
                kind, attributes["args"] = command[0], command[1][:2000]
                attributes["command"] = content["body"].strip()[1:].split(" ", 1)[0][:80]
                attributes.update(_fields(kind, attributes["args"]))
        elif kind in POLL_RESPONSE_TYPES:
            kind = "ballot_vote"
            relates_to = content.get("m.relates_to")
            relates = relates_to if isinstance(relates_to, dict) else {}
            attributes["ballot"] = attributes["ballot_id"] = f"{event['room_id']}/{relates.get('event_id', '')}"
            chosen = content.get("m.selections")
            if not isinstance(chosen, list):  # Element's unstable form
                unstable = content.get("org.matrix.msc3381.poll.response")
                chosen = unstable.get("answers") if isinstance(unstable, dict) else None
            # A spoilt answer (none, or not text) is kept with no option: the handler refuses it.
            attributes["option_id"] = str(chosen[0])[:80] if isinstance(chosen, list) and chosen \
                and isinstance(chosen[0], str) else ""
        elif kind == "m.room.member":
            attributes["membership"] = str(content.get("membership", ""))
            attributes["target"] = str(event.get("state_key", ""))
        if event["sender"] in self.own_users:
            attributes["own"] = "true"
        return InboundEvent(platform=PLATFORM, instance=self.instance,
                            dedupe_key=instance_key(PLATFORM, self.instance, "event", event["event_id"]),
                            kind=kind, actor=event["sender"], attributes=attributes, data=event)
