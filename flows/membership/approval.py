"""The approval ballot (R-VOTE-APPROVE, R-VOTE-EARLY, R-ELECTORATE): opened for an eligible
application on every platform's private WG space; closed by ``membership-close-due-ballots`` or
by the vote that decides it; its outcome approves (then onboarding) or rejects the application.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import flow

from flows.ballots import ballot_charter, open_ledger_ballot, record_applied
from flows.kit import Ctx, artifact, context, run_name
from flows.membership import ballot as ballots
from flows.membership.intake import tell_applicant
from flows.membership.onboarding import onboard
from flows.presentation import label
from ledger import repo
from ledger.models import (
    Application,
    ApplicationStatus,
    Ballot,
    BallotOutcome,
    EligibilityOutcome,
    Person,
)
from rules import quorum
from rules.ballots import approval_opened

ACTOR = "flow:approval"


def open_step(ctx: Ctx, *, application_id: int) -> dict[str, Any]:
    """Open (once) the approval ballot of an eligible application and show it on the platforms."""
    with ctx.ledger.transaction() as session:
        app = session.get_one(Application, application_id)
        person = session.get_one(Person, app.person_id)
        handle = person.handle
        if app.ballot_id is None:
            last = app.eligibility[-1] if app.eligibility else None
            if app.status != ApplicationStatus.CONFIRMED or last is None or last.outcome != EligibilityOutcome.YES:
                return {"application": application_id, "ballot": None, "status": app.status.value}
            ballot = open_ledger_ballot(
                ctx, session, kind="approval", subject_ref=f"application:{app.id}", actor=ACTOR, subject_person=person
            )
            repo.set_application_status(
                session, app, ApplicationStatus.VOTING, actor=ACTOR, ballot_id=ballot.id, at=ctx.now
            )
        ballot = session.get_one(Ballot, app.ballot_id)
        ballot_id, size = ballot.id, len(ballot.electors)
        needed = quorum(size, kind="approval", charter=ballot_charter(ctx.charter, ballot))
        eligibility = app.eligibility[-1]
        ruling, evidence = eligibility.ruling, dict(eligibility.evidence or {})
        why, experience, nominator = app.motivation, app.experience, app.nominator_handle
    # R-APP-5: the voters see the case (answers, evidence in short, the nomination).
    posted = ballots.post(
        ctx,
        ballot_id=ballot_id,
        template="approval_question",
        actor=ACTOR,
        long_values=("why", "experience"),
        handle=handle,
        application_id=application_id,
        eligibility_ruling=ruling,
        why=why or "(no answer, or erased)",
        experience=experience or "(no answer, or erased)",
        evidence_line=evidence_line(evidence, charter=ctx.charter),
        nomination_line=nomination_line(nominator, evidence, handle=handle),
        electorate=size,
        quorum=needed,
    )
    artifact(
        key=f"application-{application_id}-ballot",
        title=f"Approval ballot {ballot_id}",
        decision=approval_opened(application_id),
        rows={"electorate": size, "shown on": ", ".join(posted) or "no platform"},
    )
    return {"application": application_id, "ballot": ballot_id, "electorate": size, "platforms": sorted(posted)}


def _days(since: str | None, until: str | None) -> int | None:
    try:
        return (datetime.fromisoformat(str(until)) - datetime.fromisoformat(str(since))).days
    except (TypeError, ValueError):
        return None


def _forum_line(forum: dict[str, Any], checked: Any) -> str:
    """The Forum's figures in short; one the Forum did not report is "unknown" (R-ELIG-1)."""
    if "created_at" not in forum:
        return "Forum: figures not fetched"
    age = _days(forum.get("created_at"), checked)
    visited, posts = ("unknown" if forum.get(k) is None else forum[k] for k in ("days_visited", "post_count"))
    return f"Forum: {visited} days visited, {posts} posts" + (f", account {age} days" if age is not None else "")


