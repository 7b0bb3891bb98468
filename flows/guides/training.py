"""Community training sessions on a guide (R-GUIDE): ``training_schedule`` records the session,
then on each platform the guide is for creates a calendar event where the platform has one
(``Calendar``: a Discord scheduled event) and announces it (``ChannelText`` where the platform
has channels, else a ``Messenger`` topic: the Forum's event topic, in the guides category);
``training_reminders`` (hourly) reminds each platform once, from one day before the start.
Each platform write is a keyed effect (``training:<id>:<what>:<platform>``), so running the
same schedule again, or the reminders every hour, sends nothing twice.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from prefect import flow

from connectors.base import Calendar, ChannelText, Links, Messenger
from flows.guides.library import load_guides
from flows.guides.publish import guides_channel
from flows.kit import Ctx, context, once
from ledger import guides as shelf_ledger
from rules.guides import Guide

log = logging.getLogger("charterflow.guides")
ACTOR = "flow:training"
REMIND_AHEAD = timedelta(days=1)
__all__ = ["TrainingError", "remind_step", "schedule_step", "training_reminders", "training_schedule"]


class TrainingError(ValueError):
    """A session that cannot be scheduled (no such guide, a time in the past...)."""


def _event_title(guide: Guide) -> str:
    title = f"Training: {guide.title}"
    return title if len(title) <= 100 else title[:99].rsplit(" ", 1)[0] + "\u2026"


def _announcement(
    guide: Guide,
    starts_at: datetime,
    ends_at: datetime,
    location: str | None,
    event_url: str | None,
    guide_url: str | None,
) -> str:
    minutes = int((ends_at - starts_at).total_seconds() // 60)
    lines = [
        f"A community training session on \u201c{guide.title}\u201d: "
        f"{starts_at:%A %d %B %Y, %H:%M} UTC, {minutes} minutes.",
        f"Where: {location or 'to be announced'}.",
    ]
    if event_url:
        lines.append(f"Event: {event_url}")
    if guide_url:
        lines.append(f"Read the guide first: {guide_url}")
    lines.append("Everyone is welcome; bring your questions.")
    return "\n\n".join(lines)


def _check_session(starts_at: datetime, minutes: int, *, now: datetime) -> None:
    """``TrainingError`` when the start is naive or not in the future, or the length is off."""
    if starts_at.tzinfo is None:
        raise TrainingError("the start needs a time zone (UTC)")
    if starts_at <= now:
        raise TrainingError(f"the start {starts_at:%Y-%m-%d %H:%M} UTC is not in the future")
    if not 15 <= minutes <= 480:
        raise TrainingError("a session lasts 15 to 480 minutes")


def _event(
    ctx: Ctx,
    platform: str,
    calendar: Calendar,
    session_id: int,
    guide: Guide,
    title: str,
    starts_at: datetime,
    ends_at: datetime,
    location: str | None,
) -> str:
    """Create the session's calendar event on ``platform`` once; its id."""
    event = once(
        ctx,
        key=f"training:{session_id}:event:{platform}",
        platform=platform,
        actor=ACTOR,
        about=f"training:{session_id}",
        act=lambda: {
            "id": calendar.schedule_event(
                title=title,
                starts_at=starts_at,
                ends_at=ends_at,
                location=location,
                description=f"Community training on the guide \u201c{guide.title}\u201d (R-GUIDE).",
            ).id
        },
    )
    return str(event["ref"]["id"])


