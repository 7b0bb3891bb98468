"""WG role appointments (R-ROLE-APPOINT), checked against R-ROLE-* with ``check_roles``.

Pure: who appoints each role, whether one appointment is allowed (the R-ROLE-* findings it
adds to the roles held now, plus the appointment's own conditions), the explanation shown where
it was asked for, and which roles are vacant. No I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from rules.charter import Charter
from rules.decision import CodedDecision, Decision, Finding
from rules.roles import WgRoles, check_roles

__all__ = [
    "APPOINTED_BY",
    "LABELS",
    "OPTIONAL",
    "AppointmentCheck",
    "Vacancy",
    "check_appointment",
    "check_ballot_proposer",
    "check_ballot_role",
    "check_nominee",
    "recheck_pending",
    "recorded_appointment",
    "vacancies",
    "vacancies_reported",
]

# R-ROLE-APPOINT: how each role is filled. The SC Liaison's way is not given by the charter:
# it is recorded as given, like the CoC WG's choice (R-ROLE-COC), and checked by R-ROLE-SC.
APPOINTED_BY = {
    "chair": "ballot",
    "co_chair": "ballot",
    "coc_liaison": "coc-wg",
    "board_liaison": "board",
    "sc_liaison": "steering-council",
}
LABELS = {
    "chair": "Chair",
    "co_chair": "Co-Chair",
    "coc_liaison": "CoC WG Liaison",
    "board_liaison": "Board Liaison",
    "sc_liaison": "SC Liaison",
}
WHO_APPOINTS = {
    "ballot": "a WG ballot",
    "coc-wg": "the CoC WG (its contact confirms)",
    "board": "the DSF Board (Slack)",
    "steering-council": "the Steering Council",
}
OPTIONAL = frozenset({"sc_liaison"})  # R-ROLE-SC: "optional role"
_MEMBERS_ONLY = frozenset({"chair", "co_chair"})  # Chair and Co-Chair are WG members


@dataclass(frozen=True, kw_only=True)
class AppointmentCheck:
    """Whether ``nominee`` may take ``role``: refused on any violation (hard rule), with
    warnings (R-ROLE-CHAIR) that do not stop it. ``explanation`` is the text shown to whoever
    asked (a Discord answer, a Slack message, the CLI)."""

    allowed: bool
    ruling: str
    role: str
    nominee: str
    violations: tuple[Finding, ...] = ()
    warnings: tuple[Finding, ...] = ()

    @property
    def explanation(self) -> str:
        what = f"{self.nominee} as {LABELS[self.role]}"
        if not self.allowed:
            first = self.violations[0]
            return (
                f"Refused by {first.ruling}: {what}: "
                + "; ".join(
                    f.reason if f.ruling == first.ruling else f"{f.ruling}: {f.reason}" for f in self.violations
                )
                + ". Nothing was announced."
            )
        text = f"Allowed ({self.ruling}): {what}, checked against R-ROLE-*."
        for finding in self.warnings:
            text += f" Warning {finding.ruling}: {finding.reason}."
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "allowed": self.allowed,
            "ruling": self.ruling,
            "role": self.role,
            "nominee": self.nominee,
            "explanation": self.explanation,
            "violations": [f.to_dict() for f in self.violations],
            "warnings": [f.to_dict() for f in self.warnings],
        }


def check_appointment(
    current: WgRoles,
    *,
    role: str,
    nominee: str,
    members: Collection[str],
    home_platform: Mapping[str, str],
    board_members: Collection[str],
    steering_council: Collection[str],
    charter: Charter,
) -> AppointmentCheck:
    """Check giving ``role`` to ``nominee`` (a handle) when ``current`` holds the WG roles.

    The R-ROLE-* rules are ``check_roles``'s (the roster import's checks); only the findings
    this change adds count, so an older problem elsewhere does not block it. On top:
    R-ROLE-APPOINT refuses a role its holder already has, and a Chair or Co-Chair who is not an
    active member (``members``)."""
    if role not in APPOINTED_BY:
        raise ValueError(f"role: {role!r} is not one of {', '.join(APPOINTED_BY)}")
    own: list[Finding] = []
    if getattr(current, role) == nominee:
        own.append(
            Finding(ruling="R-ROLE-APPOINT", subject=nominee, reason=f"{nominee} already holds the {LABELS[role]} role")
        )
    if role in _MEMBERS_ONLY and nominee not in set(members):
        own.append(
            Finding(
                ruling="R-ROLE-APPOINT",
                subject=nominee,
                reason=f"the {LABELS[role]} is chosen among the WG's active members, and {nominee} is not one",
            )
        )
    check = partial(
        check_roles,
        home_platform=home_platform,
        board_members=board_members,
        steering_council=steering_council,
        charter=charter,
    )
    before = check(current)
    after = check(replace(current, **{role: nominee}))
    violations = own + [f for f in after.violations if f not in before.violations]
    warnings = [f for f in after.warnings if f not in before.warnings]
    return AppointmentCheck(
        allowed=not violations,
        ruling=violations[0].ruling if violations else "R-ROLE-APPOINT",
        role=role,
        nominee=nominee,
        violations=tuple(violations),
        warnings=tuple(warnings),
    )


@dataclass(frozen=True, kw_only=True)
class Vacancy:
    """A WG role nobody holds, and who fills it."""

    role: str
    optional: bool

    @property
    def line(self) -> str:
        return (
            f"{LABELS[self.role]}: vacant{' (optional role)' if self.optional else ''}; "
            f"appointed by {WHO_APPOINTS[APPOINTED_BY[self.role]]}"
        )


def vacancies(current: WgRoles) -> tuple[Vacancy, ...]:
    """The vacant WG roles (R-ROLE-APPOINT reports them to the WG monthly until filled)."""
    return tuple(Vacancy(role=role, optional=role in OPTIONAL) for role in APPOINTED_BY if not getattr(current, role))


def vacancies_reported(vacant: Sequence[Vacancy]) -> Decision:
    """R-ROLE-APPOINT: the vacant roles are reported to the WG (the monthly report's record)."""
    return Decision(allowed=True, ruling="R-ROLE-APPOINT", reason=f"{len(vacant)} role(s) vacant, reported to the WG")


def check_nominee(key: str, *, known: bool) -> CodedDecision:
    """R-ROLE-APPOINT: only a person the ledger knows (by handle or id) is appointed: ``unknown``
    otherwise, with how to add them."""
    if not known:
        return CodedDecision(
            allowed=False,
            ruling="R-ROLE-APPOINT",
            code="unknown",
            reason=f"{key!r} is not a person in the ledger (import them with `charterflow roster import` first)",
        )
    return CodedDecision(allowed=True, ruling="R-ROLE-APPOINT", code="known", reason=f"{key!r} is in the ledger")


def check_ballot_proposer(proposer: str, *, voting: bool) -> CodedDecision:
    """R-ROLE-APPOINT ("by a WG ballot, as R-VOTE-APPROVE"): only a voting member proposes a
    Chair or Co-Chair (``not-voting`` otherwise)."""
    if not voting:
        return CodedDecision(
            allowed=False,
            ruling="R-ROLE-APPOINT",
            code="not-voting",
            reason=f"{proposer} is not a voting member: only a voting member may propose a Chair or Co-Chair",
        )
    return CodedDecision(
        allowed=True, ruling="R-ROLE-APPOINT", code="proposed", reason=f"{proposer} is a voting member"
    )


def recheck_pending(checked: AppointmentCheck, *, nominee_holds_role: bool) -> AppointmentCheck:
    """An open request checked again when it is decided. When its nominee already holds the
    role, this request was recorded before (a crash before the announcement): allowed as it
    stands, not refused as "already holds"; otherwise ``checked`` as it is."""
    if not nominee_holds_role:
        return checked
    return AppointmentCheck(allowed=True, ruling="R-ROLE-APPOINT", role=checked.role, nominee=checked.nominee)


def recorded_appointment(
    *, role: str, nominee: str, status: str, ruling: str | None, warnings: Sequence[str]
) -> AppointmentCheck:
    """The check of an appointment already decided, rebuilt from what the ledger recorded (the
    rulings only: the reasons were shown at the time). ``refused`` cites its recorded ruling."""
    if status == "refused":
        cited = ruling or "R-ROLE-APPOINT"
        return AppointmentCheck(
            allowed=False,
            ruling=cited,
            role=role,
            nominee=nominee,
            violations=(Finding(ruling=cited, subject=nominee, reason="refused when it was decided"),),
        )
    found = tuple(Finding(ruling=r, subject=nominee, reason="recorded with the appointment") for r in warnings)
    return AppointmentCheck(allowed=True, ruling="R-ROLE-APPOINT", role=role, nominee=nominee, warnings=found)


def check_ballot_role(role: str) -> CodedDecision:
    """R-ROLE-APPOINT: a WG ballot fills only the roles ``APPOINTED_BY`` gives to it (the Chair
    and the Co-Chair): ``not-by-ballot`` for any other."""
    if APPOINTED_BY.get(role) != "ballot":
        return CodedDecision(
            allowed=False,
            ruling="R-ROLE-APPOINT",
            code="not-by-ballot",
            reason="a WG ballot fills the Chair and the Co-Chair; the CoC and Board Liaisons are named "
            "by the CoC WG and the Board",
        )
    return CodedDecision(allowed=True, ruling="R-ROLE-APPOINT", code="by-ballot", reason=f"a WG ballot fills {role}")
