"""The community report queue (issue 22): writes and reads shared by the safety flows, the CLI,
the quarterly report and privacy. The decisions (who may claim, which outcome) are the rules'
(``rules.safety``); this module records them. Every write adds an audit entry holding
references, states and outcomes only, never a name, a reason or the reported content
(R-RECORD, R-PRIVACY-3)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from ledger import audit
from ledger.errors import NotFound
from ledger.models_safety import SafetyReport
from rules.safety import ReportTimes

# The fields a new report may be given (everything else is the queue's own).
REPORT_FIELDS = (
    "via",
    "platform",
    "reporter_key",
    "reporter_person_id",
    "reporter_account",
    "reporter_username",
    "target_kind",
    "target_person_id",
    "target_account",
    "target_username",
    "target_message_id",
    "target_channel_id",
    "target_link",
    "content",
    "content_gone",
    "reason",
    "coc",
)


def subject(report_id: int) -> str:
    """The report's reference in the audit log and effect keys."""
    return f"safety-report:{report_id}"


def get(session: Session, report_id: int) -> SafetyReport:
    """The report ``report_id``; ``NotFound`` otherwise."""
    report = session.get(SafetyReport, report_id)
    if report is None:
        raise NotFound(f"no report {report_id}")
    return report


def create(
    session: Session, *, source_key: str, at: datetime, actor: str, fields: Mapping[str, Any]
) -> tuple[SafetyReport, bool]:
    """The report of ``source_key`` (a delivery's dedupe key): made now, or the one a previous
    delivery made (returns whether this call made it)."""
    found = session.scalar(select(SafetyReport).where(SafetyReport.source_key == source_key))
    if found is not None:
        return found, False
    unknown = set(fields) - set(REPORT_FIELDS)
    if unknown:
        raise ValueError(f"unknown report fields: {', '.join(sorted(unknown))}")
    report = SafetyReport(
        source_key=source_key,
        state="open",
        created_at=at,
        updated_at=at,
        **{"content_gone": False, "coc": False, **fields},
    )
    session.add(report)
    session.flush()
    audit.append(
        session,
        actor=actor,
        action="safety.reported",
        subject=subject(report.id),
        at=at,
        payload={
            "via": report.via,
            "platform": report.platform,
            "target_kind": report.target_kind,
            "coc": report.coc,
            "content_gone": report.content_gone,
        },
    )
    return report, True


def recent_times(session: Session, reporter_key: str, *, since: datetime) -> list[datetime]:
    """When ``reporter_key`` made the reports taken since ``since`` (the rate limit reads them)."""
    return list(
        session.scalars(
            select(SafetyReport.created_at).where(
                SafetyReport.reporter_key == reporter_key, SafetyReport.created_at >= since
            )
        )
    )


def note_refused(session: Session, *, reporter_key: str, via: str, why: str, at: datetime, actor: str) -> None:
    """Note a refused report (a burst, R-SAFE-1): an audit entry with a digest of the reporter's
    key (never the key: it may hold an account id), so moderators see a burst happened."""
    audit.append(
        session,
        actor=actor,
        action="safety.report_refused",
        subject="safety-report",
        payload={"via": via, "why": why, "reporter": audit.content_digest(reporter_key)},
        at=at,
    )


def claim(session: Session, report_id: int, *, by: str, at: datetime, actor: str) -> SafetyReport:
    """Record a moderator's claim (the caller checked ``rules.safety.can_claim``)."""
    report = get(session, report_id)
    report.state, report.claimed_by, report.claimed_at = "claimed", by, at
    report.first_response_at = report.first_response_at or at
    report.updated_at = at
    audit.append(
        session,
        actor=actor,
        action="safety.claimed",
        subject=subject(report_id),
        at=at,
        payload={"state": "claimed", "ruling": "R-SAFE-1"},
    )
    return report


def resolve(session: Session, report_id: int, *, outcome: str, by: str, at: datetime, actor: str) -> SafetyReport:
    """Record a moderator's resolution with ``outcome`` (checked by ``rules.safety.can_resolve``)."""
    report = get(session, report_id)
    report.state, report.outcome, report.resolved_by, report.resolved_at = "resolved", outcome, by, at
    report.first_response_at = report.first_response_at or at
    report.updated_at = at
    audit.append(
        session,
        actor=actor,
        action="safety.resolved",
        subject=subject(report_id),
        at=at,
        payload={"state": "resolved", "outcome": outcome, "ruling": "R-SAFE-1"},
    )
    return report


def refer(session: Session, report_id: int, *, by: str, at: datetime, actor: str) -> SafetyReport:
    """Record the referral of a CoC report to the CoC WG (R-SAFE-2); for the moderators' queue
    it is resolved with the outcome ``referred``."""
    report = get(session, report_id)
    report.coc = True
    report.state, report.outcome, report.referred_by, report.referred_at = "referred", "referred", by, at
    report.first_response_at = report.first_response_at or at
    report.resolved_at = report.resolved_at or at
    report.updated_at = at
    audit.append(
        session,
        actor=actor,
        action="safety.referred",
        subject=subject(report_id),
        at=at,
        payload={"state": "referred", "ruling": "R-SAFE-2"},
    )
    return report


