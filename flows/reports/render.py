"""The quarterly report's three texts, rendered from a quarter's facts (``ledger.reports.
gather_facts``) with the templates in ``flows/templates/reports/``. Pure: no ledger, no network.

- the public Forum post (Markdown; the charts are images whose addresses the caller gives: the
  Discourse uploads when publishing, file names for a local draft);
- the Discord announcement: one message within Discord's 2000 characters (the list of done ideas
  is shortened to fit, pointing to the Forum post for the rest);
- the private Board report for Slack: Block Kit within Slack's limits (50 blocks, 3000
  characters per section), built with ``connectors.slack.blocks``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from connectors.slack.blocks import MAX_SECTION_TEXT, SlackMessage, escape, fit_blocks, link, truncate
from flows.presentation import DISCORD_MESSAGE_LIMIT as MESSAGE_LIMIT
from flows.presentation import templates as _env
from rules.reports import Quarter, is_empty

__all__ = [
    "CHARTS",
    "ReportTexts",
    "facts_digest",
    "platform_name",
    "render_meeting_reminder",
    "render_approval_request",
    "render_report",
]

CHARTS = ("membership", "moderation", "ideas")
PLATFORM_NAMES = {"discourse": "Forum", "discord": "Discord", "slack": "Slack"}
_SECTION = "\n%%\n"

_env.filters.setdefault("esc", escape)  # Slack mrkdwn escaping for board.mrkdwn.j2


def platform_name(platform: str | None) -> str:
    """How a report names a platform."""
    return PLATFORM_NAMES.get(str(platform), str(platform or "all platforms"))


def facts_digest(facts: Mapping[str, Any]) -> str:
    """The draft's identity: the SHA-256 of the facts' canonical JSON (the texts are a pure
    function of the facts, so the same digest means the same report)."""
    text = json.dumps(facts, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True, kw_only=True)
class ReportTexts:
    """The three outputs of one quarter."""

    forum_title: str
    forum: str
    discord: str
    board: SlackMessage

    @property
    def public(self) -> dict[str, str]:
        """The public texts by name (what the privacy check scans)."""
        return {"forum": f"{self.forum_title}\n{self.forum}", "discord": self.discord}

    def board_json(self) -> str:
        """The Slack message as stable JSON (golden files, the CLI's ``board.json``)."""
        return json.dumps(self.board.payload(), indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def _values(facts: Mapping[str, Any]) -> dict[str, Any]:
    q = Quarter.parse(str(facts["quarter"]))
    moderation = list(facts.get("moderation") or [])
    flow = list(facts.get("ideas_flow") or [])
    roles = list(facts.get("role_changes") or [])
    return {
        "q": q,
        "m": dict(facts["membership"]),
        "ideas_done": list(facts.get("ideas_done") or []),
        "role_changes": roles,
        "moderation": moderation,
        "moderation_total": sum(int(p["total"]) for p in moderation),
        "escalations": list(facts.get("escalations") or []),
        "ideas_in": sum(int(r["in"]) for r in flow),
        "ideas_out": sum(int(r["out"]) for r in flow),
        "roles_granted": sum(int(r["granted"]) for r in roles),
        "roles_revoked": sum(int(r["revoked"]) for r in roles),
        "budgets": list((facts.get("budgets") or {}).get("requests") or []),
        "budget_totals": dict((facts.get("budgets") or {}).get("totals") or {}),
        "training": list(facts.get("training") or []),
        "public_empty": not (facts.get("ideas_done") or roles),
        "empty": is_empty(facts),
        "platform_name": platform_name,
        "link": link,
        "safety": dict(facts.get("safety") or {}),  # R-SAFE-3; public texts show its counts only
    }


def _moderation_grid(facts: Mapping[str, Any]) -> str:
    months = list(facts.get("months") or [])
    rows = [["platform", *months, "total"]]
    for p in facts.get("moderation") or []:
        rows.append([platform_name(p["platform"]), *(str(p["months"].get(m, 0)) for m in months), str(p["total"])])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))).rstrip()
        for r in rows
    )


