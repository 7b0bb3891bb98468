"""The ledger's tables as SQLAlchemy 2 typed ORM models.

Personal data (names, e-mails, usernames, application answers, free text) lives only in these
ordinary tables, never in ``audit_log``: audit entries refer to rows by id and to content by a
salted hash (``Person.salt``), so erasing a person keeps the log verifiable (R-PRIVACY-2).
Every timestamp is a timezone-aware UTC ``datetime`` (``UTCDateTime``).
"""

from __future__ import annotations

import enum
import re
from datetime import datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import (
    JSON,
    Boolean,
    Enum,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from ledger.types import UTCDateTime, utcnow

# Stable constraint names, so migrations can refer to them on every backend.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def _unique_where(name: str, *columns: str, where: str) -> Index:
    # A partial unique index ("one open row per ..."): each dialect takes its own keyword.
    return Index(name, *columns, unique=True, sqlite_where=text(where), postgresql_where=text(where))


class Base(DeclarativeBase):
    """Declarative base of every ledger model."""

    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON(), Decimal: Numeric(12, 2)}


def _enum(cls: type[enum.Enum]) -> Enum:
    # Stored as plain strings (no native enum, no CHECK): a new value needs no migration, and
    # the ORM still refuses an unknown value on write.
    return Enum(
        cls,
        native_enum=False,
        create_constraint=False,
        validate_strings=True,
        length=24,
        values_callable=lambda e: [m.value for m in e],
    )


class Platform(enum.StrEnum):
    """Where an identity lives. ``email`` is an identity kind too (issue 3).

    Open (issue 20): any connector name (``matrix``, a plugin's) is a member too, made on first
    use, so a platform served from the connector registry needs no change here."""

    DISCOURSE = "discourse"
    DISCORD = "discord"
    SLACK = "slack"
    EMAIL = "email"

    @classmethod
    def _missing_(cls, value: object) -> Platform | None:
        if not isinstance(value, str) or not _PLATFORM_NAME.fullmatch(value):
            return None  # Platform("Bad Name") still raises ValueError
        member = str.__new__(cls, value)
        member._name_ = value.upper()
        member._value_ = value
        return cast(Platform, cls._value2member_map_.setdefault(value, member))


# A connector's entry-point name as the ledger stores it (columns are 24 characters).
_PLATFORM_NAME = re.compile(r"[a-z][a-z0-9_-]{0,23}")


class PlatformName(TypeDecorator[Platform]):
    """A ``Platform`` stored as its name (plain text, as the enum column stored it before: no
    migration); an unknown or malformed name is refused on write and on read."""

    impl = String(24)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        return None if value is None else Platform(value).value

    def process_result_value(self, value: Any, dialect: Any) -> Platform | None:
        return None if value is None else Platform(value)


class MembershipStatus(enum.StrEnum):
    """A membership's state (R-TERM-2, R-LEAVE, R-REMOVE)."""

    APPLICANT = "applicant"
    ACTIVE = "active"
    LAPSED = "lapsed"
    LEFT = "left"
    REMOVED = "removed"


class TermOrigin(enum.StrEnum):
    """What started a term: an approval ballot, an opt-in (R-TERM-2) or a roster import."""

    APPROVAL = "approval"
    OPT_IN = "opt-in"
    IMPORT = "import"


class WgRole(enum.StrEnum):
    """Roles inside the working group (R-ROLE-*)."""

    CHAIR = "chair"
    CO_CHAIR = "co_chair"
    COC_LIAISON = "coc_liaison"
    BOARD_LIAISON = "board_liaison"
    SC_LIAISON = "sc_liaison"


class ApplicationStatus(enum.StrEnum):
    """An application's state (R-APP-1 .. R-APP-3, R-VOTE-APPROVE)."""

    OPEN = "open"
    CONFIRMED = "confirmed"
    VOTING = "voting"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"
    REFUSED = "refused"
    WITHDRAWN = "withdrawn"


class EligibilityOutcome(enum.StrEnum):
    """R-ELIG-1: "unknown" is never "yes"."""

    YES = "yes"
    NO = "no"
    UNKNOWN = "unknown"


class BallotKind(enum.StrEnum):
    """What a ballot decides."""

    APPROVAL = "approval"
    REMOVAL = "removal"
    ENDORSEMENT = "endorsement"
    APPOINTMENT = "appointment"  # a Chair or Co-Chair (R-ROLE-APPOINT)


