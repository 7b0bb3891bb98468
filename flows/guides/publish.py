"""Publish the guides (R-GUIDE): each guide to each platform that takes it (a ``GuideShelf``),
one post per guide per platform, edited in place when the text changes; then point newcomers at
them (each ``NewcomerWelcome``, and one prompt of each ``OnboardingPrompts``: Discord's server
onboarding, whose other prompts are kept as they are). The guide files are read and checked first: a broken one is
reported by name and line and not published (its earlier post, if any, stays as it was). A
platform a guide names with no connector installed (``matrix`` without its plugin) is skipped
with one line in the report ("matrix: no connector installed").

Order: platforms whose messages hold the most text come first, so a guide too long for another
platform links to the whole guide there instead of being cut (``rules.guides.fit_guide``).
Every platform write is a keyed effect (``once``), recorded with the guide's version before the
run reports it; a re-run with the same text sends nothing. A platform refusing its welcome or
onboarding step (Discord without Manage Server) is logged, shown in the run's artifact and fails
the run once the rest is done; nothing is recorded for it, so a re-run sets it.

Channels: ``CHARTERFLOW_GUIDES_<PLATFORM>_CHANNEL`` (the Forum category or Discord channel the
guides live in); unset, the connector's own default (``Guides``, ``resources``).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from prefect import flow

from connectors.base import GuideShelf, MessageRef, NewcomerWelcome, OnboardingPrompts
from connectors.errors import FatalError
from connectors.registry import loaded_connectors
from flows.guides.library import installed_platforms, load_guides
from flows.kit import Ctx, context, done, once
from flows.privacy import publish_artifact
from ledger import guides as shelf_ledger
from rules.guides import Guide, GuideError, fit_guide, without_connector

log = logging.getLogger("charterflow.guides")

ACTOR = "flow:guides-publish"
# What newcomers read first (Discord's welcome screen holds 140 characters).
WELCOME_SUMMARY = (
    "New here? Start with our community guides: how to ask a good question, where to "
    "get help and how to report a problem."
)
NEWCOMER_AUDIENCES = ("newcomers", "everyone")
NO_CONNECTOR = "no connector installed"
# The onboarding prompt the flow owns (Discord asks new members it when they join).
ONBOARDING_TITLE = "Community guides: where to start"
ONBOARDING_DESCRIPTION_MAX = 100  # a prompt option's description (Discord)

__all__ = [
    "guides_channel",
    "guides_publish",
    "onboarding_step",
    "publish_step",
    "refusals",
    "refused_line",
    "report_table",
    "skipped_platforms",
    "status_rows",
    "welcome_step",
]


def guides_channel(platform: str, channels: Mapping[str, str] | None = None) -> str | None:
    """The guides' channel on ``platform``: ``channels`` (a flow parameter), else
    ``CHARTERFLOW_GUIDES_<PLATFORM>_CHANNEL``, else ``None`` (the connector's default)."""
    if channels and channels.get(platform):
        return channels[platform]
    name = f"CHARTERFLOW_GUIDES_{platform.upper().replace('-', '_')}_CHANNEL"
    return os.environ.get(name, "").strip() or None


def skipped_platforms(guides: Sequence[Guide], installed: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """One row per platform the guides name that has no connector installed (``installed``,
    default the entry points): its guides are kept and published everywhere else."""
    missing = without_connector(guides, installed_platforms() if installed is None else installed)
    return [
        {"platform": platform, "reason": NO_CONNECTOR, "guides": list(slugs), "line": f"{platform}: {NO_CONNECTOR}"}
        for platform, slugs in missing.items()
    ]


def _shelves(ctx: Ctx) -> list[tuple[Any, GuideShelf]]:
    return sorted(ctx.platforms.capable(GuideShelf), key=lambda pair: -pair[1].guide_format()[0])


def _refs(items: Sequence[Mapping[str, Any]]) -> list[MessageRef]:
    return [
        MessageRef(
            platform=str(m.get("platform", "")),
            id=str(m["id"]),
            thread_id=str(m.get("thread_id", "")),
            url=m.get("url"),
        )
        for m in items
    ]


def publish_step(
    ctx: Ctx,
    guides: Sequence[Guide],
    errors: Sequence[GuideError] = (),
    *,
    channels: Mapping[str, str] | None = None,
    force: bool = False,
) -> list[dict[str, Any]]:
    """Publish ``guides`` where they belong; one row per (guide, platform) saying what changed
    (``published``, ``edited``, ``unchanged``) and one ``refused`` row per broken guide.
    ``force``: re-send the current text even where the ledger says it is shown already."""
    rows: list[dict[str, Any]] = [
        {
            "guide": e.name,
            "platform": "-",
            "change": "refused",
            "version": None,
            "mode": "-",
            "url": None,
            "reason": f"line {e.line}: {e.problem}" if e.line else e.problem,
            "ruling": "R-GUIDE",
        }
        for e in errors
    ]
    shelves = _shelves(ctx)
    for guide in guides:
        with ctx.ledger.transaction() as session:
            version = shelf_ledger.record_version(
                session,
                slug=guide.slug,
                title=guide.title,
                body=guide.body,
                digest=guide.digest,
                actor=ACTOR,
                at=ctx.now,
            )[0].version
        link: str | None = None  # the whole guide, on a platform it fit (for those it does not)
        for space, shelf in shelves:
            if not guide.for_platform(space.platform):
                continue
            instance = space.instance or space.platform
            limit, max_pieces, title_in_text = shelf.guide_format()
            fit = fit_guide(guide, limit=limit, max_pieces=max_pieces, link=link, title_in_text=title_in_text)
            with ctx.ledger.read() as session:
                row = shelf_ledger.post_of(session, slug=guide.slug, platform=space.platform, instance=instance)
                placed = _refs(row.messages.get("items", [])) if row is not None else []
                shown = (row.version, row.mode, row.url) if row is not None else None
            if shown is not None and shown[0] == version and shown[1] == fit.mode and not force:
                rows.append(_row(guide, space.platform, "unchanged", version, fit, shown[2]))
                link = link or (shown[2] if fit.mode != "linked" else None)
                continue
            change, url = _shelve(ctx, guide, space, shelf, fit, placed, version, channels=channels, force=force)
            rows.append(_row(guide, space.platform, change, version, fit, url))
            if fit.mode != "linked":
                link = link or url
    return rows


def _shelve(
    ctx: Ctx,
    guide: Guide,
    space: Any,
    shelf: GuideShelf,
    fit: Any,
    placed: list[MessageRef],
    version: int,
    *,
    channels: Mapping[str, str] | None,
    force: bool,
) -> tuple[str, str | None]:
    """Send ``fit`` to one space (once per version and mode) and record the post: (change, url)."""
    instance = space.instance or space.platform
    base = f"guide:{guide.slug}:{space.platform}:{instance}"

    def act() -> dict[str, Any]:
        refs = shelf.shelve_guide(
            channel=guides_channel(space.platform, channels),
            title=guide.title,
            pieces=fit.pieces,
            placed=placed,
            key=base,
        )
        return {
            "messages": [{"platform": r.platform, "id": r.id, "thread_id": r.thread_id, "url": r.url} for r in refs]
        }

    suffix = f":force:{ctx.now.isoformat()}" if force else ""
    done = once(
        ctx,
        key=f"{base}:v{version}:{fit.mode}{suffix}",
        platform=space.platform,
        actor=ACTOR,
        about=f"guide:{guide.slug}",
        act=act,
    )
    with ctx.ledger.transaction() as session:
        post, change = shelf_ledger.record_post(
            session,
            slug=guide.slug,
            platform=space.platform,
            instance=instance,
            version=version,
            mode=fit.mode,
            messages=done["ref"]["messages"],
            actor=ACTOR,
            at=ctx.now,
            decision={"ruling": fit.decision.ruling, "reason": fit.decision.reason},
        )
        url = post.url
    return change, url


def _row(guide: Guide, platform: str, change: str, version: int, fit: Any, url: str | None) -> dict[str, Any]:
    return {
        "guide": guide.slug,
        "platform": platform,
        "change": change,
        "version": version,
        "mode": fit.mode,
        "url": url,
        "reason": fit.decision.reason,
        "ruling": fit.decision.ruling,
    }


def welcome_step(
    ctx: Ctx, guides: Sequence[Guide], *, channels: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """Point newcomers at the guides on each platform that has a ``NewcomerWelcome``: the
    summary and the links of the guides for newcomers and everyone published there. Sent again
    only when that content changes. A platform that refuses (``FatalError``: a permission
    missing) gets a ``refused`` row instead (``_once_or_refused``) and the others go on."""
    out: list[dict[str, Any]] = []
    posted = _posted(ctx)
    for space, welcome, instance in _spaces_with(ctx, NewcomerWelcome):
        links = [
            (g.title, posted[(g.slug, space.platform, instance)])
            for g in guides
            if g.audience in NEWCOMER_AUDIENCES and posted.get((g.slug, space.platform, instance))
        ]
        if not links:
            continue
        channel = guides_channel(space.platform, channels)
        digest = hashlib.sha256(repr((WELCOME_SUMMARY, links, channel)).encode()).hexdigest()[:16]
        ref = _once_or_refused(
            ctx,
            out,
            "welcome",
            space.platform,
            key=f"guides:welcome:{space.platform}:{instance}:{digest}",
            act=lambda w=welcome, c=channel, g=links: {
                "where": w.set_welcome(summary=WELCOME_SUMMARY, guides=g, channel=c)
            },
        )
        if ref is not None:
            out.append({"platform": space.platform, "where": ref.get("where"), "guides": len(links)})
    return out


def _once_or_refused(
    ctx: Ctx, out: list[dict[str, Any]], step: str, platform: str, *, key: str, act: Callable[..., Any]
) -> dict[str, Any] | None:
    """``once`` of a newcomer step on ``platform``: its record's ref, or ``None`` with a
    ``refused`` row in ``out`` when the platform refuses (``FatalError``: a permission missing).
    A refusal is not recorded as done, so the next run tries again; the other platforms go on."""
    try:
        return once(ctx, key=key, platform=platform, actor=ACTOR, about=f"guides:{step}", act=act)["ref"]
    except FatalError as exc:
        log.warning("guides: %s refused the %s step: %s", platform, step, exc)
        out.append({"platform": platform, "step": step, "refused": str(exc)})
        return None


def refusals(*steps: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The refused rows of ``welcome_step`` and ``onboarding_step``."""
    return [row for rows in steps for row in rows if row.get("refused")]


def refused_line(refused: Sequence[Mapping[str, Any]]) -> str:
    """One line for the operator: each platform and step refused, and why (the permission)."""
    return "guides-publish: " + "; ".join(f"{r['platform']} {r['step']} refused: {r['refused']}" for r in refused)


def _spaces_with(ctx: Ctx, protocol: type) -> list[tuple[Any, Any, str]]:
    """(space, its ``protocol`` side, instance) for each served space that has one."""
    return [(space, side, space.instance or space.platform) for space, side in ctx.platforms.capable(protocol)]


def _posted(ctx: Ctx) -> dict[tuple[str, str, str], str | None]:
    with ctx.ledger.read() as session:
        return {(p.slug, p.platform, p.instance): p.url for p in shelf_ledger.posts(session)}


def _onboarding_plan(
    guides: Sequence[Guide],
    posted: Mapping[tuple[str, str, str], str | None],
    platform: str,
    instance: str,
    channel: Any,
) -> tuple[list[tuple[str, str]], str]:
    """The prompt's options on that platform instance (each guide for newcomers published there,
    its link as the description where it fits) and the key that records them shown."""
    options = [
        (g.title, url if len(url) <= ONBOARDING_DESCRIPTION_MAX else "")
        for g in guides
        if g.audience in NEWCOMER_AUDIENCES and (url := posted.get((g.slug, platform, instance)) or "")
    ][:50]
    digest = hashlib.sha256(repr((ONBOARDING_TITLE, options, channel)).encode()).hexdigest()[:16]
    return options, f"guides:onboarding:{platform}:{instance}:{digest}"


def onboarding_step(
    ctx: Ctx, guides: Sequence[Guide], *, channels: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """Keep the onboarding prompt ``ONBOARDING_TITLE`` of each platform that has
    ``OnboardingPrompts`` in step with the guides published there (the connector keeps every
    other prompt); sent again only when its options change (R-GUIDE). A platform that refuses
    gets a ``refused`` row, as in ``welcome_step``."""
    out: list[dict[str, Any]] = []
    posted = _posted(ctx)
    for space, prompts, instance in _spaces_with(ctx, OnboardingPrompts):
        channel = guides_channel(space.platform, channels)
        options, key = _onboarding_plan(guides, posted, space.platform, instance, channel)
        if not options:
            continue

        def keep(
            p: OnboardingPrompts = prompts, o: list[tuple[str, str]] = options, c: Any = channel
        ) -> dict[str, Any]:
            shown = p.keep_onboarding_prompt(title=ONBOARDING_TITLE, options=o, channel=c)
            return {"id": shown.id, "options": shown.options, "changed": shown.changed, "where": shown.where}

        ref = _once_or_refused(ctx, out, "onboarding", space.platform, key=key, act=keep)
        if ref is not None:
            out.append({"platform": space.platform, **ref})
    return out


def _onboarding_rows(
    ctx: Ctx, guides: Sequence[Guide], have: set[str], channels: Mapping[str, str] | None
) -> list[dict[str, Any]]:
    """``status_rows``' rows for the onboarding prompt on each installed platform that has one."""
    posted = _posted(ctx)
    rows = []
    for platform, cls in sorted(loaded_connectors().items()):
        if platform not in have or not issubclass(cls, OnboardingPrompts):
            continue
        for instance in sorted({i for _, p, i in posted if p == platform}):
            options, key = _onboarding_plan(guides, posted, platform, instance, guides_channel(platform, channels))
            found = done(ctx, key)
            rows.append(
                {
                    "guide": "(onboarding)",
                    "platform": platform,
                    "state": "current" if found else "not in step (run guides publish)",
                    "version": None,
                    "mode": f"prompt, {len(options)} option(s)",
                    "url": (found or {}).get("ref", {}).get("where"),
                }
            )
    return rows


def status_rows(
    ctx: Ctx,
    guides: Sequence[Guide],
    installed: Iterable[str] | None = None,
    *,
    channels: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """For each guide and each platform it is meant for: where it is published and whether the
    text shown is the current one (``current``, ``outdated``, ``not published``, or ``no
    connector installed`` for a platform without one, ``installed`` default the entry points);
    then one ``(onboarding)`` row per platform instance with an onboarding prompt, in step when
    it shows the guides of the guides' channel (``channels`` as ``guides_publish``'s)."""
    have = set(installed_platforms() if installed is None else installed)
    with ctx.ledger.read() as session:
        posts = {(p.slug, p.platform): p for p in shelf_ledger.posts(session)}
        latest = {g.slug: shelf_ledger.latest_version(session, g.slug) for g in guides}
    rows = []
    for guide in guides:
        for platform in guide.platforms:
            post = posts.get((guide.slug, platform))
            newest = latest.get(guide.slug)
            if platform not in have:
                state = NO_CONNECTOR
            elif post is None:
                state = "not published"
            elif newest is not None and newest.digest == guide.digest and post.version == newest.version:
                state = "current"
            else:
                state = "outdated"
            rows.append(
                {
                    "guide": guide.slug,
                    "platform": platform,
                    "state": state,
                    "version": post.version if post else None,
                    "mode": post.mode if post else None,
                    "url": post.url if post else None,
                }
            )
    return rows + _onboarding_rows(ctx, guides, have, channels)


def report_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """``rows`` as a Markdown table (the run's artifact)."""
    lines = ["| " + " | ".join(columns) + " |", "| " + " | ".join("---" for _ in columns) + " |"]
    for row in rows:
        lines.append(
            "| "
            + " | ".join(str(row.get(c) if row.get(c) is not None else "-").replace("|", "/") for c in columns)
            + " |"
        )
    return "\n".join(lines)


@flow(name="guides-publish", flow_run_name="guides-publish", log_prints=True)
def guides_publish(
    force: bool = False, channels: dict[str, str] | None = None, now: datetime | None = None
) -> dict[str, Any]:
    """Publish every guide to every platform that takes it and point newcomers at them
    (R-GUIDE). ``force``: re-send texts already shown. ``channels``: platform → the guides'
    channel (default the settings'). Returns what changed; the run's artifact shows it. A
    platform refusing the welcome or onboarding step (a permission missing) does not stop the
    other steps and platforms; the run then fails with one line naming each refusal."""
    ctx = context(now)
    guides, errors = load_guides()
    for error in errors:
        log.warning("guides: %s is not published (%s)", error.name, error)
    skipped = skipped_platforms(guides)
    for skip in skipped:
        log.warning("guides: %s (skipped there: %s)", skip["line"], ", ".join(skip["guides"]))
    rows = publish_step(ctx, guides, errors, channels=channels, force=force)
    welcome = welcome_step(ctx, guides, channels=channels)
    onboarding = onboarding_step(ctx, guides, channels=channels)
    refused = refusals(welcome, onboarding)
    try:
        publish_artifact(
            key="guides-publish",
            kind="markdown",
            description="guides-publish",
            content="# Guides published (R-GUIDE)\n\n"
            + report_table(rows, ("guide", "platform", "change", "version", "mode", "url", "reason"))
            + "".join(f"\n\n{skip['line']}: skipped there ({', '.join(skip['guides'])})" for skip in skipped)
            + ("\n\n## Refused\n\n" + report_table(refused, ("platform", "step", "refused")) if refused else ""),
        )
    except Exception as exc:  # noqa: BLE001 - the report is a view; the ledger holds the record
        log.warning("guides: no artifact (%s)", type(exc).__name__)
    if refused:  # fails the run after the rest is done, so the operator sees it in the Prefect UI
        raise FatalError(refused_line(refused), platform=str(refused[0]["platform"]))
    return {
        "guides": rows,
        "welcome": welcome,
        "onboarding": onboarding,
        "skipped": skipped,
        "errors": [str(e) for e in errors],
    }
