"""The flow toolkit every capability package shares (``flows.kit``): the context, the clock,
side effects done once, messages rendered from templates, and decision artifacts.

**Side effects once.** :func:`once` looks the effect's key up in the ledger (``effect_get``);
when it is recorded nothing is sent; otherwise it acts (the connector call carries the same key,
so a retry inside the platform's own window finds the first message) and records the key
(``effect_record``, an audit entry). A crash between the send and the record is repaired by
the next run: the connector finds its first message by key (Discourse ``external_id``,
Discord ``nonce``) and the record is written then. Two runs reaching the same effect at once
(two deciding votes handled side by side) do not both send it: before acting, ``once`` claims
the key in the ledger (``effect_claim``, a lease of :data:`CLAIM_LEASE`); the other run waits
for the record and returns it. A holder killed mid-act is taken over at once when it was a
process of this host, else when its lease ends.

**Decisions before announcements.** Callers write the decision in a ledger transaction first and
only then call :func:`once` to announce it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from connectors.base import Directory, InteractionResponder, MessageRef, Role, RoleResolver, UserRef
from connectors.errors import AnswerElsewhere, FatalError, RetriableError
from flows.platforms import Platforms, PlatformSpace, current_ledger, current_platforms
from flows.presentation import templates as _env
from flows.privacy import publish_artifact
from ledger import platforms as ledger_platforms
from ledger import repo
from ledger.db import Ledger
from ledger.errors import Conflict
from ledger.models import Identity, Person, Platform
from rules import Charter, Decision
from rules.platforms import admin_platforms

log = logging.getLogger("charterflow.membership")


def resolve_now(now: datetime | None) -> datetime:
    """``now`` as an aware UTC datetime; ``None`` = the real clock."""
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(UTC)


@dataclass(frozen=True, kw_only=True)
class Ctx:
    """One flow run's ledger, platforms and clock."""

    ledger: Ledger
    platforms: Platforms
    now: datetime

    @property
    def charter(self) -> Charter:
        """The charter in force: the charter file's, its approved platforms read from the
        ledger (R-PLATFORM: :func:`charter_in_force`), once per context."""
        cached = self.__dict__.get("_charter")
        if cached is None or cached[0] is not self.platforms.charter:
            cached = (
                self.platforms.charter,
                charter_in_force(self.platforms.charter, ledger=self.ledger, now=self.now),
            )
            object.__setattr__(self, "_charter", cached)
        return cached[1]


def charter_in_force(charter: Charter, *, ledger: Ledger, now: datetime) -> Charter:
    """``charter`` with its platforms replaced by those R-ADMIN-1/2 judge at ``now``: the
    ledger's approved platforms and the trial platforms with an admin granted (R-PLATFORM;
    ``flows.platforms_state`` changes that list)."""
    with ledger.read() as session:
        states = ledger_platforms.states(session, charter_platforms=charter.platforms)
    names = list(admin_platforms(states, at=now))
    if names == list(charter.platforms):
        return charter
    return charter.model_copy(update={"charter": charter.charter.model_copy(update={"platforms": names})})


def context(now: datetime | None, *, ledger: Ledger | None = None, platforms: Platforms | None = None) -> Ctx:
    """The context of a run: given objects, else the process's (``flows.platforms.use``)."""
    return Ctx(ledger=ledger or current_ledger(), platforms=platforms or current_platforms(), now=resolve_now(now))


def render(name: str, **values: Any) -> tuple[str, str]:
    """Render ``templates/membership/<name>.md.j2``: its first line is the title, the rest the
    body."""
    text = _env.get_template(f"membership/{name}.md.j2").render(**values).strip()
    title, _, body = text.partition("\n")
    return title.strip(), body.strip()


# --------------------------------------------------------------------------------------------
# Side effects once


@dataclass(frozen=True)
class Recorded:
    """What an ``act`` of :func:`once` returns when it recorded ``key`` itself (in one
    transaction with another record): ``once`` then writes nothing more."""

    record: dict[str, Any]


