"""Repository functions: the only way flows change the ledger.

Each function takes the ``Session`` of a ``Ledger.transaction()`` and writes its change and its
audit entry (``ledger.audit.append``) in that same transaction: both are committed together or
neither is. Audit payloads carry ids, enum values and salted content hashes, never personal data
(R-PRIVACY-2). Times are parameters (``at``), timezone-aware; they default to now.
Refusals raise (``PolicyViolation`` with the ruling, ``NotFound``, ``Conflict``).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Collection, Iterable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, func, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from ledger import audit
from ledger.errors import Conflict, NotFound, PolicyViolation
from ledger.models import (
    Application,
    ApplicationConfirmation,
    ApplicationStatus,
    AuditEntry,
    Ballot,
    BallotElector,
    BallotKind,
    BallotOutcome,
    BallotStatus,
    BoardDecision,
    EffectClaim,
    EligibilityCheck,
    EligibilityOutcome,
    Idea,
    IdeaStatus,
    IdeaStatusChange,
    Identity,
    InboxEvent,
    Membership,
    MembershipStatus,
    Person,
    Platform,
    PlatformRoleAssignment,
    Proposal,
    ProposalStatus,
    Term,
    TermOrigin,
    Vote,
    VoteChoice,
    WgRole,
    WgRoleAssignment,
)
from ledger.types import utcnow

OPEN_APPLICATION = (ApplicationStatus.OPEN, ApplicationStatus.CONFIRMED, ApplicationStatus.VOTING)
_UNSET: Any = object()


def ref(obj: Any) -> str:
    """The audit reference of a row: ``person:12``, ``ballot:3``, …"""
    kind = {
        Person: "person",
        Identity: "identity",
        Membership: "membership",
        Term: "term",
        Application: "application",
        Ballot: "ballot",
        Vote: "vote",
        Proposal: "proposal",
        Idea: "idea",
        InboxEvent: "inbox",
        WgRoleAssignment: "wg-role",
        PlatformRoleAssignment: "platform-role",
    }[type(obj)]
    return f"{kind}:{obj.id}"


def jsonable(value: Any) -> Any:
    """``value`` as audit-safe JSON: times canonical, enums by value, numbers other than int
    as strings (floats are not portable in hashes)."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return audit.format_time(value)
    if isinstance(value, (float, Decimal)):
        return str(value)
    if isinstance(value, (bytes, bytearray)):  # a raw request body, as readable text
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [jsonable(v) for v in value]
        return sorted(items, key=str) if isinstance(value, (set, frozenset)) else items
    return value


def _now(at: datetime | None) -> datetime:
    if at is None:
        return utcnow()
    if at.tzinfo is None:
        raise ValueError("pass a timezone-aware datetime")
    return at


def _digest(person: Person | None, value: Any) -> str | None:
    if value is None:
        return None
    return audit.content_digest(value, salt=person.salt if person else None)


def _log(session: Session, *, actor: str, action: str, subject: str, at: datetime, **payload: Any) -> None:
    audit.append(session, actor=actor, action=action, subject=subject, payload=jsonable(payload), at=at)


# --- people and identities -------------------------------------------------------------------


def get_person(session: Session, key: int | str) -> Person:
    """The person with id ``key`` (an int or digits) or handle ``key``; ``NotFound`` if none."""
    if isinstance(key, int) or (isinstance(key, str) and key.isdigit()):
        person = session.get(Person, int(key))
    else:
        person = session.scalar(select(Person).where(Person.handle == key))
    if person is None:
        raise NotFound(f"no person {key!r} in the ledger")
    return person


def create_person(
    session: Session,
    *,
    handle: str,
    actor: str,
    display_name: str | None = None,
    home_platform: Platform | str | None = None,
    at: datetime | None = None,
) -> Person:
    """Add a person. ``handle`` must be new (``Conflict`` otherwise)."""
    at = _now(at)
    if not handle or len(handle) > 80:
        raise ValueError("a handle is 1 to 80 characters")
    if session.scalar(select(Person.id).where(Person.handle == handle)) is not None:
        raise Conflict(f"handle {handle!r} is taken")
    person = Person(
        handle=handle,
        display_name=display_name,
        salt=secrets.token_hex(16),
        home_platform=Platform(home_platform) if home_platform else None,
        created_at=at,
        updated_at=at,
    )
    session.add(person)
    session.flush()
    _log(
        session,
        actor=actor,
        action="person.created",
        subject=ref(person),
        at=at,
        handle=_digest(person, handle),
        display_name=_digest(person, display_name),
        home_platform=person.home_platform,
    )
    return person


def update_person(
    session: Session,
    person: Person,
    *,
    actor: str,
    handle: str = _UNSET,
    display_name: str | None = _UNSET,
    home_platform: Platform | str | None = _UNSET,
    at: datetime | None = None,
) -> bool:
    """Change the given fields; returns False (and writes nothing) when nothing changed."""
    at = _now(at)
    changes: dict[str, Any] = {}
    if handle is not _UNSET and handle != person.handle:
        if session.scalar(select(Person.id).where(Person.handle == handle)) is not None:
            raise Conflict(f"handle {handle!r} is taken")
        person.handle = handle
        changes["handle"] = _digest(person, handle)
    if display_name is not _UNSET and display_name != person.display_name:
        person.display_name = display_name
        changes["display_name"] = _digest(person, display_name)
    if home_platform is not _UNSET:
        new = Platform(home_platform) if home_platform else None
        if new != person.home_platform:
            person.home_platform = new
            changes["home_platform"] = new
    if not changes:
        return False
    person.updated_at = at
    _log(session, actor=actor, action="person.updated", subject=ref(person), at=at, **changes)
    return True


def _identity_key(platform: Platform, username: str | None) -> str | None:
    return username.casefold() if username is not None else None


def find_identity(
    session: Session, *, platform: Platform | str, external_id: str | None = None, username: str | None = None
) -> Identity | None:
    """The identity with this platform id, else with this username (case-insensitive)."""
    platform = Platform(platform)
    if external_id is not None:
        found = session.scalar(
            select(Identity).where(Identity.platform == platform, Identity.external_id == str(external_id))
        )
        if found is not None:
            return found
    if username is not None:
        return session.scalar(
            select(Identity).where(
                Identity.platform == platform, Identity.username_key == _identity_key(platform, username)
            )
        )
    return None


def find_person_by_identity(
    session: Session, *, platform: Platform | str, external_id: str | None = None, username: str | None = None
) -> Person | None:
    """Who owns this platform account (the gateway's identity → person mapping)."""
    identity = find_identity(session, platform=platform, external_id=external_id, username=username)
    return identity.person if identity else None


