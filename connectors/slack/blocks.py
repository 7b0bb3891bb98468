"""Pure Block Kit builders: Board escalations, decision updates, quarterly reports, plain posts.

No I/O and no clock here: every builder returns a ``SlackMessage`` (fallback ``text`` plus
``blocks``) that the connector sends. Slack's limits are enforced by truncating, never by failing
(https://api.slack.com/reference/block-kit/blocks):

- at most 50 blocks per message, and at most ``MAX_BLOCKS_TEXT`` characters of text in all its
  blocks: the end of a long message's body is replaced by one section saying how much was left
  out, with a link to the full text; the decision buttons are always kept;
- at most 3000 characters per section text (2000 per field, 150 per header): longer text is cut
  at a word boundary, never inside a ``<link|label>`` or an ``&amp;`` entity, and ends with
  "… <url|Read the full text>" (or "… (truncated)" when there is no URL).

Text that people wrote is escaped (``&``, ``<``, ``>``) as Slack requires
(https://api.slack.com/reference/surfaces/formatting#escaping); Slack's own mrkdwn (``*bold*``,
``_italic_``) in it is left as written.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

__all__ = [
    "ACTION_IDS",
    "BOARD_ACTION_PREFIX",
    "BOARD_BLOCK_PREFIX",
    "BoardDecision",
    "BoardEscalation",
    "Endorsement",
    "Link",
    "MAX_BLOCKS",
    "MAX_BLOCKS_TEXT",
    "MAX_FIELD_TEXT",
    "MAX_HEADER_TEXT",
    "MAX_SECTION_TEXT",
    "MAX_TEXT",
    "ReportSection",
    "SlackMessage",
    "blocks_text_length",
    "board_escalation",
    "decision_update",
    "escape",
    "fit_blocks",
    "link",
    "not_allowed_reply",
    "plain_message",
    "quarterly_report",
    "slack_date",
    "truncate",
]

MAX_BLOCKS = 50
# Slack refuses a message whose blocks hold too much text in all with ``msg_blocks_too_long``,
# each block within its limits or not: about 12,000 characters, undocumented but for markdown
# blocks (https://github.com/slackapi/bolt-js/issues/2509, refused at 11,341 in #2867). Kept well below.
MAX_BLOCKS_TEXT = 10_000
MAX_SECTION_TEXT = 3000
MAX_FIELD_TEXT = 2000
MAX_FIELDS = 10
MAX_HEADER_TEXT = 150
MAX_CONTEXT_TEXT = 3000
MAX_CONTEXT_ELEMENTS = 10
MAX_BUTTON_TEXT = 75
MAX_BUTTON_VALUE = 2000
MAX_BLOCK_ID = 255
MAX_CONFIRM_TITLE = 100
MAX_CONFIRM_TEXT = 300
# The top-level ``text`` (notification and screen-reader fallback). Slack truncates at 40,000
# characters and recommends staying under 4,000 (https://api.slack.com/methods/chat.postMessage#truncating).
MAX_TEXT = 3000

BOARD_ACTION_PREFIX = "board_"
BOARD_BLOCK_PREFIX = "board_decision:"
_PROPOSAL_ID = re.compile(r"^[A-Za-z0-9_.:\-]{1,200}$")
ELLIPSIS = "…"


# --------------------------------------------------------------------------------------------
# Text helpers


def escape(text: str) -> str:
    """Escape ``&``, ``<`` and ``>`` so Slack shows them instead of parsing them."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _safe_url(url: str) -> str:
    # Inside <url|label> a "|" or ">" would end the URL early.
    return str(url).strip().replace(" ", "%20").replace("|", "%7C").replace("<", "%3C").replace(">", "%3E")


def link(url: str, label: str) -> str:
    """A mrkdwn link ``<url|label>``; the label is escaped."""
    return f"<{_safe_url(url)}|{escape(label).replace('|', '¦')}>"


def _cut_point(text: str, limit: int) -> int:
    """Where to cut ``text`` to keep at most ``limit`` characters without breaking markup."""
    cut = max(0, limit)
    head = text[:cut]
    # Not inside a <link|label> or <@U123> ...
    opened = head.rfind("<")
    if opened > head.rfind(">"):
        cut = opened
        head = text[:cut]
    # ... nor inside an &amp; entity.
    amp = head.rfind("&")
    if amp != -1 and ";" not in head[amp:] and cut - amp <= 6:
        cut = amp
        head = text[:cut]
    # Prefer a word boundary close to the limit.
    space = max(head.rfind(" "), head.rfind("\n"))
    if space > 0 and cut - space <= 80:
        cut = space
    return cut


