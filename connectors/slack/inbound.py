"""Verification and parsing of requests Slack sends us: interactivity, Events API, slash commands.

Slack signs each request (https://api.slack.com/authentication/verifying-requests-from-slack):
``X-Slack-Signature: v0=<hex HMAC-SHA256(signing_secret, "v0:{timestamp}:{raw body}")>`` and
``X-Slack-Request-Timestamp: <unix seconds>``. We refuse a timestamp more than 300 s away from
our clock (replay window), compare in constant time (slack_sdk's ``SignatureVerifier``), and
only then parse. Interactivity arrives
form-encoded with one ``payload=<JSON>`` field
(https://api.slack.com/interactivity/handling#payloads), the Events API as JSON
(https://api.slack.com/apis/events-api#receiving-events), slash commands form-encoded.

Every failure, of the signature or of the body, is ``InvalidSignature`` (``status`` 401 for the
signature, 400 for a signed body we cannot read): nothing else escapes ``verify``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import parse_qs

from pydantic import SecretStr
from slack_sdk.signature import Clock, SignatureVerifier

from connectors.base import InboundEvent, instance_key
from connectors.errors import InvalidSignature
from connectors.jsonbody import NotJson, read_json
from connectors.slack.blocks import ACTION_IDS, BOARD_ACTION_PREFIX, BOARD_BLOCK_PREFIX, BoardDecision
from connectors.slack.rooms import room_attributes

__all__ = [
    "BoardAction",
    "BoardCheck",
    "REPLAY_WINDOW",
    "SIGNATURE_HEADER",
    "SlackRequestVerifier",
    "TIMESTAMP_HEADER",
    "check_board_member",
    "parse_board_actions",
    "parse_request",
    "sign_request",
]

PLATFORM = "slack"
SIGNATURE_HEADER = "X-Slack-Signature"
TIMESTAMP_HEADER = "X-Slack-Request-Timestamp"
REPLAY_WINDOW = 300  # seconds, Slack's recommendation
MAX_BODY = 1_000_000  # Slack's payloads are far smaller; refuse to hash anything huge
_TS = re.compile(r"^[0-9]{1,12}$")
_SIG = re.compile(r"^v0=[0-9a-f]{64}$")
_DECISIONS = {action_id: decision for decision, action_id in ACTION_IDS.items()}


def sign_request(secret: str, *, timestamp: int | str, body: bytes) -> str:
    """The ``X-Slack-Signature`` value Slack would send for ``body`` at ``timestamp``."""
    base = b"v0:" + str(timestamp).encode("ascii") + b":" + body
    return "v0=" + hmac.new(secret.encode("utf-8"), base, hashlib.sha256).hexdigest()


def _header(headers: Mapping[str, Any], name: str) -> str | None:
    wanted = name.lower()
    for key, value in headers.items():
        if str(key).lower() == wanted:
            if isinstance(value, bytes):
                return value.decode("latin-1")
            return value if isinstance(value, str) else None
    return None


def _bad(message: str, status: int = 401) -> InvalidSignature:
    return InvalidSignature(f"Slack request refused: {message}", platform=PLATFORM, status=status)


class _Clock(Clock):
    """slack_sdk's clock reading ours, so an injected clock steers its replay check too."""

    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now

    def now(self) -> float:
        return self._now()