def done(ctx: Ctx, key: str) -> dict[str, Any] | None:
    """The record of side effect ``key``, if it happened."""
    with ctx.ledger.read() as session:
        return repo.effect_get(session, key=key)


# `act` is called with no arguments (with ``peek``: the peeked record); `...` because callers
# bind loop values as lambda defaults, which mypy cannot match to `Callable[[], Any]`.
def once(
    ctx: Ctx,
    *,
    key: str,
    platform: str,
    actor: str,
    about: str | None,
    act: Callable[..., Any],
    peek: str | None = None,
) -> dict[str, Any]:
    """Do ``act`` unless ``key`` is recorded, then record it. ``act`` returns a ``MessageRef``,
    a mapping of platform ids, or None. A caller that finds the key claimed by a run doing it
    right now waits for that run's record instead of acting too. ``peek``: another effect's
    key whose record (or None) ``act`` is given, read in the claim's transaction."""
    # No separate look for the record first: the claim looks for it in its own transaction (a
    # transaction fewer per effect, issue 19 point 7); so does the peek.
    holder = f"{_HOST}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
    found, peeked = _claim(ctx, key=key, holder=holder, peek=peek)
    if found is not None:
        return found
    try:
        result = act() if peek is None else act(peeked)
    except BaseException:
        _unclaim(ctx, key=key, holder=holder)
        raise
    if isinstance(result, Recorded):
        return result.record
    if isinstance(result, MessageRef):
        ref: Mapping[str, Any] = {"id": result.id, "thread_id": result.thread_id}
    elif isinstance(result, Mapping):
        ref = result
    else:
        ref = {}
    with ctx.ledger.transaction() as session:
        return repo.effect_record(session, key=key, platform=platform, actor=actor, ref=ref, about=about, at=ctx.now)


# How long a claim holds without its effect being recorded: longer than any one platform call
# with its retries; after it a crashed holder's claim is taken over.
CLAIM_LEASE = timedelta(seconds=120)
_HOST = socket.gethostname()


