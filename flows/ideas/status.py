"""Members change an idea's status (R-IDEA-1): Discord ``/idea-status id status [note]`` or a
status button of the weekly digest (``cfi:<idea>:<status>``).

Only an active WG member may; anyone else is refused, and the refusal is audited
(``idea.status-refused``, with the person's ledger id when known and the inbox event, never a
platform id). The request is decided by ``rules.ideas.decide_status_change``; a move the charter does
not allow is refused naming the allowed ones. An allowed change writes the history row
(``IdeaStatusChange``, with the note) and its audit entry (``idea.status``) in one transaction,
together with the event's outcome, so handling the same event again changes nothing. A change
made with a digest button then shows on that digest message (:func:`show_on_digest`).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import select

from connectors.base import MessageEditor
from flows.ideas.common import parse_button_id, render
from flows.ideas.digest import ideas_in, shown_after_change
from flows.kit import Ctx, answer_interaction, artifact, context, once
from ledger import ideas as backlog
from ledger import repo
from ledger.models import Idea, InboxEvent, Person, Platform
from rules.ideas import StatusRequest, decide_status_change

log = logging.getLogger("charterflow.ideas")

ACTOR = "flow:ideas-status"
MAX_NOTE = 1000
__all__ = ["handle_status", "show_on_digest"]


def _request(kind: str, attrs: dict[str, str]) -> tuple[int | None, str, str | None, str]:
    """(idea id, status, note, source) of a command or a button; id None when unreadable."""
    if kind == "component":
        parsed = parse_button_id(attrs.get("custom_id", ""))
        if parsed is None:
            return None, "", None, "button"
        return parsed[0], parsed[1], None, "button"
    raw = attrs.get("option.id", "").strip()
    idea_id = int(raw) if raw.isdigit() and 0 < int(raw) < 10**12 else None
    note = attrs.get("option.note", "").strip()[:MAX_NOTE] or None
    return idea_id, attrs.get("option.status", "").strip(), note, "command"


def _decide(
    ctx: Ctx, *, event_id: int, attrs: dict[str, str], idea_id: int | None, status: str, note: str | None, source: str
) -> dict[str, Any]:
    """Check and record, in one transaction (see the module docstring)."""
    key = f"ideas:status:inbox:{event_id}"
    statuses = ctx.charter.ideas.statuses
    with ctx.ledger.transaction() as session:
        found = repo.effect_get(session, key=key)
        if found is not None:
            return dict(found["ref"])
        person = repo.find_person_by_identity(session, platform=Platform.DISCORD, external_id=attrs.get("user_id", ""))
        membership = repo.open_membership(session, person) if person else None
        idea = session.get(Idea, idea_id) if idea_id else None

        def refuse(code: str, text: str, ruling: str = "R-IDEA-1") -> dict[str, Any]:
            backlog.record_refused_change(
                session,
                idea_id=idea.id if idea else None,
                actor=ACTOR,
                attempted=status if status in statuses else "unknown",
                reason_code=code,
                ruling=ruling,
                person_id=person.id if person else None,
                event_ref=f"inbox:{event_id}",
                at=ctx.now,
            )
            return {"outcome": f"refused:{code}", "idea": idea.id if idea else None, "text": text}

        decision = decide_status_change(
            StatusRequest(
                member=membership is not None and membership.status.value == "active",
                current=idea.status.value if idea is not None else None,
                new=status,
            ),
            charter=ctx.charter,
        )
        if not decision.allowed:
            # The member's answer, worded here from what the rules returned.
            text = {
                "not-a-member": "Only active members of the working group can change an idea's status (R-IDEA-1).",
                "no-such-idea": f"There is no idea {idea_id or '(no number)'} in the backlog.",
                "unknown-status": f"{status or '(none)'} is not a status; use one of {', '.join(statuses)}.",
            }.get(decision.code, f"Not changed: {decision.reason} (R-IDEA-1).")
            outcome = refuse(decision.code, text, ruling=decision.ruling)
        else:
            assert idea is not None and person is not None  # allowed: a member changes an idea (R-IDEA-1)
            outcome = _changed(session, ctx, idea, person, status=status, note=note, code=decision.code)
        outcome["source"] = source
        repo.effect_record(
            session,
            key=key,
            platform="ledger",
            actor=ACTOR,
            ref={k: v for k, v in outcome.items() if k != "text"},
            about=f"inbox:{event_id}",
            at=ctx.now,
        )
        return outcome


def _changed(
    session: Any, ctx: Ctx, idea: Idea, person: Person, *, status: str, note: str | None, code: str
) -> dict[str, Any]:
    """An allowed request's outcome: already so (``unchanged``), else the status changed."""
    if code == "unchanged":
        return {"outcome": "unchanged", "idea": idea.id, "text": f"Idea #{idea.id} is already {status}."}
    before = idea.status.value
    backlog.change_status(session, idea, status, actor=f"person:{person.id}", note=note, at=ctx.now)
    return {
        "outcome": "changed",
        "idea": idea.id,
        "before": before,
        "status": status,
        "text": render(
            "status_changed", idea_id=idea.id, title=idea.title[:150], status=status, before=before, note=note
        ),
    }


