"""Quarterly reports (R-REPORT, R-PRIVACY) and meetings (R-MEET) as pure functions.

No I/O and no clock: the ledger gathers the rows, these functions turn them into the figures a
report shows, decide whether a public text leaks a private string, and say which meeting is due
for its event or its reminder at ``now``.
"""

from __future__ import annotations

import calendar
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from rules.decision import CodedDecision, Decision, Finding

__all__ = [
    "MeetingDue",
    "PrivateStrings",
    "Quarter",
    "active_series",
    "add_months",
    "check_privacy",
    "ideas_in_out",
    "is_empty",
    "meeting_due",
    "meeting_starts",
    "month_ends",
    "moderation_table",
]

_QUARTER = re.compile(r"^\s*(\d{4})\s*-?\s*Q([1-4])\s*$", re.IGNORECASE)
MONTH_NAMES = tuple(calendar.month_name)


# --------------------------------------------------------------------------------------------
# Quarters


@dataclass(frozen=True, order=True)
class Quarter:
    """A calendar quarter: ``Quarter(2026, 3)`` is July to September 2026 (UTC)."""

    year: int
    number: int

    @classmethod
    def parse(cls, text: str) -> Quarter:
        """``"2026Q3"`` (also ``2026-Q3``, ``2026q3``); ``ValueError`` naming the field."""
        match = _QUARTER.match(str(text or ""))
        if not match:
            raise ValueError(f"quarter: {str(text)[:20]!r} is not a quarter like 2026Q3")
        year = int(match.group(1))
        if not 2000 <= year <= 2999:
            raise ValueError(f"quarter: year {year} is out of range")
        return cls(year, int(match.group(2)))

    @classmethod
    def of(cls, moment: datetime) -> Quarter:
        """The quarter ``moment`` falls in."""
        moment = moment.astimezone(UTC)
        return cls(moment.year, (moment.month - 1) // 3 + 1)

    @classmethod
    def just_ended(cls, now: datetime) -> Quarter:
        """The last quarter that ended before ``now``."""
        return cls.of(now).previous()

    def previous(self) -> Quarter:
        """The quarter before."""
        return Quarter(self.year - 1, 4) if self.number == 1 else Quarter(self.year, self.number - 1)

    @property
    def label(self) -> str:
        """``2026Q3``: the key used in the ledger, effect keys and button ids."""
        return f"{self.year}Q{self.number}"

    @property
    def title(self) -> str:
        """``Q3 2026 (July to September)``."""
        first = 3 * self.number - 2
        return f"Q{self.number} {self.year} ({MONTH_NAMES[first]} to {MONTH_NAMES[first + 2]})"

    @property
    def start(self) -> datetime:
        """First instant of the quarter (UTC)."""
        return datetime(self.year, 3 * self.number - 2, 1, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        """First instant after the quarter (UTC)."""
        return self.next().start

    def next(self) -> Quarter:
        """The quarter after."""
        return Quarter(self.year + 1, 1) if self.number == 4 else Quarter(self.year, self.number + 1)

    @property
    def months(self) -> tuple[str, ...]:
        """The three months as ``YYYY-MM``."""
        first = 3 * self.number - 2
        return tuple(f"{self.year}-{m:02d}" for m in range(first, first + 3))

    def __str__(self) -> str:
        return self.label


def add_months(moment: datetime, months: int) -> datetime:
    """``moment`` plus ``months`` calendar months, same day and time (the month's last day
    when it is shorter)."""
    index = moment.year * 12 + moment.month - 1 + months
    year, month = divmod(index, 12)
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])
    return moment.replace(year=year, month=month + 1, day=day)


def month_ends(end: datetime, count: int) -> list[datetime]:
    """The ``count`` month boundaries up to ``end`` (a month's first instant), oldest first:
    the moments a membership-over-time series is counted at."""
    return [add_months(end, -i) for i in range(count - 1, -1, -1)]


