"""How a membership ends: R-LEAVE (a member leaves at any time, no vote), R-REMOVE (a removal
ballot, proposed by a voting member about another active member) and R-TERM-2 (a lapse after
the grace period); what is revoked is R-ADMIN-4's (``rules.admins.end_of_membership``).

The flows gather the facts from the ledger and record what these functions return."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rules.decision import CodedDecision, Decision

# The ruling under which each kind of ending happens (a membership's status after it).
ENDING_RULINGS = {"left": "R-LEAVE", "removed": "R-REMOVE", "lapsed": "R-TERM-2"}
# R-LEAVE's reason, as the member gave it, is kept this short in the WG's message.
LEAVE_REASON_CHARS = 300


@dataclass(frozen=True, kw_only=True)
class MembershipFacts:
    """The person's membership as the ledger holds it: an active one, or the status of the last
    one (None: never a member)."""

    person: str
    active: bool
    last_status: str | None = None


def check_ending(facts: MembershipFacts, *, ending: str) -> CodedDecision:
    """End an active membership as ``ending`` (``left``, ``removed``, ``lapsed``): code ``end``;
    one that already ended so (a run again after a crash) finishes its revocations: code
    ``already``; anything else is refused under the ending's ruling."""
    ruling = ENDING_RULINGS[ending]
    if facts.active:
        return CodedDecision(allowed=True, ruling=ruling, code="end", reason=f"the active membership ends as {ending}")
    if facts.last_status == ending:
        return CodedDecision(
            allowed=True,
            ruling=ruling,
            code="already",
            reason=f"the membership has {ending} already; finishing its revocations",
        )
    return CodedDecision(
        allowed=False, ruling=ruling, code="not-a-member", reason=f"{facts.person} is not an active member"
    )


def check_leaver(*, person: str | None) -> CodedDecision:
    """R-LEAVE: a request to leave names a member by the account it came from; an account the
    ledger maps to nobody is refused (``not-a-member``); a person goes on to
    :func:`check_ending` (``known``)."""
    if person is None:
        return CodedDecision(
            allowed=False,
            ruling="R-LEAVE",
            code="not-a-member",
            reason="this account is not a working group member's",
        )
    return CodedDecision(allowed=True, ruling="R-LEAVE", code="known", reason=f"{person} asks to leave")


def ended(*, ending: str, waiting: Sequence[str] = ()) -> Decision:
    """What an ended membership records: its ending's ruling, or R-ADMIN-4 when an admin
    revocation waits on the platforms named in ``waiting`` (too few admins would be left)."""
    reason = f"membership {ending}"
    if waiting:
        reason += "; admin revocation waits on " + ", ".join(waiting)
    return Decision(allowed=True, ruling="R-ADMIN-4" if waiting else ENDING_RULINGS[ending], reason=reason)


def leave_reason(text: str | None) -> str:
    """R-LEAVE: the member's reason for leaving (optional), as long as the WG's message keeps."""
    return (text or "")[:LEAVE_REASON_CHARS]


@dataclass(frozen=True, kw_only=True)
class RemovalProposal:
    """A proposed removal: whether the proposer may vote, whether the subject is an active
    member, and whether they are the same person."""

    proposer_votes: bool
    subject_active: bool
    own_removal: bool


def check_removal_proposal(proposal: RemovalProposal) -> CodedDecision:
    """R-REMOVE: only a voting member proposes, only about another active member (leaving is
    R-LEAVE's, without a vote)."""
    if not proposal.proposer_votes:
        return CodedDecision(
            allowed=False,
            ruling="R-REMOVE",
            code="proposer-not-voting",
            reason="only a voting member may propose a removal",
        )
    if not proposal.subject_active:
        return CodedDecision(
            allowed=False, ruling="R-REMOVE", code="subject-not-member", reason="the subject is not an active member"
        )
    if proposal.own_removal:
        return CodedDecision(
            allowed=False,
            ruling="R-REMOVE",
            code="own-removal",
            reason="a member cannot propose their own removal; use leave (R-LEAVE)",
        )
    return CodedDecision(
        allowed=True, ruling="R-REMOVE", code="open", reason="a voting member proposes removing another active member"
    )


def removal_opened(*, needed: int, electorate: int) -> Decision:
    """R-REMOVE: what an opened removal ballot records (the subject does not vote on it)."""
    return Decision(
        allowed=True, ruling="R-REMOVE", reason=f"opened; {needed} yes of {electorate} needed, subject excluded"
    )
