"""Applications: R-APP-1 (what an application must say), R-APP-2 (each named account confirms,
within the charter's days) and R-APP-3 (no second open application, no application from a member).

:func:`check_form` is the one R-APP-1 check: the gateway's form, the intake flow and eligibility
use it. The flows gather the facts (accounts found, records held) and ask the functions below;
each answer is a :class:`~rules.decision.CodedDecision` the flow records as it is.

On the Forum the applications category's topic template asks the charter's three questions
(usernames, why, experience; a nomination is optional), and :func:`parse_forum_application`
reads a topic's first post back into those answers.

The template's hints are HTML comments: Discourse keeps them in the raw text but shows nothing,
so an answer left as the template had it reads as missing, never as the hint.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from rules.charter import Charter
from rules.decision import CodedDecision

TOPIC_TEMPLATE = """\
## Discord username
<!-- Optional: your Discord username, if your Discord activity should count too. Your Forum
account is the one posting this topic. -->


## Why do you want to join the working group?
<!-- Replace this comment with your answer. -->


## What experience and skills do you bring?
<!-- For example moderation, organising events, writing, code of conduct work. -->


## Nominated by
<!-- Optional: the DSF Individual Member who nominates you (their name or username). -->

"""

# Section heading → answer; matched on the heading's words, so a translated or lightly edited
# heading still counts when it keeps the key word.
_SECTIONS = (
    ("discord", "discord"),
    ("why", "why"),
    ("experience", "experience"),
    ("skill", "experience"),
    ("nominat", "nominator"),
)
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s*(.+?)\s*#*\s*$")
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_EMPTY = {"", "-", "none", "n/a", "na", "no", "nobody"}
QUESTIONS = {"why": "why you want to join the working group", "experience": "what experience and skills you bring"}


@dataclass(frozen=True, kw_only=True)
class ForumApplication:
    """The answers found in a topic; ``missing`` names the required ones not given (R-APP-1)."""

    discord: str | None
    why: str
    experience: str
    nominator: str | None
    missing: tuple[str, ...]


def _sections(raw: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    current: str | None = None
    for line in _COMMENT.sub("", raw.replace("\r\n", "\n")).split("\n"):
        heading = _HEADING.match(line)
        if heading:
            words = heading.group(1).lower()
            current = next((name for key, name in _SECTIONS if key in words), None)
            continue
        if current is not None:
            found.setdefault(current, []).append(line)
    return found


def _answer(lines: list[str] | None) -> str:
    text = "\n".join(lines or []).strip()
    return "" if text.lower() in _EMPTY else text


def parse_forum_application(raw: str) -> ForumApplication:
    """The answers of an applications topic's first post (the template's sections)."""
    sections = _sections(raw)
    discord = _answer(sections.get("discord")).split("\n")[0].strip().lstrip("@").strip()
    nominator = _answer(sections.get("nominator")).split("\n")[0].strip()
    why, experience = _answer(sections.get("why")), _answer(sections.get("experience"))
    return ForumApplication(
        discord=discord or None,
        why=why,
        experience=experience,
        nominator=nominator or None,
        missing=missing_answers(why=why, experience=experience),
    )


# --- R-APP-1: what an application must say -------------------------------------------------

NO_USERNAME = "the application names no Forum or Discord username; at least one is needed"
_FORM_REASONS = {
    "no-username": NO_USERNAME,
    "missing-answers": "the application must say why and what experience the applicant brings",
    "too-long": "an answer or username is longer than the charter allows",
}
# The order a person fixes them in: name an account, answer, then shorten.
_FORM_ORDER = tuple(_FORM_REASONS)


class FormLimits(Protocol):
    """The charter's ``[application]`` limits (``Charter.application`` or the gateway's copy)."""

    @property
    def max_answer_chars(self) -> int: ...

    @property
    def max_handle_chars(self) -> int: ...


@dataclass(frozen=True, kw_only=True)
class ApplicationForm:
    """What an application says: the usernames it names by platform (the Forum's under
    ``discourse``; empty or None: not named) and its two answers, as the applicant gave them."""

    usernames: Mapping[str, str | None]
    why: str
    experience: str


@dataclass(frozen=True, kw_only=True)
class FormProblem:
    """One R-APP-1 problem of one field (``usernames``, ``why``, ``experience`` or a platform):
    ``code`` is ``no-username``, ``missing-answers`` or ``too-long``; a too-long field carries its
    ``length`` and the charter's ``limit``."""

    field: str
    code: str
    length: int = 0
    limit: int = 0