# --------------------------------------------------------------------------------------------
# Figures


def active_series(spans: Iterable[tuple[datetime, datetime | None]], points: Sequence[datetime]) -> list[int]:
    """How many memberships were active at each point: a span ``(start, end)`` counts at ``t``
    when ``start <= t`` and it had not ended (``end`` None or after ``t``)."""
    spans = list(spans)
    return [sum(1 for start, end in spans if start <= t and (end is None or end > t)) for t in points]


def ideas_in_out(
    created: Iterable[datetime], closed: Iterable[datetime], months: Sequence[str]
) -> list[dict[str, Any]]:
    """Per month (``YYYY-MM``): ideas that came in and ideas that went out (done, declined or
    duplicate)."""
    came = Counter(at.astimezone(UTC).strftime("%Y-%m") for at in created)
    went = Counter(at.astimezone(UTC).strftime("%Y-%m") for at in closed)
    return [{"month": m, "in": came.get(m, 0), "out": went.get(m, 0)} for m in months]


def moderation_table(rows: Iterable[Mapping[str, Any]], months: Sequence[str]) -> list[dict[str, Any]]:
    """``ledger.moderation.workload`` rows summed per platform and month: one row per platform
    with ``months`` (count per month, 0 when none), ``total`` and ``actions`` (count per action)."""
    per: dict[str, dict[str, Any]] = {}
    for row in rows:
        platform, month, count = str(row["platform"]), str(row["month"]), int(row["count"])
        if month not in months:
            continue
        item = per.setdefault(
            platform, {"platform": platform, "months": {m: 0 for m in months}, "total": 0, "actions": {}}
        )
        item["months"][month] += count
        item["total"] += count
        item["actions"][str(row["action"])] = item["actions"].get(str(row["action"]), 0) + count
    return [dict(per[p], actions=dict(sorted(per[p]["actions"].items()))) for p in sorted(per)]


def is_empty(facts: Mapping[str, Any]) -> bool:
    """True when the quarter has nothing to report: no idea done, no role change, nobody joined,
    renewed or left, no moderation action, no open escalation, no community report (R-SAFE-3)
    and no budget request to show (R-BUDGET)."""
    membership = facts.get("membership") or {}
    moved = any(int(membership.get(k, 0)) for k in ("joined", "renewed", "lapsed", "left", "removed"))
    return not (
        facts.get("ideas_done")
        or facts.get("role_changes")
        or moved
        or facts.get("moderation")
        or facts.get("escalations")
        or facts.get("safety")
        # A request approved, spent on or rejected in the quarter is not "nothing this quarter".
        or facts.get("budgets")
    )


# --------------------------------------------------------------------------------------------
# Privacy (R-PRIVACY)


@dataclass(frozen=True, kw_only=True)
class PrivateStrings:
    """What a public report must never contain: applicants' answers, the handles of people who
    voted on a removal ballot and of its subject, and the names of people a moderator acted on."""

    answers: tuple[str, ...] = ()
    removal_voters: tuple[str, ...] = ()
    removal_subjects: tuple[str, ...] = ()
    moderation_targets: tuple[str, ...] = ()


_RUN_WORDS = 6  # six words of an answer in a row count as quoting it
_RUN_CHARS = 30  # ... when they are not just short common words


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().casefold()


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.casefold())


def _quotes(answer: str, text_runs: set[tuple[str, ...]], flat: str) -> bool:
    """Whether the text quotes ``answer``: the whole of a short answer, or any run of six
    words of a longer one."""
    words = _words(answer)
    if len(words) < _RUN_WORDS:
        whole = _norm(answer)
        return len(whole) >= 12 and whole in flat
    for i in range(len(words) - _RUN_WORDS + 1):
        run = tuple(words[i : i + _RUN_WORDS])
        if len(" ".join(run)) >= _RUN_CHARS and run in text_runs:
            return True
    return False


