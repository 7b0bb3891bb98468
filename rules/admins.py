"""Administrator privileges: R-ADMIN-1 (nobody is admin everywhere) and R-ADMIN-2 (at least two
admins per platform). R-ADMIN-3 (refuse before sending) is how flows use these checks."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from rules.charter import Charter
from rules.decision import Decision, Finding, findings_decision


def check_admins(
    admins: Mapping[str, Collection[str]], *, platforms: Collection[str] | None = None,
    charter: Charter,
) -> Decision:
    """Check who holds Administrator privileges on each approved platform.

    ``platforms`` defaults to the charter's approved platforms; a platform missing from
    ``admins`` has no admins. R-ADMIN-1 applies only with two or more platforms: with one, every
    admin would be "admin everywhere" and R-ADMIN-2 could never hold alongside it.
    """
    names = list(dict.fromkeys(platforms if platforms is not None else charter.platforms))
    holders = {p: sorted(set(admins.get(p, ()))) for p in names}
    violations: list[Finding] = []
    minimum = charter.admins.min_admins_per_platform
    for platform in names:
        count = len(holders[platform])
        if count < minimum:
            who = ", ".join(holders[platform]) or "nobody"
            violations.append(Finding(
                ruling="R-ADMIN-2", subject=platform,
                reason=f"{platform} has {count} admin{'s' if count != 1 else ''} ({who}); "
                       f"at least {minimum} are required"))
    if charter.admins.forbid_admin_on_all_platforms and len(names) >= 2:
        everywhere = set.intersection(*(set(holders[p]) for p in names))
        for person in sorted(everywhere):
            violations.append(Finding(
                ruling="R-ADMIN-1", subject=person,
                reason=f"{person} is admin on every approved platform ({', '.join(names)}); "
                       "no single member may be"))
    return findings_decision(
        violations=violations, warnings=[], ok_ruling="R-ADMIN-2",
        ok_reason=f"every platform has at least {minimum} admins and nobody is admin everywhere",
        evidence={"admins": holders})


def check_admin_change(
    admins: Mapping[str, Collection[str]], *, platform: str, person: str, grant: bool,
    charter: Charter,
) -> Decision:
    """Would granting (or revoking) admin on ``platform`` to ``person`` keep both invariants?
    Checked on the resulting state, before anything is sent (R-ADMIN-3)."""
    after = {p: set(v) for p, v in admins.items()}
    after.setdefault(platform, set())
    (after[platform].add if grant else after[platform].discard)(person)
    before = check_admins(admins, charter=charter)
    result = check_admins(after, charter=charter)
    # Only refuse what the change breaks: an already-broken invariant must not block its repair.
    new = [v for v in result.violations if v not in before.violations]
    verb = "granting" if grant else "revoking"
    return findings_decision(
        violations=new, warnings=list(before.violations), ok_ruling="R-ADMIN-3",
        ok_reason=f"{verb} admin on {platform} to {person} keeps R-ADMIN-1 and R-ADMIN-2",
        evidence={"before": {p: sorted(v) for p, v in admins.items()},
                  "after": {p: sorted(v) for p, v in after.items()}})
