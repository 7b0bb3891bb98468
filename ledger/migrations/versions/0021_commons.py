"""The common room (R-COMMS, issue 22): relayed messages and their copies, the conversations
they belong to on each platform, and the cursors of polled rooms (``ledger.models_commons``).

Revision ID: 0021
Revises: 0019
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ledger.types import UTCDateTime

revision = "0021"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "commons_conversations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("bridge", sa.String(length=40), nullable=False),
        sa.Column("opened_on", sa.String(length=24), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_commons_conversations")),
    )
    op.create_table(
        "commons_threads",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.Integer(), nullable=False),
        sa.Column("platform", sa.String(length=24), nullable=False),
        sa.Column("instance", sa.String(length=255), nullable=False),
        sa.Column("room", sa.String(length=200), nullable=False),
        sa.Column("thread_id", sa.String(length=80), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["commons_conversations.id"],
            name=op.f("fk_commons_threads_conversation_id_commons_conversations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_commons_threads")),
        sa.UniqueConstraint(
            "platform", "instance", "thread_id", name=op.f("uq_commons_threads_platform_instance_thread_id")
        ),
    )
    op.create_index(op.f("ix_commons_threads_conversation_id"), "commons_threads", ["conversation_id"])
    op.create_table(
        "commons_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("bridge", sa.String(length=40), nullable=False),
        sa.Column("platform", sa.String(length=24), nullable=False),
        sa.Column("instance", sa.String(length=255), nullable=False),
        sa.Column("message_id", sa.String(length=80), nullable=False),
        sa.Column("room", sa.String(length=200), nullable=False),
        sa.Column("thread_id", sa.String(length=80), nullable=True),
        sa.Column("conversation_id", sa.Integer(), nullable=True),
        sa.Column("origin_id", sa.Integer(), nullable=True),
        sa.Column("author_platform_id", sa.String(length=80), nullable=True),
        sa.Column("author_username", sa.String(length=200), nullable=True),
        sa.Column("content_hash", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["commons_conversations.id"],
            name=op.f("fk_commons_messages_conversation_id_commons_conversations"),
        ),
        sa.ForeignKeyConstraint(
            ["origin_id"], ["commons_messages.id"], name=op.f("fk_commons_messages_origin_id_commons_messages")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_commons_messages")),
        sa.UniqueConstraint(
            "platform", "instance", "message_id", name=op.f("uq_commons_messages_platform_instance_message_id")
        ),
    )
    op.create_index("ix_commons_messages_author", "commons_messages", ["platform", "author_platform_id"])
    op.create_index(op.f("ix_commons_messages_conversation_id"), "commons_messages", ["conversation_id"])
    op.create_index(op.f("ix_commons_messages_origin_id"), "commons_messages", ["origin_id"])
    op.create_table(
        "commons_cursors",
        sa.Column("bridge", sa.String(length=40), nullable=False),
        sa.Column("platform", sa.String(length=24), nullable=False),
        sa.Column("room", sa.String(length=200), nullable=False),
        sa.Column("instance", sa.String(length=255), nullable=False),
        sa.Column("last_id", sa.String(length=80), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("bridge", "platform", "room", name=op.f("pk_commons_cursors")),
    )


def downgrade() -> None:
    op.drop_table("commons_cursors")
    op.drop_index(op.f("ix_commons_messages_origin_id"), table_name="commons_messages")
    op.drop_index(op.f("ix_commons_messages_conversation_id"), table_name="commons_messages")
    op.drop_index("ix_commons_messages_author", table_name="commons_messages")
    op.drop_table("commons_messages")
    op.drop_index(op.f("ix_commons_threads_conversation_id"), table_name="commons_threads")
    op.drop_table("commons_threads")
    op.drop_table("commons_conversations")
