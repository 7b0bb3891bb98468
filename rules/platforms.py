"""The approved community platforms as data with a history (R-PLATFORM).

A platform is ``approved``, on ``trial`` until an end date, ``retiring`` (its roles are being
revoked) or ``retired`` (kept in the history, no longer in use). The Board's approval of a
proposal moves it (R-BOARD decides, this module says what the approval changes):

- ``trial-platform``: a platform not in use becomes ``trial`` until the proposal's end date (or
  the charter's ``trials.default_days``); the same proposal for a platform already on trial
  keeps it trialling with a later end date;
- ``migrate-platform``: the new platform becomes ``approved``, the old one ``retiring``;
- ``retire-platform``: the platform becomes ``retiring``; once its roles are revoked, ``retired``.

The last approved platform is never retired. Trial platforms count for R-ADMIN-1/2 from the
moment their first admin is granted (:func:`admin_platforms`). At a trial's end the WG is asked
to propose migrate, keep trialling or retire (:func:`trials_ended`). Pure: ``now`` is a parameter.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from rules.charter import Charter
from rules.decision import CodedDecision, Decision

APPROVED, TRIAL, RETIRING, RETIRED = "approved", "trial", "retiring", "retired"
STATES = (APPROVED, TRIAL, RETIRING, RETIRED)
PLATFORM_KINDS = ("trial-platform", "migrate-platform", "retire-platform")
CHOICES = ("migrate", "keep trialling", "retire")
RULING = "R-PLATFORM"
# A platform name is a key in the ledger and in effect keys: lower-case, short, no spaces.
_NAME = re.compile(r"^[a-z][a-z0-9-]{1,23}$")


@dataclass(frozen=True, kw_only=True)
class PlatformState:
    """One platform's current state. ``first_admin_at``: when its first admin was granted
    (a trial counts for R-ADMIN-1/2 from then)."""

    platform: str
    state: str
    since: datetime | None = None
    trial_ends_at: datetime | None = None
    first_admin_at: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class Transition:
    """One state change a decision asks for."""

    platform: str
    state: str
    trial_ends_at: datetime | None = None


def check_name(name: object) -> str:
    """The platform name normalised (``matrix``); ``ValueError`` saying what a name may be."""
    text = str(name or "").strip().lower()
    if not _NAME.fullmatch(text):
        raise ValueError(
            f"{str(name)[:40]!r} is not a platform name (2-24 characters: a-z, 0-9, '-', starting with a letter)"
        )
    return text


def seed(platforms: Iterable[str]) -> dict[str, PlatformState]:
    """The states before anything was recorded: the charter file's platforms, approved."""
    return {p: PlatformState(platform=p, state=APPROVED) for p in platforms}


def in_use(states: Mapping[str, PlatformState]) -> list[str]:
    """The platforms not retired, in order."""
    return [p for p, s in states.items() if s.state != RETIRED]


def admin_platforms(states: Mapping[str, PlatformState], *, at: datetime) -> tuple[str, ...]:
    """The platforms R-ADMIN-1/2 judge at ``at``: the approved ones, plus each trial platform
    whose first admin was granted at or before ``at``. Retiring platforms are not judged: their
    roles are being revoked."""
    return tuple(
        p
        for p, s in states.items()
        if s.state == APPROVED or (s.state == TRIAL and s.first_admin_at is not None and s.first_admin_at <= at)
    )


def check_served(*, served: bool, sender_known: bool) -> CodedDecision:
    """R-PLATFORM: a request acts only when it came from a platform we serve and says which
    account sent it (the verifier's ``user_id``); else ``not-served``, otherwise ``served``."""
    if not served:
        return CodedDecision(allowed=False, ruling=RULING, code="not-served", reason="this platform is not served")
    if not sender_known:
        return CodedDecision(
            allowed=False, ruling=RULING, code="not-served", reason="the request does not say which account sent it"
        )
    return CodedDecision(allowed=True, ruling=RULING, code="served", reason="a served platform's account")


