"""Handlers of the gateway's routes for membership: ``intake``, ``confirm``, ``optin``, ``leave``
and ``vote``. Each is ``handle_<route>(*, event_id, ledger, platforms, now) -> str``: it reads the
stored inbox event, acts (idempotently: it may run again after a crash before the event was
marked processed) and returns a result reference for ``inbox_mark_processed``. Refusals by the
charter are answered to the person (Discord follow-up) and returned as ``refused:<ruling>``;
they do not raise, so the event is processed once. The payload fields each expects are listed
in flows/README.md ("Inbound events"). What is refused before a flow runs (an unknown source,
an account that is no member's, a ballot that is not open) is decided by ``rules`` too.

The stored payload is ``{"data": <verified payload>, "attributes": {...}, "actor": ...}``
(``gateway.app._payload``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import flow

from connectors.errors import PolicyViolation
from flows.kit import Ctx, answer_interaction, context, record
from flows.membership import ballot as ballots
from flows.membership.forum import forum_application, forum_waiting
from flows.membership.intake import Submission, confirm_identity, submit
from flows.membership.leave import leave
from flows.membership.renewal import opt_in
from flows.membership.tokens import CONFIRM_PREFIX, OPTIN_PREFIX, read_token
from flows.platforms import Platforms
from ledger import repo
from ledger.db import Ledger
from ledger.models import InboxEvent
from rules.applications import ApplicationSource, check_application_source
from rules.ballots import check_ballot_found
from rules.leaving import check_leaver
from rules.terms import OptInRequest, check_opt_in_sender

__all__ = ["handle_confirm", "handle_intake", "handle_leave", "handle_optin", "handle_vote", "intake_inbox"]

ACTOR = "flow:inbox"


def _event(ctx: Ctx, event_id: int) -> tuple[str, str, dict[str, Any], dict[str, str], str | None]:
    with ctx.ledger.read() as session:
        event = session.get(InboxEvent, event_id)
        if event is None:
            raise LookupError(f"inbox:{event_id} does not exist")
        payload = dict(event.payload or {})
        return (
            event.source,
            event.kind,
            dict(payload.get("data") or {}),
            {str(k): str(v) for k, v in (payload.get("attributes") or {}).items()},
            payload.get("actor"),
        )


def _answer(ctx: Ctx, event_id: int, attributes: dict[str, str], text: str) -> None:
    answer_interaction(
        ctx, key=f"answer:inbox:{event_id}", actor=ACTOR, about=f"inbox:{event_id}", attributes=attributes, text=text
    )


def _sentence(reason: str) -> str:
    """A rules reason (lower case, no full stop) as the sentence the person is told."""
    return f"{reason[:1].upper()}{reason[1:]}."


def _person_of(ctx: Ctx, platform: str, external_id: str) -> int | None:
    with ctx.ledger.read() as session:
        person = repo.find_person_by_identity(session, platform=platform, external_id=external_id)
        return person.id if person else None


def _application(
    source: str, data: dict[str, Any], attrs: dict[str, str], actor: str | None, event_id: int
) -> tuple[dict[str, Any], dict[str, str], str] | None:
    """The application's fields, the accounts its source proved and its intake reference (the
    inbox event; a Forum topic's id, so its edits are one application), from a stored event."""
    proven: dict[str, str] = {}
    source_ref = f"inbox:{event_id}"
    if source == "form":
        values = {
            "forum_username": data.get("discourse_username"),
            "discord_username": data.get("discord_username"),
            "motivation": data.get("why", ""),
            "experience": data.get("experience", ""),
            "nominator": data.get("nominator"),
            "email": data.get("email"),
        }
    elif source == "discord":
        values = {
            "forum_username": attrs.get("field.forum_username") or None,
            "discord_username": attrs.get("username"),
            "motivation": attrs.get("field.why", ""),
            "experience": attrs.get("field.experience", ""),
            "nominator": attrs.get("field.nominator") or None,
            "email": None,
        }
        proven["discord"] = attrs.get("user_id", "")
    elif source == "discourse":
        values, proven, source_ref = forum_application(data)
    elif attrs.get("user_id") and attrs.get("username"):
        # A plugin platform's command: its verifier gives the neutral fields (flows/README.md,
        # "Inbound events from a plugin platform"); the account it came from is proven.
        values = {
            "forum_username": None,
            "discord_username": None,
            "motivation": attrs.get("field.why", ""),
            "experience": attrs.get("field.experience", ""),
            "nominator": attrs.get("field.nominator") or None,
            "email": None,
            "accounts": {source: attrs["username"]},
        }
        proven[source] = attrs["user_id"]
    else:
        return None
    return values, proven, source_ref


