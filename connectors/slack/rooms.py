"""The common room on Slack (R-COMMS: "shared with the CoC Committee"): ``RoomWriter`` as a mixin
of ``SlackConnector``, and the neutral attributes of the Events API's ``message`` events.

A bridged room is a channel, named by its ID (``C…``/``G…``; the bot must be a member). A
conversation is a thread: its id is ``<channel>:<thread_ts>``, a message's id ``<channel>:<ts>``
(``MessageRef`` as the connector's ``Messenger`` gives them). Posts are ``chat.postMessage``
(with ``thread_ts`` for a reply), edits ``chat.update``, deletions ``chat.delete``. Slack takes
40,000 characters but advises keeping a message to 4,000
(https://api.slack.com/methods/chat.postMessage#truncating): the bridge keeps to that.

People's messages reach the gateway's ``POST /hooks/slack`` as Events API callbacks
(``message``, with subtypes ``message_changed`` and ``message_deleted``; the
``message.channels``/``message.groups`` subscriptions): :func:`room_attributes` reads them. The
app's own messages come back too, and are marked ``own`` (never relayed). Text goes out escaped
and comes in as plain text (:func:`slack_plain`); a thread's first message deleted comes as a
``message_changed`` to a tombstone, and is a deletion here.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from typing import Any

from connectors.base import MessageRef
from connectors.errors import FatalError
from connectors.slack.blocks import SlackMessage, escape
from connectors.slack.client import SlackFatalError
from connectors.slack.settings import CHANNEL_ID

__all__ = ["ROOM_TEXT_LIMIT", "SlackRooms", "room_attributes", "slack_markdown", "slack_plain"]

ROOM_TEXT_LIMIT = 4_000
TEXT_MAX = 40_000  # Slack truncates longer messages
_NEW = ("", "thread_broadcast", "file_share", "me_message")  # subtypes that are a person's message
_GONE = ("message_not_found", "cant_delete_message")
# A copy's title line: bold and nothing else (a title holds no "*": rules.commons), unlike the
# "*author* (Platform): …" line a copy's text starts with.
_TITLE_LINE = re.compile(r"\*[^*\n]+\*")


def slack_markdown(text: str) -> str:
    """Slack's mrkdwn bolds with one asterisk: ``**name**`` becomes ``*name*``
    (https://api.slack.com/reference/surfaces/formatting#basic-formatting)."""
    return re.sub(r"\*\*(.+?)\*\*", r"*\1*", text)


def _room_text(text: str) -> str:
    """A copy's text as Slack must get it: ``&``, ``<`` and ``>`` escaped, or Slack parses
    another platform's ``<!channel>`` as a ping and ``<https://x|y>`` as a disguised link
    (https://api.slack.com/reference/surfaces/formatting#escaping); cut first, so no entity is
    split and the escaped text stays under Slack's 40,000 characters."""
    return escape(slack_markdown(text[: TEXT_MAX // 5]))


# Slack's control sequences in a message it sends us: <@U…|name>, <#C…|name>, <!here>,
# <!subteam^S…|@team>, <!date^…|fallback>, <url|label>
# (https://api.slack.com/reference/surfaces/formatting#retrieving-messages).
_SEQUENCE = re.compile(r"<([@#!]?)([^<>|]*)(?:\|([^<>]*))?>")
# A mention Slack sends by ID alone (its events carry no name): <@U…>.
_BARE_MENTION = re.compile(r"<@([UW][A-Z0-9]+)>")


def _plain_sequence(match: re.Match[str]) -> str:
    sigil, target, label = match.group(1), match.group(2), match.group(3)
    if sigil in ("@", "#"):
        return f"{sigil}{label or target}" if not (label or "").startswith(sigil) else label
    if sigil == "!":
        return label or f"@{target.split('^')[0]}"
    shown = re.sub(r"^(mailto:|https?://)", "", target)
    return label if label in (target, shown) else target if not label else f"{label} ({target})"


def slack_plain(text: str) -> str:
    """A person's Slack message as plain text for the other platforms: mentions, channels and
    links as people read them (``@U…`` for a user Slack names by ID only), ``&amp;``, ``&lt;``
    and ``&gt;`` back to ``&``, ``<`` and ``>`` (Slack escapes what people type)."""
    plain = _SEQUENCE.sub(_plain_sequence, text)
    return plain.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _split(ref: str) -> tuple[str, str]:
    channel, sep, ts = str(ref).partition(":")
    if not sep or not CHANNEL_ID.match(channel) or not re.match(r"^\d+\.\d+$", ts):
        raise ValueError(f"not a Slack message reference (channel:ts): {ref!r}")
    return channel, ts


class SlackRooms:
    """``RoomWriter`` (``connectors.base``) and ``AuthorNames`` for ``SlackConnector``: uses its
    ``client``, ``send`` and ``_check_channel``."""

    client: Any
    send: Any
    _check_channel: Any

    def room_text_limit(self) -> int:
        """:data:`ROOM_TEXT_LIMIT` characters (Slack's advice)."""
        return ROOM_TEXT_LIMIT

    def _room_cache(self) -> tuple[threading.Lock, dict[str, str]]:
        cache = self.__dict__.setdefault("_rooms_known", (threading.Lock(), {}))
        return cache[0], cache[1]

    def room_key(self, room: str) -> str:
        """The channel's ID, once ``conversations.info`` found it (cached); ``FatalError`` for a
        name or an unknown channel."""
        channel = self._check_channel(room)
        lock, known = self._room_cache()
        with lock:
            if channel in known:
                return known[channel]
        self.client.call("conversations.info", what=f"channel {channel}", params={"channel": channel})
        with lock:
            known[channel] = channel
        return channel

    def room_thread(self, *, room: str, message_id: str, name: str) -> str:
        """A thread hangs on its first message: its id is the message's (no call)."""
        channel, ts = _split(message_id)
        return f"{channel}:{ts}"

    def room_post(
        self, *, room: str, text: str, thread_id: str | None = None, title: str | None = None, key: str | None = None
    ) -> MessageRef:
        """A reply in thread ``thread_id``, else a message in channel ``room`` (``title`` in bold
        first) whose thread takes the replies; at most once per ``key`` (message metadata)."""
        body = _room_text(text)
        if thread_id:
            channel, ts = _split(thread_id)
            return self.send(channel=channel, message=SlackMessage(text=body), key=key, thread_ts=ts)
        if title:
            body = f"*{escape(title)}*\n{body}"[:TEXT_MAX]
        return self.send(channel=self._check_channel(room), message=SlackMessage(text=body), key=key)

    def room_edit(self, *, room: str, thread_id: str | None, message_id: str, text: str) -> None:
        """``chat.update`` of the app's message (the same text again changes nothing); a
        conversation's first copy keeps the title line ``room_post`` put above it."""
        channel, ts = _split(message_id)
        body = _room_text(text)
        if thread_id == message_id:
            body = f"{self._title_line(channel, ts)}{body}"[:TEXT_MAX]
        self.client.call(
            "chat.update",
            what=f"message {ts} in {channel}",
            json={"channel": channel, "ts": ts, "text": body, "blocks": []},
        )

    def _title_line(self, channel: str, ts: str) -> str:
        """The title line of the thread's first message (``conversations.replies`` answers the
        parent first: https://api.slack.com/methods/conversations.replies) and its line break;
        ``""`` when it has none."""
        data = self.client.call(
            "conversations.replies", what=f"thread {ts} in {channel}", params={"channel": channel, "ts": ts, "limit": 1}
        )
        first: dict[str, Any] = next(iter(data.get("messages") or []), {})
        line = str(first.get("text") or "").split("\n", 1)[0] if first.get("ts") == ts else ""
        return f"{line}\n" if _TITLE_LINE.fullmatch(line) else ""

    def room_delete(self, *, room: str, thread_id: str | None, message_id: str) -> None:
        """``chat.delete`` of the app's message; one already gone is fine."""
        channel, ts = _split(message_id)
        try:
            self.client.call("chat.delete", what=f"message {ts} in {channel}", json={"channel": channel, "ts": ts})
        except SlackFatalError as exc:
            if exc.slack_error not in _GONE:
                raise

    def author_name(self, user_id: str) -> str | None:
        """A member's display name (``users.info``, cached): Slack's events name people by ID."""
        lock, known = self._room_cache()
        with lock:
            if f"user:{user_id}" in known:
                return known[f"user:{user_id}"] or None
        try:
            data = self.client.call("users.info", what=f"user {user_id}", params={"user": user_id})
        except FatalError:
            return None
        user = data.get("user") or {}
        profile = user.get("profile") or {}
        name = str(profile.get("display_name") or user.get("name") or profile.get("real_name") or "")
        with lock:
            known[f"user:{user_id}"] = name
        return name or None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _own(message: Mapping[str, Any], envelope: Mapping[str, Any]) -> bool:
    app = envelope.get("api_app_id")
    bots = {a.get("user_id") for a in envelope.get("authorizations") or [] if isinstance(a, dict) and a.get("is_bot")}
    profile = _dict(message.get("bot_profile"))
    return bool(app) and app in (message.get("app_id"), profile.get("app_id")) or message.get("user") in bots - {None}


def room_attributes(envelope: Mapping[str, Any]) -> dict[str, str]:
    """The neutral ``room.*`` attributes (``flows/README.md``, "Inbound events from a plugin
    platform") of an Events API ``message`` callback in a channel; ``{}`` for anything else
    (a join, a topic change). https://api.slack.com/events/message"""
    event = _dict(envelope.get("event"))
    channel = str(event.get("channel") or "")
    if event.get("type") != "message" or not CHANNEL_ID.match(channel) or channel.startswith("D"):
        return {}
    subtype = str(event.get("subtype") or "")
    inner = (
        event.get("message")
        if subtype == "message_changed"
        else event.get("previous_message")
        if subtype == "message_deleted"
        else event
    )
    if _own(_dict(inner), envelope):
        return {"own": "true"}  # the app's own post, edit or deletion coming back
    if subtype == "message_deleted":
        return {"room.key": channel, "room.change": "delete", "room.message_id": f"{channel}:{event.get('deleted_ts')}"}
    if subtype == "message_changed" and _dict(inner).get("subtype") == "tombstone":
        # A thread's first message deleted stays as a "tombstone" and comes as an edit by
        # USLACKBOT (https://github.com/42wim/matterbridge/issues/600, slack-edge/slack-edge#10).
        return {"room.key": channel, "room.change": "delete", "room.message_id": f"{channel}:{_dict(inner).get('ts')}"}
    if subtype == "message_changed":
        return _message_attributes(channel, _dict(event.get("message")), "edit")
    if subtype in _NEW:
        return _message_attributes(channel, event, "new")
    return {}  # a join, a topic, another bot's message


def _message_attributes(channel: str, message: Mapping[str, Any], change: str) -> dict[str, str]:
    """A person's message (new or edited): its id, text, author, thread and attachments."""
    ts, thread = str(message.get("ts") or ""), str(message.get("thread_ts") or "")
    files = [str(f.get("permalink")) for f in message.get("files") or [] if isinstance(f, dict) and f.get("permalink")]
    user, text = str(message.get("user") or ""), str(message.get("text") or "")
    out = {
        "room.key": channel,
        "room.change": change,
        "room.message_id": f"{channel}:{ts}",
        "room.text": slack_plain(text)[:TEXT_MAX],
        "user_id": user,
        "username": user,
    }
    if mentioned := sorted(set(_BARE_MENTION.findall(text))):
        out["room.mentions"] = " ".join(mentioned)  # shown "@U…" in the text: named by AuthorNames
    if thread and thread != ts:
        out["room.thread_id"] = f"{channel}:{thread}"
    if files:
        out["room.attachments"] = " ".join(files)
    return out
