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
from datetime import datetime
from typing import Any

from flows.kit import answer_interaction, context
from flows.safety.common import ACTOR, BUTTON_PREFIX, MESSAGE_COMMAND
from flows.safety.queue import Incoming, claim, refer, resolve, take_report
from ledger.errors import NotFound
from ledger.models import InboxEvent

log = logging.getLogger("charterflow.safety")
ROUTE = "safety-report"
BUTTON_ROUTE = "safety-button"
DISCORD_MESSAGE_URL = "https://discord.com/channels/{guild}/{channel}/{message}"


def register() -> None:
    """Register this package's routes with ``flows.inbox.register_route``."""
    from flows import inbox

    inbox.register_route(ROUTE, handle_report_command, discord_command=MESSAGE_COMMAND,
                         condition='the message command "Report to moderators" (R-SAFE-1)')
    inbox.register_route(BUTTON_ROUTE, handle_safety_button, discord_component_prefix=BUTTON_PREFIX,
                         condition="a report's Claim / Resolve / Refer button (custom_id cfs:…)")
    inbox.register_route(FORM_ROUTE, handle_form_report)
    inbox.register_route(FLAG_ROUTE, handle_forum_flag)


def _event(ctx: Any, event: InboxEvent) -> tuple[dict[str, Any], dict[str, str], str]:
    with ctx.ledger.read() as session:
        row = session.get(InboxEvent, event.id)
        payload = dict(row.payload or {})
        key = row.dedupe_key
    attrs = {str(k): str(v) for k, v in (payload.get("attributes") or {}).items()}
    return dict(payload.get("data") or {}), attrs, key


def incoming_from_message_command(data: dict[str, Any], attrs: dict[str, str], *, dedupe_key: str) -> Incoming:
    """The report a "Report to moderators" interaction makes (pure: the interaction's own data).
    https://discord.com/developers/docs/interactions/application-commands#message-commands"""
    command = data.get("data") if isinstance(data.get("data"), dict) else {}
    target = str(command.get("target_id") or "")
    resolved = command.get("resolved") if isinstance(command.get("resolved"), dict) else {}
    messages = resolved.get("messages") if isinstance(resolved.get("messages"), dict) else {}
    message = messages.get(target) if isinstance(messages.get(target), dict) else {}
    author = message.get("author") if isinstance(message.get("author"), dict) else {}
    channel = str(message.get("channel_id") or attrs.get("channel_id") or "")
    guild = attrs.get("guild_id", "")
    content = message.get("content") if isinstance(message.get("content"), str) else None
    return Incoming(
        source_key=dedupe_key, via="discord", platform="discord",
        reporter_key=f"discord:{attrs.get('user_id') or 'unknown'}",
        reporter_account=attrs.get("user_id") or None, reporter_username=attrs.get("username") or None,
        target_kind="message", target_account=str(author.get("id") or "") or None,
        target_username=str(author.get("username") or "") or None, target_message_id=target or None,
        target_channel_id=channel or None,
        target_link=DISCORD_MESSAGE_URL.format(guild=guild, channel=channel, message=target)
        if guild and channel and target else None,
        content=content or None, content_gone=not message)


def handle_report_command(*, ledger: Any, event: InboxEvent, now: datetime | None = None) -> str:
    """Inbox handler of the message command: one report per interaction; the reporter is
    answered privately. Returns ``taken:<id>``, ``duplicate:<id>``, ``refused`` or ``too-long``."""
    ctx = context(now, ledger=ledger)
    data, attrs, key = _event(ctx, event)
    taken = take_report(ctx, incoming_from_message_command(data, attrs, dedupe_key=key))
    answer_interaction(ctx, key=f"safety:answer:inbox:{event.id}", actor=ACTOR, about=f"inbox:{event.id}",
                       attributes=attrs, text=taken.message, platform=event.source)
    return f"{taken.status}:{taken.report_id}" if taken.report_id else taken.status


def handle_safety_button(*, ledger: Any, event: InboxEvent, now: datetime | None = None) -> str:
    """Inbox handler of the ``cfs:`` buttons. Returns ``claimed:<id>``,
    ``resolved:<id>:<outcome>``, ``referred:<id>`` or ``refused:<why>``; idempotent."""
    from flows.moderation.handlers import _is_moderator

    ctx = context(now, ledger=ledger)
    _, attrs, _ = _event(ctx, event)
    who = attrs.get("username") or attrs.get("user_id") or "unknown"
    actor = f"{event.source}:{attrs.get('user_id') or 'unknown'}"
    parts = attrs.get("custom_id", "").split(":")

    def answer(text: str) -> None:
        answer_interaction(ctx, key=f"safety:answer:inbox:{event.id}", actor=ACTOR, about=f"inbox:{event.id}",
                           attributes=attrs, text=text, platform=event.source)

    moderator = _is_moderator(ctx, event.source, attrs)
    result, text = "refused:unknown-button", "This button is not understood (unknown custom_id)."
    try:
        if len(parts) >= 3 and parts[2].isdigit():
            report_id = int(parts[2])
            if parts[1] == "claim" and len(parts) == 3:
                result, text = claim(ctx, report_id, by=who, actor=actor, is_moderator=moderator)
            elif parts[1] == "resolve" and len(parts) == 4:
                result, text = resolve(ctx, report_id, outcome=parts[3], by=who, actor=actor, is_moderator=moderator)
            elif parts[1] == "refer" and len(parts) == 3:
                result, text = refer(ctx, report_id, by=who, actor=actor, is_moderator=moderator)
    except NotFound as exc:
        result, text = "refused:not-found", f"Nothing to do: {exc}."
    answer(text)
    return result


