"""The inbox routes of this package (called by ``flows.inbox`` at import).

- the Discord message command "Report to moderators" (an application command of type 3 on a
  message): the message's author, content and link as Discord gave them in the interaction's
  ``resolved`` data (a message deleted meanwhile: what is left; the report is kept);
- the moderators' buttons, custom_id prefix ``cfs:``: ``cfs:claim:<id>``,
  ``cfs:resolve:<id>:<outcome>``, ``cfs:refer:<id>``. Only a moderator or admin of the server
  may press them (as the ``cfm:`` buttons); anyone else is told so and nothing changes.

Both answer privately (the gateway deferred the interaction as ephemeral). A redelivered
interaction is stored once by the inbox; a second press changes nothing twice (the rules refuse
a second claim or resolution).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from connectors.base import Messenger, RoomWriter
from connectors.errors import PolicyViolation
from flows.kit import answer_interaction, context, done, is_moderator, once
from flows.safety import links
from flows.safety.common import ACTOR, BUTTON_PREFIX, COC_OUTCOMES, MESSAGE_COMMAND
from flows.safety.queue import (
    Account,
    Incoming,
    actor_of,
    claim,
    record_coc_outcome,
    refer,
    resolve,
    take_report,
)
from ledger import repo
from ledger import safety as queue_ledger
from ledger.errors import NotFound
from ledger.models import InboxEvent, Person

log = logging.getLogger("charterflow.safety")
ROUTE = "safety-report"
BUTTON_ROUTE = "safety-button"
DISCORD_MESSAGE_URL = "https://discord.com/channels/{guild}/{channel}/{message}"


def register() -> None:
    """Register this package's routes with ``flows.inbox.register_route``."""
    from flows import inbox  # lazy: cycle: flows.inbox imports this module to call register()

    inbox.register_route(
        ROUTE,
        handle_report_command,
        discord_command=MESSAGE_COMMAND,
        condition='the message command "Report to moderators" (R-SAFE-1)',
    )
    inbox.register_route(
        BUTTON_ROUTE,
        handle_safety_button,
        discord_component_prefix=BUTTON_PREFIX,
        condition="a report's Claim / Resolve / Refer button (custom_id cfs:…)",
    )
    inbox.register_route(FORM_ROUTE, handle_form_report)
    inbox.register_route(
        LINK_ROUTE,
        handle_coc_link,
        form_kind=links.FORM_KIND,
        condition="the CoC Liaison's outcome page (POST /coc-outcome/<token>, R-SAFE-2)",
    )
    inbox.register_route(FLAG_ROUTE, handle_forum_flag)
    inbox.register_route(COMMAND_ROUTE, handle_room_command)


def _event(ctx: Any, event: InboxEvent) -> tuple[dict[str, Any], dict[str, str], str]:
    with ctx.ledger.read() as session:
        row = session.get(InboxEvent, event.id)
        payload = dict(row.payload or {})
        key = row.dedupe_key
    attrs = {str(k): str(v) for k, v in (payload.get("attributes") or {}).items()}
    return dict(payload.get("data") or {}), attrs, key


def _obj(container: Any, key: str) -> dict[str, Any]:
    """``container[key]`` when it is a JSON object, else ``{}`` (a payload's fields may be absent
    or of the wrong type: we read what is there)."""
    value = container.get(key) if isinstance(container, dict) else None
    return value if isinstance(value, dict) else {}


def _opt(value: Any) -> str | None:
    """A payload value as text, or None when absent or empty."""
    return str(value) if value is not None and str(value) != "" else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _reported(
    platform: str,
    *,
    reporter: Any,
    reporter_name: Any,
    target_kind: str,
    target: Any,
    target_name: Any,
    key: Any = None,
) -> dict[str, Any]:
    """The fields of an ``Incoming`` every platform's report fills alike: who reported (their
    account groups them for the rate limit, ``key`` when the account may be absent) and whose
    message or post it is about."""
    return {
        "via": platform,
        "platform": platform,
        "reporter_key": f"{platform}:{key or reporter or 'unknown'}",
        "reporter_account": _opt(reporter),
        "reporter_username": _opt(reporter_name),
        "target_kind": target_kind,
        "target_account": _opt(target),
        "target_username": _opt(target_name),
    }


def _discord_link(guild: str, channel: str, message: str) -> str | None:
    return (
        DISCORD_MESSAGE_URL.format(guild=guild, channel=channel, message=message)
        if guild and channel and message
        else None
    )