def add_identity(
    session: Session,
    person: Person,
    *,
    platform: Platform | str,
    actor: str,
    external_id: str | int | None = None,
    username: str | None = None,
    verified_at: datetime | None = None,
    at: datetime | None = None,
) -> Identity:
    """Attach a platform account (or e-mail) to ``person``; each identity belongs to one person.

    Adding one the person already has is a no-op returning it; one that belongs to someone else
    raises ``Conflict``."""
    at = _now(at)
    platform = Platform(platform)
    if external_id is None and username is None:
        raise ValueError("an identity needs an external id or a username")
    ext = str(external_id) if external_id is not None else None
    for existing in (
        find_identity(session, platform=platform, external_id=ext),
        find_identity(session, platform=platform, username=username),
    ):
        if existing is None:
            continue
        if existing.person_id != person.id:
            raise Conflict(f"that {platform} account belongs to another person (person:{existing.person_id})")
        return existing
    identity = Identity(
        person=person,
        platform=platform,
        external_id=ext,
        username=username,
        username_key=_identity_key(platform, username),
        verified_at=verified_at,
        created_at=at,
    )
    session.add(identity)
    session.flush()
    _log(
        session,
        actor=actor,
        action="identity.added",
        subject=ref(person),
        at=at,
        identity=identity.id,
        platform=platform,
        external_id=_digest(person, ext),
        username=_digest(person, username),
    )
    return identity


def update_identity(
    session: Session,
    identity: Identity,
    *,
    actor: str,
    username: str | None = _UNSET,
    external_id: str | None = _UNSET,
    at: datetime | None = None,
) -> bool:
    """Record a renamed account or a newly learnt platform id; False if nothing changed."""
    at = _now(at)
    person = identity.person
    changes: dict[str, Any] = {}
    if username is not _UNSET and username != identity.username:
        other = find_identity(session, platform=identity.platform, username=username)
        if other is not None and other.id != identity.id:
            raise Conflict(f"{identity.platform} username is used by person:{other.person_id}")
        identity.username = username
        identity.username_key = _identity_key(identity.platform, username)
        changes["username"] = _digest(person, username)
    if external_id is not _UNSET and external_id != identity.external_id:
        ext = str(external_id) if external_id is not None else None
        other = find_identity(session, platform=identity.platform, external_id=ext)
        if other is not None and other.id != identity.id:
            raise Conflict(f"{identity.platform} id is used by person:{other.person_id}")
        identity.external_id = ext
        changes["external_id"] = _digest(person, ext)
    if not changes:
        return False
    _log(session, actor=actor, action="identity.updated", subject=ref(person), at=at, identity=identity.id, **changes)
    return True


# --- memberships and terms -------------------------------------------------------------------


def open_membership(session: Session, person: Person) -> Membership | None:
    """The person's membership that has not ended, if any."""
    return session.scalar(select(Membership).where(Membership.person_id == person.id, Membership.ended_at.is_(None)))


def start_membership(
    session: Session,
    person: Person,
    *,
    actor: str,
    starts_at: datetime,
    ends_at: datetime,
    origin: TermOrigin = TermOrigin.APPROVAL,
    ballot_id: int | None = None,
    at: datetime | None = None,
) -> Membership:
    """Make ``person`` an active member with a first term [starts_at, ends_at) (R-TERM-1:
    the caller computes ``ends_at`` from the charter)."""
    at = _now(at)
    current = open_membership(session, person)
    if current is not None and current.status == MembershipStatus.ACTIVE:
        raise Conflict(f"person:{person.id} is already an active member")
    if current is None:
        current = Membership(person=person, status=MembershipStatus.ACTIVE, started_at=starts_at)
        session.add(current)
    else:  # an applicant becomes a member
        current.status = MembershipStatus.ACTIVE
        current.started_at = starts_at
    session.flush()
    term = Term(
        membership_id=current.id,
        number=1,
        starts_at=starts_at,
        ends_at=ends_at,
        origin=origin,
        approved_by_ballot_id=ballot_id,
        created_at=at,
    )
    session.add(term)
    session.flush()
    _log(
        session,
        actor=actor,
        action="membership.started",
        subject=ref(person),
        at=at,
        membership=current.id,
        term=term.id,
        starts_at=starts_at,
        ends_at=ends_at,
        origin=origin,
        ballot=ballot_id,
    )
    return current


def add_term(
    session: Session,
    membership: Membership,
    *,
    actor: str,
    starts_at: datetime,
    ends_at: datetime,
    origin: TermOrigin,
    opted_in_at: datetime | None = None,
    opt_in_source: str | None = None,
    at: datetime | None = None,
) -> Term:
    """Append a term to a membership (imports; ``renew`` for an opt-in)."""
    at = _now(at)
    number = (session.scalar(select(func.max(Term.number)).where(Term.membership_id == membership.id)) or 0) + 1
    # The term's columns are also its audit entry's payload.
    facts: dict[str, Any] = {
        "number": number,
        "starts_at": starts_at,
        "ends_at": ends_at,
        "origin": origin,
        "opted_in_at": opted_in_at,
        "opt_in_source": opt_in_source,
    }
    term = Term(membership_id=membership.id, created_at=at, **facts)
    session.add(term)
    session.flush()
    _log(
        session,
        actor=actor,
        action="membership.term-added",
        subject=f"person:{membership.person_id}",
        at=at,
        membership=membership.id,
        term=term.id,
        **facts,
    )
    return term


def renew(
    session: Session,
    membership: Membership,
    *,
    actor: str,
    opted_in_at: datetime,
    source: str,
    term_days: int,
    at: datetime | None = None,
) -> Term:
    """R-TERM-2: an opt-in starts a new term at the old end date (no gap, no overlap)."""
    if membership.status != MembershipStatus.ACTIVE or membership.ended_at is not None:
        raise PolicyViolation("only an active membership can be renewed", ruling="R-TERM-2")
    last = membership.terms[-1] if membership.terms else None
    if last is None:
        raise Conflict(f"membership:{membership.id} has no term to renew")
    return add_term(
        session,
        membership,
        actor=actor,
        starts_at=last.ends_at,
        ends_at=last.ends_at + timedelta(days=term_days),
        origin=TermOrigin.OPT_IN,
        opted_in_at=opted_in_at,
        opt_in_source=source,
        at=at,
    )


