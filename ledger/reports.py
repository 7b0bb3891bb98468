"""Queries and records of the quarterly report (R-REPORT) and meeting (R-MEET), issue 10.

:func:`gather_facts` reads one quarter's figures from the ledger (pure aggregation is in
``rules.reports``); :func:`private_strings` collects what a public report must not contain
(R-PRIVACY). The report and meeting rows are written here with their audit entries; audit
payloads hold ids, counts and digests, never a name or a text.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledger import audit, budget, safety
from ledger.errors import Conflict, NotFound
from ledger.guides import training_between
from ledger.models import (
    Application,
    AuditEntry,
    Ballot,
    BallotKind,
    BoardDecision,
    Idea,
    IdeaStatus,
    IdeaStatusChange,
    Identity,
    Membership,
    MembershipStatus,
    Person,
    Proposal,
    ProposalStatus,
    Term,
    TermOrigin,
    Vote,
)
from ledger.models_moderation import ModerationAction
from ledger.models_reports import Meeting, Report, ReportStatus
from ledger.moderation import workload
from ledger.repo import jsonable
from rules.reports import PrivateStrings, Quarter, active_series, ideas_in_out, moderation_table, month_ends
from rules.safety import figures, public_figures

__all__ = [
    "approve_report",
    "gather_facts",
    "get_meeting",
    "get_report",
    "mark_published",
    "private_strings",
    "record_meeting_event",
    "record_meeting_reminder",
    "save_draft",
    "upsert_meeting",
]

CLOSED_IDEAS = (IdeaStatus.DONE, IdeaStatus.DECLINED, IdeaStatus.DUPLICATE)
# Role changes a report counts: the platforms' privileged roles (R-MOD, R-ADMIN-*); WG group
# roles follow membership and are counted there.
REPORTED_ROLES = ("moderator", "admin")
SERIES_MONTHS = 12


def _day(at: datetime | None) -> str | None:
    return at.strftime("%Y-%m-%d") if at is not None else None


def _ideas(session: Session, q: Quarter) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    done_rows = session.execute(
        select(Idea, IdeaStatusChange.changed_at)
        .join(IdeaStatusChange, IdeaStatusChange.idea_id == Idea.id)
        .where(
            IdeaStatusChange.to_status == IdeaStatus.DONE,
            IdeaStatusChange.changed_at >= q.start,
            IdeaStatusChange.changed_at < q.end,
        )
        .order_by(IdeaStatusChange.changed_at, Idea.id)
    ).all()
    done: dict[int, dict[str, Any]] = {}
    for idea, at in done_rows:
        done[idea.id] = {
            "id": idea.id,
            "title": idea.title,
            "platform": idea.platform,
            "url": idea.source_url,
            "done_on": _day(at),
        }
    created = session.scalars(select(Idea.created_at).where(Idea.created_at >= q.start, Idea.created_at < q.end)).all()
    closed = session.scalars(
        select(IdeaStatusChange.changed_at).where(
            IdeaStatusChange.to_status.in_(CLOSED_IDEAS),
            IdeaStatusChange.changed_at >= q.start,
            IdeaStatusChange.changed_at < q.end,
        )
    ).all()
    return list(done.values()), ideas_in_out(created, closed, q.months)


def _role_changes(session: Session, q: Quarter) -> list[dict[str, Any]]:
    counts: dict[tuple[str, str], dict[str, int]] = {}
    for payload_json in session.scalars(
        select(AuditEntry.payload_json)
        .where(AuditEntry.action == "platform-role.desired", AuditEntry.at >= q.start, AuditEntry.at < q.end)
        .order_by(AuditEntry.seq)
    ):
        payload = json.loads(payload_json)
        role = str(payload.get("role", ""))
        if role not in REPORTED_ROLES:
            continue
        item = counts.setdefault((str(payload.get("platform")), role), {"granted": 0, "revoked": 0})
        item["granted" if payload.get("desired") else "revoked"] += 1
    return [{"platform": p, "role": r, **c} for (p, r), c in sorted(counts.items())]


def _membership(session: Session, q: Quarter) -> tuple[dict[str, int], list[dict[str, Any]]]:
    firsts = session.execute(
        select(Membership, Term.starts_at).join(Term, Term.membership_id == Membership.id).where(Term.number == 1)
    ).all()
    spans = [(start, m.ended_at) for m, start in firsts]
    joined = sum(1 for _, start in firsts if q.start <= start < q.end)
    renewed = len(
        session.scalars(
            select(Term.id).where(
                Term.origin == TermOrigin.OPT_IN, Term.opted_in_at >= q.start, Term.opted_in_at < q.end
            )
        ).all()
    )
    ended = {s: 0 for s in (MembershipStatus.LAPSED, MembershipStatus.LEFT, MembershipStatus.REMOVED)}
    for m, _ in firsts:
        if m.ended_at is not None and q.start <= m.ended_at < q.end and m.status in ended:
            ended[m.status] += 1
    start_count, end_count = active_series(spans, [q.start, q.end])
    points = month_ends(q.end, SERIES_MONTHS + 1)
    series = [{"at": _day(t), "active": n} for t, n in zip(points, active_series(spans, points), strict=True)]
    return (
        {
            "joined": joined,
            "renewed": renewed,
            "lapsed": ended[MembershipStatus.LAPSED],
            "left": ended[MembershipStatus.LEFT],
            "removed": ended[MembershipStatus.REMOVED],
            "active_start": start_count,
            "active_end": end_count,
        },
        series,
    )


def _escalations(session: Session, q: Quarter) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(Proposal)
        .where(
            Proposal.created_at < q.end,
            Proposal.status.in_([ProposalStatus.ENDORSING, ProposalStatus.ESCALATED, ProposalStatus.DECIDED]),
            (Proposal.decision.is_(None)) | (Proposal.decision == BoardDecision.NEEDS_INFO),
        )
        .order_by(Proposal.id)
    ).all()
    out = []
    for p in rows:
        since = p.escalated_at or p.created_at
        out.append(
            {
                "id": p.id,
                "kind": p.kind,
                "title": p.title,
                "status": "needs-info" if p.decision == BoardDecision.NEEDS_INFO else p.status.value,
                "since": _day(since),
                "days_open": max(0, (q.end - since).days),
            }
        )
    return out


def gather_facts(session: Session, quarter: Quarter) -> dict[str, Any]:
    """The quarter's figures, JSON-ready (see ``ledger/models_reports.py``): ideas done (title,
    platform, link), ideas in and out per month, counted moderator/admin role changes, the
    membership counts and the active members at each month start of the last year, the
    moderation workload per platform and month, the proposals still waiting for the Board
    (status as it is now), and the budget requests with their spending (``budgets``, Board
    report only; absent when there is none)."""
    done, flow = _ideas(session, quarter)
    membership, series = _membership(session, quarter)
    facts: dict[str, Any] = jsonable(
        {
            "quarter": quarter.label,
            "months": list(quarter.months),
            "ideas_done": done,
            "ideas_flow": flow,
            "role_changes": _role_changes(session, quarter),
            "membership": membership,
            "membership_series": series,
            "moderation": moderation_table(workload(session, quarter.start, quarter.end), quarter.months),
            "escalations": _escalations(session, quarter),
            **_budgets(session, quarter),
            **_training(session, quarter),
            **_safety(session, quarter),
        }
    )
    return facts


def _training(session: Session, q: Quarter) -> dict[str, Any]:
    """R-GUIDE: the community training sessions held in the quarter (guide, title, day, the
    platforms it was on). No key when there is none (earlier reports keep their digest)."""
    rows = [
        {"guide": r.slug, "title": r.title, "on": _day(r.starts_at), "platforms": sorted(r.events or {})}
        for r in training_between(session, q.start, q.end)
    ]
    return {"training": rows} if rows else {}


def _safety(session: Session, q: Quarter) -> dict[str, Any]:
    """R-SAFE-3: the community reports made in the quarter, counts and response times per
    platform, never names (``public``: the counts the public report shows). No key at all when
    there is none (earlier reports keep their digest)."""
    rows = safety.times(session, start=q.start, end=q.end)
    if not rows:
        return {}
    found = figures(rows)
    return {"safety": {"public": public_figures(found), "platforms": found["platforms"]}}


def _budgets(session: Session, q: Quarter) -> dict[str, Any]:
    """R-BUDGET, for the Board's report only: each budget request filed before the quarter's end
    and not closed before its start, as it stood at the quarter's end, and the totals per
    currency. No key at all when there is none (earlier reports keep their digest)."""
    rows = budget.request_rows(session, until=q.end, since=q.start)
    return {"budgets": {"requests": rows, "totals": budget.summary(rows)}} if rows else {}


def _names_of(session: Session, person_ids: set[int]) -> set[str]:
    names: set[str] = set()
    if not person_ids:
        return names
    names.update(h for h in session.scalars(select(Person.handle).where(Person.id.in_(person_ids))) if h)
    names.update(u for u in session.scalars(select(Identity.username).where(Identity.person_id.in_(person_ids))) if u)
    names.update(n for n in session.scalars(select(Person.display_name).where(Person.id.in_(person_ids))) if n)
    return names


def private_strings(session: Session, quarter: Quarter) -> PrivateStrings:
    """What no public output of ``quarter`` may hold (R-PRIVACY): every stored applicant answer
    up to the quarter's end; the voters and subjects of removal ballots open during the
    quarter (handles, names, platform usernames); the people moderators acted on in it."""
    answers = []
    for motivation, experience in session.execute(
        select(Application.motivation, Application.experience).where(Application.submitted_at < quarter.end)
    ):
        answers += [a for a in (motivation, experience) if a and a.strip()]
    ballots = session.scalars(
        select(Ballot).where(
            Ballot.kind == BallotKind.REMOVAL,
            Ballot.opens_at < quarter.end,
            (Ballot.closed_at.is_(None)) | (Ballot.closed_at >= quarter.start),
        )
    ).all()
    voters = (
        set(session.scalars(select(Vote.voter_person_id).where(Vote.ballot_id.in_([b.id for b in ballots]))))
        if ballots
        else set()
    )
    subjects = {b.subject_person_id for b in ballots if b.subject_person_id is not None}
    targets: set[str] = set()
    target_people: set[int] = set()
    for username, person_id in session.execute(
        select(ModerationAction.target_username, ModerationAction.target_person_id).where(
            ModerationAction.occurred_at >= quarter.start, ModerationAction.occurred_at < quarter.end
        )
    ):
        if username:
            targets.add(username)
        if person_id is not None:
            target_people.add(person_id)
    targets |= _names_of(session, target_people)
    return PrivateStrings(
        answers=tuple(answers),
        removal_voters=tuple(sorted(_names_of(session, voters))),
        removal_subjects=tuple(sorted(_names_of(session, subjects))),
        moderation_targets=tuple(sorted(targets)),
    )


# --------------------------------------------------------------------------------------------
# Report rows


def get_report(session: Session, quarter: str) -> Report | None:
    """The report row of ``quarter`` (``2026Q3``), if drafted."""
    return session.scalar(select(Report).where(Report.quarter == quarter))


def save_draft(
    session: Session, *, quarter: str, facts: dict[str, Any], digest: str, actor: str, at: datetime
) -> Report:
    """Store (or refresh) the draft of ``quarter``. A report already approved or published
    keeps what was approved: it is returned unchanged."""
    row = get_report(session, quarter)
    if row is not None and row.status != ReportStatus.DRAFT:
        return row
    if row is not None and row.digest == digest:
        return row
    if row is None:
        row = Report(quarter=quarter, status=ReportStatus.DRAFT, facts=facts, digest=digest, drafted_at=at)
        session.add(row)
    else:
        row.facts, row.digest, row.drafted_at = facts, digest, at
    session.flush()
    audit.append(
        session,
        actor=actor,
        action="report.drafted",
        subject=f"report:{row.id}",
        payload={"quarter": quarter, "digest": digest},
        at=at,
    )
    return row


def approve_report(session: Session, *, quarter: str, person_id: int, source: str, actor: str, at: datetime) -> Report:
    """Record a member's approval of the draft (once; ``Conflict`` if it was approved before,
    ``NotFound`` if there is no draft)."""
    row = get_report(session, quarter)
    if row is None:
        raise NotFound(f"report {quarter} has no draft")
    if row.status != ReportStatus.DRAFT:
        raise Conflict(f"report {quarter} is already {row.status.value}")
    row.status, row.approved_by_person_id, row.approved_at, row.approval_source = (
        ReportStatus.APPROVED,
        person_id,
        at,
        source,
    )
    session.flush()
    audit.append(
        session,
        actor=actor,
        action="report.approved",
        subject=f"report:{row.id}",
        payload={"quarter": quarter, "digest": row.digest, "by": f"person:{person_id}", "source": source},
        at=at,
    )
    return row


def mark_published(session: Session, *, quarter: str, refs: dict[str, Any], actor: str, at: datetime) -> Report:
    """Record that every output of the approved report was posted (``refs``: platform ids)."""
    row = get_report(session, quarter)
    if row is None or row.status == ReportStatus.DRAFT:
        raise Conflict(f"report {quarter} is not approved")
    if row.status == ReportStatus.PUBLISHED:
        return row
    row.status, row.published_at = ReportStatus.PUBLISHED, at
    session.flush()
    audit.append(
        session,
        actor=actor,
        action="report.published",
        subject=f"report:{row.id}",
        payload={"quarter": quarter, "refs": jsonable(refs)},
        at=at,
    )
    return row


def record_refused_approval(
    session: Session, *, quarter: str, person_id: int | None, reason_code: str, actor: str, at: datetime
) -> None:
    """Audit a refused approval (not a member, no draft…): ids and a code only."""
    row = get_report(session, quarter)
    audit.append(
        session,
        actor=actor,
        action="report.approval-refused",
        subject=f"report:{row.id}" if row else f"quarter:{quarter}",
        payload={"quarter": quarter, "by": f"person:{person_id}" if person_id else None, "reason": reason_code},
        at=at,
    )


# --------------------------------------------------------------------------------------------
# Meeting rows


def get_meeting(session: Session, starts_at: datetime) -> Meeting | None:
    """The meeting starting at ``starts_at``, if recorded."""
    return session.scalar(select(Meeting).where(Meeting.starts_at == starts_at))


def upsert_meeting(
    session: Session, *, starts_at: datetime, ends_at: datetime, platform: str, title: str, actor: str, at: datetime
) -> Meeting:
    """The meeting row of ``starts_at``, created (and audited) the first time."""
    row = get_meeting(session, starts_at)
    if row is not None:
        return row
    row = Meeting(starts_at=starts_at, ends_at=ends_at, platform=platform, title=title, created_at=at)
    session.add(row)
    session.flush()
    audit.append(
        session,
        actor=actor,
        action="meeting.planned",
        subject=f"meeting:{row.id}",
        payload={"starts_at": jsonable(starts_at), "ends_at": jsonable(ends_at), "platform": platform},
        at=at,
    )
    return row


def record_meeting_event(session: Session, meeting: Meeting, *, event_id: str, actor: str, at: datetime) -> Meeting:
    """The platform event of the meeting exists (``event_id``)."""
    if meeting.event_id == event_id:
        return meeting
    meeting.event_id, meeting.event_created_at = event_id, at
    session.flush()
    audit.append(
        session,
        actor=actor,
        action="meeting.event-created",
        subject=f"meeting:{meeting.id}",
        payload={"event": event_id},
        at=at,
    )
    return meeting


def record_meeting_reminder(session: Session, meeting: Meeting, *, actor: str, at: datetime) -> Meeting:
    """The members were reminded of the meeting."""
    if meeting.reminded_at is not None:
        return meeting
    meeting.reminded_at = at
    session.flush()
    audit.append(
        session,
        actor=actor,
        action="meeting.reminded",
        subject=f"meeting:{meeting.id}",
        payload={"starts_at": jsonable(meeting.starts_at)},
        at=at,
    )
    return meeting
