"""Inbox dispatch bookkeeping for the gateway (issue 7).

``route`` (which flow handles the event), ``dispatch_attempts`` + ``dispatched_at`` (the claim:
set in the transaction that claims an event, so one dispatcher among several gateway replicas
starts its run), ``dispatch_note`` (``awaiting-handler`` while the flow of its route is not
built yet) and an index for the drain loop's query of undispatched events.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ledger.types import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inbox") as batch:
        batch.add_column(sa.Column("route", sa.String(length=40), nullable=True))
        batch.add_column(sa.Column("dispatch_attempts", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("dispatched_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("dispatch_note", sa.String(length=40), nullable=True))
    op.create_index(
        op.f("ix_inbox_processed_at_dispatched_at"), "inbox", ["processed_at", "dispatched_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_inbox_processed_at_dispatched_at"), table_name="inbox")
    with op.batch_alter_table("inbox") as batch:
        batch.drop_column("dispatch_note")
        batch.drop_column("dispatched_at")
        batch.drop_column("dispatch_attempts")
        batch.drop_column("route")