def incoming_from_message_command(data: dict[str, Any], attrs: dict[str, str], *, dedupe_key: str) -> Incoming:
    """The report a "Report to moderators" interaction makes (pure: the interaction's own data).
    https://discord.com/developers/docs/interactions/application-commands#message-commands"""
    command = _obj(data, "data")
    target = str(command.get("target_id") or "")
    message = _obj(_obj(command, "resolved").get("messages"), target)
    author = _obj(message, "author")
    channel = str(message.get("channel_id") or attrs.get("channel_id") or "")
    return Incoming(
        source_key=dedupe_key,
        **_reported(
            "discord",
            reporter=attrs.get("user_id"),
            reporter_name=attrs.get("username"),
            target_kind="message",
            target=author.get("id"),
            target_name=author.get("username"),
        ),
        target_message_id=_opt(target),
        target_channel_id=_opt(channel),
        target_link=_discord_link(attrs.get("guild_id", ""), channel, target),
        content=_text(message.get("content")),
        content_gone=not message,
    )


def incoming_from_attributes(attrs: dict[str, str], *, platform: str, dedupe_key: str) -> Incoming:
    """The report a plugin platform's command makes (pure), from the neutral ``report.*``
    attributes (``flows/README.md``, "Inbound events from a plugin platform"): the reporter is
    ``user_id``/``username``; the reported message ``report.target_message_id``,
    ``report.target_channel_id``, ``report.target_link``, its author ``report.target_account``
    and ``report.target_username``, its text ``report.content``; the words ``report.reason``."""
    return Incoming(
        source_key=dedupe_key,
        **_reported(
            platform,
            reporter=attrs.get("user_id"),
            reporter_name=attrs.get("username"),
            target_kind="message",
            target=attrs.get("report.target_account"),
            target_name=attrs.get("report.target_username"),
        ),
        target_message_id=_opt(attrs.get("report.target_message_id")),
        target_channel_id=_opt(attrs.get("report.target_channel_id")),
        target_link=_opt(attrs.get("report.target_link")),
        content=_opt(attrs.get("report.content")),
        reason=_opt(attrs.get("report.reason")),
    )


NEEDS_TARGET = "To report a message, reply to it with `!report <what is wrong>`; nothing was reported."


def handle_report_command(*, ledger: Any, event: InboxEvent, now: datetime | None = None) -> str:
    """Inbox handler of the message command: one report per interaction; the reporter is
    answered privately. A plugin platform's command (neutral ``report.*`` attributes) is
    answered by direct message. Returns ``taken:<id>``, ``duplicate:<id>``, ``refused``,
    ``too-long`` or ``refused:no-target``."""
    ctx = context(now, ledger=ledger)
    data, attrs, key = _event(ctx, event)
    if "report.reason" in attrs:
        return _neutral_report(ctx, event, attrs, key)
    taken = take_report(ctx, incoming_from_message_command(data, attrs, dedupe_key=key))
    _answer(ctx, event, attrs, taken.message)
    return f"{taken.status}:{taken.report_id}" if taken.report_id else taken.status


def _answer(ctx: Any, event: InboxEvent, attrs: dict[str, str], text: str) -> None:
    """The private answer to the interaction of ``event`` (once per event)."""
    answer_interaction(
        ctx,
        key=f"safety:answer:inbox:{event.id}",
        actor=ACTOR,
        about=f"inbox:{event.id}",
        attributes=attrs,
        text=text,
        platform=event.source,
    )


def _neutral_report(ctx: Any, event: InboxEvent, attrs: dict[str, str], key: str) -> str:
    _remove_command(ctx, event, attrs)
    if not attrs.get("report.target_message_id"):
        _tell_privately(ctx, event, attrs, NEEDS_TARGET)
        return "refused:no-target"
    taken = take_report(ctx, incoming_from_attributes(attrs, platform=event.source, dedupe_key=key))
    _tell_privately(ctx, event, attrs, taken.message)
    return f"{taken.status}:{taken.report_id}" if taken.report_id else taken.status


