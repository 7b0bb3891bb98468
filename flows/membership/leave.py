"""Leave (R-LEAVE): a member leaves at any time by ``/leave`` on Discord, a request to the
operators, or this flow run from the Prefect UI; effective immediately, no vote, the same
revocations as a lapse. Open ballots about them are cancelled.

``end_membership`` (shared with lapse and removal) ends the membership in the ledger first
(the repository marks every platform role of the person as not desired), then revokes through
plan-then-apply, then tells the group and the person.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import flow
from sqlalchemy import select

from connectors.errors import PolicyViolation
from flows.kit import Ctx, artifact, context, message_person, person_run_name, post_wg
from flows.membership.intake import GROUP
from flows.reconcile import reconcile_person
from flows.roles.revocations import announce_waiting, decide_end, kept_roles, record_end
from ledger import repo
from ledger import roles as roles_ledger
from ledger.models import BallotStatus, Membership, MembershipStatus, Person
from rules.leaving import MembershipFacts, check_ending, ended, leave_reason

ACTOR = "flow:leave"


def end_membership(
    ctx: Ctx,
    *,
    person_id: int,
    status: MembershipStatus,
    actor: str,
    ruling: str | None = None,
    ballot_id: int | None = None,
) -> dict[str, Any]:
    """End the person's active membership (once) and revoke its roles; returns what happened.
    ``rules.leaving.check_ending`` decides, under the ending's ruling (R-LEAVE, R-REMOVE,
    R-TERM-2); ``ruling`` is accepted for older callers and not used.

    R-ADMIN-4 (``flows.roles.revocations``): the WG group/role and admin are revoked, moderator
    and other roles stay (R-MOD); an admin revocation that would leave a platform short of
    counted admins waits (recorded in the ledger) and the WG is told which platform needs a new
    admin. Run again after a crash, it only finishes the revocations and the notices."""
    with ctx.ledger.read() as session:
        membership = repo.open_membership(session, session.get_one(Person, person_id))
        active = membership is not None and membership.status == MembershipStatus.ACTIVE
    end = decide_end(ctx, person_id=person_id) if active else None
    membership_id, waiting = _end_in_ledger(
        ctx, person_id=person_id, status=status, actor=actor, ballot_id=ballot_id, end=end
    )
    roles = reconcile_person(ctx, person_id, decision_ref=f"membership:{membership_id}", actor=actor)
    lines = {c.platform: c.line() for c in (end.waiting if end else ())}
    for revocation_id, platform in waiting:
        announce_waiting(
            ctx,
            revocation_id=revocation_id,
            actor=actor,
            count_line=lines.get(platform, f"{platform}: see `charterflow roles plan`"),
        )
    kept = end.keep if end else ()
    platforms_waiting = [p for _i, p in waiting]
    artifact(
        key=f"membership-{membership_id}-{status.value}",
        title=f"Membership {membership_id} {status.value}",
        # Platforms and role names only: the WG's message carries the handles (R-PRIVACY-3).
        decision=ended(ending=status.value, waiting=platforms_waiting),
        rows={
            "roles revoked": ", ".join(roles["applied"]) or "none held",
            "roles kept (R-MOD)": ", ".join(f"{r} on {p}" for p, r in kept) if end else "-",
            "admin revocations waiting (R-ADMIN-4)": ", ".join(platforms_waiting) or "none",
            "role plan refused": roles["refused"] or "no",
        },
    )
    return {
        "person": person_id,
        "membership": membership_id,
        "status": status.value,
        "roles": roles,
        "waiting": platforms_waiting,
        "kept": [f"{p}:{r}" for p, r in kept],
    }


def _end_in_ledger(
    ctx: Ctx, *, person_id: int, status: MembershipStatus, actor: str, ballot_id: int | None, end: Any
) -> tuple[int, list[tuple[int, str]]]:
    """Record the ending the rules allowed (once; open ballots about the person cancelled);
    returns the membership's id and its waiting admin revocations (id, platform)."""
    with ctx.ledger.transaction() as session:
        person = session.get_one(Person, person_id)
        membership = repo.open_membership(session, person)
        last = session.scalar(
            select(Membership).where(Membership.person_id == person_id).order_by(Membership.id.desc()).limit(1)
        )
        decision = check_ending(
            MembershipFacts(
                person=f"person:{person_id}",
                active=end is not None and membership is not None and membership.status == MembershipStatus.ACTIVE,
                last_status=last.status.value if last is not None else None,
            ),
            ending=status.value,
        )
        if not decision.allowed:
            raise PolicyViolation(decision.reason, ruling=decision.ruling)
        # Allowed means there is one: the active membership (end) or one ended the same way.
        ended = membership if decision.code == "end" else last
        if ended is None:
            raise LookupError(f"person:{person_id} has no membership to end")
        if decision.code == "end":
            repo.end_membership(
                session, ended, status=status, actor=actor, at=ctx.now, ballot_id=ballot_id, keep=kept_roles(end)
            )
            record_end(session, end, person=person, membership_id=ended.id, actor=actor, at=ctx.now)
            for ballot in repo.open_ballots(session):
                if ballot.subject_person_id == person_id and ballot.status == BallotStatus.OPEN:
                    repo.cancel_ballot(session, ballot, actor=actor, reason_code=f"member-{status.value}", at=ctx.now)
        membership_id = ended.id
        return membership_id, [
            (r.id, r.platform)
            for r in roles_ledger.revocations(session)
            if r.membership_id == membership_id and r.person_id == person_id
        ]


def leave_step(ctx: Ctx, *, person_id: int, reason: str | None = None) -> dict[str, Any]:
    """R-LEAVE for ``person_id``: end, revoke, tell the group and the person."""
    result = end_membership(ctx, person_id=person_id, status=MembershipStatus.LEFT, actor=ACTOR)
    handle = _handle(ctx, person_id)
    post_wg(
        ctx,
        template="left_wg",
        key=f"left:{result['membership']}",
        actor=ACTOR,
        about=f"person:{person_id}",
        handle=handle,
        reason=leave_reason(reason),
    )
    message_person(
        ctx,
        person_id,
        template="left_dm",
        key=f"left-dm:{result['membership']}",
        actor=ACTOR,
        about=f"person:{person_id}",
        group=GROUP,
    )
    return result


def _handle(ctx: Ctx, person_id: int) -> str:
    with ctx.ledger.read() as session:
        return session.get_one(Person, person_id).handle


def person_id_of(ctx: Ctx, handle: str) -> int:
    """The person with WG handle (or id) ``handle``."""
    with ctx.ledger.read() as session:
        return repo.get_person(session, handle).id


@flow(name="membership-leave", flow_run_name=person_run_name("leave", "member"), log_prints=True)
def leave(member: str, reason: str | None = None, now: datetime | None = None) -> dict[str, Any]:
    """A member leaves (R-LEAVE): ``member`` is their WG handle or person id. Effective at once;
    their WG roles are revoked on every platform and the group is told."""
    ctx = context(now)
    return leave_step(ctx, person_id=person_id_of(ctx, member), reason=reason)
