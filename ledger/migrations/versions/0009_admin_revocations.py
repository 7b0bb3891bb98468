"""Admin revocations that wait for a platform to have two counted admins again (R-ADMIN-4,
issue 18).

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ledger.types import UTCDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "admin_revocations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("platform", sa.String(length=24), nullable=False),
        sa.Column("membership_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("reminders", sa.Integer(), nullable=False),
        sa.Column("reminded_at", UTCDateTime(), nullable=True),
        sa.Column("resolved_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["person_id"], ["people.id"], name=op.f("fk_admin_revocations_person_id_people")),
        sa.ForeignKeyConstraint(
            ["membership_id"], ["memberships.id"], name=op.f("fk_admin_revocations_membership_id_memberships")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_admin_revocations")),
        sa.UniqueConstraint(
            "person_id", "platform", "membership_id", name=op.f("uq_admin_revocations_person_id_platform_membership_id")
        ),
    )
    op.create_index(op.f("ix_admin_revocations_person_id"), "admin_revocations", ["person_id"])
    op.create_index(op.f("ix_admin_revocations_status"), "admin_revocations", ["status"])


def downgrade() -> None:
    op.drop_index(op.f("ix_admin_revocations_status"), table_name="admin_revocations")
    op.drop_index(op.f("ix_admin_revocations_person_id"), table_name="admin_revocations")
    op.drop_table("admin_revocations")
