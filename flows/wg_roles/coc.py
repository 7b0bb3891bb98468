"""The CoC WG Liaison (R-ROLE-COC, R-ROLE-APPOINT): chosen by the CoC WG, recorded as given with
who said so, and confirmed by the CoC WG's contact (``CHARTERFLOW_WG_ROLES_COC_CONTACT``)
through a signed link sent by e-mail. The link opens the gateway's page ``/wg-role/<token>``;
its button stores an inbox event (route ``wg-role-confirm``) that :func:`handle_confirm` acts on
once: the choice is checked against R-ROLE-* again, recorded, then announced to the WG.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from prefect import flow

from connectors.errors import ConfigError, PolicyViolation
from flows.kit import context, log, once
from flows.platforms import current_platforms, use
from flows.wg_roles.common import appoint, render, request_or_refuse, result, show
from flows.wg_roles.links import PATH, make_link_token, read_link_token
from flows.wg_roles.settings import WgRolesSettings
from ledger.models import InboxEvent
from ledger.models_appointments import WgAppointment

ACTOR = "flow:wg-roles-coc"
ROUTE = "wg-role-confirm"


def name_step(ctx: Any, *, nominee: str, settings: WgRolesSettings | None = None) -> dict[str, Any]:
    """Check and record the CoC WG's choice, then e-mail its contact the link (once)."""
    settings = settings or WgRolesSettings()
    if not settings.coc_contact or "@" not in settings.coc_contact:
        raise ConfigError(
            "CHARTERFLOW_WG_ROLES_COC_CONTACT: set the CoC WG contact's e-mail "
            "address; they confirm the CoC Liaison (R-ROLE-APPOINT)"
        )
    if ctx.platforms.mailer is None:
        raise ConfigError("CHARTERFLOW_SMTP_HOST: the CoC contact's link is sent by e-mail")
    row, checked, _ = request_or_refuse(
        ctx, role="coc_liaison", nominee=nominee, via="coc-wg", requested_by="coc-wg", actor=ACTOR
    )
    if not checked.allowed:
        show(f"wg-appointment-{row.id}", checked, via="coc-wg", status="refused")
        return result(row, checked)
    expires = row.requested_at + timedelta(days=settings.link_days)
    token = make_link_token(secret=ctx.platforms.confirm_secret, appointment_id=row.id, expires_at=expires)
    title, text = render(
        "coc_link_email",
        nominee=checked.nominee,
        link=f"{ctx.platforms.gateway_url}{PATH}/{token}",
        expires=expires.strftime("%Y-%m-%d %H:%M UTC"),
    )
    key = f"wg-role:coc-link:{row.id}:email"
    once(
        ctx,
        key=key,
        platform="email",
        actor=ACTOR,
        about=f"wg-appointment:{row.id}",
        act=lambda: ctx.platforms.mailer.send(to=settings.coc_contact, subject=title, text=text, key=key),
    )
    show(
        f"wg-appointment-{row.id}",
        checked,
        via="coc-wg",
        status=row.status,
        link_sent_to="the CoC WG contact (CHARTERFLOW_WG_ROLES_COC_CONTACT)",
    )
    return result(row, checked, link_expires=expires.isoformat())


def handle_confirm(*, ledger: Any, event: InboxEvent, now: datetime | None = None) -> str:
    """Inbox handler of ``wg-role-confirm`` (the page's button). A tampered or expired token is
    refused; a request no longer pending (the link used before) changes nothing. Returns
    ``wg-appointment:<id>:<status>`` or ``refused:<reason>``."""
    platforms = current_platforms()
    with use(ledger=ledger, platforms=platforms):
        ctx = context(now, ledger=ledger, platforms=platforms)
        with ledger.read() as session:
            row = session.get(InboxEvent, event.id)
            token = str(((row.payload or {}).get("data") or {}).get("token") or "")
        try:
            claims = read_link_token(token, secret=platforms.confirm_secret, now=ctx.now)
        except PolicyViolation as exc:
            log.info("wg-roles: a CoC confirmation link was refused: %s", exc.reason)
            return f"refused:{exc.reason.replace(' ', '-')[:60]}"
        with ledger.read() as session:
            found = session.get(WgAppointment, claims.appointment_id)
            status = found.status if found is not None and found.via == "coc-wg" else None
        if status is None:
            return "refused:unknown-appointment"
        if status != "pending":
            return f"wg-appointment:{claims.appointment_id}:already-{status}"
        done = appoint(ctx, appointment_id=claims.appointment_id, decided_by="coc-wg", actor=ACTOR)
        return f"wg-appointment:{claims.appointment_id}:{done['status']}"


@flow(name="wg-roles-name-coc-liaison", flow_run_name="wg-name-coc-liaison", log_prints=True)
def name_coc_liaison(nominee: str, now: datetime | None = None) -> dict[str, Any]:
    """Record the CoC WG's choice of ``nominee`` (WG handle or id) as CoC WG Liaison and e-mail
    the CoC WG's contact a link to confirm it. Refused at once by a hard R-ROLE rule (e.g. the
    Board Liaison cannot also be the CoC Liaison, R-ROLE-BOARD); nothing is announced before
    the contact confirms."""
    return name_step(context(now), nominee=nominee)
