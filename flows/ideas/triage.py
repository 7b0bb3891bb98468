"""The triage flow (R-IDEA-2), deployment ``ideas-triage/operator`` and weekly
``ideas-triage/weekly`` (the charter's ``ideas.digest_weekday``, 07:00 UTC).

1. **triage** every ``new`` item with ``rules.triage.triage``: the most similar earlier item
   (items already marked ``duplicate`` point to their original and are skipped) when the score
   reaches ``ideas.duplicate_similarity``, recorded as a suggestion (``duplicate_of_id`` +
   ``similarity``); Board or WG (R-BOARD / R-DIRECT) with the kind; the platform. The item moves
   to ``triaged``; members then decide (accept, decline, mark duplicate);
2. **flag** items waiting for the WG (``new`` or ``triaged``) longer than
   ``ideas.flag_untriaged_after_days`` (once per item, audited);
3. **digest**: one weekly digest of the waiting items in the Discord WG channel, keyed per ISO
   week (``ideas:digest:<year>-W<week>``): a second run in the same week posts nothing;
4. the Prefect table artifact ``ideas-backlog`` (the whole backlog) and a markdown artifact
   ``ideas-triage`` with this run's suggestions and their reasons.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from datetime import datetime
from typing import Any

from prefect import flow
from prefect.context import FlowRunContext
from prefect.runtime import flow_run

from connectors.base import ButtonMessenger
from flows.ideas.common import backlog_rows
from flows.ideas.digest import digest_messages
from flows.kit import Ctx, context, log, once
from flows.privacy import publish_artifact
from ledger import ideas as backlog
from ledger import repo
from ledger.models import Idea, IdeaStatus
from rules.budget import CHARTER_IDEAS
from rules.triage import idea_text, triage, untriaged_too_long

ACTOR = "flow:ideas-triage"
BACKLOG_ARTIFACT = "ideas-backlog"
__all__ = ["charter_ideas_step", "digest_step", "flag_step", "ideas_triage", "iso_week", "triage_step"]


def iso_week(now: datetime) -> str:
    """``2026-W48``: the digest's week."""
    year, week, _ = now.isocalendar()
    return f"{year}-W{week:02d}"


def triage_step(ctx: Ctx) -> list[dict[str, Any]]:
    """Triage every ``new`` item, oldest first; returns what was suggested for each."""
    with ctx.ledger.read() as session:
        items = [(i.id, idea_text(i.title, i.body), i.status) for i in backlog.list_ideas(session)]
    done = []
    for idea_id, text, status in items:
        if status != IdeaStatus.NEW:
            continue
        earlier = [(other, t) for other, t, s in items if other < idea_id and s != IdeaStatus.DUPLICATE]
        result = triage(text, existing=earlier, charter=ctx.charter)
        with ctx.ledger.transaction() as session:
            idea = session.get(Idea, idea_id, populate_existing=True)
            if idea is None or idea.status != IdeaStatus.NEW:  # moved on meanwhile
                continue
            original = session.get(Idea, result.duplicate.id) if result.duplicate else None
            backlog.record_triage(
                session,
                idea,
                actor=ACTOR,
                needs_board=result.needs_board,
                board_kind=result.kind,
                platform=result.platform,
                duplicate_of=original,
                similarity=result.duplicate.score if result.duplicate else None,
                ruling=result.board.ruling,
                at=ctx.now,
            )
        items = [(i, t, IdeaStatus.TRIAGED if i == idea_id else s) for i, t, s in items]
        done.append(
            {
                "id": idea_id,
                "duplicate_of": result.duplicate.id if result.duplicate else None,
                "similarity": result.duplicate.score if result.duplicate else None,
                "needs_board": result.needs_board,
                "kind": result.kind,
                "platform": result.platform,
                "reasons": list(result.reasons),
            }
        )
    return done


def flag_step(ctx: Ctx) -> list[int]:
    """Flag the items waiting longer than the charter allows; returns those flagged now."""
    flagged = []
    with ctx.ledger.transaction() as session:
        for idea in backlog.awaiting(session):
            decision = untriaged_too_long(
                status=idea.status.value, created_at=idea.created_at, now=ctx.now, charter=ctx.charter
            )
            if decision.allowed and backlog.flag(
                session, idea, actor=ACTOR, age_days=decision.evidence["age_days"], at=ctx.now
            ):
                flagged.append(idea.id)
    return flagged