def _remove_command(ctx: Any, event: InboxEvent, attrs: dict[str, str]) -> None:
    """Delete the reporter's command from its room (``report.command_room``,
    ``report.command_message_id``) where the connector is a ``RoomWriter``, once: the room, the
    reported person included, must not see who reported (R-SAFE-1)."""
    space = ctx.platforms.space(event.source)
    writer = space.capable(RoomWriter) if space is not None else None
    room, message = attrs.get("report.command_room"), attrs.get("report.command_message_id")
    if writer is None or not room or not message:
        return
    try:
        once(
            ctx,
            key=f"safety:unsay:inbox:{event.id}",
            platform=event.source,
            actor=ACTOR,
            about=f"inbox:{event.id}",
            act=lambda: writer.room_delete(room=room, thread_id=None, message_id=message),
        )
    except Exception as exc:  # noqa: BLE001 - the report is taken anyway; the command stays visible
        log.warning("safety: report command not removed on %s (%s)", event.source, type(exc).__name__)


def _tell_privately(ctx: Any, event: InboxEvent, attrs: dict[str, str], text: str) -> None:
    """A direct message to the sender of a plugin platform's command, once per delivery (the
    platform has no private answer to a message)."""
    who = attrs.get("user_id")
    if who:
        _answer_once(
            ctx,
            event,
            lambda m, key: m.direct_message(recipients=[who], title="Your report", text=text, key=key),
            failed="reporter not answered",
        )


def _answer_once(ctx: Any, event: InboxEvent, say: Callable[[Messenger, str], object], *, failed: str) -> None:
    """Answer on the event's platform with ``say(messenger, key)``, once per delivery; a failure
    is logged (``failed``): the report or step is recorded, the answer is a courtesy."""
    space = ctx.platforms.space(event.source)
    messenger = space.messenger if space is not None else None
    if messenger is None:
        return
    key = f"safety:answer:inbox:{event.id}"
    try:
        once(
            ctx, key=key, platform=event.source, actor=ACTOR, about=f"inbox:{event.id}", act=lambda: say(messenger, key)
        )
    except Exception as exc:  # noqa: BLE001 - the report or step is recorded; the answer is a courtesy
        log.warning("safety: %s on %s (%s)", failed, event.source, type(exc).__name__)


def act_on_report(
    ctx: Any, verb: str, report_id: int, *, outcome: str | None, by: str, account: Account, is_moderator: bool
) -> tuple[str, str]:
    """One moderator's step on a report, from a button or a Forum reply: ``claim``, ``resolve``
    (with ``outcome``) or ``refer``, by ``account`` (``(platform, account id)``). Returns
    ``(result, answer)``; an unknown step or report is refused."""
    actor = actor_of(ctx, *account)  # R-PRIVACY-2: the audit log gets a person id, never the account
    try:
        if verb == "claim":
            return claim(ctx, report_id, by=by, actor=actor, is_moderator=is_moderator, account=account)
        if verb == "resolve" and outcome:
            return resolve(
                ctx, report_id, outcome=outcome, by=by, actor=actor, is_moderator=is_moderator, account=account
            )
        if verb == "refer":
            return refer(ctx, report_id, by=by, actor=actor, is_moderator=is_moderator, account=account)
    except NotFound as exc:
        return "refused:not-found", f"Nothing to do: {exc}."
    return "refused:unknown-command", (
        "Not understood: use claim, resolve <outcome> (no_action, warned, removed_content, sanctioned) or refer."
    )


def parse_button(custom_id: str) -> tuple[str, int, str | None] | None:
    """``cfs:<verb>:<id>[:<outcome>]`` as ``(verb, id, outcome)``, or None (pure)."""
    parts = custom_id.split(":")
    if len(parts) not in (3, 4) or parts[0] + ":" != BUTTON_PREFIX or not parts[2].isdigit():
        return None
    wants_outcome = parts[1] in ("resolve", "coc")
    if wants_outcome != (len(parts) == 4):
        return None
    return parts[1], int(parts[2]), parts[3] if wants_outcome else None


def handle_safety_button(*, ledger: Any, event: InboxEvent, now: datetime | None = None) -> str:
    """Inbox handler of the ``cfs:`` buttons. Returns ``claimed:<id>``,
    ``resolved:<id>:<outcome>``, ``referred:<id>``, ``coc-outcome:<id>`` or ``refused:<why>``;
    idempotent."""
    ctx = context(now, ledger=ledger)
    _, attrs, _ = _event(ctx, event)
    who = attrs.get("username") or attrs.get("user_id") or "unknown"
    parsed = parse_button(attrs.get("custom_id", ""))
    if parsed is None:
        result, text = "refused:unknown-button", "This button is not understood (unknown custom_id)."
    elif parsed[0] == "coc":
        result, text = coc_outcome_pressed(
            ctx, parsed[1], parsed[2] or "", platform=event.source, account=attrs.get("user_id", "")
        )
    else:
        moderator = is_moderator(ctx, event.source, role_ids=attrs.get("member_roles", "").split(","))
        result, text = act_on_report(
            ctx,
            parsed[0],
            parsed[1],
            outcome=parsed[2],
            by=who,
            account=(event.source, attrs.get("user_id", "")),
            is_moderator=moderator,
        )
    _answer(ctx, event, attrs, text)
    return result