def end_membership(
    session: Session,
    membership: Membership,
    *,
    status: MembershipStatus | str,
    actor: str,
    at: datetime | None = None,
    ballot_id: int | None = None,
    keep: Collection[tuple[str, str]] = (),
) -> Membership:
    """End a membership as lapsed, left or removed (R-TERM-2, R-LEAVE, R-REMOVE).

    In the same transaction: the person's open WG roles end and every platform role they
    hold becomes not desired, so the reconcile flow revokes it, except the (platform, role)
    pairs in ``keep`` (the rules decide them: moderators stay, R-MOD; an admin revocation that
    waits, R-ADMIN-4)."""
    at = _now(at)
    status = MembershipStatus(status)
    if status not in (MembershipStatus.LAPSED, MembershipStatus.LEFT, MembershipStatus.REMOVED):
        raise ValueError(f"a membership ends as lapsed, left or removed, not {status}")
    if membership.ended_at is not None:
        raise Conflict(f"membership:{membership.id} already ended ({membership.status})")
    membership.status = status
    membership.ended_at = at
    membership.ended_by_ballot_id = ballot_id
    person = session.get(Person, membership.person_id)
    assert person is not None
    _log(
        session,
        actor=actor,
        action="membership.ended",
        subject=ref(person),
        at=at,
        membership=membership.id,
        status=status,
        ballot=ballot_id,
    )
    for assignment in session.scalars(
        select(WgRoleAssignment).where(WgRoleAssignment.person_id == person.id, WgRoleAssignment.ends_at.is_(None))
    ):
        end_wg_role(session, assignment, actor=actor, at=at)
    kept = {(Platform(p), r) for p, r in keep}
    for role in session.scalars(
        select(PlatformRoleAssignment).where(
            PlatformRoleAssignment.person_id == person.id, PlatformRoleAssignment.desired
        )
    ):
        if (role.platform, role.role) in kept:
            continue
        set_desired_platform_role(
            session,
            person,
            platform=role.platform,
            role=role.role,
            desired=False,
            actor=actor,
            decision_ref=f"membership:{membership.id}",
            at=at,
        )
    return membership


# --- roles -----------------------------------------------------------------------------------


def current_wg_roles(session: Session) -> dict[WgRole, WgRoleAssignment]:
    """Every WG role held now, by role."""
    rows = session.scalars(select(WgRoleAssignment).where(WgRoleAssignment.ends_at.is_(None)))
    return {row.role: row for row in rows}


def assign_wg_role(
    session: Session,
    person: Person,
    role: WgRole | str,
    *,
    actor: str,
    assigned_by: str,
    starts_at: datetime | None = None,
    at: datetime | None = None,
) -> WgRoleAssignment:
    """Give ``role`` to ``person`` from ``starts_at``; the previous holder's assignment ends.

    The rules layer decides whether it is allowed (R-ROLE-*); this records it. Assigning the
    role to its current holder is a no-op returning the current assignment."""
    at = _now(at)
    role = WgRole(role)
    current = current_wg_roles(session).get(role)
    if current is not None and current.person_id == person.id:
        return current
    start = starts_at or at
    if current is not None:
        end_wg_role(session, current, actor=actor, at=max(start, current.starts_at))
    assignment = WgRoleAssignment(
        person_id=person.id, role=role, assigned_by=assigned_by, starts_at=start, created_at=at
    )
    session.add(assignment)
    session.flush()
    _log(
        session,
        actor=actor,
        action="wg-role.assigned",
        subject=ref(person),
        at=at,
        assignment=assignment.id,
        role=role,
        starts_at=start,
        assigned_by=_digest(None, assigned_by),
    )
    return assignment


def end_wg_role(
    session: Session, assignment: WgRoleAssignment, *, actor: str, at: datetime | None = None
) -> WgRoleAssignment:
    """End a WG role assignment."""
    at = _now(at)
    if assignment.ends_at is None:
        assignment.ends_at = at
        session.flush()
        _log(
            session,
            actor=actor,
            action="wg-role.ended",
            subject=f"person:{assignment.person_id}",
            at=at,
            assignment=assignment.id,
            role=assignment.role,
        )
    return assignment


def _platform_role(session: Session, person: Person, platform: Platform, role: str) -> PlatformRoleAssignment:
    row = session.scalar(
        select(PlatformRoleAssignment).where(
            PlatformRoleAssignment.person_id == person.id,
            PlatformRoleAssignment.platform == platform,
            PlatformRoleAssignment.role == role,
        )
    )
    if row is None:
        row = PlatformRoleAssignment(person_id=person.id, platform=platform, role=role, desired=False)
        session.add(row)
    return row


def set_desired_platform_role(
    session: Session,
    person: Person,
    *,
    platform: Platform | str,
    role: str,
    desired: bool,
    actor: str,
    decision_ref: str,
    at: datetime | None = None,
) -> PlatformRoleAssignment:
    """Record that the WG wants ``person`` to hold (or not) ``role`` on ``platform``."""
    at = _now(at)
    row = _platform_role(session, person, Platform(platform), role)
    if row.desired == desired and row.id is not None:
        return row
    row.desired, row.desired_since, row.desired_by, row.decision_ref = (desired, at, actor, decision_ref)
    session.flush()
    _log(
        session,
        actor=actor,
        action="platform-role.desired",
        subject=ref(person),
        at=at,
        assignment=row.id,
        platform=row.platform,
        role=role,
        desired=desired,
        decision=decision_ref,
    )
    return row


def record_observed_platform_role(
    session: Session,
    person: Person,
    *,
    platform: Platform | str,
    role: str,
    observed: bool,
    actor: str,
    at: datetime | None = None,
) -> PlatformRoleAssignment:
    """Record what a platform showed. Only a change is audited (drift, R-ADMIN-3); seeing
    the same again just moves ``observed_at``."""
    at = _now(at)
    row = _platform_role(session, person, Platform(platform), role)
    changed = row.observed != observed
    row.observed, row.observed_at = observed, at
    session.flush()
    if changed:
        _log(
            session,
            actor=actor,
            action="platform-role.observed",
            subject=ref(person),
            at=at,
            assignment=row.id,
            platform=row.platform,
            role=role,
            observed=observed,
            desired=row.desired,
        )
    return row


# --- applications ----------------------------------------------------------------------------


def submit_application(
    session: Session,
    person: Person,
    *,
    actor: str,
    source_platform: str,
    motivation: str,
    experience: str,
    nominator_handle: str | None = None,
    at: datetime | None = None,
) -> Application:
    """Store an application (R-APP-1); a second open one is refused (R-APP-3)."""
    at = _now(at)
    existing = session.scalar(
        select(Application).where(Application.person_id == person.id, Application.status.in_(OPEN_APPLICATION))
    )
    if existing is not None:
        raise PolicyViolation(
            f"an application is already open (application:{existing.id})",
            ruling="R-APP-3",
            evidence={"application": existing.id},
        )
    app = Application(
        person_id=person.id,
        status=ApplicationStatus.OPEN,
        source_platform=source_platform,
        submitted_at=at,
        motivation=motivation,
        experience=experience,
        nominator_handle=nominator_handle,
    )
    session.add(app)
    session.flush()
    _log(
        session,
        actor=actor,
        action="application.submitted",
        subject=ref(app),
        at=at,
        person=person.id,
        source_platform=source_platform,
        answers=_digest(person, {"motivation": motivation, "experience": experience}),
        nominator=_digest(person, nominator_handle),
    )
    return app


def confirm_application(
    session: Session, application: Application, identity: Identity, *, actor: str, at: datetime | None = None
) -> ApplicationConfirmation:
    """R-APP-2: the applicant confirmed from ``identity``; idempotent."""
    at = _now(at)
    if identity.person_id != application.person_id:
        raise PolicyViolation("that account is not the applicant's", ruling="R-APP-2")
    row = session.scalar(
        select(ApplicationConfirmation).where(
            ApplicationConfirmation.application_id == application.id, ApplicationConfirmation.identity_id == identity.id
        )
    )
    if row is not None:
        return row
    row = ApplicationConfirmation(application_id=application.id, identity_id=identity.id, confirmed_at=at)
    session.add(row)
    session.flush()
    _log(
        session,
        actor=actor,
        action="application.confirmed",
        subject=ref(application),
        at=at,
        identity=identity.id,
        platform=identity.platform,
    )
    return row