class SlackRequestVerifier:
    """Checks Slack's v0 signature and replay window, then parses the body.

    The HMAC and the replay window are slack_sdk's ``SignatureVerifier``; this wrapper adds what
    the SDK leaves to the caller: a size cap, headers read case-insensitively from any mapping,
    one ``InvalidSignature`` naming what was wrong, and parsing. ``clock`` returns the current
    Unix time in seconds (``time.time``); tests inject their own. ``window`` may only narrow
    the SDK's fixed 300 s.
    """

    def __init__(
        self, *, signing_secret: SecretStr, clock: Callable[[], float] | None = None, window: int = REPLAY_WINDOW
    ) -> None:
        if not signing_secret.get_secret_value():
            raise ValueError("the Slack signing secret is empty")
        if not 0 < window <= REPLAY_WINDOW:
            raise ValueError(f"the replay window must be 1..{REPLAY_WINDOW} s (slack_sdk checks {REPLAY_WINDOW})")
        self._secret = signing_secret
        self._clock = clock or time.time
        self.window = window

    def __repr__(self) -> str:
        return f"SlackRequestVerifier(signing_secret=SecretStr('**********'), window={self.window})"

    def check_signature(self, *, headers: Mapping[str, Any], body: bytes) -> None:
        """Return if ``body`` is signed by Slack within the replay window; ``InvalidSignature`` if not."""
        if not isinstance(body, (bytes, bytearray)):
            raise _bad("the body must be the raw bytes as received", 400)
        if len(body) > MAX_BODY:
            raise _bad("body too large", 413)
        timestamp = _header(headers, TIMESTAMP_HEADER)
        signature = _header(headers, SIGNATURE_HEADER)
        if not timestamp or not signature:
            raise _bad(f"missing {TIMESTAMP_HEADER} or {SIGNATURE_HEADER}")
        timestamp = timestamp.strip()
        if not _TS.match(timestamp):
            raise _bad(f"{TIMESTAMP_HEADER} is not a Unix time")
        if abs(self._clock() - int(timestamp)) > self.window:
            # Stale (or from the future): a replay, or a clock that is badly off.
            raise _bad(f"{TIMESTAMP_HEADER} is outside the {self.window} s replay window")
        signature = signature.strip()
        if not _SIG.match(signature):
            raise _bad(f"{SIGNATURE_HEADER} is not a v0 signature")
        try:
            text = bytes(body).decode("utf-8")
        except UnicodeDecodeError:
            # slack_sdk signs text; Slack only sends UTF-8, so such a body is unreadable either way.
            raise _bad("unreadable body (not UTF-8)", 400) from None
        # Built per call: the secret is unwrapped only for the check.
        sdk = SignatureVerifier(self._secret.get_secret_value(), clock=_Clock(self._clock))
        if not sdk.is_valid(body=text, timestamp=timestamp, signature=signature):
            raise _bad("signature does not match")

    def verify(self, *, headers: Mapping[str, Any], body: bytes) -> InboundEvent:
        """The parsed event; ``InvalidSignature`` for any bad signature or unreadable body."""
        self.check_signature(headers=headers, body=body)
        try:
            return parse_request(headers=headers, body=bytes(body))
        except InvalidSignature:
            raise
        except Exception as exc:  # noqa: BLE001 - a signed body we cannot read is still refused
            raise _bad(f"unreadable body ({type(exc).__name__})", 400) from None


