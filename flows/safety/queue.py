"""The report queue's steps (R-SAFE-1, R-SAFE-2): take a report, show it in the moderators'
rooms, claim, resolve, refer to the CoC WG, remind, and tell the reporter.

Each step records its decision in the ledger first (``ledger.safety``, with an audit entry),
then announces it, each announcement once (``once`` keyed ``safety:<what>:<report>:...``). The
reported person is never told anything; the reporter is told only that the report was handled.
:func:`take_report` is the one intake every platform's route (and the web form) calls.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from connectors.base import ButtonMessenger, MessageRef, UserRef
from flows.kit import Ctx, done, once, user_ref
from flows.moderation.common import platform_name
from flows.safety.common import ACTOR, BUTTON_PREFIX, COC_OUTCOMES, render, settings
from flows.safety.links import PATH as LINK_PATH
from flows.safety.links import liaison_of, make_link_token
from flows.safety.room import SpaceRoom, button_rows, has_buttons, rooms
from ledger import repo
from ledger import safety as queue_ledger
from ledger.models import Identity, Person
from ledger.models_safety import SafetyReport
from rules import safety as rules
from rules.handles import same_handle

log = logging.getLogger("charterflow.safety")
Account = tuple[str, str]  # (platform, the platform's account id) of whoever acts
OUTCOME_BUTTONS = (
    ("No action", "no_action"),
    ("Warned", "warned"),
    ("Removed content", "removed_content"),
    ("Sanctioned", "sanctioned"),
)


@dataclass(frozen=True, kw_only=True)
class Incoming:
    """A report as a platform's route (or the web form) read it. ``source_key``: the delivery's
    dedupe key (a redelivery makes no second report); ``reporter_key``: who, for the rate limit
    (``<platform>:<account id>``, or ``ip:<digest>`` for an anonymous form)."""

    source_key: str
    via: str
    platform: str
    reporter_key: str
    target_kind: str
    reporter_account: str | None = None
    reporter_username: str | None = None
    target_account: str | None = None
    target_username: str | None = None
    target_message_id: str | None = None
    target_channel_id: str | None = None
    target_link: str | None = None
    content: str | None = None
    content_gone: bool = False
    reason: str | None = None
    coc: bool = False


@dataclass(frozen=True, kw_only=True)
class Taken:
    """What became of an incoming report: ``taken``, ``duplicate`` (a redelivery), ``refused``
    (a burst, R-SAFE-1) or ``too-long``; ``message`` is what the reporter is shown."""

    status: str
    report_id: int | None
    message: str


def take_report(ctx: Ctx, incoming: Incoming) -> Taken:
    """Record a report and show it to the moderators (or refer it, when marked CoC)."""
    safety = ctx.charter.safety
    if incoming.target_kind not in rules.TARGET_KINDS:
        raise ValueError(f"unknown report target {incoming.target_kind!r}")
    if incoming.reason and len(incoming.reason) > safety.max_text_chars:
        return Taken(
            status="too-long",
            report_id=None,
            message=f"Your report is longer than {safety.max_text_chars} characters; please shorten it.",
        )
    fields = asdict(incoming)
    fields.pop("source_key")
    content = fields.get("content")
    if content and len(content) > safety.max_text_chars:  # what the platform gave, kept within bounds
        fields["content"] = content[: safety.max_text_chars - 1] + "…"
    with ctx.ledger.transaction() as session:
        found = session.scalar(select(SafetyReport.id).where(SafetyReport.source_key == incoming.source_key))
        if found is not None:
            return Taken(status="duplicate", report_id=found, message=f"Your report #{found} was received.")
        recent = queue_ledger.recent_times(
            session, incoming.reporter_key, since=queue_ledger.window(ctx.now, safety.window_minutes)
        )
        decision = rules.intake_allowed(recent=recent, now=ctx.now, safety=safety)
        fields["reporter_person_id"] = _person_of(session, incoming.via, incoming.reporter_account)
        if not decision.allowed:
            queue_ledger.note_refused(
                session,
                reporter_key=incoming.reporter_key,
                via=incoming.via,
                why="rate-limit",
                at=ctx.now,
                actor=ACTOR,
                reporter_person_id=fields["reporter_person_id"],
            )
            refused = True
        else:
            refused = False
            fields["target_person_id"] = _person_of(session, incoming.platform, incoming.target_account)
            report, _ = queue_ledger.create(
                session, source_key=incoming.source_key, at=ctx.now, actor=ACTOR, fields=fields
            )
            report_id, coc = report.id, report.coc
    if refused:
        return Taken(
            status="refused",
            report_id=None,
            message=(
                "You have sent many reports in a short time; this one was not taken. The moderators "
                "were told. Please try again later (R-SAFE-1)."
            ),
        )
    if coc:
        refer(ctx, report_id, by="reporter", is_moderator=False, by_reporter=True)
    else:
        announce(ctx, report_id)
    return Taken(
        status="taken",
        report_id=report_id,
        message=f"Thank you: your report #{report_id} reached the moderators. You will be told when it "
        "has been handled.",
    )


def _person_of(session: Any, platform: str, account: str | None) -> int | None:
    if not account:
        return None
    try:
        identity = repo.find_identity(session, platform=platform, external_id=account)
    except ValueError:  # not a platform the ledger knows (the form)
        return None
    return identity.person_id if identity is not None else None


def is_subject(
    session: Any, report: SafetyReport, *, person_id: int | None = None, username: str | None = None
) -> bool:
    """R-SAFE-1: whether ``person_id`` (a ledger person) or ``username`` (a name on the reported
    platform) is the report's reported person: the same person, one of their accounts, or (a
    web-form report names only a username) their username there."""
    if person_id is not None:
        if person_id == report.target_person_id:
            return True
        for identity in session.scalars(select(Identity).where(Identity.person_id == person_id)):
            if str(identity.platform) != report.platform:  # a StrEnum: its value
                continue
            if report.target_account and identity.external_id == report.target_account:
                return True
            if same_handle(identity.username, report.target_username):
                return True
    return same_handle(username, report.target_username)


def _handler_is_subject(session: Any, report: SafetyReport, *, by: str, account: Account | None) -> bool:
    """R-SAFE-1: whether the moderator acting (``account``, ``(platform, account id)``, from a
    button or a reply; an operator's ``--by`` handle) is the reported person."""
    platform, acct = account or ("", "")
    if acct and platform == report.platform and acct == report.target_account:
        return True
    person_id = _person_of(session, platform, acct) if acct else None
    if person_id is None:
        person_id = session.scalar(select(Person.id).where(Person.handle == by))
    return is_subject(session, report, person_id=person_id, username=by if platform in ("", report.platform) else None)


def actor_of(ctx: Ctx, platform: str, account: str | None) -> str:
    """The audit log's reference of whoever pressed or replied: ``person:<id>`` when the ledger
    knows the account, else ``<platform>:unlinked``. Never the platform's account id: the audit
    log is never erased and holds ids of ours only (R-PRIVACY-2); the report's row names who."""
    with ctx.ledger.read() as session:
        person_id = _person_of(session, platform, account)
    return f"person:{person_id}" if person_id is not None else f"{platform}:unlinked"


def _refused(report: SafetyReport, decision: Any, *, is_moderator: bool) -> str:
    """The result code of a refused step: who may not act, else the report's state."""
    if not is_moderator:
        return "refused:not-a-moderator"
    return "refused:subject" if decision.evidence.get("subject") else f"refused:{report.state}"


def _facts(ctx: Ctx, report_id: int) -> dict[str, Any]:
    with ctx.ledger.read() as session:
        return queue_ledger.facts(queue_ledger.get(session, report_id))


# The longest quote of a report's content or words in a room message: a Discord message holds
# 2000 characters (the connector cuts the end, where the state and the commands are).
ROOM_QUOTE = 600


def _cut(text: str | None) -> str | None:
    if not text or len(text) <= ROOM_QUOTE:
        return text
    return text[: ROOM_QUOTE - 1] + "… (cut here; the whole text is in the ledger)"


def _room_text(facts: dict[str, Any], *, buttons: bool) -> str:
    facts = {**facts, "content": _cut(facts["content"]), "reason": _cut(facts["reason"])}
    return render(
        "room_report",
        r=facts,
        platform=platform_name(facts["platform"]),
        outcome=rules.OUTCOME_LABELS.get(facts["outcome"] or "", ""),
        buttons=buttons,
    )


def report_buttons(report_id: int) -> list[tuple[str, str]]:
    """The buttons of a report in a room: Claim, the outcomes, Refer to the CoC WG."""
    return [
        ("Claim", f"{BUTTON_PREFIX}claim:{report_id}"),
        *((label, f"{BUTTON_PREFIX}resolve:{report_id}:{o}") for label, o in OUTCOME_BUTTONS),
        ("Refer to CoC WG", f"{BUTTON_PREFIX}refer:{report_id}"),
    ]


def announce(ctx: Ctx, report_id: int) -> list[str]:
    """Show the report in every moderators' room, once per room; returns the platforms reached.
    A room that fails is logged; the next announce (a reminder run) tries it again."""
    facts = _facts(ctx, report_id)
    reached = []
    for platform, room in rooms(ctx).items():
        key = f"safety:room:{report_id}:{platform}"
        text = _room_text(facts, buttons=has_buttons(room))
        if _in_room(
            ctx,
            report_id,
            platform,
            key=key,
            act=lambda r=room, t=text, k=key: r.post(t, buttons=report_buttons(report_id), key=k),
            failed="report %s not shown on %s",
        ):
            reached.append(platform)
    return reached


def _in_room(ctx: Ctx, report_id: int, platform: str, *, key: str, act: Any, failed: str) -> bool:
    """Do ``act`` in one platform's room once (``key``); a failure is logged (``failed``, with the
    report and the platform) and does not stop the other rooms: the ledger holds the state."""
    try:
        once(ctx, key=key, platform=platform, actor=ACTOR, about=queue_ledger.subject(report_id), act=act)
        return True
    except Exception as exc:  # noqa: BLE001 - one platform down must not stop the others
        log.warning(f"safety: {failed} (%s)", report_id, platform, type(exc).__name__)
        return False


def _update_rooms(ctx: Ctx, report_id: int, *, step: str, text_for: Any, keep_buttons: bool) -> None:
    """Show a report's new state on each room message posted for it, once per step."""
    for platform, room in rooms(ctx).items():
        posted = done(ctx, f"safety:room:{report_id}:{platform}")
        ref = (posted or {}).get("ref") or {}
        if not ref.get("id"):
            continue
        message = MessageRef(platform=platform, id=str(ref["id"]), thread_id=str(ref.get("thread_id", "")))
        text = text_for(room)
        _in_room(
            ctx,
            report_id,
            platform,
            key=f"safety:room:{report_id}:{platform}:{step}",
            act=lambda r=room, m=message, t=text: _edit(r, m, t, keep_buttons),
            failed="report %s not updated on %s",
        )


def _edit(room: Any, ref: MessageRef, text: str, keep_buttons: bool) -> None:
    if isinstance(room, SpaceRoom):
        room.edit(ref, text, keep_buttons=keep_buttons)
    else:
        room.edit(ref, text)


def claim(
    ctx: Ctx, report_id: int, *, by: str, actor: str, is_moderator: bool, account: Account | None = None
) -> tuple[str, str]:
    """A moderator claims a report (once). Returns ``(result, answer)``."""
    with ctx.ledger.transaction() as session:
        report = queue_ledger.get(session, report_id)
        decision = rules.can_claim(
            state=report.state,
            is_moderator=is_moderator,
            is_subject=_handler_is_subject(session, report, by=by, account=account),
        )
        if not decision.allowed:
            holder = None if decision.evidence.get("subject") else report.claimed_by
            return _refused(report, decision, is_moderator=is_moderator), (
                f"Report #{report_id}: {decision.reason}" + (f" (by {holder})." if holder else ".")
            )
        queue_ledger.claim(session, report_id, by=by, at=ctx.now, actor=actor)
    _update_rooms(
        ctx,
        report_id,
        step="claimed",
        keep_buttons=True,
        text_for=lambda room: _room_text(_facts(ctx, report_id), buttons=has_buttons(room)),
    )
    return f"claimed:{report_id}", f"Report #{report_id} is yours."


def resolve(
    ctx: Ctx,
    report_id: int,
    *,
    outcome: str,
    by: str,
    actor: str,
    is_moderator: bool,
    account: Account | None = None,
) -> tuple[str, str]:
    """A moderator resolves a report with ``outcome`` (once); the reporter is told it was handled."""
    with ctx.ledger.transaction() as session:
        report = queue_ledger.get(session, report_id)
        decision = rules.can_resolve(
            state=report.state,
            outcome=outcome,
            is_moderator=is_moderator,
            is_subject=_handler_is_subject(session, report, by=by, account=account),
        )
        if not decision.allowed:
            return _refused(report, decision, is_moderator=is_moderator), f"Report #{report_id}: {decision.reason}."
        queue_ledger.resolve(session, report_id, outcome=outcome, by=by, at=ctx.now, actor=actor)
    _update_rooms(
        ctx,
        report_id,
        step="resolved",
        keep_buttons=False,
        text_for=lambda room: _room_text(_facts(ctx, report_id), buttons=False),
    )
    tell_reporter(ctx, report_id)
    return f"resolved:{report_id}:{outcome}", f"Report #{report_id} resolved: {rules.OUTCOME_LABELS[outcome]}."


def refer(
    ctx: Ctx,
    report_id: int,
    *,
    by: str,
    is_moderator: bool,
    by_reporter: bool = False,
    actor: str = ACTOR,
    account: Account | None = None,
) -> tuple[str, str]:
    """Refer a CoC report to the CoC WG through its liaison (R-SAFE-2): recorded, sent to the
    liaison (and the CoC WG's address), and the rooms show only that it was referred."""
    with ctx.ledger.transaction() as session:
        report = queue_ledger.get(session, report_id)
        decision = rules.can_refer(
            state=report.state,
            is_moderator=is_moderator,
            by_reporter=by_reporter,
            is_subject=not by_reporter and _handler_is_subject(session, report, by=by, account=account),
        )
        if not decision.allowed:
            return (
                _refused(report, decision, is_moderator=is_moderator or by_reporter),
                f"Report #{report_id}: {decision.reason}.",
            )
        queue_ledger.refer(session, report_id, by=by, at=ctx.now, actor=actor)
        facts = rules.referral_facts(queue_ledger.facts(report))
    reached = send_to_liaison(ctx, report_id, facts)
    referred = render("room_referred", id=report_id)
    _update_rooms(ctx, report_id, step="referred", keep_buttons=False, text_for=lambda room: referred)
    for platform, room in rooms(ctx).items():  # rooms that never showed it: the bare notice
        key = f"safety:room:{report_id}:{platform}"
        _in_room(
            ctx,
            report_id,
            platform,
            key=key,
            act=lambda r=room, k=key: r.post(referred, key=k),
            failed="referral %s not noted on %s",
        )
    tell_reporter(ctx, report_id, referred=True)
    where = ", ".join(reached) or "nobody yet: no CoC Liaison who may see it, and no CoC WG address"
    return f"referred:{report_id}", f"Report #{report_id} was referred to the CoC WG ({where})."


def liaison(ctx: Ctx) -> Person | None:
    """The CoC Liaison (R-ROLE-COC): the ledger's holder of the role, else ``COC_LIAISON``."""
    with ctx.ledger.read() as session:
        return liaison_of(session)


def outcome_link(ctx: Ctx, report_id: int, person: Person) -> tuple[str, datetime] | None:
    """The liaison's signed link to record the CoC WG's outcome (``flows.safety.links``) and
    when it expires: counted from the referral, so a re-run makes the same link. None without
    a referral time or a secret."""
    with ctx.ledger.read() as session:
        referred_at = queue_ledger.get(session, report_id).referred_at
    if referred_at is None:
        return None
    expires = referred_at.replace(tzinfo=referred_at.tzinfo or UTC) + timedelta(days=settings().coc_link_days)
    try:
        token = make_link_token(
            secret=ctx.platforms.confirm_secret, report_id=report_id, person_id=person.id, expires_at=expires
        )
    except ValueError:  # no secret configured: the DM names the command instead
        return None
    return f"{ctx.platforms.gateway_url}{LINK_PATH}/{token}", expires


def send_to_liaison(ctx: Ctx, report_id: int, facts: dict[str, Any]) -> list[str]:
    """The referral, privately: a direct message to the liaison on each served platform they
    have an account on, and an e-mail to the CoC WG's address when configured. Where there are
    no buttons (and in the e-mail) it carries the liaison's outcome link."""
    with ctx.ledger.read() as session:
        person = liaison_of(session)
        liaison_is_subject = person is not None and is_subject(
            session, queue_ledger.get(session, report_id), person_id=person.id
        )
    to_liaison = rules.liaison_receives(liaison_known=person is not None, liaison_is_subject=liaison_is_subject)
    # R-SAFE-2: no outcome link for a liaison who is the reported person (not even in the e-mail).
    link = outcome_link(ctx, report_id, person) if person is not None and to_liaison.allowed else None
    texts = {
        linked: _split(
            render(
                "coc_referral",
                f=facts,
                link=link[0] if link and linked else None,
                expires=link[1].strftime("%Y-%m-%d %H:%M UTC") if link else None,
            )
        )
        for linked in (False, True)
    }
    reached = []
    if person is not None and to_liaison.allowed:
        reached += _message_liaison(ctx, report_id, person, texts)
    else:
        log.warning("safety: report %s not sent to the CoC Liaison: %s (R-SAFE-2)", report_id, to_liaison.reason)
    if _email_coc_wg(ctx, report_id, *texts[True]):
        reached.append("email")
    return reached


def _split(text: str) -> tuple[str, str]:
    """A rendered message as (title, body): its first line is the title."""
    title, _, body = text.partition("\n")
    return title, body.strip()


def _message_liaison(ctx: Ctx, report_id: int, person: Person, texts: dict[bool, tuple[str, str]]) -> list[str]:
    with ctx.ledger.read() as session:
        accounts = [
            (i.platform.value, user_ref(i))
            for i in session.scalars(select(Identity).where(Identity.person_id == person.id))
            if i.username
        ]
    reached = []
    for platform, account in accounts:
        space = ctx.platforms.space(platform)
        if space is None or space.messenger is None:
            continue
        buttons = space.capable(ButtonMessenger)
        title, body = texts[buttons is None]  # no buttons: the outcome link instead
        key = f"safety:coc:{report_id}:{platform}"
        try:
            sent = once(
                ctx,
                key=key,
                platform=platform,
                actor=ACTOR,
                about=queue_ledger.subject(report_id),
                act=lambda s=space, u=account, k=key, t=title, b=body: s.direct_message(u, title=t, text=b, key=k),
            )
            reached.append(platform)
            if buttons is not None:
                _liaison_buttons(ctx, report_id, buttons, platform, (sent.get("ref") or {}).get("thread_id"))
        except Exception as exc:  # noqa: BLE001 - DMs closed, platform down: logged
            log.warning(
                "safety: referral %s not sent to the liaison on %s (%s)", report_id, platform, type(exc).__name__
            )
    return reached


def _email_coc_wg(ctx: Ctx, report_id: int, title: str, body: str) -> bool:
    address, mailer = settings().coc_email, ctx.platforms.mailer
    if not address or mailer is None:
        return False
    key = f"safety:coc:{report_id}:email"
    try:
        once(
            ctx,
            key=key,
            platform="email",
            actor=ACTOR,
            about=queue_ledger.subject(report_id),
            act=lambda: mailer.send(to=address, subject=title, text=body, key=key),
        )
        return True
    except Exception as exc:  # noqa: BLE001 - the SMTP server down: logged
        log.warning("safety: referral %s not e-mailed (%s)", report_id, type(exc).__name__)
        return False


def coc_buttons(report_id: int) -> list[tuple[str, str]]:
    """The liaison's buttons: one per CoC WG outcome (``cfs:coc:<id>:<outcome>``, R-SAFE-2)."""
    return [(label, f"{BUTTON_PREFIX}coc:{report_id}:{o}") for o, label in COC_OUTCOMES.items()]


def _liaison_buttons(ctx: Ctx, report_id: int, buttons: ButtonMessenger, platform: str, channel: str | None) -> None:
    """Where the platform has buttons, the outcome buttons follow the referral in the same
    private conversation (its channel is the direct message's thread)."""
    if not channel:
        return
    key = f"safety:coc:{report_id}:{platform}:buttons"
    text = render("coc_buttons", id=report_id)
    once(
        ctx,
        key=key,
        platform=platform,
        actor=ACTOR,
        about=queue_ledger.subject(report_id),
        act=lambda: buttons.post_components(
            channel=channel, content=text, components=button_rows(coc_buttons(report_id)), key=key
        ),
    )


def record_coc_outcome(ctx: Ctx, report_id: int, *, by_handle: str, outcome: str) -> tuple[str, str]:
    """The liaison records the CoC WG's outcome of a referred report (R-SAFE-2)."""
    person = liaison(ctx)
    with ctx.ledger.transaction() as session:
        report = queue_ledger.get(session, report_id)
        decision = rules.can_record_coc_outcome(
            state=report.state,
            is_liaison=person is not None and person.handle == by_handle,
            is_subject=person is not None and is_subject(session, report, person_id=person.id),
        )
        if not decision.allowed or person is None:
            return "refused", f"Report #{report_id}: {decision.reason}."
        queue_ledger.record_coc_outcome(session, report_id, outcome=outcome, at=ctx.now, actor=f"person:{person.id}")
    return f"coc-outcome:{report_id}", f"Report #{report_id}: the CoC WG's outcome is recorded."


def tell_reporter(ctx: Ctx, report_id: int, *, referred: bool = False) -> bool:
    """Tell the reporter, where they reported from, that their report was handled (never the
    outcome: R-SAFE-1), once. An anonymous form report has nobody to tell."""
    with ctx.ledger.read() as session:
        report = queue_ledger.get(session, report_id)
        via, username = report.via, report.reporter_username
        reporter = UserRef(platform=via, id=report.reporter_account or "", username=username or "")
    space = ctx.platforms.space(via)
    if not username or space is None or space.messenger is None:
        return False
    text = render("reporter_handled", id=report_id, referred=referred)
    title, _, body = text.partition("\n")
    key = f"safety:told:{report_id}"
    try:
        once(
            ctx,
            key=key,
            platform=via,
            actor=ACTOR,
            about=queue_ledger.subject(report_id),
            act=lambda: space.direct_message(reporter, title=title, text=body.strip(), key=key),
        )
        return True
    except Exception as exc:  # noqa: BLE001 - DMs closed: logged, the report stays handled
        log.warning("safety: reporter of %s not told (%s)", report_id, type(exc).__name__)
        return False


def remind_unclaimed(ctx: Ctx) -> list[int]:
    """Remind the rooms of each report unclaimed for the charter's number of hours (R-SAFE-1);
    a report not yet shown in a room (that room was down) is shown now. Returns the reminded."""
    safety = ctx.charter.safety
    due = []
    with ctx.ledger.transaction() as session:
        for report in queue_ledger.open_reports(session):
            if rules.reminder_due(
                state=report.state,
                created_at=report.created_at,
                reminded_at=report.reminded_at,
                now=ctx.now,
                safety=safety,
            ):
                queue_ledger.mark_reminded(session, report.id, at=ctx.now, actor=ACTOR)
                hours = int((ctx.now - report.created_at).total_seconds() // 3600)
                due.append((report.id, report.platform, hours))
    for report_id, platform_of, hours in due:
        announce(ctx, report_id)
        text = render("room_reminder", id=report_id, hours=hours, platform=platform_name(platform_of))
        for platform, room in rooms(ctx).items():
            key = f"safety:remind:{report_id}:{platform}:{ctx.now.strftime('%Y%m%dT%H%M')}"
            _in_room(
                ctx,
                report_id,
                platform,
                key=key,
                act=lambda r=room, k=key, t=text: r.post(t, key=k),
                failed="reminder %s not posted on %s",
            )
    return [r for r, _, _ in due]


def resend_unreached_referrals(ctx: Ctx) -> list[int]:
    """R-SAFE-2: a referral that reached nobody (no CoC Liaison known, or only one who is the
    reported person, and no CoC WG address) is sent again on each reminder run until someone
    has it: a liaison named later, or an address configured later. Each send is once per key,
    so one that arrived is not sent twice. Returns the reports sent now."""
    with ctx.ledger.read() as session:
        waiting = [
            (r.id, rules.referral_facts(queue_ledger.facts(r)))
            for r in queue_ledger.queue(session, states=("referred",))
            if r.coc_outcome is None
        ]
    where = [*ctx.platforms.names(), "email"]
    sent = []
    for report_id, facts in waiting:
        if any(done(ctx, f"safety:coc:{report_id}:{p}") for p in where):
            continue
        if send_to_liaison(ctx, report_id, facts):
            sent.append(report_id)
        else:
            log.warning("safety: referral %s has still reached nobody (R-SAFE-2)", report_id)
    return sent