def handle_status(*, ledger: Any, event: InboxEvent, now: datetime | None = None) -> str:
    """Inbox handler of route ``ideas-status`` (``/idea-status`` and ``cfi:`` buttons).
    Returns ``idea:<id>:<status>``, ``idea:<id>:unchanged`` or ``refused:<code>``."""
    ctx = context(now, ledger=ledger)
    with ctx.ledger.read() as session:
        row = session.get_one(InboxEvent, event.id)
        kind, payload = row.kind, dict(row.payload or {})
    attrs = {str(k): str(v) for k, v in (payload.get("attributes") or {}).items()}
    idea_id, status, note, source = _request(kind, attrs)
    outcome = _decide(ctx, event_id=event.id, attrs=attrs, idea_id=idea_id, status=status, note=note, source=source)
    text = outcome.get("text")
    if text is None:  # handled before: the recorded outcome has no text; say it again briefly
        text = (
            f"Idea #{outcome.get('idea')}: {outcome['outcome']}."
            if outcome.get("idea")
            else f"Not changed ({outcome['outcome']})."
        )
    answer_interaction(
        ctx,
        key=f"ideas:status-answer:inbox:{event.id}",
        actor=ACTOR,
        about=f"inbox:{event.id}",
        attributes=attrs,
        text=text,
    )
    result = outcome["outcome"]
    if result == "changed":
        if source == "button":
            show_on_digest(ctx, event_id=event.id, data=payload.get("data"))
        artifact(
            key=f"idea-{outcome['idea']}-status",
            title=f"Idea {outcome['idea']} is now {status}",
            rows={"before": outcome["before"], "after": status, "by": "a WG member", "source": source},
        )
        return f"idea:{outcome['idea']}:{status}"
    if result == "unchanged":
        return f"idea:{outcome['idea']}:unchanged"
    return result


def show_on_digest(ctx: Ctx, *, event_id: int, data: Any) -> bool:
    """After a change made with a digest button, edit that digest message to show every listed
    idea's status now, with buttons only on those still ``triaged``: the rest of the WG sees
    what was decided. Built from the ledger, so two presses in a row converge. True when the
    message was edited; a failed edit is logged (the change itself is recorded)."""
    message = (data or {}).get("message") if isinstance(data, dict) else None
    space = ctx.platforms.space("discord")
    editor = space.capable(MessageEditor) if space else None
    edit = editor.edit_message if editor is not None else None
    if not isinstance(message, dict) or not message.get("id") or edit is None:
        return False
    ids = ideas_in(message)
    with ctx.ledger.read() as session:
        statuses = {i.id: i.status.value for i in session.scalars(select(Idea).where(Idea.id.in_(ids)))}
    new = shown_after_change(message, statuses)
    if new is None:
        return False
    channel_id = str(message.get("channel_id") or data.get("channel_id") or "")
    try:
        once(
            ctx,
            key=f"ideas:digest-shown:inbox:{event_id}",
            platform="discord",
            actor=ACTOR,
            about=f"inbox:{event_id}",
            act=lambda: edit(
                channel_id=channel_id, message_id=str(message["id"]), text=new["content"], components=new["components"]
            ),
        )
    except Exception as exc:  # noqa: BLE001 - the status change stands; next week's digest is right
        log.warning("ideas: digest message not updated (%s)", type(exc).__name__)
        return False
    return True
