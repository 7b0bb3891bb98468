"""The weekly digest of ideas waiting for the WG (R-IDEA-2), as Discord messages. Pure.

Each message holds at most :data:`PER_MESSAGE` items, because each triaged item gets one action
row of status buttons and a Discord message holds at most 5 action rows
(https://discord.com/developers/docs/components/reference#action-row); its text stays within
2000 characters (an item's line is shortened when needed).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from flows.ideas.common import BUTTON_STATUSES, button_id, parse_button_id, render
from flows.presentation import DISCORD_MESSAGE_LIMIT as MESSAGE_LIMIT

__all__ = ["PER_MESSAGE", "digest_messages", "ideas_in", "item_line", "shown_after_change"]

PER_MESSAGE = 5
LABELS = {"accepted": "Accept", "declined": "Decline", "duplicate": "Duplicate"}


def _message(content: str, components: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    # No pings from titles: https://discord.com/developers/docs/resources/message#allowed-mentions-object
    body: dict[str, Any] = {"content": content, "allowed_mentions": {"parse": []}}
    if components:
        body["components"] = components
    return body


def item_line(item: Mapping[str, Any], *, limit: int = 600) -> str:
    """One item of the digest (at most ``limit`` characters)."""
    text = render("digest_item", item=item)
    if len(text) <= limit:
        return text
    title = str(item["title"])
    room = max(20, len(title) - (len(text) - limit) - 1)
    return render("digest_item", item={**item, "title": title[:room].rstrip() + "…"})[:limit]


def _buttons(item: Mapping[str, Any]) -> list[dict[str, Any]]:
    if item["status"] != "triaged":
        return []
    buttons = []
    for status in BUTTON_STATUSES:
        style = {"accepted": 3, "declined": 4}.get(status, 2)  # green, red, grey
        buttons.append(
            {
                "type": 2,
                "style": style,
                "label": f"#{item['id']} {LABELS[status]}",
                "custom_id": button_id(int(item["id"]), status),
            }
        )
    return [{"type": 1, "components": buttons}]


def digest_messages(
    items: Sequence[Mapping[str, Any]], *, week: str, counts: Mapping[str, int], flag_days: int
) -> list[dict[str, Any]]:
    """The digest's Discord message bodies (``content`` + ``components``, no nonce): a header,
    then the waiting items (``backlog_rows`` rows), :data:`PER_MESSAGE` per message, each
    triaged one with Accept / Decline / Duplicate buttons. With nothing waiting: one message
    saying so."""
    flagged = sum(1 for i in items if i.get("flagged"))
    header = render(
        "digest_header", week=week, waiting=len(items), flagged=flagged, flag_days=flag_days, counts=dict(counts)
    )
    if not items:
        return [_message(header[:MESSAGE_LIMIT])]
    out = []
    chunks = [items[i : i + PER_MESSAGE] for i in range(0, len(items), PER_MESSAGE)]
    for n, chunk in enumerate(chunks):
        lines = [header] if n == 0 else [f"**Ideas digest {week}** ({n + 1}/{len(chunks)})"]
        room = MESSAGE_LIMIT - len("\n\n".join(lines)) - 2 * len(chunk)
        each = max(80, room // len(chunk))
        lines += [item_line(item, limit=each) for item in chunk]
        content = "\n\n".join(lines)[:MESSAGE_LIMIT]
        rows = [row for item in chunk for row in _buttons(item)]
        out.append(_message(content, rows or None))
    return out


# The first line of an item (``digest_item.md.j2``): "[⚠️ ]**#<id>** <title> (<status>)".
_ITEM_LINE = re.compile(r"^(?P<head>(?:⚠️ )?\*\*#(?P<id>\d{1,12})\*\* .*\()(?P<status>[a-z-]{1,24})\)$", re.MULTILINE)


def _button_ideas(row: Mapping[str, Any]) -> set[int]:
    ids = set()
    for button in row.get("components") or ():
        parsed = parse_button_id(str(button.get("custom_id", "")))
        if parsed is not None:
            ids.add(parsed[0])
    return ids


def ideas_in(message: Mapping[str, Any]) -> set[int]:
    """The ideas a posted digest message lists (its item lines and its buttons)."""
    ids = {int(m.group("id")) for m in _ITEM_LINE.finditer(str(message.get("content") or ""))}
    for row in message.get("components") or ():
        ids |= _button_ideas(row)
    return ids


def shown_after_change(message: Mapping[str, Any], statuses: Mapping[int, str]) -> dict[str, Any] | None:
    """A posted digest message brought up to date with the ideas' ``statuses`` now: each
    item's status in its line, and buttons only on items still ``triaged`` (R-IDEA-1). The
    new ``{"content", "components"}``, or None when nothing shown changed."""
    content = str(message.get("content") or "")
    rows = [dict(r) for r in message.get("components") or ()]

    def status_of(match: re.Match[str]) -> str:
        now = statuses.get(int(match.group("id")), match.group("status"))
        return f"{match.group('head')}{now})"

    new_content = _ITEM_LINE.sub(status_of, content)
    new_rows = [r for r in rows if all(statuses.get(i, "triaged") == "triaged" for i in _button_ideas(r))]
    if new_content == content and len(new_rows) == len(rows):
        return None
    return {"content": new_content, "components": new_rows}
