"""WG role appointments (R-ROLE-APPOINT, issue 23): one row per request to fill a WG role.

``wg_appointments``: the role, the nominee, how it is decided (``via``: ``ballot``, ``coc-wg``,
``board``, ``steering-council``), its state (``pending`` → ``voting`` → ``appointed``, or
``refused`` by an R-ROLE-* rule, ``rejected`` by the ballot or the Board), who asked and who
decided (references such as ``person:4``, ``ballot:9``, ``slack:U0…``), and the rulings of the
warnings it carried. Ids and ruling codes only: the explanation is rebuilt from the rules.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from ledger.models import Base


class WgAppointment(Base):
    """A request to give ``role`` to ``nominee_person_id``, and how it ended."""

    __tablename__ = "wg_appointments"

    id: Mapped[int] = mapped_column(primary_key=True)
    role: Mapped[str] = mapped_column(String(24), index=True)
    nominee_person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    via: Mapped[str] = mapped_column(String(24))
    status: Mapped[str] = mapped_column(String(16), index=True)
    requested_by: Mapped[str] = mapped_column(String(200))
    requested_at: Mapped[datetime]
    ballot_id: Mapped[int | None] = mapped_column(ForeignKey("ballots.id"))
    # Where the Board was asked (the Slack message, "C…:ts").
    message_ref: Mapped[str | None] = mapped_column(String(200))
    decided_by: Mapped[str | None] = mapped_column(String(200))
    decided_at: Mapped[datetime | None]
    # The ruling that refused it, and the rulings of the warnings it carried.
    ruling: Mapped[str | None] = mapped_column(String(40))
    rulings: Mapped[dict[str, Any]] = mapped_column(default=dict)