def _discord(values: dict[str, Any], forum_url: str | None) -> str:
    ideas = values["ideas_done"]
    for shown in range(len(ideas), -1, -1):
        text = (
            _env.get_template("reports/discord.md.j2")
            .render(**values, shown=ideas[:shown], hidden=len(ideas) - shown, forum_url=forum_url)
            .strip()
        )
        if len(text) <= MESSAGE_LIMIT:
            return text
    # Only the fixed lines are left; a very long Forum link is the last thing to go.
    return text[: MESSAGE_LIMIT - 1] + "…"


def _board(
    values: dict[str, Any], facts: Mapping[str, Any], forum_url: str | None, audit_head: str | None = None
) -> SlackMessage:
    text = (
        _env.get_template("reports/board.mrkdwn.j2")
        .render(**values, moderation_grid=_moderation_grid(facts), forum_url=forum_url)
        .strip()
    )
    title, _, body = text.partition("\n")
    sections = [s.strip() for s in body.split(_SECTION.strip()) if s.strip()]
    head = [{"type": "header", "text": {"type": "plain_text", "text": title.strip()[:150], "emoji": True}}]
    blocks = []
    for section in sections:
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": truncate(section, MAX_SECTION_TEXT, more_url=forum_url)},
            }
        )
        blocks.append({"type": "divider"})
    fallback = f"{title.strip()}: " + (
        "nothing this quarter"
        if values["empty"]
        else f"{len(values['ideas_done'])} ideas done, "
        f"{values['m']['active_end']} members, "
        f"{values['moderation_total']} moderation actions, "
        f"{len(values['escalations'])} open escalations"
    )
    # The ledger's audit head, witnessed outside the ledger: `audit verify --expect-head`.
    tail = (
        [{"type": "context", "elements": [{"type": "mrkdwn", "text": f"audit head: {escape(audit_head)}"}]}]
        if audit_head
        else []
    )
    return SlackMessage(
        text=truncate(fallback, 3000), blocks=fit_blocks(head, blocks[:-1], tail, more_url=forum_url, noun="sections")
    )


def render_report(
    facts: Mapping[str, Any],
    *,
    charts: Mapping[str, str],
    forum_url: str | None = None,
    idea_hint: str | None = None,
    audit_head: str | None = None,
) -> ReportTexts:
    """The three texts of ``facts``. ``charts`` maps each of :data:`CHARTS` to an image address;
    ``forum_url`` is the published Forum post (None in a draft); ``audit_head`` (``<seq> <hash
    prefix>``) is shown in the Board's report as a witness of the ledger's audit chain."""
    values = _values(facts)
    missing = [c for c in CHARTS if not charts.get(c)]
    if missing:
        raise ValueError(f"charts: no address for {', '.join(missing)}")
    forum = _env.get_template("reports/forum.md.j2").render(**values, charts=dict(charts), idea_hint=idea_hint).strip()
    title, _, body = forum.partition("\n")
    return ReportTexts(
        forum_title=title.strip(),
        forum=body.strip() + "\n",
        discord=_discord(values, forum_url),
        board=_board(values, facts, forum_url, audit_head),
    )


def _split(text: str) -> tuple[str, str]:
    title, _, body = text.strip().partition("\n")
    return title.strip(), body.strip()


def render_meeting_reminder(**values: Any) -> tuple[str, str]:
    """Title and body of the meeting reminder (``meeting_reminder.md.j2``)."""
    return _split(_env.get_template("reports/meeting_reminder.md.j2").render(**values))


def render_approval_request(**values: Any) -> tuple[str, str]:
    """Title and body of the message asking the WG to approve a draft."""
    return _split(_env.get_template("reports/approval_request.md.j2").render(**values))
