"""Moderation log: normalised actions from each platform's audit log, and a cursor per platform
(issue 13).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ledger.types import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "moderation_actions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("platform", sa.String(length=24), nullable=False),
        sa.Column("entry_id", sa.String(length=80), nullable=False),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("platform_action", sa.String(length=80), nullable=False),
        sa.Column("target_platform_id", sa.String(length=80), nullable=True),
        sa.Column("target_username", sa.String(length=200), nullable=True),
        sa.Column("target_person_id", sa.Integer(), nullable=True),
        sa.Column("moderator_platform_id", sa.String(length=80), nullable=True),
        sa.Column("moderator_username", sa.String(length=200), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("duration_seconds", sa.Integer(), nullable=True),
        sa.Column("link", sa.String(length=500), nullable=True),
        sa.Column("occurred_at", UTCDateTime(), nullable=False),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.Column("raw", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["target_person_id"], ["people.id"],
                                name=op.f("fk_moderation_actions_target_person_id_people")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_moderation_actions")),
        sa.UniqueConstraint("platform", "entry_id", name=op.f("uq_moderation_actions_platform_entry_id")),
    )
    op.create_index("ix_moderation_actions_occurred_at", "moderation_actions", ["occurred_at"])
    op.create_index(op.f("ix_moderation_actions_target_person_id"), "moderation_actions",
                    ["target_person_id"])
    op.create_table(
        "moderation_cursors",
        sa.Column("platform", sa.String(length=24), nullable=False),
        sa.Column("last_entry_id", sa.String(length=80), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("platform", name=op.f("pk_moderation_cursors")),
    )


def downgrade() -> None:
    op.drop_table("moderation_cursors")
    op.drop_index(op.f("ix_moderation_actions_target_person_id"), table_name="moderation_actions")
    op.drop_index("ix_moderation_actions_occurred_at", table_name="moderation_actions")
    op.drop_table("moderation_actions")