def _refused(reason: str, *, field: str = "platform", **evidence: object) -> Decision:
    """A refusal; ``evidence["field"]`` names the proposal field it is about."""
    return Decision(allowed=False, ruling=RULING, reason=reason, evidence={**evidence, "field": field})


def _state(states: Mapping[str, PlatformState], platform: str) -> str | None:
    found = states.get(platform)
    return found.state if found is not None else None


def decide_trial(
    states: Mapping[str, PlatformState],
    *,
    platform: str,
    now: datetime,
    ends_at: datetime | None = None,
    charter: Charter,
) -> Decision:
    """A Board-approved trial of ``platform`` until ``ends_at`` (default: the charter's
    ``trials.default_days`` from ``now``). A platform already on trial keeps trialling: the end
    date moves later (default: ``default_days`` after the current end, or after now when the
    trial has already ended). Refused for a platform
    approved or retiring, an end date not after now (or the current end), or further than
    ``trials.max_days``. ``evidence["changes"]``: the transitions."""
    current = states.get(platform)
    state = current.state if current else None
    if state in (APPROVED, RETIRING):
        return _refused(
            f"{platform} is {state}: only a platform not in use can start a trial", platform=platform, state=state
        )
    on_trial = current.trial_ends_at if current and state == TRIAL else None
    # Keep trialling adds to the current end, or to now when that end has passed (the Board
    # may decide long after the trial ended): an approved extension never ends in the past.
    start = max(on_trial, now) if on_trial else now
    end = ends_at or start + timedelta(days=charter.trials.default_days)
    if end <= now or (on_trial and end <= on_trial):
        after = "its current end" if state == TRIAL else "now"
        return _refused(
            f"the trial's end date {end:%Y-%m-%d} is not after {after}",
            platform=platform,
            state=state,
            field="trial_ends",
        )
    if end > now + timedelta(days=charter.trials.max_days):
        return _refused(
            f"the trial's end date {end:%Y-%m-%d} is more than {charter.trials.max_days} days away (trials.max_days)",
            platform=platform,
            state=state,
            field="trial_ends",
        )
    verb = "keeps trialling" if state == TRIAL else "starts a trial"
    return Decision(
        allowed=True,
        ruling=RULING,
        reason=f"{platform} {verb} until {end:%Y-%m-%d}",
        evidence={
            "platform": platform,
            "from": state,
            "changes": [Transition(platform=platform, state=TRIAL, trial_ends_at=end)],
        },
    )


def decide_migration(states: Mapping[str, PlatformState], *, platform: str, replaces: str) -> Decision:
    """A Board-approved migration from ``replaces`` (approved) to ``platform`` (on trial or not
    in use): ``platform`` becomes approved, ``replaces`` retiring."""
    if platform == replaces:
        return _refused(
            f"a migration needs two platforms; {platform} replaces itself", platform=platform, field="replaces"
        )
    old, new = _state(states, replaces), _state(states, platform)
    if old != APPROVED:
        return _refused(
            f"{replaces} is {old or 'not a platform in use'}: a migration replaces an approved platform",
            platform=replaces,
            state=old,
            field="replaces",
        )
    if new in (APPROVED, RETIRING):
        return _refused(
            f"{platform} is {new}: a migration moves to a platform on trial or not in use yet",
            platform=platform,
            state=new,
        )
    return Decision(
        allowed=True,
        ruling=RULING,
        reason=f"{platform} is approved and {replaces} is retiring (its roles are revoked before it is retired)",
        evidence={
            "platform": platform,
            "replaces": replaces,
            "changes": [Transition(platform=platform, state=APPROVED), Transition(platform=replaces, state=RETIRING)],
        },
    )


