"""R-PRIVACY-2: export everything held about a person; erase their personal data.

Erasure keeps the decisions (memberships, terms, votes, ballots, role history, eligibility
outcomes) under the person's id and removes what identifies them or what they wrote to us:
display name, handle (replaced by ``erased-<id>``), platform usernames and ids, e-mail,
application answers, the nominator they named, eligibility evidence, raw inbound events linked
to them, their entries on reference lists. It also drops the person's salt, so the salted
hashes in the audit log can no longer be matched against a guess. The audit log is not touched
(it never held personal data) and gains one ``person.erased`` entry: it still verifies.

Someone who is still an active member, or holds a WG or platform role, must leave first
(``PolicyViolation`` R-PRIVACY-2): their accounts are needed to revoke those roles.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, delete, func, inspect, or_, select
from sqlalchemy.orm import Session

from ledger import audit, safety
from ledger.errors import PolicyViolation
from ledger.models import (
    Application,
    ApplicationConfirmation,
    ApplicationStatus,
    AuditEntry,
    Ballot,
    BallotElector,
    BallotStatus,
    EligibilityCheck,
    Erasure,
    Idea,
    IdeaStatusChange,
    Identity,
    InboxEvent,
    Membership,
    MembershipStatus,
    Person,
    PlatformRoleAssignment,
    Proposal,
    ReferenceList,
    Term,
    Vote,
    WgRoleAssignment,
)
from ledger.models_budget import BudgetSpending
from ledger.models_moderation import ModerationAction, ModerationAlert, ModerationLink
from ledger.models_reports import Report
from ledger.models_roles import RoleDriftReport, RoleTraining
from ledger.repo import OPEN_APPLICATION, _log, _now, cancel_ballot, jsonable, set_application_status

EXPORT_FORMAT = 1


def _row(obj: Any) -> dict[str, Any]:
    return {c.key: jsonable(getattr(obj, c.key)) for c in inspect(type(obj)).column_attrs}


def _rows(session: Session, stmt: Any) -> list[dict[str, Any]]:
    return [_row(obj) for obj in session.scalars(stmt)]


def _memberships_export(session: Session, pid: int) -> list[dict[str, Any]]:
    """The person's memberships, each with its terms."""
    memberships = []
    for m in session.scalars(select(Membership).where(Membership.person_id == pid).order_by(Membership.id)):
        memberships.append(
            {**_row(m), "terms": _rows(session, select(Term).where(Term.membership_id == m.id).order_by(Term.number))}
        )
    return memberships


def _applications_export(session: Session, pid: int) -> list[dict[str, Any]]:
    """The person's applications, each with its confirmations and eligibility checks."""
    applications = []
    for a in session.scalars(select(Application).where(Application.person_id == pid).order_by(Application.id)):
        applications.append(
            {
                **_row(a),
                "confirmations": _rows(
                    session, select(ApplicationConfirmation).where(ApplicationConfirmation.application_id == a.id)
                ),
                "eligibility": _rows(
                    session,
                    select(EligibilityCheck)
                    .where(EligibilityCheck.application_id == a.id)
                    .order_by(EligibilityCheck.id),
                ),
            }
        )
    return applications


