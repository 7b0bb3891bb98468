"""The ideas backlog in the ledger (R-IDEA-1, R-IDEA-2): filing once per source, triage, flags,
status changes by members and refused attempts. Each writer adds its audit entry in the caller's
transaction (``ledger.repo`` helpers); audit payloads hold ids, enum values and digests, never the
idea's text or a handle."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledger import audit, repo
from ledger.errors import NotFound
from ledger.models import Idea, IdeaStatus, IdeaStatusChange, Person

__all__ = [
    "AWAITING",
    "awaiting",
    "change_status",
    "file_idea",
    "flag",
    "get_idea",
    "idea_by_source",
    "list_ideas",
    "record_refused_change",
    "record_triage",
]

# Items waiting for the WG's decision (R-IDEA-2).
AWAITING = (IdeaStatus.NEW, IdeaStatus.TRIAGED)


def _log(session: Session, *, actor: str, action: str, subject: str, at: datetime, **payload: object) -> None:
    audit.append(session, actor=actor, action=action, subject=subject, payload=repo.jsonable(payload), at=at)


def idea_by_source(session: Session, source_key: str) -> Idea | None:
    """The item filed from ``source_key``, if any."""
    return session.scalar(select(Idea).where(Idea.source_key == source_key))


def file_idea(
    session: Session,
    *,
    title: str,
    source: str,
    source_key: str,
    actor: str,
    body: str | None = None,
    source_url: str | None = None,
    author: Person | None = None,
    author_handle: str | None = None,
    at: datetime | None = None,
) -> tuple[Idea, bool]:
    """File an idea once per ``source_key``: (the item, filed now). ``author_handle`` is kept only
    when the author is not a person in the ledger."""
    found = idea_by_source(session, source_key)
    if found is not None:
        return found, False
    idea = repo.add_idea(
        session,
        title=title,
        source=source,
        actor=actor,
        body=body,
        source_url=source_url,
        author=author,
        at=at,
        source_key=source_key,  # with the row, not an UPDATE after it
        author_handle=None if author is not None else author_handle,
    )
    return idea, True


def get_idea(session: Session, idea_id: int) -> Idea:
    """The item numbered ``idea_id``; ``NotFound`` otherwise."""
    idea = session.get(Idea, idea_id)
    if idea is None:
        raise NotFound(f"idea {idea_id} does not exist")
    return idea


def list_ideas(
    session: Session, *, status: Sequence[str] | str | None = None, platform: Sequence[str] | str | None = None
) -> list[Idea]:
    """The backlog, oldest first, optionally filtered by status(es) and platform(s)."""
    query = select(Idea).order_by(Idea.id)
    if status:
        wanted = [status] if isinstance(status, str) else list(status)
        query = query.where(Idea.status.in_([IdeaStatus(s) for s in wanted]))
    if platform:
        wanted = [platform] if isinstance(platform, str) else list(platform)
        query = query.where(Idea.platform.in_(wanted))
    return list(session.scalars(query))


def awaiting(session: Session) -> list[Idea]:
    """Items waiting for the WG's decision (``new`` or ``triaged``), oldest first."""
    return list_ideas(session, status=[s.value for s in AWAITING])


def record_triage(
    session: Session,
    idea: Idea,
    *,
    actor: str,
    needs_board: bool,
    board_kind: str,
    platform: str,
    duplicate_of: Idea | None = None,
    similarity: float | None = None,
    ruling: str,
    at: datetime,
) -> Idea:
    """Record triage's suggestion on a ``new`` item and move it to ``triaged`` (R-IDEA-2)."""
    idea.board_kind = board_kind
    idea.similarity = None if duplicate_of is None or similarity is None else Decimal(f"{similarity:.3f}")
    idea.triaged_at = at
    repo.set_idea_status(
        session,
        idea,
        IdeaStatus.TRIAGED,
        actor=actor,
        duplicate_of=duplicate_of,
        needs_board=needs_board,
        platform=platform,
        at=at,
    )
    _log(
        session,
        actor=actor,
        action="idea.triaged",
        subject=repo.ref(idea),
        at=at,
        ruling=ruling,
        board_kind=board_kind,
        needs_board=needs_board,
        platform=platform,
        duplicate_of=idea.duplicate_of_id,
        similarity=idea.similarity,
    )
    return idea


def flag(session: Session, idea: Idea, *, actor: str, age_days: int, at: datetime) -> bool:
    """Flag an item waiting too long (R-IDEA-2), once: True when flagged now."""
    if idea.flagged_at is not None:
        return False
    idea.flagged_at = at
    session.flush()
    _log(
        session,
        actor=actor,
        action="idea.flagged",
        subject=repo.ref(idea),
        at=at,
        status=idea.status,
        age_days=age_days,
        ruling="R-IDEA-2",
    )
    return True


def change_status(
    session: Session, idea: Idea, status: IdeaStatus | str, *, actor: str, note: str | None = None, at: datetime
) -> IdeaStatusChange:
    """A member's status change (already checked against R-IDEA-1): the history row (with the
    note) and the audit entry."""
    repo.set_idea_status(session, idea, status, actor=actor, at=at)
    change = session.scalars(
        select(IdeaStatusChange)
        .where(IdeaStatusChange.idea_id == idea.id)
        .order_by(IdeaStatusChange.id.desc())
        .limit(1)
    ).one()
    if note:
        change.note = note
        session.flush()
    return change


def record_refused_change(
    session: Session,
    *,
    idea_id: int | None,
    actor: str,
    attempted: str,
    reason_code: str,
    ruling: str,
    person_id: int | None = None,
    event_ref: str | None = None,
    at: datetime,
) -> None:
    """Audit a refused status change (not a member, a move R-IDEA-1 forbids, no such item):
    references and codes only (the person's ledger id when known, the inbox event)."""
    subject = f"idea:{idea_id}" if idea_id else "idea:unknown"
    _log(
        session,
        actor=actor,
        action="idea.status-refused",
        subject=subject,
        at=at,
        attempted=attempted,
        reason=reason_code,
        ruling=ruling,
        person=person_id,
        event=event_ref,
    )