def _claim(
    ctx: Ctx, *, key: str, holder: str, peek: str | None = None
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Claim ``key`` (None: the caller acts now) or, while another run holds it, wait for its
    record and return that; with the record of ``peek`` when claimed. The lease is on the real
    clock (``ctx.now`` may be a test's)."""
    take_from, pause = None, 0.02
    while True:
        at = datetime.now(UTC)
        # Row locks suffice (repo.effect_claim): one write transaction fewer that waits for
        # the writers' lock, in every effect.
        with ctx.ledger.transaction(lock=False) as session:
            state, value = repo.effect_claim(
                session, key=key, holder=holder, until=at + CLAIM_LEASE, at=at, take_from=take_from
            )
            peeked = repo.effect_get(session, key=peek) if state == "claimed" and peek else None
        if state == "done":
            return value, None
        if state == "claimed":
            return None, peeked
        take_from = value if _holder_gone(value) else None
        if take_from is None:
            time.sleep(pause)
            pause = min(pause * 2, 0.5)


def _holder_gone(holder: str) -> bool:
    """True when ``holder`` was a process of this host that no longer runs (killed between
    claiming and recording): its claim need not wait for the lease."""
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    return host == _HOST and pid.isdigit() and process_gone(int(pid))


def process_gone(pid: int) -> bool:
    """True when no process of this host has id ``pid`` (it was killed); this process and
    another user's count as running."""
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


def _unclaim(ctx: Ctx, *, key: str, holder: str) -> None:
    """Give a claim up after ``act`` failed, so a retry need not wait for the lease."""
    try:
        with ctx.ledger.transaction() as session:
            repo.effect_unclaim(session, key=key, holder=holder)
    except Exception as exc:  # noqa: BLE001 - the act's own error is the one to raise
        log.warning("claim of an effect not given up (%s); it expires", type(exc).__name__)


# --------------------------------------------------------------------------------------------
# People on platforms


def identities_of(ctx: Ctx, person_id: int, *, ids: Iterable[int] | None = None) -> list[Identity]:
    """The person's community-platform identities (optionally only ``ids``): every platform's
    but the Board's Slack and e-mail, which are not community platforms."""
    wanted = set(ids) if ids is not None else None
    with ctx.ledger.read() as session:
        rows = list(
            session.scalars(
                select(Identity)
                .where(Identity.person_id == person_id, Identity.platform.not_in([Platform.SLACK, Platform.EMAIL]))
                .order_by(Identity.id)
            )
        )
    return [r for r in rows if wanted is None or r.id in wanted]


def user_ref(identity: Identity) -> UserRef:
    """The platform account of an identity (its external id is needed to act on it)."""
    return UserRef(
        platform=str(identity.platform.value), id=str(identity.external_id or ""), username=str(identity.username or "")
    )


def is_moderator(ctx: Ctx, platform: str, *, account: str | None = None, role_ids: Iterable[str] | None = None) -> bool:
    """Whether someone is a moderator or admin on ``platform``. An event that lists the actor's
    role ids (a Discord press's ``member_roles``) is decided by those, through the connector's
    ``RoleResolver``; otherwise by its staff list (``Directory.list_staff``) holding ``account``
    (the platform's user id)."""
    space = ctx.platforms.space(platform)
    if space is None:
        return False
    if role_ids is not None:
        return _holds_staff_role(space.capable(RoleResolver), {r for r in role_ids if r})
    directory = space.capable(Directory)
    return bool(directory is not None and account and any(user.id == str(account) for user in directory.list_staff()))


def _holds_staff_role(resolver: RoleResolver | None, held: set[str]) -> bool:
    if resolver is None:
        return False
    for role in (Role.moderator(), Role.admin()):
        try:
            if resolver.role_id(role) in held:
                return True
        except Exception:  # noqa: BLE001 - a role the server does not have grants nothing
            continue
    return False


def person_handle(ctx: Ctx, person_id: int) -> str:
    """The WG handle of a person (used in messages to the WG, never in the audit log)."""
    with ctx.ledger.read() as session:
        person = session.get(Person, person_id)
        return person.handle if person else f"person-{person_id}"


def direct_message_once(
    ctx: Ctx, space: PlatformSpace, to: UserRef | str, *, key: str, actor: str, about: str | None, title: str, text: str
) -> None:
    """A direct message to ``to`` on ``space`` (``PlatformSpace.direct_message``: an account by its
    id where the platform lets names change), once per ``key`` there."""
    if space.messenger is None:
        raise LookupError(f"{space.platform}: no Messenger to reach {to!r}")
    once(
        ctx,
        key=f"{key}:{space.platform}",
        platform=space.platform,
        actor=actor,
        about=about,
        act=lambda: space.direct_message(to, title=title, text=text, key=f"{key}:{space.platform}"),
    )


def prompt_once(
    ctx: Ctx,
    space: PlatformSpace,
    identity: Identity,
    message: tuple[str, str],
    button: tuple[str, str],
    *,
    key: str,
    actor: str,
    about: str,
) -> None:
    """A private message (``message``: title, text) asking ``identity`` to act
    (``PlatformSpace.prompt``: a ``button`` (label, custom_id) where the platform has them),
    once per ``key``."""
    (title, text), (label, custom_id) = message, button
    once(
        ctx,
        key=key,
        platform=space.platform,
        actor=actor,
        about=about,
        act=lambda: space.prompt(
            user=user_ref(identity), title=title, text=text, button_label=label, custom_id=custom_id, key=key
        ),
    )


def record(ctx: Ctx, *, key: str, actor: str, ref: dict[str, Any] | None, about: str | None) -> None:
    """Record under ``key`` an effect that is the ledger's alone (a result, a request), at ``ctx.now``."""
    with ctx.ledger.transaction() as session:
        repo.effect_record(session, key=key, platform="ledger", actor=actor, ref=ref, about=about, at=ctx.now)


def message_person(
    ctx: Ctx,
    person_id: int,
    *,
    template: str,
    key: str,
    actor: str,
    about: str | None,
    identity_ids: Iterable[int] | None = None,
    email: bool = False,
    **values: Any,
) -> list[str]:
    """Send a private message to the person on each of their served platforms, once per key
    and platform; with ``email``, also to the e-mail address they gave (an application's
    outcome, R-APP-4). Returns the platforms reached. One failing does not stop the others."""
    reached = []
    if email and email_person(ctx, person_id, template=template, key=key, actor=actor, about=about, **values):
        reached.append("email")
    for identity in identities_of(ctx, person_id, ids=identity_ids):
        space = ctx.platforms.space(identity.platform.value)
        if space is None or space.messenger is None or not identity.username:
            continue
        try:
            # Greeted and reached under the name the account has now (a member may have renamed).
            name = space.current(user_ref(identity)).username
        except Exception as exc:  # noqa: BLE001 - the account is gone, the platform is down: reported
            log.warning("membership: person:%s not found on %s: %s", person_id, space.platform, type(exc).__name__)
            continue
        if name != identity.username:
            _renamed(ctx, identity.id, name)
        title, text = render(template, platform=space.platform, username=name, **values)
        try:
            direct_message_once(ctx, space, name, key=key, actor=actor, about=about, title=title, text=text)
            reached.append(space.platform)
        except Exception as exc:  # noqa: BLE001 - e.g. Discord 50007 (DMs closed): reported
            log.warning(
                "membership: could not message person:%s on %s: %s", person_id, space.platform, type(exc).__name__
            )
    return reached


def _renamed(ctx: Ctx, identity_id: int, name: str) -> None:
    """Record the name an account has now (audited by ``repo.update_identity``); left as it was
    when another person's identity holds that name (their rename is not known yet)."""
    try:
        with ctx.ledger.transaction() as session:
            repo.update_identity(session, session.get_one(Identity, identity_id), actor="connector", username=name)
    except Conflict:
        log.warning("membership: identity:%s renamed to a name another identity still holds: not recorded", identity_id)


def email_person(
    ctx: Ctx, person_id: int, *, template: str, key: str, actor: str, about: str | None, **values: Any
) -> bool:
    """E-mail the person at the newest address they gave, once per key; False when there is no
    mailer or no address."""
    if ctx.platforms.mailer is None:
        return False
    with ctx.ledger.read() as session:
        rows = list(session.scalars(select(Identity).where(Identity.person_id == person_id).order_by(Identity.id)))
        address = next((r.username for r in reversed(rows) if r.platform == Platform.EMAIL), None)
        name = next((r.username for r in rows if r.platform != Platform.EMAIL and r.username), None) or person_handle(
            ctx, person_id
        )
    if not address:
        return False
    return send_email(ctx, to=address, template=template, key=key, actor=actor, about=about, username=name, **values)


def send_email(ctx: Ctx, *, to: str, template: str, key: str, actor: str, about: str | None, **values: Any) -> bool:
    """Render a membership template and e-mail it to ``to``, once per ``key`` (``<key>:email``).
    A failure is logged, not raised: the platforms' messages and the form's page tell too."""
    mailer = ctx.platforms.mailer
    if mailer is None:
        return False
    title, text = render(template, platform="email", **values)
    k = f"{key}:email"
    try:
        once(
            ctx,
            key=k,
            platform="email",
            actor=actor,
            about=about,
            act=lambda: mailer.send(to=to, subject=title, text=text, key=k),
        )
        return True
    except Exception as exc:  # noqa: BLE001 - e.g. the SMTP server down; reported
        log.warning("membership: e-mail %s not sent: %s", k, type(exc).__name__)
        return False


def post_wg(
    ctx: Ctx,
    *,
    template: str,
    key: str,
    actor: str,
    about: str | None,
    threads: Mapping[str, str] | None = None,
    renderer: Callable[..., tuple[str, str]] | None = None,
    **values: Any,
) -> dict[str, dict[str, Any]]:
    """Post to the WG's private space on every served platform (a reply in ``threads[platform]``
    when given, else a new topic/message), once per key and platform; returns platform → the
    recorded message ids. ``renderer`` defaults to the membership templates. One platform
    failing does not stop the other; the next run repairs it."""
    renderer = renderer or render
    posted: dict[str, dict[str, Any]] = {}
    for space in ctx.platforms.spaces.values():
        if space.messenger is None:
            continue
        title, text = renderer(template, platform=space.platform, **values)
        thread = (threads or {}).get(space.platform)
        k = f"{key}:{space.platform}"

        def act(s=space, t=title, b=text, th=thread, k=k) -> MessageRef:
            if th:
                return s.messenger.reply(thread_id=th, text=f"**{t}**\n\n{b}", key=k)
            return s.messenger.post(channel=s.wg_channel, title=t, text=b, key=k)

        try:
            posted[space.platform] = once(ctx, key=k, platform=space.platform, actor=actor, about=about, act=act)["ref"]
        except Exception as exc:  # noqa: BLE001 - one platform down must not hide the other
            log.warning("could not post to the WG on %s: %s", space.platform, type(exc).__name__)
    return posted


def answer_interaction(
    ctx: Ctx, *, key: str, actor: str, about: str, attributes: Mapping[str, str], text: str, platform: str | None = None
) -> None:
    """Answer an interaction privately (the gateway deferred it), once per ``key``, through the
    ``InteractionResponder`` of ``platform`` (default: the served one that answers interactions).

    The first answer replaces the deferred "thinking…" message (``PATCH …/messages/@original``):
    an edit is safe to retry, so a 5xx or a dropped connection does not lose it. A follow-up
    (``POST /webhooks/{app}/{token}``) cannot be retried blindly, so only later answers to the
    same interaction use one. https://discord.com/developers/docs/interactions/receiving-and-responding
    An interaction the platform dropped (our deferral was late: ``AnswerElsewhere``) is answered
    in a direct message to its ``username``.
    """
    token = attributes.get("interaction_token")
    spaces = [ctx.platforms.space(platform)] if platform else list(ctx.platforms.spaces.values())
    found = [(s.platform, s.capable(InteractionResponder)) for s in spaces if s is not None]
    found = [(name, r) for name, r in found if r is not None]
    if not token or not found:
        return
    where, responder = found[0]
    first = f"interaction-original:{hashlib.sha256(token.encode()).hexdigest()[:24]}"
    space = ctx.platforms.space(where)

    def act(answered: dict[str, Any] | None) -> MessageRef | Recorded | None:
        if answered is not None and answered["ref"].get("key") == key:
            return None  # this key's answer is the first one: sent already
        try:
            if answered is not None:
                responder.followup(token, text[:1900])
                return None
            responder.edit_original(token, text[:2000])
        except AnswerElsewhere:
            # Our deferral came too late (the member saw "This interaction failed"), yet the
            # work is done: say so in a direct message, once (its nonce comes from the key).
            username = attributes.get("username")
            if space is None or space.messenger is None or not username:
                raise
            log.info("interaction of %s failed on %s; answered in a direct message", about, where)
            return space.messenger.direct_message(recipients=[username], title="", text=text, key=f"{key}:dm")
        # The first answer names its key and is recorded with it at once: a run killed between
        # two records sent the same answer again as a follow-up (two messages, issue 19).
        with ctx.ledger.transaction() as session:
            records = [
                repo.effect_record(session, key=k, platform=where, actor=actor, ref=ref, about=about, at=ctx.now)
                for k, ref in ((first, {"key": key}), (key, {}))
            ]
        return Recorded(records[1])

    try:
        once(ctx, key=key, platform=where, actor=actor, about=about, act=act, peek=first)
    except RetriableError as exc:
        # The platform is down for a moment: failing the run makes the inbox try again within
        # the token's 15 minutes; the work before the answer is keyed, so it is not done twice.
        log.warning("no answer for %s yet (%s); retrying", about, type(exc).__name__)
        raise
    except FatalError as exc:
        # Token expired or unknown, and no other way to reach the member: the work is done
        # anyway. Anything else (the ledger down, a bug) fails the run, so the inbox retries it
        # and the operator sees it, instead of an event marked processed without its answer.
        log.info("no answer for %s (%s)", about, type(exc).__name__)


# --------------------------------------------------------------------------------------------
# Artifacts


def artifact(
    *,
    key: str,
    title: str,
    decision: Decision | None = None,
    rows: Mapping[str, Any] | None = None,
    evidence: Mapping[str, Any] | None = None,
    note: str | None = None,
    keyed: bool = True,
) -> None:
    """A markdown artifact on the current run: the decision, its ruling, its evidence. Outside a
    run (a handler called directly) nothing is created. Never holds answers or secrets.
    ``keyed=False``: shown on its run only, ``key`` as its description (one request instead of
    two and no collection: for the artifact of every inbox event, bench/README.md)."""
    # lazy: start-up: Prefect, which the CLI commands using the kit do not load
    from prefect.context import FlowRunContext, TaskRunContext

    if FlowRunContext.get() is None and TaskRunContext.get() is None:
        return
    lines = [f"# {title}", ""]
    if decision is not None:
        lines += [
            f"**{'allowed' if decision.allowed else 'refused'}** — ruling `{decision.ruling}`",
            "",
            decision.reason,
            "",
        ]
    if note:
        lines += [note, ""]
    if rows:
        lines += ["| field | value |", "| --- | --- |"]
        lines += [f"| {k} | {str(v).replace('|', '/')} |" for k, v in rows.items()]
        lines.append("")
    if evidence:
        lines += ["## Evidence", "", "```json", json.dumps(evidence, indent=2, default=str, sort_keys=True), "```"]
    try:
        # The description is kept in Prefect's events, which an erasure cannot reach: the key
        # (ledger ids only) serves; the title stays in the body (R-PRIVACY-3).
        publish_artifact(
            key=_artifact_key(key) if keyed else None,
            kind="markdown",
            content="\n".join(lines),
            description=_artifact_key(key),
        )
    except Exception as exc:  # noqa: BLE001 - an artifact is a view, never a reason to fail
        log.warning("membership: artifact %s not created: %s", key, type(exc).__name__)


def run_note(message: str, *args: Any) -> None:
    """A line in the current run's log, shown on the run in Prefect's UI (its run logger sends
    lines in batches: a request every few seconds, where an artifact is one per call, about 8 ms
    of the Prefect server's CPU each: bench/README.md, intake, a twelfth pass). Ids and outcomes
    only: Prefect cannot change a log line afterwards (R-PRIVACY-3). Outside a run, this
    module's log."""
    # lazy: start-up: Prefect, which the CLI commands using the kit do not load
    from prefect.context import FlowRunContext, TaskRunContext
    from prefect.logging import get_run_logger

    if FlowRunContext.get() is None and TaskRunContext.get() is None:
        log.info(message, *args)
        return
    get_run_logger().info(message, *args)


def _artifact_key(key: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", key.lower()).strip("-")[:100] or "membership"


def person_run_name(prefix: str, parameter: str) -> Callable[[], str]:
    """A ``flow_run_name`` callable naming the person of ``parameter`` (a handle or an id) by
    ledger id only, ``<prefix>-person-<id>`` (R-PRIVACY-3); just ``prefix`` when unknown."""

    def name() -> str:
        # lazy: start-up: Prefect, which the CLI commands using the kit do not load
        from prefect.runtime import flow_run

        value = str((flow_run.parameters or {}).get(parameter) or "").strip().removeprefix("person:")
        if value.isdigit():
            return f"{prefix}-person-{value}"
        try:
            with current_ledger().read() as session:
                return f"{prefix}-person-{repo.get_person(session, value).id}"
        except Exception:  # noqa: BLE001 - a name is a courtesy; the run reports the error
            return prefix

    return name


def run_name(prefix: str, *names: str) -> Callable[[], str]:
    """A ``flow_run_name`` callable: ``<prefix>-<first parameter among names that is set>``."""

    def name() -> str:
        # lazy: start-up: Prefect, which the CLI commands using the kit do not load
        from prefect.runtime import flow_run

        params = flow_run.parameters or {}
        for n in names:
            value = params.get(n)
            if value not in (None, ""):
                return f"{prefix}-{value}"
        return prefix

    return name