def coc_outcome_pressed(ctx: Any, report_id: int, outcome: str, *, platform: str, account: str) -> tuple[str, str]:
    """The liaison's ``cfs:coc:<id>:<outcome>`` button (R-SAFE-2): the presser's account must be
    an identity of the CoC Liaison in the ledger; anyone else is refused and nothing changes."""
    if outcome not in COC_OUTCOMES:
        return "refused:unknown-outcome", f"Report #{report_id}: that outcome is not known."
    handle = _handle_of(ctx, platform, account)
    try:
        result, text = record_coc_outcome(ctx, report_id, by_handle=handle or "", outcome=COC_OUTCOMES[outcome])
    except NotFound as exc:
        return "refused:not-found", f"Nothing to do: {exc}."
    return (result if result != "refused" else "refused:not-the-liaison"), text


LINK_ROUTE = "safety-coc-link"


def handle_coc_link(*, ledger: Any, event: InboxEvent, now: datetime | None = None) -> str:
    """Inbox handler of the liaison's outcome page (``POST /coc-outcome/<token>``, R-SAFE-2): the
    token is checked again (signature, expiry at the time the page stored the event, the report,
    the liaison it was made for) and the event must be the link's one use (its dedupe key is the
    token's). Then the outcome is recorded (ledger + audit); the rooms are not touched. Returns
    ``coc-outcome:<id>`` or ``refused:<why>``; a handled event is not handled twice (the inbox)."""
    ctx = context(now, ledger=ledger)
    with ctx.ledger.read() as session:
        row = session.get(InboxEvent, event.id)
        data = dict((row.payload or {}).get("data") or {}) if row is not None else {}
        key, received = (row.dedupe_key, row.received_at) if row is not None else ("", ctx.now)
    token, outcome = str(data.get("token") or ""), str(data.get("outcome") or "")
    try:
        claims = links.read_link_token(token, secret=ctx.platforms.confirm_secret, now=received)
    except (PolicyViolation, ValueError) as exc:
        log.info("safety: a CoC outcome link was refused: %s", exc)
        return "refused:invalid-link"
    if key != links.dedupe_key(token):  # only the page's one event per token acts
        return "refused:not-the-links-use"
    if outcome not in COC_OUTCOMES:
        return "refused:unknown-outcome"
    with ctx.ledger.read() as session:
        person = links.liaison_of(session)
        handle = person.handle if person is not None and person.id == claims.person_id else None
    if handle is None:
        return "refused:not-the-liaison"
    try:
        result, _ = record_coc_outcome(ctx, claims.report_id, by_handle=handle, outcome=COC_OUTCOMES[outcome])
    except NotFound:
        return "refused:not-found"
    return result if result != "refused" else "refused:not-referred"


def _handle_of(ctx: Any, platform: str, account: str) -> str | None:
    if not account:
        return None
    with ctx.ledger.read() as session:
        try:
            identity = repo.find_identity(session, platform=platform, external_id=account)
        except ValueError:
            return None
        person = session.get(Person, identity.person_id) if identity is not None else None
        return person.handle if person is not None else None


FORM_ROUTE = "safety-form"  # gateway.routers.report.FORM_ROUTE


def incoming_from_form(data: dict[str, Any], attrs: dict[str, str], *, dedupe_key: str) -> Incoming:
    """The report the web form made (pure). The reporter's username is what they typed (not
    verified): it names them for the rate limit and the moderators, and is never messaged."""
    target = str(data.get("target") or "").strip()
    link = target if target.startswith(("http://", "https://")) else None
    platform = str(data.get("platform") or "other")
    reporter = str(data.get("reporter") or "").strip()
    return Incoming(
        source_key=dedupe_key,
        via="form",
        platform=platform,
        reporter_key=f"form:{platform}:{reporter.casefold()}" if reporter else f"ip:{attrs.get('ip_digest', '')}",
        reporter_username=f"{reporter} (unverified)" if reporter else None,
        target_kind=str(data.get("target_kind") or "person"),
        target_username=None if link else target.lstrip("@") or None,
        target_link=link,
        reason=str(data.get("reason") or "") or None,
        coc=bool(data.get("coc")),
    )