def truncate(text: str, limit: int, *, more_url: str | None = None, label: str = "Read the full text") -> str:
    """``text`` if it fits in ``limit`` characters, else its start plus "… <more_url|label>".

    Never returns more than ``limit`` characters; never cuts inside a link or an entity.
    """
    text = str(text)
    if len(text) <= limit:
        return text
    suffix = f"{ELLIPSIS} {link(more_url, label)}" if more_url else f"{ELLIPSIS} (truncated)"
    if len(suffix) + 1 > limit:
        suffix = ELLIPSIS
    room = limit - len(suffix) - 1  # the space before the suffix
    cut = _cut_point(text, room) if room > 0 else 0
    head = text[:cut].rstrip()
    return f"{head} {suffix}" if head else suffix


def _plain(text: str, limit: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + ELLIPSIS


def slack_date(moment: datetime, *, fmt: str = "{date_short_pretty} at {time}") -> str:
    """A date Slack shows in each reader's own time zone, with a UTC fallback text.

    https://api.slack.com/reference/surfaces/formatting#date-formatting
    """
    if moment.tzinfo is None:
        raise ValueError("slack_date needs a timezone-aware datetime")
    utc = moment.astimezone(UTC)
    fallback = utc.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(utc.timestamp())}^{fmt}|{fallback}>"


# --------------------------------------------------------------------------------------------
# Block helpers


def blocks_text_length(blocks: Iterable[Any]) -> int:
    """The characters of every ``text`` string in ``blocks`` (what ``MAX_BLOCKS_TEXT`` bounds)."""

    def count(node: Any) -> int:
        if isinstance(node, Mapping):
            return sum(len(v) if k == "text" and isinstance(v, str) else count(v) for k, v in node.items())
        return sum(count(v) for v in node) if isinstance(node, (list, tuple)) else 0

    return count(list(blocks))


def _text_obj(text: str, *, mrkdwn: bool = True) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text} if mrkdwn else {"type": "plain_text", "text": text, "emoji": True}


def _header(text: str) -> dict[str, Any]:
    return {"type": "header", "text": _text_obj(_plain(text, MAX_HEADER_TEXT) or "-", mrkdwn=False)}


def _section(text: str, *, more_url: str | None) -> dict[str, Any]:
    return {"type": "section", "text": _text_obj(truncate(text or " ", MAX_SECTION_TEXT, more_url=more_url))}


def _fields(pairs: Sequence[tuple[str, str]], *, more_url: str | None) -> list[dict[str, Any]]:
    """Sections of ``*label*\\nvalue`` fields, at most 10 fields per section."""
    blocks = []
    items = [
        _text_obj(truncate(f"*{escape(label)}*\n{value}", MAX_FIELD_TEXT, more_url=more_url)) for label, value in pairs
    ]
    for start in range(0, len(items), MAX_FIELDS):
        blocks.append({"type": "section", "fields": items[start : start + MAX_FIELDS]})
    return blocks


def _context(*texts: str) -> dict[str, Any]:
    elements = [_text_obj(truncate(t, MAX_CONTEXT_TEXT)) for t in texts if t][:MAX_CONTEXT_ELEMENTS]
    return {"type": "context", "elements": elements or [_text_obj(" ")]}


@dataclass(frozen=True, kw_only=True)
class SlackMessage:
    """A message ready to send: ``text`` is the notification/accessibility fallback."""

    text: str
    blocks: tuple[Mapping[str, Any], ...] = ()

    def payload(self) -> dict[str, Any]:
        """The ``text`` and ``blocks`` arguments of ``chat.postMessage`` / ``chat.update``."""
        return {"text": self.text, "blocks": [dict(b) for b in self.blocks]}


