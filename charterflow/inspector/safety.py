"""The inspector's reports page (issue 22): ``GET /reports`` lists the community reports of the
ledger (state, platform, age, who claimed it) and the common room's recent relays, each linked
to where it shows in the sandboxes' pages.

Never the reporter, the reported account or what was reported: the inspector answers anyone who
can reach it on loopback, and the ledger promises that a report's names and words reach only the
moderators' rooms and operators' commands (``ledger/safety.py``, R-SAFE-1). A report referred to
the CoC WG shows only that (R-SAFE-2). Reads the ledger; changes nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from charterflow.inspector.state import InspectorDep
from ledger import repo
from ledger.db import Ledger
from ledger.models_commons import CommonsMessage
from ledger.models_safety import SafetyReport
from ledger.types import utcnow

router = APIRouter()
RELAYS_SHOWN = 20
PLATFORM_NAMES = {"discord": "Discord", "discourse": "Forum", "slack": "Slack"}


def place_link(platform: str, thread_id: str | None) -> str | None:
    """Where a message shows among the inspector's pages (a Discord channel, a Forum topic)."""
    if not thread_id or not thread_id.isdigit():
        return None
    return {"discord": f"/discord?channel={thread_id}", "discourse": f"/forum?topic={thread_id}"}.get(platform)


def age(then: datetime, now: datetime) -> str:
    """``3 h``, ``2 d``: how long ago, roughly."""
    hours = int(max((now - then).total_seconds(), 0) // 3600)
    return f"{hours // 24} d" if hours >= 48 else (f"{hours} h" if hours else "< 1 h")


def report_row(report: dict[str, Any], rooms: dict[str, dict[str, Any]], now: datetime) -> dict[str, Any]:
    """One report as the page shows it (pure): no names but the moderator who claimed it."""
    referred = report["state"] == "referred"
    return {
        "id": report["id"],
        "state": "referred to the CoC WG" if referred else report["state"],
        "platform": PLATFORM_NAMES.get(report["platform"], report["platform"]),
        "kind": report["target_kind"],
        "age": age(report["created_at"], now),
        "claimed_by": None if referred else report["claimed_by"],
        "outcome": None if referred else report["outcome"],
        "links": [
            (PLATFORM_NAMES.get(p, p), link)
            for p, ref in sorted(rooms.items())
            if (link := place_link(p, str(ref.get("thread_id") or "")))
        ],
    }


def relay_row(copy: dict[str, Any], source: dict[str, Any]) -> dict[str, Any]:
    """One relayed message (pure): from which platform to which, its state, both places."""
    return {
        "bridge": copy["bridge"],
        "author": source["author_username"] or "?",
        "from": PLATFORM_NAMES.get(source["platform"], source["platform"]),
        "to": PLATFORM_NAMES.get(copy["platform"], copy["platform"]),
        "state": copy["state"],
        "source_link": place_link(source["platform"], source["thread_id"] or source["room"]),
        "copy_link": place_link(copy["platform"], copy["thread_id"]),
    }


def _reports(session: Any, now: datetime) -> list[dict[str, Any]]:
    fields = ("id", "state", "platform", "target_kind", "created_at", "claimed_by", "outcome")
    rows = []
    for report in session.scalars(select(SafetyReport).order_by(SafetyReport.id.desc()).limit(100)):
        rooms = {}
        for platform in PLATFORM_NAMES:
            found = repo.effect_get(session, key=f"safety:room:{report.id}:{platform}")
            if found:
                rooms[platform] = dict(found.get("ref") or {})
        rows.append(report_row({f: getattr(report, f) for f in fields}, rooms, now))
    return rows


def _relays(session: Any) -> list[dict[str, Any]]:
    keep = ("bridge", "platform", "thread_id", "room", "state", "author_username")
    relays = []
    for copy in session.scalars(
        select(CommonsMessage)
        .where(CommonsMessage.origin_id.is_not(None))
        .order_by(CommonsMessage.id.desc())
        .limit(RELAYS_SHOWN)
    ):
        source = session.get(CommonsMessage, copy.origin_id)
        if source is not None:
            relays.append(relay_row({k: getattr(copy, k) for k in keep}, {k: getattr(source, k) for k in keep}))
    return relays


def read_ledger(url: str, now: datetime) -> dict[str, Any]:
    """The reports (newest first) and the common room's recent relays, from the ledger at ``url``."""
    ledger = Ledger(url)
    try:
        with ledger.read() as session:
            return {"reports": _reports(session, now), "relays": _relays(session)}
    finally:
        ledger.dispose()


@router.get("/reports", response_class=HTMLResponse)
async def reports(request: Request, inspector: InspectorDep) -> HTMLResponse:
    if not inspector.ledger_url:
        return inspector.render(
            "off.html",
            request,
            page="reports",
            title="Reports",
            text="This inspector was started without the ledger: nothing to show.",
        )
    found = await run_in_threadpool(read_ledger, inspector.ledger_url, utcnow())
    return inspector.render("reports.html", request, page="reports", title="Reports", **found)
