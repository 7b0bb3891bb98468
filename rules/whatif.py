"""`charterflow rules what-if`: one JSON case in, one JSON answer out.

This is a stable contract other tools rely on; the case kinds and their outputs are listed in
rules/README.md. Malformed input raises :class:`CaseError` naming the field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime
from itertools import accumulate
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from rules.admins import check_admins, count_admins
from rules.ballots import tally
from rules.board import needs_board
from rules.charter import Charter
from rules.eligibility import Applicant, DiscordEvidence, DiscourseEvidence, decide_eligibility
from rules.errors import CaseError, describe_validation_error
from rules.roles import WgRoles, check_roles
from rules.terms import term_status, term_window

MAX_CASE_BYTES = 1_000_000
MAX_DEPTH = 32  # a case is a few levels deep; deeper is refused before Python's parser recurses
MAX_INT_DIGITS = 18
# The rules add a few years at most (terms, grace periods): dates they can compute with.
FIRST_YEAR, LAST_YEAR = 1900, 9000


def _text(value: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("holds a lone surrogate (\\ud800-\\udfff), not text") from None
    return value


def _computable(value: datetime) -> datetime:
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise ValueError(f"year {value.year} is outside {FIRST_YEAR}-{LAST_YEAR}, the dates the rules compute with")
    return value


Handle = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100), AfterValidator(_text)]
Text = Annotated[str, AfterValidator(_text)]
Count = Annotated[int, Field(ge=0, le=10**9)]
When = Annotated[AwareDatetime, AfterValidator(_computable)]


class _Case(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ApplicationIn(_Case):
    forum: Handle | None = None
    discord: Handle | None = None
    nominator: Handle | None = None


class DiscourseIn(_Case):
    created_at: When
    days_visited: Count
    post_count: Count
    last_seen_at: When | None = None
    fetched_at: When | None = None


class DiscordIn(_Case):
    joined_at: When
    messages_90d: Count | None
    fetched_at: When | None = None


class EvidenceIn(_Case):
    discourse: DiscourseIn | None = None
    discord: DiscordIn | None = None


class EligibilityCase(_Case):
    case: Literal["eligibility"]
    now: When
    application: ApplicationIn
    evidence: EvidenceIn
    dsf_members: list[Handle] = Field(default_factory=list)


class BallotCase(_Case):
    case: Literal["approval", "removal"]
    electorate: list[Handle]
    subject: Handle | None = None
    votes: dict[Handle, Literal["yes", "no", "abstain"]]
    opened_at: When
    now: When

    @model_validator(mode="after")
    def _subject_for_removal(self) -> BallotCase:
        if self.case == "removal" and self.subject is None:
            raise ValueError("subject: a removal ballot needs the member under vote")
        if self.now < self.opened_at:
            raise ValueError("now: earlier than opened_at")
        if self.case == "removal" and self.subject not in self.electorate:
            raise ValueError(
                f"subject: {self.subject!r} is not in the electorate; a removal vote is about a member of it (R-REMOVE)"
            )
        return self


class AdminsCase(_Case):
    case: Literal["admins"]
    platforms: list[Handle] = Field(min_length=1)
    admins: dict[Handle, list[Handle]]
    # R-ADMIN-2 counts WG members only: without ``members`` every holder but a platform account
    # counts (the roster is not known).
    members: list[Handle] | None = None
    platform_accounts: list[Handle] = Field(default_factory=list)

    @model_validator(mode="after")
    def _known_platforms(self) -> AdminsCase:
        unknown = [p for p in self.admins if p not in self.platforms]
        if unknown:
            raise ValueError(f"admins.{unknown[0]}: not one of the platforms ({', '.join(self.platforms)})")
        return self


class RolesIn(_Case):
    chair: Handle
    co_chair: Handle | None = None
    coc_liaison: Handle | None = None
    board_liaison: Handle | None = None
    sc_liaison: Handle | None = None


class RolesCase(_Case):
    case: Literal["roles"]
    roles: RolesIn
    home_platform: dict[Handle, Handle] = Field(default_factory=dict)
    board_members: list[Handle] = Field(default_factory=list)
    steering_council: list[Handle] = Field(default_factory=list)


class TermCase(_Case):
    case: Literal["term"]
    term_start: When
    now: When
    opted_in: bool
    opted_in_at: When | None = None


class ProposalIn(_Case):
    kind: Handle
    title: Text | None = None


class BoardCase(_Case):
    case: Literal["board"]
    proposal: ProposalIn


Case = Annotated[
    EligibilityCase | BallotCase | AdminsCase | RolesCase | TermCase | BoardCase, Field(discriminator="case")
]
KINDS = ("eligibility", "approval", "removal", "admins", "roles", "term", "board")


class _Envelope(BaseModel):
    case: Case


def parse_case(raw: str | bytes | dict[str, Any]) -> BaseModel:
    """Validate a case (JSON text or an already-decoded object); :class:`CaseError` names the
    field that is wrong."""
    if isinstance(raw, (str, bytes)):
        data = _decode(raw)
    else:
        data = raw
    if not isinstance(data, dict):
        raise CaseError("a case must be a JSON object")
    kind = data.get("case")
    if kind is None:
        raise CaseError(f"case: required field is missing (one of {', '.join(KINDS)})")
    if kind not in KINDS:
        raise CaseError(f"case: unknown kind {kind!r} (expected one of {', '.join(KINDS)})")
    try:
        return _Envelope.model_validate({"case": data}).case
    except ValidationError as exc:
        # Drop the envelope and discriminator prefix ("case.removal.") so each path is the
        # case file's own.
        raise CaseError(
            describe_validation_error(exc).replace(f"case.{kind}: ", "").replace(f"case.{kind}.", "")
        ) from None


_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')


def _check_depth(raw: str) -> None:
    """:class:`CaseError` naming the top-level field under which ``raw`` nests deeper than
    MAX_DEPTH (checked before parsing: Python's parser recurses, and fails on 100,000 levels)."""
    brackets = re.sub(r"[^\[\]{}]+", "", _TOKENS.sub(lambda m: "" if m[0][0] == '"' else m[0], raw))
    if max(accumulate(1 if c in "[{" else -1 for c in brackets), default=0) <= MAX_DEPTH:
        return
    depth, field = 0, "case"
    for match in _TOKENS.finditer(raw):
        token = match[0]
        if token[0] == '"':
            if depth == 1:
                field = token[1:-1][:40]
        else:
            depth += 1 if token in "[{" else -1
            if depth > MAX_DEPTH:
                break
    raise CaseError(f"{field}: nested deeper than {MAX_DEPTH} levels")


def _decode(raw: str | bytes) -> Any:
    """The JSON of a case file: UTF-8, at most MAX_DEPTH levels, integers of at most
    MAX_INT_DIGITS digits (:class:`CaseError` otherwise)."""
    if len(raw) > MAX_CASE_BYTES:
        raise CaseError(f"case is larger than {MAX_CASE_BYTES} bytes")
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CaseError(f"not UTF-8 text (byte {exc.start} is {raw[exc.start]:#04x})") from None
    _check_depth(raw)

    def integer(text: str) -> Any:
        # Too long for any count: pydantic then names the field ("a finite number").
        return int(text) if len(text.lstrip("-")) <= MAX_INT_DIGITS else float("inf")

    try:
        return json.loads(raw, parse_int=integer)
    except (ValueError, RecursionError) as exc:
        raise CaseError(f"not valid JSON: {exc}") from None


def evaluate_case(raw: str | bytes | dict[str, Any], *, charter: Charter) -> dict[str, Any]:
    """Evaluate one case and return the JSON-ready answer."""
    case = parse_case(raw)
    try:
        return _EVALUATORS[type(case)](case, charter)
    except ValueError as exc:  # a rule refused the input itself (for example an unknown kind)
        raise CaseError(str(exc)) from None
    except OverflowError:  # belt and braces: the dates are bounded when validated
        raise CaseError("a date is outside the range the rules can compute with") from None


def _eligibility(case: EligibilityCase, charter: Charter) -> dict[str, Any]:
    ev = case.evidence
    decision = decide_eligibility(
        Applicant(forum=case.application.forum, discord=case.application.discord, nominator=case.application.nominator),
        discourse=DiscourseEvidence(**ev.discourse.model_dump()) if ev.discourse else None,
        discord=DiscordEvidence(**ev.discord.model_dump()) if ev.discord else None,
        dsf_members=case.dsf_members,
        now=case.now,
        charter=charter,
    )
    return {
        "allowed": decision.allowed,
        "ruling": decision.ruling,
        "reason": decision.reason,
        "status": decision.evidence["status"],
        "evidence": decision.evidence,
    }


def _ballot(case: BallotCase, charter: Charter) -> dict[str, Any]:
    result = tally(
        case.case,
        electorate=case.electorate,
        votes=case.votes,
        subject=case.subject,
        opened_at=case.opened_at,
        now=case.now,
        charter=charter,
    )
    return {
        "outcome": result.outcome,
        "yes": result.yes,
        "no": result.no,
        "abstain": result.abstain,
        "electorate": result.electorate,
        "needed": result.needed,
        "ruling": result.ruling,
        "reason": result.reason,
        "decided_early": result.decided_early,
        "closes_at": result.closes_at.isoformat(),
        "refused": [r.to_dict() for r in result.refused],
    }


def _admins(case: AdminsCase, charter: Charter) -> dict[str, Any]:
    counts = count_admins(
        case.admins,
        platforms=case.platforms,
        members=case.members,
        platform_accounts=case.platform_accounts,
        charter=charter,
    )
    decision = check_admins(
        case.admins,
        platforms=case.platforms,
        members=case.members,
        platform_accounts=case.platform_accounts,
        charter=charter,
    )
    return {
        "allowed": decision.allowed,
        "violations": [v.to_dict() for v in decision.violations],
        "ruling": decision.ruling,
        "reason": decision.reason,
        "counts": {p: c.to_dict() for p, c in counts.items()},
        "lines": [c.line() for c in counts.values()],
    }


def _roles(case: RolesCase, charter: Charter) -> dict[str, Any]:
    decision = check_roles(
        WgRoles(**case.roles.model_dump()),
        home_platform=case.home_platform,
        board_members=case.board_members,
        steering_council=case.steering_council,
        charter=charter,
    )
    return {
        "allowed": decision.allowed,
        "violations": [v.to_dict() for v in decision.violations],
        "warnings": [w.to_dict() for w in decision.warnings],
        "ruling": decision.ruling,
        "reason": decision.reason,
    }


def _term(case: TermCase, charter: Charter) -> dict[str, Any]:
    status, decision = term_status(
        case.term_start, now=case.now, opted_in=case.opted_in, opted_in_at=case.opted_in_at, charter=charter
    )
    window = term_window(case.term_start, charter=charter)
    out = {
        "status": status,
        "term_end": window.end.isoformat(),
        "ruling": decision.ruling,
        "reason": decision.reason,
        "opt_in_opens": window.opt_in_opens.isoformat(),
        "grace_ends": window.grace_ends.isoformat(),
    }
    if "new_term_end" in decision.evidence:
        out["new_term_end"] = decision.evidence["new_term_end"]
    return out


def _board(case: BoardCase, charter: Charter) -> dict[str, Any]:
    try:
        decision = needs_board(case.proposal.kind, charter=charter)
    except ValueError as exc:
        raise CaseError(f"proposal.kind: {exc}") from None
    return {"needs_board": not decision.allowed, "ruling": decision.ruling, "reason": decision.reason}


_EVALUATORS: dict[type[BaseModel], Callable[[Any, Charter], dict[str, Any]]] = {
    EligibilityCase: _eligibility,
    BallotCase: _ballot,
    AdminsCase: _admins,
    RolesCase: _roles,
    TermCase: _term,
    BoardCase: _board,
}