def export_person(session: Session, person: Person) -> dict[str, Any]:
    """Everything the ledger holds about ``person`` as plain JSON-ready data."""
    pid = person.id

    def rows(stmt: Any) -> list[dict[str, Any]]:
        return [_row(obj) for obj in session.scalars(stmt)]

    memberships = _memberships_export(session, pid)
    applications = _applications_export(session, pid)
    person_row = _row(person)
    person_row.pop("salt", None)  # an internal secret, not data about the person
    refs = [f"person:{pid}"] + [f"application:{a['id']}" for a in applications]
    return {
        "format": EXPORT_FORMAT,
        "person": person_row,
        "identities": rows(select(Identity).where(Identity.person_id == pid).order_by(Identity.id)),
        "memberships": memberships,
        "wg_roles": rows(
            select(WgRoleAssignment).where(WgRoleAssignment.person_id == pid).order_by(WgRoleAssignment.id)
        ),
        "platform_roles": rows(
            select(PlatformRoleAssignment)
            .where(PlatformRoleAssignment.person_id == pid)
            .order_by(PlatformRoleAssignment.id)
        ),
        "applications": applications,
        "nominations_made": rows(
            select(Application).where(Application.nominator_person_id == pid).order_by(Application.id)
        ),
        "ballots_about": rows(select(Ballot).where(Ballot.subject_person_id == pid).order_by(Ballot.id)),
        "ballots_elector_of": [
            r.ballot_id
            for r in session.scalars(
                select(BallotElector).where(BallotElector.person_id == pid).order_by(BallotElector.ballot_id)
            )
        ],
        "votes": rows(select(Vote).where(Vote.voter_person_id == pid).order_by(Vote.id)),
        "proposals": rows(select(Proposal).where(Proposal.proposed_by_person_id == pid).order_by(Proposal.id)),
        "ideas": rows(select(Idea).where(Idea.author_person_id == pid).order_by(Idea.id)),
        "idea_status_changes": rows(
            select(IdeaStatusChange).where(IdeaStatusChange.changed_by == f"person:{pid}").order_by(IdeaStatusChange.id)
        ),
        # R-BUDGET: spending they recorded (kept on erasure: the WG's accounts).
        "budget_spending": rows(
            select(BudgetSpending).where(BudgetSpending.recorded_by_person_id == pid).order_by(BudgetSpending.id)
        ),
        "role_training": [_row(r) for r in session.scalars(_training_of(pid))],
        "reports_approved": [r.quarter for r in session.scalars(_reports_approved_by(pid))],
        "inbox_events": rows(select(InboxEvent).where(InboxEvent.person_id == pid).order_by(InboxEvent.id)),
        "reference_lists": rows(
            select(ReferenceList).where(ReferenceList.handle == person.handle).order_by(ReferenceList.id)
        ),
        "erasures": rows(select(Erasure).where(Erasure.person_id == pid).order_by(Erasure.id)),
        # Community reports they made, and those about them without who reported (R-SAFE-1).
        "safety_reports": _safety_export(session, pid),
        "audit_entries": [
            {k: v for k, v in audit.entry_record(e).items() if not k.startswith("_")}
            for e in session.scalars(
                select(AuditEntry)
                .where(or_(AuditEntry.subject.in_(refs), AuditEntry.actor == f"person:{pid}"))
                .order_by(AuditEntry.seq)
            )
        ],
    }


def personal_values(session: Session, person: Person) -> list[str]:
    """The strings that identify ``person`` or that they wrote to us, as held before an erasure:
    handle, display name, platform usernames and account ids, e-mail, application answers and
    the reasons of moderation actions about them. The orchestration layer's records are
    searched for these when the person is erased (R-PRIVACY-3); longest first."""
    pid = person.id
    found = {person.handle, person.display_name}
    for identity in session.scalars(select(Identity).where(Identity.person_id == pid)):
        found |= {identity.username, identity.external_id}
    for app in session.scalars(select(Application).where(Application.person_id == pid)):
        found |= {app.motivation, app.experience, app.nomination_reason}
    found |= set(session.scalars(select(ModerationAction.reason).where(ModerationAction.target_person_id == pid)))
    # Short strings (an id like "7", a one-word answer) would match unrelated text.
    values = {v.strip() for v in found if v and len(v.strip()) >= 4}
    return sorted(values, key=lambda v: (-len(v), v))


