"""The Slack sandbox's Events API and ``chat.delete`` (the common room, R-COMMS), kept apart from
``sandbox.py`` and registered on its methods and control routes when that module loads.

- ``chat.delete`` as Slack answers it: ``message_not_found``, ``cant_delete_message`` (not the
  app's message). https://api.slack.com/methods/chat.delete
- Events: once an events URL is set (``POST /_sandbox/events_url`` {url}), every ``message`` in a
  channel (a person's, through the control routes below, and the app's own posts, edits and
  deletions, as Slack sends them) is POSTed there as an ``event_callback``, signed as Slack signs
  (``X-Slack-Signature`` v0, ``X-Slack-Request-Timestamp``). An answer other than 2xx (or none)
  is retried three times, "nearly immediately, then after 1 minute, then after 5 minutes" (in
  the sandbox's time scale), with ``X-Slack-Retry-Num`` and ``X-Slack-Retry-Reason``
  (https://api.slack.com/apis/events-api#retries).
- Control routes (not Slack): ``POST /_sandbox/messages`` {user, channel, text, thread_ts?,
  files?} a person writes; ``/_sandbox/messages/edit`` {channel, ts, text}; ``/_sandbox/messages/
  delete`` {channel, ts}; ``/_sandbox/events/redeliver`` {event_id, reason?} sends a delivered
  event again as Slack's retry does; ``GET /_sandbox/events`` the deliveries.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from typing import Any

import httpx

from connectors.sandboxkit import Call, Reply, control
from connectors.slack.inbound import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign_request
from connectors.slack.sandbox import _METHODS, SlackSandbox, _Args, _fail, _ok, _public

__all__ = ["RETRY_DELAYS", "deliver", "point_events"]

RETRY_DELAYS = (0.0, 60.0, 300.0)  # Slack's three retries, in sandbox seconds


def _events(sb: SlackSandbox) -> dict[str, Any]:
    # Kept on the sandbox object: the URL, the envelopes sent (by event id) and each delivery.
    return sb.__dict__.setdefault("events_api", {"url": None, "sent": {}, "deliveries": [], "seq": 0})


def _envelope(sb: SlackSandbox, event: dict[str, Any]) -> dict[str, Any]:
    seed, state = sb.seed, _events(sb)
    with sb._lock:
        state["seq"] += 1
        event_id = f"Ev0SBXM{state['seq']:06d}"
    # https://api.slack.com/apis/events-api#callback-field
    envelope = {
        "token": "sandbox-legacy-verification-token",
        "team_id": seed.team_id,
        "api_app_id": seed.app_id,
        "event": {**event, "event_ts": event.get("event_ts") or event.get("ts") or sb._next_ts()},
        "type": "event_callback",
        "event_id": event_id,
        "event_time": int(time.time()),
        "authorizations": [
            {
                "enterprise_id": None,
                "team_id": seed.team_id,
                "user_id": seed.bot_user_id,
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "is_ext_shared_channel": False,
    }
    state["sent"][event_id] = envelope
    return envelope


def _post(sb: SlackSandbox, url: str, envelope: dict[str, Any], retry: int, reason: str | None) -> int | str:
    body = json.dumps(envelope, separators=(",", ":")).encode("utf-8")
    stamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: str(stamp),
        SIGNATURE_HEADER: sign_request(sb.signing_secret, timestamp=stamp, body=body),
        "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
    }
    if retry:
        headers.update({"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": reason or "http_error"})
    try:
        status: int | str = httpx.post(url, content=body, headers=headers, timeout=3.0).status_code
    except httpx.TimeoutException:
        status = "http_timeout"
    except httpx.HTTPError:
        status = "connection_failed"
    with sb._lock:
        _events(sb)["deliveries"].append(
            {
                "event_id": envelope["event_id"],
                "retry": retry,
                "status": status,
                "subtype": envelope["event"].get("subtype"),
            }
        )
    return status


def deliver(sb: SlackSandbox, envelope: dict[str, Any]) -> list[int | str]:
    """Send ``envelope`` to the events URL, retrying as Slack does; each attempt's status."""
    url = _events(sb)["url"]
    if not url:
        return []
    statuses: list[int | str] = []
    reason = None
    for retry, delay in enumerate(RETRY_DELAYS + (None,)):
        status = _post(sb, url, envelope, retry, reason)
        statuses.append(status)
        if (isinstance(status, int) and 200 <= status < 300) or delay is None:
            break
        reason = status if isinstance(status, str) else "http_error"
        time.sleep(delay * sb.time_factor)
    return statuses


