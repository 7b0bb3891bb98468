"""Roles inside the working group: R-ROLE-CHAIR, R-ROLE-COC, R-ROLE-BOARD, R-ROLE-SC."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from rules.charter import Charter
from rules.decision import Decision, Finding, findings_decision


@dataclass(frozen=True, kw_only=True)
class WgRoles:
    """Who holds each WG role (a handle or person key), ``None`` when the role is vacant."""

    chair: str | None = None
    co_chair: str | None = None
    coc_liaison: str | None = None
    board_liaison: str | None = None
    sc_liaison: str | None = None


def _chair_findings(
    roles: WgRoles, home_platform: Mapping[str, str], *, refuse: bool
) -> tuple[list[Finding], list[Finding]]:
    """R-ROLE-CHAIR: the (violations, warnings) for the Chair and Co-Chair."""
    violations: list[Finding] = []
    warnings: list[Finding] = []
    if not (roles.chair and roles.co_chair):
        return violations, warnings
    if roles.chair == roles.co_chair:
        violations.append(
            Finding(
                ruling="R-ROLE-CHAIR",
                subject=roles.chair,
                reason=f"{roles.chair} cannot be both Chair and Co-Chair: the charter asks for "
                "two people so the group stays balanced",
            )
        )
        return violations, warnings
    chair_home = home_platform.get(roles.chair)
    co_home = home_platform.get(roles.co_chair)
    bucket = violations if refuse else warnings
    if chair_home is None or co_home is None:
        missing = roles.chair if chair_home is None else roles.co_chair
        warnings.append(
            Finding(
                ruling="R-ROLE-CHAIR",
                subject=missing,
                reason=f"home platform of {missing} is not recorded, so it cannot be checked "
                "that Chair and Co-Chair come from separate platforms",
            )
        )
    elif chair_home == co_home:
        bucket.append(
            Finding(
                ruling="R-ROLE-CHAIR",
                subject=f"{roles.chair}, {roles.co_chair}",
                reason=f"Chair {roles.chair} and Co-Chair {roles.co_chair} both come from "
                f"{chair_home}; ideally they represent separate platforms",
            )
        )
    return violations, warnings


def _liaison_violations(
    roles: WgRoles,
    *,
    board_members: Collection[str],
    steering_council: Collection[str],
    board_may_be_coc: bool,
) -> list[Finding]:
    """R-ROLE-BOARD and R-ROLE-SC: the liaisons' violations."""
    violations: list[Finding] = []
    if roles.board_liaison:
        if roles.board_liaison not in set(board_members):
            violations.append(
                Finding(
                    ruling="R-ROLE-BOARD",
                    subject=roles.board_liaison,
                    reason=f"Board Liaison {roles.board_liaison} is not on the list of active DSF Board members",
                )
            )
        if roles.coc_liaison and roles.board_liaison == roles.coc_liaison and not board_may_be_coc:
            violations.append(
                Finding(
                    ruling="R-ROLE-BOARD",
                    subject=roles.board_liaison,
                    reason=f"{roles.board_liaison} cannot be both Board Liaison and CoC WG Liaison",
                )
            )

    if roles.sc_liaison and roles.sc_liaison not in set(steering_council):
        violations.append(
            Finding(
                ruling="R-ROLE-SC",
                subject=roles.sc_liaison,
                reason=f"SC Liaison {roles.sc_liaison} is not on the list of active Steering Council members",
            )
        )
    return violations


def check_roles(
    roles: WgRoles,
    *,
    home_platform: Mapping[str, str],
    board_members: Collection[str],
    steering_council: Collection[str],
    charter: Charter,
) -> Decision:
    """Check the WG roles against R-ROLE-*; R-ROLE-CHAIR gives warnings unless the charter
    file says ``chair_cochair_separate_platforms = "refuse"``."""
    rc = charter.roles
    violations, warnings = _chair_findings(roles, home_platform, refuse=rc.chair_cochair_separate_platforms == "refuse")
    violations += _liaison_violations(
        roles,
        board_members=board_members,
        steering_council=steering_council,
        board_may_be_coc=rc.board_liaison_may_be_coc_liaison,
    )

    held = {name: who for name, who in vars(roles).items() if who}
    return findings_decision(
        violations=violations,
        warnings=warnings,
        ok_ruling="R-ROLE-BOARD",
        ok_reason="the WG roles meet R-ROLE-BOARD and R-ROLE-SC" + (" (with warnings)" if warnings else ""),
        evidence={"roles": held, "home_platform": {h: home_platform.get(h) for h in sorted(set(held.values()))}},
    )
