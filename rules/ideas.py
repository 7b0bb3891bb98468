"""The ideas backlog's status flow (R-IDEA-1)."""

from __future__ import annotations

from dataclasses import dataclass

from rules.charter import Charter
from rules.decision import CodedDecision, Decision


def check_idea_transition(current: str, new: str, *, charter: Charter) -> Decision:
    """May an idea move from ``current`` to ``new``? The allowed moves are the charter's
    ``ideas.transitions`` (new -> triaged -> accepted | declined | duplicate -> in-progress -> done)."""
    statuses = charter.ideas.statuses
    for name, value in (("current", current), ("new", new)):
        if value not in statuses:
            raise ValueError(f"{name}: unknown idea status {value!r} (known: {', '.join(statuses)})")
    allowed = charter.ideas.transitions.get(current, [])
    if new in allowed:
        return Decision(
            allowed=True,
            ruling="R-IDEA-1",
            reason=f"an idea may go from {current} to {new}",
            evidence={"from": current, "to": new},
        )
    nexts = ", ".join(allowed) or "nothing (it is final)"
    return Decision(
        allowed=False,
        ruling="R-IDEA-1",
        evidence={"from": current, "to": new},
        reason=f"an idea cannot go from {current} to {new}; from {current} it may go to {nexts}",
    )


@dataclass(frozen=True, kw_only=True)
class StatusRequest:
    """A request to move an idea: whether the requester is an active member, the idea's current
    status (None: no such idea) and the status asked for."""

    member: bool
    current: str | None
    new: str


def decide_status_change(request: StatusRequest, *, charter: Charter) -> CodedDecision:
    """R-IDEA-1 for a request: only an active member moves an idea, an existing one, to a known
    status along the charter's transitions. Codes: ``change``, ``unchanged`` (already there),
    or why not: ``not-a-member``, ``no-such-idea``, ``unknown-status``, ``transition``."""

    def refused(code: str, reason: str) -> CodedDecision:
        return CodedDecision(allowed=False, ruling="R-IDEA-1", code=code, reason=reason)

    if not request.member:
        return refused("not-a-member", "only active members of the working group can change an idea's status")
    if request.current is None:
        return refused("no-such-idea", "there is no such idea in the backlog")
    if request.new not in charter.ideas.statuses:
        return refused("unknown-status", f"{request.new or '(none)'} is not a status")
    if request.current == request.new:
        return CodedDecision(
            allowed=True, ruling="R-IDEA-1", code="unchanged", reason=f"the idea is already {request.new}"
        )
    moved = check_idea_transition(request.current, request.new, charter=charter)
    return CodedDecision(
        allowed=moved.allowed,
        ruling=moved.ruling,
        reason=moved.reason,
        evidence=moved.evidence,
        code="change" if moved.allowed else "transition",
    )
