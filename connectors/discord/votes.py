"""Where ballot votes cast with Discord buttons are kept.

Discord does not remember button presses: each press reaches us once, as an interaction. So the
ballots the connector opened and the votes their buttons collected live in a ``VoteStore``. The
default ``MemoryVoteStore`` lives in one process (tests, the sandbox, a single-process
``charterflow up``); the gateway passes a ledger-backed store so that the process answering
interactions and the flow that tallies see the same votes.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

__all__ = ["BallotRecord", "MemoryVoteStore", "TallyVoteStore", "VoteRecord", "VoteStore"]


@dataclass(frozen=True, kw_only=True)
class BallotRecord:
    """A ballot opened on Discord: where its message is and who may vote until when."""

    id: str
    channel_id: str
    message_id: str
    question: str
    options: tuple[str, ...]
    voters_role_id: str | None = None
    voters_role_name: str | None = None
    closes_at: datetime | None = None
    is_open: bool = True


@dataclass(frozen=True, kw_only=True)
class VoteRecord:
    """One voter's current choice; ``interaction_id`` orders presses (snowflakes grow with time)."""

    ballot_id: str
    voter_id: str
    voter_username: str
    option_id: str
    interaction_id: str


@runtime_checkable
class VoteStore(Protocol):
    """Ballots and their votes (one current vote per voter and ballot)."""

    def add_ballot(self, ballot: BallotRecord) -> None:
        """Remember ``ballot`` (adding the same id again replaces it)."""
        ...

    def ballot(self, ballot_id: str) -> BallotRecord | None:
        """The ballot called ``ballot_id``, if this store knows it."""
        ...

    def close(self, ballot_id: str) -> None:
        """Mark the ballot closed; later votes are refused."""
        ...

    def record(self, vote: VoteRecord) -> tuple[bool, VoteRecord | None]:
        """Store ``vote`` unless a later press of the same voter is already stored.

        Returns ``(stored, previous)``: a redelivered or out-of-order press is not stored.
        """
        ...

    def votes(self, ballot_id: str) -> list[VoteRecord]:
        """Every voter's current vote, in voter-id order."""
        ...


class MemoryVoteStore:
    """A thread-safe in-process ``VoteStore``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ballots: dict[str, BallotRecord] = {}
        self._votes: dict[str, dict[str, VoteRecord]] = {}

    def __repr__(self) -> str:
        return f"MemoryVoteStore(ballots={len(self._ballots)})"

    def add_ballot(self, ballot: BallotRecord) -> None:
        """Remember ``ballot``."""
        with self._lock:
            self._ballots[ballot.id] = ballot
            self._votes.setdefault(ballot.id, {})

    def ballot(self, ballot_id: str) -> BallotRecord | None:
        """The ballot, if known."""
        with self._lock:
            return self._ballots.get(ballot_id)

    def close(self, ballot_id: str) -> None:
        """Mark it closed."""
        with self._lock:
            if ballot_id in self._ballots:
                self._ballots[ballot_id] = replace(self._ballots[ballot_id], is_open=False)

    def record(self, vote: VoteRecord) -> tuple[bool, VoteRecord | None]:
        """Store ``vote`` unless a later press is stored already."""
        with self._lock:
            votes = self._votes.setdefault(vote.ballot_id, {})
            previous = votes.get(vote.voter_id)
            if previous is not None and int(previous.interaction_id) >= int(vote.interaction_id):
                return False, previous
            votes[vote.voter_id] = vote
            return True, previous

    def votes(self, ballot_id: str) -> list[VoteRecord]:
        """Current votes."""
        with self._lock:
            return sorted(self._votes.get(ballot_id, {}).values(), key=lambda v: int(v.voter_id))


class TallyVoteStore:
    """A ``VoteStore`` whose closed ballots show a tally published from outside.

    The working group's ballot votes are cast in the ledger (a person's latest vote on any
    platform counts), never in this store, so ``close_ballot`` would count none. Before
    closing, ``DiscordConnector.publish_tally`` publishes the ledger's final tally here; from
    then on :meth:`votes` answers one anonymous record per counted vote (who voted stays in the
    ledger, R-PRIVACY). Until a tally is published everything is the wrapped store's.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self._final: dict[str, tuple[int, ...]] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"TallyVoteStore(inner={self.inner!r})"

    def publish(self, ballot_id: str, counts: Sequence[int]) -> None:
        """The final tally of ``ballot_id``: one count per option, in option order."""
        with self._lock:
            self._final[str(ballot_id)] = tuple(int(n) for n in counts)

    def add_ballot(self, ballot: BallotRecord) -> None:
        """Delegated."""
        self.inner.add_ballot(ballot)

    def ballot(self, ballot_id: str) -> BallotRecord | None:
        """Delegated."""
        return self.inner.ballot(ballot_id)

    def close(self, ballot_id: str) -> None:
        """Delegated."""
        self.inner.close(ballot_id)

    def record(self, vote: VoteRecord) -> tuple[bool, VoteRecord | None]:
        """Delegated."""
        return self.inner.record(vote)

    def votes(self, ballot_id: str) -> list[VoteRecord]:
        """The published tally as anonymous records, else the wrapped store's votes."""
        with self._lock:
            final = self._final.get(str(ballot_id))
        if final is None:
            return self.inner.votes(ballot_id)
        out: list[VoteRecord] = []
        for option, count in enumerate(final):
            for _ in range(count):
                out.append(
                    VoteRecord(
                        ballot_id=str(ballot_id),
                        voter_id=str(len(out) + 1),
                        voter_username="",
                        option_id=str(option),
                        interaction_id="0",
                    )
                )
        return out