def record_eligibility(
    session: Session,
    application: Application,
    *,
    outcome: EligibilityOutcome | str,
    ruling: str,
    reason: str,
    evidence: Mapping[str, Any],
    actor: str,
    at: datetime | None = None,
) -> EligibilityCheck:
    """R-ELIG-4: keep an eligibility decision with its evidence."""
    at = _now(at)
    person = session.get(Person, application.person_id)
    check = EligibilityCheck(
        application_id=application.id,
        checked_at=at,
        outcome=EligibilityOutcome(outcome),
        ruling=ruling,
        reason=reason,
        evidence=jsonable(dict(evidence)),
    )
    session.add(check)
    session.flush()
    _log(
        session,
        actor=actor,
        action="eligibility.decided",
        subject=ref(application),
        at=at,
        check=check.id,
        outcome=check.outcome,
        ruling=ruling,
        evidence=_digest(person, check.evidence),
    )
    return check


def set_application_status(
    session: Session,
    application: Application,
    status: ApplicationStatus | str,
    *,
    actor: str,
    ballot_id: int | None = None,
    at: datetime | None = None,
) -> Application:
    """Move an application on (confirmed, voting, approved, rejected, expired, …)."""
    at = _now(at)
    status = ApplicationStatus(status)
    before = application.status
    application.status = status
    if ballot_id is not None:
        application.ballot_id = ballot_id
    if status not in OPEN_APPLICATION and application.closed_at is None:
        application.closed_at = at
    session.flush()
    _log(
        session,
        actor=actor,
        action="application.status",
        subject=ref(application),
        at=at,
        before=before,
        after=status,
        ballot=ballot_id,
    )
    return application


# --- ballots and votes -----------------------------------------------------------------------


def open_ballot(
    session: Session,
    *,
    kind: BallotKind | str,
    subject_ref: str,
    electorate: Iterable[Person | int],
    opens_at: datetime,
    closes_at: datetime,
    rule_params: Mapping[str, Any],
    actor: str,
    subject_person: Person | None = None,
    at: datetime | None = None,
) -> Ballot:
    """Open a ballot with its electorate snapshot (R-ELECTORATE); the rules computed it."""
    at = _now(at)
    ids = sorted({p.id if isinstance(p, Person) else int(p) for p in electorate})
    if not ids:
        raise PolicyViolation("a ballot needs a non-empty electorate", ruling="R-ELECTORATE")
    if closes_at <= opens_at:
        raise ValueError("a ballot closes after it opens")
    ballot = Ballot(
        kind=BallotKind(kind),
        subject_ref=subject_ref,
        opened_by=actor,
        subject_person_id=subject_person.id if subject_person else None,
        rule_params=jsonable(dict(rule_params)),
        opens_at=opens_at,
        closes_at=closes_at,
        status=BallotStatus.OPEN,
    )
    session.add(ballot)
    session.flush()
    session.add_all(BallotElector(ballot_id=ballot.id, person_id=i) for i in ids)
    session.flush()
    _log(
        session,
        actor=actor,
        action="ballot.opened",
        subject=ref(ballot),
        at=at,
        kind=ballot.kind,
        about=subject_ref,
        electorate=ids,
        rule_params=ballot.rule_params,
        opens_at=opens_at,
        closes_at=closes_at,
    )
    return ballot


def current_votes(session: Session, ballot: Ballot) -> list[Vote]:
    """The votes that count (the latest of each voter)."""
    return list(
        session.scalars(select(Vote).where(Vote.ballot_id == ballot.id, Vote.replaced_at.is_(None)).order_by(Vote.id))
    )


def cast_vote(
    session: Session,
    ballot: Ballot,
    voter: Person,
    *,
    choice: VoteChoice | str,
    source_platform: str,
    actor: str,
    at: datetime | None = None,
) -> Vote:
    """Record a vote; a later one from the same voter replaces it (R-ELECTORATE).

    Refuses (``PolicyViolation``, nothing written) a vote on a closed ballot (R-VOTE-EARLY) or
    from outside the electorate (R-ELECTORATE); record that with ``record_refused_vote``."""
    at = _now(at)
    if ballot.status != BallotStatus.OPEN or at >= ballot.closes_at:
        raise PolicyViolation(f"ballot:{ballot.id} is closed", ruling="R-VOTE-EARLY")
    elector = session.get(BallotElector, (ballot.id, voter.id))
    if elector is None:
        raise PolicyViolation(
            f"person:{voter.id} is not in the electorate of ballot:{ballot.id}", ruling="R-ELECTORATE"
        )
    previous = session.scalar(
        select(Vote).where(Vote.ballot_id == ballot.id, Vote.voter_person_id == voter.id, Vote.replaced_at.is_(None))
    )
    if previous is not None:
        # Mark the old vote first: the partial unique index allows one current vote per voter.
        previous.replaced_at = at
        session.flush()
    vote = Vote(
        ballot_id=ballot.id,
        voter_person_id=voter.id,
        choice=VoteChoice(choice),
        source_platform=source_platform,
        cast_at=at,
    )
    session.add(vote)
    session.flush()
    if previous is not None:
        previous.replaced_by_id = vote.id
        session.flush()
    _log(
        session,
        actor=actor,
        action="vote.cast",
        subject=ref(ballot),
        at=at,
        vote=vote.id,
        voter=voter.id,
        choice=vote.choice,
        source_platform=source_platform,
        replaces=previous.id if previous else None,
    )
    return vote


def record_refused_vote(
    session: Session,
    ballot: Ballot,
    *,
    voter_person_id: int | None,
    ruling: str,
    reason_code: str,
    source_platform: str,
    actor: str,
    at: datetime | None = None,
) -> None:
    """Keep a refused vote in the audit log (R-ELECTORATE); ``reason_code`` is a short code
    such as ``not-in-electorate``, not free text."""
    at = _now(at)
    _log(
        session,
        actor=actor,
        action="vote.refused",
        subject=ref(ballot),
        at=at,
        voter=voter_person_id,
        ruling=ruling,
        reason=reason_code,
        source_platform=source_platform,
    )


def close_ballot(
    session: Session,
    ballot: Ballot,
    *,
    outcome: BallotOutcome | str,
    ruling: str,
    tally: Mapping[str, Any],
    actor: str,
    at: datetime | None = None,
) -> Ballot:
    """Close a ballot with the outcome and tally the rules computed (R-VOTE-*, R-REMOVE)."""
    at = _now(at)
    if ballot.status != BallotStatus.OPEN:
        raise Conflict(f"ballot:{ballot.id} is {ballot.status}")
    ballot.status, ballot.closed_at = BallotStatus.CLOSED, at
    ballot.outcome, ballot.ruling = BallotOutcome(outcome), ruling
    ballot.tally = jsonable(dict(tally))
    session.flush()
    _log(
        session,
        actor=actor,
        action="ballot.closed",
        subject=ref(ballot),
        at=at,
        outcome=ballot.outcome,
        ruling=ruling,
        tally=ballot.tally,
    )
    return ballot


