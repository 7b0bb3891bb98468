"""The community report queue (issue 22): writes and reads shared by the safety flows, the CLI,
the quarterly report and privacy. The decisions (who may claim, which outcome) are the rules'
(``rules.safety``); this module records them. Every write adds an audit entry holding
references, states and outcomes only, never a name, a reason or the reported content
(R-RECORD, R-PRIVACY-3)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from ledger import audit
from ledger.errors import NotFound
from ledger.models import Identity, InboxEvent, Person
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


def note_refused(
    session: Session,
    *,
    reporter_key: str,
    via: str,
    why: str,
    at: datetime,
    actor: str,
    reporter_person_id: int | None = None,
) -> None:
    """Note a refused report (a burst, R-SAFE-1): an audit entry with a digest of the reporter's
    key (never the key: it may hold an account id), so moderators see a burst happened. A
    reporter the ledger knows gets it salted with their salt, which an erasure drops: their
    public account id can then no longer be confirmed against it (R-PRIVACY-2)."""
    person = session.get(Person, reporter_person_id) if reporter_person_id is not None else None
    salt = person.salt if person is not None else None
    audit.append(
        session,
        actor=actor,
        action="safety.report_refused",
        subject="safety-report",
        payload={"via": via, "why": why, "reporter": audit.content_digest(reporter_key, salt=salt)},
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


@dataclass(frozen=True)
class _Who:
    """How a person appears in reports: their ledger id, accounts ``(platform, id)``, usernames
    ``(platform, casefolded name)`` (a web-form report names people only by a typed username,
    R-PRIVACY-2) and every name they may have handled a report under (usernames and handle)."""

    pid: int
    accounts: set[tuple[str, str]]
    usernames: set[tuple[str, str]]
    names: set[str]

    def form_keys(self) -> set[str]:
        # incoming_from_form's reporter_key: form:<platform>:<typed name, casefolded>
        return {f"form:{p}:{at}{n}" for p, n in self.usernames for at in ("", "@")}

    def reported(self, r: SafetyReport) -> bool:
        return (
            r.reporter_person_id == self.pid
            or (r.via, r.reporter_account) in self.accounts
            or (r.platform, r.reporter_account) in self.accounts
            or r.reporter_key in self.form_keys()
        )

    def is_target(self, r: SafetyReport) -> bool:
        return (
            r.target_person_id == self.pid
            or (r.platform, r.target_account) in self.accounts
            or (r.platform, (r.target_username or "").casefold()) in self.usernames
        )

    def query(self) -> Any:
        ids = {a for _, a in self.accounts}
        names = {n for _, n in self.usernames}
        return or_(
            SafetyReport.reporter_person_id == self.pid,
            SafetyReport.target_person_id == self.pid,
            SafetyReport.reporter_account.in_(ids),
            SafetyReport.target_account.in_(ids),
            SafetyReport.reporter_key.in_(self.form_keys()),
            func.lower(SafetyReport.target_username).in_(names),
            *(func.lower(c).in_(self.names) for c in _HANDLERS),
        )


_HANDLERS = (SafetyReport.claimed_by, SafetyReport.resolved_by, SafetyReport.referred_by)


def _who(session: Session, pid: int, accounts: set[tuple[str, str]]) -> _Who:
    usernames = {
        (str(i.platform), i.username.casefold())
        for i in session.scalars(select(Identity).where(Identity.person_id == pid))
        if i.username
    }
    handle = session.scalar(select(Person.handle).where(Person.id == pid))
    names = {n for _, n in usernames} | ({handle.casefold()} if handle else set())
    return _Who(pid=pid, accounts=accounts, usernames=usernames, names=names)


def export_for(session: Session, pid: int, accounts: set[tuple[str, str]]) -> dict[str, list[dict[str, Any]]]:
    """The reports a person made (in full) and those about them (without who reported: R-SAFE-1)."""
    who = _who(session, pid, accounts)
    made, about = [], []
    for r in session.scalars(select(SafetyReport).where(who.query()).order_by(SafetyReport.id)):
        if who.reported(r):
            made.append({**facts(r), "reporter_username": r.reporter_username})
        if who.is_target(r):
            shown = facts(r)
            shown.pop("reporter_username", None)
            shown.pop("claimed_by", None)
            shown.pop("resolved_by", None)
            about.append(shown)
    return {"made": made, "about": about}


def _erase_inbox_copies(session: Session, r: SafetyReport) -> None:
    """The inbound event a report was read from holds the same names and words: it goes too.
    A Forum flag's delivery (route ``safety-flag``) carries its review, keyed by its id."""
    for event in session.scalars(select(InboxEvent).where(InboxEvent.dedupe_key == r.source_key)):
        event.payload, event.raw = {"erased": True}, None
    _, sep, rest = r.source_key.partition(":review:")
    review = rest.split(":", 1)[0] if sep else ""
    if not review:
        return
    for event in session.scalars(select(InboxEvent).where(InboxEvent.route == "safety-flag")):
        data = (event.payload or {}).get("data") or {}
        if str((data.get("reviewable") or {}).get("id")) == review:
            event.payload, event.raw = {"erased": True}, None


def erase_for(session: Session, pid: int, accounts: set[tuple[str, str]], *, at: datetime) -> int:
    """Erase a person from the reports (R-PRIVACY-2): as reporter their name, account and words
    go (the report stays, with its times and outcome, for the figures); as reported, their name,
    account, the content and the reason go; as the moderator who handled it, their name becomes
    ``erased-<id>``; and the inbound event the report was read from is erased with it. Returns
    how many rows changed."""
    who = _who(session, pid, accounts)
    changed = 0
    for r in session.scalars(select(SafetyReport).where(who.query())):
        touched = False
        if who.reported(r):
            r.reporter_person_id = None
            r.reporter_account = r.reporter_username = r.reason = None  # R-PRIVACY-2: their free text
            r.reporter_key = f"erased-{pid}"
            touched = True
        if who.is_target(r):
            r.target_person_id = None
            r.target_account = r.target_username = r.target_link = None
            r.content = r.reason = None
            touched = True
        if touched:
            _erase_inbox_copies(session, r)
        for column in ("claimed_by", "resolved_by", "referred_by"):
            value = getattr(r, column)
            if value and value.casefold() in who.names:
                setattr(r, column, f"erased-{pid}")
                touched = True
        if touched:
            r.updated_at = at
            changed += 1
    return changed


def window(now: datetime, minutes: int) -> datetime:
    """The start of the rate limit's window ending ``now``."""
    return now - timedelta(minutes=minutes)
