"""Platform roles: training acknowledgements and drift reports (issue 9).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ledger.types import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "role_training",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("platform", sa.String(length=24), nullable=False),
        sa.Column("decision_ref", sa.String(length=200), nullable=False),
        sa.Column("guide_digest", sa.String(length=80), nullable=False),
        sa.Column("sent_at", UTCDateTime(), nullable=True),
        sa.Column("message_ref", sa.String(length=200), nullable=True),
        sa.Column("acknowledged_at", UTCDateTime(), nullable=True),
        sa.Column("reminders", sa.Integer(), nullable=False),
        sa.Column("reminded_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["person_id"], ["people.id"], name=op.f("fk_role_training_person_id_people")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_role_training")),
        sa.UniqueConstraint("person_id", "platform", name=op.f("uq_role_training_person_id_platform")),
    )
    op.create_index(op.f("ix_role_training_person_id"), "role_training", ["person_id"])
    op.create_table(
        "role_drift_reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("fingerprint", sa.String(length=80), nullable=False),
        sa.Column("reported_at", UTCDateTime(), nullable=False),
        sa.Column("findings", sa.Integer(), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_role_drift_reports")),
    )
    op.create_index(op.f("ix_role_drift_reports_reported_at"), "role_drift_reports", ["reported_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_role_drift_reports_reported_at"), table_name="role_drift_reports")
    op.drop_table("role_drift_reports")
    op.drop_index(op.f("ix_role_training_person_id"), table_name="role_training")
    op.drop_table("role_training")
