"""The hourly drift audit (R-ADMIN-3): observed platform roles against the ledger; nothing is
repaired.

:func:`find_drift` (pure) lists, from a ``RolesPlan``:

* a managed role the platform does not show as the ledger wants (removed by hand, or granted by
  hand against a ledger "must not");
* a role held without a ledger decision (granted by hand), by a person the ledger knows or by an
  account it does not know; the platform's own accounts (Discourse ``system``) are left out;
* any admin invariant the *observed* state breaks (R-ADMIN-1, R-ADMIN-2: counting WG members
  only, so the Forum's ``system`` or an admin outside the WG is no second admin).

Every report and the artifact say, per platform, which admins count and which do not.

The ``roles-drift-audit`` flow reports them to the WG's admins, in the WG's private Discord
channel and on Slack (``CHARTERFLOW_ROLES_SLACK_CHANNEL``, else a group DM to the admins who have
a Slack identity), with the repair plan ``charterflow roles apply --confirm`` would run, and a
markdown artifact ``roles-drift-audit``. The findings' fingerprint is stored
(``role_drift_reports``): the same drift is reported once; a change of the drift is reported
again; when it disappears a "resolved" note goes out once.
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import datetime
from typing import Any

from prefect import flow
from sqlalchemy import select

from flows.board.common import current_slack
from flows.kit import Ctx, artifact, context, once
from flows.roles.change import render
from flows.roles.confirm import RolesSettings
from flows.roles.plan import RolesPlan, admin_lines, build_plan, format_plan
from ledger import roles as roles_ledger
from ledger.models import Identity, Person, Platform, PlatformRoleAssignment
from rules.admins import check_admins
from rules.plan import admins_of

log = logging.getLogger("charterflow.roles")
ACTOR = "flow:roles-drift-audit"
LIMIT = 30  # findings listed in a message; the artifact has them all


def find_drift(shown: RolesPlan, *, charter: Any) -> dict[str, list[str]]:
    """The drift findings of a plan, each a sorted list of one-line texts; pure."""
    managed = {(h, p, r) for h, p, r, _d in shown.rows}
    changes: list[str] = []
    for c in shown.plan.changes:
        if c.action == "grant":
            changes.append(
                f"{c.platform}: {c.person} should hold {c.role} but does not (removed by hand, or not applied yet)"
            )
        else:
            changes.append(
                f"{c.platform}: {c.person} holds {c.role} but the ledger says they must not (granted by hand)"
            )
    unrecorded = sorted(
        f"{a.platform}: {a.person} holds {a.role} without a ledger decision"
        for a in shown.observed
        if (a.person, a.platform, a.role) not in managed and a.person not in shown.builtin
    )
    admins = admins_of(shown.observed)
    # The invariants of the platforms observed (a platform not served is not judged here).
    observed = {a.platform for a in shown.observed}
    served = [p for p in charter.platforms if p in observed]
    verdict = check_admins(
        admins, platforms=served, members=shown.members, platform_accounts=shown.builtin, charter=charter
    )
    invariants = sorted(f"{v.ruling} {v.subject}: {v.reason}" for v in verdict.violations)
    return {"changes": sorted(changes), "unrecorded": unrecorded, "invariants": invariants}


def fingerprint(findings: dict[str, list[str]]) -> str:
    """``sha256:<hex>`` of the findings (the same drift gives the same fingerprint)."""
    text = json.dumps(findings, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _admin_slack_ids(ctx: Ctx) -> list[str]:
    """Slack user ids of the people the ledger wants as admins on some platform."""
    with ctx.ledger.read() as session:
        ids = session.scalars(
            select(Identity.external_id)
            .join(PlatformRoleAssignment, PlatformRoleAssignment.person_id == Identity.person_id)
            .where(
                PlatformRoleAssignment.role == "admin",
                PlatformRoleAssignment.desired,
                Identity.platform == Platform.SLACK,
                Identity.external_id.is_not(None),
            )
            .join(Person, Person.id == Identity.person_id)
            .where(Person.erased_at.is_(None))
        )
        return sorted({str(i) for i in ids})


def _post(ctx: Ctx, *, key: str, title: str, text: str, slack: Any, slack_channel: str | None) -> dict[str, str]:
    """Post the report on Discord's WG channel and on Slack, once each; platform → outcome."""
    out: dict[str, str] = {}
    space = ctx.platforms.space("discord")
    if space is not None and space.messenger is not None:
        messenger = space.messenger
        try:
            once(
                ctx,
                key=f"{key}:discord",
                platform="discord",
                actor=ACTOR,
                about=None,
                act=lambda: messenger.post(channel=space.wg_channel, title=title, text=text, key=f"{key}:discord"),
            )
            out["discord"] = "posted"
        except Exception as exc:  # noqa: BLE001 - the other channel may still work
            out["discord"] = f"failed: {type(exc).__name__}"
    else:
        out["discord"] = "not served"
    if slack is None:
        out["slack"] = "not configured (CHARTERFLOW_SLACK_*)"
        return out
    try:
        admins = [] if slack_channel else _admin_slack_ids(ctx)
        if not slack_channel and not admins:
            out["slack"] = "no admin has a Slack identity; set CHARTERFLOW_ROLES_SLACK_CHANNEL"
            return out

        def act() -> Any:
            # The configured channel, else a group DM to the admins with a Slack identity.
            if slack_channel:
                return slack.post(channel=slack_channel, title=title, text=text, key=f"{key}:slack")
            return slack.direct_message(recipients=admins, title=title, text=text, key=f"{key}:slack")

        once(ctx, key=f"{key}:slack", platform="slack", actor=ACTOR, about=None, act=act)
        out["slack"] = f"posted in {slack_channel}" if slack_channel else f"group DM to {len(admins)} admin(s)"
    except Exception as exc:  # noqa: BLE001 - reported in the artifact
        out["slack"] = f"failed: {type(exc).__name__}"
    return out


