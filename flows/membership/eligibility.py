"""Eligibility (R-ELIG-1..4): collect activity from each named platform, decide with
``rules.decide_eligibility``, keep the evidence, and tell the applicant kindly when it is not met.

An eligible application goes on to its approval ballot. ``unknown`` (a figure the platform could
not give) is never yes: the applicant is told, the application stays ``confirmed`` and an
operator may run this flow again later.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from connectors.errors import ConnectorError
from flows.kit import Ctx, artifact, context, identities_of, log, run_name, user_ref
from flows.membership.approval import open_approval_ballot
from flows.membership.intake import named_identities, tell_applicant
from ledger import repo
from ledger.models import Application, ApplicationStatus, EligibilityOutcome
from rules import ActivityEvidence, Applicant, Decision, DiscordEvidence, DiscourseEvidence, decide_eligibility

ACTOR = "flow:eligibility"
# An "unknown" eligibility is checked again this long after the last check (R-ELIG-1).
RECHECK_AFTER = timedelta(days=1)
_OUTCOME = {
    "eligible": EligibilityOutcome.YES,
    "not-eligible": EligibilityOutcome.NO,
    "unknown": EligibilityOutcome.UNKNOWN,
}


@task(name="collect-activity", cache_policy=NO_CACHE)
def collect(ctx: Ctx, application_id: int) -> tuple[Applicant, dict[str, Any]]:
    """Read each named account's activity from its platform (R-ELIG-1)."""
    with ctx.ledger.read() as session:
        app = session.get_one(Application, application_id)
        person_id, nominator = app.person_id, app.nominator_handle
    names: dict[str, str] = {}
    evidence: dict[str, Any] = {"discourse": None, "discord": None}
    for identity in identities_of(ctx, person_id, ids=named_identities(ctx, application_id)):
        platform = identity.platform.value
        names[platform] = identity.username or ""
        space = ctx.platforms.space(platform)
        if space is None or space.directory is None:
            continue
        try:
            activity = space.directory.activity(user_ref(identity))
        except ConnectorError:
            continue  # unknown, never yes (R-ELIG-1)
        # The charter's own tables for the Forum and Discord; any other platform's figures as
        # its connector reports them (rules.check_activity).
        if platform == "discourse":
            evidence[platform] = DiscourseEvidence(
                created_at=activity.created_at,
                # None is not reported, never zero: unknown, not "no" (R-ELIG-1).
                days_visited=activity.days_visited,
                post_count=activity.post_count,
                last_seen_at=activity.last_seen_at,
                fetched_at=ctx.now,
            )
        elif platform == "discord":
            evidence[platform] = DiscordEvidence(
                joined_at=activity.created_at, messages_90d=activity.post_count, fetched_at=ctx.now
            )
        else:
            evidence[platform] = ActivityEvidence(
                created_at=activity.created_at,
                post_count=activity.post_count,
                days_visited=activity.days_visited,
                last_seen_at=activity.last_seen_at,
                fetched_at=ctx.now,
            )
    others = {p: u for p, u in names.items() if p not in ("discourse", "discord")}
    applicant = Applicant(
        forum=names.get("discourse"), discord=names.get("discord"), nominator=nominator, accounts=others
    )
    return applicant, evidence


def _evaluate(ctx: Ctx, application_id: int) -> Decision:
    """Collect the named accounts' activity and apply the charter's rule to it."""
    applicant, evidence = collect(ctx, application_id)
    return decide_eligibility(
        applicant,
        discourse=evidence["discourse"],
        discord=evidence["discord"],
        others={p: evidence.get(p) for p in applicant.accounts},
        dsf_members=ctx.platforms.dsf_members,
        now=ctx.now,
        charter=ctx.charter,
    )


def _record(ctx: Ctx, application_id: int, outcome: EligibilityOutcome, decision: Decision) -> int:
    """Record the check (a "no" refuses the application); the check's id."""
    with ctx.ledger.transaction() as session:
        app = session.get_one(Application, application_id)
        check = repo.record_eligibility(
            session,
            app,
            outcome=outcome,
            ruling=decision.ruling,
            reason=decision.reason[:400],
            evidence=decision.evidence,
            actor=ACTOR,
            at=ctx.now,
        )
        if outcome == EligibilityOutcome.NO:
            repo.set_application_status(session, app, ApplicationStatus.REFUSED, actor=ACTOR, at=ctx.now)
        return check.id