@flow(name="membership-intake-inbox", flow_run_name="intake-inbox-{event_id}", log_prints=True)
def intake_inbox(event_id: int, now: datetime | None = None) -> dict[str, Any]:
    """R-APP-1 for an application the gateway stored: the membership intake, reading the answers
    from the ledger's inbox event, so that this run's name and parameters carry the event id
    only, never a handle, an e-mail or an answer (R-PRIVACY-3)."""
    ctx = context(now)
    source, kind, data, attrs, actor = _event(ctx, event_id)
    found = _application(source, data, attrs, actor, event_id)
    decision = check_application_source(ApplicationSource(served=True, readable=found is not None))
    if found is None or not decision.allowed:
        return {"outcome": "refused", "ruling": decision.ruling, "code": decision.code, "reason": decision.reason}
    values, proven, source_ref = found
    return submit(ctx, Submission(**values, source=source, source_ref=source_ref, proven=proven or None))


def handle_intake(*, event_id: int, ledger: Ledger, platforms: Platforms, now: datetime) -> str:
    """An application from the public form, the Discord ``/apply`` modal or a new Forum topic
    in the applications category; returns ``application:<id>`` or ``refused:<ruling>:<code>``."""
    ctx = context(now, ledger=ledger, platforms=platforms)
    source, kind, data, attrs, actor = _event(ctx, event_id)
    served = source in ("form", "discord", "discourse") or ctx.platforms.space(source) is not None
    decision = check_application_source(ApplicationSource(served=served))
    if not decision.allowed:
        return f"refused:{decision.ruling}:{decision.code}"
    if source == "discourse":
        if kind == "topic_created":
            return "forum-topic:answers-come-with-its-first-post"
        waiting = forum_waiting(ctx, data=data)
        if waiting:
            return waiting  # not a first post, or answers missing: the edit brings it back
    result = intake_inbox(event_id=event_id, now=ctx.now)
    if result.get("outcome") == "refused":
        _answer(
            ctx,
            event_id,
            attrs,
            f"Your application was not accepted: {result.get('reason', '')} ({result.get('ruling')}).",
        )
        return f"refused:{result.get('ruling')}:{result.get('code')}"
    _answer(
        ctx,
        event_id,
        attrs,
        "Thank you, your application was received. Please confirm it "
        "from each account you named (see your direct messages).",
    )
    return f"application:{result['application']}"


def handle_confirm(*, event_id: int, ledger: Ledger, platforms: Platforms, now: datetime) -> str:
    """R-APP-2: a Discord **Confirm** button (``custom_id`` ``cfc:<token>``; the presser must be
    the named account) or the gateway's confirmation page POST (``data.token``)."""
    ctx = context(now, ledger=ledger, platforms=platforms)
    source, kind, data, attrs, _ = _event(ctx, event_id)
    custom_id = attrs.get("custom_id", "")
    token = (
        custom_id.removeprefix(CONFIRM_PREFIX) if custom_id.startswith(CONFIRM_PREFIX) else str(data.get("token", ""))
    )
    pressed_by = attrs.get("user_id") if source == "discord" else None
    try:
        result = confirm_identity(
            token=token,
            ledger=ledger,
            platforms=platforms,
            now=ctx.now,
            pressed_by=pressed_by,
            channel="discord" if custom_id.startswith(CONFIRM_PREFIX) else "web",
        )
    except PolicyViolation as exc:
        _answer(ctx, event_id, attrs, f"This confirmation was not accepted: {exc.reason}.")
        return f"refused:{exc.ruling}"
    _answer(ctx, event_id, attrs, "Thank you, your application is confirmed from this account.")
    return result


