"""The quarterly report (R-REPORT): draft, a member's approval, then publish once.

How the draft and the approval meet (no run waits for a person):

1. ``reports-quarterly`` (scheduled on the first day of each quarter, or an operator with
   ``quarter``) gathers the quarter's facts from the ledger, renders the three texts and the
   charts, checks the public texts against the quarter's private strings (R-PRIVACY: refused
   → the run fails, nothing is stored or posted), stores the draft (table ``reports``: the facts
   and their digest), shows it as a markdown artifact ``report-<quarter>-draft`` (texts and
   charts inline), and posts in the WG's Discord channel one message with an "Approve and
   publish" button (``custom_id`` ``cfr:<quarter>:<digest12>``). The run then ends with status
   ``awaiting-approval``.
2. A member presses the button: the gateway stores the interaction; :func:`handle_report_approval`
   checks the presser is an active WG member (anyone else is refused, audited and told so),
   records the approval (``report.approved``) and runs :func:`publish`. An operator can approve
   instead with the ``reports-approve`` deployment (a member's handle as typed input).
3. :func:`publish` renders the texts again from the stored facts (the approved draft, not newer
   data), re-checks privacy, uploads the charts to the Forum, opens the Forum topic, posts the
   Discord announcement and sends the Board report to Slack, each once (effect keys
   ``report:<quarter>:…``), then records ``report.published``. A crash half-way is finished by
   pressing again, running ``reports-approve`` again, or the next ``reports-quarterly`` run.

A draft made again before approval with changed facts replaces the earlier one; the earlier
button then answers that the draft was replaced.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext, TaskRunContext
from prefect.runtime import flow_run
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import select

from connectors.base import ButtonMessenger, ChannelText, Links, MessageEditor, Messenger, Uploader
from connectors.errors import ConfigError, PolicyViolation
from flows.board.common import current_slack
from flows.kit import Ctx, answer_interaction, context, once, run_name
from flows.privacy import publish_artifact
from flows.reports.charts import data_uri, render_charts
from flows.reports.render import CHARTS, ReportTexts, facts_digest, render_approval_request, render_report
from ledger import audit, repo
from ledger import reports as store
from ledger.models import InboxEvent, MembershipStatus, Person, Platform
from ledger.models_reports import ReportStatus
from rules import Decision
from rules.reports import Quarter, ReportApproval, check_privacy, check_publish, check_report_approval

__all__ = [
    "APPROVE_PREFIX",
    "ReportCtx",
    "ReportSettings",
    "approve",
    "draft",
    "handle_report_approval",
    "publish",
    "reports_approve",
    "reports_quarterly",
]

log = logging.getLogger("charterflow.reports")

ACTOR = "flow:reports"
APPROVE_PREFIX = "cfr:"  # Discord button custom_id: cfr:<quarter>:<first 12 of the digest>
CHART_TITLES = {"membership": "Working group members", "moderation": "Moderation actions", "ideas": "Ideas in and out"}


class ReportSettings(BaseSettings):
    """``CHARTERFLOW_REPORTS_*``: where the public report goes.

    ``FORUM_CATEGORY`` the public Forum category of the report topic (default ``General``);
    ``DISCORD_CHANNEL`` the public Discord channel of the announcement (id or name, default
    ``announcements``); ``SLACK_CHANNEL`` the Board's channel id (default the Slack connector's
    ``CHARTERFLOW_SLACK_BOARD_CHANNEL``)."""

    model_config = SettingsConfigDict(env_prefix="CHARTERFLOW_REPORTS_", env_file=".env", extra="ignore")
    forum_category: str = Field(default="General", description="Public Forum category of the report topic.")
    discord_channel: str = Field(
        default="announcements", description=("Public Discord channel (id or name) of the report announcement.")
    )
    slack_channel: str | None = Field(
        default=None, description=("The Board's Slack channel id (default: CHARTERFLOW_SLACK_BOARD_CHANNEL).")
    )


@dataclass(frozen=True, kw_only=True)
class ReportCtx(Ctx):
    """A flow context plus the Board's Slack connector (None: not configured) and settings."""

    slack: Any = None
    settings: ReportSettings = field(default_factory=ReportSettings)