def fit_blocks(
    head: Sequence[Mapping[str, Any]],
    body: Sequence[Mapping[str, Any]],
    tail: Sequence[Mapping[str, Any]] = (),
    *,
    more_url: str | None = None,
    noun: str = "blocks",
) -> tuple[Mapping[str, Any], ...]:
    """``head + body + tail`` within 50 blocks and ``MAX_BLOCKS_TEXT`` characters of text: when
    too much, the end of ``body`` is replaced by one section saying how many were left out (with a
    link to the full text); ``head`` and ``tail`` (the decision buttons) are always kept."""
    head, body, tail = list(head), list(body), list(tail)
    if len(head) + len(tail) + 1 > MAX_BLOCKS:
        raise ValueError("head and tail alone exceed Slack's 50 blocks")  # a builder bug
    if len(head) + len(body) + len(tail) <= MAX_BLOCKS and blocks_text_length(head + body + tail) <= MAX_BLOCKS_TEXT:
        return tuple(head + body + tail)
    where = f" {link(more_url, 'Read the full text')}" if more_url else ""
    room = MAX_BLOCKS - len(head) - len(tail) - 1
    # the notice's own text is at most ~60 characters besides the link
    left = MAX_BLOCKS_TEXT - blocks_text_length(head + tail) - len(where) - 60
    kept: list[Mapping[str, Any]] = []
    for block in body[:room]:
        left -= blocks_text_length([block])
        if left < 0:
            break
        kept.append(block)
    notice = _section(f"{ELLIPSIS} {len(body) - len(kept)} more {noun} not shown here.{where}", more_url=None)
    return tuple(head + kept + [notice] + tail)


# --------------------------------------------------------------------------------------------
# Board escalations and decisions


class BoardDecision(str, enum.Enum):
    """The Board's three buttons."""

    APPROVE = "approve"
    REJECT = "reject"
    NEEDS_INFO = "needs_info"

    @property
    def label(self) -> str:
        """The button's text."""
        return {"approve": "Approve", "reject": "Reject", "needs_info": "Needs more information"}[self.value]

    @property
    def final(self) -> bool:
        """Approve and Reject close the question; Needs more information keeps it open."""
        return self is not BoardDecision.NEEDS_INFO


ACTION_IDS: dict[BoardDecision, str] = {d: f"{BOARD_ACTION_PREFIX}{d.value}" for d in BoardDecision}


@dataclass(frozen=True, kw_only=True)
class Link:
    """A labelled URL (the proposal's topic, the WG ballot, a quote...)."""

    label: str
    url: str


@dataclass(frozen=True, kw_only=True)
class Endorsement:
    """The working group's endorsement vote on the proposal (R-BOARD: the WG endorses first)."""

    result: str  # e.g. "endorsed", "not endorsed"
    yes: int | None = None
    no: int | None = None
    abstain: int | None = None
    url: str | None = None

    def render(self) -> str:
        """``*endorsed* (5 yes, 1 no, 0 abstain) · ballot`` in mrkdwn."""
        counts = [
            f"{n} {w}" for n, w in ((self.yes, "yes"), (self.no, "no"), (self.abstain, "abstain")) if n is not None
        ]
        out = f"*{escape(self.result)}*" + (f" ({', '.join(counts)})" if counts else "")
        return out + (f" · {link(self.url, 'ballot')}" if self.url else "")


@dataclass(frozen=True, kw_only=True)
class BoardEscalation:
    """What the Board is asked to decide (both ``board_escalation`` and ``decision_update`` take it).

    ``proposal_id`` travels in the buttons (``value``, ``block_id``) and comes back in the click:
    letters, digits and ``_ . : -`` only, at most 200 characters. ``summary`` is the proposal's
    text as people wrote it (escaped here); ``full_text_url`` is where the whole text is read.
    """

    proposal_id: str
    kind: str
    title: str
    summary: str
    endorsement: Endorsement | str
    amount: Decimal | int | float | str | None = None
    currency: str = "USD"
    links: tuple[Link, ...] = ()
    full_text_url: str | None = None
    requested_by: str | None = None
    decide_by: datetime | None = None

    def __post_init__(self) -> None:
        if not _PROPOSAL_ID.match(self.proposal_id or ""):
            raise ValueError("proposal_id must be 1-200 characters of letters, digits and _ . : -")
        if self.decide_by is not None and self.decide_by.tzinfo is None:
            raise ValueError("decide_by must be timezone-aware")


def _amount(escalation: BoardEscalation) -> str | None:
    if escalation.amount is None:
        return "_not stated_" if escalation.kind == "budget" else None
    value = escalation.amount
    if isinstance(value, (int, float, Decimal)):
        number = Decimal(str(value))
        text = f"{number:,.2f}".removesuffix(".00")
    else:
        text = escape(str(value))
    return f"{text} {escape(escalation.currency)}".strip()


def _endorsement_text(escalation: BoardEscalation) -> str:
    e = escalation.endorsement
    return e.render() if isinstance(e, Endorsement) else f"*{escape(e)}*"