def handle_optin(*, event_id: int, ledger: Ledger, platforms: Platforms, now: datetime) -> str:
    """R-TERM-2: Discord ``/optin`` (the caller's account), the reminder's **Opt in** button
    (``custom_id`` ``cfo:<token>``), or the gateway's opt-in page POST (``data.token``)."""
    ctx = context(now, ledger=ledger, platforms=platforms)
    source, kind, data, attrs, _ = _event(ctx, event_id)
    custom_id = attrs.get("custom_id", "")
    token = custom_id.removeprefix(OPTIN_PREFIX) if custom_id.startswith(OPTIN_PREFIX) else str(data.get("token", ""))
    try:
        link_for = (
            read_token(
                token,
                secret=platforms.confirm_secret,
                purpose="optin",
                now=ctx.now,
                channel="discord" if custom_id.startswith(OPTIN_PREFIX) else "web",
            ).identity
            if token
            else None
        )
        # The sender's own account: Discord's /optin or button, or a plugin platform's command
        # (the form and the Forum do not say who sent it).
        known = source not in ("form", "discourse") and bool(attrs.get("user_id"))
        sender = _person_of(ctx, source, attrs["user_id"]) if known else None
        decision = check_opt_in_sender(OptInRequest(link_for=link_for, sent_by=sender, sender_known=known))
        if not decision.allowed:
            raise PolicyViolation(decision.reason, ruling=decision.ruling)
        person_id = decision.evidence["person"]
        result = opt_in.with_options(flow_run_name=f"opt-in-person-{person_id}")(
            member=str(person_id), source=source if not token else f"{source}-link", now=ctx.now
        )
    except PolicyViolation as exc:
        _answer(ctx, event_id, attrs, f"Opt-in not recorded: {exc.reason} ({exc.ruling}).")
        return f"refused:{exc.ruling}"
    _answer(ctx, event_id, attrs, f"Thank you: your new term runs until {result['ends_at'][:10]}.")
    return f"term:{result['term']}"


def handle_leave(*, event_id: int, ledger: Ledger, platforms: Platforms, now: datetime) -> str:
    """R-LEAVE: Discord ``/leave`` (optional ``reason`` option) by the member themself."""
    ctx = context(now, ledger=ledger, platforms=platforms)
    source, kind, data, attrs, _ = _event(ctx, event_id)
    person_id = (
        _person_of(ctx, source, attrs["user_id"])
        if source not in ("form", "discourse") and attrs.get("user_id")
        else None
    )
    if person_id is None and source == "discourse":
        person_id = _person_of(ctx, "discourse", str((data.get("post") or {}).get("user_id", "")))
    decision = check_leaver(person=None if person_id is None else f"person:{person_id}")
    if person_id is None or not decision.allowed:
        _answer(ctx, event_id, attrs, _sentence(decision.reason))
        return f"refused:{decision.ruling}:{decision.code}"
    try:
        result = leave.with_options(flow_run_name=f"leave-person-{person_id}")(
            member=str(person_id), reason=attrs.get("option.reason") or None, now=ctx.now
        )
    except PolicyViolation as exc:
        _answer(ctx, event_id, attrs, f"Nothing to do: {exc.reason}.")
        return f"refused:{exc.ruling}"
    _answer(ctx, event_id, attrs, "You have left the working group. Thank you for your work.")
    return f"membership:{result['membership']}:left"


def handle_vote(*, event_id: int, ledger: Ledger, platforms: Platforms, now: datetime) -> str:
    """R-ELECTORATE: a Discord ballot button (``ballot_id``, ``option_id``, ``user_id``). The vote
    is cast in the ledger (a refused one is audited), the voter gets a private answer, and the
    ballot closes at once when this vote decided it (R-VOTE-EARLY)."""
    ctx = context(now, ledger=ledger, platforms=platforms)
    source, kind, data, attrs, _ = _event(ctx, event_id)
    with ctx.ledger.read() as session:
        earlier = repo.effect_get(session, key=f"vote:inbox:{event_id}")
        candidates = [b.id for b in repo.open_ballots(session)]
    if earlier is not None:
        return str(earlier["ref"].get("result", "vote:done"))
    found = None
    for ballot_id in candidates:
        ref = ballots.refs(ctx, ballot_id).get(source)
        if ref and str(ref.get("ballot_id")) == attrs.get("ballot_id"):
            found = (ballot_id, ref)
            break
    decision = check_ballot_found(found=found is not None)
    if found is None or not decision.allowed:
        _answer(ctx, event_id, attrs, _sentence(decision.reason))
        return f"refused:{decision.ruling}:{decision.code}"
    ballot_id, ref = found
    choice = ballots.choice_of(ref, attrs.get("option_id", ""))
    if choice is None:
        return "refused:unknown-option"
    accepted, reason = ballots.cast(
        ctx, ballot_id=ballot_id, platform=source, external_id=attrs.get("user_id", ""), choice=choice
    )
    result = f"ballot:{ballot_id}:{'vote' if accepted else 'refused'}"
    record(ctx, key=f"vote:inbox:{event_id}", actor=ACTOR, ref={"result": result}, about=f"ballot:{ballot_id}")
    _answer(
        ctx,
        event_id,
        attrs,
        f"Your vote ({choice}) is recorded." if accepted else f"Your vote was not counted: {reason}.",
    )
    if accepted:
        ballots.settle(ctx, ballot_id=ballot_id)
    return result
