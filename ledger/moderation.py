"""Queries over the moderation log (issue 13) shared by its flows and the quarterly report."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledger.models_moderation import ModerationAction

# The normalised action names; anything else a platform reports is stored as "other".
ACTIONS = ("ban", "unban", "kick", "timeout", "suspend", "unsuspend", "silence", "unsilence",
           "role_change", "message_delete", "post_delete", "flag_handled", "other")


def workload(session: Session, start: datetime, end: datetime) -> list[dict[str, object]]:
    """Actions in ``[start, end)`` counted per platform, month (``YYYY-MM``) and action, sorted."""
    rows = session.execute(
        select(ModerationAction.platform, ModerationAction.action, ModerationAction.occurred_at)
        .where(ModerationAction.occurred_at >= start, ModerationAction.occurred_at < end)
    ).all()
    counts = Counter((p, at.strftime("%Y-%m"), a) for p, a, at in rows)
    return [{"platform": p, "month": m, "action": a, "count": n}
            for (p, m, a), n in sorted(counts.items())]