def _deliver_later(sb: SlackSandbox, event: dict[str, Any]) -> None:
    if _events(sb)["url"]:
        envelope = _envelope(sb, event)
        threading.Thread(target=deliver, args=(sb, envelope), daemon=True).start()


def _channel_event(sb: SlackSandbox, channel: str, message: dict[str, Any]) -> dict[str, Any]:
    kind = "group" if sb.channels.get(channel, {}).get("is_private") else "channel"
    return {**_public(message, with_metadata=False), "channel": channel, "channel_type": kind}


def _hidden_event(sb: SlackSandbox, subtype: str, channel: str, **fields: Any) -> dict[str, Any]:
    # the hidden ``message`` event of an edit or a deletion in ``channel``
    return {"type": "message", "subtype": subtype, "hidden": True, "channel": channel, "ts": sb._next_ts(), **fields}


def _emitting(name: str, subtype: str | None) -> None:
    """Wrap the app's ``name`` method: a success sends the event Slack would send for it."""
    inner = _METHODS[name]

    def method(sb: SlackSandbox, args: _Args) -> Any:
        before = None
        if subtype == "message_deleted":
            before = sb._find_message(str(args.get("channel") or ""), str(args.get("ts") or ""))
            before = dict(before) if before else None
        reply = inner(sb, args)
        if (
            reply.status != 200
            or not reply.body.get("ok")
            or sb.channels.get(str(reply.body.get("channel")), {}).get("is_im")
        ):
            return reply
        channel = str(reply.body["channel"])
        if subtype is None:
            message = sb._find_message(channel, str(reply.body["ts"]))
            _deliver_later(sb, _channel_event(sb, channel, message or {}))
        elif subtype == "message_changed":
            message = sb._find_message(channel, str(reply.body["ts"])) or {}
            _deliver_later(sb, _hidden_event(sb, subtype, channel, message=_public(message, with_metadata=False)))
        else:
            _deliver_later(
                sb,
                _hidden_event(
                    sb,
                    subtype,
                    channel,
                    deleted_ts=str(args.get("ts")),
                    previous_message=_public(before or {}, with_metadata=False),
                ),
            )
        return reply

    _METHODS[name] = method


def _delete(sb: SlackSandbox, args: _Args) -> Reply:
    if isinstance(conv := sb._conversation(args), Reply):
        return conv
    if (message := sb._find_message(conv["id"], str(args.get("ts") or ""))) is None:
        return _fail("message_not_found")
    if message.get("user") != sb.seed.bot_user_id:
        return _fail("cant_delete_message")  # a bot token deletes only the app's own messages
    sb.messages[conv["id"]].remove(message)
    return _ok(channel=conv["id"], ts=message["ts"])


_METHODS["chat.delete"] = _delete
_emitting("chat.postMessage", None)
_emitting("chat.update", "message_changed")
_emitting("chat.delete", "message_deleted")


# ---- control routes: a person writes, edits, deletes; events are delivered before the answer


async def _send_now(sb: SlackSandbox, event: dict[str, Any]) -> Reply:
    envelope = _envelope(sb, event)
    statuses = await asyncio.to_thread(deliver, sb, envelope)
    return Reply(
        200,
        {
            "ok": True,
            "event_id": envelope["event_id"],
            "deliveries": statuses,
            "ts": event.get("ts"),
            "channel": event.get("channel"),
        },
    )