@dataclass(frozen=True, kw_only=True)
class FormCheck:
    """R-APP-1 on a whole form: the decision (refused with the first problem's code and reason)
    and every problem, so a form can show each beside its field."""

    decision: CodedDecision
    problems: tuple[FormProblem, ...]

    def problem(self, field: str) -> FormProblem | None:
        """The problem of ``field``, if any."""
        return next((p for p in self.problems if p.field == field), None)


def names_an_account(usernames: Mapping[str, str | None]) -> bool:
    """R-APP-1: at least one account is named."""
    return any(usernames.values())


def missing_answers(*, why: str, experience: str) -> tuple[str, ...]:
    """R-APP-1: the answers not given (only blanks count as not given), in the form's order."""
    return tuple(name for name, text in (("why", why), ("experience", experience)) if not text.strip())


def check_form(form: ApplicationForm, *, limits: FormLimits) -> FormCheck:
    """R-APP-1: at least one account named, both answers given (not only blanks), no answer over
    ``max_answer_chars`` and no username over ``max_handle_chars``."""
    problems: list[FormProblem] = []
    if not names_an_account(form.usernames):
        problems.append(FormProblem(field="usernames", code="no-username"))
    missing = missing_answers(why=form.why, experience=form.experience)
    problems.extend(FormProblem(field=field, code="missing-answers") for field in missing)
    for field, text in (("why", form.why), ("experience", form.experience)):
        if field not in missing and len(text) > limits.max_answer_chars:
            problems.append(FormProblem(field=field, code="too-long", length=len(text), limit=limits.max_answer_chars))
    for platform, username in form.usernames.items():
        if username and len(username) > limits.max_handle_chars:
            problems.append(
                FormProblem(field=platform, code="too-long", length=len(username), limit=limits.max_handle_chars)
            )
    problems.sort(key=lambda p: _FORM_ORDER.index(p.code))
    if not problems:
        return FormCheck(
            decision=CodedDecision(
                allowed=True, ruling="R-APP-1", code="complete", reason="the application says what R-APP-1 asks"
            ),
            problems=(),
        )
    first = problems[0].code
    return FormCheck(
        decision=CodedDecision(allowed=False, ruling="R-APP-1", code=first, reason=_FORM_REASONS[first]),
        problems=tuple(problems),
    )


# --- R-APP-1/R-APP-2: the accounts named ------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ApplicationSource:
    """Where a stored application came from. ``served``: the public form or a platform we
    serve; ``readable``: its answers can be read there and, for a plugin platform's command,
    the account that sent it (the verifier's ``user_id`` and ``username``)."""

    served: bool
    readable: bool = True


def check_application_source(source: ApplicationSource) -> CodedDecision:
    """R-APP-1: an application is read only from the form or a served platform, and only when
    it says which account sent it. Codes: ``read``, or ``unknown-source`` (refused)."""
    if not source.served:
        return CodedDecision(
            allowed=False, ruling="R-APP-1", code="unknown-source", reason="applications are not taken from there"
        )
    if not source.readable:
        return CodedDecision(
            allowed=False,
            ruling="R-APP-1",
            code="unknown-source",
            reason="the application does not say which account sent it",
        )
    return CodedDecision(allowed=True, ruling="R-APP-1", code="read", reason="an application from a served source")


@dataclass(frozen=True, kw_only=True)
class AccountLookup:
    """What the flow found for one named account: whether its platform is served (a directory
    is connected), the account's id there (None: no such account), and the id the source itself
    proved (the account that applied), if any. ``label`` is the platform as people call it."""

    platform: str
    label: str
    username: str
    served: bool
    found_id: str | None = None
    proven_id: str | None = None


def check_account(lookup: AccountLookup) -> CodedDecision:
    """One named account: its platform must be served so it can confirm (R-APP-2), the account
    must exist (R-APP-1), and an account the source proved must be the one named (R-APP-2)."""
    where = lookup.label
    if not lookup.served:
        return CodedDecision(
            allowed=False,
            ruling="R-APP-2",
            code=f"{lookup.platform}-not-served",
            reason=f"the {where} is not connected, so that account cannot "
            "confirm the application; apply with another account",
        )
    if lookup.found_id is None:
        return CodedDecision(
            allowed=False,
            ruling="R-APP-1",
            code=f"{lookup.platform}-unknown-user",
            reason=f"there is no {where} account called {lookup.username!r}",
        )
    if lookup.proven_id is not None and lookup.proven_id != lookup.found_id:
        return CodedDecision(
            allowed=False,
            ruling="R-APP-2",
            code="not-own-account",
            reason=f"the {where} account named is not the one that applied",
        )
    return CodedDecision(
        allowed=True, ruling="R-APP-2", code="found", reason=f"the {where} account {lookup.username!r} can confirm"
    )