def report_context(
    now: datetime | None,
    *,
    ledger: Any = None,
    platforms: Any = None,
    slack: Any = None,
    settings: ReportSettings | None = None,
) -> ReportCtx:
    """The context of a report run; Slack from ``flows.board.common.current_slack`` unless
    given (not configured: the Board report is skipped and the run says so)."""
    base = context(now, ledger=ledger, platforms=platforms)
    if slack is None:
        try:
            slack = current_slack()
        except ConfigError as exc:
            log.warning("reports: no Slack for the Board report: %s", exc)
    return ReportCtx(
        ledger=base.ledger, platforms=base.platforms, now=base.now, slack=slack, settings=settings or ReportSettings()
    )


def resolve_quarter(quarter: str | None, now: datetime) -> Quarter:
    """``quarter`` parsed, or the quarter just ended; a quarter not over yet is refused."""
    q = Quarter.parse(quarter) if quarter not in (None, "") else Quarter.just_ended(now)
    if q.end > now:
        raise ValueError(f"quarter: {q.label} has not ended yet (it ends {q.end:%Y-%m-%d})")
    return q


# --------------------------------------------------------------------------------------------
# Draft


@dataclass(frozen=True, kw_only=True)
class Draft:
    """A rendered quarter: its facts, texts, charts and the privacy decision."""

    quarter: Quarter
    facts: dict[str, Any]
    digest: str
    texts: ReportTexts
    charts: dict[str, bytes]
    privacy: Decision
    # when it was drawn: the charts leave out the months after it
    now: datetime | None = None


def chart_files(q: Quarter) -> dict[str, str]:
    """The chart file names of a local draft (``charterflow reports draft``)."""
    return {name: f"{q.label}-{name}.png" for name in CHARTS}


