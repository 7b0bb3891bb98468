"""What the appointment flows share: the WG roles as the rules see them, the R-ROLE-* check of
one appointment, refusing it (recorded, never announced) and appointing (recorded with its audit
entry, then announced to the WG)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from connectors.errors import PolicyViolation
from flows.kit import Ctx, artifact, post_wg
from flows.presentation import templates
from ledger import appointments, repo
from ledger.errors import NotFound
from ledger.models import Person, WgRole
from ledger.models_appointments import WgAppointment
from ledger.roster import stored_list
from rules import Decision, WgRoles
from rules.appointments import (
    APPOINTED_BY,
    LABELS,
    OPTIONAL,
    WHO_APPOINTS,
    AppointmentCheck,
    check_appointment,
    check_nominee,
    recheck_pending,
    recorded_appointment,
)


def render(name: str, **values: Any) -> tuple[str, str]:
    """Render ``templates/wg_roles/<name>.md.j2``: first line the title, the rest the body."""
    text = templates.get_template(f"wg_roles/{name}.md.j2").render(**values).strip()
    title, _, body = text.partition("\n")
    return title.strip(), body.strip()


@dataclass(frozen=True, kw_only=True)
class RolesNow:
    """The WG roles held now and what the R-ROLE-* rules read, by handle."""

    roles: WgRoles
    members: frozenset[str]
    home_platform: dict[str, str]
    board_members: tuple[str, ...]
    steering_council: tuple[str, ...]


def roles_now(session: Any) -> RolesNow:
    held = {}
    for role, assignment in repo.current_wg_roles(session).items():
        person = session.get(Person, assignment.person_id)
        held[role.value] = person.handle if person else None
    members = frozenset(session.get(Person, m.person_id).handle for m in repo.active_memberships(session))
    home = {h: p.value for h, p in session.execute(select(Person.handle, Person.home_platform)) if p is not None}
    return RolesNow(
        roles=WgRoles(**held),
        members=members,
        home_platform=home,
        board_members=stored_list(session, "board_members"),
        steering_council=stored_list(session, "steering_council"),
    )


def check(ctx: Ctx, session: Any, *, role: str, nominee: str) -> AppointmentCheck:
    """R-ROLE-APPOINT and R-ROLE-* on giving ``role`` to ``nominee`` now."""
    now = roles_now(session)
    return check_appointment(
        now.roles,
        role=role,
        nominee=nominee,
        members=now.members,
        home_platform=now.home_platform,
        board_members=now.board_members,
        steering_council=now.steering_council,
        charter=ctx.charter,
    )


def nominee_of(session: Any, key: str) -> Person:
    """The person named ``key`` (WG handle or ledger id); ``PolicyViolation`` when unknown."""
    try:
        return repo.get_person(session, key.strip())
    except NotFound:
        decision = check_nominee(key, known=False)
        raise PolicyViolation(decision.reason, ruling=decision.ruling) from None


def show(key: str, checked: AppointmentCheck, **rows: Any) -> None:
    """The decision as a run artifact: ruling, explanation, warnings."""
    artifact(
        key=key,
        title=f"{LABELS[checked.role]}: {checked.nominee}",
        decision=Decision(allowed=checked.allowed, ruling=checked.ruling, reason=checked.explanation),
        rows={**rows, "warnings": ", ".join(f.ruling for f in checked.warnings) or "none"},
    )


def result(row: WgAppointment, checked: AppointmentCheck, **extra: Any) -> dict[str, Any]:
    """What a flow returns (and the CLI prints): status, ruling, explanation, warnings."""
    return {
        "appointment": row.id,
        "role": row.role,
        "nominee": checked.nominee,
        "status": row.status,
        "ruling": checked.ruling,
        "explanation": checked.explanation,
        "warnings": [f"{f.ruling}: {f.reason}" for f in checked.warnings],
        **extra,
    }


def request_or_refuse(
    ctx: Ctx, *, role: str, nominee: str, via: str, requested_by: str, actor: str
) -> tuple[WgAppointment, AppointmentCheck, bool]:
    """Check, then record the request (an open one for the same role, nominee and way is
    reused) or the refusal, in one transaction. Returns (row, check, created)."""
    with ctx.ledger.transaction() as session:
        person = nominee_of(session, nominee)
        checked = check(ctx, session, role=role, nominee=person.handle)
        found = appointments.open_request(session, role=role, nominee_id=person.id, via=via)
        if found is not None and checked.allowed:
            return found, checked, False
        row = appointments.request(
            session,
            role=role,
            nominee=person,
            via=via,
            requested_by=requested_by,
            actor=actor,
            at=ctx.now,
            status="pending" if checked.allowed else "refused",
            ruling=None if checked.allowed else checked.ruling,
            rulings=[f.ruling for f in checked.warnings],
        )
        session.expunge(row)
        return row, checked, True


def appoint(ctx: Ctx, *, appointment_id: int, decided_by: str, actor: str) -> dict[str, Any]:
    """Check R-ROLE-* again (the roles or the lists may have changed since the request), then in
    one transaction record the appointment (the role assigned, both audited) or its refusal;
    then announce it to the WG with its warnings, or the refusal with its rule. Idempotent: a decided
    request returns its recorded outcome and announces what is missing."""
    with ctx.ledger.transaction() as session:
        row = session.get_one(WgAppointment, appointment_id)
        nominee = session.get_one(Person, row.nominee_person_id).handle
        if row.status in appointments.OPEN:
            holder = repo.current_wg_roles(session).get(WgRole(row.role))
            checked = recheck_pending(
                check(ctx, session, role=row.role, nominee=nominee),
                nominee_holds_role=holder is not None and holder.person_id == row.nominee_person_id,
            )
            appointments.decide(
                session,
                row,
                status="appointed" if checked.allowed else "refused",
                decided_by=decided_by,
                actor=actor,
                at=ctx.now,
                ruling=None if checked.allowed else checked.ruling,
                rulings=[f.ruling for f in checked.warnings],
            )
        else:
            checked = recorded_appointment(
                role=row.role,
                nominee=nominee,
                status=row.status,
                ruling=row.ruling,
                warnings=(row.rulings or {}).get("warnings", []),
            )
        session.expunge(row)
    if row.status in ("appointed", "refused"):
        # A refusal too: the request was voted on or asked for, so the WG hears that a hard rule
        # stopped it when it was decided (R-ROLE-APPOINT: every change is checked against R-ROLE-*).
        post_wg(
            ctx,
            template=f"{row.status}_wg",
            key=f"wg-role:{row.status}:{row.id}",
            actor=actor,
            about=f"wg-appointment:{row.id}",
            renderer=render,
            label=LABELS[row.role],
            nominee=nominee,
            via=row.via,
            decided_by=decided_by if row.status == "appointed" else row.decided_by or decided_by,
            ruling=checked.ruling,
            warnings=[f"{f.ruling}: {f.reason}" for f in checked.warnings],
            violations=[f"{f.ruling}: {f.reason}" for f in checked.violations],
        )
    show(f"wg-appointment-{row.id}", checked, via=row.via, status=row.status)
    return result(row, checked)


def status(ledger: Any) -> dict[str, Any]:
    """Who holds each WG role (since when, assigned by), what is vacant and who fills it, and
    the requests under way: what ``charterflow wg roles`` prints."""
    with ledger.read() as session:
        held = repo.current_wg_roles(session)
        rows = []
        for role in APPOINTED_BY:
            a = held.get(WgRole(role))
            person = session.get(Person, a.person_id) if a else None
            rows.append(
                {
                    "role": role,
                    "label": LABELS[role],
                    "holder": person.handle if person else None,
                    "since": a.starts_at.date().isoformat() if a else None,
                    "assigned_by": a.assigned_by if a else None,
                    "appointed_by": WHO_APPOINTS[APPOINTED_BY[role]],
                    "optional": role in OPTIONAL,
                }
            )
        open_rows = [
            {
                "id": r.id,
                "role": r.role,
                "label": LABELS[r.role],
                "nominee": session.get(Person, r.nominee_person_id).handle,
                "status": r.status,
                "via": r.via,
                "ballot": r.ballot_id,
            }
            for r in appointments.listing(session, open_only=True)
        ]
    return {"roles": rows, "vacant": [r["role"] for r in rows if r["holder"] is None], "open": open_rows}