def decide_retirement(states: Mapping[str, PlatformState], *, platform: str) -> Decision:
    """A Board-approved retirement: ``platform`` becomes retiring (its roles are revoked, then it
    is retired). Refused for a platform not in use and for the last approved platform."""
    state = _state(states, platform)
    if state in (None, RETIRED):
        return _refused(
            f"{platform} is not a platform in use (in use: {', '.join(in_use(states)) or 'none'})",
            platform=platform,
            state=state,
        )
    approved = [p for p, s in states.items() if s.state == APPROVED]
    if state == APPROVED and approved == [platform]:
        return _refused(
            f"{platform} is the last approved platform: the community would be left "
            "with none; migrate to another platform instead",
            platform=platform,
            state=state,
        )
    changes = [] if state == RETIRING else [Transition(platform=platform, state=RETIRING)]
    return Decision(
        allowed=True,
        ruling=RULING,
        reason=f"{platform} is retiring: its roles are revoked, then it is retired",
        evidence={"platform": platform, "from": state, "changes": changes},
    )


def decide_proposal(
    states: Mapping[str, PlatformState],
    *,
    kind: str,
    platform: str | None,
    replaces: str | None = None,
    ends_at: datetime | None = None,
    now: datetime,
    charter: Charter,
) -> Decision:
    """What the Board's approval of a platform proposal of ``kind`` changes (or why it cannot);
    ``ValueError`` for a kind that is not about a platform or a missing name."""
    if kind not in PLATFORM_KINDS:
        raise ValueError(f"{kind!r} is not a platform proposal ({', '.join(PLATFORM_KINDS)})")
    if not platform:
        raise ValueError(f"a {kind} proposal names its platform")
    if kind == "trial-platform":
        return decide_trial(states, platform=platform, now=now, ends_at=ends_at, charter=charter)
    if kind == "migrate-platform":
        if not replaces:
            raise ValueError("a migrate-platform proposal names the platform it replaces")
        return decide_migration(states, platform=platform, replaces=replaces)
    return decide_retirement(states, platform=platform)


def may_retire(state: PlatformState | None, *, managed_roles_left: int, unreachable: bool = False) -> Decision:
    """May a retiring platform be marked retired? Only once no role the ledger manages there is
    held any more (R-PLATFORM: "removes it after its roles are revoked")."""
    if state is None or state.state != RETIRING:
        return _refused(
            f"{state.platform if state else 'the platform'} is {state.state if state else 'not in use'}, not retiring"
        )
    if unreachable and managed_roles_left:
        return _refused(
            f"{state.platform} is not reached here: its {managed_roles_left} "
            "managed role(s) cannot be revoked; it stays retiring",
            platform=state.platform,
            left=managed_roles_left,
        )
    if managed_roles_left:
        return _refused(
            f"{state.platform} still has {managed_roles_left} managed role(s) to revoke; it stays retiring",
            platform=state.platform,
            left=managed_roles_left,
        )
    return Decision(
        allowed=True,
        ruling=RULING,
        reason=f"every managed role on {state.platform} is revoked: it is retired",
        evidence={"platform": state.platform},
    )


@dataclass(frozen=True, kw_only=True)
class TrialEnd:
    """A trial whose end date has come: the question to the WG, asked once per end date."""

    platform: str
    ends_at: datetime
    decision: Decision

    @property
    def key(self) -> str:
        """Once per trial end: an extension (a new end date) asks again at its end."""
        return f"platform:trial-end:{self.platform}:{self.ends_at:%Y%m%dT%H%M%SZ}"


def trials_ended(states: Mapping[str, PlatformState], *, now: datetime) -> list[TrialEnd]:
    """The trials whose end date is at or before ``now``: the WG is asked to propose migrate,
    keep trialling or retire (each a Board proposal)."""
    out = []
    for p, s in states.items():
        if s.state == TRIAL and s.trial_ends_at is not None and s.trial_ends_at <= now:
            out.append(
                TrialEnd(
                    platform=p,
                    ends_at=s.trial_ends_at,
                    decision=Decision(
                        allowed=True,
                        ruling=RULING,
                        reason=f"the trial of {p} ended on {s.trial_ends_at:%Y-%m-%d}: the WG is asked "
                        "to propose migrate, keep trialling or retire",
                        evidence={
                            "platform": p,
                            "choices": list(CHOICES),
                            "proposals": {
                                "migrate": "migrate-platform",
                                "keep trialling": "trial-platform",
                                "retire": "retire-platform",
                            },
                        },
                    ),
                )
            )
    return out
