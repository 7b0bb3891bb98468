"""Who may join: R-ELIG-1 (activity), R-ELIG-2 (nomination), R-ELIG-3 (self-nomination),
R-ELIG-4 (the evidence is kept). Pure: the caller fetches the figures and passes ``now``."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any, Literal

from rules.applications import NO_USERNAME, names_an_account
from rules.charter import Charter
from rules.decision import Decision
from rules.handles import handle_key

Answer = Literal["yes", "no", "unknown"]


@dataclass(frozen=True, kw_only=True)
class Applicant:
    """The handles an application names (R-APP-1) and its nominator, if any."""

    forum: str | None = None
    discord: str | None = None
    nominator: str | None = None
    # Accounts on any other platform the WG runs on (a connector plugin's): platform -> username.
    accounts: Mapping[str, str] = field(default_factory=dict)

    def usernames(self) -> dict[str, str]:
        """Every account named, by platform (the Forum's under ``discourse``)."""
        named = {"discourse": self.forum, "discord": self.discord, **self.accounts}
        return {p: u for p, u in named.items() if u}


@dataclass(frozen=True, kw_only=True)
class DiscourseEvidence:
    """Figures from the Forum (``GET /admin/users/{id}.json``) and when they were fetched."""

    created_at: datetime
    # None: the Forum did not report the figure (unknown, never zero: R-ELIG-1).
    days_visited: int | None
    post_count: int | None
    last_seen_at: datetime | None = None
    fetched_at: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class DiscordEvidence:
    """Figures from Discord: ``joined_at`` and messages found by member search in the window
    (``None`` when search could not answer)."""

    joined_at: datetime
    messages_90d: int | None
    fetched_at: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class ActivityEvidence:
    """Figures from any other platform, as its connector reports them (``None``: not reported)."""

    created_at: datetime
    post_count: int | None = None
    days_visited: int | None = None
    last_seen_at: datetime | None = None
    fetched_at: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class PlatformCheck:
    """R-ELIG-1 on one platform: ``yes``, ``no`` or ``unknown``, and why."""

    platform: str
    answer: Answer
    reason: str


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def check_discourse(ev: DiscourseEvidence | None, *, now: datetime, charter: Charter) -> PlatformCheck:
    """R-ELIG-1 on the Forum: account old enough and active (visits or posts, seen recently)."""
    rule = charter.eligibility
    if ev is None:
        return PlatformCheck(platform="discourse", answer="unknown", reason="Forum activity was not fetched")
    age = now - ev.created_at
    min_age = timedelta(days=rule.account_min_age_days)
    if age < min_age:
        return PlatformCheck(
            platform="discourse",
            answer="no",
            reason=f"Forum account is {age.days} days old; {rule.account_min_age_days} needed",
        )
    d = rule.discourse
    visits, posts = _figure(ev.days_visited), _figure(ev.post_count)
    active = (ev.days_visited or 0) >= d.min_days_visited or (ev.post_count or 0) >= d.min_post_count
    # R-ELIG-1: a figure the Forum did not report may still meet its threshold: unknown, not "no".
    unreported = ev.days_visited is None or ev.post_count is None
    if not active and not unreported:
        return PlatformCheck(
            platform="discourse",
            answer="no",
            reason=f"Forum activity is {visits} days visited and {posts} posts; "
            f"{d.min_days_visited} days visited or {d.min_post_count} posts needed",
        )
    if ev.last_seen_at is not None and now - ev.last_seen_at > timedelta(days=d.seen_within_days):
        return PlatformCheck(
            platform="discourse",
            answer="no",
            reason=f"last seen on the Forum {(now - ev.last_seen_at).days} days ago; "
            f"within {d.seen_within_days} days needed",
        )
    if not active:
        return PlatformCheck(
            platform="discourse",
            answer="unknown",
            reason=f"the Forum did not report all activity figures ({visits} days visited, {posts} posts)",
        )
    return PlatformCheck(
        platform="discourse",
        answer="yes",
        reason=f"Forum account {age.days} days old with {visits} days visited and "
        f"{posts} post{'' if ev.post_count == 1 else 's'}",
    )


def _figure(value: int | None) -> str:
    return "unknown" if value is None else str(value)


def check_discord(ev: DiscordEvidence | None, *, now: datetime, charter: Charter) -> PlatformCheck:
    """R-ELIG-1 on Discord: member long enough and enough recent messages; an unknown message
    count answers ``unknown``, never ``yes``."""
    rule = charter.eligibility
    if ev is None:
        return PlatformCheck(platform="discord", answer="unknown", reason="Discord activity was not fetched")
    age = now - ev.joined_at
    if age < timedelta(days=rule.account_min_age_days):
        return PlatformCheck(
            platform="discord",
            answer="no",
            reason=f"Discord member for {age.days} days; {rule.account_min_age_days} needed",
        )
    d = rule.discord
    if ev.messages_90d is None:
        return PlatformCheck(
            platform="discord", answer="unknown", reason="Discord message search could not count messages yet"
        )
    if ev.messages_90d < d.min_messages:
        return PlatformCheck(
            platform="discord",
            answer="no",
            reason=f"{ev.messages_90d} Discord messages in the last {d.messages_window_days} days; "
            f"{d.min_messages} needed",
        )
    return PlatformCheck(
        platform="discord",
        answer="yes",
        reason=f"Discord member for {age.days} days with {ev.messages_90d} messages in the last "
        f"{d.messages_window_days} days",
    )


def check_activity(platform: str, ev: ActivityEvidence | None, *, now: datetime, charter: Charter) -> PlatformCheck:
    """R-ELIG-1 on a platform the charter has no table for: the account is old enough and
    active by the Forum's measures (posts or days visited, seen recently) as far as the platform
    reports them; a platform reporting neither answers ``unknown``, never ``yes``."""
    rule = charter.eligibility
    if ev is None:
        return PlatformCheck(platform=platform, answer="unknown", reason=f"{platform} activity was not fetched")
    age = now - ev.created_at
    if age < timedelta(days=rule.account_min_age_days):
        return PlatformCheck(
            platform=platform,
            answer="no",
            reason=f"{platform} account is {age.days} days old; {rule.account_min_age_days} needed",
        )
    d = rule.discourse
    if ev.post_count is None and ev.days_visited is None:
        return PlatformCheck(
            platform=platform, answer="unknown", reason=f"{platform} reports no posts or visits to count"
        )
    posts, visits = ev.post_count or 0, ev.days_visited or 0
    if visits < d.min_days_visited and posts < d.min_post_count:
        return PlatformCheck(
            platform=platform,
            answer="no",
            reason=f"{platform} activity is {visits} days visited and {posts} posts; "
            f"{d.min_days_visited} days visited or {d.min_post_count} posts needed",
        )
    if ev.last_seen_at is not None and now - ev.last_seen_at > timedelta(days=d.seen_within_days):
        return PlatformCheck(
            platform=platform,
            answer="no",
            reason=f"last seen on {platform} {(now - ev.last_seen_at).days} days ago; "
            f"within {d.seen_within_days} days needed",
        )
    return PlatformCheck(
        platform=platform,
        answer="yes",
        reason=f"{platform} account {age.days} days old with {posts} "
        f"post{'' if posts == 1 else 's'} and {visits} days visited",
    )


def _nominator(applicant: Applicant) -> str | None:
    """The nominator named, or None when the field is empty (only blanks)."""
    return applicant.nominator if applicant.nominator and handle_key(applicant.nominator) else None


def _is_self(applicant: Applicant) -> bool:
    own = {handle_key(h) for h in applicant.usernames().values()}
    nominator = _nominator(applicant)
    return nominator is None or handle_key(nominator) in own


def _platform_checks(
    applicant: Applicant,
    *,
    discourse: DiscourseEvidence | None,
    discord: DiscordEvidence | None,
    others: Mapping[str, ActivityEvidence | None],
    now: datetime,
    charter: Charter,
) -> tuple[list[PlatformCheck], dict[str, Any]]:
    """R-ELIG-1 on every platform the application names, and each one's evidence with its
    answer (R-ELIG-4)."""
    named: list[tuple[str, Any, PlatformCheck]] = []
    if applicant.forum:
        named.append(("discourse", discourse, check_discourse(discourse, now=now, charter=charter)))
    if applicant.discord:
        named.append(("discord", discord, check_discord(discord, now=now, charter=charter)))
    for platform in sorted(applicant.accounts):
        ev = others.get(platform)
        named.append((platform, ev, check_activity(platform, ev, now=now, charter=charter)))
    evidence: dict[str, Any] = {platform: _evidence_dict(ev) for platform, ev, _check in named}
    checks = [check for _platform, _ev, check in named]
    for check in checks:
        evidence[check.platform] = {**(evidence[check.platform] or {}), "answer": check.answer, "reason": check.reason}
    return checks, evidence


def _not_eligible(reason_note: str, *, what: str, ruling: str, status: str, evidence: dict[str, Any]) -> Decision:
    return Decision(
        allowed=False,
        ruling=ruling,
        reason=(f"{reason_note}; " if reason_note else "") + what,
        evidence={**evidence, "status": status},
    )


def _by_activity(
    checks: list[PlatformCheck], *, ruling: str, nomination_note: str, evidence: dict[str, Any]
) -> Decision:
    """R-ELIG-1: eligible when active on one platform; otherwise unknown (never counted as
    yes) or not yet active, with what to do next. An invalid nomination is said first and
    makes the ruling R-ELIG-2."""
    active = [c for c in checks if c.answer == "yes"]
    if active:
        reason = f"active on {active[0].platform}: {active[0].reason}"
        if nomination_note:
            reason = f"{nomination_note}, but the applicant is {reason}"
        return Decision(allowed=True, ruling="R-ELIG-1", reason=reason, evidence={**evidence, "status": "eligible"})
    if nomination_note:
        ruling = "R-ELIG-2"
    unknown = [c for c in checks if c.answer == "unknown"]
    if unknown:
        what = "; ".join(c.reason for c in unknown)
        return _not_eligible(
            nomination_note,
            ruling=ruling,
            status="unknown",
            evidence=evidence,
            what=f"eligibility is unknown ({what}); the check will be retried, "
            "or ask a DSF Individual Member to nominate you",
        )
    summary = "; ".join(c.reason for c in checks)
    return _not_eligible(
        nomination_note,
        ruling=ruling,
        status="not-eligible",
        evidence=evidence,
        what=f"not active enough yet ({summary}); apply again later or ask a DSF Individual Member to nominate you",
    )


def decide_eligibility(
    applicant: Applicant,
    *,
    discourse: DiscourseEvidence | None,
    discord: DiscordEvidence | None,
    dsf_members: Collection[str],
    now: datetime,
    charter: Charter,
    others: Mapping[str, ActivityEvidence | None] | None = None,
) -> Decision:
    """Decide eligibility. ``evidence["status"]`` is ``eligible``, ``not-eligible`` or
    ``unknown``: unknown figures never count as yes, and the reason says what to do.
    ``others`` holds the evidence of the ``applicant.accounts`` platforms (R-ELIG-1 on any)."""
    if not names_an_account(applicant.usernames()):
        return Decision(
            allowed=False,
            ruling="R-APP-1",
            reason=NO_USERNAME,
            evidence={"status": "not-eligible", "checked_at": now.isoformat(), "platforms": {}},
        )
    checks, platform_evidence = _platform_checks(
        applicant, discourse=discourse, discord=discord, others=others or {}, now=now, charter=charter
    )
    evidence: dict[str, Any] = {
        "checked_at": now.isoformat(),
        "platforms": platform_evidence,
        "nominator": applicant.nominator,
    }
    self_nominated = _is_self(applicant)
    nominator = _nominator(applicant)
    nomination_note = ""
    if not self_nominated:
        assert nominator is not None  # _is_self: no nominator is a self-nomination
        valid = handle_key(nominator) in {handle_key(m) for m in dsf_members}
        evidence["nomination_valid"] = valid
        if valid:
            return Decision(
                allowed=True,
                ruling="R-ELIG-2",
                reason=f"nominated by {nominator}, a DSF Individual Member",
                evidence={**evidence, "status": "eligible"},
            )
        nomination_note = f"the nomination is invalid: {nominator} is not on the list of DSF Individual Members"
    elif not charter.eligibility.self_nomination:
        return Decision(
            allowed=False,
            ruling="R-ELIG-3",
            reason="this charter does not allow self-nomination; a DSF Individual Member must nominate the applicant",
            evidence={**evidence, "status": "not-eligible"},
        )
    ruling = "R-ELIG-3" if nominator is not None and self_nominated else "R-ELIG-1"
    return _by_activity(checks, ruling=ruling, nomination_note=nomination_note, evidence=evidence)


def _evidence_dict(ev: DiscourseEvidence | DiscordEvidence | ActivityEvidence | None) -> dict[str, Any] | None:
    if ev is None:
        return None
    # Evidence holds only flat values: read the fields (asdict deep-copies, 2x slower at scale).
    values = ((f.name, getattr(ev, f.name)) for f in fields(ev))
    return {k: _iso(v) if isinstance(v, datetime) else v for k, v in values}
