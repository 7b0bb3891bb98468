"""Onboarding: membership and first term in the ledger (R-TERM-1: one year from approval), the WG
role on each platform (Forum group, Discord role) through plan-then-apply, a welcome in the WG's
private space and a direct message. Every step is idempotent; a crash between a role grant and
its record is repaired by running it again (the platform is read first).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import flow

from flows.kit import Ctx, artifact, context, identities_of, message_person, post_wg, run_name
from flows.membership.intake import GROUP
from flows.platforms import role_text
from flows.reconcile import reconcile_person
from ledger import repo
from ledger.models import Application, ApplicationStatus, Ballot, Membership, MembershipStatus, Person
from rules import term_window
from rules.terms import term_started

ACTOR = "flow:onboarding"


def onboard_step(ctx: Ctx, *, application_id: int) -> dict[str, Any]:
    """Make the approved applicant a member with their roles, and welcome them."""
    with ctx.ledger.transaction() as session:
        app = session.get_one(Application, application_id)
        if app.status != ApplicationStatus.APPROVED:
            return {"application": application_id, "onboarded": False, "status": app.status.value}
        ballot = session.get_one(Ballot, app.ballot_id)
        person = session.get_one(Person, app.person_id)
        start = ballot.closed_at or ctx.now
        window = term_window(start, charter=ctx.charter)
        membership = repo.open_membership(session, person)
        if membership is None or membership.status != MembershipStatus.ACTIVE:
            membership = repo.start_membership(
                session, person, actor=ACTOR, starts_at=start, ends_at=window.end, ballot_id=ballot.id, at=ctx.now
            )
        decision_ref = f"ballot:{ballot.id}"
        for identity in person.identities:
            space = ctx.platforms.space(identity.platform.value)
            if space is not None:
                repo.set_desired_platform_role(
                    session,
                    person,
                    platform=space.platform,
                    role=role_text(space.wg_role),
                    desired=True,
                    actor=ACTOR,
                    decision_ref=decision_ref,
                    at=ctx.now,
                )
        person_id, handle, ballot_id = person.id, person.handle, ballot.id
        term = session.get_one(Membership, membership.id).terms[0]
        term_start, term_end = term.starts_at, term.ends_at
    roles = reconcile_person(ctx, person_id, decision_ref=f"ballot:{ballot_id}", actor=ACTOR)
    post_wg(
        ctx,
        template="welcome_wg",
        key=f"welcome:{application_id}",
        actor=ACTOR,
        about=f"person:{person_id}",
        handle=handle,
        ballot_id=ballot_id,
        term_start=term_start.date().isoformat(),
        term_end=term_end.date().isoformat(),
    )
    message_person(
        ctx,
        person_id,
        email=True,
        template="welcome_dm",
        key=f"welcome-dm:{application_id}",
        actor=ACTOR,
        about=f"person:{person_id}",
        group=GROUP,
        term_end=term_end.date().isoformat(),
    )
    artifact(
        key=f"application-{application_id}-onboarded",
        title=f"{handle} onboarded",
        decision=term_started(start=term_start, end=term_end, first=True),
        rows={
            "roles granted": ", ".join(roles["applied"]) or "none (already held)",
            "role plan refused": roles["refused"] or "no",
            "platforms": ", ".join(i.platform.value for i in identities_of(ctx, person_id)),
        },
    )
    return {
        "application": application_id,
        "onboarded": True,
        "person": person_id,
        "term_end": term_end.isoformat(),
        "roles": roles,
    }


@flow(name="membership-onboarding", flow_run_name=run_name("onboarding-application", "application_id"), log_prints=True)
def onboard(application_id: int, now: datetime | None = None) -> dict[str, Any]:
    """Onboard an approved applicant: membership + first term, WG roles on each platform,
    welcome. Safe to run again (an operator reruns it after a platform outage)."""
    return onboard_step(context(now), application_id=application_id)
