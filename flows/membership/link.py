"""A member links an account on another served platform to their membership (issue 20: a
member links their Matrix account once Matrix is trialled).

Two steps, each an inbox event of route ``link`` from the new account (any platform whose
verifier gives the neutral attributes ``user_id``, ``username``, ``reply_to``, see
flows/README.md, "Inbound events from a plugin platform"):

1. ``link.platform`` + ``link.username`` (Matrix: ``!link discord cleo_marsh``) name an account
   the ledger already knows as an active member's. A one-time code is sent there by direct
   message (so only the owner of that account learns it), and the request is recorded.
2. ``link.code`` (Matrix: ``!link 4f1c9a2e07``) sent from the same new account within
   :data:`CODE_TTL` adds the account as the member's identity (audited), and records that the WG
   wants it in the WG's group there, so the roles plan grants it.

The new account is proven by its platform (the homeserver signs what it pushes); the known one
by receiving the code. A wrong code, an expired request, an account already someone else's, a
person who is not an active member: refused with the reason, told in the thread, nothing added.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta
from typing import Any

from pydantic import SecretStr

from connectors.errors import CharterflowError
from flows.kit import Ctx, context, done, log, once, record
from flows.membership.handlers import _event
from flows.platforms import Platforms
from ledger import repo
from ledger.db import Ledger
from ledger.errors import Conflict
from ledger.models import MembershipStatus, Person
from rules.applications import LinkCode, LinkRequest, check_link_code, check_link_request
from rules.decision import CodedDecision
from rules.platforms import check_served

__all__ = ["CODE_TTL", "handle_link", "link_code"]

ACTOR = "flow:link"
CODE_TTL = timedelta(hours=24)


def link_code(secret: SecretStr, *, person_id: int, platform: str, external_id: str, issued: datetime) -> str:
    """The code for linking ``external_id`` on ``platform`` to ``person_id``, issued at ``issued``
    (pure: HMAC under the confirmation secret, so nothing secret is stored)."""
    key = secret.get_secret_value()
    message = f"link|{person_id}|{platform}|{external_id}|{issued.isoformat()}".encode()
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()[:10]


def _window(at: datetime) -> datetime:
    """The start of the code window ``at`` falls in (codes are made per window, so nothing
    needs deleting: a request in the next window makes a new code)."""
    seconds = CODE_TTL.total_seconds()
    return datetime.fromtimestamp(at.timestamp() // seconds * seconds, tz=at.tzinfo)


# What the person is told of each refusal (``rules.applications`` decides which).
_START = {
    "bad-request": "To link this account, name your account on a platform you are known by: "
    "!link <platform> <username> ({served}).",
    "already-linked": "This account is already linked to a member of the working group.",
    "not-a-member": "No active working group member is known as {named} on {platform}.",
    "pending": "A link request for this account is waiting for its code; try again tomorrow.",
}
_FINISH = {
    "no-request": "There is no open link request for this account (or it expired): "
    "send !link <platform> <username> first.",
    "wrong-code": "That code is not the one we sent.",
    "not-a-member": "This membership is no longer active.",
    "already-linked": "This account is already linked to another person.",
}


def _refused(decision: CodedDecision, texts: dict[str, str], **values: str) -> tuple[str, str]:
    """The result reference and the text of a refusal the rules returned."""
    return f"refused:{decision.ruling}:{decision.code}", texts[decision.code].format(**values)


def _pending_key(platform: str, instance: str, external_id: str, issued: datetime) -> str:
    return f"link:pending:{platform}:{instance or '-'}:{external_id}:{issued:%Y%m%d%H%M}"


def _tell(ctx: Ctx, *, source: str, attrs: dict[str, str], event_id: int, text: str) -> None:
    """Answer in the thread the event came from (``reply_to``), once per event."""
    space = ctx.platforms.space(source)
    thread = attrs.get("reply_to", "")
    if space is None or space.messenger is None or not thread:
        return
    messenger = space.messenger
    try:
        once(
            ctx,
            key=f"link:told:inbox:{event_id}",
            platform=source,
            actor=ACTOR,
            about=f"inbox:{event_id}",
            act=lambda: messenger.reply(thread_id=thread, text=text, key=f"link-told-{event_id}"),
        )
    except CharterflowError as exc:  # the answer is a courtesy; the decision is recorded
        log.warning("link: inbox:%s not answered on %s (%s)", event_id, source, type(exc).__name__)


def handle_link(*, event_id: int, ledger: Ledger, platforms: Platforms, now: datetime) -> str:
    """Route ``link``: start (``link.platform``/``link.username``) or finish (``link.code``)."""
    ctx = context(now, ledger=ledger, platforms=platforms)
    source, _kind, _data, attrs, _actor = _event(ctx, event_id)
    external_id, username = attrs.get("user_id", ""), attrs.get("username", "")
    served = check_served(served=ctx.platforms.space(source) is not None, sender_known=bool(external_id))
    if not served.allowed:
        return f"refused:{served.ruling}:{served.code}"
    instance = ctx.platforms.instance_of(source, attrs.get("instance"))
    code = attrs.get("link.code", "").strip().lower()
    if code:
        result, text = _finish(
            ctx, source=source, instance=instance, external_id=external_id, username=username, code=code
        )
    else:
        result, text = _start(
            ctx,
            source=source,
            instance=instance,
            external_id=external_id,
            platform=attrs.get("link.platform", ""),
            named=attrs.get("link.username", ""),
        )
    _tell(ctx, source=source, attrs=attrs, event_id=event_id, text=text)
    return result


def _start(ctx: Ctx, *, source: str, instance: str, external_id: str, platform: str, named: str) -> tuple[str, str]:
    known = ctx.platforms.space(platform) if platform != source else None
    served = ", ".join(p for p in ctx.platforms.names() if p != source)
    if known is None or known.messenger is None or not named:
        return _refused(check_link_request(LinkRequest(named_served=False)), _START, served=served)
    messenger = known.messenger
    with ctx.ledger.read() as session:
        owner = repo.find_person_by_identity(session, platform=source, external_id=external_id)
        person = repo.find_person_by_identity(session, platform=platform, username=named)
        membership = repo.open_membership(session, person) if person is not None else None
        active = membership is not None and membership.status == MembershipStatus.ACTIVE
        person_id = person.id if person is not None else None
    issued = _window(ctx.now)
    key = _pending_key(source, instance, external_id, issued)
    pending = done(ctx, key)
    decision = check_link_request(
        LinkRequest(
            named_served=True,
            already_linked=owner is not None,
            member=person_id is not None and active,
            pending_other=pending is not None and pending["ref"].get("person") != person_id,
        )
    )
    if not decision.allowed or person_id is None:
        return _refused(decision, _START, named=named, platform=platform, served=served)
    if pending is None:
        # Recorded before the code is sent: a retry sends the same code, never a second one.
        ref = {"person": person_id, "issued": issued.isoformat(), "via": platform}
        record(ctx, key=key, actor=ACTOR, ref=ref, about=f"person:{person_id}")
    code = link_code(
        ctx.platforms.confirm_secret, person_id=person_id, platform=source, external_id=external_id, issued=issued
    )
    once(
        ctx,
        key=f"link:code:{source}:{external_id}:{issued.isoformat()}",
        platform=platform,
        actor=ACTOR,
        about=f"person:{person_id}",
        act=lambda: messenger.direct_message(
            recipients=[named],
            title=f"Link your {source} account",
            text=(
                f"Someone asked to link the {source} account {external_id} to your working group "
                f"membership. If it is you, send `!link {code}` from that account within "
                f"{int(CODE_TTL.total_seconds() // 3600)} hours. If not, ignore this message."
            ),
            key=f"link-code-{source}-{person_id}-{issued:%Y%m%d%H%M%S}",
        ),
    )
    return (
        f"link:pending:person:{person_id}",
        f"A code was sent to {named} on {platform}: send `!link <code>` here to finish.",
    )


def _code_owner(
    ctx: Ctx, found: list[tuple[datetime, dict[str, Any]]], *, source: str, external_id: str, code: str
) -> int | None:
    """The person whose open request ``code`` answers (compared in constant time), if any."""
    for issued, pending in found:
        person_id = int(pending["ref"]["person"])
        expected = link_code(
            ctx.platforms.confirm_secret, person_id=person_id, platform=source, external_id=external_id, issued=issued
        )
        if hmac.compare_digest(code, expected):
            return person_id
    return None


def _finish(ctx: Ctx, *, source: str, instance: str, external_id: str, username: str, code: str) -> tuple[str, str]:
    # A code is good in its window and the next one: between one and two windows long.
    read = [
        (w, done(ctx, _pending_key(source, instance, external_id, w)))
        for w in (_window(ctx.now), _window(ctx.now) - CODE_TTL)
    ]
    found = [(w, p) for w, p in read if p is not None]
    person_id = _code_owner(ctx, found, source=source, external_id=external_id, code=code)
    active = False
    if person_id is not None:
        with ctx.ledger.read() as session:
            membership = repo.open_membership(session, session.get_one(Person, person_id))
            active = membership is not None and membership.status == MembershipStatus.ACTIVE
    decision = check_link_code(LinkCode(request_found=bool(found), code_matches=person_id is not None, member=active))
    if not decision.allowed or person_id is None:
        return _refused(decision, _FINISH)
    space = ctx.platforms.space(source)
    try:
        with ctx.ledger.transaction() as session:
            person = session.get_one(Person, person_id)
            repo.add_identity(
                session,
                person,
                platform=source,
                actor=ACTOR,
                external_id=external_id,
                username=username or None,
                verified_at=ctx.now,
                at=ctx.now,
            )
            if space is not None:
                # The WG's group there comes with membership, as on the other platforms.
                repo.set_desired_platform_role(
                    session,
                    person,
                    platform=source,
                    role=f"group:{space.wg_role.name}",
                    desired=True,
                    actor=ACTOR,
                    decision_ref=f"link:{source}:{external_id}",
                    at=ctx.now,
                )
    except Conflict:
        taken = LinkCode(request_found=True, code_matches=True, member=True, already_linked=True)
        return _refused(check_link_code(taken), _FINISH)
    return f"identity:person:{person_id}:{source}", "Linked: this account is now part of your membership."