def handle_form_report(*, ledger: Any, event: InboxEvent, now: datetime | None = None) -> str:
    """Inbox handler of the web form's reports (route ``safety-form``)."""
    ctx = context(now, ledger=ledger)
    data, attrs, key = _event(ctx, event)
    taken = take_report(ctx, incoming_from_form(data, attrs, dedupe_key=key))
    return f"{taken.status}:{taken.report_id}" if taken.report_id else taken.status


FLAG_ROUTE = "safety-flag"


def _flag_message(score: dict[str, Any]) -> str | None:
    """What the flagger wrote ("Something Else"), the first post of the flag's conversation."""
    posts = _obj(score, "reviewable_conversation").get("conversation_posts")
    first = posts[0] if isinstance(posts, list) and posts else None
    return _text(first.get("excerpt")) if isinstance(first, dict) else None


def incoming_from_flag(reviewable: dict[str, Any], score: dict[str, Any], *, dedupe_key: str) -> Incoming:
    """The report one flag makes (pure): ``score``, one of the flagged post's review's
    ``reviewable_scores``, as Discourse's Reviewable webhooks carry it
    (``ReviewableFlaggedPostSerializer``: ``target_id``, ``topic_id``, ``target_url``, ``raw``,
    ``target_created_by``; a score's ``user`` and ``score_type``). A post deleted meanwhile
    (``blank_post``, ``target_deleted_at``, or no ``raw``) keeps what the payload still holds."""
    by, author, kind = _obj(score, "user"), _obj(reviewable, "target_created_by"), _obj(score, "score_type")
    message = _flag_message(score)
    return Incoming(
        source_key=dedupe_key,
        **_reported(
            "discourse",
            reporter=by.get("id"),
            reporter_name=by.get("username"),
            key=by.get("id") or by.get("username"),
            target_kind="post",
            target=author.get("id"),
            target_name=author.get("username"),
        ),
        target_message_id=_opt(reviewable.get("target_id")),
        target_channel_id=_opt(reviewable.get("topic_id")),
        target_link=_text(reviewable.get("target_url")),
        content=_text(reviewable.get("raw")),
        content_gone=bool(
            reviewable.get("blank_post") or reviewable.get("target_deleted_at") or not reviewable.get("raw")
        ),
        reason=f"Forum flag: {kind.get('type') or kind.get('title') or 'flag'}" + (f". {message}" if message else ""),
    )


def handle_forum_flag(*, ledger: Any, event: InboxEvent, now: datetime | None = None) -> str:
    """Inbox handler of a flagged post's review (route ``safety-flag``: ``reviewable_created``,
    ``reviewable_score_updated``; Discourse sends no flag webhook). Each flag is a score of the
    post's review and one report; a delivery carries every score so far, and a score already
    taken from an earlier delivery is a duplicate (its key: the review and the score).
    https://meta.discourse.org/t/configure-webhooks-that-trigger-on-discourse-events/49045"""
    ctx = context(now, ledger=ledger)
    data, _, key = _event(ctx, event)
    reviewable = _obj(data, "reviewable")
    site = key.rsplit(":", 1)[0]  # "discourse:<instance>" of the delivery's key
    scores = [s for s in reviewable.get("reviewable_scores") or [] if isinstance(s, dict) and s.get("id") is not None]
    results = []
    for score in sorted(scores, key=lambda s: (len(str(s["id"])), str(s["id"]))):  # oldest first
        incoming = incoming_from_flag(
            reviewable, score, dedupe_key=f"{site}:review:{reviewable.get('id')}:{score['id']}"
        )
        taken = take_report(ctx, incoming)
        results.append(f"{taken.status}:{taken.report_id}" if taken.report_id else taken.status)
    return " ".join(results) or "no-flag"


COMMAND_ROUTE = "safety-command"  # flows.inbox_routing routes a Forum reply starting with a command here
REPORT_TITLE = re.compile(r"^Report #(\d+)\b")


def parse_room_command(raw: str) -> tuple[str, str | None] | None:
    """A moderator's reply in a report's private message, as ``(verb, outcome)`` (pure): its
    first line ``claim``, ``resolve <outcome>`` or ``refer``, any case; else None."""
    words = [w.rstrip(",.:;!") for w in (raw.strip().splitlines() or [""])[0].casefold().split()]
    if not words or words[0] not in ("claim", "resolve", "refer"):
        return None
    if words[0] == "resolve":
        return ("resolve", words[1].replace("-", "_")) if len(words) > 1 else ("resolve", None)
    return words[0], None