def _escalation_body(escalation: BoardEscalation) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    url = escalation.full_text_url
    pairs: list[tuple[str, str]] = [("Kind", escape(escalation.kind)), ("Proposal", f"`{escalation.proposal_id}`")]
    amount = _amount(escalation)
    if amount is not None:
        pairs.append(("Amount", amount))
    pairs.append(("WG endorsement", _endorsement_text(escalation)))
    if escalation.decide_by is not None:
        pairs.append(("Decide by", slack_date(escalation.decide_by, fmt="{date_long}")))
    head = _fields(pairs, more_url=url)
    body: list[dict[str, Any]] = [_section(escape(escalation.summary), more_url=url)]
    links = list(escalation.links)
    if url and not any(lk.url == url for lk in links):
        links.insert(0, Link(label="Full proposal", url=url))
    if links:
        body.append(_section("\n".join(f"• {link(lk.url, lk.label)}" for lk in links), more_url=url))
    return head, body


def _buttons(escalation: BoardEscalation) -> dict[str, Any]:
    pid = escalation.proposal_id
    title = _plain(escalation.title, 120)

    def confirm(decision: BoardDecision) -> dict[str, Any]:
        verb = "approve" if decision is BoardDecision.APPROVE else "reject"
        return {
            "title": _text_obj(_plain(f"{decision.label} this proposal?", MAX_CONFIRM_TITLE), mrkdwn=False),
            "text": _text_obj(truncate(f"You are about to {verb} “{escape(title)}” for the Board.", MAX_CONFIRM_TEXT)),
            "confirm": _text_obj(decision.label, mrkdwn=False),
            "deny": _text_obj("Cancel", mrkdwn=False),
        }

    elements = []
    for decision in BoardDecision:
        button: dict[str, Any] = {
            "type": "button",
            "action_id": ACTION_IDS[decision],
            "text": _text_obj(_plain(decision.label, MAX_BUTTON_TEXT), mrkdwn=False),
            "value": pid,
        }
        if decision is BoardDecision.APPROVE:
            button["style"] = "primary"
        if decision is BoardDecision.REJECT:
            button["style"] = "danger"
        if decision.final:
            button["confirm"] = confirm(decision)
        elements.append(button)
    return {"type": "actions", "block_id": f"{BOARD_BLOCK_PREFIX}{pid}"[:MAX_BLOCK_ID], "elements": elements}


def _fallback(text: str) -> str:
    return truncate(" ".join(text.split()), MAX_TEXT)


def board_escalation(escalation: BoardEscalation) -> SlackMessage:
    """The message asking the Board to decide, with Approve / Reject / Needs more information."""
    head = [_header(f"Board decision needed: {escalation.title}"), *_escalation_body(escalation)[0]]
    body = _escalation_body(escalation)[1]
    context_bits = [f"Proposal `{escalation.proposal_id}`", "sent by charterflow for the Online Community WG"]
    if escalation.requested_by:
        context_bits.insert(0, f"Escalated by {escape(escalation.requested_by)}")
    tail = [_context(" · ".join(context_bits)), _buttons(escalation)]
    amount = _amount(escalation)
    endorsement = escalation.endorsement
    text = (
        f"Board decision needed: {escalation.kind} proposal “{escalation.title}”"
        + (f", {amount}" if escalation.amount is not None and amount else "")
        + f". WG endorsement: {endorsement.result if isinstance(endorsement, Endorsement) else endorsement}."
    )
    return SlackMessage(
        text=_fallback(escape(text)), blocks=fit_blocks(head, body, tail, more_url=escalation.full_text_url)
    )


_OUTCOME = {
    BoardDecision.APPROVE: ("✅", "Approved"),
    BoardDecision.REJECT: ("❌", "Rejected"),
    BoardDecision.NEEDS_INFO: ("❓", "More information requested"),
}


