"""Intake (R-APP-1, R-APP-3), identity confirmation (R-APP-2) and expiry of unconfirmed
applications.

``membership-intake`` stores an application and asks each named account to confirm it: a DM
with a **Confirm** button on Discord (its press comes back as an interaction whose
``custom_id`` is ``cfc:<token>``), a private message on the Forum with a link to the gateway's
confirmation page, whose button POSTs the token (a GET never confirms). An account the source
itself proves (the Discord user who submitted the ``/apply`` modal, the author of a Forum topic)
is confirmed at once. Once every named account confirmed, eligibility runs, then the ballot.
Nothing waits in a process: ``membership-expire-applications`` (hourly) expires what stayed
unconfirmed for the charter's ``confirm_within_days``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from prefect import flow
from sqlalchemy import select

from connectors.base import ButtonMessenger, UserRef
from connectors.errors import FatalError, PolicyViolation
from flows import kit
from flows.kit import (
    Ctx,
    artifact,
    context,
    identities_of,
    log,
    once,
    prompt_once,
    record,
    run_name,
)
from flows.membership.tokens import CONFIRM_PREFIX, make_token, read_token
from flows.platforms import Platforms
from flows.presentation import label
from ledger import repo
from ledger.db import Ledger
from ledger.models import Application, ApplicationStatus, Identity, MembershipStatus, Person
from rules.applications import (
    AccountLookup,
    ApplicationForm,
    ConfirmationAttempt,
    PriorRecord,
    check_account,
    check_confirmation,
    check_duplicates,
    check_expiry,
    check_form,
    confirmation_deadline,
)
from rules.decision import CodedDecision

ACTOR = "flow:intake"
GROUP = "Online Community Working Group"


def _intake_key(*, source: str, source_ref: str | None, values: dict[str, Any]) -> str:
    if source_ref:
        return f"intake:{source}:{source_ref}"
    digest = hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:32]
    return f"intake:{source}:{digest}"


def _refuse(
    ctx: Ctx,
    *,
    key: str,
    decision: CodedDecision,
    about: str | None = None,
    tell: tuple[str, str] | None = None,
    email: str | None = None,
) -> dict[str, Any]:
    """Record the refusal the rules returned (with its reason: the form's status page shows it),
    then tell the applicant on the account that applied (``tell`` = platform, username) and at
    the e-mail address they gave, once each (R-APP-4)."""
    ruling, reason, code = decision.ruling, decision.reason, decision.code
    record(
        ctx,
        key=key,
        actor=ACTOR,
        about=about,
        ref={"outcome": "refused", "ruling": ruling, "code": code, "reason": reason},
    )
    artifact(key=f"intake-refused-{code}", title="Application refused", decision=decision)
    # A duplicate is told with the open application's reference (the ``duplicate`` message).
    if tell is not None and code != "duplicate":
        _tell_refusal(ctx, key=key, platform=tell[0], username=tell[1], ruling=ruling, reason=reason, code=code)
    if email and code != "duplicate":
        kit.send_email(
            ctx,
            to=email,
            template="refused",
            key=f"{key}:told",
            actor=ACTOR,
            about=None,
            username="there",
            group=GROUP,
            reason=reason,
            ruling=ruling,
            code=code,
        )
    return {"outcome": "refused", "ruling": ruling, "reason": reason, "code": code}


def _tell_refusal(ctx: Ctx, *, key: str, platform: str, username: str, ruling: str, reason: str, code: str) -> None:
    space = ctx.platforms.space(platform)
    if space is None or space.messenger is None or not username:
        return
    messenger = space.messenger
    title, text = kit.render(
        "refused", platform=platform, username=username, group=GROUP, reason=reason, ruling=ruling, code=code
    )
    told = f"{key}:told:{platform}"
    try:
        once(
            ctx,
            key=told,
            platform=platform,
            actor=ACTOR,
            about=None,
            act=lambda: messenger.direct_message(recipients=[username], title=title, text=text, key=told),
        )
    except Exception as exc:  # noqa: BLE001 - e.g. DMs closed; the refusal stays recorded
        log.warning("membership: refusal not delivered on %s: %s", platform, type(exc).__name__)


def _new_handle(session: Any, wanted: str) -> str:
    base = re.sub(r"[^A-Za-z0-9_.-]+", "-", wanted)[:70] or "applicant"
    handle, n = base, 1
    while session.scalar(select(Person.id).where(Person.handle == handle)) is not None:
        n += 1
        handle = f"{base}-{n}"
    return handle


@dataclass(frozen=True, kw_only=True)
class _Received:
    """One application as received: the accounts it names (platform -> username or None), its
    answers and where a refusal is told."""

    key: str
    named: dict[str, str | None]
    motivation: str
    experience: str
    nominator: str | None
    email: str | None
    source: str
    proven: dict[str, str]
    tell: tuple[str, str] | None


def _username(typed: str | None) -> str:
    return (typed or "").strip().lstrip("@")


@dataclass(frozen=True, kw_only=True)
class Submission:
    """An application as a source gave it to :func:`submit`: the usernames, answers and e-mail
    as typed, the ``source`` and its reference (``source_ref``, the intake's idempotency key),
    ``proven`` (platform → the external id the source proved: confirmed at once) and
    ``accounts`` (platform → username on any other platform served)."""

    forum_username: str | None
    discord_username: str | None
    motivation: str
    experience: str
    nominator: str | None
    email: str | None
    source: str
    source_ref: str | None
    proven: dict[str, str] | None = None
    accounts: Mapping[str, str] | None = None


def _receive(given: Submission) -> _Received:
    forum, discord = _username(given.forum_username) or None, _username(given.discord_username) or None
    others = {str(p): _username(u) for p, u in (given.accounts or {}).items() if p not in ("discourse", "discord")}
    values: dict[str, Any] = {
        "forum": forum,
        "discord": discord,
        "motivation": given.motivation,
        "experience": given.experience,
        "nominator": given.nominator,
    }
    if any(others.values()):
        values["accounts"] = others
    named = {"discourse": forum, "discord": discord, **{p: u or None for p, u in others.items()}}
    # The account the source proved is where a refusal is told (the form's page reads the record).
    told = named.get(given.source)
    tell = (given.source, told) if given.source in (given.proven or {}) and told else None
    return _Received(
        key=_intake_key(source=given.source, source_ref=given.source_ref, values=values),
        named=named,
        motivation=given.motivation,
        experience=given.experience,
        nominator=given.nominator,
        email=(given.email or "").strip() or None,
        source=given.source,
        proven=dict(given.proven or {}),
        tell=tell,
    )


def _find_accounts(ctx: Ctx, got: _Received) -> dict[str, UserRef] | CodedDecision:
    """Each named account on its platform (its stable id is what we confirm and act on), or the
    refusal of the first that cannot confirm (R-APP-1, R-APP-2)."""
    found: dict[str, UserRef] = {}
    for platform, username in got.named.items():
        if not username:
            continue
        space = ctx.platforms.space(platform)
        user = None
        if space is not None and space.directory is not None:
            try:
                user = space.directory.find_user(username)
            except FatalError as exc:
                if exc.status != 404:
                    raise
        decision = check_account(
            AccountLookup(
                platform=platform,
                label=label(platform),
                username=username,
                served=space is not None and space.directory is not None,
                found_id=user.id if user is not None else None,
                proven_id=got.proven.get(platform),
            )
        )
        if not decision.allowed:
            return decision
        if user is not None:  # always: check_account refuses an account not found (R-APP-1)
            found[platform] = user
    return found


def _prior(ctx: Ctx, accounts: dict[str, UserRef]) -> tuple[PriorRecord, int | None]:
    """What the ledger holds about the accounts (R-APP-3) and their one owner's person id."""
    with ctx.ledger.read() as session:
        owners: dict[int, Person] = {}
        for platform, user in accounts.items():
            person = repo.find_person_by_identity(
                session, platform=platform, external_id=user.id, username=user.username
            )
            if person is not None:
                owners[person.id] = person
        if len(owners) != 1:
            return PriorRecord(owners=len(owners)), None
        person = next(iter(owners.values()))
        open_app = repo.open_application_of(session, person)
        membership = repo.open_membership(session, person)
        return PriorRecord(
            owners=1,
            open_application=open_app.id if open_app is not None else None,
            open_status=open_app.status.value if open_app is not None else None,
            active_member=membership is not None and membership.status == MembershipStatus.ACTIVE,
        ), person.id


def _store(ctx: Ctx, got: _Received, accounts: dict[str, UserRef], person_id: int | None) -> int:
    """Record the person, their identities and the application; returns its id."""
    with ctx.ledger.transaction() as session:
        person = session.get(Person, person_id) if person_id is not None else None
        if person is None:
            first = next(iter(accounts.values()))
            person = repo.create_person(
                session,
                handle=_new_handle(session, first.username),
                actor=ACTOR,
                display_name=first.display_name,
                home_platform=got.source if got.source in got.named else None,
                at=ctx.now,
            )
        stored = {platform: _identity(ctx, session, person, platform, user) for platform, user in accounts.items()}
        identity_ids = [identity.id for identity in stored.values()]
        if got.email:
            repo.add_identity(session, person, platform="email", actor=ACTOR, username=got.email, at=ctx.now)
        app = repo.submit_application(
            session,
            person,
            actor=ACTOR,
            source_platform=got.source,
            motivation=got.motivation,
            experience=got.experience,
            nominator_handle=got.nominator or None,
            at=ctx.now,
        )
        for platform in got.proven:
            repo.confirm_application(session, app, stored[platform], actor=ACTOR, at=ctx.now)
        repo.effect_record(
            session,
            key=f"application:{app.id}:identities",
            platform="ledger",
            actor=ACTOR,
            ref={"identities": identity_ids},
            about=f"application:{app.id}",
            at=ctx.now,
        )
        repo.effect_record(
            session,
            key=got.key,
            platform="ledger",
            actor=ACTOR,
            ref={"outcome": "received"},
            about=f"application:{app.id}",
            at=ctx.now,
        )
        return app.id


def _identity(ctx: Ctx, session: Any, person: Person, platform: str, user: UserRef) -> Identity:
    identity = repo.find_identity(session, platform=platform, external_id=user.id, username=user.username)
    if identity is None:
        return repo.add_identity(
            session, person, platform=platform, actor=ACTOR, external_id=user.id, username=user.username, at=ctx.now
        )
    repo.update_identity(session, identity, actor=ACTOR, username=user.username, external_id=user.id, at=ctx.now)
    return identity


def submit(ctx: Ctx, given: Submission) -> dict[str, Any]:
    """Store an application and send the confirmation prompts (idempotent per source_ref, or per
    input when there is none; see :class:`Submission`). The rules decide (``rules.applications``:
    R-APP-1 form and accounts, R-APP-3 duplicates); a refusal is recorded as they returned it."""
    got = _receive(given)
    refuse = partial(_refuse, ctx, key=got.key, tell=got.tell, email=got.email)
    with ctx.ledger.read() as session:
        previous = repo.effect_get(session, key=got.key)
    if previous is not None:
        about = previous.get("about") or ""
        if previous["ref"].get("outcome") == "refused" or not about.startswith("application:"):
            return {"outcome": "refused", **previous["ref"], "repeat": True}
        return prompt_confirmations(ctx, application_id=int(about.split(":")[1]))

    answers = ApplicationForm(usernames=got.named, why=got.motivation, experience=got.experience)
    form = check_form(answers, limits=ctx.charter.application).decision
    if not form.allowed:
        return refuse(decision=form)
    found = _find_accounts(ctx, got)
    if isinstance(found, CodedDecision):
        return refuse(decision=found)
    prior, person_id = _prior(ctx, found)
    duplicates = check_duplicates(prior)
    if duplicates.code == "duplicate" and person_id is not None:
        # R-APP-3: point the person to the open application, once per intake.
        kit.message_person(
            ctx,
            person_id,
            email=True,
            template="duplicate",
            key=f"{got.key}:duplicate",
            actor=ACTOR,
            about=f"application:{prior.open_application}",
            group=GROUP,
            open_id=prior.open_application,
            open_status=prior.open_status,
        )
        return refuse(decision=duplicates, about=f"application:{prior.open_application}")
    if not duplicates.allowed:
        return refuse(decision=duplicates)
    return prompt_confirmations(ctx, application_id=_store(ctx, got, found, person_id))


def tell_applicant(
    ctx: Ctx, application_id: int, person_id: int, *, actor: str, template: str, key: str, **values: Any
) -> list[str]:
    """Tell the applicant about their application (``template``) on the accounts it named and
    at the e-mail address they gave (R-APP-4), once per ``key``; the platforms reached."""
    return kit.message_person(
        ctx,
        person_id,
        email=True,
        template=template,
        key=key,
        actor=actor,
        about=f"application:{application_id}",
        identity_ids=named_identities(ctx, application_id),
        group=GROUP,
        application_id=application_id,
        **values,
    )


def named_identities(ctx: Ctx, application_id: int) -> list[int]:
    """The identity ids the application named (recorded at intake)."""
    with ctx.ledger.read() as session:
        found = repo.effect_get(session, key=f"application:{application_id}:identities")
    return list(found["ref"]["identities"]) if found else []


def prompt_confirmations(ctx: Ctx, *, application_id: int) -> dict[str, Any]:
    """Ask every named account that has not confirmed yet (once each); when all confirmed, move
    the application on (eligibility, then the ballot)."""
    with ctx.ledger.read() as session:
        app = session.get_one(Application, application_id)
        confirmed = {c.identity_id for c in app.confirmations}
        status, person_id, submitted = app.status, app.person_id, app.submitted_at
    named = named_identities(ctx, application_id)
    waiting = [i for i in identities_of(ctx, person_id, ids=named) if i.id not in confirmed]
    expires = confirmation_deadline(submitted, charter=ctx.charter)
    if status == ApplicationStatus.OPEN:
        for identity in waiting:
            _prompt(ctx, application_id=application_id, identity=identity, expires=expires)
    waiting_for = [i.platform.value for i in waiting]
    result = {
        "outcome": "received",
        "application": application_id,
        "status": status.value,
        "waiting_for": waiting_for,
        "expires_at": expires.isoformat(),
    }
    artifact(
        key=f"application-{application_id}-intake",
        title=f"Application {application_id}",
        rows={
            "status": status.value,
            "waiting for confirmation from": ", ".join(waiting_for) or "nobody",
            "expires at": expires.isoformat(),
            "ruling": "R-APP-2",
        },
    )
    # Confirmed or voting: a run cut short after confirming (the ledger or a platform was down)
    # continues where it stopped when run again; every step below is idempotent.
    if status in (ApplicationStatus.OPEN, ApplicationStatus.CONFIRMED, ApplicationStatus.VOTING) and not waiting:
        return {**result, **all_confirmed(ctx, application_id=application_id)}
    return result


def _prompt(ctx: Ctx, *, application_id: int, identity: Identity, expires: Any) -> None:
    space = ctx.platforms.space(identity.platform.value)
    if space is None:
        return
    # Bound to where it is sent (issue 19): Discord's DM carries a button, elsewhere a link.
    token = make_token(
        secret=ctx.platforms.confirm_secret,
        purpose="confirm",
        subject=application_id,
        identity=identity.id,
        expires_at=expires,
        channel="discord" if space.capable(ButtonMessenger) is not None else "web",
    )
    link = f"{ctx.platforms.gateway_url}/confirm/{token}"
    title, text = kit.render(
        "confirm_request",
        platform=space.platform,
        username=identity.username,
        group=GROUP,
        platform_label=label(space.platform),
        link=link,
        expires=expires.date().isoformat(),
        application_id=application_id,
    )
    key = f"confirm-prompt:{application_id}:{identity.id}"
    about = f"application:{application_id}"
    try:
        prompt_once(
            ctx, space, identity, (title, text), ("Confirm", CONFIRM_PREFIX + token), key=key, actor=ACTOR, about=about
        )
    except Exception as exc:  # noqa: BLE001 - e.g. DMs closed: the application can still expire
        log.warning(
            "membership: confirmation prompt for application:%s on %s failed: %s",
            application_id,
            space.platform,
            type(exc).__name__,
        )


def all_confirmed(ctx: Ctx, *, application_id: int) -> dict[str, Any]:
    """Every named account confirmed: status ``confirmed`` (recorded), then eligibility."""
    with ctx.ledger.transaction() as session:
        app = session.get_one(Application, application_id)
        if app.status == ApplicationStatus.OPEN:
            repo.set_application_status(session, app, ApplicationStatus.CONFIRMED, actor=ACTOR, at=ctx.now)
    # lazy: cycle: flows.membership.intake and flows.membership.eligibility (it reads the intake's records)
    from flows.membership.eligibility import check_eligibility

    return {"eligibility": check_eligibility(application_id=application_id, now=ctx.now)}


def confirm_identity(
    *,
    token: str,
    ledger: Ledger | None = None,
    platforms: Platforms | None = None,
    now: datetime | None = None,
    pressed_by: str | None = None,
    channel: str | None = None,
) -> str:
    """Confirm one named account of an application (R-APP-2); the ``confirm`` handler calls this
    for the POST of the gateway's confirmation page (``pressed_by`` None) and for a Discord button
    press (``pressed_by`` = the presser's Discord user id, which must be the named account's).
    ``channel`` (default: ``discord`` for a press, else ``web``) must be the one the token was
    sent on (``flows.membership.tokens``).

    Returns a result reference (``application:12:confirmed``, ``…:waiting``, ``…:already``);
    raises ``PolicyViolation`` (R-APP-2) for a bad, expired or foreign token."""
    ctx = context(now, ledger=ledger, platforms=platforms)
    channel = channel or ("discord" if pressed_by is not None else "web")
    claims = read_token(token, secret=ctx.platforms.confirm_secret, purpose="confirm", now=ctx.now, channel=channel)
    with ctx.ledger.transaction() as session:
        app = session.get(Application, claims.subject)
        identity = session.get(Identity, claims.identity)
        named = app is not None and identity is not None and identity.id in named_identities_session(session, app.id)
        decision = check_confirmation(
            ConfirmationAttempt(
                named=named,
                account_id=identity.external_id if named and identity is not None else None,
                pressed_by=pressed_by,
                status=app.status.value if named and app is not None else "open",
            )
        )
        # A link naming no application or account is never allowed (R-APP-2).
        if not decision.allowed or app is None or identity is None:
            raise PolicyViolation(decision.reason, ruling=decision.ruling)
        if decision.code == "already":
            return f"application:{app.id}:already"
        repo.confirm_application(session, app, identity, actor=ACTOR, at=ctx.now)
        if identity.verified_at is None:
            identity.verified_at = ctx.now
        confirmed = {c.identity_id for c in app.confirmations} | {identity.id}
        named_ids = set(named_identities_session(session, app.id))
    if named_ids <= confirmed:
        all_confirmed(ctx, application_id=claims.subject)
        return f"application:{claims.subject}:confirmed"
    return f"application:{claims.subject}:waiting"


def named_identities_session(session: Any, application_id: int) -> list[int]:
    """``named_identities`` inside an open session."""
    found = repo.effect_get(session, key=f"application:{application_id}:identities")
    return list(found["ref"]["identities"]) if found else []


def expire(ctx: Ctx) -> list[int]:
    """Expire every application still unconfirmed after ``confirm_within_days`` (R-APP-2) and
    tell the applicant; returns the ids expired by this run or earlier runs not yet told."""
    days = ctx.charter.application.confirm_within_days
    expired = []
    with ctx.ledger.transaction() as session:
        for app in repo.applications_with_status(session, ApplicationStatus.OPEN):
            decision = check_expiry(app.submitted_at, now=ctx.now, charter=ctx.charter)
            if not decision.allowed:
                repo.set_application_status(session, app, ApplicationStatus.EXPIRED, actor=ACTOR, at=ctx.now)
                expired.append((app.id, app.person_id, decision))
    for app_id, person_id, decision in expired:
        tell_applicant(ctx, app_id, person_id, actor=ACTOR, template="expired", key=f"expired:{app_id}", days=days)
        artifact(key=f"application-{app_id}-expired", title=f"Application {app_id} expired", decision=decision)
    return [a for a, _p, _d in expired]


# Named by source only: the parameters an operator typed hold the applicant's names (R-PRIVACY-3).
@flow(name="membership-intake", flow_run_name=run_name("intake", "source"), log_prints=True)
def intake(
    forum_username: str | None = None,
    discord_username: str | None = None,
    motivation: str = "",
    experience: str = "",
    nominator: str | None = None,
    email: str | None = None,
    source: str = "operator",
    source_ref: str | None = None,
    proven_accounts: dict[str, str] | None = None,
    accounts: dict[str, str] | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Receive an application (R-APP-1): refuse duplicates (R-APP-3), ask each named account to
    confirm (R-APP-2). Operators run it from the Prefect UI with ``source = operator``; running
    it again with the same input sends nothing new. ``proven_accounts`` (platform → account id)
    is set by the gateway's handler for an account the source itself proved (the Discord user
    who sent the modal, the Forum topic's author): it counts as confirmed at once. ``accounts``
    (platform → username) names accounts on any other platform served."""
    given = Submission(
        forum_username=forum_username,
        discord_username=discord_username,
        motivation=motivation,
        experience=experience,
        nominator=nominator,
        email=email,
        source=source,
        source_ref=source_ref,
        proven=proven_accounts,
        accounts=accounts,
    )
    return submit(context(now), given)


@flow(name="membership-expire-applications", flow_run_name="expire-applications", log_prints=True)
def expire_applications(now: datetime | None = None) -> list[int]:
    """Expire applications not confirmed within the charter's period (R-APP-2), and check again
    the eligibility that was unknown a day ago (R-ELIG-1); scheduled hourly. Returns the ids
    expired."""
    ctx = context(now)
    expired = expire(ctx)
    # lazy: cycle: flows.membership.eligibility imports this module (it reads the intake's records)
    from flows.membership.eligibility import recheck_unknown

    recheck_unknown(ctx)
    return expired
