"""Ballots: R-VOTE-APPROVE, R-REMOVE, R-VOTE-EARLY and R-ELECTORATE.

A ballot's electorate is a snapshot taken when it opens. ``votes`` maps each voter to their
latest choice (a later vote replaces an earlier one until the ballot closes; the ledger keeps
the history). Every function here is pure: ``now`` is a parameter.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Literal

from rules.charter import ApprovalBallot, Charter, RemovalBallot
from rules.decision import CodedDecision, Decision

Choice = Literal["yes", "no", "abstain"]
BallotKind = Literal["approval", "removal", "endorsement", "appointment"]
Outcome = Literal["passed", "failed", "open"]
CHOICES: tuple[str, ...] = ("yes", "no", "abstain")

_BASE_RULING = {
    "approval": "R-VOTE-APPROVE",
    "endorsement": "R-VOTE-APPROVE",
    "removal": "R-REMOVE",
    "appointment": "R-ROLE-APPOINT",
}


def snapshot_electorate(
    voting_members: Iterable[str], *, kind: BallotKind, subject: str | None, charter: Charter
) -> tuple[str, ...]:
    """The electorate of a ballot opening now (R-ELECTORATE): every voting member once, in the
    order given; for a removal the member under vote is left out (R-REMOVE)."""
    seen: dict[str, None] = {}
    for member in voting_members:
        if kind == "removal" and charter.ballots.removal.exclude_subject and member == subject:
            continue
        seen.setdefault(member, None)
    return tuple(seen)


def closes_at(kind: BallotKind, *, opened_at: datetime, charter: Charter) -> datetime:
    """The ballot's deadline: opening time plus the charter's voting period for its kind."""
    return opened_at + timedelta(days=_params(kind, charter).voting_days)


def quorum(size: int, *, kind: BallotKind, charter: Charter) -> int:
    """Approval/endorsement turnout needed: ``ceil(fraction * E)`` (R-VOTE-APPROVE)."""
    params = _params(kind, charter)
    if not isinstance(params, ApprovalBallot):
        raise ValueError("a removal ballot has no quorum: it needs a majority (R-REMOVE)")
    fraction = Fraction(str(params.quorum_fraction))
    return math.ceil(fraction * size)


def majority(size: int, *, charter: Charter) -> int:
    """Yes votes a removal needs: ``floor(fraction * E) + 1`` of the whole electorate (R-REMOVE)."""
    fraction = Fraction(str(charter.ballots.removal.majority_fraction))
    return math.floor(fraction * size) + 1


@dataclass(frozen=True, kw_only=True)
class RefusedVote:
    """A vote that was not counted, with the ruling that refused it."""

    voter: str
    ruling: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"voter": self.voter, "ruling": self.ruling, "reason": self.reason}


@dataclass(frozen=True, kw_only=True)
class Tally:
    """The state of a ballot at ``now``.

    ``needed`` is the turnout quorum for an approval or endorsement, and the yes votes needed
    for a removal. ``decided_early`` is true when the votes cast decided it before the deadline
    (R-VOTE-EARLY): from then on no vote may be cast or changed.
    """

    kind: BallotKind
    outcome: Outcome
    yes: int
    no: int
    abstain: int
    electorate: int
    needed: int
    closes_at: datetime
    decided_early: bool
    counted: dict[str, str]
    refused: tuple[RefusedVote, ...]
    ruling: str
    reason: str

    @property
    def closed(self) -> bool:
        """True once the outcome is final (decided early or past the deadline)."""
        return self.outcome != "open"


def _count(
    kind: BallotKind, votes: Mapping[str, str], *, members: Sequence[str], subject: str | None
) -> tuple[dict[str, str], list[RefusedVote]]:
    """The votes counted and those refused (a removal's subject: R-REMOVE; anyone outside the
    snapshot: R-ELECTORATE); a choice other than yes/no/abstain is an error."""
    member_set = set(members)
    counted: dict[str, str] = {}
    refused: list[RefusedVote] = []
    for voter, choice in votes.items():
        if choice not in CHOICES:
            raise ValueError(f"votes.{voter}: {choice!r} is not one of yes, no, abstain")
        if kind == "removal" and voter == subject:
            refused.append(
                RefusedVote(
                    voter=voter,
                    ruling="R-REMOVE",
                    reason=f"{voter} is the member under vote and is not in the electorate",
                )
            )
        elif voter not in member_set:
            refused.append(
                RefusedVote(
                    voter=voter,
                    ruling="R-ELECTORATE",
                    reason=f"{voter} is not in the electorate snapshotted when the ballot opened",
                )
            )
        else:
            counted[voter] = choice
    return counted, refused


@dataclass(frozen=True, kw_only=True)
class _Figures:
    """The counted votes of a ballot at one moment."""

    yes: int
    no: int
    abstain: int
    size: int
    at_deadline: bool

    @property
    def remaining(self) -> int:
        return self.size - self.yes - self.no - self.abstain

    @property
    def text(self) -> str:
        return f"{self.yes} yes, {self.no} no, {self.abstain} abstain of {self.size}"


def _removal_outcome(f: _Figures, needed: int) -> tuple[Outcome, str]:
    """R-REMOVE: ``needed`` yes votes of the whole electorate."""
    if f.yes >= needed:
        return "passed", f"{f.text}: {f.yes} yes reaches the {needed} needed (a majority of the electorate)"
    if f.at_deadline or f.yes + f.remaining < needed:
        return "failed", (
            f"{f.text}: {needed} yes needed (a majority of the electorate); "
            + (
                "the deadline passed"
                if f.at_deadline and f.yes + f.remaining >= needed
                else f"even if the {f.remaining} who have not voted said yes, it cannot pass"
            )
        )
    return "open", f"{f.text}: {needed - f.yes} more yes needed of {f.remaining} who have not voted"


def _quorum_outcome_at_deadline(f: _Figures, needed: int) -> tuple[Outcome, str]:
    """R-VOTE-APPROVE at the deadline: more yes than no, and the turnout meets the quorum."""
    turnout = f.yes + f.no + f.abstain
    if f.yes > f.no and turnout >= needed:
        return "passed", f"{f.text}: more yes than no, and turnout {turnout} meets the quorum of {needed}"
    if turnout < needed:
        return "failed", f"{f.text}: turnout {turnout} is below the quorum of {needed}"
    return "failed", f"{f.text}: yes does not outnumber no"


def _quorum_outcome(f: _Figures, needed: int) -> tuple[Outcome, str]:
    """R-VOTE-APPROVE: at the deadline, or before it once the votes left cannot change it."""
    if f.at_deadline:
        return _quorum_outcome_at_deadline(f, needed)
    if f.yes + f.no + f.abstain >= needed and f.yes > f.no + f.remaining:
        return "passed", (
            f"{f.text}: turnout meets the quorum of {needed} and yes outnumbers no even "
            f"if the {f.remaining} who have not voted said no"
        )
    if f.yes + f.remaining <= f.no:
        return "failed", (f"{f.text}: yes cannot outnumber no even if the {f.remaining} who have not voted said yes")
    return "open", f"{f.text}: quorum {needed}; {f.remaining} have not voted"


def tally(
    kind: BallotKind,
    *,
    electorate: Sequence[str],
    votes: Mapping[str, str],
    subject: str | None,
    opened_at: datetime,
    now: datetime,
    charter: Charter,
) -> Tally:
    """Count a ballot: outcome ``passed``/``failed`` once decided (early or at the deadline),
    else ``open``. Votes from outside the electorate, or from a removal's subject, are refused
    and listed, never counted."""
    members = snapshot_electorate(electorate, kind=kind, subject=subject, charter=charter)
    counted, refused = _count(kind, votes, members=members, subject=subject)
    yes = sum(1 for c in counted.values() if c == "yes")
    no = sum(1 for c in counted.values() if c == "no")
    deadline = closes_at(kind, opened_at=opened_at, charter=charter)
    figures = _Figures(yes=yes, no=no, abstain=len(counted) - yes - no, size=len(members), at_deadline=now >= deadline)
    if kind == "removal":
        needed = majority(figures.size, charter=charter)
        outcome, why = _removal_outcome(figures, needed)
    else:
        needed = quorum(figures.size, kind=kind, charter=charter)
        outcome, why = _quorum_outcome(figures, needed)
    decided_early = outcome != "open" and not figures.at_deadline
    if decided_early and not _params(kind, charter).early_close:
        # This charter does not close ballots early: the outcome is known but waits for the deadline.
        outcome, decided_early = "open", False
        why += " (decided, but this charter closes ballots only at their deadline)"
    ruling = "R-VOTE-EARLY" if decided_early else _BASE_RULING[kind]
    if figures.size == 0:
        why = f"the electorate is empty, so the ballot cannot pass ({why})"
    return Tally(
        kind=kind,
        outcome=outcome,
        yes=yes,
        no=no,
        abstain=figures.abstain,
        electorate=figures.size,
        needed=needed,
        closes_at=deadline,
        decided_early=decided_early,
        counted=counted,
        refused=tuple(refused),
        ruling=ruling,
        reason=why,
    )


def check_vote(
    kind: BallotKind,
    *,
    voter: str,
    electorate: Sequence[str],
    votes: Mapping[str, str],
    subject: str | None,
    opened_at: datetime,
    now: datetime,
    charter: Charter,
) -> Decision:
    """May ``voter`` cast (or change) a vote now? Refused outside the electorate
    (R-ELECTORATE), for a removal's subject (R-REMOVE), and once the ballot is closed
    (R-VOTE-EARLY, or the deadline)."""
    current = tally(
        kind, electorate=electorate, votes=votes, subject=subject, opened_at=opened_at, now=now, charter=charter
    )
    evidence = {
        "outcome": current.outcome,
        "yes": current.yes,
        "no": current.no,
        "abstain": current.abstain,
        "electorate": current.electorate,
    }
    if kind == "removal" and voter == subject:
        return Decision(
            allowed=False,
            ruling="R-REMOVE",
            evidence=evidence,
            reason=f"{voter} is the member under vote and may not vote on it",
        )
    if voter not in snapshot_electorate(electorate, kind=kind, subject=subject, charter=charter):
        return Decision(
            allowed=False,
            ruling="R-ELECTORATE",
            evidence=evidence,
            reason=f"{voter} is not in this ballot's electorate",
        )
    if current.closed:
        return Decision(
            allowed=False,
            ruling=current.ruling,
            evidence=evidence,
            reason=f"the ballot is closed ({current.outcome}): no vote can be cast or changed",
        )
    replaces = votes.get(voter)
    return Decision(
        allowed=True,
        ruling="R-ELECTORATE",
        evidence={**evidence, "replaces": replaces},
        reason="vote accepted" + (f"; it replaces the earlier {replaces!r}" if replaces else ""),
    )


def decide_vote(vote: Decision, *, ballot_open: bool) -> CodedDecision:
    """A vote (``check_vote``'s answer) on a ballot as the ledger holds it: ``ballot_open``
    false (closed or cancelled there) refuses a vote the figures alone would accept
    (R-VOTE-EARLY). Codes: ``cast``, ``not-in-electorate`` (R-ELECTORATE, R-REMOVE's subject)
    or ``closed``."""
    if vote.allowed and ballot_open:
        return CodedDecision(allowed=True, ruling=vote.ruling, reason=vote.reason, evidence=vote.evidence, code="cast")
    if vote.allowed:
        return CodedDecision(
            allowed=False, ruling="R-VOTE-EARLY", reason="the ballot is closed", evidence=vote.evidence, code="closed"
        )
    outside = vote.ruling in ("R-ELECTORATE", "R-REMOVE")
    return CodedDecision(
        allowed=False,
        ruling=vote.ruling,
        reason=vote.reason,
        evidence=vote.evidence,
        code="not-in-electorate" if outside else "closed",
    )


def check_ballot_found(*, found: bool) -> CodedDecision:
    """R-VOTE-EARLY: a vote names its ballot; one not among the open ballots (closed early, at
    its deadline, or never ours) takes no vote: ``no-open-ballot``; else ``open``."""
    if not found:
        return CodedDecision(
            allowed=False, ruling="R-VOTE-EARLY", code="no-open-ballot", reason="this ballot is closed or not known"
        )
    return CodedDecision(allowed=True, ruling="R-VOTE-EARLY", code="open", reason="the ballot is open")


def approval_opened(application_id: int) -> Decision:
    """R-VOTE-APPROVE: what opening an application's approval ballot records."""
    return Decision(allowed=True, ruling="R-VOTE-APPROVE", reason=f"ballot opened for application {application_id}")


def voting_members(active_members: Iterable[str], *, coc_liaison: str | None = None) -> tuple[str, ...]:
    """Every voting member (R-ELECTORATE): the active members (Chair and Co-Chair are members)
    plus the CoC WG Liaison, who votes even if the CoC WG rotates them in mid-term (R-ROLE-COC)."""
    members = list(dict.fromkeys(active_members))
    if coc_liaison and coc_liaison not in members:
        members.append(coc_liaison)
    return tuple(members)


def _params(kind: BallotKind, charter: Charter) -> ApprovalBallot | RemovalBallot:
    ballots = charter.ballots
    # R-ROLE-APPOINT: a Chair or Co-Chair ballot runs "as R-VOTE-APPROVE".
    by_kind: dict[str, ApprovalBallot | RemovalBallot] = {
        "approval": ballots.approval,
        "appointment": ballots.approval,
        "removal": ballots.removal,
        "endorsement": ballots.endorsement,
    }
    return by_kind[kind]