FORM_ROUTE = "safety-form"  # gateway.routers.report.FORM_ROUTE


def incoming_from_form(data: dict[str, Any], attrs: dict[str, str], *, dedupe_key: str) -> Incoming:
    """The report the web form made (pure). The reporter's username is what they typed (not
    verified): it names them for the rate limit and the moderators, and is never messaged."""
    target = str(data.get("target") or "").strip()
    link = target if target.startswith(("http://", "https://")) else None
    platform = str(data.get("platform") or "other")
    reporter = str(data.get("reporter") or "").strip()
    return Incoming(
        source_key=dedupe_key, via="form", platform=platform,
        reporter_key=f"form:{platform}:{reporter.casefold()}" if reporter else f"ip:{attrs.get('ip_digest', '')}",
        reporter_username=f"{reporter} (unverified)" if reporter else None,
        target_kind=str(data.get("target_kind") or "person"),
        target_username=None if link else target.lstrip("@") or None, target_link=link,
        reason=str(data.get("reason") or "") or None, coc=bool(data.get("coc")))


def handle_form_report(*, ledger: Any, event: InboxEvent, now: datetime | None = None) -> str:
    """Inbox handler of the web form's reports (route ``safety-form``)."""
    ctx = context(now, ledger=ledger)
    data, attrs, key = _event(ctx, event)
    taken = take_report(ctx, incoming_from_form(data, attrs, dedupe_key=key))
    return f"{taken.status}:{taken.report_id}" if taken.report_id else taken.status


FLAG_ROUTE = "safety-flag"


def incoming_from_flag(data: dict[str, Any], *, dedupe_key: str, topic_url: str | None = None) -> Incoming:
    """The report a Forum flag makes (pure), from the ``flag_created`` webhook's payload
    (``{"flag": {id, post, flag_type, created_by, created_at, ...}}``, Discourse's
    ``WebHookFlagSerializer``). A post deleted meanwhile (no post, or ``deleted_at`` set) keeps
    what the payload still holds. https://meta.discourse.org/t/configure-webhooks-that-trigger-on-discourse-events/49045"""
    flag = data.get("flag") if isinstance(data.get("flag"), dict) else {}
    post = flag.get("post") if isinstance(flag.get("post"), dict) else {}
    by = flag.get("created_by") if isinstance(flag.get("created_by"), dict) else {}
    raw = post.get("raw") if isinstance(post.get("raw"), str) else None
    gone = not post or bool(post.get("deleted_at")) or bool(post.get("user_deleted"))
    number = post.get("post_number")
    link = f"{topic_url}/{number}" if topic_url and number else topic_url
    flag_type = str(flag.get("flag_type") or "flag")
    message = flag.get("message") if isinstance(flag.get("message"), str) else ""
    return Incoming(
        source_key=dedupe_key, via="discourse", platform="discourse",
        reporter_key=f"discourse:{by.get('id') or by.get('username') or 'unknown'}",
        reporter_account=str(by["id"]) if by.get("id") is not None else None,
        reporter_username=str(by.get("username") or "") or None,
        target_kind="post", target_account=str(post["user_id"]) if post.get("user_id") is not None else None,
        target_username=str(post.get("username") or "") or None,
        target_message_id=str(post["id"]) if post.get("id") is not None else None,
        target_channel_id=str(post["topic_id"]) if post.get("topic_id") is not None else None,
        target_link=link, content=raw or None, content_gone=gone,
        reason=f"Forum flag: {flag_type}" + (f". {message}" if message else ""))


def handle_forum_flag(*, ledger: Any, event: InboxEvent, now: datetime | None = None) -> str:
    """Inbox handler of a Forum flag (route ``safety-flag``): one report per delivery."""
    from connectors.base import Links

    ctx = context(now, ledger=ledger)
    data, _, key = _event(ctx, event)
    flag = data.get("flag") if isinstance(data.get("flag"), dict) else {}
    post = flag.get("post") if isinstance(flag.get("post"), dict) else {}
    space = ctx.platforms.space(event.source)
    links = space.capable(Links) if space is not None else None
    topic_url = links.thread_url(str(post["topic_id"]), slug=str(post.get("topic_slug") or "")) \
        if links is not None and post.get("topic_id") is not None else None
    taken = take_report(ctx, incoming_from_flag(data, dedupe_key=key, topic_url=topic_url))
    return f"{taken.status}:{taken.report_id}" if taken.report_id else taken.status
