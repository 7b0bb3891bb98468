"""Idea backlog triage (issue 10).

``ideas``: ``source_key`` (unique: one item per Forum topic / Discord interaction / operator
filing), ``author_handle`` (an author not in the ledger), the triage's ``board_kind``,
``similarity`` (to ``duplicate_of_id``), ``triaged_at`` and ``flagged_at`` (R-IDEA-2).
``idea_status_changes``: the member's ``note``.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ledger.types import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ideas") as batch:
        batch.add_column(sa.Column("source_key", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("author_handle", sa.String(length=120), nullable=True))
        batch.add_column(sa.Column("board_kind", sa.String(length=40), nullable=True))
        batch.add_column(sa.Column("similarity", sa.Numeric(4, 3), nullable=True))
        batch.add_column(sa.Column("triaged_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("flagged_at", UTCDateTime(), nullable=True))
        batch.create_unique_constraint(op.f("uq_ideas_source_key"), ["source_key"])
    with op.batch_alter_table("idea_status_changes") as batch:
        batch.add_column(sa.Column("note", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("idea_status_changes") as batch:
        batch.drop_column("note")
    with op.batch_alter_table("ideas") as batch:
        batch.drop_constraint(op.f("uq_ideas_source_key"), type_="unique")
        batch.drop_column("flagged_at")
        batch.drop_column("triaged_at")
        batch.drop_column("similarity")
        batch.drop_column("board_kind")
        batch.drop_column("author_handle")
        batch.drop_column("source_key")
