"""Initial schema: every table of the ledger (issue 3).

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ledger.types import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(length=80), nullable=False),
        sa.Column("action", sa.String(length=80), nullable=False),
        sa.Column("subject", sa.String(length=80), nullable=False),
        sa.Column("payload_json", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
        sa.UniqueConstraint("hash", name=op.f("uq_audit_log_hash")),
        sa.UniqueConstraint("seq", name=op.f("uq_audit_log_seq")),
    )
    op.create_index(op.f("ix_audit_log_subject"), "audit_log", ["subject"], unique=False)

    op.create_table(
        "people",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("handle", sa.String(length=80), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=True),
        sa.Column(
            "home_platform",
            sa.Enum("discourse", "discord", "slack", "email", name="platform", native_enum=False, length=24),
            nullable=True,
        ),
        sa.Column("salt", sa.String(length=64), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("erased_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_people")),
        sa.UniqueConstraint("handle", name=op.f("uq_people_handle")),
    )
    op.create_table(
        "reference_lists",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("list_name", sa.String(length=40), nullable=False),
        sa.Column("handle", sa.String(length=80), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reference_lists")),
        sa.UniqueConstraint("list_name", "handle", name=op.f("uq_reference_lists_list_name_handle")),
    )
    op.create_table(
        "ballots",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum("approval", "removal", "endorsement", name="ballotkind", native_enum=False, length=24),
            nullable=False,
        ),
        sa.Column("subject_person_id", sa.Integer(), nullable=True),
        sa.Column("subject_ref", sa.String(length=80), nullable=False),
        sa.Column("opened_by", sa.String(length=80), nullable=False),
        sa.Column("rule_params", sa.JSON(), nullable=False),
        sa.Column("opens_at", UTCDateTime(), nullable=False),
        sa.Column("closes_at", UTCDateTime(), nullable=False),
        sa.Column(
            "status",
            sa.Enum("open", "closed", "cancelled", name="ballotstatus", native_enum=False, length=24),
            nullable=False,
        ),
        sa.Column("closed_at", UTCDateTime(), nullable=True),
        sa.Column(
            "outcome", sa.Enum("passed", "failed", name="ballotoutcome", native_enum=False, length=24), nullable=True
        ),
        sa.Column("ruling", sa.String(length=40), nullable=True),
        sa.Column("tally", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(["subject_person_id"], ["people.id"], name=op.f("fk_ballots_subject_person_id_people")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ballots")),
    )
    op.create_table(
        "erasures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("erased_at", UTCDateTime(), nullable=False),
        sa.Column("erased_by", sa.String(length=80), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["person_id"], ["people.id"], name=op.f("fk_erasures_person_id_people")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_erasures")),
    )
    op.create_index(op.f("ix_erasures_person_id"), "erasures", ["person_id"], unique=False)

    op.create_table(
        "ideas",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column("source", sa.String(length=24), nullable=False),
        sa.Column("source_url", sa.String(length=500), nullable=True),
        sa.Column("author_person_id", sa.Integer(), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "new",
                "triaged",
                "accepted",
                "declined",
                "duplicate",
                "in-progress",
                "done",
                name="ideastatus",
                native_enum=False,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("platform", sa.String(length=24), nullable=True),
        sa.Column("needs_board", sa.Boolean(), nullable=True),
        sa.Column("duplicate_of_id", sa.Integer(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["author_person_id"], ["people.id"], name=op.f("fk_ideas_author_person_id_people")),
        sa.ForeignKeyConstraint(["duplicate_of_id"], ["ideas.id"], name=op.f("fk_ideas_duplicate_of_id_ideas")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ideas")),
    )
    op.create_table(
        "identities",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column(
            "platform",
            sa.Enum("discourse", "discord", "slack", "email", name="platform", native_enum=False, length=24),
            nullable=False,
        ),
        sa.Column("external_id", sa.String(length=64), nullable=True),
        sa.Column("username", sa.String(length=320), nullable=True),
        sa.Column("username_key", sa.String(length=320), nullable=True),
        sa.Column("verified_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["person_id"], ["people.id"], name=op.f("fk_identities_person_id_people")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identities")),
        sa.UniqueConstraint("platform", "external_id", name=op.f("uq_identities_platform_external_id")),
        sa.UniqueConstraint("platform", "username_key", name=op.f("uq_identities_platform_username_key")),
    )
    op.create_index(op.f("ix_identities_person_id"), "identities", ["person_id"], unique=False)

    op.create_table(
        "inbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dedupe_key", sa.String(length=300), nullable=False),
        sa.Column("source", sa.String(length=24), nullable=False),
        sa.Column("kind", sa.String(length=80), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=True),
        sa.Column("processed_at", UTCDateTime(), nullable=True),
        sa.Column("result_ref", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(["person_id"], ["people.id"], name=op.f("fk_inbox_person_id_people")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbox")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_inbox_dedupe_key")),
    )
    op.create_table(
        "platform_roles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column(
            "platform",
            sa.Enum("discourse", "discord", "slack", "email", name="platform", native_enum=False, length=24),
            nullable=False,
        ),
        sa.Column("role", sa.String(length=64), nullable=False),
        sa.Column("desired", sa.Boolean(), nullable=False),
        sa.Column("desired_since", UTCDateTime(), nullable=True),
        sa.Column("desired_by", sa.String(length=200), nullable=True),
        sa.Column("decision_ref", sa.String(length=200), nullable=True),
        sa.Column("observed", sa.Boolean(), nullable=True),
        sa.Column("observed_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["person_id"], ["people.id"], name=op.f("fk_platform_roles_person_id_people")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_platform_roles")),
        sa.UniqueConstraint("person_id", "platform", "role", name=op.f("uq_platform_roles_person_id_platform_role")),
    )
    op.create_index(op.f("ix_platform_roles_person_id"), "platform_roles", ["person_id"], unique=False)

    op.create_table(
        "wg_roles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column(
            "role",
            sa.Enum(
                "chair",
                "co_chair",
                "coc_liaison",
                "board_liaison",
                "sc_liaison",
                name="wgrole",
                native_enum=False,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("assigned_by", sa.String(length=200), nullable=False),
        sa.Column("starts_at", UTCDateTime(), nullable=False),
        sa.Column("ends_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["person_id"], ["people.id"], name=op.f("fk_wg_roles_person_id_people")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wg_roles")),
    )
    op.create_index(op.f("ix_wg_roles_person_id"), "wg_roles", ["person_id"], unique=False)
    op.create_index(
        "uq_wg_roles_open_role",
        "wg_roles",
        ["role"],
        unique=True,
        sqlite_where=sa.text("ends_at IS NULL"),
        postgresql_where=sa.text("ends_at IS NULL"),
    )

    op.create_table(
        "applications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "open",
                "confirmed",
                "voting",
                "approved",
                "rejected",
                "expired",
                "refused",
                "withdrawn",
                name="applicationstatus",
                native_enum=False,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("source_platform", sa.String(length=24), nullable=False),
        sa.Column("submitted_at", UTCDateTime(), nullable=False),
        sa.Column("motivation", sa.Text(), nullable=True),
        sa.Column("experience", sa.Text(), nullable=True),
        sa.Column("nominator_handle", sa.String(length=200), nullable=True),
        sa.Column("nominator_person_id", sa.Integer(), nullable=True),
        sa.Column("nomination_valid", sa.Boolean(), nullable=True),
        sa.Column("nomination_reason", sa.String(length=400), nullable=True),
        sa.Column("ballot_id", sa.Integer(), nullable=True),
        sa.Column("closed_at", UTCDateTime(), nullable=True),
        sa.Column("answers_erased_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["ballot_id"], ["ballots.id"], name=op.f("fk_applications_ballot_id_ballots")),
        sa.ForeignKeyConstraint(
            ["nominator_person_id"], ["people.id"], name=op.f("fk_applications_nominator_person_id_people")
        ),
        sa.ForeignKeyConstraint(["person_id"], ["people.id"], name=op.f("fk_applications_person_id_people")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_applications")),
    )
    op.create_index(op.f("ix_applications_person_id"), "applications", ["person_id"], unique=False)

    op.create_table(
        "ballot_electors",
        sa.Column("ballot_id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["ballot_id"], ["ballots.id"], name=op.f("fk_ballot_electors_ballot_id_ballots")),
        sa.ForeignKeyConstraint(["person_id"], ["people.id"], name=op.f("fk_ballot_electors_person_id_people")),
        sa.PrimaryKeyConstraint("ballot_id", "person_id", name=op.f("pk_ballot_electors")),
    )
    op.create_table(
        "idea_status_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("idea_id", sa.Integer(), nullable=False),
        sa.Column(
            "from_status",
            sa.Enum(
                "new",
                "triaged",
                "accepted",
                "declined",
                "duplicate",
                "in-progress",
                "done",
                name="ideastatus",
                native_enum=False,
                length=24,
            ),
            nullable=True,
        ),
        sa.Column(
            "to_status",
            sa.Enum(
                "new",
                "triaged",
                "accepted",
                "declined",
                "duplicate",
                "in-progress",
                "done",
                name="ideastatus",
                native_enum=False,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("changed_by", sa.String(length=80), nullable=False),
        sa.Column("changed_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["idea_id"], ["ideas.id"], name=op.f("fk_idea_status_changes_idea_id_ideas")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_idea_status_changes")),
    )
    op.create_index(op.f("ix_idea_status_changes_idea_id"), "idea_status_changes", ["idea_id"], unique=False)

    op.create_table(
        "memberships",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "applicant",
                "active",
                "lapsed",
                "left",
                "removed",
                name="membershipstatus",
                native_enum=False,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        sa.Column("ended_by_ballot_id", sa.Integer(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["ended_by_ballot_id"], ["ballots.id"], name=op.f("fk_memberships_ended_by_ballot_id_ballots")
        ),
        sa.ForeignKeyConstraint(["person_id"], ["people.id"], name=op.f("fk_memberships_person_id_people")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_memberships")),
    )
    op.create_index(op.f("ix_memberships_person_id"), "memberships", ["person_id"], unique=False)
    op.create_index(
        "uq_memberships_open_person",
        "memberships",
        ["person_id"],
        unique=True,
        sqlite_where=sa.text("ended_at IS NULL"),
        postgresql_where=sa.text("ended_at IS NULL"),
    )

    op.create_table(
        "proposals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column("amount", sa.Numeric(precision=12, scale=2), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("purpose", sa.Text(), nullable=True),
        sa.Column("proposed_by_person_id", sa.Integer(), nullable=True),
        sa.Column("endorsement_ballot_id", sa.Integer(), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "draft",
                "endorsing",
                "escalated",
                "decided",
                "withdrawn",
                name="proposalstatus",
                native_enum=False,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("escalated_at", UTCDateTime(), nullable=True),
        sa.Column("escalation_ref", sa.String(length=200), nullable=True),
        sa.Column("last_reminder_at", UTCDateTime(), nullable=True),
        sa.Column(
            "decision",
            sa.Enum("approved", "rejected", "needs-info", name="boarddecision", native_enum=False, length=24),
            nullable=True,
        ),
        sa.Column("decided_by", sa.String(length=200), nullable=True),
        sa.Column("decided_at", UTCDateTime(), nullable=True),
        sa.Column("decision_source", sa.String(length=24), nullable=True),
        sa.ForeignKeyConstraint(
            ["endorsement_ballot_id"], ["ballots.id"], name=op.f("fk_proposals_endorsement_ballot_id_ballots")
        ),
        sa.ForeignKeyConstraint(
            ["proposed_by_person_id"], ["people.id"], name=op.f("fk_proposals_proposed_by_person_id_people")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_proposals")),
    )
    op.create_table(
        "votes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ballot_id", sa.Integer(), nullable=False),
        sa.Column("voter_person_id", sa.Integer(), nullable=False),
        sa.Column(
            "choice", sa.Enum("yes", "no", "abstain", name="votechoice", native_enum=False, length=24), nullable=False
        ),
        sa.Column("source_platform", sa.String(length=24), nullable=False),
        sa.Column("cast_at", UTCDateTime(), nullable=False),
        sa.Column("replaced_at", UTCDateTime(), nullable=True),
        sa.Column("replaced_by_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["ballot_id"], ["ballots.id"], name=op.f("fk_votes_ballot_id_ballots")),
        sa.ForeignKeyConstraint(["replaced_by_id"], ["votes.id"], name=op.f("fk_votes_replaced_by_id_votes")),
        sa.ForeignKeyConstraint(["voter_person_id"], ["people.id"], name=op.f("fk_votes_voter_person_id_people")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_votes")),
    )
    op.create_index(op.f("ix_votes_ballot_id"), "votes", ["ballot_id"], unique=False)
    op.create_index(
        "uq_votes_current",
        "votes",
        ["ballot_id", "voter_person_id"],
        unique=True,
        sqlite_where=sa.text("replaced_at IS NULL"),
        postgresql_where=sa.text("replaced_at IS NULL"),
    )

    op.create_table(
        "application_confirmations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("application_id", sa.Integer(), nullable=False),
        sa.Column("identity_id", sa.Integer(), nullable=False),
        sa.Column("confirmed_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["applications.id"],
            name=op.f("fk_application_confirmations_application_id_applications"),
        ),
        sa.ForeignKeyConstraint(
            ["identity_id"], ["identities.id"], name=op.f("fk_application_confirmations_identity_id_identities")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_application_confirmations")),
        sa.UniqueConstraint(
            "application_id", "identity_id", name=op.f("uq_application_confirmations_application_id_identity_id")
        ),
    )
    op.create_table(
        "eligibility_checks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("application_id", sa.Integer(), nullable=False),
        sa.Column("checked_at", UTCDateTime(), nullable=False),
        sa.Column(
            "outcome",
            sa.Enum("yes", "no", "unknown", name="eligibilityoutcome", native_enum=False, length=24),
            nullable=False,
        ),
        sa.Column("ruling", sa.String(length=40), nullable=False),
        sa.Column("reason", sa.String(length=400), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["application_id"], ["applications.id"], name=op.f("fk_eligibility_checks_application_id_applications")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_eligibility_checks")),
    )
    op.create_index(
        op.f("ix_eligibility_checks_application_id"), "eligibility_checks", ["application_id"], unique=False
    )

    op.create_table(
        "terms",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("membership_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("starts_at", UTCDateTime(), nullable=False),
        sa.Column("ends_at", UTCDateTime(), nullable=False),
        sa.Column(
            "origin",
            sa.Enum("approval", "opt-in", "import", name="termorigin", native_enum=False, length=24),
            nullable=False,
        ),
        sa.Column("approved_by_ballot_id", sa.Integer(), nullable=True),
        sa.Column("opted_in_at", UTCDateTime(), nullable=True),
        sa.Column("opt_in_source", sa.String(length=24), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["approved_by_ballot_id"], ["ballots.id"], name=op.f("fk_terms_approved_by_ballot_id_ballots")
        ),
        sa.ForeignKeyConstraint(["membership_id"], ["memberships.id"], name=op.f("fk_terms_membership_id_memberships")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_terms")),
        sa.UniqueConstraint("membership_id", "number", name=op.f("uq_terms_membership_id_number")),
    )
    op.create_index(op.f("ix_terms_membership_id"), "terms", ["membership_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_terms_membership_id"), "terms")

    op.drop_table("terms")
    op.drop_index(op.f("ix_eligibility_checks_application_id"), "eligibility_checks")

    op.drop_table("eligibility_checks")
    op.drop_table("application_confirmations")
    op.drop_index(
        "uq_votes_current",
        "votes",
        sqlite_where=sa.text("replaced_at IS NULL"),
        postgresql_where=sa.text("replaced_at IS NULL"),
    )
    op.drop_index(op.f("ix_votes_ballot_id"), "votes")

    op.drop_table("votes")
    op.drop_table("proposals")
    op.drop_index(
        "uq_memberships_open_person",
        "memberships",
        sqlite_where=sa.text("ended_at IS NULL"),
        postgresql_where=sa.text("ended_at IS NULL"),
    )
    op.drop_index(op.f("ix_memberships_person_id"), "memberships")

    op.drop_table("memberships")
    op.drop_index(op.f("ix_idea_status_changes_idea_id"), "idea_status_changes")

    op.drop_table("idea_status_changes")
    op.drop_table("ballot_electors")
    op.drop_index(op.f("ix_applications_person_id"), "applications")

    op.drop_table("applications")
    op.drop_index(
        "uq_wg_roles_open_role",
        "wg_roles",
        sqlite_where=sa.text("ends_at IS NULL"),
        postgresql_where=sa.text("ends_at IS NULL"),
    )
    op.drop_index(op.f("ix_wg_roles_person_id"), "wg_roles")

    op.drop_table("wg_roles")
    op.drop_index(op.f("ix_platform_roles_person_id"), "platform_roles")

    op.drop_table("platform_roles")
    op.drop_table("inbox")
    op.drop_index(op.f("ix_identities_person_id"), "identities")

    op.drop_table("identities")
    op.drop_table("ideas")
    op.drop_index(op.f("ix_erasures_person_id"), "erasures")

    op.drop_table("erasures")
    op.drop_table("ballots")
    op.drop_table("reference_lists")
    op.drop_table("people")
    op.drop_index(op.f("ix_audit_log_subject"), "audit_log")

    op.drop_table("audit_log")
