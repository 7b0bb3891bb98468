"""R-APP-1 on the Forum: the applications category's topic template asks the charter's three
questions (usernames, why, experience; a nomination is optional), and :func:`parse_forum_application`
reads a topic's first post back into those answers.

The template's hints are HTML comments: Discourse keeps them in the raw text but shows nothing,
so an answer left as the template had it reads as missing, never as the hint.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

TOPIC_TEMPLATE = """\
## Discord username
<!-- Optional: your Discord username, if your Discord activity should count too. Your Forum
account is the one posting this topic. -->


## Why do you want to join the working group?
<!-- Replace this comment with your answer. -->


## What experience and skills do you bring?
<!-- For example moderation, organising events, writing, code of conduct work. -->


## Nominated by
<!-- Optional: the DSF Individual Member who nominates you (their name or username). -->

"""

# Section heading → answer; matched on the heading's words, so a translated or lightly edited
# heading still counts when it keeps the key word.
_SECTIONS = (("discord", "discord"), ("why", "why"), ("experience", "experience"),
             ("skill", "experience"), ("nominat", "nominator"))
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s*(.+?)\s*#*\s*$")
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_EMPTY = {"", "-", "none", "n/a", "na", "no", "nobody"}
QUESTIONS = {"why": "why you want to join the working group",
             "experience": "what experience and skills you bring"}


@dataclass(frozen=True, kw_only=True)
class ForumApplication:
    """The answers found in a topic; ``missing`` names the required ones not given (R-APP-1)."""

    discord: str | None
    why: str
    experience: str
    nominator: str | None
    missing: tuple[str, ...]


def _sections(raw: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    current: str | None = None
    for line in _COMMENT.sub("", raw.replace("\r\n", "\n")).split("\n"):
        heading = _HEADING.match(line)
        if heading:
            words = heading.group(1).lower()
            current = next((name for key, name in _SECTIONS if key in words), None)
            continue
        if current is not None:
            found.setdefault(current, []).append(line)
    return found


def _answer(lines: list[str] | None) -> str:
    text = "\n".join(lines or []).strip()
    return "" if text.lower() in _EMPTY else text


def parse_forum_application(raw: str) -> ForumApplication:
    """The answers of an applications topic's first post (the template's sections)."""
    sections = _sections(raw)
    discord = _answer(sections.get("discord")).split("\n")[0].strip().lstrip("@").strip()
    nominator = _answer(sections.get("nominator")).split("\n")[0].strip()
    why, experience = _answer(sections.get("why")), _answer(sections.get("experience"))
    missing = tuple(name for name, text in (("why", why), ("experience", experience)) if not text)
    return ForumApplication(discord=discord or None, why=why, experience=experience,
                            nominator=nominator or None, missing=missing)