def decision_update(
    escalation: BoardEscalation,
    *,
    decision: BoardDecision,
    decided_by: str,
    decided_at: datetime,
    note: str | None = None,
) -> SlackMessage:
    """The escalation message rewritten to show who decided what and when (for ``chat.update``).

    ``decided_by`` is the Slack user id of the Board member. Approve and Reject remove the
    buttons; "Needs more information" keeps them so the Board can still decide later.
    """
    if decided_at.tzinfo is None:
        raise ValueError("decided_at must be timezone-aware")
    emoji, word = _OUTCOME[decision]
    who = f"<@{decided_by}>" if re.match(r"^[UW][A-Z0-9]+$", decided_by or "") else escape(decided_by)
    title = f"{word}: {escalation.title}" if decision.final else f"Board decision needed: {escalation.title}"
    head = [_header(title), *_escalation_body(escalation)[0]]
    body = _escalation_body(escalation)[1]
    outcome = f"{emoji} *{word}* by {who} on {slack_date(decided_at)}"
    if note:
        outcome += f"\n>{escape(' '.join(note.split()))}"
    tail: list[dict[str, Any]] = [
        _section(outcome, more_url=escalation.full_text_url),
        _context(f"Proposal `{escalation.proposal_id}` · sent by charterflow for the Online Community WG"),
    ]
    if not decision.final:
        tail.append(_buttons(escalation))
    at = decided_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    text = f"{word}: {escalation.kind} proposal “{escalation.title}”, by {decided_by} on {at}."
    return SlackMessage(
        text=_fallback(escape(text)), blocks=fit_blocks(head, body, tail, more_url=escalation.full_text_url)
    )


def not_allowed_reply(*, reason: str | None = None) -> dict[str, Any]:
    """The ephemeral "not allowed" answer to a click by someone not on the Board list.

    POST it to the click's ``response_url``: ``ephemeral`` shows it only to that person and
    ``replace_original: false`` leaves the Board message as it is
    (https://api.slack.com/interactivity/handling#message_responses).
    """
    text = "You are not allowed to decide on this proposal: only members of the DSF Board list may."
    if reason:
        text += f" ({escape(reason)})"
    return {"response_type": "ephemeral", "replace_original": False, "text": truncate(text, MAX_TEXT)}


# --------------------------------------------------------------------------------------------
# Quarterly report and plain posts


@dataclass(frozen=True, kw_only=True)
class ReportSection:
    """One part of the report: a bold title and its text (people's text, escaped here)."""

    title: str
    body: str


def quarterly_report(
    *,
    quarter: str,
    summary: str,
    figures: Mapping[str, str | int | float] | Iterable[tuple[str, str | int | float]] = (),
    sections: Sequence[ReportSection] = (),
    full_text_url: str | None = None,
    private: bool = True,
) -> SlackMessage:
    """The quarterly report (R-REPORT) for the Board's channel.

    ``figures`` become fields (10 per section block); each ``ReportSection`` is one section.
    Sections beyond the 50-block limit are left out with a link to the full report.
    """
    pairs = list(figures.items()) if isinstance(figures, Mapping) else list(figures)
    audience = "Private report for the DSF Board" if private else "Public report"
    head = [
        _header(f"Quarterly report: {quarter}"),
        _context(
            f"{audience} · Online Community Working Group"
            + (f" · {link(full_text_url, 'full report')}" if full_text_url else "")
        ),
        _section(escape(summary), more_url=full_text_url),
    ]
    body: list[dict[str, Any]] = _fields([(str(k), escape(str(v))) for k, v in pairs], more_url=full_text_url)
    for part in sections:
        body.append({"type": "divider"})
        body.append(_section(f"*{escape(part.title)}*\n{escape(part.body)}", more_url=full_text_url))
    text = f"Quarterly report {quarter}: {' '.join(summary.split())}"
    return SlackMessage(
        text=_fallback(escape(text)), blocks=fit_blocks(head, body, (), more_url=full_text_url, noun="report blocks")
    )


def plain_message(*, title: str, text: str, more_url: str | None = None) -> SlackMessage:
    """A titled post (what ``Messenger.post``/``direct_message`` send): a header, then the text
    in up to three sections (``MAX_BLOCKS_TEXT``) split at paragraph or line breaks, then truncated."""
    chunks: list[str] = []
    rest = escape(text).strip()
    most = MAX_BLOCKS_TEXT // MAX_SECTION_TEXT
    while rest and len(chunks) < most:
        if len(rest) <= MAX_SECTION_TEXT or len(chunks) == most - 1:
            chunks.append(truncate(rest, MAX_SECTION_TEXT, more_url=more_url))
            break
        window = rest[:MAX_SECTION_TEXT]
        cut = max(window.rfind("\n\n"), window.rfind("\n"))
        if cut < MAX_SECTION_TEXT // 2:
            cut = _cut_point(rest, MAX_SECTION_TEXT)
        cut = cut if cut > 0 else MAX_SECTION_TEXT
        chunks.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    blocks: list[dict[str, Any]] = [_header(title)] if title.strip() else []
    blocks += [_section(c, more_url=more_url) for c in chunks or [" "]]
    fallback = f"{title.strip()}: {text}" if title.strip() else text
    return SlackMessage(text=_fallback(escape(fallback)), blocks=tuple(blocks))
