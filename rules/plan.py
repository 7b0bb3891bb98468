"""Role changes are plan, then apply (DESIGN convention 9): the plan is pure.

``plan_roles(desired, observed)`` lists the grants and revokes that turn what a platform shows
into what the ledger wants, and checks the charter's guardrails on the *resulting* state before
anything is sent: the admin invariants (R-ADMIN-1, R-ADMIN-2, refused before sending per
R-ADMIN-3) and the most removals one run may make. An operator override is recorded with its
reason, never implied.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from functools import partial
from typing import Literal

from rules.admins import check_admins, worse
from rules.charter import Charter
from rules.decision import Decision, Finding, findings_decision

ADMIN = "admin"


@dataclass(frozen=True, kw_only=True, order=True)
class Assignment:
    """``person`` holds ``role`` on ``platform`` (a person key, not a platform user id)."""

    platform: str
    role: str
    person: str


@dataclass(frozen=True, kw_only=True)
class Change:
    """One grant or revoke of a plan."""

    action: Literal["grant", "revoke"]
    platform: str
    role: str
    person: str

    def key(self, decision_id: str) -> str:
        """The idempotency key of this change under a ledger decision (DESIGN convention 10)."""
        return f"{self.action}:{self.platform}:{self.person}:{self.role}:{decision_id}"


@dataclass(frozen=True, kw_only=True)
class Plan:
    """What to send, and whether the charter lets it be sent."""

    changes: tuple[Change, ...]
    decision: Decision

    @property
    def grants(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.action == "grant")

    @property
    def revokes(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.action == "revoke")


def diff(desired: Iterable[Assignment], observed: Iterable[Assignment]) -> tuple[Change, ...]:
    """The changes from ``observed`` to ``desired``: grants first, then revokes, each sorted,
    so a swap of admins never passes through a state with too few of them."""
    want, have = set(desired), set(observed)
    grants = [Change(action="grant", platform=a.platform, role=a.role, person=a.person) for a in sorted(want - have)]
    revokes = [Change(action="revoke", platform=a.platform, role=a.role, person=a.person) for a in sorted(have - want)]
    return tuple(grants + revokes)


def admins_of(state: Iterable[Assignment]) -> dict[str, list[str]]:
    """Who holds ``admin`` on each platform."""
    out: dict[str, list[str]] = {}
    for a in state:
        if a.role == ADMIN:
            out.setdefault(a.platform, []).append(a.person)
    return out


def check_plan(
    observed: Iterable[Assignment],
    changes: Iterable[Change],
    *,
    charter: Charter,
    override_reason: str | None = None,
    members: Collection[str] | None = None,
    platform_accounts: Collection[str] = (),
) -> Decision:
    """Check a plan's resulting state against the guardrails. Refuses only what the plan breaks
    or makes worse (a broken state may be repaired). With ``override_reason`` the refusals
    become warnings and the decision records the reason. ``members`` and ``platform_accounts``
    say who counts toward R-ADMIN-2 (``rules.admins``); ``evidence["admin_counts"]`` has, per
    platform, a line saying who counts after the plan and who does not."""
    before = set(observed)
    changes = tuple(changes)
    after = set(before)
    for c in changes:
        a = Assignment(platform=c.platform, role=c.role, person=c.person)
        (after.add if c.action == "grant" else after.discard)(a)

    violations: list[Finding] = []
    check = partial(check_admins, members=members, platform_accounts=platform_accounts, charter=charter)
    now = check(admins_of(after))
    if any(c.role == ADMIN for c in changes):
        violations += worse(check(admins_of(before)), now)

    limit = charter.admins.max_removals_per_run
    removals = sum(1 for c in changes if c.action == "revoke")
    if removals > limit:
        violations.append(
            Finding(
                ruling="R-ADMIN-3",
                subject="plan",
                reason=f"the plan revokes {removals} roles; at most {limit} per run without an "
                "operator's override (a guard against a mistaken desired state)",
            )
        )

    evidence = {
        "grants": sum(1 for c in changes if c.action == "grant"),
        "revokes": removals,
        "admins_after": {p: sorted(v) for p, v in admins_of(after).items()},
        "admin_counts": dict(zip(now.evidence["counted"], now.evidence["lines"], strict=True)),
    }
    if violations and override_reason:
        return Decision(
            allowed=True,
            ruling="R-ADMIN-3",
            reason=f"overridden by an operator: {override_reason}",
            evidence={**evidence, "override": override_reason},
            warnings=tuple(violations),
        )
    return findings_decision(
        violations=violations,
        warnings=[],
        ok_ruling="R-ADMIN-3",
        ok_reason=f"{len(changes)} change(s) keep R-ADMIN-1 and R-ADMIN-2 and stay within the removal limit",
        evidence=evidence,
    )


def plan_roles(
    desired: Iterable[Assignment],
    observed: Iterable[Assignment],
    *,
    charter: Charter,
    override_reason: str | None = None,
    members: Collection[str] | None = None,
    platform_accounts: Collection[str] = (),
) -> Plan:
    """Diff, then check: the plan to show (dry run) or to apply when ``decision.allowed``."""
    observed = tuple(observed)
    changes = diff(desired, observed)
    return Plan(
        changes=changes,
        decision=check_plan(
            observed,
            changes,
            charter=charter,
            override_reason=override_reason,
            members=members,
            platform_accounts=platform_accounts,
        ),
    )