# --- R-APP-3: duplicates ------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class PriorRecord:
    """What the ledger holds about the accounts named: how many different people own them, the
    owner's open application (id and status) and whether the owner is an active member."""

    owners: int = 0
    open_application: int | None = None
    open_status: str | None = None
    active_member: bool = False


def check_duplicates(prior: PriorRecord) -> CodedDecision:
    """R-APP-3: accounts of several people, a second open application (``duplicate``: the
    applicant is pointed to the open one) or an application from an active member are refused."""
    if prior.owners > 1:
        return CodedDecision(
            allowed=False,
            ruling="R-APP-3",
            code="accounts-of-several-people",
            reason="the accounts named belong to different people in our records",
        )
    if prior.open_application is not None:
        return CodedDecision(
            allowed=False,
            ruling="R-APP-3",
            code="duplicate",
            reason=f"an application is already open (application {prior.open_application})",
            evidence={"open": prior.open_application, "status": prior.open_status},
        )
    if prior.active_member:
        return CodedDecision(
            allowed=False, ruling="R-APP-3", code="already-member", reason="the applicant is already an active member"
        )
    return CodedDecision(allowed=True, ruling="R-APP-3", code="new", reason="no open application and no membership")


# --- R-APP-2: confirmation and expiry -----------------------------------------------------

# An application in one of these states can no longer be confirmed (it has ended unconfirmed).
CLOSED_UNCONFIRMED = frozenset({"expired", "withdrawn", "refused"})


@dataclass(frozen=True, kw_only=True)
class ConfirmationAttempt:
    """A confirmation of one named account: whether the link's account is one the application
    named, that account's platform id, who pressed (a Discord button: the presser's id; a web
    page: None) and the application's status."""

    named: bool
    account_id: str | None = None
    pressed_by: str | None = None
    status: str = "open"


def check_confirmation(attempt: ConfirmationAttempt) -> CodedDecision:
    """R-APP-2: only the account named confirms, and only an open application. Allowed with code
    ``confirm`` (record it) or ``already`` (confirmed before: nothing to do)."""
    if not attempt.named:
        return CodedDecision(
            allowed=False, ruling="R-APP-2", code="foreign-link", reason="this link does not belong to an application"
        )
    if attempt.pressed_by is not None and str(attempt.account_id) != str(attempt.pressed_by):
        return CodedDecision(
            allowed=False,
            ruling="R-APP-2",
            code="not-named-account",
            reason="only the account named in the application can confirm it",
        )
    if attempt.status in CLOSED_UNCONFIRMED:
        return CodedDecision(
            allowed=False, ruling="R-APP-2", code=attempt.status, reason=f"the application is {attempt.status}"
        )
    if attempt.status != "open":
        return CodedDecision(
            allowed=True, ruling="R-APP-2", code="already", reason=f"the application is {attempt.status} already"
        )
    return CodedDecision(
        allowed=True, ruling="R-APP-2", code="confirm", reason="the account named confirms the application"
    )


def confirmation_deadline(submitted_at: datetime, *, charter: Charter) -> datetime:
    """R-APP-2: the moment an application still unconfirmed expires."""
    return submitted_at + timedelta(days=charter.application.confirm_within_days)


def check_expiry(submitted_at: datetime, *, now: datetime, charter: Charter) -> CodedDecision:
    """R-APP-2: an open application expires at its deadline (inclusive); refused = expire it."""
    days = charter.application.confirm_within_days
    deadline = confirmation_deadline(submitted_at, charter=charter)
    if now >= deadline:
        return CodedDecision(
            allowed=False,
            ruling="R-APP-2",
            code="expired",
            reason=f"not confirmed from every named account within {days} days",
            evidence={"deadline": deadline},
        )
    return CodedDecision(
        allowed=True,
        ruling="R-APP-2",
        code="waiting",
        reason=f"may be confirmed until {deadline.isoformat()}",
        evidence={"deadline": deadline},
    )


# --- R-APP-4: what the applicant is told of their application's state -----------------------


@dataclass(frozen=True, kw_only=True)
class ApplicationProgress:
    """An application as its status page reads it: its ``status`` and, when eligibility was
    checked, the last check's outcome (``yes``, ``no``, ``unknown``), ruling and reason."""

    status: str
    check_outcome: str | None = None
    check_ruling: str | None = None
    check_reason: str | None = None


_NOT_MET = "the charter's eligibility rule is not met"


