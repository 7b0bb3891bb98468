"""The Slack sandbox's Events API (the common room, R-COMMS): ``EventsApi``, a part of
``SlackSandbox`` kept in its own module.

- Once an events URL is set (``POST /_sandbox/events_url`` {url, bot_events?}: kept only when it
  answers a signed ``url_verification`` with its challenge, as on Slack), every ``message`` in a
  conversation the bot is in, of a kind the app subscribes to (``bot_events``: ``message.channels``,
  ``message.groups``, ``message.im``, ``message.mpim``; the seed's by default), is POSTed there as
  an ``event_callback`` (a person's, through the control routes below, and the app's own posts,
  edits and deletions, as Slack sends them), and an ``app_mention`` too for a person's message
  naming the bot (``<@U…>``) outside a DM when the app subscribes to it; signed as Slack signs
  (``X-Slack-Signature`` v0, ``X-Slack-Request-Timestamp``). An answer other than 2xx (or none)
  is retried three times, "nearly immediately, then after 1 minute, then after 5 minutes" (in
  the sandbox's time scale), with ``X-Slack-Retry-Num`` and ``X-Slack-Retry-Reason``
  (https://api.slack.com/apis/events-api#retries).
- Control routes (not Slack): ``POST /_sandbox/messages`` {user, channel, text, thread_ts?,
  files?} a person writes (the answer lists each event sent: none where the bot is not a
  member); ``/_sandbox/messages/edit`` {channel, ts, text}; ``/_sandbox/messages/delete``
  {channel, ts} (a thread's first message becomes a ``tombstone``, as on Slack);
  ``/_sandbox/events/redeliver`` {event_id, reason?} sends a delivered
  event again as Slack's retry does.
"""

from __future__ import annotations

import asyncio
import copy
import json
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Literal, get_args

import httpx

from connectors.sandboxkit import Call, Reply, Sandbox, control
from connectors.slack.inbound import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign_request

__all__ = ["KINDS", "RETRY_DELAYS", "SCOPE_PREFIX", "BotEvent", "EventsApi", "kind_of", "public", "signed_headers"]

RETRY_DELAYS = (0.0, 60.0, 300.0)  # Slack's three retries, in sandbox seconds
# The bot events an app may subscribe to here (https://api.slack.com/events/message.channels & co.).
BotEvent = Literal["message.channels", "message.groups", "message.im", "message.mpim", "app_mention"]
# A conversation's kind (conversations.list's ``types``), and what each kind is called in an
# event's ``channel_type``, in the message event the app subscribes to, and in its scopes.
KINDS = ("public_channel", "private_channel", "im", "mpim")
_CHANNEL_TYPE = {"public_channel": "channel", "private_channel": "group", "im": "im", "mpim": "mpim"}
SCOPE_PREFIX = {"public_channel": "channels", "private_channel": "groups", "im": "im", "mpim": "mpim"}


def kind_of(conv: Mapping[str, Any]) -> str:
    """A conversation's kind: ``public_channel``, ``private_channel``, ``mpim`` or ``im``."""
    private = "private_channel" if conv["is_private"] else "public_channel"
    return "im" if conv["is_im"] else "mpim" if conv["is_mpim"] else private


def public(message: Mapping[str, Any], *, with_metadata: bool = False) -> dict[str, Any]:
    """A stored message as Slack shows it (the sandbox's own ``_`` keys left out)."""
    out = {k: copy.deepcopy(v) for k, v in message.items() if not k.startswith("_")}
    if with_metadata and message.get("_metadata"):
        out["metadata"] = copy.deepcopy(message["_metadata"])
    return out


def signed_headers(secret: str, body: bytes, content_type: str = "application/json") -> dict[str, str]:
    """The headers of a request from Slack carrying ``body``, signed with ``secret``."""
    stamp = int(time.time())
    return {
        "Content-Type": content_type,
        TIMESTAMP_HEADER: str(stamp),
        SIGNATURE_HEADER: sign_request(secret, timestamp=stamp, body=body),
        "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
    }