def cancel_ballot(
    session: Session, ballot: Ballot, *, actor: str, reason_code: str, at: datetime | None = None
) -> Ballot:
    """Cancel an open ballot (its subject left, the application was withdrawn, …)."""
    at = _now(at)
    if ballot.status != BallotStatus.OPEN:
        raise Conflict(f"ballot:{ballot.id} is {ballot.status}")
    ballot.status, ballot.closed_at = BallotStatus.CANCELLED, at
    session.flush()
    _log(session, actor=actor, action="ballot.cancelled", subject=ref(ballot), at=at, reason=reason_code)
    return ballot


# --- proposals to the Board ------------------------------------------------------------------


def create_proposal(
    session: Session,
    *,
    kind: str,
    title: str,
    actor: str,
    body: str | None = None,
    amount: Decimal | None = None,
    currency: str | None = None,
    purpose: str | None = None,
    proposed_by: Person | None = None,
    at: datetime | None = None,
    platform: str | None = None,
    replaces_platform: str | None = None,
    trial_ends_at: datetime | None = None,
) -> Proposal:
    """Record a proposal that needs the Board (R-BOARD); a platform proposal with its
    platform, the one it replaces and a trial's end date (R-PLATFORM)."""
    at = _now(at)
    proposal = Proposal(
        kind=kind,
        title=title,
        body=body,
        amount=amount,
        currency=currency,
        purpose=purpose,
        proposed_by_person_id=proposed_by.id if proposed_by else None,
        status=ProposalStatus.DRAFT,
        created_at=at,
        platform=platform,
        replaces_platform=replaces_platform,
        trial_ends_at=trial_ends_at,
    )
    session.add(proposal)
    session.flush()
    extra = {"platform": platform, "replaces": replaces_platform, "trial_ends_at": trial_ends_at} if platform else {}
    _log(
        session,
        actor=actor,
        action="proposal.created",
        subject=ref(proposal),
        at=at,
        kind=kind,
        amount=amount,
        currency=currency,
        content=_digest(None, {"title": title, "body": body, "purpose": purpose}),
        proposed_by=proposal.proposed_by_person_id,
        **extra,
    )
    return proposal


def escalate_proposal(
    session: Session,
    proposal: Proposal,
    *,
    actor: str,
    endorsement_ballot_id: int | None,
    escalation_ref: str,
    at: datetime | None = None,
) -> Proposal:
    """The proposal went to the Board (``escalation_ref``: e.g. the Slack message ts)."""
    at = _now(at)
    proposal.status, proposal.escalated_at = ProposalStatus.ESCALATED, at
    proposal.endorsement_ballot_id, proposal.escalation_ref = endorsement_ballot_id, escalation_ref
    session.flush()
    _log(
        session,
        actor=actor,
        action="proposal.escalated",
        subject=ref(proposal),
        at=at,
        ballot=endorsement_ballot_id,
        escalation=escalation_ref,
    )
    return proposal


def record_board_decision(
    session: Session,
    proposal: Proposal,
    *,
    decision: BoardDecision | str,
    decided_by: str,
    source: str,
    actor: str,
    at: datetime | None = None,
) -> Proposal:
    """The Board decided (approved / rejected / needs more information), by whom, from where."""
    at = _now(at)
    proposal.decision = BoardDecision(decision)
    proposal.decided_by, proposal.decided_at, proposal.decision_source = decided_by, at, source
    if proposal.decision != BoardDecision.NEEDS_INFO:
        proposal.status = ProposalStatus.DECIDED
    session.flush()
    _log(
        session,
        actor=actor,
        action="proposal.decided",
        subject=ref(proposal),
        at=at,
        decision=proposal.decision,
        source=source,
        decided_by=_digest(None, decided_by),
    )
    return proposal


# --- ideas -----------------------------------------------------------------------------------


def add_idea(
    session: Session,
    *,
    title: str,
    source: str,
    actor: str,
    body: str | None = None,
    source_url: str | None = None,
    author: Person | None = None,
    platform: str | None = None,
    at: datetime | None = None,
    **columns: Any,
) -> Idea:
    """A new backlog item (R-IDEA-1), status ``new``; ``columns``: more of its columns
    (``source_key``, ``author_handle``), written with it."""
    at = _now(at)
    idea = Idea(
        title=title,
        body=body,
        source=source,
        source_url=source_url,
        author_person_id=author.id if author else None,
        status=IdeaStatus.NEW,
        **columns,
        platform=platform,
        created_at=at,
        updated_at=at,
    )
    session.add(idea)
    session.flush()
    session.add(
        IdeaStatusChange(idea_id=idea.id, from_status=None, to_status=IdeaStatus.NEW, changed_by=actor, changed_at=at)
    )
    _log(
        session,
        actor=actor,
        action="idea.added",
        subject=ref(idea),
        at=at,
        source=source,
        author=idea.author_person_id,
        content=_digest(None, {"title": title, "body": body}),
    )
    return idea


def set_idea_status(
    session: Session,
    idea: Idea,
    status: IdeaStatus | str,
    *,
    actor: str,
    duplicate_of: Idea | None = None,
    needs_board: bool | None = None,
    platform: str | None = None,
    at: datetime | None = None,
) -> Idea:
    """Move an idea along its status history (R-IDEA-1) with its triage (R-IDEA-2)."""
    at = _now(at)
    status = IdeaStatus(status)
    before = idea.status
    idea.status, idea.updated_at = status, at
    if duplicate_of is not None:
        idea.duplicate_of_id = duplicate_of.id
    if needs_board is not None:
        idea.needs_board = needs_board
    if platform is not None:
        idea.platform = platform
    session.add(
        IdeaStatusChange(idea_id=idea.id, from_status=before, to_status=status, changed_by=actor, changed_at=at)
    )
    session.flush()
    _log(
        session,
        actor=actor,
        action="idea.status",
        subject=ref(idea),
        at=at,
        before=before,
        after=status,
        duplicate_of=idea.duplicate_of_id,
        needs_board=idea.needs_board,
        platform=idea.platform,
    )
    return idea


# --- inbox -----------------------------------------------------------------------------------