def draft(
    ledger: Any,
    quarter: Quarter,
    *,
    charts: Mapping[str, str] | None = None,
    forum_url: str | None = None,
    facts: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> Draft:
    """Gather (unless ``facts`` are given), render and privacy-check one quarter. Stores
    nothing. ``now``: the charts plot no month after it."""
    with ledger.read() as session:
        if facts is None:
            facts = store.gather_facts(session, quarter)
        private = store.private_strings(session, quarter)
        head = audit.head(session)  # not a fact: the digest names the report, not the moment
    texts = render_report(facts, charts=charts or chart_files(quarter), forum_url=forum_url, audit_head=head.short())
    return Draft(
        quarter=quarter,
        facts=facts,
        digest=facts_digest(facts),
        texts=texts,
        charts=render_charts(facts, now=now),
        privacy=check_privacy(texts.public, private),
        now=now,
    )


def _draft_markdown(d: Draft) -> str:
    inline = render_report(d.facts, charts={n: data_uri(render_charts(d.facts, dpi=60, now=d.now)[n]) for n in CHARTS})
    board = d.texts.board.payload()
    board_text = "\n\n".join(b["text"]["text"] for b in board["blocks"] if b.get("type") == "section")
    return "\n".join(
        [
            f"# Draft: quarterly report {d.quarter.title}",
            "",
            f"Digest `{d.digest[:12]}`. Privacy check: **{'passed' if d.privacy.allowed else 'REFUSED'}**"
            f" ({d.privacy.ruling}: {d.privacy.reason}).",
            "",
            "Nothing is published until a working group member approves it (the Discord button "
            "in the WG channel, or the `reports-approve` deployment).",
            "",
            "## Forum post (public)",
            "",
            f"**{inline.forum_title}**",
            "",
            inline.forum,
            "",
            "## Discord announcement (public)",
            "",
            "```",
            d.texts.discord,
            "```",
            "",
            "## Board report (Slack, private)",
            "",
            "```",
            board_text,
            "```",
        ]
    )


def _artifact(key: str, markdown: str, description: str) -> None:
    if FlowRunContext.get() is None and TaskRunContext.get() is None:
        return

    try:
        publish_artifact(key=key, kind="markdown", content=markdown, description=description[:200])
    except Exception as exc:  # noqa: BLE001 - an artifact is a view, never a reason to fail
        log.warning("reports: artifact %s not created: %s", key, type(exc).__name__)


def _refuse_privacy(d: Draft) -> None:
    _artifact(
        f"report-{d.quarter.label.lower()}-refused",
        "\n".join(
            [
                f"# Report {d.quarter.title} refused (R-PRIVACY)",
                "",
                d.privacy.reason,
                "",
                *(f"- {v.reason}" for v in d.privacy.violations),
                "",
                "Nothing was stored or published. Fix the source (an idea title, a proposal title) and run again.",
            ]
        ),
        f"report {d.quarter.label} refused by R-PRIVACY",
    )
    raise PolicyViolation(f"report {d.quarter.label}: {d.privacy.reason}", ruling=d.privacy.ruling)


def _ask_approval(ctx: ReportCtx, d: Draft, *, artifact_key: str) -> dict[str, Any] | None:
    space = ctx.platforms.space("discord")
    buttons = space.capable(ButtonMessenger) if space else None
    if space is None or buttons is None:
        log.warning("reports: no Discord to ask for approval; use the reports-approve deployment")
        return None

    title, body = render_approval_request(
        q=d.quarter,
        run_name=flow_run.name or "reports-quarterly",
        artifact_key=artifact_key,
        summary=f"{len(d.facts['ideas_done'])} ideas done, "
        f"{d.facts['membership']['active_end']} members, "
        f"{sum(p['total'] for p in d.facts['moderation'])} moderation actions",
    )
    key = f"report:{d.quarter.label}:approval-request:{d.digest[:12]}"

    def act() -> dict[str, Any]:
        ref = buttons.post_with_buttons(
            channel=space.wg_channel,
            text=f"**{title}**\n{body}",
            buttons=[("Approve and publish", f"{APPROVE_PREFIX}{d.quarter.label}:{d.digest[:12]}")],
            key=key,
        )
        return {"id": ref.id, "thread_id": ref.thread_id}

    return once(ctx, key=key, platform="discord", actor=ACTOR, about=f"quarter:{d.quarter.label}", act=act)["ref"]


@task(name="report-draft", cache_policy=NO_CACHE)
def draft_step(ctx: ReportCtx, quarter: Quarter) -> dict[str, Any]:
    """Render, check, store and show the draft; ask the WG for approval."""
    d = draft(ctx.ledger, quarter, now=ctx.now)
    if not d.privacy.allowed:
        _refuse_privacy(d)
    with ctx.ledger.transaction() as session:
        row = store.save_draft(session, quarter=quarter.label, facts=d.facts, digest=d.digest, actor=ACTOR, at=ctx.now)
        status, digest = row.status, row.digest
    if status != ReportStatus.DRAFT:
        return {"quarter": quarter.label, "status": status.value, "digest": digest}
    key = f"report-{quarter.label.lower()}-draft"
    _artifact(key, _draft_markdown(d), f"Draft of the quarterly report {quarter.label}")
    asked = _ask_approval(ctx, d, artifact_key=key)
    return {"quarter": quarter.label, "status": "awaiting-approval", "digest": d.digest, "approval_request": asked}


@flow(name="reports-quarterly", flow_run_name=run_name("report", "quarter"), log_prints=True)
def reports_quarterly(quarter: str = "", now: datetime | None = None) -> dict[str, Any]:
    """Draft the quarterly report of ``quarter`` (``2026Q3``; empty: the quarter just ended)
    and ask the working group to approve it (R-REPORT). An approved report not fully published
    yet is published; a published one is left alone. ``now``: empty = the real clock."""
    ctx = report_context(now)
    q = resolve_quarter(quarter, ctx.now)
    with ctx.ledger.read() as session:
        row = store.get_report(session, q.label)
        status = row.status if row else None
    if status == ReportStatus.PUBLISHED:
        return {"quarter": q.label, "status": "published"}
    if status == ReportStatus.APPROVED:
        return publish(ctx, q)
    return draft_step(ctx, q)


# --------------------------------------------------------------------------------------------
# Approve


class ApprovalRefused(PolicyViolation):
    """An approval that does not count; ``code`` says why."""

    def __init__(self, message: str, *, code: str, ruling: str = "R-REPORT") -> None:
        super().__init__(message, ruling=ruling)
        self.code, self.text = code, message


def approve(
    ctx: Ctx, quarter: Quarter, *, person_id: int | None, source: str, digest12: str | None = None
) -> dict[str, Any]:
    """Record ``person_id``'s approval of the draft (an active WG member only, R-REPORT).
    Returns ``{"status": "approved"}`` or, when someone approved before,
    ``{"status": "already", "by": handle}``; ``ApprovalRefused`` otherwise (audited)."""
    with ctx.ledger.transaction() as session:
        row = store.get_report(session, quarter.label)
        person = session.get(Person, person_id) if person_id is not None else None
        membership = repo.open_membership(session, person) if person else None
        decision = check_report_approval(
            ReportApproval(
                quarter=quarter.label,
                status=row.status.value if row is not None else None,
                member=membership is not None and membership.status == MembershipStatus.ACTIVE,
                same_draft=digest12 is None or row is None or row.digest.startswith(digest12),
            )
        )
        if decision.code == "already" and row is not None:  # already: the row says by whom
            by = session.get(Person, row.approved_by_person_id) if row.approved_by_person_id else None
            return {"status": "already", "by": by.handle if by else "an operator", "report": row.status.value}
        if not decision.allowed:
            store.record_refused_approval(
                session, quarter=quarter.label, person_id=person_id, reason_code=decision.code, actor=ACTOR, at=ctx.now
            )
    if not decision.allowed:
        raise ApprovalRefused(decision.reason, code=decision.code, ruling=decision.ruling)
    assert person_id is not None  # allowed: an active member approves (R-REPORT)
    with ctx.ledger.transaction() as session:
        store.approve_report(
            session, quarter=quarter.label, person_id=int(person_id), source=source, actor=ACTOR, at=ctx.now
        )
    return {"status": "approved"}


# --------------------------------------------------------------------------------------------
# Publish


def _forum_url(space: Any, ref: Mapping[str, Any]) -> str | None:
    if ref.get("url"):
        return str(ref["url"])
    links = space.capable(Links)
    return links.thread_url(str(ref["thread_id"])) if links is not None and ref.get("thread_id") else None


def _stored_facts(ctx: ReportCtx, q: str) -> tuple[dict[str, Any], str]:
    """The approved report's facts and digest; refused (R-REPORT) unless it may be published."""
    with ctx.ledger.read() as session:
        row = store.get_report(session, q)
        allowed = check_publish(q, status=row.status.value if row is not None else None)
        if row is None or not allowed.allowed:  # no row: refused as unknown (R-REPORT)
            raise PolicyViolation(allowed.reason, ruling=allowed.ruling)
        return dict(row.facts), row.digest


def _upload_charts(ctx: ReportCtx, forum: Any, q: str, charts: Mapping[str, bytes]) -> dict[str, str]:
    """Each chart uploaded to the Forum once; name → its URL (empty: the Forum cannot upload)."""
    uploader = forum.capable(Uploader) if forum is not None else None
    if uploader is None:
        return {}
    urls: dict[str, str] = {}
    for name in CHARTS:
        up = once(
            ctx,
            key=f"report:{q}:upload:{name}",
            platform="discourse",
            actor=ACTOR,
            about=f"quarter:{q}",
            act=lambda n=name: {
                k: v
                for k, v in uploader.upload(filename=f"ocwg-report-{q}-{n}.png", content=charts[n]).items()
                if k in ("id", "short_url", "url")
            },
        )
        urls[name] = str(up["ref"].get("short_url") or up["ref"].get("url"))
    return urls


def _post_forum(ctx: ReportCtx, forum: Any, q: str, d: Any, refs: dict[str, Any]) -> str | None:
    """The Forum topic, once; returns its URL."""
    forum_poster = forum.capable(Messenger) if forum is not None else None
    if forum_poster is None:
        return None
    key = f"report:{q}:forum"

    def post_forum() -> dict[str, Any]:
        ref = forum_poster.post(
            channel=ctx.settings.forum_category, title=d.texts.forum_title, text=d.texts.forum, key=key
        )
        return {"id": ref.id, "thread_id": ref.thread_id, "url": ref.url}

    refs["forum"] = once(ctx, key=key, platform="discourse", actor=ACTOR, about=f"quarter:{q}", act=post_forum)["ref"]
    return _forum_url(forum, refs["forum"])


def _post_discord(ctx: ReportCtx, discord: Any, q: str, final: Any, refs: dict[str, Any]) -> None:
    discord_poster = discord.capable(ChannelText) if discord is not None else None
    if discord_poster is None:
        return
    key = f"report:{q}:discord"

    def post_discord() -> dict[str, Any]:
        sent = discord_poster.send_text(channel=ctx.settings.discord_channel, text=final.texts.discord, key=key)
        return {"id": sent[0].id, "thread_id": sent[0].thread_id}

    refs["discord"] = once(ctx, key=key, platform="discord", actor=ACTOR, about=f"quarter:{q}", act=post_discord)["ref"]


def _post_slack(ctx: ReportCtx, q: str, final: Any, refs: dict[str, Any]) -> None:
    if ctx.slack is None:
        return
    key = f"report:{q}:slack"
    channel = ctx.settings.slack_channel or str(ctx.slack.settings.board_channel)
    refs["slack"] = once(
        ctx,
        key=key,
        platform="slack",
        actor=ACTOR,
        about=f"quarter:{q}",
        act=lambda: ctx.slack.send(channel=channel, message=final.texts.board, key=key),
    )["ref"]


def publish(ctx: ReportCtx, quarter: Quarter) -> dict[str, Any]:
    """Post the approved report of ``quarter``: Forum topic with the charts uploaded, Discord
    announcement, Slack Board report; each once. Idempotent; see the module docstring."""
    q = quarter.label
    facts, digest = _stored_facts(ctx, q)
    forum, discord = ctx.platforms.space("discourse"), ctx.platforms.space("discord")
    refs: dict[str, Any] = {}
    chart_urls = _upload_charts(ctx, forum, q, render_charts(facts, now=ctx.now))
    d = draft(ctx.ledger, quarter, facts=facts, charts=chart_urls or chart_files(quarter), now=ctx.now)
    if d.digest != digest:  # a bug, never data: the facts are the stored ones
        raise PolicyViolation(f"report {q}: the stored facts do not match their digest", ruling="R-REPORT")
    if not d.privacy.allowed:
        _refuse_privacy(d)
    forum_url = _post_forum(ctx, forum, q, d, refs)
    final = draft(
        ctx.ledger, quarter, facts=facts, charts=chart_urls or chart_files(quarter), forum_url=forum_url, now=ctx.now
    )
    _post_discord(ctx, discord, q, final, refs)
    _post_slack(ctx, q, final, refs)
    with ctx.ledger.transaction() as session:
        store.mark_published(session, quarter=q, refs=refs, actor=ACTOR, at=ctx.now)
    _close_request(ctx, quarter, digest=digest, forum_url=forum_url)
    _artifact(
        f"report-{q.lower()}-published",
        "\n".join(
            [
                f"# Report {quarter.title} published",
                "",
                *(f"- {k}: `{v.get('id')}`" for k, v in refs.items()),
                "",
                f"Forum: {forum_url or '-'}",
            ]
        ),
        f"report {q} published",
    )
    return {"quarter": q, "status": "published", "forum_url": forum_url, "outputs": sorted(refs)}


def _close_request(ctx: Ctx, quarter: Quarter, *, digest: str, forum_url: str | None) -> None:
    """Take the button off the approval request (best effort: the press is refused anyway)."""
    space = ctx.platforms.space("discord")
    editor = space.capable(MessageEditor) if space else None
    edit = editor.edit_message if editor is not None else None
    with ctx.ledger.read() as session:
        asked = repo.effect_get(session, key=f"report:{quarter.label}:approval-request:{digest[:12]}")
    if edit is None or asked is None:
        return
    try:
        once(
            ctx,
            key=f"report:{quarter.label}:approval-closed",
            platform="discord",
            actor=ACTOR,
            about=f"quarter:{quarter.label}",
            act=lambda: edit(
                channel_id=str(asked["ref"]["thread_id"]),
                message_id=str(asked["ref"]["id"]),
                text=f"**The quarterly report for {quarter.title} was approved "
                f"and published.** {forum_url or ''}".strip(),
            ),
        )
    except Exception as exc:  # noqa: BLE001 - cosmetic
        log.info("reports: approval request not updated (%s)", type(exc).__name__)


# --------------------------------------------------------------------------------------------
# The Discord button and the operator's approval


def handle_report_approval(*, ledger: Any, event: InboxEvent, now: datetime | None = None) -> str:
    """Inbox handler of the ``cfr:<quarter>:<digest12>`` button (route ``reports-approve``).
    Returns ``report:<quarter>:published``, ``report:<quarter>:already`` or
    ``refused:<code>``; the presser gets a private answer."""
    ctx = report_context(now, ledger=ledger)
    with ctx.ledger.read() as session:
        row = session.get_one(InboxEvent, event.id)
        attrs = {str(k): str(v) for k, v in ((row.payload or {}).get("attributes") or {}).items()}
        person = repo.find_person_by_identity(session, platform=Platform.DISCORD, external_id=attrs.get("user_id", ""))
        person_id = person.id if person else None
    custom_id = attrs.get("custom_id", "")
    parts = custom_id.removeprefix(APPROVE_PREFIX).split(":")

    def answer(text: str) -> None:
        answer_interaction(
            ctx,
            key=f"report:answer:inbox:{event.id}",
            actor=ACTOR,
            about=f"inbox:{event.id}",
            attributes=attrs,
            text=text,
        )

    try:
        quarter = Quarter.parse(parts[0])
    except ValueError:
        answer("This button does not name a report.")
        return "refused:bad-button"
    try:
        result = approve(
            ctx,
            quarter,
            person_id=person_id,
            source="discord",
            digest12=parts[1] if len(parts) > 1 and parts[1] else None,
        )
    except ApprovalRefused as exc:
        answer(f"Not approved: {exc.text}.")
        return f"refused:{exc.code}"
    published = publish(ctx, quarter)
    if result["status"] == "already":
        answer(
            f"Already approved by {result['by']}; the report is published"
            + (f": {published['forum_url']}" if published.get("forum_url") else ".")
        )
        return f"report:{quarter.label}:already"
    answer(
        "Thank you: the report is approved and published"
        + (f": {published['forum_url']}" if published.get("forum_url") else ".")
    )
    return f"report:{quarter.label}:published"


@flow(name="reports-approve", flow_run_name="report-approve-{quarter}", log_prints=True)
def reports_approve(quarter: str, approved_by: str, now: datetime | None = None) -> dict[str, Any]:
    """Approve the draft of ``quarter`` on behalf of the member ``approved_by`` (their WG
    handle; they must be an active member) and publish it. Running it again publishes
    whatever is missing and records nothing twice."""
    ctx = report_context(now)
    q = Quarter.parse(quarter)
    handle = (approved_by or "").strip()
    if not handle:
        raise ValueError("approved_by: the approving member's WG handle is required")
    with ctx.ledger.read() as session:
        person_id = session.scalar(select(Person.id).where(Person.handle == handle))
    if person_id is None:
        raise ValueError(f"approved_by: no person with the handle {handle[:80]!r}")
    result = approve(ctx, q, person_id=person_id, source="operator")
    return {**publish(ctx, q), "approval": result["status"]}
