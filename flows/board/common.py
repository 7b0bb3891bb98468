"""What the Board flows share: the Slack connector, proposal input checks, the Board list,
messages rendered from ``templates/board/`` and posts to the WG.

The Slack connector is not part of ``flows.platforms.Platforms`` (which holds the WG's community
platforms): :func:`current_slack` builds it from ``CHARTERFLOW_SLACK_*`` on first use, and tests
or ``charterflow up`` install their own with :func:`use_slack`. Everything else (ledger, the
Forum and Discord spaces, the clock, side effects done once) comes from
``flows.kit``.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select

from connectors.base import MessageRef
from connectors.registry import load_connector
from connectors.slack.blocks import BoardDecision as SlackDecision
from connectors.slack.blocks import BoardEscalation, Endorsement, Link, SlackMessage, escape, slack_date, truncate
from flows.kit import Ctx, context
from flows.kit import post_wg as membership_post_wg
from flows.presentation import templates as _env
from ledger import repo
from ledger.models import Ballot, BallotStatus, BoardDecision, Identity, Person, Platform, Proposal
from ledger.roster import stored_list
from rules import Charter, Decision, needs_board
from rules.budget import parse_amount
from rules.platforms import PLATFORM_KINDS, check_name

__all__ = [
    "BOARD_LIST",
    "BoardCtx",
    "InvalidProposal",
    "ProposalInput",
    "board_context",
    "BoardList",
    "board_list",
    "compose_body",
    "current_slack",
    "escalation_of",
    "post_wg",
    "render",
    "split_body",
    "thread_reply",
    "use_slack",
    "validate_proposal",
]

BOARD_LIST = "board_members"

# Slack's three buttons ↔ the ledger's decisions.
TO_LEDGER = {
    SlackDecision.APPROVE: BoardDecision.APPROVED,
    SlackDecision.REJECT: BoardDecision.REJECTED,
    SlackDecision.NEEDS_INFO: BoardDecision.NEEDS_INFO,
}
TO_SLACK = {v: k for k, v in TO_LEDGER.items()}
WORDS = {
    BoardDecision.APPROVED: "approved",
    BoardDecision.REJECTED: "rejected",
    BoardDecision.NEEDS_INFO: "asked for more information on",
}

# Active ISO 4217 codes (https://www.iso.org/iso-4217-currency-codes.html), funds and metals left
# out: a budget request names real money.
CURRENCIES = frozenset(
    """
AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP BYN
BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS
GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW
KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD
NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD
SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VES
VND VUV WST XAF XCD XOF XPF YER ZAR ZMW ZWL
""".split()
)
MAX_TITLE = 300
MAX_SUMMARY = 20_000
MAX_LINKS = 10
_LINKS_MARK = "\n\n---\nLinks:\n"


# --------------------------------------------------------------------------------------------
# Slack


_lock = threading.Lock()
_slack: Any = None


def current_slack() -> Any:
    """The Slack connector of this process (the registry's ``slack``, ``from_env()``, unless
    :func:`use_slack` installed one); ``ConfigError`` naming the missing setting."""
    global _slack
    with _lock:
        if _slack is None:
            _slack = load_connector("slack").from_env()
        return _slack


@contextmanager
def use_slack(connector: Any) -> Iterator[None]:
    """Make ``connector`` the Slack connector of this process inside the block."""
    global _slack
    with _lock:
        before, _slack = _slack, connector
    try:
        yield
    finally:
        with _lock:
            _slack = before


@dataclass(frozen=True, kw_only=True)
class BoardCtx(Ctx):
    """A membership ``Ctx`` plus the Board's Slack connector."""

    slack: Any = None

    @property
    def board_channel(self) -> str:
        """The Board channel's id (``CHARTERFLOW_SLACK_BOARD_CHANNEL``)."""
        return str(self.slack.settings.board_channel)