def _has_name(text: str, name: str) -> bool:
    # Normalised like the text (R-PRIVACY): a display name "Jo  Smith" is found as "Jo Smith".
    name = _norm(name)
    if len(name) < 2:
        return False
    # A handle counts as a whole word: "ivo" does not match "ivory".
    return re.search(rf"(?<![\w]){re.escape(name)}(?![\w])", text) is not None


def check_privacy(texts: Mapping[str, str], private: PrivateStrings) -> Decision:
    """R-PRIVACY: refuse when any public text (``name → text``) holds a private string.

    The findings say which text and which kind of string, never the string itself (the decision
    ends up in logs and artifacts)."""
    violations: list[Finding] = []
    kinds = (
        ("an applicant's answer", None),
        ("a removal ballot's voter", private.removal_voters),
        ("a removal ballot's subject", private.removal_subjects),
        ("a person a moderator acted on", private.moderation_targets),
    )
    for name, text in texts.items():
        flat = _norm(text)
        words = _words(text)
        runs = {tuple(words[i : i + _RUN_WORDS]) for i in range(len(words) - _RUN_WORDS + 1)}
        leaked = sorted({i for i, a in enumerate(private.answers) if _quotes(a, runs, flat)})
        if leaked:
            violations.append(
                Finding(
                    ruling="R-PRIVACY",
                    subject=name,
                    reason=f"the {name} text holds {kinds[0][0]} ({len(leaked)} answer(s))",
                )
            )
        for label, names in kinds[1:]:
            hits = sorted({n.casefold() for n in names or () if _has_name(flat, n)})
            if hits:
                violations.append(
                    Finding(
                        ruling="R-PRIVACY", subject=name, reason=f"the {name} text names {label} ({len(hits)} name(s))"
                    )
                )
    evidence = {
        "texts": sorted(texts),
        "checked": {
            "answers": len(private.answers),
            "removal_voters": len(private.removal_voters),
            "removal_subjects": len(private.removal_subjects),
            "moderation_targets": len(private.moderation_targets),
        },
    }
    if violations:
        first = violations[0]
        more = f" (and {len(violations) - 1} more)" if len(violations) > 1 else ""
        return Decision(
            allowed=False,
            ruling="R-PRIVACY",
            reason=first.reason + more,
            evidence=evidence,
            violations=tuple(violations),
        )
    return Decision(
        allowed=True,
        ruling="R-PRIVACY",
        reason="the public texts hold no applicant answer, removal vote or sanctioned person's name",
        evidence=evidence,
    )


# --------------------------------------------------------------------------------------------
# Meetings (R-MEET)


def meeting_starts(
    anchor: datetime, every_months: int, *, around: datetime, before: int = 1, after: int = 2
) -> list[datetime]:
    """Meeting starts near ``around``: the ``before`` meetings at or before it and the ``after``
    meetings after it, each ``every_months`` months from ``anchor`` (either direction)."""
    if anchor.tzinfo is None or around.tzinfo is None:
        raise ValueError("anchor and around must be timezone-aware")
    months = (around.year - anchor.year) * 12 + around.month - anchor.month
    k = months // every_months
    # k is close to the index of the last meeting at or before `around`; step to be exact.
    while add_months(anchor, k * every_months) > around:
        k -= 1
    while add_months(anchor, (k + 1) * every_months) <= around:
        k += 1
    return [add_months(anchor, i * every_months) for i in range(k - before + 1, k + after + 1)]


