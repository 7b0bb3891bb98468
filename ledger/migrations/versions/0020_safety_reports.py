"""Community reports (issue 22, R-SAFE-1/2/3): the ``safety_reports`` queue.

Revision ID: 0020
Revises: 0019
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ledger.types import UTCDateTime

revision = "0020"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "safety_reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source_key", sa.String(length=300), nullable=False),
        sa.Column("via", sa.String(length=24), nullable=False),
        sa.Column("platform", sa.String(length=24), nullable=False),
        sa.Column("reporter_key", sa.String(length=200), nullable=False),
        sa.Column("reporter_person_id", sa.Integer(), nullable=True),
        sa.Column("reporter_account", sa.String(length=80), nullable=True),
        sa.Column("reporter_username", sa.String(length=200), nullable=True),
        sa.Column("target_kind", sa.String(length=16), nullable=False),
        sa.Column("target_person_id", sa.Integer(), nullable=True),
        sa.Column("target_account", sa.String(length=80), nullable=True),
        sa.Column("target_username", sa.String(length=200), nullable=True),
        sa.Column("target_message_id", sa.String(length=80), nullable=True),
        sa.Column("target_channel_id", sa.String(length=80), nullable=True),
        sa.Column("target_link", sa.String(length=500), nullable=True),
        sa.Column("content", sa.Text(), nullable=True),
        sa.Column("content_gone", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("coc", sa.Boolean(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("claimed_by", sa.String(length=200), nullable=True),
        sa.Column("claimed_at", UTCDateTime(), nullable=True),
        sa.Column("first_response_at", UTCDateTime(), nullable=True),
        sa.Column("resolved_by", sa.String(length=200), nullable=True),
        sa.Column("resolved_at", UTCDateTime(), nullable=True),
        sa.Column("outcome", sa.String(length=24), nullable=True),
        sa.Column("referred_by", sa.String(length=200), nullable=True),
        sa.Column("referred_at", UTCDateTime(), nullable=True),
        sa.Column("coc_outcome", sa.Text(), nullable=True),
        sa.Column("coc_outcome_at", UTCDateTime(), nullable=True),
        sa.Column("reminded_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["reporter_person_id"], ["people.id"], name=op.f("fk_safety_reports_reporter_person_id_people")
        ),
        sa.ForeignKeyConstraint(
            ["target_person_id"], ["people.id"], name=op.f("fk_safety_reports_target_person_id_people")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_safety_reports")),
        sa.UniqueConstraint("source_key", name=op.f("uq_safety_reports_source_key")),
    )
    op.create_index("ix_safety_reports_reporter_key_created_at", "safety_reports", ["reporter_key", "created_at"])
    op.create_index("ix_safety_reports_state", "safety_reports", ["state"])
    op.create_index(op.f("ix_safety_reports_reporter_person_id"), "safety_reports", ["reporter_person_id"])
    op.create_index(op.f("ix_safety_reports_target_person_id"), "safety_reports", ["target_person_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_safety_reports_target_person_id"), table_name="safety_reports")
    op.drop_index(op.f("ix_safety_reports_reporter_person_id"), table_name="safety_reports")
    op.drop_index("ix_safety_reports_state", table_name="safety_reports")
    op.drop_index("ix_safety_reports_reporter_key_created_at", table_name="safety_reports")
    op.drop_table("safety_reports")
