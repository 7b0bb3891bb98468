"""Renewal (R-TERM-1, R-TERM-2), scheduled daily at 09:00 UTC: reminders 30, 7 and 1 day(s)
before a term ends (each sent once; a late run sends only the latest one due), opt-in (``/optin``
on Discord, the button in the reminder, or the link in the Forum message) starting a new term at
the old end date, and a lapse after the grace period: membership ended, its roles revoked on
every platform, the group and the person told. A reminder to an admin whose lapse would leave a
platform short of counted admins says so in advance (R-ADMIN-4: "if you lapse, the Forum keeps
one admin").
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import flow

from connectors.errors import PolicyViolation
from flows.kit import (
    Ctx,
    artifact,
    context,
    identities_of,
    log,
    message_person,
    person_run_name,
    post_wg,
    prompt_once,
    record,
    render,
)
from flows.membership.intake import GROUP
from flows.membership.leave import end_membership, person_id_of
from flows.membership.tokens import OPTIN_PREFIX, make_token
from flows.roles.plan import observe
from ledger import repo
from ledger.models import MembershipStatus, Person, TermOrigin
from rules import AdminCount, reminders_due, short_if_gone, term_status, term_window
from rules.admins import place
from rules.plan import admins_of
from rules.terms import decide_opt_in, term_started

ACTOR = "flow:renewal"


def keeps(count: AdminCount) -> str:
    """``one admin (ash)``: what a platform keeps without the member (counted admins only)."""
    if count.count == 0:
        return "no admin who is a WG member"
    words = {1: "one admin", 2: "two admins"}.get(count.count, f"{count.count} admins")
    return f"{words} ({', '.join(count.counted)})"


def admin_warnings(ctx: Ctx, handle: str, seen: Any) -> list[dict[str, str]]:
    """R-ADMIN-4 in advance: the platforms the member is admin on that their lapse would leave
    short of counted admins (``seen``: a ``flows.roles.plan.Observation``)."""
    short = short_if_gone(
        handle,
        admins=admins_of(seen.assignments),
        members=seen.members or (),
        platform_accounts=seen.builtin,
        charter=ctx.charter,
    )
    return [{"where": place(c.platform), "keeps": keeps(c)} for c in short]


def _remind(
    ctx: Ctx, *, person_id: int, term_id: int, start: datetime, days: int, short: list[dict[str, str]] | None = None
) -> list[str]:
    window = term_window(start, charter=ctx.charter)
    reached, failed = [], False
    for identity in identities_of(ctx, person_id):
        space = ctx.platforms.space(identity.platform.value)
        if space is None or not identity.external_id:
            continue
        # Bound to where it is sent (issue 19): Discord's DM carries a button, elsewhere a link.
        token = make_token(
            secret=ctx.platforms.confirm_secret,
            purpose="optin",
            subject=term_id,
            identity=person_id,
            expires_at=window.grace_ends,
            channel="discord" if space.platform == "discord" else "web",
        )
        title, text = render(
            "reminder",
            platform=space.platform,
            username=identity.username,
            group=GROUP,
            term_end=window.end.date().isoformat(),
            days=days,
            link=f"{ctx.platforms.gateway_url}/optin/{token}",
            grace_end=window.grace_ends.date().isoformat(),
            term_id=term_id,
            short=short or [],
        )
        key = f"reminder:{term_id}:{days}:{space.platform}"
        about = f"person:{person_id}"
        try:
            prompt_once(
                ctx, space, identity, (title, text), ("Opt in", OPTIN_PREFIX + token), key=key, actor=ACTOR, about=about
            )
            reached.append(space.platform)
        except Exception as exc:  # noqa: BLE001 - one platform failing does not stop the other
            failed = True
            log.warning(
                "membership: reminder to person:%s on %s failed: %s", person_id, space.platform, type(exc).__name__
            )
    # R-TERM-2: a reminder a platform did not take is not recorded as sent, so the next daily run
    # sends it there (each platform's prompt is keyed: nobody gets it twice).
    if not failed:
        record(
            ctx, key=f"reminder:{term_id}:{days}", actor=ACTOR, about=f"person:{person_id}", ref={"platforms": reached}
        )
    return reached


def _observe(ctx: Ctx) -> Any:
    """The platforms' roles for the advance warning; False when a platform cannot be read
    (the reminder goes out without the warning rather than not at all)."""
    try:
        return observe(ctx)
    except Exception as exc:  # noqa: BLE001 - the reminder matters more than the warning
        log.warning("membership: admins not read for the reminders: %s", type(exc).__name__)
        return False


def renewal_step(ctx: Ctx) -> dict[str, Any]:
    """One daily pass over every active membership."""
    with ctx.ledger.read() as session:
        rows = []
        for m in repo.active_memberships(session):
            term = m.terms[-1]
            rows.append((m.person_id, session.get_one(Person, m.person_id).handle, term.id, term.starts_at))
    reminded: list[dict[str, Any]] = []
    lapsed: list[str] = []
    seen: Any = None
    for person_id, handle, term_id, start in rows:
        status, decision = term_status(start, now=ctx.now, opted_in=False, charter=ctx.charter)
        if status == "lapsed":
            window = term_window(start, charter=ctx.charter)
            end_membership(ctx, person_id=person_id, status=MembershipStatus.LAPSED, actor=ACTOR)
            post_wg(
                ctx,
                template="lapsed_wg",
                key=f"lapsed:{term_id}",
                actor=ACTOR,
                about=f"person:{person_id}",
                handle=handle,
                grace_end=window.grace_ends.date().isoformat(),
            )
            message_person(
                ctx,
                person_id,
                template="lapsed_dm",
                key=f"lapsed-dm:{term_id}",
                actor=ACTOR,
                about=f"person:{person_id}",
                group=GROUP,
                grace_end=window.grace_ends.date().isoformat(),
            )
            artifact(key=f"term-{term_id}-lapsed", title=f"{handle}: membership lapsed", decision=decision)
            lapsed.append(handle)
            continue
        sent: set[int] = set()
        with ctx.ledger.read() as session:
            for days in ctx.charter.terms.reminder_days_before_end:
                if repo.effect_get(session, key=f"reminder:{term_id}:{days}") is not None:
                    sent.add(days)
        for days in reminders_due(start, now=ctx.now, already_sent=sent, charter=ctx.charter):
            if seen is None:  # read the platforms' admins once per pass, only when reminding
                seen = _observe(ctx)
            short = admin_warnings(ctx, handle, seen) if seen is not False else []
            platforms = _remind(ctx, person_id=person_id, term_id=term_id, start=start, days=days, short=short)
            reminded.append(
                {"member": handle, "days": days, "platforms": platforms, "admin_warning": [c["where"] for c in short]}
            )
    artifact(
        key="renewal-daily",
        title="Renewal pass",
        rows={
            "memberships checked": len(rows),
            "reminders sent": ", ".join(f"{r['member']} ({r['days']}d)" for r in reminded) or "none",
            "lapsed": ", ".join(lapsed) or "none",
        },
    )
    return {"checked": len(rows), "reminded": reminded, "lapsed": lapsed}


def opt_in_step(ctx: Ctx, *, person_id: int, source: str) -> dict[str, Any]:
    """R-TERM-2: an opt-in in its window starts a new term at the old end date; a second opt-in
    for the same term changes nothing. ``PolicyViolation`` outside the window."""
    with ctx.ledger.transaction() as session:
        person = session.get_one(Person, person_id)
        membership = repo.open_membership(session, person)
        if membership is None or membership.status != MembershipStatus.ACTIVE:
            membership = None
        latest = membership.terms[-1] if membership is not None else None
        decision = decide_opt_in(
            latest.starts_at if latest is not None else None,
            at=ctx.now,
            charter=ctx.charter,
            renewed=latest is not None and latest.origin == TermOrigin.OPT_IN,
        )
        # Allowed means an active membership with a term (decide_opt_in refuses None).
        if not decision.allowed or membership is None or latest is None:
            raise PolicyViolation(decision.reason, ruling=decision.ruling)
        if decision.code == "already":
            term, renewed = latest, False
        else:
            term = repo.renew(
                session,
                membership,
                actor=ACTOR,
                opted_in_at=ctx.now,
                source=source,
                term_days=ctx.charter.terms.length_days,
                at=ctx.now,
            )
            renewed = True
        term_id, start, end = term.id, term.starts_at, term.ends_at
    message_person(
        ctx,
        person_id,
        template="optin_ok",
        key=f"optin:{term_id}",
        actor=ACTOR,
        about=f"person:{person_id}",
        term_start=start.date().isoformat(),
        term_end=end.date().isoformat(),
        term_id=term_id,
    )
    artifact(
        key=f"term-{term_id}-opt-in",
        title=f"Opt-in: term {term_id}",
        decision=term_started(start=start, end=end, first=False),
    )
    return {
        "person": person_id,
        "term": term_id,
        "starts_at": start.isoformat(),
        "ends_at": end.isoformat(),
        "renewed": renewed,
    }


@flow(name="membership-renewal", flow_run_name="renewal-daily", log_prints=True)
def renewal(now: datetime | None = None) -> dict[str, Any]:
    """Daily: opt-in reminders (30/7/1 days before the end, once each) and lapses after the
    grace period with revocations (R-TERM-2)."""
    return renewal_step(context(now))


@flow(name="membership-opt-in", flow_run_name=person_run_name("opt-in", "member"), log_prints=True)
def opt_in(member: str, source: str = "operator", now: datetime | None = None) -> dict[str, Any]:
    """Record an opt-in for ``member`` (WG handle or id) made outside the platforms (R-TERM-2)."""
    ctx = context(now)
    return opt_in_step(ctx, person_id=person_id_of(ctx, member), source=source)