def inbox_put(
    session: Session,
    *,
    dedupe_key: str,
    source: str,
    kind: str,
    payload: Mapping[str, Any],
    received_at: datetime | None = None,
    actor: str = "gateway",
    route: str | None = None,
    raw: bytes | None = None,
    record_receipt: bool = True,
) -> tuple[InboxEvent, bool]:
    """Store an inbound event once: returns (event, created). An existing key returns the
    stored row untouched, also when another process inserts the same key at the same time.
    ``route`` names the flow that will handle it (the gateway's routing table); ``raw`` is the
    request body as received (kept as is, beside the payload's parsed view).

    ``record_receipt=False`` leaves the ``inbox.received`` audit entry to whoever first takes
    the event (its claim, its processing or an operator's retry: :func:`note_receipt`), so the
    store needs no place in the audit chain: the gateway acknowledges without waiting for the
    writers' lock (issue 19)."""
    at = _now(received_at)
    values = {
        "dedupe_key": dedupe_key,
        "source": source,
        "kind": kind,
        "payload": jsonable(dict(payload)),
        "received_at": at,
        "route": route,
        "raw": bytes(raw) if raw is not None else None,
    }
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    # ON CONFLICT DO NOTHING: a concurrent insert of the same key waits for the other one
    # and then does nothing; no exception, no aborted transaction.
    stmt = (
        insert(InboxEvent)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(InboxEvent.id)
    )
    new_id = session.execute(stmt).scalar_one_or_none()
    event = session.scalar(
        select(InboxEvent).where(InboxEvent.dedupe_key == dedupe_key).execution_options(populate_existing=True)
    )
    assert event is not None
    if new_id is not None and record_receipt:
        _log_receipt(session, event, actor=actor, at=at)
    return event, new_id is not None


def _log_receipt(session: Session, event: InboxEvent, *, actor: str, at: datetime) -> None:
    extra: dict[str, Any] = {}
    if event.raw is not None:
        extra["raw"] = hashlib.sha256(event.raw).hexdigest()
    if event.payload.get("notes"):  # what the parsed view changed (an unusual body)
        extra["notes"] = list(event.payload["notes"])
    _log(
        session,
        actor=actor,
        action="inbox.received",
        subject=ref(event),
        at=at,
        source=event.source,
        kind=event.kind,
        route=event.route,
        key=_digest(None, event.dedupe_key),
        payload=_digest(None, event.payload),
        **extra,
    )


def note_receipt(session: Session, event: InboxEvent) -> None:
    """Append the ``inbox.received`` entry of an event stored with ``record_receipt=False``,
    once: a no-op for an event claimed, retried or processed before (its entry is written) or
    whose entry exists. The entry's actor is the gateway and its time the receipt's."""
    if event.dispatch_attempts or event.dispatched_at is not None or event.processed_at is not None:
        return
    logged = select(AuditEntry.seq).where(AuditEntry.subject == ref(event), AuditEntry.action == "inbox.received")
    if session.scalar(logged.limit(1)) is None:
        _log_receipt(session, event, actor="gateway", at=event.received_at)


def inbox_mark_processed(
    session: Session,
    event: InboxEvent,
    *,
    actor: str,
    result_ref: str,
    person: Person | None = None,
    at: datetime | None = None,
) -> InboxEvent:
    """Mark an inbound event handled (idempotent), linking the person it concerned."""
    at = _now(at)
    if event.processed_at is not None:
        return event
    note_receipt(session, event)
    event.processed_at, event.result_ref = at, result_ref
    if person is not None:
        event.person_id = person.id
    session.flush()
    _log(
        session,
        actor=actor,
        action="inbox.processed",
        subject=ref(event),
        at=at,
        result=result_ref,
        person=event.person_id,
    )
    return event


def inbox_pending(session: Session, *, limit: int = 100) -> list[InboxEvent]:
    """Unprocessed events, oldest first."""
    return list(
        session.scalars(
            select(InboxEvent).where(InboxEvent.processed_at.is_(None)).order_by(InboxEvent.id).limit(limit)
        )
    )


# --- inbox dispatch (gateway, issue 7) -------------------------------------------------------

AWAITING_HANDLER = "awaiting-handler"
# A claim that went stale this many times (its run never finished the event) is no longer
# dispatched by itself: the note tells the operator, who dispatches it again by hand.
GAVE_UP = "dispatch-gave-up"
MAX_DISPATCH_ATTEMPTS = 5


def inbox_claim(
    session: Session,
    event_id: int,
    *,
    actor: str,
    stale_before: datetime | None = None,
    handled_routes: Iterable[str] = (),
    at: datetime | None = None,
) -> InboxEvent | None:
    """Claim an unprocessed event for dispatch; the claimed event, or None when there is
    nothing to do (processed, unknown, or claimed by someone else and not stale).

    Claimable: never dispatched, or released after a failed start (the attempt number is kept,
    so a start that did reach Prefect is found again under the same key), or claimed before
    ``stale_before`` and still unprocessed (its run was lost, or failed: next attempt number; the
    handlers are idempotent; after :data:`MAX_DISPATCH_ATTEMPTS` the event is noted
    :data:`GAVE_UP` instead), or ``awaiting-handler`` when its route is now in ``handled_routes``
    (next attempt number).
    Writers serialize (ledger.db), so two dispatchers never both claim one event.
    """
    at = _now(at)
    event = session.get(InboxEvent, event_id, populate_existing=True)
    if event is None or event.processed_at is not None:
        return None
    if event.dispatched_at is None:
        attempt = max(event.dispatch_attempts, 1)
    elif event.dispatch_note == AWAITING_HANDLER and event.route in set(handled_routes):
        attempt = event.dispatch_attempts + 1
    elif event.dispatch_note is None and stale_before is not None and event.dispatched_at < stale_before:
        if event.dispatch_attempts >= MAX_DISPATCH_ATTEMPTS:
            event.dispatch_note = GAVE_UP
            session.flush()
            _log(
                session,
                actor=actor,
                action="inbox.gave-up",
                subject=ref(event),
                at=at,
                route=event.route,
                attempts=event.dispatch_attempts,
            )
            return None
        attempt = event.dispatch_attempts + 1
    else:
        return None
    note_receipt(session, event)
    event.dispatch_attempts, event.dispatched_at, event.dispatch_note = attempt, at, None
    session.flush()
    _log(session, actor=actor, action="inbox.dispatched", subject=ref(event), at=at, route=event.route, attempt=attempt)
    return event


def inbox_retry(session: Session, event_id: int, *, actor: str, at: datetime | None = None) -> InboxEvent:
    """An operator's retry of an unprocessed event (one the dispatcher gave up on, or any other):
    the next attempt number, so its run is a new one; the gateway's drain loop dispatches it."""
    at = _now(at)
    event = session.get(InboxEvent, event_id, populate_existing=True)
    if event is None:
        raise NotFound(f"inbox:{event_id} does not exist")
    if event.processed_at is not None:
        raise Conflict(f"inbox:{event_id} is already processed ({event.result_ref})")
    note_receipt(session, event)
    event.dispatch_attempts += 1
    event.dispatched_at, event.dispatch_note = None, None
    session.flush()
    _log(
        session,
        actor=actor,
        action="inbox.retry",
        subject=ref(event),
        at=at,
        route=event.route,
        attempt=event.dispatch_attempts,
    )
    return event


