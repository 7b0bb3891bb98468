"""The consistency figures over the ledger (the quarterly report reuses ``figures_between``).

The arithmetic is ``rules.moderation.consistency_figures`` (pure); this module feeds it the
stored actions, with each target account resolved to a *subject*: ``person:<id>`` when the
ledger knows the person (or a confirmed link joins the account to one), else
``<platform>:<account id>`` joined with its confirmed links. Subjects are references, never
names, so the figures can go into the WG's and the Board's reports as they are.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ledger import moderation as modlog
from ledger.db import Ledger
from rules.moderation import consistency_figures, parse_time


def _subject(session: Any, platform: str, account: str | None, cache: dict[tuple[str, str], str]) -> str | None:
    if not account:
        return None
    if (platform, account) in cache:
        return cache[(platform, account)]
    person = modlog.person_of_account(session, platform, account)
    linked = modlog.linked_accounts(session, platform, account)
    if person is None:
        person = next(
            (
                p
                for p in (modlog.person_of_account(session, a["platform"], a["account"]) for a in linked)
                if p is not None
            ),
            None,
        )
    if person is not None:
        subject = f"person:{person}"
    else:
        subject = min([f"{platform}:{account}"] + [f"{a['platform']}:{a['account']}" for a in linked])
    cache[(platform, account)] = subject
    for a in linked:
        cache.setdefault((a["platform"], a["account"]), subject)
    return subject


def figures_between(ledger: Ledger, start: datetime, end: datetime) -> dict[str, Any]:
    """``rules.moderation.consistency_figures`` of the actions in ``[start, end)``, plus the period."""
    cache: dict[tuple[str, str], str] = {}
    accounts: dict[str, set[str]] = {}
    rows = []
    with ledger.read() as session:
        for a in modlog.actions_between(session, start, end):
            account = a.target_platform_id
            subject = _subject(session, a.platform, account, cache)
            if subject is not None and account and subject not in accounts:
                linked = modlog.linked_accounts(session, a.platform, account)
                accounts[subject] = {a.platform} | {x["platform"] for x in linked}
            rows.append(
                {
                    "platform": a.platform,
                    "action": a.action,
                    "occurred_at": a.occurred_at,
                    "reason": a.reason,
                    "subject": subject,
                    "flagged_at": parse_time((a.raw or {}).get("flagged_at")),
                }
            )
    out = consistency_figures(rows, accounts=accounts)
    out["period"] = {"start": start.isoformat(), "end": end.isoformat()}
    return out


def table_rows(figures: dict[str, Any]) -> list[dict[str, Any]]:
    """The figures as one table (``figure``, ``key``, ``value``) for a Prefect table artifact."""
    rows: list[dict[str, Any]] = []
    for platform, counts in figures["per_platform"].items():
        for action, n in counts.items():
            rows.append({"figure": "actions", "key": f"{platform} / {action}", "value": n})
    flag = figures["flag_to_action"]
    rows.append(
        {
            "figure": "forum flag to action (median minutes)",
            "key": f"{flag['with_flag_time']} of {flag['flags_handled']} with a flag time",
            "value": flag["median_minutes"],
        }
    )
    for item in figures["one_platform_only"]:
        rows.append(
            {
                "figure": "sanctioned on one platform only",
                "key": item["subject"],
                "value": f"on {', '.join(item['sanctioned_on'])}; not on {', '.join(item['not_on'])}",
            }
        )
    for item in figures["reasons"]:
        rows.append({"figure": "reason", "key": item["reason"][:120], "value": item["count"]})
    return rows