@dataclass(frozen=True, kw_only=True)
class MeetingDue:
    """The next meeting and what is due for it at ``now``: its event (``create``), its
    reminder (``remind``)."""

    starts_at: datetime
    ends_at: datetime
    create: bool
    remind: bool
    create_from: datetime
    remind_from: datetime

    @property
    def decision(self) -> Decision:
        """The same as a decision citing R-MEET."""
        what = [w for w, due in (("create the event", self.create), ("remind the members", self.remind)) if due]
        reason = (
            " and ".join(what) if what else "nothing due yet"
        ) + f" for the meeting of {self.starts_at:%Y-%m-%d %H:%M} UTC"
        return Decision(
            allowed=bool(what),
            ruling="R-MEET",
            reason=reason,
            evidence={"starts_at": self.starts_at, "create_from": self.create_from, "remind_from": self.remind_from},
        )


def meeting_due(
    *,
    anchor: datetime | None,
    every_months: int,
    duration_minutes: int,
    create_days_ahead: int,
    reminder_days_ahead: int,
    now: datetime,
) -> MeetingDue | None:
    """The next meeting after ``now`` (None without an anchor), its start in UTC: its event is
    due from the start of the UTC day ``create_days_ahead`` days before the meeting's day (a
    missed day is caught up by the next run), its reminder from the start of the day
    ``reminder_days_ahead`` days before it; neither once it has started."""
    if anchor is None:
        return None
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    # In UTC: the texts and effect keys print it as UTC (an anchor may carry another offset).
    start = next(s for s in meeting_starts(anchor, every_months, around=now) if s > now).astimezone(UTC)
    # R-MEET "1 day ahead" is a calendar day: the daily run the day before sends it, not the
    # run on the meeting's own day (24 hours before 17:00 is after a 07:00 run).
    day = start.replace(hour=0, minute=0, second=0, microsecond=0)
    remind_from = day - timedelta(days=reminder_days_ahead)
    # The event comes with the reminder at the latest (its link is in it; the flow reminds
    # only once the event is due): a charter reminding earlier than it creates still reminds.
    create_from = min(day - timedelta(days=create_days_ahead), remind_from)
    return MeetingDue(
        starts_at=start,
        ends_at=start + timedelta(minutes=duration_minutes),
        create=now >= create_from,
        remind=now >= remind_from,
        create_from=create_from,
        remind_from=remind_from,
    )


@dataclass(frozen=True, kw_only=True)
class ReportApproval:
    """An approval of quarter ``quarter``'s report: whether the approver is an active member,
    the report's status (None: no draft) and whether the approved text is the stored draft
    (False: the draft was replaced since it was shown)."""

    quarter: str
    member: bool
    status: str | None
    same_draft: bool = True


def check_report_approval(approval: ReportApproval) -> CodedDecision:
    """R-REPORT: one active WG member approves the current draft. Codes: ``approve``,
    ``already`` (approved or published before: nothing to do), or why not: ``not-a-member``,
    ``no-draft``, ``draft-replaced``."""

    def refused(code: str, reason: str) -> CodedDecision:
        return CodedDecision(allowed=False, ruling="R-REPORT", code=code, reason=reason)

    if not approval.member:
        return refused("not-a-member", "only active working group members may approve the quarterly report")
    if approval.status is None:
        return refused("no-draft", f"there is no draft of the {approval.quarter} report to approve")
    if approval.status != "draft":
        return CodedDecision(
            allowed=True,
            ruling="R-REPORT",
            code="already",
            reason=f"the {approval.quarter} report is {approval.status} already",
        )
    if not approval.same_draft:
        return refused("draft-replaced", "this draft was replaced by a newer one; approve the latest")
    return CodedDecision(
        allowed=True,
        ruling="R-REPORT",
        code="approve",
        reason=f"a working group member approves the {approval.quarter} report",
    )


def check_publish(quarter: str, *, status: str | None) -> CodedDecision:
    """R-REPORT: only an approved report (or one published, to finish) is published."""
    if status is None or status == "draft":
        return CodedDecision(
            allowed=False, ruling="R-REPORT", code="not-approved", reason=f"report {quarter} is not approved"
        )
    return CodedDecision(allowed=True, ruling="R-REPORT", code="publish", reason=f"report {quarter} is {status}")
