"""Approved platforms as data with a history (R-PLATFORM, issue 20): the ``platform_states``
table, and on ``proposals`` the platform a proposal is about, the one it replaces and the
trial's end date. Nothing is seeded here: the first recorded change seeds the charter file's
platforms as approved (``ledger.platforms``), so another charter keeps its own list.

Revision ID: 0019
Revises: 0018
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ledger.types import UTCDateTime

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "platform_states",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("platform", sa.String(length=24), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("trial_ends_at", UTCDateTime(), nullable=True),
        sa.Column("first_admin_at", UTCDateTime(), nullable=True),
        sa.Column("since", UTCDateTime(), nullable=False),
        sa.Column("decided_by", sa.String(length=80), nullable=False),
        sa.Column("proposal_id", sa.Integer(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["proposal_id"], ["proposals.id"], name=op.f("fk_platform_states_proposal_id_proposals")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_platform_states")),
    )
    op.create_index("ix_platform_states_platform_id", "platform_states", ["platform", "id"])
    with op.batch_alter_table("proposals") as batch:
        batch.add_column(sa.Column("platform", sa.String(length=24), nullable=True))
        batch.add_column(sa.Column("replaces_platform", sa.String(length=24), nullable=True))
        batch.add_column(sa.Column("trial_ends_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("proposals") as batch:
        batch.drop_column("trial_ends_at")
        batch.drop_column("replaces_platform")
        batch.drop_column("platform")
    op.drop_index("ix_platform_states_platform_id", table_name="platform_states")
    op.drop_table("platform_states")