def board_context(now: datetime | None, *, ledger: Any = None, platforms: Any = None, slack: Any = None) -> BoardCtx:
    """The context of a Board run: given objects, else the process's."""
    base = context(now, ledger=ledger, platforms=platforms)
    return BoardCtx(
        ledger=base.ledger,
        platforms=base.platforms,
        now=base.now,
        slack=slack if slack is not None else current_slack(),
    )


# --------------------------------------------------------------------------------------------
# Proposal input


class InvalidProposal(ValueError):
    """A proposal refused before anything is recorded; ``field`` names the culprit."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name


@dataclass(frozen=True, kw_only=True)
class ProposalInput:
    """A proposal as filed, checked and normalised by :func:`validate_proposal`."""

    kind: str
    title: str
    summary: str
    amount: Decimal | None = None
    currency: str | None = None
    purpose: str | None = None
    links: tuple[str, ...] = ()
    # R-PLATFORM: the platform a trial/migrate/retire proposal is about, the one a migration
    # replaces, the end date a trial asks for (None: the charter's default).
    platform: str | None = None
    replaces: str | None = None
    trial_ends_at: datetime | None = None
    decision: Decision | None = field(default=None, compare=False)

    def key(self, proposer: str | None) -> str:
        """An idempotency key of the content: the same proposal filed twice is recorded once."""
        data = {
            "kind": self.kind,
            "title": self.title,
            "summary": self.summary,
            "amount": str(self.amount) if self.amount is not None else None,
            "currency": self.currency,
            "purpose": self.purpose,
            "links": list(self.links),
            "proposer": proposer,
        }
        if self.platform:  # only platform proposals carry these (older keys stay as they were)
            data.update(
                platform=self.platform,
                replaces=self.replaces,
                trial_ends_at=self.trial_ends_at.isoformat() if self.trial_ends_at else None,
            )
        text = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return "board:file:" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def _text(value: Any, name: str, *, limit: int, required: bool, multiline: bool = False) -> str | None:
    if value is None:
        text = ""
    else:
        # A title is one line; a summary keeps its paragraphs.
        text = str(value).strip() if multiline else " ".join(str(value).split())
    if not text:
        if required:
            raise InvalidProposal(name, "is required")
        return None
    if len(text) > limit:
        raise InvalidProposal(name, f"is longer than {limit} characters")
    return text


def _links(value: Any) -> tuple[str, ...]:
    if value in (None, ""):
        return ()
    items = re.split(r"[\s,]+", value.strip()) if isinstance(value, str) else list(value)
    out = []
    for item in (str(i).strip() for i in items):
        if not item:
            continue
        parts = urlsplit(item)
        if parts.scheme not in ("http", "https") or not parts.netloc or len(item) > 500:
            raise InvalidProposal("links", f"{item[:80]!r} is not an http(s) URL")
        out.append(item)
    if len(out) > MAX_LINKS:
        raise InvalidProposal("links", f"at most {MAX_LINKS} links")
    return tuple(dict.fromkeys(out))


def _platform_name(value: Any, name: str) -> str | None:
    if value in (None, ""):
        return None
    try:
        return check_name(value)
    except ValueError as exc:
        raise InvalidProposal(name, str(exc)) from None


def _trial_end(value: Any) -> datetime | None:
    """A trial's end date: an ISO date (the end of that day, UTC) or an aware date-time."""
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime.combine(value, time(23, 59, 59), tzinfo=UTC)
    else:
        text = str(value).strip()
        try:
            moment = (
                datetime.combine(date.fromisoformat(text), time(23, 59, 59), tzinfo=UTC)
                if len(text) == 10
                else datetime.fromisoformat(text)
            )
        except ValueError:
            raise InvalidProposal("trial_ends", f"{text[:40]!r} is not a date (YYYY-MM-DD)") from None
    if moment.tzinfo is None:
        raise InvalidProposal("trial_ends", "a date-time needs a time zone (or give a date)")
    return moment.astimezone(UTC)


