"""Per-platform presentation: how a platform is named to people (``rules.admins.label``: the
charter's words) and the size of one message there (Discord's). A platform not listed is shown by
its connector name. Also the one Jinja environment every flows package renders its messages
with (``templates``, ``render``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from rules.admins import LABELS, label

__all__ = ["DISCORD_MESSAGE_LIMIT", "LABELS", "TEMPLATES", "label", "render", "templates"]

# Discord cuts a message at 2000 characters:
# https://discord.com/developers/docs/resources/message#create-message
DISCORD_MESSAGE_LIMIT = 2000


def _quote(text: Any) -> str:
    """A person's text as a Markdown quote (Forum and Discord alike), so it reads as theirs and
    its own headings or lists do not become the message's."""
    lines = str(text or "").strip().splitlines() or ["(no answer)"]
    return "\n".join(f"> {line}".rstrip() for line in lines)


# The one Jinja environment of the flows' messages (flows/templates/<package>/...): Markdown and
# mrkdwn, so nothing is HTML-escaped; a missing variable is an error, not an empty string. A
# package needing a filter of its own adds it once at import (reports: ``esc``, Slack's escape).
TEMPLATES = Path(__file__).resolve().parent / "templates"
templates = Environment(
    loader=FileSystemLoader(str(TEMPLATES)),
    undefined=StrictUndefined,
    autoescape=False,
    keep_trailing_newline=False,
    trim_blocks=True,
    lstrip_blocks=True,
)
templates.filters["quote"] = _quote


def render(name: str, **values: Any) -> str:
    """The template ``name`` (under flows/templates) rendered, surrounding whitespace stripped."""
    return templates.get_template(name).render(**values).strip()
