"""Administrator privileges: R-ADMIN-1 (nobody is admin everywhere), R-ADMIN-2 (at least two
admins per platform, counting WG members only) and R-ADMIN-4 (ending a membership revokes admin
unless that would leave a platform short). R-ADMIN-3 (refuse before sending) is how flows use
these checks.

Who counts toward R-ADMIN-2: a holder who is a WG member. The platform's own accounts
(Discourse ``system``, bots, integrations) and people outside the WG may hold admin, but they
are listed as "not counted" with the reason. ``members=None`` means the caller does not know
the roster: then every holder that is not a platform account counts (what-if cases without a
``members`` list).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from functools import partial

from rules.charter import Charter
from rules.decision import Decision, Finding, findings_decision

PLATFORM_ACCOUNT = "platform account"
NOT_A_MEMBER = "not a WG member"
# How the WG calls its platforms in messages; any other platform is shown by its name.
LABELS = {"discourse": "Forum", "discord": "Discord", "slack": "Slack", "matrix": "Matrix"}


def label(platform: str) -> str:
    """The platform's name as the WG says it ("Forum" for ``discourse``)."""
    return LABELS.get(platform, platform)


def place(platform: str) -> str:
    """The platform's name inside a sentence: "the Forum", "Discord"."""
    return f"the {label(platform)}" if platform == "discourse" else label(platform)


