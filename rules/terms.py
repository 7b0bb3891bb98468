"""Terms: R-TERM-1 (one year from approval) and R-TERM-2 (opt-in window, reminders, grace)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from rules.charter import Charter
from rules.decision import CodedDecision, Decision

TermStatus = Literal["active", "opt-in-open", "grace", "lapsed", "renewed"]


@dataclass(frozen=True, kw_only=True)
class TermWindow:
    """The dates of one term: it ends at ``end``; opt-in is open from ``opt_in_opens`` until
    ``grace_ends`` inclusive; after ``grace_ends`` without opt-in, membership lapses."""

    start: datetime
    end: datetime
    opt_in_opens: datetime
    grace_ends: datetime


def term_window(start: datetime, *, charter: Charter) -> TermWindow:
    """The window of a term starting at ``start`` (R-TERM-1, R-TERM-2)."""
    t = charter.terms
    end = start + timedelta(days=t.length_days)
    return TermWindow(
        start=start,
        end=end,
        opt_in_opens=end - timedelta(days=t.opt_in_opens_days_before_end),
        grace_ends=end + timedelta(days=t.grace_days),
    )


def next_term(start: datetime, *, charter: Charter) -> TermWindow:
    """The term an opt-in starts: from the old end date, no gap and no overlap (R-TERM-2)."""
    return term_window(term_window(start, charter=charter).end, charter=charter)


def check_opt_in(start: datetime, *, at: datetime, charter: Charter) -> Decision:
    """May a member whose term started at ``start`` opt in at ``at``? Open from 30 days before
    the end through the last moment of the grace period (R-TERM-2)."""
    w = term_window(start, charter=charter)
    evidence = {
        "term_end": w.end.isoformat(),
        "opt_in_opens": w.opt_in_opens.isoformat(),
        "grace_ends": w.grace_ends.isoformat(),
    }
    if at < w.opt_in_opens:
        return Decision(
            allowed=False,
            ruling="R-TERM-2",
            evidence=evidence,
            reason=f"opt-in opens on {w.opt_in_opens.date().isoformat()}, "
            f"{charter.terms.opt_in_opens_days_before_end} days before the "
            "term ends",
        )
    if at > w.grace_ends:
        return Decision(
            allowed=False,
            ruling="R-TERM-2",
            evidence=evidence,
            reason=f"the grace period ended on {w.grace_ends.date().isoformat()}: "
            "the membership has lapsed; apply again to rejoin",
        )
    renewed = next_term(start, charter=charter)
    return Decision(
        allowed=True,
        ruling="R-TERM-2",
        evidence={**evidence, "new_term_end": renewed.end.isoformat()},
        reason=f"opt-in accepted: the new term runs from {w.end.date().isoformat()} "
        f"to {renewed.end.date().isoformat()}",
    )


def term_status(
    start: datetime,
    *,
    now: datetime,
    opted_in: bool,
    opted_in_at: datetime | None = None,
    charter: Charter,
) -> tuple[TermStatus, Decision]:
    """Where a term stands at ``now``. An opt-in made outside its window (``opted_in_at``) does
    not count; without ``opted_in_at`` an opt-in is taken to have been made in time."""
    w = term_window(start, charter=charter)
    evidence = {
        "term_start": w.start.isoformat(),
        "term_end": w.end.isoformat(),
        "opt_in_opens": w.opt_in_opens.isoformat(),
        "grace_ends": w.grace_ends.isoformat(),
    }
    if opted_in:
        if opted_in_at is not None:
            valid = check_opt_in(start, at=opted_in_at, charter=charter)
            if not valid.allowed:
                status, decision = term_status(start, now=now, opted_in=False, charter=charter)
                return status, Decision(
                    allowed=decision.allowed,
                    ruling="R-TERM-2",
                    evidence=decision.evidence,
                    reason=f"the opt-in at {opted_in_at.isoformat()} does not count "
                    f"({valid.reason}); {decision.reason}",
                )
        renewed = next_term(start, charter=charter)
        return "renewed", Decision(
            allowed=True,
            ruling="R-TERM-2",
            evidence={**evidence, "new_term_end": renewed.end.isoformat()},
            reason=f"opted in: a new term runs from {w.end.date().isoformat()} to "
            f"{renewed.end.date().isoformat()} with no gap",
        )
    if now < w.opt_in_opens:
        return "active", Decision(
            allowed=True,
            ruling="R-TERM-1",
            evidence=evidence,
            reason=f"the term runs until {w.end.date().isoformat()}; opt-in opens on "
            f"{w.opt_in_opens.date().isoformat()}",
        )
    if now < w.end:
        return "opt-in-open", Decision(
            allowed=True,
            ruling="R-TERM-2",
            evidence=evidence,
            reason=f"the term ends on {w.end.date().isoformat()}; opt in to stay a member",
        )
    if now <= w.grace_ends:
        return "grace", Decision(
            allowed=True,
            ruling="R-TERM-2",
            evidence=evidence,
            reason=f"the term ended on {w.end.date().isoformat()}; opting in until "
            f"{w.grace_ends.isoformat()} keeps the membership",
        )
    return "lapsed", Decision(
        allowed=False,
        ruling="R-TERM-2",
        evidence=evidence,
        reason=f"no opt-in by the end of the grace period ({w.grace_ends.isoformat()}): the "
        "membership lapsed and its roles are revoked",
    )


def reminders(start: datetime, *, charter: Charter) -> tuple[tuple[int, datetime], ...]:
    """The opt-in reminders of a term as (days before the end, when), earliest first."""
    end = term_window(start, charter=charter).end
    days = sorted(set(charter.terms.reminder_days_before_end), reverse=True)
    return tuple((d, end - timedelta(days=d)) for d in days)


def reminders_due(
    start: datetime,
    *,
    now: datetime,
    already_sent: set[int] | frozenset[int] = frozenset(),
    charter: Charter,
) -> tuple[int, ...]:
    """Reminders (by days before the end) whose time has come and that were not sent yet; a
    late run sends only the latest one due, so a member is not sent three at once."""
    w = term_window(start, charter=charter)
    if now > w.end:
        return ()
    due = [d for d, when in reminders(start, charter=charter) if when <= now]
    if not due:
        return ()
    latest = min(due)
    if any(sent <= latest for sent in already_sent):
        return ()
    return (latest,)


@dataclass(frozen=True, kw_only=True)
class OptInRequest:
    """Who asks to opt in: the member a reminder's link was made for (None: no link, an
    ``/optin`` command), and the member whose platform account sent it (None: not a member's
    account, or a web page, which does not say)."""

    link_for: int | None = None
    sent_by: int | None = None
    sender_known: bool = False


def check_opt_in_sender(request: OptInRequest) -> CodedDecision:
    """R-TERM-2: a reminder's link opts in the member it was sent to, pressed on a platform only
    by that member; a command opts in the member who sent it. Allowed: ``evidence["person"]``
    is the member who opts in."""
    if request.link_for is not None:
        if request.sender_known and request.sent_by != request.link_for:
            return CodedDecision(
                allowed=False,
                ruling="R-TERM-2",
                code="not-link-owner",
                reason="only the member the reminder was sent to can opt in with it",
            )
        person = request.link_for
    elif request.sent_by is None:
        return CodedDecision(
            allowed=False, ruling="R-TERM-2", code="not-a-member", reason="this account is not a member's"
        )
    else:
        person = request.sent_by
    return CodedDecision(
        allowed=True,
        ruling="R-TERM-2",
        code="member",
        reason=f"person:{person} asks to opt in",
        evidence={"person": person},
    )


def decide_opt_in(
    latest_start: datetime | None, *, at: datetime, charter: Charter, renewed: bool = False
) -> CodedDecision:
    """R-TERM-2 for a member whose latest term started at ``latest_start`` (None: no active
    membership; ``renewed``: that term was started by an opt-in): ``renew`` in the window
    (``check_opt_in``), ``already`` when the latest term is the one an opt-in in this window
    started (the coming term, or the new one an opt-in during the grace period started at the
    old end), refused otherwise."""
    if latest_start is None:
        return CodedDecision(
            allowed=False,
            ruling="R-TERM-2",
            code="not-a-member",
            reason="only an active member can opt in; apply again to rejoin",
        )
    # The previous term's opt-in window lasts until the end of its grace period.
    in_previous_window = renewed and at <= latest_start + timedelta(days=charter.terms.grace_days)
    if latest_start > at or in_previous_window:
        return CodedDecision(
            allowed=True, ruling="R-TERM-2", code="already", reason="opted in already for the coming term"
        )
    window = check_opt_in(latest_start, at=at, charter=charter)
    return CodedDecision(
        allowed=window.allowed,
        ruling=window.ruling,
        reason=window.reason,
        evidence=window.evidence,
        code="renew" if window.allowed else "closed",
    )


def term_started(*, start: datetime, end: datetime, first: bool) -> Decision:
    """What a new term records: the first (R-TERM-1, at onboarding) or a renewed one (R-TERM-2)."""
    if first:
        return Decision(allowed=True, ruling="R-TERM-1", reason=f"first term {start.date()} to {end.date()}")
    return Decision(allowed=True, ruling="R-TERM-2", reason=f"new term {start.date()} to {end.date()}")
