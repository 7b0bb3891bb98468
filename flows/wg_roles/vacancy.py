"""The monthly report of vacant WG roles (R-ROLE-APPOINT: "a vacant role is reported to the WG
monthly until filled"). Once per calendar month (key ``wg-roles:vacant:<YYYY-MM>``), to the WG's
space on every platform, with the requests under way; nothing when every role is held."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import flow

from flows.kit import Ctx, artifact, context
from flows.wg_roles.common import post_wg, render, roles_now
from ledger import appointments
from ledger.models import Person
from rules.appointments import LABELS, vacancies, vacancies_reported

ACTOR = "flow:wg-roles-vacancies"


def report(ctx: Ctx) -> dict[str, Any]:
    with ctx.ledger.read() as session:
        vacant = vacancies(roles_now(session).roles)
        pending = [
            f"{LABELS[r.role]}: {session.get_one(Person, r.nominee_person_id).handle} ({r.status}, via {r.via})"
            for r in appointments.listing(session, open_only=True)
            if r.role in {v.role for v in vacant}
        ]
    month = ctx.now.strftime("%Y-%m")
    if not vacant:
        return {"month": month, "vacant": [], "posted": []}
    posted = post_wg(
        ctx,
        template="vacancies_wg",
        key=f"wg-roles:vacant:{month}",
        actor=ACTOR,
        about=None,
        renderer=render,
        month=month,
        lines=[v.line for v in vacant],
        pending=pending,
    )
    artifact(
        key=f"wg-roles-vacant-{month}",
        title=f"Vacant WG roles, {month}",
        decision=vacancies_reported(vacant),
        rows={v.role: v.line for v in vacant},
    )
    return {"month": month, "vacant": [v.role for v in vacant], "posted": sorted(posted)}


@flow(name="wg-roles-vacancies", flow_run_name="wg-roles-vacancies", log_prints=True)
def report_vacancies(now: datetime | None = None) -> dict[str, Any]:
    """Tell the WG which of its roles are vacant, once per month, until they are filled."""
    return report(context(now))