def _str(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    return str(value)


def _json_object(text: str, notes: list[str]) -> dict[str, Any]:
    try:
        data, found = read_json(text)
    except NotJson:
        raise _bad("payload is not JSON", 400) from None
    if not isinstance(data, dict):
        raise _bad("payload is not a JSON object", 400)
    notes.extend(found)
    return data


def parse_request(*, headers: Mapping[str, Any], body: bytes) -> InboundEvent:
    """Parse a request whose signature was already checked into an ``InboundEvent``.

    - interactivity (``payload=``): ``kind`` is the payload ``type`` (``block_actions``...);
      ``dedupe_key`` is ``slack:<team>:<trigger_id>`` (one per click);
    - Events API (JSON): ``kind`` is the inner event type (``url_verification`` as is);
      ``dedupe_key`` is ``slack:<team>:<event_id>`` (Slack's retries repeat it);
    - slash commands (form without ``payload``): ``kind`` is ``slash_command``.
    """
    content_type = (_header(headers, "Content-Type") or "").lower()
    text = body.decode("utf-8")
    notes: list[str] = []
    if "json" in content_type or (not content_type and text.lstrip().startswith("{")):
        return _noted(_parse_event(_json_object(text, notes), body), notes)
    form = parse_qs(text, keep_blank_values=True, strict_parsing=False, max_num_fields=200)
    if "payload" in form:
        return _noted(_parse_interaction(_json_object(form["payload"][0], notes), body), notes)
    if "command" in form:
        return _parse_command({k: v[0] for k, v in form.items()}, body)
    raise _bad("neither an interaction payload, an event nor a slash command", 400)


def _noted(event: InboundEvent, notes: list[str]) -> InboundEvent:
    return replace(event, notes=tuple(notes)) if notes else event


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _team_of(data: Mapping[str, Any]) -> str:
    team = data.get("team")
    team_id = team.get("id") if isinstance(team, dict) else None
    return _str(team_id) or _str(data.get("team_id")) or "-"


def _digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()[:32]


def _parse_interaction(payload: dict[str, Any], body: bytes) -> InboundEvent:
    kind = _str(payload.get("type"))
    if not kind:
        raise _bad("interaction payload without a type", 400)
    team = _team_of(payload)
    user = _dict(payload.get("user"))
    channel = _dict(payload.get("channel"))
    container = _dict(payload.get("container"))
    message = _dict(payload.get("message"))
    unique = _str(payload.get("trigger_id")) or _digest(body)
    attributes = {
        "team_id": team,
        "user_id": _str(user.get("id")),
        "user_name": _str(user.get("username") or user.get("name")),
        "channel_id": _str(channel.get("id") or container.get("channel_id")),
        "message_ts": _str(container.get("message_ts") or message.get("ts")),
        "response_url": _str(payload.get("response_url")),
        "trigger_id": _str(payload.get("trigger_id")),
    }
    actions = _list(payload.get("actions"))
    first = actions[0] if actions and isinstance(actions[0], dict) else {}
    if first:
        attributes.update(
            {
                "action_id": _str(first.get("action_id")),
                "block_id": _str(first.get("block_id")),
                "value": _str(first.get("value")),
                "action_ts": _str(first.get("action_ts")),
            }
        )
    return InboundEvent(
        platform=PLATFORM,
        dedupe_key=instance_key(PLATFORM, team, unique),
        instance=team,
        kind=kind,
        actor=attributes["user_id"],
        attributes={k: v for k, v in attributes.items() if v is not None},
        data=payload,
    )


def _parse_event(envelope: dict[str, Any], body: bytes) -> InboundEvent:
    outer = _str(envelope.get("type")) or ""
    if outer == "url_verification":
        challenge = _str(envelope.get("challenge")) or ""
        return InboundEvent(
            platform=PLATFORM,
            dedupe_key=f"slack:url_verification:{_digest(body)}",
            kind="url_verification",
            attributes={"challenge": challenge},
            data=envelope,
        )
    event = _dict(envelope.get("event"))
    kind = _str(event.get("type")) or outer
    if not kind:
        raise _bad("event without a type", 400)
    team = _str(envelope.get("team_id")) or _team_of(event)
    event_id = _str(envelope.get("event_id")) or _digest(body)
    actor = event.get("user")
    actor = _str(actor.get("id")) if isinstance(actor, dict) else _str(actor)
    attributes = {
        "event_id": event_id,
        "team_id": team,
        "channel_id": _str(event.get("channel")),
        "ts": _str(event.get("ts")),
        "envelope_type": outer or None,
    }
    attributes.update(room_attributes(envelope))  # a channel message: the common room's (R-COMMS)
    return InboundEvent(
        platform=PLATFORM,
        dedupe_key=instance_key(PLATFORM, team, event_id),
        instance=team,
        kind=kind,
        actor=actor,
        attributes={k: v for k, v in attributes.items() if v is not None},
        data=envelope,
    )


def _parse_command(form: dict[str, str], body: bytes) -> InboundEvent:
    team = form.get("team_id") or "-"
    unique = form.get("trigger_id") or _digest(body)
    keep = ("command", "text", "user_id", "user_name", "channel_id", "response_url", "trigger_id", "team_id")
    return InboundEvent(
        platform=PLATFORM,
        dedupe_key=instance_key(PLATFORM, team, unique),
        instance=team,
        kind="slash_command",
        actor=form.get("user_id"),
        attributes={k: form[k] for k in keep if k in form},
        data=form,
    )


# --------------------------------------------------------------------------------------------
# Board decisions


@dataclass(frozen=True, kw_only=True)
class BoardAction:
    """One click on a Board decision button: who, which button, which proposal, and where.

    ``response_url`` answers the clicker (an ephemeral reply); ``channel_id`` + ``message_ts``
    name the message to update with ``decision_update``.
    """

    user_id: str
    user_name: str | None
    team_id: str
    decision: BoardDecision
    proposal_id: str
    action_id: str
    channel_id: str | None
    message_ts: str | None
    response_url: str | None
    trigger_id: str | None
    action_ts: str | None
    dedupe_key: str


def parse_board_actions(event: InboundEvent) -> list[BoardAction]:
    """The Board decision clicks in a verified ``block_actions`` event (usually exactly one).

    Other events and other buttons give an empty list. A Board button whose proposal id in the
    ``value`` disagrees with its ``block_id`` is refused with ``InvalidSignature`` (400): our own
    buttons never do that.
    """
    if event.kind != "block_actions":
        return []
    data = event.data
    user = _dict(data.get("user"))
    user_id = _str(user.get("id"))
    actions = _list(data.get("actions"))
    out: list[BoardAction] = []
    for action in actions:
        if not isinstance(action, dict):
            continue
        action_id = _str(action.get("action_id")) or ""
        if not action_id.startswith(BOARD_ACTION_PREFIX):
            continue
        decision = _DECISIONS.get(action_id)
        proposal = _str(action.get("value"))
        block_id = _str(action.get("block_id")) or ""
        if decision is None or not proposal or not user_id:
            raise _bad(f"malformed Board action {action_id[:40]!r}", 400)
        if block_id.startswith(BOARD_BLOCK_PREFIX) and block_id.removeprefix(BOARD_BLOCK_PREFIX) != proposal:
            raise _bad("Board action's value and block_id name different proposals", 400)
        attrs = event.attributes
        out.append(
            BoardAction(
                user_id=user_id,
                user_name=_str(user.get("username") or user.get("name")),
                team_id=attrs.get("team_id", "-"),
                decision=decision,
                proposal_id=proposal,
                action_id=action_id,
                channel_id=attrs.get("channel_id"),
                message_ts=attrs.get("message_ts"),
                response_url=attrs.get("response_url"),
                trigger_id=attrs.get("trigger_id"),
                action_ts=_str(action.get("action_ts")),
                dedupe_key=event.dedupe_key,
            )
        )
    return out


@dataclass(frozen=True, kw_only=True)
class BoardCheck:
    """Whether a click may decide: ``allowed``, why (``reason``), and the Board entry matched."""

    allowed: bool
    reason: str
    user_id: str
    matched: str | None = None


def check_board_member(
    action: BoardAction,
    *,
    board: Iterable[str],
    resolved: Mapping[str, str] | None = None,
    team_id: str | None = None,
) -> BoardCheck:
    """May ``action``'s clicker decide for the Board? Pure: no I/O, no clock.

    ``board`` lists Slack user ids (``U…``/``W…``) and/or e-mail addresses; ``resolved`` maps
    those e-mails to user ids (``SlackConnector.resolve_board`` looks them up). ``team_id``,
    when given, also requires the click to come from that workspace (a shared Slack Connect
    channel can hold people from other workspaces).
    """
    entries = [e.strip() for e in board if e and e.strip()]
    resolved = {k.strip().lower(): v for k, v in (resolved or {}).items()}
    who = action.user_id
    if team_id is not None and action.team_id != team_id:
        return BoardCheck(
            allowed=False, user_id=who, reason=f"{who} clicked from workspace {action.team_id}, not {team_id}"
        )
    if not entries:
        return BoardCheck(allowed=False, user_id=who, reason="the Board list is empty: nobody may decide")
    unresolved = []
    for entry in entries:
        if "@" in entry:
            uid = resolved.get(entry.lower())
            if uid is None:
                unresolved.append(entry)
            elif uid == who:
                return BoardCheck(
                    allowed=True, user_id=who, matched=entry, reason=f"{who} is on the Board list (as {entry})"
                )
        elif entry == who:
            return BoardCheck(allowed=True, user_id=who, matched=entry, reason=f"{who} is on the Board list")
    reason = f"{who} is not on the Board list"
    if unresolved:
        reason += (
            f" ({len(unresolved)} e-mail entr{'y' if len(unresolved) == 1 else 'ies'} not resolved to Slack users)"
        )
    return BoardCheck(allowed=False, user_id=who, reason=reason)