def record_coc_outcome(session: Session, report_id: int, *, outcome: str, at: datetime, actor: str) -> SafetyReport:
    """Record the CoC WG's outcome of a referred report, as its liaison gave it (R-SAFE-2)."""
    report = get(session, report_id)
    report.coc_outcome, report.coc_outcome_at, report.updated_at = outcome, at, at
    audit.append(
        session,
        actor=actor,
        action="safety.coc_outcome",
        subject=subject(report_id),
        at=at,
        payload={"ruling": "R-SAFE-2", "outcome": audit.content_digest(outcome)},
    )
    return report


def mark_reminded(session: Session, report_id: int, *, at: datetime, actor: str) -> None:
    """Note that the moderators were reminded of an unclaimed report."""
    report = get(session, report_id)
    report.reminded_at = at
    audit.append(
        session,
        actor=actor,
        action="safety.reminded",
        subject=subject(report_id),
        at=at,
        payload={"state": report.state},
    )


def open_reports(session: Session) -> list[SafetyReport]:
    """The reports nobody claimed yet, oldest first."""
    return list(session.scalars(select(SafetyReport).where(SafetyReport.state == "open").order_by(SafetyReport.id)))


def queue(session: Session, *, states: tuple[str, ...] | None = None) -> list[SafetyReport]:
    """The reports in ``states`` (all when ``None``), oldest first."""
    query = select(SafetyReport).order_by(SafetyReport.id)
    if states:
        query = query.where(SafetyReport.state.in_(states))
    return list(session.scalars(query))


def times(session: Session, *, start: datetime | None = None, end: datetime | None = None) -> list[ReportTimes]:
    """What the figures read of the reports made in ``[start, end)`` (no names, R-SAFE-3)."""
    query = select(
        SafetyReport.platform,
        SafetyReport.created_at,
        SafetyReport.first_response_at,
        SafetyReport.resolved_at,
        SafetyReport.outcome,
    )
    if start is not None:
        query = query.where(SafetyReport.created_at >= start)
    if end is not None:
        query = query.where(SafetyReport.created_at < end)
    return [
        ReportTimes(platform=p, created_at=c, first_response_at=f, resolved_at=r, outcome=o)
        for p, c, f, r, o in session.execute(query)
    ]


def facts(report: SafetyReport) -> dict[str, Any]:
    """A report as the flows' templates and the CLI show it."""
    return {
        "id": report.id,
        "via": report.via,
        "platform": report.platform,
        "target_kind": report.target_kind,
        "target_username": report.target_username,
        "target_link": report.target_link,
        "content": report.content,
        "content_gone": report.content_gone,
        "reason": report.reason,
        "coc": report.coc,
        "state": report.state,
        "outcome": report.outcome,
        "claimed_by": report.claimed_by,
        "resolved_by": report.resolved_by,
        "reporter_username": report.reporter_username,
        "created_at": report.created_at.strftime("%Y-%m-%d %H:%M UTC"),
    }


# --- privacy (R-PRIVACY-2) ------------------------------------------------------------------


def _about(pid: int, accounts: set[tuple[str, str]]) -> Any:
    ids = {a for _, a in accounts}
    return or_(
        SafetyReport.reporter_person_id == pid,
        SafetyReport.target_person_id == pid,
        SafetyReport.reporter_account.in_(ids),
        SafetyReport.target_account.in_(ids),
    )


def export_for(session: Session, pid: int, accounts: set[tuple[str, str]]) -> dict[str, list[dict[str, Any]]]:
    """The reports a person made (in full) and those about them (without who reported: R-SAFE-1)."""
    made, about = [], []
    for r in session.scalars(select(SafetyReport).where(_about(pid, accounts)).order_by(SafetyReport.id)):
        mine = (
            r.reporter_person_id == pid
            or (r.platform, r.reporter_account) in accounts
            or (r.via, r.reporter_account) in accounts
        )
        if mine:
            made.append({**facts(r), "reporter_username": r.reporter_username})
        if r.target_person_id == pid or (r.platform, r.target_account) in accounts:
            shown = facts(r)
            shown.pop("reporter_username", None)
            shown.pop("claimed_by", None)
            shown.pop("resolved_by", None)
            about.append(shown)
    return {"made": made, "about": about}


def erase_for(session: Session, pid: int, accounts: set[tuple[str, str]], *, at: datetime) -> int:
    """Erase a person from the reports: as reporter their name and account go (the report stays,
    with its times and outcome, for the figures); as reported, their name, account, the content
    and the reason go. Returns how many rows changed."""
    changed = 0
    for r in session.scalars(select(SafetyReport).where(_about(pid, accounts))):
        if (
            r.reporter_person_id == pid
            or (r.via, r.reporter_account) in accounts
            or (r.platform, r.reporter_account) in accounts
        ):
            r.reporter_person_id = None
            r.reporter_account = r.reporter_username = None
            r.reporter_key = f"erased-{pid}"
        if r.target_person_id == pid or (r.platform, r.target_account) in accounts:
            r.target_person_id = None
            r.target_account = r.target_username = r.target_link = None
            r.content = r.reason = None
        r.updated_at = at
        changed += 1
    return changed


def window(now: datetime, minutes: int) -> datetime:
    """The start of the rate limit's window ending ``now``."""
    return now - timedelta(minutes=minutes)
