"""What every rule returns: a decision that cites its ruling, says why, and keeps its evidence."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True, kw_only=True)
class Finding:
    """One refusal or warning about one subject (a person, a platform, a role)."""

    ruling: str
    subject: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        """Plain JSON-ready form."""
        return {"ruling": self.ruling, "subject": self.subject, "reason": self.reason}


@dataclass(frozen=True, kw_only=True)
class Decision:
    """A yes/no answer of the charter.

    ``ruling`` is the R-… id that decided; ``reason`` is one human-readable sentence; ``evidence``
    holds the figures the decision used (R-ELIG-4, R-RECORD). ``violations`` are refusals
    (hard rules) and ``warnings`` are recommendations that were not followed: a warning never
    makes ``allowed`` false.
    """

    allowed: bool
    ruling: str
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)
    violations: tuple[Finding, ...] = ()
    warnings: tuple[Finding, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form (datetimes stay datetimes; see ``rules.whatif`` for JSON)."""
        out = asdict(self)
        out["violations"] = [f.to_dict() for f in self.violations]
        out["warnings"] = [f.to_dict() for f in self.warnings]
        return out


def findings_decision(
    *,
    violations: list[Finding],
    warnings: list[Finding],
    ok_ruling: str,
    ok_reason: str,
    evidence: dict[str, Any] | None = None,
) -> Decision:
    """A decision over a set of checks: refused when any violation, citing the first one."""
    if violations:
        first = violations[0]
        reason = first.reason if len(violations) == 1 else (f"{first.reason} (and {len(violations) - 1} more)")
        return Decision(
            allowed=False,
            ruling=first.ruling,
            reason=reason,
            evidence=dict(evidence or {}),
            violations=tuple(violations),
            warnings=tuple(warnings),
        )
    return Decision(
        allowed=True, ruling=ok_ruling, reason=ok_reason, evidence=dict(evidence or {}), warnings=tuple(warnings)
    )


@dataclass(frozen=True, kw_only=True)
class CodedDecision(Decision):
    """A decision a flow records and acts on: ``code`` is the short machine name of the outcome
    (``duplicate``, ``too-long``, ``already``…) that the ledger keeps beside the ruling."""

    code: str = ""