def schedule_step(
    ctx: Ctx,
    guide: Guide,
    *,
    starts_at: datetime,
    minutes: int = 60,
    location: str | None = None,
    channels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Record the session and create its events and announcements (see the module docstring).
    ``TrainingError`` before anything is recorded when the time is not in the future or the
    length is not 15 minutes to 8 hours."""
    _check_session(starts_at, minutes, now=ctx.now)
    # The texts say "UTC": a start given with another offset (the Prefect UI's) is read in UTC.
    starts_at = starts_at.astimezone(UTC)
    ends_at = starts_at + timedelta(minutes=minutes)
    title = _event_title(guide)
    with ctx.ledger.transaction() as session:
        row, created = shelf_ledger.record_training(
            session,
            slug=guide.slug,
            title=title,
            starts_at=starts_at,
            ends_at=ends_at,
            location=location,
            actor=ACTOR,
            at=ctx.now,
        )
        session_id = row.id
        guide_urls = {p.platform: p.url for p in shelf_ledger.posts(session) if p.slug == guide.slug}
    made: dict[str, Any] = {}
    for space in ctx.platforms.spaces.values():
        if not guide.for_platform(space.platform):
            continue
        ref: dict[str, Any] = {}
        calendar = space.capable(Calendar)
        if calendar is not None:
            ref["event"] = _event(ctx, space.platform, calendar, session_id, guide, title, starts_at, ends_at, location)
            links = space.capable(Links)
            ref["event_url"] = links.event_url(ref["event"]) if links is not None else None
        text = _announcement(guide, starts_at, ends_at, location, ref.get("event_url"), guide_urls.get(space.platform))
        channel = space.announce_channel or guides_channel(space.platform, channels)
        announce = _announcer(space, channel, title, text)
        if announce is not None:
            done = once(
                ctx,
                key=f"training:{session_id}:announce:{space.platform}",
                platform=space.platform,
                actor=ACTOR,
                about=f"training:{session_id}",
                act=announce,
            )
            ref.update(announcement=done["ref"].get("id"), thread=done["ref"].get("thread_id"))
        if ref:
            with ctx.ledger.transaction() as session:
                shelf_ledger.set_training_events(session, session_id, platform=space.platform, ref=ref)
            made[space.platform] = ref
    return {
        "session": session_id,
        "created": created,
        "guide": guide.slug,
        "title": title,
        "starts_at": starts_at.isoformat(),
        "ends_at": ends_at.isoformat(),
        "platforms": made,
    }


def _announcer(space: Any, channel: str | None, title: str, text: str) -> Any:
    """How a session is announced on ``space``: a channel message where there are channels,
    else a new topic (the Forum's event topic); ``None`` when it can do neither or no channel
    is set (never the WG's private channel)."""
    if not channel:
        log.warning("training: no announcements or guides channel on %s; not announced", space.platform)
        return None
    texter = space.capable(ChannelText)
    if texter is not None:

        def by_text() -> dict[str, Any]:
            refs = texter.send_text(channel=channel, text=text, title=title)
            return {"id": refs[0].id, "thread_id": refs[0].thread_id}

        return by_text
    messenger = space.capable(Messenger)
    if messenger is not None:
        return lambda: messenger.post(channel=channel, title=title, text=text)
    return None


def remind_step(ctx: Ctx) -> list[dict[str, Any]]:
    """Remind each platform once of every session starting within a day (not started yet)."""
    out = []
    with ctx.ledger.read() as session:
        due = [
            (r.id, r.title, r.starts_at, dict(r.events or {}))
            for r in shelf_ledger.training_between(session, ctx.now, ctx.now + REMIND_AHEAD)
        ]
    for session_id, title, starts_at, events in due:
        for platform, ref in events.items():
            space = ctx.platforms.space(platform)
            messenger = space.capable(Messenger) if space is not None else None
            thread = ref.get("thread")
            if messenger is None or not thread:
                continue
            hours = max(1, round((starts_at - ctx.now).total_seconds() / 3600))
            text = (
                f"Reminder: \u201c{title}\u201d starts in about {hours} hour{'s' if hours != 1 else ''} "
                f"({starts_at:%H:%M} UTC)."
            )
            once(
                ctx,
                key=f"training:{session_id}:reminder:{platform}",
                platform=platform,
                actor=ACTOR,
                about=f"training:{session_id}",
                act=lambda m=messenger, t=thread, x=text: m.reply(thread_id=t, text=x),
            )
            out.append({"session": session_id, "platform": platform})
    return out


def find_guide(ctx: Ctx, slug: str) -> Guide:
    """The guide ``slug`` (its file name without ``.md``); ``TrainingError`` naming the known
    ones, or the guide's front matter error."""
    guides, errors = load_guides()
    for guide in guides:
        if guide.slug == slug:
            return guide
    for error in errors:
        if error.name.removesuffix(".md") == slug:
            raise TrainingError(f"the guide is broken: {error}")
    raise TrainingError(f"no guide {slug!r} (guides: {', '.join(g.slug for g in guides) or 'none'})")


@flow(name="training-schedule", flow_run_name="training-{guide}", log_prints=True)
def training_schedule(
    guide: str,
    starts_at: datetime,
    minutes: int = 60,
    location: str = "",
    channels: dict[str, str] | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Schedule a community training session on ``guide`` (its file name without ``.md``) at
    ``starts_at`` (UTC) for ``minutes``: an event and an announcement on each platform the
    guide is for (R-GUIDE). Running it again with the same guide and start sends nothing new."""
    ctx = context(now)
    return schedule_step(
        ctx, find_guide(ctx, guide), starts_at=starts_at, minutes=minutes, location=location or None, channels=channels
    )


@flow(name="training-reminders", flow_run_name="training-reminders", log_prints=True)
def training_reminders(now: datetime | None = None) -> dict[str, Any]:
    """Remind each platform of the training sessions starting within a day, once each."""
    return {"reminded": remind_step(context(now))}