def erase_person(session: Session, person: Person, *, reason: str, actor: str, at: datetime | None = None) -> Erasure:
    """Erase ``person``'s personal data, keep the decisions, record the erasure."""
    at = _now(at)
    if not reason.strip():
        raise ValueError("an erasure needs a reason")
    pid = person.id
    blockers = _erasure_blockers(session, pid)
    if blockers:
        raise PolicyViolation(
            f"person:{pid} still has {', '.join(blockers)}: they must leave "
            "(and their roles be revoked) before erasure",
            ruling="R-PRIVACY-2",
        )
    _close_open_matters(session, pid, actor=actor, at=at)

    counts = {"identities": 0, "applications": 0, "eligibility_checks": 0, "inbox_events": 0, "reference_lists": 0}
    counts["moderation"] = _erase_moderation(session, pid)
    counts["safety_reports"] = _erase_safety(session, pid, at)
    counts["drift_reports"] = _erase_drift_reports(session, person.handle, pid)
    _erase_answers(session, pid, at, counts)
    counts["idea_notes"] = _erase_idea_notes(session, pid)
    deleted = session.execute(delete(ReferenceList).where(ReferenceList.handle == person.handle))
    counts["reference_lists"] = cast("CursorResult[Any]", deleted).rowcount or 0  # a DELETE's result
    person.handle = f"erased-{pid}"
    person.display_name = None
    person.home_platform = None
    person.salt = None
    person.erased_at = person.updated_at = at
    erasure = Erasure(person_id=pid, erased_at=at, erased_by=actor, reason=reason)
    session.add(erasure)
    session.flush()
    _log(
        session,
        actor=actor,
        action="person.erased",
        subject=f"person:{pid}",
        at=at,
        erasure=erasure.id,
        reason=audit.content_digest(reason),
        erased=counts,
    )
    return erasure


def _erasure_blockers(session: Session, pid: int) -> list[str]:
    """What the person still holds that must end before an erasure (R-PRIVACY-2)."""
    blockers = []
    active = session.scalar(
        select(Membership).where(
            Membership.person_id == pid, Membership.ended_at.is_(None), Membership.status == MembershipStatus.ACTIVE
        )
    )
    if active is not None:
        blockers.append(f"an active membership (membership:{active.id})")
    if session.scalar(
        select(WgRoleAssignment.id).where(WgRoleAssignment.person_id == pid, WgRoleAssignment.ends_at.is_(None))
    ):
        blockers.append("a WG role")
    if session.scalar(
        select(PlatformRoleAssignment.id).where(
            PlatformRoleAssignment.person_id == pid,
            or_(PlatformRoleAssignment.desired, PlatformRoleAssignment.observed.is_(True)),
        )
    ):
        blockers.append("a platform role")
    return blockers


def _close_open_matters(session: Session, pid: int, *, actor: str, at: datetime) -> None:
    """Withdraw open applications, cancel open ballots about them, end an applicant's membership."""
    # Close what was still open about them, each step audited like any other.
    for app in session.scalars(
        select(Application).where(Application.person_id == pid, Application.status.in_(OPEN_APPLICATION))
    ):
        set_application_status(session, app, ApplicationStatus.WITHDRAWN, actor=actor, at=at)
    for ballot in session.scalars(
        select(Ballot).where(Ballot.subject_person_id == pid, Ballot.status == BallotStatus.OPEN)
    ):
        cancel_ballot(session, ballot, actor=actor, reason_code="subject-erased", at=at)
    applicant = session.scalar(select(Membership).where(Membership.person_id == pid, Membership.ended_at.is_(None)))
    if applicant is not None:  # an applicant who never became a member
        applicant.status, applicant.ended_at = MembershipStatus.LEFT, at


def _erase_answers(session: Session, pid: int, at: datetime, counts: dict[str, int]) -> None:
    """Clear identities, application answers, eligibility evidence and inbox events; count them."""
    for identity in session.scalars(select(Identity).where(Identity.person_id == pid)):
        identity.external_id = identity.username = identity.username_key = None
        counts["identities"] += 1
    for app in session.scalars(select(Application).where(Application.person_id == pid)):
        app.motivation = app.experience = app.nominator_handle = app.nomination_reason = None
        app.answers_erased_at = at
        counts["applications"] += 1
        for check in session.scalars(select(EligibilityCheck).where(EligibilityCheck.application_id == app.id)):
            check.evidence = {"erased": True}
            counts["eligibility_checks"] += 1
    for event in session.scalars(select(InboxEvent).where(InboxEvent.person_id == pid)):
        event.payload, event.raw = {"erased": True}, None
        counts["inbox_events"] += 1


def _erase_idea_notes(session: Session, pid: int) -> int:
    """Notes they wrote on backlog status changes (the changes themselves are decisions: kept)."""
    erased = 0
    for change in session.scalars(
        select(IdeaStatusChange).where(
            IdeaStatusChange.changed_by == f"person:{pid}", IdeaStatusChange.note.is_not(None)
        )
    ):
        change.note = None
        erased += 1
    return erased