def digest_step(ctx: Ctx, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Post this week's digest to the Discord WG channel, once per ISO week."""
    week = iso_week(ctx.now)
    key = f"ideas:digest:{week}"
    space = ctx.platforms.space("discord")
    poster = space.capable(ButtonMessenger) if space is not None else None
    if space is None or poster is None:
        return {"week": week, "posted": False, "reason": "Discord is not served"}
    waiting = [r for r in rows if r["status"] in ("new", "triaged")]
    counts = dict(sorted(Counter(r["status"] for r in rows).items()))
    bodies = digest_messages(waiting, week=week, counts=counts, flag_days=ctx.charter.ideas.flag_untriaged_after_days)

    def act() -> dict[str, Any]:
        # One key per message: the connector's nonce returns a message already sent.
        refs = [
            poster.post_components(
                channel=space.wg_channel,
                content=body["content"],
                components=body.get("components") or (),
                key=f"{key}:{n}",
            )
            for n, body in enumerate(bodies)
        ]
        return {"ids": [r.id for r in refs], "channel": refs[0].thread_id if refs else None}

    with ctx.ledger.read() as session:
        before = repo.effect_get(session, key=key)
    recorded = once(ctx, key=key, platform="discord", actor=ACTOR, about="ideas:digest", act=act)
    return {
        "week": week,
        "posted": before is None,
        "messages": len(recorded["ref"].get("ids", [])),
        "items": len(waiting),
    }


def _artifacts(
    rows: list[dict[str, Any]], triaged: list[dict[str, Any]], flagged: list[int], digest: dict[str, Any] | None
) -> None:
    if FlowRunContext.get() is None:
        return
    table = [{**r, "title": r["title"][:120]} for r in rows]
    try:
        publish_artifact(
            key=BACKLOG_ARTIFACT,
            kind="table",
            content=table or [{"id": None}],
            description=f"The ideas backlog: {len(rows)} items (R-IDEA-1)",
        )
        lines = [
            "# Ideas triage",
            "",
            f"Triaged {len(triaged)} new item(s); flagged {len(flagged)} waiting too long "
            f"({', '.join(f'#{i}' for i in flagged) or 'none'}).",
            "",
        ]
        if digest is not None:
            lines += [
                f"Digest {digest['week']}: "
                + (
                    "posted"
                    if digest.get("posted")
                    else digest.get("reason") or "already posted this week (not sent again)"
                ),
                "",
            ]
        for t in triaged:
            lines.append(f"- **#{t['id']}**: " + "; ".join(t["reasons"]))
        publish_artifact(
            key="ideas-triage",
            kind="markdown",
            content="\n".join(lines),
            description="What this triage run suggested (R-IDEA-2)",
        )
    except Exception as exc:  # noqa: BLE001 - an artifact is a view, never a reason to fail
        log.warning("ideas: artifact not created: %s", type(exc).__name__)


def _run_name() -> str:
    now = (flow_run.parameters or {}).get("now") or flow_run.scheduled_start_time
    try:
        if isinstance(now, str):
            now = datetime.fromisoformat(now)
        return f"ideas-triage-{iso_week(now)}"
    except Exception:  # noqa: BLE001 - a name is a courtesy
        return "ideas-triage"


CHARTER_SOURCE = "charter"  # the backlog source of the charter's own budget ideas
CHARTER_ACTOR = "flow:budget"


def seed_charter_ideas(ledger: Any, *, now: datetime) -> list[dict[str, Any]]:
    """File the charter's budget ideas (R-BUDGET) in the backlog (source ``charter``), once each:
    running it again files nothing. Returns ``[{"idea": id, "title": …, "filed": bool}]``."""
    out = []
    with ledger.transaction() as session:
        for title, body in CHARTER_IDEAS:
            key = "charter:budget-idea:" + hashlib.sha256(title.encode()).hexdigest()[:16]
            row, created = backlog.file_idea(
                session,
                title=title,
                body=body,
                source=CHARTER_SOURCE,
                source_key=key,
                author_handle=CHARTER_SOURCE,
                actor=CHARTER_ACTOR,
                at=now,
            )
            out.append({"idea": row.id, "title": row.title, "filed": created})
    return out


def charter_ideas_step(ctx: Ctx) -> list[int]:
    """R-BUDGET: the charter's own budget ideas enter the backlog, each once (a source key, as
    ``charterflow budget seed`` files them); the ids filed now."""
    return [row["idea"] for row in seed_charter_ideas(ctx.ledger, now=ctx.now) if row["filed"]]


@flow(name="ideas-triage", flow_run_name=_run_name, log_prints=True)
def ideas_triage(post_digest: bool = True, now: datetime | None = None, charter_ideas: bool = False) -> dict[str, Any]:
    """Triage the ideas backlog (R-IDEA-2): suggest duplicates, Board or WG and platform for
    every new item, flag items waiting too long, post the week's digest to the WG on Discord
    (once per ISO week), and publish the backlog as the table artifact ``ideas-backlog``.
    ``post_digest``: false = no digest. ``now``: empty = the real clock. ``charter_ideas``:
    first file the charter's budget ideas not yet in the backlog (the deployments do; R-BUDGET)."""
    ctx = context(now)
    seeded = charter_ideas_step(ctx) if charter_ideas else []
    triaged = triage_step(ctx)
    flagged = flag_step(ctx)
    with ctx.ledger.read() as session:
        rows = backlog_rows(session, charter=ctx.charter, now=ctx.now)
    digest, failure = None, None
    if post_digest:
        try:
            digest = digest_step(ctx, rows)
        except Exception as exc:  # noqa: BLE001 - shown, then raised: the run fails, a re-run posts it
            failure = exc
            digest = {
                "week": iso_week(ctx.now),
                "posted": False,
                "reason": f"Discord failed ({type(exc).__name__}); run again to post it",
            }
    _artifacts(rows, triaged, flagged, digest)
    if failure is not None:
        raise failure
    return {
        "charter_ideas": seeded,
        "triaged": [t["id"] for t in triaged],
        "duplicates": {t["id"]: t["duplicate_of"] for t in triaged if t["duplicate_of"]},
        "needs_board": [t["id"] for t in triaged if t["needs_board"]],
        "flagged": flagged,
        "digest": digest,
        "backlog": len(rows),
    }
