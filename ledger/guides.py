"""Community guides and training sessions in the ledger (R-GUIDE): each guide's versions, where
each is published (one post per guide per platform instance) and the training sessions. Every
writer adds its audit entry in the caller's transaction (R-RECORD); payloads hold slugs,
versions, digests, platform names and ids, never a guide's text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledger import audit, repo
from ledger.models_guides import GuidePost, GuideVersion, TrainingSession

__all__ = [
    "latest_version",
    "post_of",
    "posts",
    "record_post",
    "record_training",
    "record_version",
    "set_training_events",
    "training_between",
    "training_of",
    "versions",
]


def _log(session: Session, *, actor: str, action: str, subject: str, at: datetime, **payload: object) -> None:
    audit.append(session, actor=actor, action=action, subject=subject, payload=repo.jsonable(payload), at=at)


def latest_version(session: Session, slug: str) -> GuideVersion | None:
    """The newest version of guide ``slug``, if any was recorded."""
    return session.scalars(
        select(GuideVersion).where(GuideVersion.slug == slug).order_by(GuideVersion.version.desc()).limit(1)
    ).first()


def versions(session: Session, slug: str) -> list[GuideVersion]:
    """Every version of guide ``slug``, oldest first."""
    return list(session.scalars(select(GuideVersion).where(GuideVersion.slug == slug).order_by(GuideVersion.version)))


def record_version(
    session: Session, *, slug: str, title: str, body: str, digest: str, actor: str, at: datetime
) -> tuple[GuideVersion, bool]:
    """The version holding this text: the newest one when its digest is the same, else a new
    one numbered after it (audited ``guide.version``). ``(row, created)``."""
    latest = latest_version(session, slug)
    if latest is not None and latest.digest == digest:
        return latest, False
    row = GuideVersion(
        slug=slug, version=(latest.version + 1) if latest else 1, digest=digest, title=title, body=body, recorded_at=at
    )
    session.add(row)
    session.flush()
    _log(
        session,
        actor=actor,
        action="guide.version",
        subject=f"guide:{slug}",
        at=at,
        version=row.version,
        digest=digest,
        previous=latest.digest if latest else None,
    )
    return row, True


def post_of(session: Session, *, slug: str, platform: str, instance: str) -> GuidePost | None:
    """Where guide ``slug`` is published on that platform instance, if it is."""
    return session.scalars(
        select(GuidePost).where(GuidePost.slug == slug, GuidePost.platform == platform, GuidePost.instance == instance)
    ).first()


def posts(session: Session) -> list[GuidePost]:
    """Every published guide, by guide then platform."""
    return list(session.scalars(select(GuidePost).order_by(GuidePost.slug, GuidePost.platform)))


def record_post(
    session: Session,
    *,
    slug: str,
    platform: str,
    instance: str,
    version: int,
    mode: str,
    messages: Sequence[Mapping[str, Any]],
    actor: str,
    at: datetime,
    decision: Mapping[str, Any] | None = None,
) -> tuple[GuidePost, str]:
    """Record that ``version`` of guide ``slug`` is shown in ``messages`` on the platform:
    ``published`` (first time), ``edited`` (another version, or the messages changed) or
    ``unchanged``; audited ``guide.published`` / ``guide.edited`` with the fit decision."""
    rows = [dict(m) for m in messages]
    row = post_of(session, slug=slug, platform=platform, instance=instance)
    url = rows[0].get("url") if rows else None
    if row is None:
        row = GuidePost(
            slug=slug,
            platform=platform,
            instance=instance,
            version=version,
            mode=mode,
            messages={"items": rows},
            url=url,
            published_at=at,
            updated_at=at,
        )
        session.add(row)
        change = "published"
    elif row.version == version and row.mode == mode and row.messages.get("items") == rows:
        return row, "unchanged"
    else:
        before = row.version
        row.version, row.mode, row.messages, row.url, row.updated_at = version, mode, {"items": rows}, url, at
        change = "edited"
        decision = {**(decision or {}), "previous_version": before}
    session.flush()
    _log(
        session,
        actor=actor,
        action=f"guide.{change}",
        subject=f"guide:{slug}",
        at=at,
        platform=platform,
        instance=instance,
        version=version,
        mode=mode,
        messages=[m.get("id") for m in rows],
        decision=dict(decision or {}),
    )
    return row, change


def training_of(session: Session, *, slug: str, starts_at: datetime) -> TrainingSession | None:
    """The training session on guide ``slug`` starting at ``starts_at``, if recorded."""
    return session.scalars(
        select(TrainingSession).where(TrainingSession.slug == slug, TrainingSession.starts_at == starts_at)
    ).first()


def record_training(
    session: Session,
    *,
    slug: str,
    title: str,
    starts_at: datetime,
    ends_at: datetime,
    location: str | None,
    actor: str,
    at: datetime,
) -> tuple[TrainingSession, bool]:
    """The session (created and audited ``training.scheduled`` the first time). ``(row, created)``."""
    row = training_of(session, slug=slug, starts_at=starts_at)
    if row is not None:
        return row, False
    row = TrainingSession(
        slug=slug,
        title=title,
        starts_at=starts_at,
        ends_at=ends_at,
        location=location,
        events={},
        created_by=actor,
        created_at=at,
    )
    session.add(row)
    session.flush()
    _log(
        session,
        actor=actor,
        action="training.scheduled",
        subject=f"training:{row.id}",
        at=at,
        guide=slug,
        starts_at=starts_at,
        ends_at=ends_at,
    )
    return row, True


def set_training_events(session: Session, session_id: int, *, platform: str, ref: Mapping[str, Any]) -> None:
    """Note what was made for the session on ``platform`` (event id, url, announcement)."""
    row = session.get_one(TrainingSession, session_id)
    events = dict(row.events or {})
    events[platform] = {**dict(events.get(platform) or {}), **dict(ref)}
    row.events = events


def training_between(session: Session, start: datetime, end: datetime) -> list[TrainingSession]:
    """Sessions starting in ``[start, end)`` (a quarter), earliest first."""
    return list(
        session.scalars(
            select(TrainingSession)
            .where(TrainingSession.starts_at >= start, TrainingSession.starts_at < end)
            .order_by(TrainingSession.starts_at)
        )
    )