def _erase_moderation(session: Session, pid: int) -> int:
    """Moderation log rows about the person's accounts (issue 13): the action and its platform
    entry id stay (a decision, and the dedupe key); names, reasons and raw entries go."""
    accounts = {
        (i.platform.value if hasattr(i.platform, "value") else str(i.platform), i.external_id)
        for i in session.scalars(select(Identity).where(Identity.person_id == pid))
        if i.external_id
    }
    ids = {account for _, account in accounts}
    changed = 0
    for row in session.scalars(
        select(ModerationAction).where(
            or_(
                ModerationAction.target_person_id == pid,
                ModerationAction.target_platform_id.in_(ids),
                ModerationAction.moderator_platform_id.in_(ids),
            )
        )
    ):
        if row.target_person_id == pid or (row.platform, row.target_platform_id) in accounts:
            row.target_platform_id = row.target_username = row.reason = None
            row.raw = {"erased": True}
        if (row.platform, row.moderator_platform_id) in accounts:
            row.moderator_platform_id = row.moderator_username = None
            row.raw = {"erased": True}
        changed += 1
    for link in session.scalars(
        select(ModerationLink).where(or_(ModerationLink.account_a.in_(ids), ModerationLink.account_b.in_(ids)))
    ):
        link.account_a = link.account_b = f"erased-{pid}"
        link.username_a = link.username_b = None
        changed += 1
    for alert in session.scalars(select(ModerationAlert).where(ModerationAlert.linked_account.in_(ids))):
        alert.linked_account, alert.linked_username = f"erased-{pid}", None
        changed += 1
    return changed + _erase_moderator_names(session, pid)


def _erase_moderator_names(session: Session, pid: int) -> int:
    """A moderator's username on the alerts they acknowledged and the links they decided becomes
    ``erased-<id>``: the decision stays, the name goes (R-PRIVACY-2)."""
    names = {
        i.username.casefold() for i in session.scalars(select(Identity).where(Identity.person_id == pid)) if i.username
    }
    person = session.get(Person, pid)
    names |= {person.handle.casefold()} if person is not None and person.handle else set()
    changed = 0
    for alert in session.scalars(select(ModerationAlert).where(func.lower(ModerationAlert.acknowledged_by).in_(names))):
        alert.acknowledged_by = f"erased-{pid}"
        changed += 1
    for link in session.scalars(select(ModerationLink).where(func.lower(ModerationLink.decided_by).in_(names))):
        link.decided_by = f"erased-{pid}"
        changed += 1
    return changed


def _accounts_of(session: Session, pid: int) -> set[tuple[str, str]]:
    return {
        (i.platform.value if hasattr(i.platform, "value") else str(i.platform), i.external_id)
        for i in session.scalars(select(Identity).where(Identity.person_id == pid))
        if i.external_id
    }


def _safety_export(session: Session, pid: int) -> dict[str, Any]:
    return safety.export_for(session, pid, _accounts_of(session, pid))


def _erase_safety(session: Session, pid: int, at: datetime) -> int:
    """Community reports (issue 22): as reporter or reported, names, accounts and (as reported)
    the content go; the report's times and outcome stay for the figures (R-SAFE-3)."""
    return safety.erase_for(session, pid, _accounts_of(session, pid), at=at)


def _reports_approved_by(pid: int) -> Any:
    return select(Report).where(Report.approved_by_person_id == pid).order_by(Report.id)


def _training_of(pid: int) -> Any:
    return select(RoleTraining).where(RoleTraining.person_id == pid).order_by(RoleTraining.id)


def _erase_drift_reports(session: Session, handle: str, pid: int) -> int:
    """Drift reports (issue 9) name people by handle in their summary: replace it."""
    changed = 0
    needle = json.dumps(handle)[1:-1]
    for report in session.scalars(select(RoleDriftReport)):
        text = json.dumps(report.summary)
        if needle and needle in text:
            report.summary = json.loads(text.replace(needle, f"erased-{pid}"))
            changed += 1
    return changed
