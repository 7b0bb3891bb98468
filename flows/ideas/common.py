"""What the ideas flows share: input checks, the backlog's rows as shown to people, templates
(``flows/templates/ideas/``) and the status buttons' ``custom_id`` (``cfi:<idea>:<status>``).

Everything here is pure except :func:`backlog_rows`, which reads the ledger it is given.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from flows.presentation import templates as _env
from ledger import ideas as backlog
from ledger.models import Idea, Person
from rules import Charter
from rules.triage import untriaged_too_long

__all__ = [
    "BUTTON_PREFIX",
    "BUTTON_STATUSES",
    "InvalidIdea",
    "IdeaInput",
    "MAX_BODY",
    "MAX_TITLE",
    "author_of",
    "backlog_rows",
    "button_id",
    "parse_button_id",
    "render",
    "validate_idea",
]


BUTTON_PREFIX = "cfi:"
# The decisions the digest's buttons offer on a triaged item (R-IDEA-1: triaged -> ...).
BUTTON_STATUSES = ("accepted", "declined", "duplicate")
MAX_TITLE = 300
MAX_BODY = 20_000
TITLE_FROM_TEXT = 120  # a Discord /idea's title: its first line, cut at a word


class InvalidIdea(ValueError):
    """Bad input for an idea; ``field`` names the culprit."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


@dataclass(frozen=True, kw_only=True)
class IdeaInput:
    """A checked idea: title (one line, at most 300 characters) and optional body."""

    title: str
    body: str | None


def _title_of(text: str) -> str:
    first = text.strip().splitlines()[0].strip()
    if len(first) <= TITLE_FROM_TEXT:
        return first
    cut = first.rfind(" ", 0, TITLE_FROM_TEXT)
    return first[: cut if cut > 40 else TITLE_FROM_TEXT].rstrip() + "…"


def validate_idea(*, title: str | None = None, body: str | None = None, text: str | None = None) -> IdeaInput:
    """Check an idea given as ``title`` (+ ``body``) or as one ``text`` (Discord ``/idea``:
    its first line becomes the title, the whole text the body). ``InvalidIdea`` names the field."""
    if text is not None:
        if not isinstance(text, str) or not text.strip():
            raise InvalidIdea("text", "is empty; say what you suggest")
        if len(text) > MAX_BODY:
            raise InvalidIdea("text", f"has {len(text)} characters (at most {MAX_BODY})")
        clean = text.strip()
        title = _title_of(clean)
        return IdeaInput(title=title, body=None if clean == title else clean)
    if title is None or not str(title).strip():
        raise InvalidIdea("title", "is empty")
    title = re.sub(r"\s+", " ", str(title)).strip()
    if len(title) > MAX_TITLE:
        raise InvalidIdea("title", f"has {len(title)} characters (at most {MAX_TITLE})")
    body = (body or "").strip() or None
    if body is not None and len(body) > MAX_BODY:
        raise InvalidIdea("body", f"has {len(body)} characters (at most {MAX_BODY})")
    return IdeaInput(title=title, body=body)


def render(name: str, **values: Any) -> str:
    """Render ``templates/ideas/<name>.md.j2``."""
    return _env.get_template(f"ideas/{name}.md.j2").render(**values).strip()


def button_id(idea_id: int, status: str) -> str:
    """The ``custom_id`` of a status button."""
    return f"{BUTTON_PREFIX}{int(idea_id)}:{status}"


def parse_button_id(custom_id: str) -> tuple[int, str] | None:
    """(idea id, status) of a status button's ``custom_id``; None when it is not one."""
    match = re.fullmatch(r"cfi:(\d{1,12}):([a-z-]{1,24})", custom_id or "")
    return (int(match.group(1)), match.group(2)) if match else None


def author_of(session: Session, idea: Idea) -> str:
    """Who filed the idea, as people know them: the WG handle, else the platform handle."""
    if idea.author_person_id is not None:
        person = session.get(Person, idea.author_person_id)
        if person is not None and person.erased_at is None:
            return person.handle
        return f"person-{idea.author_person_id}"
    return idea.author_handle or "operator"


def backlog_rows(
    session: Session,
    *,
    charter: Charter,
    now: datetime,
    status: list[str] | None = None,
    platform: list[str] | None = None,
) -> list[dict[str, Any]]:
    """The backlog as rows (for the CLI and the Prefect table): one dict per item."""
    rows = []
    for idea in backlog.list_ideas(session, status=status, platform=platform):
        waiting = untriaged_too_long(status=idea.status.value, created_at=idea.created_at, now=now, charter=charter)
        rows.append(
            {
                "id": idea.id,
                "status": idea.status.value,
                "title": idea.title,
                "platform": idea.platform or "",
                "board": (
                    "" if idea.needs_board is None else f"Board ({idea.board_kind})" if idea.needs_board else "WG"
                ),
                "duplicate_of": idea.duplicate_of_id,
                "duplicate_link": (
                    session.get_one(Idea, idea.duplicate_of_id).source_url or "" if idea.duplicate_of_id else ""
                ),
                "similarity": None if idea.similarity is None else float(idea.similarity),
                "source": idea.source,
                "link": idea.source_url or "",
                "author": author_of(session, idea),
                "age_days": max(0, (now - idea.created_at).days),
                "flagged": bool(waiting.allowed or idea.flagged_at is not None)
                and idea.status.value in ("new", "triaged"),
                # R-BUDGET: the budget request this idea led to (``charterflow budget link``).
                "budget_request": idea.proposal_id,
            }
        )
    return rows