def application_state(progress: ApplicationProgress) -> CodedDecision:
    """R-APP-4: the state an applicant is told, with the ruling that put the application there.
    ``code``: ``waiting`` (confirmations, R-APP-2), ``checking`` (R-ELIG-1), ``unknown`` (the
    last check could not be made: its ruling and reason), ``voting``, ``approved``,
    ``not-approved`` (R-VOTE-APPROVE), ``expired`` (R-APP-2), ``refused`` (not eligible: the last
    check's ruling and reason) or ``other`` (e.g. withdrawn: R-APP-4). ``allowed`` is false for
    an application that ended without approval."""
    status = progress.status
    if status == "confirmed" and progress.check_outcome == "unknown":
        return CodedDecision(
            allowed=True,
            ruling=progress.check_ruling or "R-ELIG-1",
            code="unknown",
            reason=progress.check_reason or "the eligibility figures are not known yet",
        )
    if status == "refused":
        return CodedDecision(
            allowed=False,
            ruling=progress.check_ruling or "R-ELIG-1",
            code="refused",
            reason=progress.check_reason or _NOT_MET,
        )
    known = {
        "open": (True, "R-APP-2", "waiting", "waiting for a confirmation from each account named"),
        "confirmed": (True, "R-ELIG-1", "checking", "confirmed; eligibility is being checked"),
        "voting": (True, "R-VOTE-APPROVE", "voting", "eligible; the members are voting"),
        "approved": (True, "R-VOTE-APPROVE", "approved", "the members approved it"),
        "rejected": (False, "R-VOTE-APPROVE", "not-approved", "the members did not approve it"),
        "expired": (False, "R-APP-2", "expired", "not confirmed from every account named in time"),
    }
    if status in known:
        allowed, ruling, code, reason = known[status]
        return CodedDecision(allowed=allowed, ruling=ruling, code=code, reason=reason)
    return CodedDecision(allowed=False, ruling="R-APP-4", code="other", reason=f"the application is {status}")


# --- R-APP-2, R-APP-3: a member links an account on another platform -----------------------


@dataclass(frozen=True, kw_only=True)
class LinkRequest:
    """A request, sent from a new account, to link it to the membership of an account named on
    another platform. ``named_served``: the named account is on another served platform that
    can receive a direct message; ``already_linked``: the new account is a person's already;
    ``member``: the named account is an active member's; ``pending_other``: a request from the
    new account waits for another person's code."""

    named_served: bool
    already_linked: bool = False
    member: bool = False
    pending_other: bool = False


def check_link_request(request: LinkRequest) -> CodedDecision:
    """R-APP-2 (the named account proves the person by receiving a code) and R-APP-3 (one
    account, one person): ``send-code`` when allowed; else, in this order, ``bad-request``,
    ``already-linked``, ``not-a-member`` or ``pending``."""
    if not request.named_served:
        return CodedDecision(
            allowed=False, ruling="R-APP-2", code="bad-request", reason="no account on another served platform named"
        )
    if request.already_linked:
        return CodedDecision(
            allowed=False, ruling="R-APP-3", code="already-linked", reason="the account is a person's already"
        )
    if not request.member:
        return CodedDecision(
            allowed=False, ruling="R-APP-2", code="not-a-member", reason="the named account is no active member's"
        )
    if request.pending_other:
        return CodedDecision(
            allowed=False, ruling="R-APP-2", code="pending", reason="a request for this account waits for its code"
        )
    return CodedDecision(allowed=True, ruling="R-APP-2", code="send-code", reason="a code goes to the named account")


@dataclass(frozen=True, kw_only=True)
class LinkCode:
    """A code sent back from the new account. ``request_found``: a request from it is open (in
    its window or the one before); ``code_matches``: the code is the one sent for it;
    ``member``: that person is still an active member; ``already_linked``: the account became
    another person's meanwhile (the ledger refused it)."""

    request_found: bool
    code_matches: bool = False
    member: bool = False
    already_linked: bool = False


def check_link_code(code: LinkCode) -> CodedDecision:
    """R-APP-2, R-APP-3: ``link`` when allowed; else, in this order, ``no-request``,
    ``wrong-code``, ``not-a-member`` or ``already-linked``."""
    if not code.request_found:
        return CodedDecision(allowed=False, ruling="R-APP-2", code="no-request", reason="no open link request")
    if not code.code_matches:
        return CodedDecision(allowed=False, ruling="R-APP-2", code="wrong-code", reason="not the code sent")
    if not code.member:
        return CodedDecision(
            allowed=False, ruling="R-APP-2", code="not-a-member", reason="the membership is no longer active"
        )
    if code.already_linked:
        return CodedDecision(
            allowed=False, ruling="R-APP-3", code="already-linked", reason="the account is another person's"
        )
    return CodedDecision(allowed=True, ruling="R-APP-2", code="link", reason="the account joins the membership")