def _person_message(sb: SlackSandbox, data: dict[str, Any]) -> dict[str, Any] | Reply:
    user, channel = str(data.get("user") or ""), str(data.get("channel") or "")
    if user not in sb.users or channel not in sb.channels or user not in sb.channels[channel]["members"]:
        return sb.error(400, "user or channel unknown, or the user is not a member of the channel")
    message: dict[str, Any] = {
        "type": "message",
        "user": user,
        "text": str(data.get("text") or ""),
        "ts": sb._next_ts(),
        "team": sb.seed.team_id,
        "client_msg_id": str(uuid.uuid4()),
    }
    if thread := data.get("thread_ts"):
        parent = sb._find_message(channel, str(thread))
        if parent is None:
            return sb.error(400, "no such thread")
        message["thread_ts"] = parent.get("thread_ts") or parent["ts"]
        parent.update(thread_ts=message["thread_ts"], reply_count=parent.get("reply_count", 0) + 1)
    if files := data.get("files"):
        message["subtype"] = "file_share"
        message["files"] = [
            {
                "id": f"F0SBX{i:04d}",
                "name": str(name),
                "permalink": f"https://{sb.seed.team_domain}.slack.com/files/{user}/F0SBX{i:04d}/{name}",
            }
            for i, name in enumerate(files, 1)
        ]
    sb.messages[channel].append(message)
    return _channel_event(sb, channel, message)


@control("messages")
async def _messages(sb: SlackSandbox, call: Call, data: dict[str, Any]) -> Reply:
    with sb._lock:
        event = _person_message(sb, data)
    return event if isinstance(event, Reply) else await _send_now(sb, event)


@control("messages/edit")
async def _edit(sb: SlackSandbox, call: Call, data: dict[str, Any]) -> Reply:
    channel = str(data.get("channel") or "")
    with sb._lock:
        message = sb._find_message(channel, str(data.get("ts") or ""))
        if message is None or message.get("user") == sb.seed.bot_user_id:
            return sb.error(400, "no such message of a person")
        message.update(text=str(data.get("text") or ""), edited={"user": message["user"], "ts": sb._next_ts()})
        event = {
            "type": "message",
            "subtype": "message_changed",
            "hidden": True,
            "channel": channel,
            "ts": sb._next_ts(),
            "message": _public(message, with_metadata=False),
        }
    return await _send_now(sb, event)


@control("messages/delete")
async def _remove(sb: SlackSandbox, call: Call, data: dict[str, Any]) -> Reply:
    channel = str(data.get("channel") or "")
    with sb._lock:
        message = sb._find_message(channel, str(data.get("ts") or ""))
        if message is None:
            return sb.error(400, "no such message")
        sb.messages[channel].remove(message)
        event = {
            "type": "message",
            "subtype": "message_deleted",
            "hidden": True,
            "channel": channel,
            "ts": sb._next_ts(),
            "deleted_ts": message["ts"],
            "previous_message": _public(message, with_metadata=False),
        }
    return await _send_now(sb, event)


def point_events(sb: SlackSandbox, url: str | None) -> None:
    """Where the Events API callbacks go (the app's Request URL); ``None``: nowhere."""
    _events(sb)["url"] = url or None


@control("events_url")
async def _events_url(sb: SlackSandbox, call: Call, data: dict[str, Any]) -> Reply:
    point_events(sb, str(data.get("url") or ""))
    return Reply(200, {"ok": True, "url": _events(sb)["url"]})


@control("events/redeliver")
async def _redeliver(sb: SlackSandbox, call: Call, data: dict[str, Any]) -> Reply:
    state = _events(sb)
    envelope = state["sent"].get(str(data.get("event_id") or ""))
    if envelope is None or not state["url"]:
        return sb.error(400, "no such event delivered, or no events URL")
    retry = 1 + max((d["retry"] for d in state["deliveries"] if d["event_id"] == envelope["event_id"]), default=0)
    status = await asyncio.to_thread(
        _post, sb, state["url"], envelope, retry, str(data.get("reason") or "http_timeout")
    )
    return Reply(200, {"ok": True, "status": status, "retry": retry})


@control("events", method="GET")
async def _deliveries(sb: SlackSandbox, call: Call, data: dict[str, Any]) -> Reply:
    with sb._lock:
        return Reply(200, {"ok": True, "url": _events(sb)["url"], "deliveries": list(_events(sb)["deliveries"])})


for _fn in (_messages, _edit, _remove, _events_url, _redeliver, _deliveries):
    setattr(SlackSandbox, f"_events_api{_fn.__name__}", _fn)
