"""Community guides and training sessions (R-GUIDE, issue 23): ``guide_versions``,
``guide_posts`` and ``training_sessions`` (see ``ledger/models_guides.py``).

Revision ID: 0022
Revises: 0019 (the lead re-chains at merge)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ledger.types import UTCDateTime

revision = "0022"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "guide_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(length=16), nullable=False),
        sa.Column("title", sa.String(length=100), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_guide_versions")),
        sa.UniqueConstraint("slug", "version", name=op.f("uq_guide_versions_slug_version")),
    )
    op.create_index(op.f("ix_guide_versions_slug"), "guide_versions", ["slug"])
    op.create_table(
        "guide_posts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(length=64), nullable=False),
        sa.Column("platform", sa.String(length=24), nullable=False),
        sa.Column("instance", sa.String(length=255), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("mode", sa.String(length=8), nullable=False),
        sa.Column("messages", sa.JSON(), nullable=False),
        sa.Column("url", sa.String(length=500), nullable=True),
        sa.Column("published_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_guide_posts")),
        sa.UniqueConstraint("slug", "platform", "instance", name=op.f("uq_guide_posts_slug_platform_instance")),
    )
    op.create_index(op.f("ix_guide_posts_slug"), "guide_posts", ["slug"])
    op.create_table(
        "training_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(length=64), nullable=False),
        sa.Column("title", sa.String(length=100), nullable=False),
        sa.Column("starts_at", UTCDateTime(), nullable=False),
        sa.Column("ends_at", UTCDateTime(), nullable=False),
        sa.Column("location", sa.String(length=100), nullable=True),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(length=80), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_training_sessions")),
        sa.UniqueConstraint("slug", "starts_at", name=op.f("uq_training_sessions_slug_starts_at")),
    )
    op.create_index(op.f("ix_training_sessions_slug"), "training_sessions", ["slug"])


def downgrade() -> None:
    op.drop_index(op.f("ix_training_sessions_slug"), table_name="training_sessions")
    op.drop_table("training_sessions")
    op.drop_index(op.f("ix_guide_posts_slug"), table_name="guide_posts")
    op.drop_table("guide_posts")
    op.drop_index(op.f("ix_guide_versions_slug"), table_name="guide_versions")
    op.drop_table("guide_versions")