class BallotStatus(enum.StrEnum):
    OPEN = "open"
    CLOSED = "closed"
    CANCELLED = "cancelled"


class BallotOutcome(enum.StrEnum):
    PASSED = "passed"
    FAILED = "failed"


class VoteChoice(enum.StrEnum):
    YES = "yes"
    NO = "no"
    ABSTAIN = "abstain"


class ProposalStatus(enum.StrEnum):
    """A proposal to the Board (R-BOARD)."""

    DRAFT = "draft"
    ENDORSING = "endorsing"
    ESCALATED = "escalated"
    DECIDED = "decided"
    WITHDRAWN = "withdrawn"


class BoardDecision(enum.StrEnum):
    APPROVED = "approved"
    REJECTED = "rejected"
    NEEDS_INFO = "needs-info"


class IdeaStatus(enum.StrEnum):
    """R-IDEA-1 statuses."""

    NEW = "new"
    TRIAGED = "triaged"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    DUPLICATE = "duplicate"
    IN_PROGRESS = "in-progress"
    DONE = "done"


# --- people ----------------------------------------------------------------------------------


class Person(Base):
    """One human. ``handle`` is the WG's name for them (the key of roster files and rule lists)."""

    __tablename__ = "people"

    id: Mapped[int] = mapped_column(primary_key=True)
    handle: Mapped[str] = mapped_column(String(80), unique=True)
    display_name: Mapped[str | None] = mapped_column(String(200))
    home_platform: Mapped[Platform | None] = mapped_column(PlatformName())
    # Salt of every content hash about this person in the audit log; erasure clears it, so the
    # hashes left in the log can no longer be linked to a guessed value.
    salt: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    erased_at: Mapped[datetime | None]

    identities: Mapped[list[Identity]] = relationship(back_populates="person", order_by="Identity.id")
    memberships: Mapped[list[Membership]] = relationship(back_populates="person", order_by="Membership.id")