def _platform_fields(
    kind: str, platform: Any, replaces: Any, trial_ends: Any
) -> tuple[str | None, str | None, datetime | None]:
    """R-PLATFORM: a platform proposal names its platform (a migration also the one it
    replaces; a trial may name its end date); other proposals name none."""
    name = _platform_name(platform, "platform")
    old = _platform_name(replaces, "replaces")
    end = _trial_end(trial_ends)
    if kind not in PLATFORM_KINDS:
        for field_name, value in (("platform", name), ("replaces", old), ("trial_ends", end)):
            if value is not None:
                raise InvalidProposal(field_name, f"only a platform proposal names it, not a {kind}")
        return None, None, None
    if name is None:
        raise InvalidProposal("platform", f"a {kind} proposal names the platform (e.g. matrix)")
    if kind == "migrate-platform":
        if old is None:
            raise InvalidProposal("replaces", "a migration names the platform it replaces")
        if old == name:
            raise InvalidProposal("replaces", f"{name} cannot replace itself")
    elif old is not None:
        raise InvalidProposal("replaces", f"only a migration replaces a platform, not a {kind}")
    if end is not None and kind != "trial-platform":
        raise InvalidProposal("trial_ends", f"only a trial has an end date, not a {kind}")
    return name, old, end


def validate_proposal(
    *,
    kind: str,
    title: str,
    summary: str,
    amount: Any = None,
    currency: str | None = None,
    purpose: str | None = None,
    links: Sequence[str] | str | None = None,
    platform: str | None = None,
    replaces: str | None = None,
    trial_ends: Any = None,
    charter: Charter,
) -> ProposalInput:
    """Check a proposal; :class:`InvalidProposal` names the first bad field. The returned
    ``decision`` says whether it goes to the Board (R-BOARD) or the WG decides it (R-DIRECT).

    A budget request needs a positive amount with at most two decimals, a known ISO 4217
    currency and a purpose; other kinds may not carry an amount. A platform proposal names
    its ``platform``; a migration the platform it ``replaces``; a trial may name its end date
    (``trial_ends``, YYYY-MM-DD; default: the charter's ``trials.default_days``). Whether the
    platform list allows it is checked by the flow (``flows.platforms_state.check_proposal``)."""
    kind = (kind or "").strip()
    try:
        decision = needs_board(kind, charter=charter)
    except ValueError as exc:
        raise InvalidProposal("kind", str(exc)) from None
    title_text = _text(title, "title", limit=MAX_TITLE, required=True)
    summary_text = _text(summary, "summary", limit=MAX_SUMMARY, required=True, multiline=True)
    amount_value: Decimal | None = None
    currency_code: str | None = None
    purpose_text = _text(purpose, "purpose", limit=MAX_SUMMARY, required=False, multiline=True)
    if kind == "budget":
        if amount in (None, ""):
            raise InvalidProposal("amount", "a budget request needs an amount")
        try:
            amount_value = parse_amount(amount)
        except ValueError as exc:
            raise InvalidProposal("amount", str(exc).removeprefix("amount: ")) from None
        currency_code = (currency or "").strip().upper()
        if not currency_code:
            raise InvalidProposal("currency", "a budget request needs a currency (ISO 4217, e.g. USD)")
        if currency_code not in CURRENCIES:
            raise InvalidProposal("currency", f"{currency_code[:10]!r} is not a known ISO 4217 currency")
        if purpose_text is None:
            raise InvalidProposal("purpose", "a budget request needs a purpose")
    elif amount not in (None, ""):
        raise InvalidProposal("amount", f"only a budget request carries an amount, not a {kind}")
    name, old, end = _platform_fields(kind, platform, replaces, trial_ends)
    return ProposalInput(
        kind=kind,
        title=title_text or "",
        summary=summary_text or "",
        amount=amount_value,
        currency=currency_code,
        purpose=purpose_text,
        links=_links(links),
        platform=name,
        replaces=old,
        trial_ends_at=end,
        decision=decision,
    )


def compose_body(summary: str, links: Sequence[str]) -> str:
    """The proposal's stored text: the summary, then its links (the ledger has no links
    column; the text is the proposal's community content, kept on erasure)."""
    if not links:
        return summary
    return summary + _LINKS_MARK + "\n".join(f"- {u}" for u in links)


