"""The ideas backlog's status flow (R-IDEA-1)."""

from __future__ import annotations

from rules.charter import Charter
from rules.decision import Decision


def check_idea_transition(current: str, new: str, *, charter: Charter) -> Decision:
    """May an idea move from ``current`` to ``new``? The allowed moves are the charter's
    ``ideas.transitions`` (new -> triaged -> accepted | declined | duplicate -> in-progress -> done)."""
    statuses = charter.ideas.statuses
    for name, value in (("current", current), ("new", new)):
        if value not in statuses:
            raise ValueError(f"{name}: unknown idea status {value!r} (known: {', '.join(statuses)})")
    allowed = charter.ideas.transitions.get(current, [])
    if new in allowed:
        return Decision(allowed=True, ruling="R-IDEA-1", reason=f"an idea may go from {current} to {new}",
                        evidence={"from": current, "to": new})
    nexts = ", ".join(allowed) or "nothing (it is final)"
    return Decision(allowed=False, ruling="R-IDEA-1", evidence={"from": current, "to": new},
                    reason=f"an idea cannot go from {current} to {new}; from {current} it may go to "
                           f"{nexts}")