def report_of_topic(title: str) -> int | None:
    """The report a room topic is about, from its title (``Report #<id>: ...``; pure)."""
    found = REPORT_TITLE.match(title.strip())
    return int(found.group(1)) if found else None


@dataclass(frozen=True)
class RoomCommand:
    """A moderator's command read from a Forum ``post_created`` payload."""

    verb: str
    outcome: str | None
    report_id: int
    topic: str
    account: str
    username: str


def _room_command(text: str, *, report_id: int | None, topic: str, account: str, username: str) -> RoomCommand | None:
    command = parse_room_command(text)
    if command is None or report_id is None or not topic:
        return None
    return RoomCommand(
        verb=command[0],
        outcome=command[1],
        report_id=report_id,
        topic=topic,
        account=account,
        username=username or account,
    )


def room_command(data: dict[str, Any]) -> RoomCommand | None:
    """The command a ``post_created`` payload carries, or None (pure)."""
    post = _obj(data, "post")
    return _room_command(
        str(post.get("raw") or ""),
        report_id=report_of_topic(str(post.get("topic_title") or "")),
        topic=str(post.get("topic_id") or ""),
        account=str(post.get("user_id") or ""),
        username=str(post.get("username") or ""),
    )


def room_command_of_attributes(attrs: dict[str, str], report_id: int | None) -> RoomCommand | None:
    """The command a plugin platform's thread reply carries (neutral ``command.text``,
    ``command.thread_id``, ``user_id``, ``username``), or None (pure)."""
    return _room_command(
        attrs.get("command.text", ""),
        report_id=report_id,
        topic=attrs.get("command.thread_id", ""),
        account=attrs.get("user_id", ""),
        username=attrs.get("username", ""),
    )


# How many of the newest reports a plugin platform's thread reply is matched against (its
# thread names no report: the report is the one whose room post roots that thread).
THREAD_LOOKBACK = 500


def _report_of_thread(ctx: Any, platform: str, thread_id: str) -> int | None:
    if not thread_id:
        return None
    with ctx.ledger.read() as session:
        ids = sorted((r.id for r in queue_ledger.queue(session)), reverse=True)[:THREAD_LOOKBACK]
    for report_id in ids:
        shown = (done(ctx, f"safety:room:{report_id}:{platform}") or {}).get("ref") or {}
        if str(shown.get("thread_id") or "") == thread_id:
            return report_id
    return None


def handle_room_command(*, ledger: Any, event: InboxEvent, now: datetime | None = None) -> str:
    """Inbox handler of a moderator's reply in a report's Forum private message (``post_created``,
    verified by the gateway like every Forum webhook): ``claim``, ``resolve <outcome>`` or
    ``refer`` go to the same queue steps as Discord's buttons. Only a moderator or admin of the
    Forum (its staff list, through ``Directory``) may act; the reply in the topic says what
    happened, once per delivery. A reply in any other topic is ignored."""
    ctx = context(now, ledger=ledger)
    data, attrs, _ = _event(ctx, event)
    if "command.thread_id" in attrs:  # a plugin platform's thread reply (neutral attributes)
        thread = attrs["command.thread_id"]
        command = room_command_of_attributes(attrs, _report_of_thread(ctx, event.source, thread))
        if command is None:
            return "ignored:not-a-report-topic"
    else:
        command = room_command(data)
    if command is None:
        return "ignored:not-a-command"
    shown = (done(ctx, f"safety:room:{command.report_id}:{event.source}") or {}).get("ref") or {}
    if str(shown.get("thread_id") or "") != command.topic:  # a topic we did not open for this report
        return "ignored:not-a-report-topic"
    moderator = is_moderator(ctx, event.source, account=command.account)
    result, text = act_on_report(
        ctx,
        command.verb,
        command.report_id,
        outcome=command.outcome,
        by=command.username,
        account=(event.source, command.account),
        is_moderator=moderator,
    )
    _answer_in_topic(ctx, event, command.topic, text)
    return result


def _answer_in_topic(ctx: Any, event: InboxEvent, topic: str, text: str) -> None:
    _answer_once(
        ctx,
        event,
        lambda m, key: m.reply(thread_id=topic, text=text, key=key),
        failed=f"no answer in topic {topic}",
    )
