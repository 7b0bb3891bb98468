"""Community reports (issue 22): the report queue's states and outcomes, who may move a report,
the intake rate limit, the unclaimed-report reminder, the least data a CoC referral carries, and
the safety figures. Pure: ``now`` is always a parameter.

- R-SAFE-1: one queue; a report is ``open`` -> ``claimed`` -> ``resolved`` (or ``referred``), each
  step once; only a moderator claims or resolves; the reporter is told it was handled, never the
  outcome; the reported person never learns who reported.
- R-SAFE-2: a CoC report goes only to the CoC Liaison with the least data needed
  (:func:`referral_facts`); other moderators see only that it was referred.
- R-SAFE-3: figures are counts and response times, never names (:func:`figures`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from rules.decision import Decision

__all__ = [
    "OUTCOMES",
    "STATES",
    "TARGET_KINDS",
    "Safety",
    "can_claim",
    "can_record_coc_outcome",
    "can_refer",
    "can_resolve",
    "figures",
    "intake_allowed",
    "liaison_receives",
    "percentile",
    "referral_facts",
    "reminder_due",
    "public_figures",
]

STATES = ("open", "claimed", "resolved", "referred")
# "referred" is both an outcome and a state: a report handed to the CoC WG leaves the moderators.
OUTCOMES = ("no_action", "warned", "removed_content", "sanctioned", "referred")
OUTCOME_LABELS = {
    "no_action": "No action",
    "warned": "Warned",
    "removed_content": "Removed content",
    "sanctioned": "Sanctioned",
    "referred": "Referred",
}
TARGET_KINDS = ("message", "post", "person")


class Safety(BaseModel):
    """The charter's ``[safety]`` section (all optional; the defaults are the DSF OCWG's)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    remind_unclaimed_hours: int = Field(default=24, gt=0, le=24 * 14)
    # A burst: more than this many reports from one account (or one address) in the window.
    max_reports_per_window: int = Field(default=5, gt=0, le=1000)
    window_minutes: int = Field(default=60, gt=0, le=24 * 60)
    # The longest report text kept (a form field, a flag's message).
    max_text_chars: int = Field(default=4000, gt=0, le=20000)


def intake_allowed(*, recent: Sequence[datetime], now: datetime, safety: Safety) -> Decision:
    """R-SAFE-1: whether one more report from the same account (or address) is taken now, given
    the times of its reports already taken. A refused burst is noted by the caller."""
    since = now - timedelta(minutes=safety.window_minutes)
    count = sum(1 for at in recent if at >= since)
    allowed = count < safety.max_reports_per_window
    return Decision(
        allowed=allowed,
        ruling="R-SAFE-1",
        reason=(
            "report taken"
            if allowed
            else f"more than {safety.max_reports_per_window} reports in "
            f"{safety.window_minutes} minutes from one reporter"
        ),
        evidence={"recent": count, "limit": safety.max_reports_per_window, "window_minutes": safety.window_minutes},
    )


def _moderator_refusal(is_moderator: bool, is_subject: bool = False) -> Decision | None:
    if not is_moderator:
        return Decision(allowed=False, ruling="R-SAFE-1", reason="only moderators handle reports")
    if is_subject:  # R-SAFE-1: a moderator who is the reported person does not judge their own case
        return _subject_refusal("R-SAFE-1", "you are the reported person; another moderator handles it")
    return None


def _subject_refusal(ruling: str, reason: str) -> Decision:
    """Refused because who would act or receive is the reported person (R-SAFE-1)."""
    return Decision(allowed=False, ruling=ruling, reason=reason, evidence={"subject": True})


def can_claim(*, state: str, is_moderator: bool, is_subject: bool = False) -> Decision:
    """R-SAFE-1: a moderator claims an open report; a second claim changes nothing. The reported
    person (``is_subject``), moderator or not, never handles their own report."""
    refused = _moderator_refusal(is_moderator, is_subject)
    if refused:
        return refused
    if state != "open":
        return Decision(
            allowed=False, ruling="R-SAFE-1", reason=f"the report is already {state}", evidence={"state": state}
        )
    return Decision(allowed=True, ruling="R-SAFE-1", reason="claimed", evidence={"state": state})


def can_resolve(*, state: str, outcome: str, is_moderator: bool, is_subject: bool = False) -> Decision:
    """R-SAFE-1: a moderator resolves an open or claimed report with one of :data:`OUTCOMES`
    (``referred`` goes through :func:`can_refer`); never the reported person (``is_subject``)."""
    refused = _moderator_refusal(is_moderator, is_subject)
    if refused:
        return refused
    if outcome not in OUTCOMES or outcome == "referred":
        return Decision(allowed=False, ruling="R-SAFE-1", reason=f"unknown outcome {outcome!r}")
    if state not in ("open", "claimed"):
        return Decision(
            allowed=False, ruling="R-SAFE-1", reason=f"the report is already {state}", evidence={"state": state}
        )
    return Decision(
        allowed=True, ruling="R-SAFE-1", reason=f"resolved: {outcome}", evidence={"state": state, "outcome": outcome}
    )


