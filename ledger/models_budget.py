"""Budget spending records (R-BUDGET, issue 23, migration 0018).

``budget_spending``: what a WG member recorded as spent on an approved budget request (a
proposal of kind ``budget``): amount and currency, the reference (invoice, receipt or link),
who recorded it and when, and, for a record that took spending over the approved amount, the
reason given and ``flagged``. One row per (proposal, reference): recording the same reference
again records nothing new. The approved amount and the closing time are on ``proposals``; the
idea a request came from is ``ideas.proposal_id``.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import Boolean, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ledger.models import Base


class BudgetSpending(Base):
    """One spending record on a budget request."""

    __tablename__ = "budget_spending"
    __table_args__ = (UniqueConstraint("proposal_id", "reference_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("proposals.id"), index=True)
    amount: Mapped[Decimal]
    currency: Mapped[str] = mapped_column(String(3))
    # As given (invoice number, receipt id, link); ``reference_key`` is it normalised (case and
    # spaces), so "INV-7" and "inv-7 " are the same record.
    reference: Mapped[str] = mapped_column(String(500))
    reference_key: Mapped[str] = mapped_column(String(500))
    recorded_by_person_id: Mapped[int] = mapped_column(ForeignKey("people.id"))
    recorded_at: Mapped[datetime]
    reason: Mapped[str | None] = mapped_column(Text)
    flagged: Mapped[bool] = mapped_column(Boolean, default=False)