@dataclass(frozen=True, kw_only=True)
class AdminCount:
    """The admins of one platform, split into those R-ADMIN-2 counts and those it does not."""

    platform: str
    counted: tuple[str, ...]
    not_counted: tuple[tuple[str, str], ...] = ()  # (holder, why)

    @property
    def count(self) -> int:
        return len(self.counted)

    def line(self) -> str:
        """``Forum: 2 admins count (ash, birch); not counted: system (platform account)``."""
        n = self.count
        who = f" ({', '.join(self.counted)})" if self.counted else ""
        text = f"{label(self.platform)}: {n} admin{'s' if n != 1 else ''} count{'' if n != 1 else 's'}{who}"
        if self.not_counted:
            text += "; not counted: " + ", ".join(f"{h} ({why})" for h, why in self.not_counted)
        return text

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-ready form."""
        return {
            "counted": list(self.counted),
            "not_counted": [{"holder": h, "why": why} for h, why in self.not_counted],
            "line": self.line(),
        }


def count_admins(
    admins: Mapping[str, Collection[str]],
    *,
    members: Collection[str] | None = None,
    platform_accounts: Collection[str] = (),
    platforms: Collection[str] | None = None,
    charter: Charter,
) -> dict[str, AdminCount]:
    """Per platform, which admins count toward R-ADMIN-2 and which do not (and why)."""
    names = list(dict.fromkeys(platforms if platforms is not None else charter.platforms))
    accounts, roster = set(platform_accounts), None if members is None else set(members)
    out: dict[str, AdminCount] = {}
    for platform in names:
        counted: list[str] = []
        skipped: list[tuple[str, str]] = []
        for holder in sorted(set(admins.get(platform, ()))):
            if holder in accounts:
                skipped.append((holder, PLATFORM_ACCOUNT))
            elif roster is not None and holder not in roster:
                skipped.append((holder, NOT_A_MEMBER))
            else:
                counted.append(holder)
        # Platform accounts first, then people outside the WG.
        skipped.sort(key=lambda item: (item[1] != PLATFORM_ACCOUNT, item[0]))
        out[platform] = AdminCount(platform=platform, counted=tuple(counted), not_counted=tuple(skipped))
    return out


def check_admins(
    admins: Mapping[str, Collection[str]],
    *,
    platforms: Collection[str] | None = None,
    members: Collection[str] | None = None,
    platform_accounts: Collection[str] = (),
    charter: Charter,
) -> Decision:
    """Check who holds Administrator privileges on each approved platform.

    ``platforms`` defaults to the charter's approved platforms; a platform missing from
    ``admins`` has no admins. R-ADMIN-2 counts WG members only (see the module docstring).
    R-ADMIN-1 applies to every holder but the platform's own accounts (a non-member admin
    everywhere is no better than a member), and only with two or more platforms: with one,
    every admin would be "admin everywhere" and R-ADMIN-2 could never hold alongside it.
    """
    counts = count_admins(
        admins, members=members, platform_accounts=platform_accounts, platforms=platforms, charter=charter
    )
    names = list(counts)
    accounts = set(platform_accounts)
    holders = {p: sorted(set(admins.get(p, ()))) for p in names}
    violations: list[Finding] = []
    minimum = charter.admins.min_admins_per_platform
    for platform, count in counts.items():
        if count.count < minimum:
            violations.append(Finding(ruling="R-ADMIN-2", subject=platform, reason=_short_reason(count, minimum)))
    if charter.admins.forbid_admin_on_all_platforms and len(names) >= 2:
        everywhere = set.intersection(*(set(holders[p]) for p in names)) - accounts
        for person in sorted(everywhere):
            violations.append(
                Finding(
                    ruling="R-ADMIN-1",
                    subject=person,
                    reason=f"{person} is admin on every approved platform ({', '.join(names)}); "
                    "no single member may be",
                )
            )
    return findings_decision(
        violations=violations,
        warnings=[],
        ok_ruling="R-ADMIN-2",
        ok_reason=f"every platform has at least {minimum} admins who are WG members and nobody is admin everywhere",
        evidence={
            "admins": holders,
            "counted": {p: list(c.counted) for p, c in counts.items()},
            "not_counted": {p: dict(c.not_counted) for p, c in counts.items()},
            "lines": [c.line() for c in counts.values()],
        },
    )


def _short_reason(count: AdminCount, minimum: int) -> str:
    n, who = count.count, ", ".join(count.counted) or "nobody"
    s = "s" if n != 1 else ""
    if not count.not_counted:
        return f"{count.platform} has {n} admin{s} ({who}); at least {minimum} are required"
    skipped = ", ".join(f"{h} ({why})" for h, why in count.not_counted)
    return (
        f"{count.platform} has {n} admin{s} who count{'' if s else 's'} toward R-ADMIN-2 "
        f"({who}); at least {minimum} are required; not counted: {skipped}"
    )


def worse(before: Decision, after: Decision) -> list[Finding]:
    """The violations of ``after`` that ``before`` did not have or that got worse: a platform
    newly short of counted admins or with fewer of them than before (R-ADMIN-2), a person newly
    admin everywhere (R-ADMIN-1). A broken state may be repaired step by step."""
    was = {(v.ruling, v.subject) for v in before.violations}
    counted_before = before.evidence.get("counted", {})
    counted_after = after.evidence.get("counted", {})
    out = []
    for v in after.violations:
        if (v.ruling, v.subject) not in was:
            out.append(v)
        elif v.ruling == "R-ADMIN-2" and (
            len(counted_after.get(v.subject, ())) < len(counted_before.get(v.subject, ()))
        ):
            out.append(v)
    return out


def check_admin_change(
    admins: Mapping[str, Collection[str]],
    *,
    platform: str,
    person: str,
    grant: bool,
    members: Collection[str] | None = None,
    platform_accounts: Collection[str] = (),
    charter: Charter,
) -> Decision:
    """Would granting (or revoking) admin on ``platform`` to ``person`` keep both invariants?
    Checked on the resulting state, before anything is sent (R-ADMIN-3)."""
    after = {p: set(v) for p, v in admins.items()}
    after.setdefault(platform, set())
    (after[platform].add if grant else after[platform].discard)(person)
    check = partial(check_admins, members=members, platform_accounts=platform_accounts, charter=charter)
    before = check(admins)
    result = check(after)
    # Only refuse what the change breaks: an already-broken invariant must not block its repair.
    verb = "granting" if grant else "revoking"
    return findings_decision(
        violations=worse(before, result),
        warnings=list(before.violations),
        ok_ruling="R-ADMIN-3",
        ok_reason=f"{verb} admin on {platform} to {person} keeps R-ADMIN-1 and R-ADMIN-2",
        evidence={
            "before": {p: sorted(v) for p, v in admins.items()},
            "after": {p: sorted(v) for p, v in after.items()},
        },
    )


# --- R-ADMIN-4: ending a membership ----------------------------------------------------------

ADMIN = "admin"
MODERATOR = "moderator"


@dataclass(frozen=True, kw_only=True)
class EndOfMembership:
    """What ending ``person``'s membership does to their platform roles (R-ADMIN-4)."""

    person: str
    revoke: tuple[tuple[str, str], ...]  # (platform, role) revoked now
    keep: tuple[tuple[str, str], ...]  # (platform, role) kept: not a membership role (R-MOD)
    waiting: tuple[AdminCount, ...]  # admin revocations that wait: the platform's count
    # without the person is below R-ADMIN-2
    decision: Decision


