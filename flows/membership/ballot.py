"""What the approval and removal ballots share: posting a ledger ballot on every platform's
private WG space, merging votes per person across platforms (R-ELECTORATE), and closing early or
at the deadline (R-VOTE-EARLY) from a scheduled closer, so no process waits.

- A ballot is a ledger row with its electorate snapshot; each platform shows it (a Forum poll in
  the private category restricted to the WG group; Discord buttons in the private channel).
  The platform ballot's ids are recorded as the side effect ``ballot:<id>:post:<platform>``.
- Discord votes arrive as button interactions (handler ``vote``) and are cast at once; Forum poll
  votes are read by the closer (every 5 minutes) and cast when a member's Forum choice changed
  since it was last read. A person's latest vote counts, whichever platform it came from. A Forum
  vote read after the deadline was cast before it (the poll closes itself at its ``close`` time),
  so it is recorded just before the deadline.
- After every vote and at every closer run the ballot is tallied with ``rules.tally``; a decided
  ballot is closed in the ledger first, then on the platforms, then announced, then applied.
- Voters see the case (R-APP-5: ``post(long_values=…)`` shortens an applicant's answers, with a
  note and a link, where a platform's message cannot hold them) and, once it closed, the one
  merged tally on every platform (``result_line``). A removal ballot is secret (R-VOTE-SECRET,
  ``post(secret=True)``): the connectors show no voter and no count until it is closed; the
  ledger keeps each vote, for one vote per person and the audit log.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from prefect import flow
from sqlalchemy import select

from connectors.base import Ballot as PlatformBallot
from connectors.base import BallotOption, MessageRef, TallyDisplay, instance_key
from connectors.errors import PolicyViolation
from flows.ballots import ballot_charter, posted_ref, result_fields, settled, show_result
from flows.kit import Ctx, context, log, once, post_wg, render
from flows.presentation import label
from ledger import repo
from ledger.models import Ballot, BallotKind, BallotStatus, Identity, Platform, VoteChoice
from rules import check_vote, tally
from rules.ballots import decide_vote

ACTOR = "flow:ballot"
OPTIONS = ("Yes", "No", "Abstain")


def _key(ballot_id: int, platform: str) -> str:
    return f"ballot:{ballot_id}:post:{platform}"


# How much ballot text each platform shows in one message (Discord: 2000 characters per
# message, less the question, the voters note and the buttons' hint); elsewhere a post's length.
TEXT_LIMIT = {"discord": 1700}
DEFAULT_TEXT_LIMIT = 30000


def post(
    ctx: Ctx,
    *,
    ballot_id: int,
    template: str,
    actor: str,
    secret: bool = False,
    long_values: tuple[str, ...] = (),
    **values: Any,
) -> dict[str, Any]:
    """Show the ballot on every served platform, once each; raise the first failure after
    trying them all, so a rerun shows it where it is missing. ``secret`` (R-VOTE-SECRET): no
    member sees who voted how. ``long_values`` name the values (an applicant's answers) that are
    shortened, with a visible note and a link to a ballot showing them in full, where the text
    would not fit the platform's message."""
    with ctx.ledger.read() as session:
        ballot = session.get_one(Ballot, ballot_id)
        closes_at = ballot.closes_at
    posted = {}
    failed: list[Exception] = []
    full_at: str | None = None  # a ballot that shows the long values in full
    for space in ctx.platforms.spaces.values():
        if space.ballots is None:
            continue
        question, text, shortened = fit(
            template,
            platform=space.platform,
            long_values=long_values,
            full_at=full_at,
            limit=TEXT_LIMIT.get(space.platform, DEFAULT_TEXT_LIMIT),
            values={**values, "ballot_id": ballot_id, "closes_at": closes_at.strftime("%Y-%m-%d %H:%M UTC")},
        )

        def act(s=space, q=question, t=text) -> dict[str, Any]:
            b = s.ballots.open_ballot(
                channel=s.wg_channel,
                question=q,
                options=list(OPTIONS),
                voters_group=s.wg_role.name,
                closes_at=closes_at,
                key=_key(ballot_id, s.platform),
                text=t,
                secret=secret,
            )
            return posted_ref(b)

        try:
            posted[space.platform] = once(
                ctx,
                key=_key(ballot_id, space.platform),
                platform=space.platform,
                actor=actor,
                about=f"ballot:{ballot_id}",
                act=act,
            )["ref"]
        except Exception as exc:  # noqa: BLE001 - post on the others first, then fail the run
            log.warning("membership: ballot:%s not posted on %s: %s", ballot_id, space.platform, type(exc).__name__)
            failed.append(exc)
            continue
        if full_at is None and not shortened:
            full_at = posted[space.platform].get("url")
    if failed:
        # The run fails so that its retry (or the inbox's next attempt) posts what is missing;
        # what was posted is keyed and not posted again.
        raise failed[0]
    return posted


def fit(
    template: str,
    *,
    platform: str,
    values: dict[str, Any],
    long_values: tuple[str, ...],
    limit: int,
    full_at: str | None,
) -> tuple[str, str, bool]:
    """Render ``template`` for ``platform``; when its text is over ``limit``, shorten each of
    ``long_values`` to an equal share of the room left, saying so and where to read it in full.
    Returns (question, text, shortened)."""
    question, text = render(template, platform=platform, **values)
    long_values = tuple(k for k in long_values if values.get(k))
    if len(text) <= limit or not long_values:
        return question, text, False
    _, bare = render(template, platform=platform, **{**values, **{k: "" for k in long_values}})
    share = max(80, (limit - len(bare)) // len(long_values))
    where = f"read it in full at {full_at}" if full_at else "the full answer is kept with the application"
    short = {k: shorten(str(values[k]), share, note=where) for k in long_values}
    question, text = render(template, platform=platform, **{**values, **short})
    return question, text, True


def shorten(text: str, room: int, *, note: str) -> str:
    """``text`` cut at a word to at most ``room`` characters, ending with a visible note."""
    if len(text) <= room:
        return text
    tail = f" … [shortened; {note}]"
    keep = max(0, room - len(tail))
    cut = text.rfind(" ", 0, keep + 1)
    return text[: cut if cut > keep // 2 else keep].rstrip() + tail


def refs(ctx: Ctx, ballot_id: int) -> dict[str, dict[str, Any]]:
    """Where the ballot is shown: platform → recorded ids."""
    out = {}
    with ctx.ledger.read() as session:
        for platform in ctx.platforms.spaces:
            found = repo.effect_get(session, key=_key(ballot_id, platform))
            if found is not None:
                out[platform] = found["ref"]
    return out


def platform_ballot(platform: str, ref: dict[str, Any]) -> PlatformBallot:
    """The connector's ``Ballot`` for recorded ids."""
    message = (
        MessageRef(platform=platform, id=str(ref["message_id"]), thread_id=str(ref["thread_id"]))
        if ref.get("message_id")
        else None
    )
    return PlatformBallot(
        platform=platform,
        id=str(ref["ballot_id"]),
        question=ref.get("question", ""),
        options=tuple(BallotOption(id=str(o["id"]), label=o["label"]) for o in ref["options"]),
        message=message,
    )


def choice_of(ref: dict[str, Any], option_id: str) -> str | None:
    """``yes``/``no``/``abstain`` for a platform option id."""
    for option in ref["options"]:
        if str(option["id"]) == str(option_id):
            label = str(option["label"]).strip().lower()
            return label if label in ("yes", "no", "abstain") else None
    return None


def _subject(ballot: Ballot) -> str | None:
    return f"person:{ballot.subject_person_id}" if ballot.kind == BallotKind.REMOVAL else None


def _state(session: Any, ballot: Ballot) -> tuple[list[str], dict[str, str]]:
    electorate = [f"person:{e.person_id}" for e in ballot.electors]
    votes = {f"person:{v.voter_person_id}": v.choice.value for v in repo.current_votes(session, ballot)}
    return electorate, votes


def cast(
    ctx: Ctx, *, ballot_id: int, platform: str, external_id: str, choice: str, at: datetime | None = None
) -> tuple[bool, str]:
    """Cast (or replace) the vote of the person owning ``platform`` account ``external_id``;
    a vote from outside the electorate, or on a closed ballot, is refused and audited.
    Returns (accepted, reason)."""
    at = at or ctx.now
    with ctx.ledger.transaction() as session:
        ballot = session.get_one(Ballot, ballot_id)
        identity = session.scalar(
            select(Identity).where(Identity.platform == Platform(platform), Identity.external_id == str(external_id))
        )
        voter = identity.person if identity is not None else None
        electorate, votes = _state(session, ballot)
        key = f"person:{voter.id}" if voter else f"{platform}-user:{external_id}"
        decision = decide_vote(
            check_vote(
                ballot.kind.value,
                voter=key,
                electorate=electorate,
                votes=votes,
                subject=_subject(ballot),
                opened_at=ballot.opens_at,
                now=at,
                charter=ballot_charter(ctx.charter, ballot),
            ),
            ballot_open=ballot.status == BallotStatus.OPEN,
        )
        ruling, reason, code = decision.ruling, decision.reason, decision.code
        if decision.allowed and voter is not None:  # allowed: a person of the electorate
            try:
                repo.cast_vote(
                    session, ballot, voter, choice=VoteChoice(choice), source_platform=platform, actor=ACTOR, at=at
                )
                return True, decision.reason
            except PolicyViolation as exc:
                ruling, code = exc.ruling, "closed"
                reason = exc.reason
    with ctx.ledger.transaction() as session:
        ballot = session.get_one(Ballot, ballot_id)
        repo.record_refused_vote(
            session,
            ballot,
            voter_person_id=voter.id if voter else None,
            ruling=ruling,
            reason_code=code,
            source_platform=platform,
            actor=ACTOR,
            at=at,
        )
    return False, reason


def sync_platform_votes(ctx: Ctx, *, ballot_id: int) -> int:
    """Read the votes of every platform whose votes are not pushed to us (the Forum poll) and
    cast the ones that changed since the last read; returns how many were cast."""
    cast_count = 0
    for platform, ref in refs(ctx, ballot_id).items():
        space = ctx.platforms.space(platform)
        if space is None or space.ballots is None or space.capable(TallyDisplay) is not None:
            continue  # a TallyDisplay's votes arrive as interactions (handler ``vote``)
        seen = space.ballots.read_votes(platform_ballot(platform, ref))
        with ctx.ledger.read() as session:
            ballot = session.get_one(Ballot, ballot_id)
            if ballot.status != BallotStatus.OPEN:
                return cast_count
            closes_at = ballot.closes_at
            last_here: dict[int, str] = {}
            for v in repo.ballot_votes_history(session, ballot):
                if v.source_platform == platform:
                    last_here[v.voter_person_id] = v.choice.value
            owners = {
                i.external_id: i.person_id
                for i in session.scalars(select(Identity).where(Identity.platform == Platform(platform)))
            }
        at = min(ctx.now, closes_at - timedelta(microseconds=1))
        for vote in seen:
            choice = choice_of(ref, vote.option_id)
            if choice is None:
                continue
            person_id = owners.get(vote.voter.id)
            if person_id is not None and last_here.get(person_id) == choice:
                continue  # read before: nothing new from this platform
            voter_key = instance_key(platform, space.instance or "-", "user", vote.voter.id)
            # A refused choice is refused (and audited, R-ELECTORATE) once, not at every read: a
            # person's by person (outside the electorate, or the ballot decided, for good); an
            # unknown account's by account, so it counts once it is linked to a voter.
            who = f"person:{person_id}" if person_id is not None else voter_key
            refused_key = f"refused:{ballot_id}:{who}:{choice}"
            if _done(ctx, refused_key):
                continue
            accepted, _ = cast(
                ctx, ballot_id=ballot_id, platform=platform, external_id=vote.voter.id, choice=choice, at=at
            )
            if accepted:
                cast_count += 1
            else:
                with ctx.ledger.transaction() as session:
                    repo.effect_record(
                        session,
                        key=refused_key,
                        platform=platform,
                        actor=ACTOR,
                        about=f"ballot:{ballot_id}",
                        at=ctx.now,
                    )
                if person_id is not None:
                    # Remember this Forum choice was read, so it is not refused again each run.
                    last_here[person_id] = choice
    return cast_count


def _done(ctx: Ctx, key: str) -> bool:
    with ctx.ledger.read() as session:
        return repo.effect_get(session, key=key) is not None


def close_on_platforms(
    ctx: Any, *, ballot_id: int, figures: dict[str, Any] | None, line: str, actor: str
) -> dict[str, dict[str, Any]]:
    """Close ``ballot_id`` on each platform it was posted on, once each, every platform showing
    the ledger's one tally (votes merged across platforms, R-APP-5; ``figures`` None: a
    cancelled ballot, no tally) and ``line``; returns where it was posted (:func:`refs`)."""
    where = refs(ctx, ballot_id)
    for platform, ref in where.items():
        space = ctx.platforms.space(platform)
        if space is None or space.ballots is None:
            continue
        counts = (
            None if figures is None else [int(figures.get(str(o["label"]).strip().lower(), 0)) for o in ref["options"]]
        )
        once(
            ctx,
            key=f"ballot:{ballot_id}:closed:{platform}",
            platform=platform,
            actor=actor,
            about=f"ballot:{ballot_id}",
            act=lambda s=space, p=platform, r=ref, c=counts: (
                s.close_ballot(platform_ballot(p, r), counts=c, result=line),
                None,
            )[1],
        )
    return where


def settle(ctx: Ctx, *, ballot_id: int) -> dict[str, Any]:
    """Tally; when decided (early or at the deadline) close it in the ledger, then on the
    platforms, announce the result and apply it. Safe to call again at any point."""
    with ctx.ledger.transaction() as session:
        ballot = session.get_one(Ballot, ballot_id)
        closed = closed_result(ctx, session, ballot, ballot_id)
        if isinstance(closed, dict):
            return closed
        kind, (outcome, ruling, figures) = ballot.kind, closed
        per_platform = votes_by_platform(session, ballot)
    line = result_line(outcome=outcome, figures=figures, per_platform=per_platform)
    where = close_on_platforms(ctx, ballot_id=ballot_id, figures=figures, line=line, actor=ACTOR)
    about = {
        BallotKind.APPROVAL: "an application",
        BallotKind.ENDORSEMENT: "endorsing a proposal for the DSF Board",
        BallotKind.APPOINTMENT: "a WG role appointment",
    }.get(kind, "a removal")
    _announce(
        ctx, ballot_id=ballot_id, where=where, outcome=outcome, ruling=ruling, figures=figures, about=about, line=line
    )
    show_result(
        ballot_id=ballot_id, title=f"Ballot {ballot_id} {outcome}", outcome=outcome, ruling=ruling, figures=figures
    )
    # lazy: cycle: flows.membership.ballot and each kind's module (each posts and tallies its ballots here)
    from flows.board.endorsement import apply_outcome as apply_endorsement
    from flows.membership.approval import apply_outcome as apply_approval
    from flows.membership.removal import apply_outcome as apply_removal
    from flows.wg_roles.ballot import apply_outcome as apply_appointment

    apply_outcome = {
        BallotKind.APPROVAL: apply_approval,
        BallotKind.ENDORSEMENT: apply_endorsement,
        BallotKind.APPOINTMENT: apply_appointment,
    }.get(kind, apply_removal)
    applied = apply_outcome(ctx, ballot_id=ballot_id)
    return settled(ballot_id=ballot_id, outcome=outcome, ruling=ruling, figures=figures, applied=applied)


def closed_result(
    ctx: Ctx, session: Any, ballot: Ballot, ballot_id: int, *, actor: str = ACTOR
) -> dict[str, Any] | tuple[str, str, dict[str, Any]]:
    """A ballot's outcome, ruling and figures once it is closed (an open one is tallied first
    and closed when decided); while it stays open, or once cancelled, the run's answer instead.
    Every ballot kind's settle starts here."""
    if ballot.status == BallotStatus.OPEN:
        still_open = tally_open(ctx, session, ballot, ballot_id, actor=actor)
        if still_open is not None:
            return still_open
    if ballot.status == BallotStatus.CANCELLED:
        return {"ballot": ballot_id, "outcome": "cancelled"}
    if ballot.outcome is None or ballot.ruling is None or ballot.tally is None:
        raise LookupError(f"ballot:{ballot_id} is closed without its tally")
    return ballot.outcome.value, ballot.ruling, dict(ballot.tally)


def tally_open(ctx: Ctx, session: Any, ballot: Ballot, ballot_id: int, *, actor: str = ACTOR) -> dict[str, Any] | None:
    """Tally an open ballot of any kind; close it in the ledger when decided (None), else its
    open figures. The endorsement ballot's settle uses it too."""
    electorate, votes = _state(session, ballot)
    result = tally(
        ballot.kind.value,
        electorate=electorate,
        votes=votes,
        subject=_subject(ballot),
        opened_at=ballot.opens_at,
        now=ctx.now,
        charter=ballot_charter(ctx.charter, ballot),
    )
    if not result.closed:
        return {
            "ballot": ballot_id,
            "outcome": "open",
            "yes": result.yes,
            "no": result.no,
            "abstain": result.abstain,
            "reason": result.reason,
        }
    repo.close_ballot(
        session,
        ballot,
        outcome=result.outcome,
        ruling=result.ruling,
        tally={
            "yes": result.yes,
            "no": result.no,
            "abstain": result.abstain,
            "electorate": result.electorate,
            "needed": result.needed,
            "decided_early": result.decided_early,
            "reason": result.reason,
        },
        actor=actor,
        at=ctx.now,
    )
    return None


def votes_by_platform(session: Any, ballot: Ballot) -> dict[str, int]:
    """How many of the counted votes came from each platform (counts only, never who)."""
    out: dict[str, int] = {}
    for vote in repo.current_votes(session, ballot):
        out[vote.source_platform] = out.get(vote.source_platform, 0) + 1
    return out


def result_line(*, outcome: str, figures: dict[str, Any], per_platform: dict[str, int]) -> str:
    """The one merged tally every platform shows once a ballot closed, e.g. "Closed: passed,
    4 yes, 1 no, 0 abstain of 7 (Discord 3, Forum 2)". Counts only (R-VOTE-SECRET)."""
    where = ", ".join(f"{label(p)} {n}" for p, n in sorted(per_platform.items(), key=lambda item: label(item[0])) if n)
    return (
        f"Closed: {outcome}, {figures['yes']} yes, {figures['no']} no, "
        f"{figures['abstain']} abstain of {figures['electorate']}" + (f" ({where})" if where else " (no votes cast)")
    )


def _announce(
    ctx: Ctx,
    *,
    ballot_id: int,
    where: dict[str, Any],
    outcome: str,
    ruling: str,
    figures: dict[str, Any],
    about: str,
    line: str,
) -> None:
    post_wg(
        ctx,
        template="ballot_result",
        actor=ACTOR,
        subject_text=about,
        result_line=line,
        **result_fields(ballot_id=ballot_id, where=where, outcome=outcome, ruling=ruling, figures=figures),
    )


def close_due(ctx: Ctx) -> list[dict[str, Any]]:
    """Read platform votes of every open ballot and settle it; finish ballots closed earlier
    whose outcome was not applied yet (a crash between closing and applying)."""
    out = []
    with ctx.ledger.read() as session:
        open_ids = [b.id for b in repo.open_ballots(session)]
        recent = [
            b.id
            for b in session.scalars(
                select(Ballot).where(
                    Ballot.status == BallotStatus.CLOSED, Ballot.closed_at >= ctx.now - timedelta(days=30)
                )
            )
        ]
    for ballot_id in open_ids:
        try:
            sync_platform_votes(ctx, ballot_id=ballot_id)
        except Exception as exc:  # noqa: BLE001 - a platform down: tally what the ledger has
            log.warning("membership: votes of ballot:%s not read: %s", ballot_id, type(exc).__name__)
        out.append(settle(ctx, ballot_id=ballot_id))
    for ballot_id in recent:
        if not _done(ctx, f"ballot:{ballot_id}:applied"):
            out.append(settle(ctx, ballot_id=ballot_id))
    close_cancelled(ctx)
    return out


def close_cancelled(ctx: Ctx) -> list[int]:
    """Close on the platforms the ballots cancelled in the ledger in the last 30 days (a removal
    whose subject left or lapsed meanwhile, ``flows.membership.leave``), once each, so that no
    platform keeps showing a ballot nobody can vote on any more as open; returns their ids."""
    with ctx.ledger.read() as session:
        cancelled = [
            (b.id, b.kind)
            for b in session.scalars(
                select(Ballot).where(
                    Ballot.status == BallotStatus.CANCELLED, Ballot.closed_at >= ctx.now - timedelta(days=30)
                )
            )
        ]
    for ballot_id, kind in cancelled:
        why = "the membership under vote ended" if kind == BallotKind.REMOVAL else "it no longer applies"
        try:
            close_on_platforms(
                ctx, ballot_id=ballot_id, figures=None, line=f"Cancelled before it was decided: {why}.", actor=ACTOR
            )
        except Exception as exc:  # noqa: BLE001 - a platform down: the next run closes it there
            log.warning("membership: cancelled ballot:%s not closed everywhere: %s", ballot_id, type(exc).__name__)
    return [ballot_id for ballot_id, _kind in cancelled]


@flow(name="membership-close-due-ballots", flow_run_name="close-due-ballots", log_prints=True)
def close_due_ballots(now: datetime | None = None) -> list[dict[str, Any]]:
    """Scheduled every 5 minutes: merge Forum poll votes into the ledger, close ballots that are
    decided (R-VOTE-EARLY) or past their deadline, announce and apply their outcome."""
    return close_due(context(now))