def _tell_not_met(
    ctx: Ctx, application_id: int, person_id: int, outcome: EligibilityOutcome, decision: Decision, check_id: int
) -> dict[str, Any] | None:
    """Tell the applicant a "no" or "unknown"; the flow's answer then, None for a "yes"."""
    if outcome not in (EligibilityOutcome.NO, EligibilityOutcome.UNKNOWN):
        return None
    refused = outcome == EligibilityOutcome.NO
    # A "no" is told once, and so is an "unknown": the check is made again every day
    # (recheck_unknown) and a check that still does not know has nothing new to tell.
    told: dict[str, Any] = {"template": "eligibility_unknown", "key": f"eligibility-unknown:{application_id}"}
    if refused:
        told = {
            "template": "not_eligible",
            "key": f"not-eligible:{application_id}",
            "min_age": ctx.charter.eligibility.account_min_age_days,
        }
    tell_applicant(ctx, application_id, person_id, actor=ACTOR, ruling=decision.ruling, reason=decision.reason, **told)
    return {
        "application": application_id,
        "status": "refused" if refused else "unknown",
        "ruling": decision.ruling,
        "reason": decision.reason,
    }


def decide(ctx: Ctx, *, application_id: int) -> dict[str, Any]:
    """Decide and record eligibility; open the ballot when eligible. Idempotent: an application
    past ``voting`` is left as it is; a recorded "yes" is not decided again."""
    with ctx.ledger.read() as session:
        app = session.get_one(Application, application_id)
        status, person_id = app.status, app.person_id
        last = app.eligibility[-1] if app.eligibility else None
        last_yes = last is not None and last.outcome == EligibilityOutcome.YES
    # Voting: eligibility was decided; (re)show the ballot a cut-short run may not have posted.
    if status not in (ApplicationStatus.CONFIRMED, ApplicationStatus.VOTING) or (
        status == ApplicationStatus.VOTING and not last_yes
    ):
        return {"application": application_id, "status": status.value, "changed": False}
    if last is None or not last_yes:
        decision = _evaluate(ctx, application_id)
        outcome = _OUTCOME[decision.evidence["status"]]
        check_id = _record(ctx, application_id, outcome, decision)
        artifact(
            key=f"application-{application_id}-eligibility",
            title=f"Eligibility of application {application_id}",
            decision=decision,
            evidence=decision.evidence,
        )
        told = _tell_not_met(ctx, application_id, person_id, outcome, decision, check_id)
        if told is not None:
            return told
        result: dict[str, Any] = {"ruling": decision.ruling, "reason": decision.reason}
    else:
        result = {"ruling": last.ruling, "reason": last.reason}
    ballot = open_approval_ballot(application_id=application_id, now=ctx.now)
    return {"application": application_id, "status": "eligible", **result, "ballot": ballot}


def recheck_unknown(ctx: Ctx) -> list[int]:
    """R-ELIG-1: check again every confirmed application whose last check answered "unknown"
    (a figure the platform could not give yet) :data:`RECHECK_AFTER` after it, so it is decided
    once the figures are known instead of waiting for an operator (the applicant was told the
    check is repeated). Returns the applications checked."""
    with ctx.ledger.read() as session:
        due = [
            app.id
            for app in repo.applications_with_status(session, ApplicationStatus.CONFIRMED)
            if app.eligibility
            and app.eligibility[-1].outcome == EligibilityOutcome.UNKNOWN
            and ctx.now - app.eligibility[-1].checked_at >= RECHECK_AFTER
        ]
    for application_id in due:
        try:
            decide(ctx, application_id=application_id)
        except Exception as exc:  # noqa: BLE001 - the others are checked; this one again next run
            log.warning(
                "membership: eligibility of application:%s not checked again: %s", application_id, type(exc).__name__
            )
    return due


@flow(
    name="membership-eligibility", flow_run_name=run_name("eligibility-application", "application_id"), log_prints=True
)
def check_eligibility(application_id: int, now: datetime | None = None) -> dict[str, Any]:
    """Decide R-ELIG-1..3 for a confirmed application, keep the evidence (R-ELIG-4), tell the
    applicant when it is not met, open the approval ballot when it is."""
    return decide(context(now), application_id=application_id)


__all__ = ["check_eligibility", "decide", "Decision", "recheck_unknown"]
