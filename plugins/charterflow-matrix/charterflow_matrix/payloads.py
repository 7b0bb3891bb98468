"""Pure builders of Matrix event contents, keeping the platform's limit.

A whole event must fit in 65,536 bytes of canonical JSON
(https://spec.matrix.org/v1.11/client-server-api/#size-limits); we keep contents under
``MAX_CONTENT_BYTES`` (room for the event's envelope and signatures) and shorten the text with a
visible note, never silently.
"""

from __future__ import annotations

import hashlib
import html
import json
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

# Element still votes with the MSC3381 unstable type; both count.
from charterflow_matrix.inbound import POLL_RESPONSE_TYPES

__all__ = [
    "MAX_CONTENT_BYTES",
    "POLL_END",
    "POLL_RESPONSE_TYPES",
    "POLL_START",
    "POLL_START_TYPES",
    "content_size",
    "message",
    "poll_end",
    "poll_response",
    "poll_start",
    "txn_id",
]

MAX_CONTENT_BYTES = 48_000
# MSC3381 (polls) is not in the spec. Clients send and parse its first unstable form: type and
# content key "org.matrix.msc3381.poll.start", text as "org.matrix.msc1767.text" (matrix-events-sdk
# as used by element-web, test/test-utils/poll.ts; famedly/matrix-dart-sdk
# lib/msc_extensions/msc_3381_polls). The MSC's current "m.poll" block is ruma's
# "org.matrix.msc3381.v2.poll.start" only, so an "m.poll.start" holding just "m.poll" is shown by
# almost no one. We send the first form's type with both blocks; we read either.
POLL_START, POLL_END = "org.matrix.msc3381.poll.start", "org.matrix.msc3381.poll.end"
POLL_START_TYPES = (POLL_START, "m.poll.start")
POLL_END_TYPES = (POLL_END, "m.poll.end")
TEXT_V1 = "org.matrix.msc1767.text"
VOTERS_GROUP_KEY = "org.charterflow.voters_group"


def txn_id(key: str | None) -> str:
    """A transaction id for ``PUT /rooms/{room}/send/{type}/{txnId}``: derived from ``key`` so
    a resend is deduplicated by the homeserver, random without one."""
    if key is None:
        return "cf-" + uuid.uuid4().hex
    return "cf-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:40]


def content_size(content: Mapping[str, Any]) -> int:
    """Bytes of ``content`` as compact JSON."""
    return len(json.dumps(content, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


def _shorten(text: str, drop: int) -> str:
    keep = max(0, len(text) - drop)
    left_out = len(text) - keep
    return text[:keep].rstrip() + f" … [shortened to fit Matrix's event size: {left_out} characters left out]"


def _fit(build: Any, text: str) -> dict[str, Any]:
    content = build(text)
    size = content_size(content)
    while size > MAX_CONTENT_BYTES:
        # Each character costs at most 4 bytes (twice: plain and HTML bodies, the latter escaped).
        text = _shorten(text, max(64, (size - MAX_CONTENT_BYTES) // 2 + 200))
        content = build(text)
        size = content_size(content)
    return content


def message(*, title: str | None, text: str, thread_root: str | None = None) -> dict[str, Any]:
    """An ``m.room.message`` (``m.text``) with a bold title, in a thread when ``thread_root``."""

    def build(body: str) -> dict[str, Any]:
        plain = f"{title}\n\n{body}" if title else body
        rich = (f"<strong>{html.escape(title)}</strong><br><br>" if title else "") + html.escape(body).replace(
            "\n", "<br>"
        )
        content: dict[str, Any] = {
            "msgtype": "m.text",
            "body": plain,
            "format": "org.matrix.custom.html",
            "formatted_body": rich,
        }
        if thread_root:
            # https://spec.matrix.org/v1.11/client-server-api/#threading
            content["m.relates_to"] = {
                "rel_type": "m.thread",
                "event_id": thread_root,
                "is_falling_back": True,
                "m.in_reply_to": {"event_id": thread_root},
            }
        return content

    return _fit(build, text)


def poll_start(
    *, question: str, options: Sequence[str], text: str = "", voters_group: str | None = None, closes_note: str = ""
) -> dict[str, Any]:
    """An ``m.poll.start`` (MSC3381, https://github.com/matrix-org/matrix-spec-proposals/pull/3381):
    one choice, results disclosed; answer ids ``a1``…; ``voters_group`` kept in the event so
    ``read_votes`` needs nothing else."""
    if not options:
        raise ValueError("a ballot needs options")
    if len(options) > 20:  # MSC3381: clients show at most 20 answers
        raise ValueError("a Matrix poll holds at most 20 options")

    def build(body: str) -> dict[str, Any]:
        lines = [question, *(f"{i}. {label}" for i, label in enumerate(options, 1))]
        fallback = "\n".join([*([body] if body else []), *lines, *([closes_note] if closes_note else [])])
        content: dict[str, Any] = {
            POLL_START: {
                "question": {TEXT_V1: question, "body": question, "msgtype": "m.text"},
                "kind": "org.matrix.msc3381.poll.disclosed",
                "max_selections": 1,
                "answers": [{"id": f"a{i}", TEXT_V1: label} for i, label in enumerate(options, 1)],
            },
            TEXT_V1: fallback,
            "body": fallback,
            "m.poll": {
                "kind": "m.disclosed",
                "max_selections": 1,
                "question": {"m.text": [{"body": question}]},
                "answers": [{"m.id": f"a{i}", "m.text": [{"body": label}]} for i, label in enumerate(options, 1)],
            },
            "m.text": [{"body": fallback}],
        }
        if voters_group:
            content[VOTERS_GROUP_KEY] = voters_group
        return content

    return _fit(build, text)


def poll_response(*, start_event: str, answer: str) -> dict[str, Any]:
    """A vote: ``m.poll.response`` referencing the poll."""
    return {"m.relates_to": {"rel_type": "m.reference", "event_id": start_event}, "m.selections": [answer]}


def poll_end(*, start_event: str, result: str | None) -> dict[str, Any]:
    """``m.poll.end``: the poll takes no more votes; ``result`` shown as its text."""
    body = "The poll has ended." + (f" {result}" if result else "")
    return {
        "m.relates_to": {"rel_type": "m.reference", "event_id": start_event},
        POLL_END: {},
        TEXT_V1: body,
        "body": body,
        "m.text": [{"body": body}],
    }


def poll_answer_ids(content: Mapping[str, Any]) -> set[str]:
    """The answer ids of a poll start, in either shape (ours carry both, with the same ids)."""
    unstable = content.get(POLL_START)
    if isinstance(unstable, dict):
        return {str(a.get("id")) for a in unstable.get("answers", []) if isinstance(a, dict)}
    stable = content.get("m.poll")
    if isinstance(stable, dict):
        return {str(a.get("m.id")) for a in stable.get("answers", []) if isinstance(a, dict)}
    return set()


def poll_selections(content: Mapping[str, Any]) -> list[Any] | None:
    """A poll answer's chosen ids: ``m.selections`` (MSC3381 now), Element's
    ``org.matrix.msc3381.poll.response.answers`` or an older ``m.poll.response.answers``."""
    chosen = content.get("m.selections")
    if isinstance(chosen, list):
        return chosen
    for key in ("org.matrix.msc3381.poll.response", "m.poll.response"):
        block = content.get(key)
        if isinstance(block, dict) and isinstance(block.get("answers"), list):
            return list(block["answers"])
    return None
