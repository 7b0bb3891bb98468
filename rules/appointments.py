"""WG role appointments (R-ROLE-APPOINT), checked against R-ROLE-* with ``check_roles``.

Pure: who appoints each role, whether one appointment is allowed (the R-ROLE-* findings it
adds to the roles held now, plus the appointment's own conditions), the explanation shown where
it was asked for, and which roles are vacant. No I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from rules.charter import Charter
from rules.decision import Finding
from rules.roles import WgRoles, check_roles

__all__ = ["APPOINTED_BY", "LABELS", "OPTIONAL", "AppointmentCheck", "Vacancy", "check_appointment", "vacancies"]

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