def split_body(body: str | None) -> tuple[str, tuple[str, ...]]:
    """``(summary, links)`` of a stored proposal text (the inverse of :func:`compose_body`)."""
    text = body or ""
    summary, mark, rest = text.partition(_LINKS_MARK)
    if not mark:
        return text, ()
    return summary, tuple(line[2:].strip() for line in rest.splitlines() if line.startswith("- "))


# --------------------------------------------------------------------------------------------
# The Board list


@dataclass(frozen=True, kw_only=True)
class BoardList:
    """The Board list as ``check_board_member`` wants it: ``entries`` (Slack user ids and
    e-mail addresses), ``resolved`` (those e-mails → Slack user ids) and ``owners`` (entry →
    ledger person id, for the audit log and the WG's messages)."""

    entries: tuple[str, ...]
    resolved: dict[str, str]
    owners: dict[str, int]


def board_list(ctx: BoardCtx) -> BoardList:
    """The Board list (R-BOARD) as stored by the last ``roster import``, ready to check a click.

    The stored list names WG handles; each person's Slack identity is used when the ledger has
    it, else their e-mail, resolved through ``users.lookupByEmail``. An entry that is no person
    in the ledger is used as written when it is a Slack user id or an e-mail address."""
    entries: list[str] = []
    owners: dict[str, int] = {}
    with ctx.ledger.read() as session:
        for handle in stored_list(session, BOARD_LIST):
            person = session.scalar(select(Person).where(Person.handle == handle))
            if person is None:
                if "@" in handle or re.match(r"^[UW][A-Z0-9]{2,}$", handle):
                    entries.append(handle)
                continue
            ids = {i.platform: i for i in session.scalars(select(Identity).where(Identity.person_id == person.id))}
            slack, email = ids.get(Platform.SLACK), ids.get(Platform.EMAIL)
            entry = (
                slack.external_id
                if slack is not None and slack.external_id
                else email.username
                if email is not None
                else None
            )
            if entry:
                entries.append(entry)
                owners[entry] = person.id
    emails = [e for e in entries if "@" in e]
    resolved = ctx.slack.resolve_board(emails) if emails else {}
    return BoardList(entries=tuple(entries), resolved=resolved, owners=owners)


def person_of_slack(ctx: Ctx, user_id: str) -> int | None:
    """The ledger person id owning the Slack account ``user_id``, if the ledger knows it."""
    with ctx.ledger.read() as session:
        person = repo.find_person_by_identity(session, platform=Platform.SLACK, external_id=user_id)
        return person.id if person else None


# --------------------------------------------------------------------------------------------
# Messages


def render(name: str, **values: Any) -> tuple[str, str]:
    """Render ``templates/board/<name>.md.j2``: first line the title, the rest the body."""
    text = _env.get_template(f"board/{name}.md.j2").render(**values).strip()
    title, _, body = text.partition("\n")
    return title.strip(), body.strip()


def post_wg(
    ctx: Ctx,
    *,
    template: str,
    key: str,
    actor: str,
    about: str,
    threads: Mapping[str, str] | None = None,
    **values: Any,
) -> dict[str, dict[str, Any]]:
    """Post a Board template to the WG's private space on every served platform, once per key
    and platform (``flows.kit.post_wg``); returns platform → recorded ids."""
    return membership_post_wg(
        ctx, template=template, key=key, actor=actor, about=about, threads=threads, renderer=render, **values
    )


def wg_threads(ctx: Ctx, proposal_id: int) -> dict[str, str]:
    """Where the WG was told about the escalation (platform → thread id), to reply there."""
    out = {}
    with ctx.ledger.read() as session:
        for platform in ctx.platforms.spaces:
            found = repo.effect_get(session, key=f"board:escalated-wg:{proposal_id}:{platform}")
            if found and found["ref"].get("thread_id"):
                out[platform] = str(found["ref"]["thread_id"])
    return out