def can_refer(*, state: str, is_moderator: bool, by_reporter: bool = False, is_subject: bool = False) -> Decision:
    """R-SAFE-2: a report marked CoC (by its reporter at intake, or a moderator later) while it
    is not yet resolved goes to the CoC WG; a moderator who is the reported person does not
    move it (R-SAFE-1)."""
    if not by_reporter:
        refused = _moderator_refusal(is_moderator, is_subject)
        if refused:
            return refused
    if state not in ("open", "claimed"):
        return Decision(
            allowed=False, ruling="R-SAFE-2", reason=f"the report is already {state}", evidence={"state": state}
        )
    return Decision(allowed=True, ruling="R-SAFE-2", reason="referred to the CoC WG", evidence={"state": state})


def can_record_coc_outcome(*, state: str, is_liaison: bool, is_subject: bool = False) -> Decision:
    """R-SAFE-2: only the CoC Liaison records the CoC WG's outcome of a referred report, and not
    of a report about themselves (``is_subject``)."""
    if not is_liaison:
        return Decision(allowed=False, ruling="R-SAFE-2", reason="only the CoC Liaison records the CoC WG's outcome")
    if is_subject:
        return _subject_refusal(
            "R-SAFE-2", "the CoC Liaison is the reported person; the CoC WG records its outcome otherwise"
        )
    if state != "referred":
        return Decision(allowed=False, ruling="R-SAFE-2", reason=f"the report is {state}, not referred")
    return Decision(allowed=True, ruling="R-SAFE-2", reason="CoC WG outcome recorded")


def liaison_receives(*, liaison_known: bool, liaison_is_subject: bool) -> Decision:
    """R-SAFE-2: whether a CoC referral goes to the CoC Liaison. Not when the liaison is the
    reported person: the referral names the reporter and quotes the report (R-SAFE-1: the
    reported person never learns who reported); it goes to the CoC WG's own address only."""
    if not liaison_known:
        return Decision(allowed=False, ruling="R-SAFE-2", reason="no CoC Liaison is known")
    if liaison_is_subject:
        return _subject_refusal("R-SAFE-2", "the CoC Liaison is the reported person")
    return Decision(allowed=True, ruling="R-SAFE-2", reason="to the CoC Liaison")


def reminder_due(
    *, state: str, created_at: datetime, reminded_at: datetime | None, now: datetime, safety: Safety
) -> bool:
    """R-SAFE-1: an unclaimed report is reminded every ``remind_unclaimed_hours``."""
    if state != "open":
        return False
    every = timedelta(hours=safety.remind_unclaimed_hours)
    return now - (reminded_at or created_at) >= every


# The fields a CoC referral carries (R-SAFE-2): what the CoC WG needs to act, nothing more (no
# moderators' notes, no other reports, no account ids beyond the platform's).
_REFERRAL_FIELDS = (
    "id",
    "platform",
    "target_kind",
    "target_username",
    "target_link",
    "content",
    "reason",
    "created_at",
)


def referral_facts(report: Mapping[str, Any]) -> dict[str, Any]:
    """R-SAFE-2: the least data a CoC referral carries, from a report's facts. The reporter is
    named only as a way to reach them back (their handle), never their account ids."""
    out = {k: report.get(k) for k in _REFERRAL_FIELDS}
    out["reporter"] = report.get("reporter_username") or "anonymous (web form)"
    return out


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) of ``values`` by linear interpolation; ``None`` for no values."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


@dataclass(frozen=True, kw_only=True)
class ReportTimes:
    """What the figures read of one report (no names: R-SAFE-3)."""

    platform: str
    created_at: datetime
    first_response_at: datetime | None
    resolved_at: datetime | None
    outcome: str | None


def figures(
    reports: Iterable[ReportTimes], *, start: datetime | None = None, end: datetime | None = None
) -> dict[str, Any]:
    """R-SAFE-3: per platform and overall, the count, counts by outcome, and the median and p90
    hours to first response and to resolution, of the reports made in ``[start, end)``."""

    def hours(a: datetime, b: datetime | None) -> float | None:
        return None if b is None else round((b - a).total_seconds() / 3600, 2)

    groups: dict[str, list[ReportTimes]] = {}
    for r in reports:
        if (start and r.created_at < start) or (end and r.created_at >= end):
            continue
        groups.setdefault(r.platform, []).append(r)
        groups.setdefault("all", []).append(r)

    def one(items: list[ReportTimes]) -> dict[str, Any]:
        first = [h for h in (hours(r.created_at, r.first_response_at) for r in items) if h is not None]
        done = [h for h in (hours(r.created_at, r.resolved_at) for r in items) if h is not None]
        outcomes = {o: 0 for o in OUTCOMES}
        for r in items:
            if r.outcome in outcomes:
                outcomes[r.outcome] += 1
        return {
            "reports": len(items),
            "open": sum(1 for r in items if r.resolved_at is None),
            "outcomes": outcomes,
            "first_response_hours": {"median": percentile(first, 0.5), "p90": percentile(first, 0.9)},
            "resolution_hours": {"median": percentile(done, 0.5), "p90": percentile(done, 0.9)},
        }

    out = {name: one(items) for name, items in sorted(groups.items()) if name != "all"}
    out["all"] = one(groups.get("all", []))
    return {"ruling": "R-SAFE-3", "platforms": out}


def public_figures(full: Mapping[str, Any]) -> dict[str, Any]:
    """R-SAFE-3 in the public report: counts only (reports and outcomes), no times per platform."""
    every = full["platforms"]["all"]
    return {"ruling": "R-SAFE-3", "reports": every["reports"], "outcomes": dict(every["outcomes"])}
