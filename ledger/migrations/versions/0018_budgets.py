"""Budget requests tracked to spending (R-BUDGET, issue 23).

``proposals``: ``approved_amount`` (what the Board approved; the amount asked unless it said
otherwise) and ``closed_at``. ``ideas``: ``proposal_id``, the budget request an idea led to.
``budget_spending``: each spending record (see ``ledger/models_budget.py``).

Revision ID: 0018
Revises: 0016
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ledger.types import UTCDateTime

revision = "0018"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("proposals") as batch:
        batch.add_column(sa.Column("approved_amount", sa.Numeric(12, 2), nullable=True))
        batch.add_column(sa.Column("closed_at", UTCDateTime(), nullable=True))
    with op.batch_alter_table("ideas") as batch:
        batch.add_column(sa.Column("proposal_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(op.f("fk_ideas_proposal_id_proposals"), "proposals", ["proposal_id"], ["id"])
        batch.create_index(op.f("ix_ideas_proposal_id"), ["proposal_id"])
    op.create_table(
        "budget_spending",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("proposal_id", sa.Integer(), nullable=False),
        sa.Column("amount", sa.Numeric(12, 2), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("reference", sa.String(length=500), nullable=False),
        sa.Column("reference_key", sa.String(length=500), nullable=False),
        sa.Column("recorded_by_person_id", sa.Integer(), nullable=False),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("flagged", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["proposal_id"], ["proposals.id"], name=op.f("fk_budget_spending_proposal_id_proposals")
        ),
        sa.ForeignKeyConstraint(
            ["recorded_by_person_id"], ["people.id"], name=op.f("fk_budget_spending_recorded_by_person_id_people")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_budget_spending")),
        sa.UniqueConstraint("proposal_id", "reference_key", name=op.f("uq_budget_spending_proposal_id_reference_key")),
    )
    op.create_index(op.f("ix_budget_spending_proposal_id"), "budget_spending", ["proposal_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_budget_spending_proposal_id"), table_name="budget_spending")
    op.drop_table("budget_spending")
    with op.batch_alter_table("ideas") as batch:
        batch.drop_index(op.f("ix_ideas_proposal_id"))
        batch.drop_constraint(op.f("fk_ideas_proposal_id_proposals"), type_="foreignkey")
        batch.drop_column("proposal_id")
    with op.batch_alter_table("proposals") as batch:
        batch.drop_column("closed_at")
        batch.drop_column("approved_amount")