def inbox_stalled(session: Session, *, now: datetime, after: timedelta, pulled: bool = False) -> list[int]:
    """Ids of events handed to a run more than ``after`` ago and still unprocessed, when no
    event at all was processed in that time: the runs are not being worked (the task worker is
    stuck, or the runs were lost). Empty otherwise. ``pulled`` (the workers claim events
    themselves): events stored that long ago and never claimed count too (the pump is stuck)."""
    since = now - after
    handed = InboxEvent.dispatched_at < since
    if pulled:
        handed = or_(handed, and_(InboxEvent.dispatched_at.is_(None), InboxEvent.received_at < since))
    waiting = list(
        session.scalars(
            select(InboxEvent.id)
            .where(
                InboxEvent.processed_at.is_(None),
                InboxEvent.dispatch_note.is_(None),
                handed,
                InboxEvent.dispatch_attempts < MAX_DISPATCH_ATTEMPTS,
            )
            .order_by(InboxEvent.id)
        )
    )
    if not waiting:
        return []
    if session.scalar(select(func.count()).select_from(InboxEvent).where(InboxEvent.processed_at >= since)):
        return []
    return waiting


def inbox_unprocessed(session: Session, *, limit: int = 100) -> list[InboxEvent]:
    """Events not processed yet, oldest first."""
    return list(
        session.scalars(
            select(InboxEvent).where(InboxEvent.processed_at.is_(None)).order_by(InboxEvent.id).limit(limit)
        )
    )


def inbox_release(
    session: Session, event: InboxEvent, *, actor: str, reason: str, at: datetime | None = None
) -> InboxEvent:
    """Undo a claim whose run could not be started (``reason`` is a code, e.g.
    ``prefect-unreachable``); the drain loop claims it again later."""
    at = _now(at)
    if event.dispatched_at is None or event.processed_at is not None:
        return event
    event.dispatched_at = None
    session.flush()
    _log(
        session,
        actor=actor,
        action="inbox.dispatch_deferred",
        subject=ref(event),
        at=at,
        reason=reason,
        attempt=event.dispatch_attempts,
    )
    return event


def inbox_set_note(
    session: Session, event: InboxEvent, *, note: str, actor: str, at: datetime | None = None
) -> InboxEvent:
    """Record why a dispatched event is still unprocessed (``awaiting-handler``); idempotent."""
    at = _now(at)
    if event.dispatch_note == note or event.processed_at is not None:
        return event
    event.dispatch_note = note
    session.flush()
    _log(session, actor=actor, action="inbox.held", subject=ref(event), at=at, note=note, route=event.route)
    return event


def inbox_dispatchable(
    session: Session, *, stale_before: datetime | None = None, handled_routes: Iterable[str] = (), limit: int = 100
) -> list[int]:
    """Ids of events ``inbox_claim`` would claim, oldest first (the drain loop's query)."""
    conditions: list[ColumnElement[bool]] = [InboxEvent.dispatched_at.is_(None)]
    routes = sorted(set(handled_routes))
    if routes:
        conditions.append(and_(InboxEvent.dispatch_note == AWAITING_HANDLER, InboxEvent.route.in_(routes)))
    if stale_before is not None:
        conditions.append(and_(InboxEvent.dispatch_note.is_(None), InboxEvent.dispatched_at < stale_before))
    return list(
        session.scalars(
            select(InboxEvent.id)
            .where(InboxEvent.processed_at.is_(None), or_(*conditions))
            .order_by(InboxEvent.id)
            .limit(limit)
        )
    )


def inbox_counts(session: Session) -> dict[str, int]:
    """How many events are unprocessed (``pending``), of which not dispatched
    (``undispatched``) and held for a flow not built yet (``awaiting_handler``)."""
    pending = InboxEvent.processed_at.is_(None)
    count = select(func.count()).select_from(InboxEvent)
    return {
        "pending": session.scalar(count.where(pending)) or 0,
        "undispatched": session.scalar(count.where(pending, InboxEvent.dispatched_at.is_(None))) or 0,
        "awaiting_handler": session.scalar(count.where(pending, InboxEvent.dispatch_note == AWAITING_HANDLER)) or 0,
    }


# --- membership flows (issue 8): side-effect records and small queries -----------------------
#
# A side effect on a platform (a message, a ballot post, a reminder) is recorded as an audit
# entry ``effect.done`` whose subject is ``effect:<sha256 of its idempotency key>``: the key
# never reaches the log in clear (it may name a person), the lookup uses the indexed subject,
# and no table is needed. Its payload holds platform references (message/ballot ids) only.


def _effect_subject(key: str) -> str:
    return "effect:" + hashlib.sha256(key.encode("utf-8")).hexdigest()


def effect_get(session: Session, *, key: str) -> dict[str, Any] | None:
    """The payload recorded for the side effect ``key`` (``{"platform", "ref"}``), or None."""
    row = session.scalar(
        select(AuditEntry.payload_json)
        .where(AuditEntry.subject == _effect_subject(key), AuditEntry.action == "effect.done")
        .order_by(AuditEntry.seq)
        .limit(1)
    )
    return json.loads(row) if row is not None else None


def effect_record(
    session: Session,
    *,
    key: str,
    platform: str,
    actor: str,
    ref: Mapping[str, Any] | None = None,
    about: str | None = None,
    at: datetime | None = None,
) -> dict[str, Any]:
    """Record that the side effect ``key`` happened on ``platform`` (idempotent: a key already
    recorded is returned as it was). ``ref`` holds platform ids only, never personal data;
    ``about`` is a ledger reference such as ``application:4``."""
    at = _now(at)
    existing = effect_get(session, key=key)
    if existing is not None:
        return existing
    payload = {"platform": platform, "ref": jsonable(dict(ref or {})), "about": about}
    audit.append(session, actor=actor, action="effect.done", subject=_effect_subject(key), payload=payload, at=at)
    effect_unclaim(session, key=key)
    return payload