def admin_revocation(
    person: str,
    *,
    platform: str,
    admins: Mapping[str, Collection[str]],
    members: Collection[str],
    platform_accounts: Collection[str] = (),
    charter: Charter,
) -> Decision:
    """May ``person``'s admin on ``platform`` be revoked now that they are (or are about to be)
    no longer a member? Allowed when the platform keeps at least the minimum of counted admins
    without them, or when ``platform`` is not one R-ADMIN-2 judges (``charter.platforms``: a
    retiring platform is not); otherwise refused under R-ADMIN-4 ("the revocation waits"), with
    the count (``AdminCount`` of the others) in ``evidence["count"]``."""
    others = {p: set(v) - {person} for p, v in admins.items()}
    count = count_admins(
        others,
        members=set(members) - {person},
        platform_accounts=platform_accounts,
        platforms=[platform],
        charter=charter,
    )[platform]
    minimum = charter.admins.min_admins_per_platform
    if platform not in charter.platforms:
        # R-PLATFORM: R-ADMIN-2 judges the approved platforms (and trials from their first
        # admin) only; a retiring platform's roles are being revoked, nobody is to be appointed.
        return Decision(
            allowed=True,
            ruling="R-ADMIN-4",
            reason=f"{place(platform)} is not an approved platform (R-PLATFORM): R-ADMIN-2 does not "
            f"apply there; {person}'s admin role is revoked",
            evidence={"count": count},
        )
    if count.count >= minimum:
        return Decision(
            allowed=True,
            ruling="R-ADMIN-4",
            reason=f"{place(platform)} keeps {count.count} counted admins without {person}; the admin role is revoked",
            evidence={"count": count},
        )
    return Decision(
        allowed=False,
        ruling="R-ADMIN-4",
        reason=f"revoking {person}'s admin would leave {place(platform)} with "
        f"{count.count} counted admin{'s' if count.count != 1 else ''} "
        f"(at least {minimum} required); the revocation waits until the WG "
        "appoints another admin",
        evidence={"count": count},
    )


def end_of_membership(
    person: str,
    *,
    holds: Mapping[str, Collection[str]],
    membership_roles: Mapping[str, Collection[str]],
    admins: Mapping[str, Collection[str]],
    members: Collection[str],
    platform_accounts: Collection[str] = (),
    charter: Charter,
) -> EndOfMembership:
    """Decide the roles of a membership that ends (lapse, leave, removal).

    ``holds``: platform → the roles ``person`` holds or the ledger wants them to hold;
    ``membership_roles``: platform → the roles that come with membership (the WG group/role).
    Membership roles are revoked (R-TERM-2, R-LEAVE); admin is revoked unless the platform
    would keep fewer than the minimum of counted admins, then it waits (R-ADMIN-4); moderator
    and every other role stay until the WG decides otherwise (R-MOD)."""
    revoke: list[tuple[str, str]] = []
    keep: list[tuple[str, str]] = []
    waiting: list[AdminCount] = []
    revocation = partial(
        admin_revocation, person, admins=admins, members=members, platform_accounts=platform_accounts, charter=charter
    )
    for platform in sorted(holds):
        for role in sorted(set(holds[platform])):
            if role in set(membership_roles.get(platform, ())):
                revoke.append((platform, role))
            elif role == ADMIN:
                d = revocation(platform=platform)
                (revoke.append((platform, role)) if d.allowed else waiting.append(d.evidence["count"]))
            else:
                keep.append((platform, role))
    if waiting:
        decision = Decision(
            allowed=True,
            ruling="R-ADMIN-4",
            reason="; ".join(
                f"{place(c.platform)} needs a new admin: the admin revocation waits ({c.line()})" for c in waiting
            ),
            evidence={"waiting": [c.platform for c in waiting]},
        )
    else:
        decision = Decision(
            allowed=True, ruling="R-ADMIN-4", reason="membership roles and admin revoked; other roles stay (R-MOD)"
        )
    return EndOfMembership(
        person=person, revoke=tuple(revoke), keep=tuple(keep), waiting=tuple(waiting), decision=decision
    )


def short_if_gone(
    person: str,
    *,
    admins: Mapping[str, Collection[str]],
    members: Collection[str],
    platform_accounts: Collection[str] = (),
    charter: Charter,
) -> list[AdminCount]:
    """The platforms ``person`` is admin on that would be left short of counted admins if their
    membership ended (R-ADMIN-4's advance warning in the opt-in reminders): the count of the
    others on each."""
    out = []
    revocation = partial(
        admin_revocation, person, admins=admins, members=members, platform_accounts=platform_accounts, charter=charter
    )
    for platform in sorted(admins):
        if person in set(admins[platform]):
            d = revocation(platform=platform)
            if not d.allowed:
                out.append(d.evidence["count"])
    return out
