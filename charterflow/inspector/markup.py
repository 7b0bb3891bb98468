"""The inspector's Jinja filters: each platform's text markup as a reader sees it (escaped
first, then the few marks each platform renders)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from markupsafe import Markup, escape

_BOLD = re.compile(r"\*\*(.+?)\*\*")
_STAMP = re.compile(r"&lt;t:(\d{1,12})(?::[tTdDfFR])?&gt;")


def discord_markup(text: str) -> Markup:
    """Discord's **bold** and ``<t:unix:F>`` timestamps as HTML (the rest escaped)."""
    html = str(escape(text or ""))
    html = _BOLD.sub(r"<b>\1</b>", html)
    return Markup(
        _STAMP.sub(lambda m: datetime.fromtimestamp(int(m.group(1)), UTC).strftime("%d %b %Y %H:%M UTC"), html)
    )


def when(value: str | None) -> str:
    """An ISO time as ``24 Nov 23:05``."""
    try:
        if re.fullmatch(r"\d+\.\d+", str(value)):  # a Slack ts
            return datetime.fromtimestamp(float(str(value)), UTC).strftime("%d %b %H:%M")
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).strftime("%d %b %H:%M")
    except (ValueError, OverflowError):
        return ""


_POLL = re.compile(r"\[poll[^\]]*\].*?\[/poll\]", re.S)
_COMMENT = re.compile(r"<!--.*?-->", re.S)


def forum_markup(raw: str) -> Markup:
    """A post's Markdown as a reader sees it: the poll block (shown as the poll) and hidden
    comments left out, **bold** kept."""
    text = _COMMENT.sub("", _POLL.sub("", raw or "")).strip()
    return Markup(_BOLD.sub(r"<b>\1</b>", str(escape(text))))


_SLACK_DATE = re.compile(r"&lt;!date\^\d+\^[^|]*\|([^&]*)&gt;")
_SLACK_USER = re.compile(r"&lt;@([A-Z0-9]+)&gt;")
_SLACK_LINK = re.compile(r"&lt;(https?://[^|&]+)\|([^&]*)&gt;")
_SLACK_BOLD = re.compile(r"(?<![\w*])\*([^*\n]+)\*(?![\w*])")
_SLACK_CODE = re.compile(r"`([^`\n]+)`")


def slack_markup(text: str, names: dict[str, str] | None = None) -> Markup:
    """Slack mrkdwn as HTML: *bold*, `code`, <@user>, <!date…|fallback>, <url|text>."""
    html = str(escape(text or ""))
    html = _SLACK_DATE.sub(r"\1", html)
    html = _SLACK_USER.sub(lambda m: "@" + str(escape((names or {}).get(m.group(1), m.group(1)))), html)
    html = _SLACK_LINK.sub(r'<a href="\1" target="_blank">\2</a>', html)
    html = _SLACK_CODE.sub(r"<code>\1</code>", html)
    return Markup(_SLACK_BOLD.sub(r"<b>\1</b>", html))
