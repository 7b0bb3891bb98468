"""What every ballot kind's flows share (approval, removal, endorsement, appointment), kept out
of the capability packages so each may import it: the electorate snapshot as person ids
(R-ELECTORATE), opening the ledger ballot with the charter's numbers for its kind, the fields of
a result post, and the record that a closed ballot's outcome was applied.

The ballot machinery itself (posting on the platforms, votes, tally, closing) is
``flows.membership.ballot``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

from connectors.base import Ballot as PlatformBallot
from flows.kit import Ctx, artifact
from ledger import repo
from ledger.models import Ballot, BallotKind, Person, WgRole
from rules import Decision, closes_at, snapshot_electorate, voting_members
from rules.ballots import BallotKind as RuleBallotKind
from rules.charter import Charter

__all__ = [
    "applied_result",
    "ballot_charter",
    "electorate_ids",
    "open_ledger_ballot",
    "posted_ref",
    "record_applied",
    "result_fields",
    "rule_params",
    "settled",
    "show_result",
]


def electorate_ids(
    session: Session, *, kind: RuleBallotKind, subject_person_id: int | None, charter: Charter
) -> list[int]:
    """The voting members now (R-ELECTORATE), as person ids; a removal leaves out its subject."""
    active = [f"person:{m.person_id}" for m in repo.active_memberships(session)]
    coc = repo.current_wg_roles(session).get(WgRole.COC_LIAISON)
    members = voting_members(active, coc_liaison=f"person:{coc.person_id}" if coc else None)
    subject = f"person:{subject_person_id}" if subject_person_id else None
    snap = snapshot_electorate(members, kind=kind, subject=subject, charter=charter)
    return [int(m.split(":")[1]) for m in snap]


def rule_params(kind: RuleBallotKind, charter: Charter) -> dict[str, Any]:
    """The charter's numbers a ballot of ``kind`` is tallied with, as the ledger keeps them."""
    if kind == "removal":
        removal = charter.ballots.removal
        return {"voting_days": removal.voting_days, "majority_fraction": str(removal.majority_fraction)}
    # An appointment runs on the approval numbers ("as R-VOTE-APPROVE").
    params = charter.ballots.endorsement if kind == "endorsement" else charter.ballots.approval
    return {
        "voting_days": params.voting_days,
        "quorum_fraction": str(params.quorum_fraction),
        "early_close": params.early_close,
    }


def ballot_charter(charter: Charter, ballot: Ballot) -> Charter:
    """``charter`` with the numbers ``ballot`` opened with (its ``rule_params``, recorded by
    :func:`open_ledger_ballot`) for its kind: a charter file changed while a ballot is open
    changes neither the deadline the platforms show nor the threshold it was opened with
    (R-ELECTORATE snapshots the ballot when it opens; R-REMOVE's E and majority are those of
    its opening). Numbers a ballot did not record stay the charter's."""
    kinds = charter.ballots
    sections: dict[str, Any] = {"approval": kinds.approval, "removal": kinds.removal, "endorsement": kinds.endorsement}
    # An appointment runs on the approval numbers ("as R-VOTE-APPROVE").
    section = ballot.kind.value if ballot.kind.value in sections else "approval"
    params = sections[section]
    recorded = {k: v for k, v in (ballot.rule_params or {}).items() if k in type(params).model_fields}
    if not recorded:
        return charter
    opened_with = type(params).model_validate({**params.model_dump(), **recorded})
    return charter.model_copy(update={"ballots": charter.ballots.model_copy(update={section: opened_with})})


def open_ledger_ballot(
    ctx: Ctx,
    session: Session,
    *,
    kind: RuleBallotKind,
    subject_ref: str,
    actor: str,
    subject_person: Person | None = None,
    params: Mapping[str, Any] | None = None,
) -> Ballot:
    """Open a ledger ballot of ``kind`` now: its electorate snapshot (a removal's without its
    subject), its deadline and the charter's numbers for it, plus ``params`` (what it is about)."""
    ids = electorate_ids(
        session,
        kind=kind,
        subject_person_id=subject_person.id if subject_person is not None else None,
        charter=ctx.charter,
    )
    return repo.open_ballot(
        session,
        kind=BallotKind(kind),
        subject_ref=subject_ref,
        electorate=ids,
        opens_at=ctx.now,
        closes_at=closes_at(kind, opened_at=ctx.now, charter=ctx.charter),
        rule_params={**rule_params(kind, ctx.charter), **(params or {})},
        actor=actor,
        subject_person=subject_person,
        at=ctx.now,
    )


def posted_ref(ballot: PlatformBallot) -> dict[str, Any]:
    """The ids a platform's ballot is recorded with (effect ``ballot:<id>:post:<platform>``):
    what the vote handler, the poll reader and the closer find it by."""
    return {
        "ballot_id": ballot.id,
        "question": ballot.question,
        "options": [{"id": o.id, "label": o.label} for o in ballot.options],
        "message_id": ballot.message.id if ballot.message else None,
        "thread_id": ballot.message.thread_id if ballot.message else None,
        "url": ballot.message.url if ballot.message else None,
    }


def result_fields(
    *, ballot_id: int, where: Mapping[str, Mapping[str, Any]], outcome: str, ruling: str, figures: Mapping[str, Any]
) -> dict[str, Any]:
    """What every ballot's result post to the WG carries: its key, the ballot's threads (where
    it was shown) and the merged tally. The caller adds its template and actor."""
    return {
        "key": f"ballot:{ballot_id}:result",
        "about": f"ballot:{ballot_id}",
        "threads": {p: r["thread_id"] for p, r in where.items() if r.get("thread_id")},
        "ballot_id": ballot_id,
        "outcome": outcome,
        "ruling": ruling,
        **{k: figures[k] for k in ("reason", "yes", "no", "abstain", "electorate")},
    }


def applied_result(session: Session, ballot_id: int) -> str | None:
    """What applying the closed ballot's outcome gave, when it was applied already."""
    applied = repo.effect_get(session, key=f"ballot:{ballot_id}:applied")
    return None if applied is None else str(applied["ref"].get("result", "applied"))


def record_applied(
    ctx: Ctx, *, ballot_id: int, actor: str, result: str | None = None, about: str | None = None
) -> None:
    """Record that the outcome of ``ballot_id`` was applied (``ballot:<id>:applied``, with what
    it gave when ``result`` is given), so a second closer or a rerun does not apply it again."""
    with ctx.ledger.transaction() as session:
        repo.effect_record(
            session,
            key=f"ballot:{ballot_id}:applied",
            platform="ledger",
            actor=actor,
            ref={"result": result} if result is not None else None,
            about=about or f"ballot:{ballot_id}",
            at=ctx.now,
        )


def show_result(*, ballot_id: int, title: str, outcome: str, ruling: str, figures: Mapping[str, Any]) -> None:
    """The closed ballot's run artifact (``ballot-<id>-result``): its outcome, ruling and tally."""
    artifact(
        key=f"ballot-{ballot_id}-result",
        title=title,
        decision=Decision(allowed=outcome == "passed", ruling=ruling, reason=figures["reason"]),
        rows={k: figures[k] for k in ("yes", "no", "abstain", "electorate", "needed", "decided_early")},
    )


def settled(*, ballot_id: int, outcome: str, ruling: str, figures: Mapping[str, Any], applied: str) -> dict[str, Any]:
    """What a closer returns for a ballot it settled: outcome, ruling, counts, what applying gave."""
    return {
        "ballot": ballot_id,
        "outcome": outcome,
        "ruling": ruling,
        **{k: figures[k] for k in ("yes", "no", "abstain", "electorate")},
        "applied": applied,
    }