def effect_claim(
    session: Session, *, key: str, holder: str, until: datetime, at: datetime, take_from: str | None = None
) -> tuple[str, Any]:
    """Claim the side effect ``key`` for ``holder`` until ``until`` (both times from the real
    clock). Returns ``("done", payload)`` when it is recorded already, ``("claimed", None)``
    when the caller may act now, or ``("held", holder)`` while another holder's claim runs.
    A claim of the same holder, of ``take_from`` (known dead) or expired at ``at`` is taken
    over. Two callers never both get "claimed", also in a transaction without the writers'
    lock (``Ledger.transaction(lock=False)``): the claim row is inserted with ``ON CONFLICT
    DO NOTHING`` and an existing one is locked (``FOR UPDATE``) before it is read, and the record
    is looked for again after the insert (a recorder commits its entry and drops its claim at
    once)."""
    subject = _effect_subject(key)
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    while True:
        found = effect_get(session, key=key)
        if found is not None:
            return "done", found
        new = {"subject": subject, "holder": holder, "claimed_at": at, "expires_at": until}
        if session.execute(
            insert(EffectClaim).values(**new).on_conflict_do_nothing().returning(EffectClaim.subject)
        ).first():
            found = effect_get(session, key=key)  # recorded and unclaimed since the first look
            if found is not None:
                effect_unclaim(session, key=key, holder=holder)
                return "done", found
            return "claimed", None
        claim = session.scalar(
            select(EffectClaim)
            .where(EffectClaim.subject == subject)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        if claim is None:
            continue  # its holder recorded (or gave up) since our insert: look again
        if claim.holder not in (holder, take_from) and claim.expires_at > at:
            return "held", claim.holder
        claim.holder, claim.claimed_at, claim.expires_at = holder, at, until
        session.flush()
        return "claimed", None


def effect_unclaim(session: Session, *, key: str, holder: str | None = None) -> None:
    """Drop the claim of ``key`` (only ``holder``'s, when given): recorded, or given up."""
    query = delete(EffectClaim).where(EffectClaim.subject == _effect_subject(key))
    if holder is not None:
        query = query.where(EffectClaim.holder == holder)
    session.execute(query)


def open_ballots(session: Session) -> list[Ballot]:
    """Every ballot still open, oldest first."""
    return list(session.scalars(select(Ballot).where(Ballot.status == BallotStatus.OPEN).order_by(Ballot.id)))


def active_memberships(session: Session) -> list[Membership]:
    """Every active membership that has not ended, by id."""
    return list(
        session.scalars(
            select(Membership)
            .where(Membership.status == MembershipStatus.ACTIVE, Membership.ended_at.is_(None))
            .order_by(Membership.id)
        )
    )


def applications_with_status(session: Session, *statuses: ApplicationStatus | str) -> list[Application]:
    """Applications in any of ``statuses``, oldest first."""
    wanted = [ApplicationStatus(s) for s in statuses]
    return list(session.scalars(select(Application).where(Application.status.in_(wanted)).order_by(Application.id)))


def open_application_of(session: Session, person: Person) -> Application | None:
    """The person's open application (open, confirmed or voting), if any (R-APP-3)."""
    return session.scalar(
        select(Application).where(Application.person_id == person.id, Application.status.in_(OPEN_APPLICATION))
    )


def ballot_votes_history(session: Session, ballot: Ballot) -> list[Vote]:
    """Every vote of a ballot, replaced ones included, in the order they were cast."""
    return list(session.scalars(select(Vote).where(Vote.ballot_id == ballot.id).order_by(Vote.id)))


def platform_roles_of(session: Session, person: Person) -> list[PlatformRoleAssignment]:
    """Every platform role row of ``person`` (desired or not, observed or not)."""
    return list(
        session.scalars(
            select(PlatformRoleAssignment)
            .where(PlatformRoleAssignment.person_id == person.id)
            .order_by(PlatformRoleAssignment.id)
        )
    )


# --- Board escalation (issue 10): proposal steps and small queries ---------------------------


def proposals_with_status(session: Session, *statuses: ProposalStatus | str) -> list[Proposal]:
    """Proposals in any of ``statuses``, oldest first."""
    wanted = [ProposalStatus(s) for s in statuses]
    return list(session.scalars(select(Proposal).where(Proposal.status.in_(wanted)).order_by(Proposal.id)))


def endorsement_ballot_of(session: Session, proposal: Proposal) -> Ballot | None:
    """The proposal's WG endorsement ballot (the latest one opened for it), if any."""
    return session.scalar(
        select(Ballot)
        .where(Ballot.kind == BallotKind.ENDORSEMENT, Ballot.subject_ref == ref(proposal))
        .order_by(Ballot.id.desc())
        .limit(1)
    )


def mark_proposal_endorsing(
    session: Session, proposal: Proposal, *, ballot_id: int, actor: str, at: datetime | None = None
) -> Proposal:
    """The WG votes on endorsing the proposal before it goes to the Board (R-BOARD)."""
    at = _now(at)
    if proposal.status not in (ProposalStatus.DRAFT, ProposalStatus.ENDORSING):
        raise Conflict(f"{ref(proposal)} is {proposal.status}")
    if proposal.status == ProposalStatus.ENDORSING and proposal.endorsement_ballot_id == ballot_id:
        return proposal
    proposal.status, proposal.endorsement_ballot_id = ProposalStatus.ENDORSING, ballot_id
    session.flush()
    _log(session, actor=actor, action="proposal.endorsing", subject=ref(proposal), at=at, ballot=ballot_id)
    return proposal


def withdraw_proposal(
    session: Session, proposal: Proposal, *, reason_code: str, actor: str, at: datetime | None = None
) -> Proposal:
    """The proposal does not go (further) to the Board; ``reason_code`` is a short code such
    as ``not-endorsed``, never free text. Idempotent."""
    at = _now(at)
    if proposal.status == ProposalStatus.WITHDRAWN:
        return proposal
    if proposal.status == ProposalStatus.DECIDED:
        raise Conflict(f"{ref(proposal)} is already decided")
    proposal.status = ProposalStatus.WITHDRAWN
    session.flush()
    _log(
        session,
        actor=actor,
        action="proposal.withdrawn",
        subject=ref(proposal),
        at=at,
        reason=reason_code,
        ballot=proposal.endorsement_ballot_id,
    )
    return proposal


def set_escalation_ref(
    session: Session, proposal: Proposal, *, escalation_ref: str, actor: str, at: datetime | None = None
) -> Proposal:
    """Where the escalation was posted (the Slack ``channel:ts``), learnt after posting."""
    at = _now(at)
    if proposal.escalation_ref == escalation_ref:
        return proposal
    proposal.escalation_ref = escalation_ref
    session.flush()
    _log(
        session,
        actor=actor,
        action="proposal.escalation-posted",
        subject=ref(proposal),
        at=at,
        escalation=escalation_ref,
    )
    return proposal


def record_board_attempt(
    session: Session,
    *,
    proposal_ref: str,
    decision: BoardDecision | str,
    allowed: bool,
    reason_code: str,
    source: str,
    actor: str,
    person_id: int | None = None,
    event_ref: str | None = None,
    at: datetime | None = None,
) -> None:
    """Audit one attempt to decide for the Board, allowed or refused (R-BOARD, R-RECORD).

    Holds references and codes only: the person's ledger id when the clicker is known, the inbox
    event that carried it (whose payload is erasable), never a platform id or a name."""
    at = _now(at)
    _log(
        session,
        actor=actor,
        action="proposal.decision-attempt",
        subject=proposal_ref,
        at=at,
        decision=BoardDecision(decision),
        allowed=allowed,
        reason=reason_code,
        source=source,
        person=person_id,
        event=event_ref,
    )


def record_board_reminder(
    session: Session, proposal: Proposal, *, number: int, actor: str, at: datetime | None = None
) -> Proposal:
    """The Board was reminded (``number``: 1 for the first reminder) of an undecided proposal."""
    at = _now(at)
    proposal.last_reminder_at = at
    session.flush()
    _log(session, actor=actor, action="proposal.reminded", subject=ref(proposal), at=at, number=number)
    return proposal
