"""WG role appointments (R-ROLE-APPOINT, issue 23): the ``wg_appointments`` table.

Revision ID: 0023
Revises: 0019
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ledger.types import UTCDateTime

revision = "0023"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "wg_appointments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=24), nullable=False),
        sa.Column("nominee_person_id", sa.Integer(), nullable=False),
        sa.Column("via", sa.String(length=24), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("requested_by", sa.String(length=200), nullable=False),
        sa.Column("requested_at", UTCDateTime(), nullable=False),
        sa.Column("ballot_id", sa.Integer(), nullable=True),
        sa.Column("message_ref", sa.String(length=200), nullable=True),
        sa.Column("decided_by", sa.String(length=200), nullable=True),
        sa.Column("decided_at", UTCDateTime(), nullable=True),
        sa.Column("ruling", sa.String(length=40), nullable=True),
        sa.Column("rulings", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["nominee_person_id"], ["people.id"], name=op.f("fk_wg_appointments_nominee_person_id_people")
        ),
        sa.ForeignKeyConstraint(["ballot_id"], ["ballots.id"], name=op.f("fk_wg_appointments_ballot_id_ballots")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wg_appointments")),
    )
    op.create_index(op.f("ix_wg_appointments_role"), "wg_appointments", ["role"])
    op.create_index(op.f("ix_wg_appointments_nominee_person_id"), "wg_appointments", ["nominee_person_id"])
    op.create_index(op.f("ix_wg_appointments_status"), "wg_appointments", ["status"])


def downgrade() -> None:
    op.drop_table("wg_appointments")
