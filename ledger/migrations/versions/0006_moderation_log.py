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
        sa.ForeignKeyConstraint(
            ["target_person_id"], ["people.id"], name=op.f("fk_moderation_actions_target_person_id_people")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_moderation_actions")),
        sa.UniqueConstraint("platform", "entry_id", name=op.f("uq_moderation_actions_platform_entry_id")),
    )
    op.create_index("ix_moderation_actions_occurred_at", "moderation_actions", ["occurred_at"])
    op.create_index(op.f("ix_moderation_actions_target_person_id"), "moderation_actions", ["target_person_id"])
    op.create_table(
        "moderation_cursors",
        sa.Column("platform", sa.String(length=24), nullable=False),
        sa.Column("last_entry_id", sa.String(length=80), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("platform", name=op.f("pk_moderation_cursors")),
    )
    op.create_table(
        "moderation_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("platform_a", sa.String(length=24), nullable=False),
        sa.Column("account_a", sa.String(length=80), nullable=False),
        sa.Column("username_a", sa.String(length=200), nullable=True),
        sa.Column("platform_b", sa.String(length=24), nullable=False),
        sa.Column("account_b", sa.String(length=80), nullable=False),
        sa.Column("username_b", sa.String(length=200), nullable=True),
        sa.Column("basis", sa.String(length=24), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("suggested_by_action_id", sa.Integer(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("decided_by", sa.String(length=200), nullable=True),
        sa.Column("decided_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["suggested_by_action_id"],
            ["moderation_actions.id"],
            name=op.f("fk_moderation_links_suggested_by_action_id_moderation_actions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_moderation_links")),
        sa.UniqueConstraint(
            "platform_a",
            "account_a",
            "platform_b",
            "account_b",
            name=op.f("uq_moderation_links_platform_a_account_a_platform_b_account_b"),
        ),
    )
    op.create_index(op.f("ix_moderation_links_status"), "moderation_links", ["status"])
    op.create_table(
        "moderation_alerts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("action_id", sa.Integer(), nullable=False),
        sa.Column("platform", sa.String(length=24), nullable=False),
        sa.Column("linked_account", sa.String(length=80), nullable=True),
        sa.Column("linked_username", sa.String(length=200), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("channel_id", sa.String(length=80), nullable=True),
        sa.Column("message_id", sa.String(length=80), nullable=True),
        sa.Column("posted_at", UTCDateTime(), nullable=True),
        sa.Column("acknowledged_by", sa.String(length=200), nullable=True),
        sa.Column("acknowledged_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["action_id"], ["moderation_actions.id"], name=op.f("fk_moderation_alerts_action_id_moderation_actions")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_moderation_alerts")),
        sa.UniqueConstraint("action_id", "platform", name=op.f("uq_moderation_alerts_action_id_platform")),
    )


def downgrade() -> None:
    op.drop_table("moderation_alerts")
    op.drop_index(op.f("ix_moderation_links_status"), table_name="moderation_links")
    op.drop_table("moderation_links")
    op.drop_table("moderation_cursors")
    op.drop_index(op.f("ix_moderation_actions_target_person_id"), table_name="moderation_actions")
    op.drop_index("ix_moderation_actions_occurred_at", table_name="moderation_actions")
    op.drop_table("moderation_actions")