def _slack() -> Any:
    try:
        return current_slack()
    except Exception as exc:  # noqa: BLE001 - Slack not configured: report on Discord only
        log.info("roles: Slack not configured for the drift report (%s)", type(exc).__name__)
        return None


def report_status(*, findings: int, mark: str, last_status: str | None, last_print: str | None) -> str:
    """``drift`` (new or changed), ``already-reported`` (the same fingerprint), ``resolved``
    (none left after a report) or ``clean``; pure."""
    if findings:
        return "already-reported" if last_status == "drift" and last_print == mark else "drift"
    return "resolved" if last_status == "drift" else "clean"


def _message(
    status: str, findings: dict[str, list[str]], *, plan_text: str, admins: list[str], last_at: datetime | None
) -> tuple[str, str]:
    """The report's title and text: the drift with its repair plan, or the resolved note."""
    if status != "drift":
        return render("drift_resolved", reported_on=f"{last_at:%Y-%m-%d %H:%M} UTC")
    every = [f for group in findings.values() for f in group]
    platforms = sorted({f.split(":", 1)[0] for f in every if ":" in f and not f.startswith("R-")})
    return render(
        "drift",
        platforms=platforms or ["the platforms"],
        findings=every,
        limit=LIMIT,
        plan_text=plan_text,
        unrecorded=bool(findings["unrecorded"]),
        admins=admins,
    )


def _show(
    status: str,
    findings: dict[str, list[str]],
    *,
    mark: str,
    last_status: str | None,
    admins: list[str],
    plan_text: str,
) -> None:
    artifact(
        key="roles-drift-audit",
        title=f"Roles drift audit: {status}",
        rows={
            "findings": sum(len(v) for v in findings.values()),
            "fingerprint": mark,
            "last report": last_status or "none",
        },
        note="\n".join(
            [
                *(f"- {f}" for group in findings.values() for f in group),
                "",
                "Admins now (R-ADMIN-2 counts WG members only):",
                "",
                *(f"- {line}" for line in admins),
                "",
                "Repair plan:",
                "",
                "```",
                plan_text,
                "```",
            ]
        ),
    )


def audit_drift(ctx: Ctx, *, slack: Any = None, slack_channel: str | None = None, actor: str = ACTOR) -> dict[str, Any]:
    """Compare, decide whether to report (fingerprint), record the report, then send it. A
    platform that does not answer is left out (its verdict unknown, said in the plan): the
    drift of the others is still reported within the hour (R-ADMIN-3), and drift is not called
    resolved while a platform could not be read."""
    shown = build_plan(ctx, tolerate_unreachable=True)
    findings = find_drift(shown, charter=ctx.charter)
    count = sum(len(v) for v in findings.values())
    print_ = format_plan(shown)
    with ctx.ledger.read() as session:
        last = roles_ledger.latest_drift_report(session)
        last_status, last_print = (last.status, last.fingerprint) if last else (None, None)
        last_at = last.reported_at if last else None
    mark = fingerprint(findings)
    status = report_status(findings=count, mark=mark, last_status=last_status, last_print=last_print)
    down = sorted(p for p, why in shown.unreached.items() if why.startswith("not answering"))
    if down and status == "resolved":
        status = "already-reported"  # unknown there: not resolved until it answers again
    counts = admin_lines(shown, charter=ctx.charter)
    _show(status, findings, mark=mark, last_status=last_status, admins=counts, plan_text=print_)
    if status in ("clean", "already-reported"):
        return {"status": status, "findings": findings, "fingerprint": mark, "admins": counts, "unreached": down}
    summary = {"findings": findings, "plan": print_}
    with ctx.ledger.transaction() as session:
        row = roles_ledger.record_drift_report(
            session, status=status, fingerprint=mark, findings=count, summary=summary, actor=actor, at=ctx.now
        )
        report_id = row.id
    title, text = _message(status, findings, plan_text=print_, admins=counts, last_at=last_at)
    sent = _post(
        ctx,
        key=f"roles-drift:{report_id}",
        title=title,
        text=text,
        slack=slack if slack is not None else _slack(),
        slack_channel=slack_channel,
    )
    return {
        "status": status,
        "findings": findings,
        "fingerprint": mark,
        "report": report_id,
        "sent": sent,
        "admins": counts,
        "unreached": down,
    }


@flow(name="roles-drift-audit", log_prints=True)
def roles_drift_audit(now: datetime | None = None, slack_channel: str | None = None) -> dict[str, Any]:
    """Compare every platform's roles with the ledger and report any drift (a role granted or
    removed by hand, an admin invariant broken) to the WG's admins with a repair plan, once per
    distinct drift; nothing is repaired (R-ADMIN-3). ``slack_channel``: a Slack channel id
    (default ``CHARTERFLOW_ROLES_SLACK_CHANNEL``, else a group DM to the admins)."""
    channel = slack_channel or RolesSettings().slack_channel
    return audit_drift(context(now), slack_channel=channel)