def thread_reply(ctx: BoardCtx, *, thread: str, text: str, key: str) -> MessageRef:
    """A reply in the Slack thread ``thread`` (``"C…:ts"``). ``text`` is Slack mrkdwn whose
    people-written parts the caller escaped (it may hold ``<@U…>`` mentions and dates)."""
    from connectors.slack.connector import split_ref  # lazy: start-up: slack_sdk (~0.5 s), only for a Board reply

    channel, ts = split_ref(thread)
    block = {"type": "section", "text": {"type": "mrkdwn", "text": truncate(text, 3000)}}
    plain = re.sub(r"<[^>|]*\|([^>]*)>", r"\1", text)
    return ctx.slack.send(
        channel=channel, message=SlackMessage(text=truncate(plain, 3000), blocks=(block,)), key=key, thread_ts=ts
    )


def who(decided_by: str) -> str:
    """``decided_by`` for Slack mrkdwn: a mention for a Slack user id, else escaped text."""
    return f"<@{decided_by}>" if re.match(r"^[UW][A-Z0-9]{2,}$", decided_by or "") else escape(decided_by)


def when(at: datetime) -> str:
    """A Slack date (shown in each reader's time zone) for ``at``."""
    return slack_date(at)


# --------------------------------------------------------------------------------------------
# The escalation as the Board sees it


def platform_line(proposal: Proposal) -> str:
    """What a platform proposal asks the Board to change in the platform list (R-PLATFORM)."""
    if proposal.kind == "migrate-platform":
        return (
            f"Platform: {proposal.platform} becomes approved; {proposal.replaces_platform} "
            "is retired after its roles are revoked"
        )
    if proposal.kind == "retire-platform":
        return f"Platform: {proposal.platform} is retired after its roles are revoked"
    end = (
        f"until {proposal.trial_ends_at:%Y-%m-%d}"
        if proposal.trial_ends_at
        else "for the charter's default trial length"
    )
    return f"Platform: {proposal.platform} on trial {end}"


def escalation_of(ctx: Ctx, proposal_id: int) -> BoardEscalation:
    """The ``BoardEscalation`` of a proposal, from the ledger alone (so the message and its
    later updates always show the same thing)."""
    with ctx.ledger.read() as session:
        proposal = session.get(Proposal, proposal_id)
        if proposal is None:
            raise LookupError(f"proposal:{proposal_id} does not exist")
        summary, links = split_body(proposal.body)
        if proposal.purpose:
            summary = f"{summary}\n\nPurpose: {proposal.purpose}"
        if proposal.platform:
            summary = f"{summary}\n\n{platform_line(proposal)}"
        ballot = session.get(Ballot, proposal.endorsement_ballot_id) if proposal.endorsement_ballot_id else None
        if ballot is not None and ballot.status == BallotStatus.CLOSED and ballot.tally:
            t = ballot.tally
            endorsement: Endorsement | str = Endorsement(
                result="endorsed by the WG"
                if ballot.outcome and ballot.outcome.value == "passed"
                else "not endorsed by the WG",
                yes=t.get("yes"),
                no=t.get("no"),
                abstain=t.get("abstain"),
            )
        elif ballot is None:
            endorsement = "not required by the charter"
        else:
            endorsement = "WG vote still open"
        requested_by = None
        if proposal.proposed_by_person_id:
            person = session.get(Person, proposal.proposed_by_person_id)
            requested_by = f"{person.handle} (for the WG)" if person else None
        return BoardEscalation(
            proposal_id=f"proposal:{proposal.id}",
            kind=proposal.kind,
            title=proposal.title,
            summary=summary,
            endorsement=endorsement,
            amount=proposal.amount,
            currency=proposal.currency or "",
            links=tuple(Link(label=u, url=u) for u in links),
            requested_by=requested_by,
        )


def proposal_id_from(value: str) -> int | None:
    """The ledger id in a button's ``proposal:<id>`` value (None when it is not ours)."""
    match = re.fullmatch(r"proposal:(\d{1,12})", value or "")
    return int(match.group(1)) if match else None