class Identity(Base):
    """A person's account on a platform (or an e-mail address); each one belongs to one person."""

    __tablename__ = "identities"
    __table_args__ = (
        UniqueConstraint("platform", "external_id"),
        UniqueConstraint("platform", "username_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    platform: Mapped[Platform] = mapped_column(PlatformName())
    # The platform's stable user id (Discourse user id, Discord snowflake, Slack U…).
    external_id: Mapped[str | None] = mapped_column(String(64))
    # Discourse/Discord username or the e-mail address; username_key is its case-folded form
    # (both platforms and e-mail compare names case-insensitively).
    username: Mapped[str | None] = mapped_column(String(320))
    username_key: Mapped[str | None] = mapped_column(String(320))
    verified_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    person: Mapped[Person] = relationship(back_populates="identities")


class Membership(Base):
    """One stretch of membership, from application or import to its end (R-TERM-*, R-LEAVE)."""

    __tablename__ = "memberships"
    __table_args__ = (
        # At most one membership per person that has not ended.
        _unique_where("uq_memberships_open_person", "person_id", where="ended_at IS NULL"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    status: Mapped[MembershipStatus] = mapped_column(_enum(MembershipStatus))
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    # Reference to what ended it (a ballot, a command): an id, never free text.
    ended_by_ballot_id: Mapped[int | None] = mapped_column(ForeignKey("ballots.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    person: Mapped[Person] = relationship(back_populates="memberships")
    terms: Mapped[list[Term]] = relationship(back_populates="membership", order_by="Term.number")


class Term(Base):
    """One year of membership (R-TERM-1); an opt-in starts the next one (R-TERM-2)."""

    __tablename__ = "terms"
    __table_args__ = (UniqueConstraint("membership_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    membership_id: Mapped[int] = mapped_column(ForeignKey("memberships.id"), index=True)
    number: Mapped[int]
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    origin: Mapped[TermOrigin] = mapped_column(_enum(TermOrigin))
    approved_by_ballot_id: Mapped[int | None] = mapped_column(ForeignKey("ballots.id"))
    # The opt-in record: when and from where the member opted in to this term.
    opted_in_at: Mapped[datetime | None]
    opt_in_source: Mapped[str | None] = mapped_column(String(24))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    membership: Mapped[Membership] = relationship(back_populates="terms")


class WgRoleAssignment(Base):
    """Who held a WG role from when to when, and who assigned it (R-ROLE-COC: "who said so")."""

    __tablename__ = "wg_roles"
    __table_args__ = (_unique_where("uq_wg_roles_open_role", "role", where="ends_at IS NULL"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    role: Mapped[WgRole] = mapped_column(_enum(WgRole))
    # Who assigned it, as given: a reference like "ballot:12", "coc-wg" or "operator".
    assigned_by: Mapped[str] = mapped_column(String(200))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PlatformRoleAssignment(Base):
    """A platform role of a person: what the WG wants (desired) and what was last seen."""

    __tablename__ = "platform_roles"
    __table_args__ = (UniqueConstraint("person_id", "platform", "role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    platform: Mapped[Platform] = mapped_column(PlatformName())
    role: Mapped[str] = mapped_column(String(64))
    desired: Mapped[bool] = mapped_column(Boolean, default=False)
    desired_since: Mapped[datetime | None]
    desired_by: Mapped[str | None] = mapped_column(String(200))
    decision_ref: Mapped[str | None] = mapped_column(String(200))
    # None: never observed.
    observed: Mapped[bool | None] = mapped_column(Boolean)
    observed_at: Mapped[datetime | None]


class ReferenceList(Base):
    """Operator-maintained lists the role rules need (R-ROLE-BOARD, R-ROLE-SC), as last imported."""

    __tablename__ = "reference_lists"
    __table_args__ = (UniqueConstraint("list_name", "handle"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    list_name: Mapped[str] = mapped_column(String(40))
    handle: Mapped[str] = mapped_column(String(80))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


# --- applications and eligibility ------------------------------------------------------------


class Application(Base):
    """An application to join (R-APP-1); ``motivation`` and ``experience`` are personal data."""

    __tablename__ = "applications"

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    status: Mapped[ApplicationStatus] = mapped_column(_enum(ApplicationStatus))
    source_platform: Mapped[str] = mapped_column(String(24))
    submitted_at: Mapped[datetime]
    motivation: Mapped[str | None] = mapped_column(Text)
    experience: Mapped[str | None] = mapped_column(Text)
    # R-ELIG-2: the nominator as named (may not be in the ledger), and whether the list had them.
    nominator_handle: Mapped[str | None] = mapped_column(String(200))
    nominator_person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    nomination_valid: Mapped[bool | None] = mapped_column(Boolean)
    nomination_reason: Mapped[str | None] = mapped_column(String(400))
    ballot_id: Mapped[int | None] = mapped_column(ForeignKey("ballots.id"))
    closed_at: Mapped[datetime | None]
    answers_erased_at: Mapped[datetime | None]

    confirmations: Mapped[list[ApplicationConfirmation]] = relationship(order_by="ApplicationConfirmation.id")
    eligibility: Mapped[list[EligibilityCheck]] = relationship(order_by="EligibilityCheck.id")


class ApplicationConfirmation(Base):
    """R-APP-2: the applicant confirmed the application from this platform account."""

    __tablename__ = "application_confirmations"
    __table_args__ = (UniqueConstraint("application_id", "identity_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id"))
    identity_id: Mapped[int] = mapped_column(ForeignKey("identities.id"))
    confirmed_at: Mapped[datetime]


class EligibilityCheck(Base):
    """R-ELIG-4: one eligibility decision with the evidence it used."""

    __tablename__ = "eligibility_checks"

    id: Mapped[int] = mapped_column(primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id"), index=True)
    checked_at: Mapped[datetime]
    outcome: Mapped[EligibilityOutcome] = mapped_column(_enum(EligibilityOutcome))
    ruling: Mapped[str] = mapped_column(String(40))
    reason: Mapped[str] = mapped_column(String(400))
    evidence: Mapped[dict[str, Any]] = mapped_column(default=dict)


# --- ballots and votes -----------------------------------------------------------------------


class Ballot(Base):
    """A ballot with its electorate snapshot (R-ELECTORATE) and the rule parameters it runs by."""

    __tablename__ = "ballots"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[BallotKind] = mapped_column(_enum(BallotKind))
    subject_person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    # What it is about as a reference: "application:4", "person:7", "proposal:2".
    subject_ref: Mapped[str] = mapped_column(String(80))
    opened_by: Mapped[str] = mapped_column(String(80))
    rule_params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    opens_at: Mapped[datetime]
    closes_at: Mapped[datetime]
    status: Mapped[BallotStatus] = mapped_column(_enum(BallotStatus))
    closed_at: Mapped[datetime | None]
    outcome: Mapped[BallotOutcome | None] = mapped_column(_enum(BallotOutcome))
    ruling: Mapped[str | None] = mapped_column(String(40))
    tally: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    electors: Mapped[list[BallotElector]] = relationship(order_by="BallotElector.person_id")


class BallotElector(Base):
    """One member of a ballot's electorate, frozen when it opened."""

    __tablename__ = "ballot_electors"

    ballot_id: Mapped[int] = mapped_column(ForeignKey("ballots.id"), primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), primary_key=True)


class Vote(Base):
    """A vote; a later vote of the same voter replaces it (``replaced_by_id``) until closing."""

    __tablename__ = "votes"
    __table_args__ = (_unique_where("uq_votes_current", "ballot_id", "voter_person_id", where="replaced_at IS NULL"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ballot_id: Mapped[int] = mapped_column(ForeignKey("ballots.id"), index=True)
    voter_person_id: Mapped[int] = mapped_column(ForeignKey("people.id"))
    choice: Mapped[VoteChoice] = mapped_column(_enum(VoteChoice))
    source_platform: Mapped[str] = mapped_column(String(24))
    cast_at: Mapped[datetime]
    replaced_at: Mapped[datetime | None]
    replaced_by_id: Mapped[int | None] = mapped_column(ForeignKey("votes.id"))


# --- the Board, ideas ------------------------------------------------------------------------


class Proposal(Base):
    """A proposal that goes to the DSF Board (R-BOARD), with the Board's decision."""

    __tablename__ = "proposals"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str | None] = mapped_column(Text)
    amount: Mapped[Decimal | None]
    currency: Mapped[str | None] = mapped_column(String(3))
    purpose: Mapped[str | None] = mapped_column(Text)
    proposed_by_person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    endorsement_ballot_id: Mapped[int | None] = mapped_column(ForeignKey("ballots.id"))
    status: Mapped[ProposalStatus] = mapped_column(_enum(ProposalStatus))
    created_at: Mapped[datetime]
    escalated_at: Mapped[datetime | None]
    escalation_ref: Mapped[str | None] = mapped_column(String(200))
    last_reminder_at: Mapped[datetime | None]
    decision: Mapped[BoardDecision | None] = mapped_column(_enum(BoardDecision))
    decided_by: Mapped[str | None] = mapped_column(String(200))
    decided_at: Mapped[datetime | None]
    decision_source: Mapped[str | None] = mapped_column(String(24))
    # R-BUDGET (migration 0018): the amount the Board approved (default the amount asked; it
    # may approve another), and when the request was closed (no more spending).
    approved_amount: Mapped[Decimal | None]
    closed_at: Mapped[datetime | None]
    # R-PLATFORM: the platform a trial/migrate/retire proposal is about, the one a migration
    # replaces, and the end date a trial asks for (None: the charter's default).
    platform: Mapped[str | None] = mapped_column(String(24))
    replaces_platform: Mapped[str | None] = mapped_column(String(24))
    trial_ends_at: Mapped[datetime | None]


class Idea(Base):
    """A backlog item (R-IDEA-1) with its triage (R-IDEA-2).

    ``source_key`` names where it came from, with the platform instance
    (``discord:<guild>:interaction:<id>``, ``discourse:<forum host>:topic:<id>``,
    ``operator:<hash>``): unique, so a replayed webhook or interaction
    never files it twice. ``author_handle`` is the platform handle of an author who is not a
    person in the ledger. Triage suggests ``duplicate_of_id`` with its ``similarity`` (0..1),
    ``needs_board`` with ``board_kind`` and ``platform``; ``flagged_at`` is set when the item
    has waited for the WG longer than the charter allows."""

    __tablename__ = "ideas"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(24))
    source_url: Mapped[str | None] = mapped_column(String(500))
    source_key: Mapped[str | None] = mapped_column(String(300), unique=True)
    author_person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    author_handle: Mapped[str | None] = mapped_column(String(120))
    status: Mapped[IdeaStatus] = mapped_column(_enum(IdeaStatus))
    platform: Mapped[str | None] = mapped_column(String(24))
    needs_board: Mapped[bool | None] = mapped_column(Boolean)
    board_kind: Mapped[str | None] = mapped_column(String(40))
    duplicate_of_id: Mapped[int | None] = mapped_column(ForeignKey("ideas.id"))
    similarity: Mapped[Decimal | None] = mapped_column(Numeric(4, 3))
    triaged_at: Mapped[datetime | None]
    flagged_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    # R-BUDGET (migration 0018): the budget request an idea about money led to.
    proposal_id: Mapped[int | None] = mapped_column(ForeignKey("proposals.id"), index=True)

    history: Mapped[list[IdeaStatusChange]] = relationship(order_by="IdeaStatusChange.id")


class IdeaStatusChange(Base):
    """One step of an idea's status history."""

    __tablename__ = "idea_status_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    idea_id: Mapped[int] = mapped_column(ForeignKey("ideas.id"), index=True)
    from_status: Mapped[IdeaStatus | None] = mapped_column(_enum(IdeaStatus))
    to_status: Mapped[IdeaStatus] = mapped_column(_enum(IdeaStatus))
    changed_by: Mapped[str] = mapped_column(String(80))
    changed_at: Mapped[datetime]
    # The member's "why" (``/idea-status`` note), if any.
    note: Mapped[str | None] = mapped_column(Text)


# --- inbox, erasures, audit log --------------------------------------------------------------


class InboxEvent(Base):
    """A raw inbound event (webhook, interaction, form post), stored once per ``dedupe_key``."""

    __tablename__ = "inbox"
    # The gateway's drain loop asks for "not processed, not dispatched" (migration 0003).
    __table_args__ = (Index("ix_inbox_processed_at_dispatched_at", "processed_at", "dispatched_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    dedupe_key: Mapped[str] = mapped_column(String(300), unique=True)
    source: Mapped[str] = mapped_column(String(24))
    kind: Mapped[str] = mapped_column(String(80))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    received_at: Mapped[datetime]
    # Set once a flow has handled the event, with the person it concerned (for export/erasure).
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    processed_at: Mapped[datetime | None]
    result_ref: Mapped[str | None] = mapped_column(String(200))
    # Dispatch bookkeeping (gateway, issue 7): the flow route chosen when the event arrived; the
    # claim (``dispatched_at``, numbered by ``dispatch_attempts``) a dispatcher takes before it
    # starts the run; ``dispatch_note`` = "awaiting-handler" while that route's flow is not built.
    route: Mapped[str | None] = mapped_column(String(40))
    dispatch_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    dispatched_at: Mapped[datetime | None]
    dispatch_note: Mapped[str | None] = mapped_column(String(40))
    # A signed request's body exactly as received (issue 19); ``payload`` holds a safe view of
    # it (connectors.jsonbody: lone surrogates replaced, deep nesting cut, huge numbers as text).
    raw: Mapped[bytes | None] = mapped_column(LargeBinary)


class Erasure(Base):
    """R-PRIVACY-2: a person's personal data was erased, when, by whom and why."""

    __tablename__ = "erasures"

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    erased_at: Mapped[datetime]
    erased_by: Mapped[str] = mapped_column(String(80))
    reason: Mapped[str] = mapped_column(Text)


class AuditEntry(Base):
    """One entry of the append-only, hash-chained audit log (R-RECORD).

    ``hash = sha256(prev_hash + canonical JSON of seq, at, actor, action, subject, payload)``;
    ``payload_json`` is stored exactly as hashed. Never updated or deleted: on PostgreSQL a
    trigger refuses it, on SQLite too (``ledger.migrations``).
    """

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, unique=True)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(80))
    action: Mapped[str] = mapped_column(String(80))
    subject: Mapped[str] = mapped_column(String(80), index=True)
    payload_json: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class EffectClaim(Base):
    """A side effect being done now (``flows.kit.once``): who does it and until
    when. Written before the effect, deleted with its record, so two concurrent runs never both
    send it; a claim past ``expires_at`` (its holder died) is taken over. ``subject`` is the
    effect's audit subject (a digest of the key), so no key text is stored here."""

    __tablename__ = "effect_claims"

    subject: Mapped[str] = mapped_column(String(80), primary_key=True)
    holder: Mapped[str] = mapped_column(String(120))
    claimed_at: Mapped[datetime]
    expires_at: Mapped[datetime]


# Tables of later capabilities live in their own modules; importing them here puts them on
# Base.metadata (migrations, compare_metadata) whichever module is imported first.
from ledger import (  # noqa: E402,F401 - see above
    models_appointments,
    models_budget,
    models_commons,
    models_guides,
    models_moderation,
    models_platforms,
    models_reports,
    models_roles,
    models_safety,
)
