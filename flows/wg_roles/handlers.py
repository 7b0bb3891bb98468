"""The inbox routes of this package (called by ``flows.inbox`` at import).

* ``wg-role-confirm`` ← the button of the gateway's page ``/wg-role/<token>`` (a ``form`` event
  of kind ``wg_role_confirm``): :func:`flows.wg_roles.coc.handle_confirm`.
* ``wg-role-appoint`` ← Discord ``/appoint role member``: a voting member proposes a Chair or
  Co-Chair; :func:`handle_appoint_command` opens the WG ballot (or refuses with the rule) and
  answers privately with the R-ROLE-* explanation.

The Board Liaison's Slack buttons come on the ``board-decision`` route (their value is
``wg-role:<id>``): ``flows.board.decision`` hands them to ``flows.wg_roles.board``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from connectors.errors import PolicyViolation
from flows.kit import answer_interaction, context, done
from flows.platforms import current_platforms, use
from flows.wg_roles.ballot import open_step
from flows.wg_roles.coc import ROUTE, handle_confirm
from flows.wg_roles.links import FORM_KIND
from ledger import repo
from ledger.models import InboxEvent, Platform
from rules.appointments import check_ballot_proposer, check_ballot_role

APPOINT_ROUTE = "wg-role-appoint"
# The answer to a refused /appoint, by the rules' code.
_REFUSED = {
    "not-by-ballot": "/appoint proposes a Chair or Co-Chair "
    "(the CoC and Board Liaisons are named by the CoC WG and the Board)",
    "not-voting": "only a voting member of the working group may propose a Chair or Co-Chair",
}
ACTOR = "flow:wg-roles-command"


def handle_appoint_command(*, ledger: Any, event: InboxEvent, now: datetime | None = None) -> str:
    """Inbox handler of Discord ``/appoint``; idempotent (a replayed event returns the recorded
    result and sends nothing). Returns ``wg-appointment:<id>:<status>`` or ``refused:<ruling>``."""
    platforms = current_platforms()
    with use(ledger=ledger, platforms=platforms):
        ctx = context(now, ledger=ledger, platforms=platforms)
        key = f"wg-appoint-command:{event.id}"
        recorded = done(ctx, key)
        if recorded is not None:
            return str(recorded["ref"]["result"])
        with ledger.read() as session:
            row = session.get(InboxEvent, event.id)
            attrs = {str(k): str(v) for k, v in ((row.payload or {}).get("attributes") or {}).items()}
            person = repo.find_person_by_identity(
                session, platform=Platform.DISCORD, external_id=attrs.get("user_id", "")
            )
        role, member = attrs.get("option.role", ""), attrs.get("option.member", "")
        by_ballot = check_ballot_role(role)
        # Not known by their Discord account: no voting member (open_step checks a known one).
        proposer = check_ballot_proposer(attrs.get("user_id", ""), voting=person is not None)
        refusal = by_ballot if not by_ballot.allowed else proposer
        if not refusal.allowed or person is None:
            text, result = f"Refused by {refusal.ruling}: {_REFUSED[refusal.code]}.", f"refused:{refusal.ruling}"
        else:
            try:
                out = open_step(ctx, role=role, nominee=member, proposed_by=str(person.id))
                text = out["explanation"] + (
                    f" Ballot {out['ballot']} is open on {', '.join(out['platforms'])}."
                    if out["status"] == "voting"
                    else ""
                )
                result = f"wg-appointment:{out['appointment']}:{out['status']}"
            except PolicyViolation as exc:
                text, result = f"Refused by {exc.ruling}: {exc.reason}.", f"refused:{exc.ruling}"
        answer_interaction(
            ctx, key=f"{key}:answer", actor=ACTOR, about=f"inbox:{event.id}", attributes=attrs, text=text
        )
        with ledger.transaction() as session:
            repo.effect_record(
                session,
                key=key,
                platform="ledger",
                actor=ACTOR,
                ref={"result": result},
                about=f"inbox:{event.id}",
                at=ctx.now,
            )
        return result


def register() -> None:
    # lazy: cycle: flows.inbox and flows.wg_roles.handlers (the inbox calls register() while it loads)
    from flows.inbox import register_route

    register_route(
        ROUTE,
        handle_confirm,
        form_kind=FORM_KIND,
        condition="the CoC WG Liaison confirmation page's button (POST /wg-role/<token>)",
    )
    register_route(APPOINT_ROUTE, handle_appoint_command, discord_command="appoint")