class EventsApi(Sandbox):
    """The Events API part of ``SlackSandbox``: its message store's events and their delivery."""

    # set by SlackSandbox
    seed: Any
    signing_secret: str
    time_factor: float
    users: dict[str, dict[str, Any]]
    channels: dict[str, dict[str, Any]]
    messages: dict[str, list[dict[str, Any]]]
    _last_ts: float
    signed_request: Callable[..., tuple[dict[str, str], bytes]]

    def _init_events(self) -> None:
        # Not in ``_reset``: the app's Request URL and the events sent outlive a workspace reset.
        self.events_url: str | None = None
        self.bot_events: list[str] = list(self.seed.bot_events)
        self.events_sent: dict[str, dict[str, Any]] = {}
        self.deliveries: list[dict[str, Any]] = []

    def _next_ts(self) -> str:
        now = self._last_ts = max(time.time(), self._last_ts + 0.000001)
        return f"{int(now)}.{int(round((now - int(now)) * 1_000_000)) % 1_000_000:06d}"

    def _find_message(self, channel: str, ts: str) -> dict[str, Any] | None:
        return next((m for m in self.messages.get(channel, []) if m["ts"] == ts), None)

    def _envelope(self, event: dict[str, Any]) -> dict[str, Any]:
        with self._lock:  # numbered in order of sending
            event_id = f"Ev0SBXM{len(self.events_sent) + 1:06d}"
            # https://api.slack.com/apis/events-api#callback-field
            envelope = self.events_sent[event_id] = {
                "token": "sandbox-legacy-verification-token",
                "team_id": self.seed.team_id,
                "api_app_id": self.seed.app_id,
                "event": {**event, "event_ts": event.get("event_ts") or event.get("ts") or self._next_ts()},
                "type": "event_callback",
                "event_id": event_id,
                "event_time": int(time.time()),
                "authorizations": [
                    {
                        "enterprise_id": None,
                        "team_id": self.seed.team_id,
                        "user_id": self.seed.bot_user_id,
                        "is_bot": True,
                        "is_enterprise_install": False,
                    }
                ],
                "is_ext_shared_channel": False,
            }
        return envelope

    def deliver(
        self, envelope: dict[str, Any], *, first: int = 0, reason: str | None = None, retries: int = len(RETRY_DELAYS)
    ) -> list[int | str]:
        """Send ``envelope`` to the events URL as attempt ``first``, then retry as Slack does
        (``retries`` more at most); each attempt's status."""
        body = json.dumps(envelope, separators=(",", ":")).encode("utf-8")
        statuses: list[int | str] = []
        for retry, delay in enumerate([*RETRY_DELAYS[:retries], None] if self.events_url else [], first):
            headers = {
                **signed_headers(self.signing_secret, body),
                **({"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": reason or "http_error"} if retry else {}),
            }
            # The app's `X-Slack-No-Retry: 1` asks Slack not to send this event again.
            status: int | str
            stop = False
            try:
                answer = httpx.post(str(self.events_url), content=body, headers=headers, timeout=3.0)
                status, stop = answer.status_code, answer.headers.get("x-slack-no-retry") == "1"
            except httpx.TimeoutException:
                status = "http_timeout"
            except httpx.HTTPError:
                status = "connection_failed"
            statuses.append(status)
            with self._lock:
                self.deliveries.append(
                    {
                        "event_id": envelope["event_id"],
                        "retry": retry,
                        "status": status,
                        "subtype": envelope["event"].get("subtype"),
                        "user": envelope["event"].get("user"),
                    }
                )
            if (isinstance(status, int) and 200 <= status < 300) or delay is None or stop:
                break
            reason = status if isinstance(status, str) else "http_error"
            time.sleep(delay * self.time_factor)
        return statuses

    def _sends(self, event: Mapping[str, Any]) -> bool:
        """Whether Slack sends ``event`` to the app: only from a conversation its bot is in, only
        an event it subscribes to (a message's by the conversation's kind), and never an
        ``app_mention`` from a DM (https://api.slack.com/events/app_mention)."""
        conv = self.channels[event["channel"]]
        if event["type"] == "app_mention":
            name = None if conv["is_im"] else "app_mention"
        else:
            name = f"message.{SCOPE_PREFIX[kind_of(conv)]}"
        return bool(self.events_url) and name in self.bot_events and self.seed.bot_user_id in conv["members"]

    def _emit(self, channel: str, event: dict[str, Any]) -> None:
        """Send, in the background, the event Slack sends for the app's own change in ``channel``."""
        if self._sends(event):
            threading.Thread(target=self.deliver, args=(self._envelope(event),), daemon=True).start()

    def _channel_event(self, channel: str, message: dict[str, Any]) -> dict[str, Any]:
        return {**public(message), "channel": channel, "channel_type": _CHANNEL_TYPE[kind_of(self.channels[channel])]}

    def _hidden_event(self, subtype: str, channel: str, **fields: Any) -> dict[str, Any]:
        # the hidden ``message`` event of an edit or a deletion in ``channel``
        return {
            "type": "message",
            "subtype": subtype,
            "hidden": True,
            "channel": channel,
            "ts": self._next_ts(),
            **fields,
        }

    # ---- control routes: a person writes, edits, deletes; events are delivered before the answer

    async def _send_now(self, *events: dict[str, Any]) -> Reply:
        """Deliver, in order, those of ``events`` Slack sends the app; the answer names each
        (``event_id`` and ``deliveries``: the first's, or none)."""
        sent = []
        for event in filter(self._sends, events):
            envelope = self._envelope(event)
            statuses = await asyncio.to_thread(self.deliver, envelope)
            sent.append({"event_id": envelope["event_id"], "type": event["type"], "deliveries": statuses})
        first = sent[0] if sent else {"event_id": None, "deliveries": []}
        return Reply(
            200,
            {
                "ok": True,
                "event_id": first["event_id"],
                "deliveries": first["deliveries"],
                "events": sent,
                "ts": events[0].get("ts"),
                "channel": events[0].get("channel"),
            },
        )

    @control("messages")
    async def _events_messages(self, call: Call, data: dict[str, Any]) -> Reply:
        user, channel = str(data.get("user") or ""), str(data.get("channel") or "")
        with self._lock:
            if user not in self.users or channel not in self.channels or user not in self.channels[channel]["members"]:
                return self.error(400, "user or channel unknown, or the user is not a member of the channel")
            message: dict[str, Any] = {
                "type": "message",
                "user": user,
                "text": str(data.get("text") or ""),
                "ts": self._next_ts(),
                "team": self.seed.team_id,
                "client_msg_id": str(uuid.uuid4()),
            }
            if thread := data.get("thread_ts"):
                if (parent := self._find_message(channel, str(thread))) is None:
                    return self.error(400, "no such thread")
                message["thread_ts"] = parent.get("thread_ts") or parent["ts"]
                parent.update(thread_ts=message["thread_ts"], reply_count=parent.get("reply_count", 0) + 1)
            if files := data.get("files"):
                message.update(
                    subtype="file_share",
                    files=[
                        {
                            "id": f"F0SBX{i:04d}",
                            "name": str(name),
                            "permalink": f"https://{self.seed.team_domain}.slack.com/files/{user}/F0SBX{i:04d}/{name}",
                        }
                        for i, name in enumerate(files, 1)
                    ],
                )
            self.messages[channel].append(message)
            event = self._channel_event(channel, message)
            # An app_mention carries the message's own fields (https://api.slack.com/events/app_mention).
            mention = {k: v for k, v in event.items() if k != "channel_type"} | {"type": "app_mention"}
        return await self._send_now(event, *([mention] if f"<@{self.seed.bot_user_id}>" in message["text"] else []))

    @control("messages/edit")
    async def _events_edit(self, call: Call, data: dict[str, Any]) -> Reply:
        channel = str(data.get("channel") or "")
        with self._lock:
            message = self._find_message(channel, str(data.get("ts") or ""))
            if message is None or message.get("user") == self.seed.bot_user_id:
                return self.error(400, "no such message of a person")
            message.update(text=str(data.get("text") or ""), edited={"user": message["user"], "ts": self._next_ts()})
            event = self._hidden_event("message_changed", channel, message=public(message))
        return await self._send_now(event)

    @control("messages/delete")
    async def _events_delete(self, call: Call, data: dict[str, Any]) -> Reply:
        channel = str(data.get("channel") or "")
        with self._lock:
            if (message := self._find_message(channel, str(data.get("ts") or ""))) is None:
                return self.error(400, "no such message")
            # A thread's first message stays as a tombstone, sent as an edit by USLACKBOT
            # (https://github.com/42wim/matterbridge/issues/600, slack-edge/slack-edge#10).
            if message.get("reply_count"):
                message.update(subtype="tombstone", text="This message was deleted.", user="USLACKBOT", hidden=True)
            else:
                self.messages[channel].remove(message)
            event = (
                self._hidden_event("message_changed", channel, message=public(message))
                if message.get("subtype") == "tombstone"
                else self._hidden_event(
                    "message_deleted", channel, deleted_ts=message["ts"], previous_message=public(message)
                )
            )
        return await self._send_now(event)

    @control("events_url")
    async def _events_url(self, call: Call, data: dict[str, Any]) -> Reply:
        # Slack keeps a Request URL once it answers a signed challenge with it, in plain text, a
        # form or JSON (https://api.slack.com/apis/events-api#handshake)
        events = data.get("bot_events", self.bot_events)
        if not isinstance(events, list) or not set(events) <= set(get_args(BotEvent)):
            return self.error(400, f"bot_events must be a list of {', '.join(get_args(BotEvent))}")
        if url := str(data.get("url") or ""):
            headers, body = self.signed_request(kind="url_verification", payload={})
            try:
                answer = await asyncio.to_thread(httpx.post, url, content=body, headers=headers, timeout=3.0)
            except httpx.HTTPError as exc:
                return self.error(400, f"the URL did not answer the challenge: {type(exc).__name__}")
            echo = Call("POST", url, {}, {"content-type": answer.headers.get("content-type", "")}, answer.content)
            if answer.status_code != 200 or json.loads(body)["challenge"] not in (
                answer.text,
                echo.form().get("challenge"),
            ):
                return self.error(400, "Your URL didn't respond with the value of the challenge parameter.")
        self.events_url, self.bot_events = url or None, [str(e) for e in events]
        return Reply(200, {"ok": True, "url": self.events_url, "bot_events": self.bot_events})

    @control("events/redeliver")
    async def _events_redeliver(self, call: Call, data: dict[str, Any]) -> Reply:
        envelope = self.events_sent.get(str(data.get("event_id") or ""))
        if envelope is None or not self.events_url:
            return self.error(400, "no such event delivered, or no events URL")
        retry = 1 + max((d["retry"] for d in self.deliveries if d["event_id"] == envelope["event_id"]), default=0)
        [status] = await asyncio.to_thread(
            self.deliver, envelope, first=retry, reason=str(data.get("reason") or "http_timeout"), retries=0
        )
        return Reply(200, {"ok": True, "status": status, "retry": retry})