def evidence_line(evidence: dict[str, Any], *, charter: Any) -> str:
    """The eligibility evidence in short, per platform (R-APP-5), e.g. "Forum: 14 days visited,
    6 posts, account 400 days; Discord: member 200 days, 9 messages/90 days". Ages are as of the
    check. Pure."""
    platforms = evidence.get("platforms") or {}
    checked = evidence.get("checked_at")
    parts = []
    forum = platforms.get("discourse")
    if forum:
        parts.append(_forum_line(forum, checked))
    discord = platforms.get("discord")
    if discord:
        age = _days(discord.get("joined_at"), checked)
        window = charter.eligibility.discord.messages_window_days
        count = discord.get("messages_90d")
        parts.append(
            "Discord: "
            + ", ".join(
                p
                for p in (
                    f"member {age} days" if age is not None else "",
                    f"{count if count is not None else 'unknown'} messages/{window} days"
                    if "messages_90d" in discord
                    else "figures not fetched",
                )
                if p
            )
        )
    for platform, figures in sorted(platforms.items()):
        if platform in ("discourse", "discord") or not figures:
            continue
        age = _days(figures.get("created_at"), checked)
        parts.append(
            f"{label(platform)}: "
            + ", ".join(
                p
                for p in (
                    f"{figures['post_count']} posts" if figures.get("post_count") is not None else "",
                    f"{figures['days_visited']} days visited" if figures.get("days_visited") is not None else "",
                    f"account {age} days" if age is not None else "",
                )
                if p
            )
        )
    return "; ".join(parts) or "no platform figures (eligible by nomination)"


def nomination_line(nominator: str | None, evidence: dict[str, Any], *, handle: str) -> str:
    """Who nominated the applicant and whether the nomination is valid (R-ELIG-2/3). Pure."""
    if not nominator:
        return "none (applied without a nominator)"
    if nominator.casefold() == handle.casefold() or "nomination_valid" not in evidence:
        return f"self-nominated ({nominator}, R-ELIG-3)"
    if evidence["nomination_valid"]:
        return f"nominated by {nominator}, a DSF Individual Member: valid (R-ELIG-2)"
    return f"nominated by {nominator}, who is not on the list of DSF Individual Members: not valid (R-ELIG-2)"


def apply_outcome(ctx: Ctx, *, ballot_id: int) -> str:
    """Passed: the application is approved and onboarding runs. Failed: rejected, and the
    applicant is told. Idempotent (``ballot:<id>:applied``)."""
    with ctx.ledger.transaction() as session:
        ballot = session.get_one(Ballot, ballot_id)
        app_id = int(ballot.subject_ref.split(":")[1])
        app = session.get_one(Application, app_id)
        if app.status == ApplicationStatus.VOTING:
            status = (
                ApplicationStatus.APPROVED if ballot.outcome == BallotOutcome.PASSED else ApplicationStatus.REJECTED
            )
            repo.set_application_status(session, app, status, actor=ACTOR, at=ctx.now)
        status, person_id, ruling = app.status, app.person_id, ballot.ruling
    if status == ApplicationStatus.APPROVED:
        onboard(application_id=app_id, now=ctx.now)
    elif status == ApplicationStatus.REJECTED:
        tell_applicant(
            ctx, app_id, person_id, actor=ACTOR, template="rejected", key=f"rejected:{app_id}", ruling=ruling
        )
    record_applied(ctx, ballot_id=ballot_id, actor=ACTOR, about=f"application:{app_id}")
    return status.value


@flow(
    name="membership-approval-ballot",
    flow_run_name=run_name("approval-ballot-application", "application_id"),
    log_prints=True,
)
def open_approval_ballot(application_id: int, now: datetime | None = None) -> dict[str, Any]:
    """Open the approval ballot of an eligible application (R-VOTE-APPROVE) on every platform;
    running it again shows the same ballot, never a second one."""
    return open_step(context(now), application_id=application_id)
