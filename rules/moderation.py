"""Consistent moderation across platforms (issue 13, R-DIRECT): what a platform's moderation-log
entry means, which actions are severe enough to alert the other platforms' moderators, and the
consistency figures the WG discusses at its quarterly meeting (and the quarterly report reuses).

Pure: entries come in as plain values (no connector types), ``now`` is never read.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rules.charter import Moderation
from rules.decision import Decision

__all__ = [
    "DISCORD_ACTIONS",
    "DISCOURSE_ACTIONS",
    "SANCTIONS",
    "Normalised",
    "consistency_figures",
    "group_reasons",
    "is_severe",
    "normalise",
    "parse_time",
]

# Discord audit-log action types by name (connectors report the name, or the number as text).
DISCORD_ACTIONS = {
    "MEMBER_BAN_ADD": "ban",
    "MEMBER_BAN_REMOVE": "unban",
    "MEMBER_KICK": "kick",
    "MEMBER_ROLE_UPDATE": "role_change",
    "MESSAGE_DELETE": "message_delete",
    "MESSAGE_BULK_DELETE": "message_delete",
    "AUTO_MODERATION_USER_COMM_DISABLED": "timeout",
}
# Discourse staff action log ``action_name``s.
DISCOURSE_ACTIONS = {
    "suspend_user": "suspend",
    "unsuspend_user": "unsuspend",
    "silence_user": "silence",
    "unsilence_user": "unsilence",
    "delete_post": "post_delete",
    "delete_topic": "post_delete",
    "agree_flag": "flag_handled",
    "disagree_flag": "flag_handled",
    "defer_flag": "flag_handled",
    "post_rejected": "flag_handled",
    "post_approved": "flag_handled",
}
# Actions that restrict a person (the "sanctioned on one platform, not the other" figure).
SANCTIONS = frozenset({"ban", "kick", "timeout", "suspend", "silence"})
_TIMED = frozenset({"timeout", "silence", "suspend"})


@dataclass(frozen=True, kw_only=True)
class Normalised:
    """What an entry means: one of ``ledger.moderation.ACTIONS`` and, for a timed restriction,
    how long it lasts (``None``: not timed, or no end given = indefinite)."""

    action: str
    duration_seconds: int | None = None


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 time (``Z`` allowed) as an aware datetime; ``None`` when it is not one."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None


def _until(value: Any) -> Any:
    return value.get("new") if isinstance(value, Mapping) else value


def normalise(*, platform: str, kind: str, changes: Mapping[str, Any], occurred_at: datetime) -> Normalised:
    """The normalised action of one entry. Anything not known is ``other`` (stored, never dropped).

    Discord: ``MEMBER_UPDATE`` is a timeout when it sets ``communication_disabled_until`` (and its
    end when it clears it); other member updates (a nickname) are ``other``. Discourse: the end of
    a suspension or silence is read from ``new_value`` when it is a time."""
    if platform == "discord":
        if kind == "MEMBER_UPDATE" and "communication_disabled_until" in changes:
            until = parse_time(_until(changes["communication_disabled_until"]))
            if until is None:
                return Normalised(action="untimeout")
            return Normalised(action="timeout", duration_seconds=max(int((until - occurred_at).total_seconds()), 0))
        return Normalised(action=DISCORD_ACTIONS.get(kind, "other"))
    if platform == "discourse":
        action = DISCOURSE_ACTIONS.get(kind, "other")
        if action in _TIMED:
            until = parse_time(changes.get("new_value"))
            seconds = None if until is None else max(int((until - occurred_at).total_seconds()), 0)
            return Normalised(action=action, duration_seconds=seconds)
        return Normalised(action=action)
    return Normalised(action="other")


def is_severe(*, action: str, duration_seconds: int | None, moderation: Moderation) -> Decision:
    """Whether an action alerts the other platforms' moderators (R-DIRECT: the WG keeps
    moderation consistent; the alert informs, it never sanctions). ``severe_actions`` always
    alert; a timeout or silence alerts when longer than ``severe_timeout_minutes`` or without
    an end."""
    limit = moderation.severe_timeout_minutes * 60
    evidence = {
        "action": action,
        "duration_seconds": duration_seconds,
        "severe_actions": list(moderation.severe_actions),
        "severe_timeout_minutes": moderation.severe_timeout_minutes,
    }
    if action in moderation.severe_actions:
        return Decision(
            allowed=True, ruling="R-DIRECT", reason=f"{action} is a severe action in the charter", evidence=evidence
        )
    if action in ("timeout", "silence"):
        if duration_seconds is None:
            return Decision(
                allowed=True, ruling="R-DIRECT", reason=f"a {action} without an end is severe", evidence=evidence
            )
        if duration_seconds > limit:
            return Decision(
                allowed=True,
                ruling="R-DIRECT",
                reason=f"a {action} of {duration_seconds // 60} minutes is longer than "
                f"{moderation.severe_timeout_minutes}",
                evidence=evidence,
            )
        return Decision(
            allowed=False,
            ruling="R-DIRECT",
            reason=f"a {action} of {duration_seconds // 60} minutes is not longer than "
            f"{moderation.severe_timeout_minutes}",
            evidence=evidence,
        )
    return Decision(allowed=False, ruling="R-DIRECT", reason=f"{action} is not a severe action", evidence=evidence)


def _reason_key(reason: str | None) -> str:
    text = re.sub(r"\s+", " ", (reason or "").strip().lower()).rstrip(".!")
    return text or "(no reason given)"


def group_reasons(actions: Iterable[Mapping[str, Any]], *, top: int = 10) -> list[dict[str, Any]]:
    """Moderators' reasons grouped (case, spacing and end punctuation ignored), most frequent
    first: ``[{reason, count, actions: {action: n}, platforms: {platform: n}}]``."""
    groups: dict[str, dict[str, Counter[str]]] = defaultdict(lambda: {"actions": Counter(), "platforms": Counter()})
    for a in actions:
        if a["action"] in ("role_change", "other"):
            continue
        g = groups[_reason_key(a.get("reason"))]
        g["actions"][a["action"]] += 1
        g["platforms"][a["platform"]] += 1
    rows: list[dict[str, Any]] = [
        {
            "reason": k,
            "count": sum(v["actions"].values()),
            "actions": dict(sorted(v["actions"].items())),
            "platforms": dict(sorted(v["platforms"].items())),
        }
        for k, v in groups.items()
    ]
    return sorted(rows, key=lambda r: (-r["count"], r["reason"]))[:top]


def consistency_figures(
    actions: Iterable[Mapping[str, Any]], *, accounts: Mapping[str, Iterable[str]] | None = None
) -> dict[str, Any]:
    """The consistency view of a list of actions (each ``{platform, action, occurred_at,
    reason, subject, flagged_at?}``; ``subject`` names the person behind the target account,
    ``None`` when unknown). ``accounts`` maps a subject to the platforms it has accounts on.

    Returns ``per_platform`` ({platform: {action: n}}), ``flag_to_action`` (median minutes from
    flag to action on the Forum, over the flag-handling actions whose flag time is known),
    ``one_platform_only`` (subjects sanctioned on some of their platforms but not on others) and
    ``reasons`` (:func:`group_reasons`)."""
    rows = list(actions)
    per_platform: dict[str, Counter[str]] = defaultdict(Counter)
    for a in rows:
        per_platform[a["platform"]][a["action"]] += 1
    waits = []
    for a in rows:
        flagged = a.get("flagged_at")
        if a["platform"] == "discourse" and a["action"] == "flag_handled" and isinstance(flagged, datetime):
            waits.append(max((a["occurred_at"] - flagged).total_seconds() / 60, 0.0))
    handled = sum(1 for a in rows if a["platform"] == "discourse" and a["action"] == "flag_handled")
    sanctioned: dict[str, set[str]] = defaultdict(set)
    for a in rows:
        if a.get("subject") and a["action"] in SANCTIONS:
            sanctioned[a["subject"]].add(a["platform"])
    one_only = []
    for subject, platforms in sorted(sanctioned.items()):
        on = set((accounts or {}).get(subject, ())) | platforms
        missing = sorted(on - platforms)
        if missing:
            one_only.append({"subject": subject, "sanctioned_on": sorted(platforms), "not_on": missing})
    return {
        "actions": len(rows),
        "per_platform": {p: dict(sorted(c.items())) for p, c in sorted(per_platform.items())},
        "flag_to_action": {
            "median_minutes": round(statistics.median(waits), 1) if waits else None,
            "with_flag_time": len(waits),
            "flags_handled": handled,
        },
        "one_platform_only": one_only,
        "reasons": group_reasons(rows),
    }
