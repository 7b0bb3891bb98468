"""Triage of the ideas backlog (R-IDEA-2), as pure functions.

- **Similarity** (:func:`similarity`, :func:`most_similar`): cosine similarity of
  word-bounded character trigrams. Both texts are normalised first (Unicode NFKD without accents,
  lower case, words of letters and digits, common English filler words dropped, a plural ``s``
  cut), then each word ``w`` gives the trigrams of ``" w "``. Trigrams make "translation" and
  "translate", "beginner" and "beginners" close without a stemmer; the cosine ignores length, so a
  short title and a longer one compare fairly. Stdlib only; 0 = nothing in common, 1 = the same
  words. An item is a likely duplicate when the score reaches the charter's
  ``ideas.duplicate_similarity``.
- **Board or WG** (:func:`classify_board`): keyword rules for the R-BOARD kinds (trial, migrate,
  retire a platform; money: budget words or an amount), confirmed with ``rules.board.needs_board``.
- **Platform** (:func:`classify_platform`): ``discord``, ``discourse``, ``slack`` or ``general``
  by keywords.
- **Untriaged too long** (:func:`untriaged_too_long`): an item still awaiting the WG's decision
  (``new`` or ``triaged``) older than ``ideas.flag_untriaged_after_days``.

Nothing here reads a clock or a database: callers pass the texts and ``now``.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rules.board import needs_board
from rules.charter import Charter
from rules.decision import Decision

__all__ = [
    "AWAITING",
    "Similar",
    "Triage",
    "classify_board",
    "classify_platform",
    "idea_text",
    "most_similar",
    "normalise",
    "similarity",
    "triage",
    "untriaged_too_long",
]

# Statuses in which an item waits for the WG's decision (R-IDEA-2's "without triage").
AWAITING = ("new", "triaged")

_STOP = frozenset(
    """
a an the and or of to for in on at by with from into onto about as is are be been being it its
this that these those we our us i me my you your they them their he she his her please should
could would can will shall may might must let lets do does did have has had get make also just
so than then there here some any more most very really idea suggestion maybe perhaps think
""".split()
)


def normalise(text: str) -> list[str]:
    """The words of ``text`` as compared: accents removed, lower case, filler words dropped, a
    plural ``s`` cut (``channels`` → ``channel``, not ``class``)."""
    decomposed = unicodedata.normalize("NFKD", text or "")
    plain = "".join(c for c in decomposed if not unicodedata.combining(c)).lower()
    words = []
    for word in re.findall(r"[a-z0-9]+", plain):
        if word in _STOP:
            continue
        if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
            word = word[:-1]
        words.append(word)
    return words


def _trigrams(text: str) -> Counter[str]:
    grams: Counter[str] = Counter()
    for word in normalise(text):
        padded = f" {word} "
        grams.update(padded[i : i + 3] for i in range(len(padded) - 2))
    return grams


def _cosine(a: Counter[str], b: Counter[str]) -> float:
    if not a or not b:
        return 0.0
    dot = sum(n * b[g] for g, n in a.items() if g in b)
    return dot / math.sqrt(sum(n * n for n in a.values()) * sum(n * n for n in b.values()))


def similarity(a: str, b: str) -> float:
    """How alike two texts are, 0..1 (rounded to 3 places; see the module docstring)."""
    return round(min(1.0, _cosine(_trigrams(a), _trigrams(b))), 3)


def idea_text(title: str, body: str | None) -> str:
    """The text of an idea that triage compares: the body when it repeats the title (a Discord
    ``/idea`` is filed with its first line as title), else title and body."""
    title, body = (title or "").strip(), (body or "").strip()
    if not body:
        return title
    if body.startswith(title.rstrip("…").strip()):
        return body
    return f"{title}\n{body}"


@dataclass(frozen=True, kw_only=True)
class Similar:
    """The existing item most like a text, and how alike (0..1)."""

    id: int
    score: float


def most_similar(text: str, items: Iterable[tuple[int, str]]) -> Similar | None:
    """The item of ``items`` (id, text) most like ``text``; ties go to the oldest (lowest id).
    None when there is no item or nothing in common."""
    mine = _trigrams(text)
    best: Similar | None = None
    for item_id, other in sorted(items, key=lambda pair: pair[0]):
        score = round(min(1.0, _cosine(mine, _trigrams(other))), 3)
        if score > 0 and (best is None or score > best.score):
            best = Similar(id=item_id, score=score)
    return best


# ---- R-BOARD: what goes to the Board ---------------------------------------------------------

# Platforms as they are named in ideas: those in use and others one might trial.
_PLATFORM_WORDS = (
    "platform",
    "discord",
    "discourse",
    "forum",
    "slack",
    "mastodon",
    "matrix",
    "zulip",
    "telegram",
    "irc",
    "reddit",
    "bluesky",
    "fediverse",
    "mailing list",
    "github discussions",
    "stack overflow",
    "whatsapp",
    "signal",
    "mattermost",
    "rocket chat",
    "element",
    "linkedin",
    "youtube",
    "twitch",
    "wiki",
)
_IN_USE_ALIASES = {"forum": "discourse"}
_PLATFORM = r"(?P<platform>" + "|".join(re.escape(w).replace(r"\ ", r"\s+") for w in _PLATFORM_WORDS) + r")s?"
_OBJECT = r"\W+(?:\w+\W+){0,3}?"  # a verb's object: at most three words before the platform

_KIND_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "migrate-platform",
        re.compile(
            rf"\b(?:migrat\w*|mov(?:e|ing)|switch\w*|transfer\w*|replac\w*)\b{_OBJECT}{_PLATFORM}\b"
            rf"(?:{_OBJECT}(?:to|with|onto)\b)?",
            re.I,
        ),
    ),
    (
        "retire-platform",
        re.compile(
            rf"\b(?:retir\w*|shut\w*\s+down|sunset\w*|decommission\w*|deprecat\w*|abandon\w*|"
            rf"clos(?:e|ing)\s+down|stop\s+using|get\s+rid\s+of|leav(?:e|ing))\b{_OBJECT}{_PLATFORM}\b",
            re.I,
        ),
    ),
    (
        "trial-platform",
        re.compile(
            rf"\b(?:trial\w*|try(?:ing)?(?:\s+out)?|pilot\w*|experiment\w*\s+with|test(?:ing)?\s+out|"
            rf"adopt\w*|start\s+using|join\w*|evaluat\w*)\b{_OBJECT}{_PLATFORM}\b",
            re.I,
        ),
    ),
)
_NEW_PLATFORM = re.compile(r"\b(?:new|another|different|second)\s+(?:\w+\s+)?platform\b", re.I)
# Money: budget words, or an amount with a currency (sign, ISO code or word).
_MONEY_WORDS = re.compile(
    r"\b(?:budget\w*|fund(?:s|ing|ed)?|money|paid|pay(?:ing|ment)?|sponsor\w*|donat\w*|grant|"
    r"invoice\w*|cost(?:s|ing)?|price\w*|subscription\w*|licen[cs]e\s+fee|spend\w*|purchase\w*|"
    r"reimburs\w*|stipend\w*|honorari\w*)\b",
    re.I,
)
_AMOUNT = re.compile(
    r"(?:[$€£¥]\s?\d[\d,.]*|\b\d[\d,.]*\s?(?:k\b)?\s?(?:usd|eur|gbp|chf|cad|aud|dollars?|euros?|"
    r"pounds?)\b|\b(?:usd|eur|gbp|chf|cad|aud)\s?\d[\d,.]*)",
    re.I,
)


def _board_kind(text: str, *, charter: Charter) -> tuple[str | None, dict[str, Any]]:
    evidence: dict[str, Any] = {}
    money = _AMOUNT.search(text) or _MONEY_WORDS.search(text)
    if money and "budget" in charter.board.needs_board:
        evidence["money"] = money.group(0).strip()
        return "budget", evidence
    flat = re.sub(r"\s+", " ", text)
    in_use = {*charter.platforms, charter.charter.board_platform}
    for kind, pattern in _KIND_PATTERNS:
        if kind not in charter.board.needs_board:
            continue
        for found in pattern.finditer(flat):
            word = re.sub(r"\s+", " ", found.group("platform").lower())
            used = _IN_USE_ALIASES.get(word, word) in in_use
            # Trying a platform means one not in use: "try a voice channel on Discord" is not a
            # platform trial.
            if kind == "trial-platform" and used:
                continue
            evidence["matched"] = found.group(0).strip()[:120]
            return kind, evidence
    if "trial-platform" in charter.board.needs_board:
        new = _NEW_PLATFORM.search(flat)
        if new:
            evidence["matched"] = new.group(0).strip()
            return "trial-platform", evidence
    return None, evidence


def classify_board(text: str, *, charter: Charter) -> Decision:
    """Does this idea need the DSF Board (R-BOARD) or may the WG act on it (R-DIRECT)?
    ``allowed`` means the WG decides directly. ``evidence`` has ``kind`` (the R-BOARD kind or
    ``idea``) and the words that matched."""
    kind, evidence = _board_kind(text, charter=charter)
    if kind is None:
        decision = (
            needs_board("idea", charter=charter)
            if "idea" in (*charter.board.needs_board, *charter.board.direct)
            else None
        )
        return Decision(
            allowed=True,
            ruling="R-DIRECT",
            evidence={"kind": "idea", **evidence},
            reason=decision.reason
            if decision
            else "no platform trial, migration, retirement or money: the WG decides it",
        )
    decision = needs_board(kind, charter=charter)
    return Decision(
        allowed=decision.allowed, ruling=decision.ruling, reason=decision.reason, evidence={"kind": kind, **evidence}
    )


_PLATFORM_KEYWORDS: dict[str, tuple[str, ...]] = {
    "discord": (
        "discord",
        "voice channel",
        "slash command",
        "server boost",
        "stage channel",
        "emoji",
        "emote",
        "nitro",
    ),
    "discourse": (
        "discourse",
        "forum",
        "forums",
        "topic",
        "topics",
        "category",
        "categories",
        "trust level",
        "badge",
        "badges",
        "post",
        "posts",
    ),
    "slack": ("slack", "workspace"),
}


def classify_platform(text: str) -> str:
    """``discord``, ``discourse``, ``slack`` or ``general``: the platform named most often
    (a platform's own name counts double); ``general`` when none or a tie."""
    plain = re.sub(r"\s+", " ", (text or "").lower())
    scores: dict[str, int] = {}
    for platform, words in _PLATFORM_KEYWORDS.items():
        score = 0
        for word in words:
            hits = len(re.findall(rf"\b{re.escape(word)}\b", plain))
            score += hits * (2 if word == platform else 1)
        if score:
            scores[platform] = score
    if not scores:
        return "general"
    best = max(scores.values())
    winners = [p for p, s in scores.items() if s == best]
    return winners[0] if len(winners) == 1 else "general"


def untriaged_too_long(*, status: str, created_at: datetime, now: datetime, charter: Charter) -> Decision:
    """Is this item still waiting for the WG (``new`` or ``triaged``) after
    ``ideas.flag_untriaged_after_days``? ``allowed`` means: flag it (R-IDEA-2)."""
    if created_at.tzinfo is None or now.tzinfo is None:
        raise ValueError("created_at and now must be timezone-aware")
    limit = charter.ideas.flag_untriaged_after_days
    age = (now - created_at).days
    waiting = status in AWAITING
    flagged = waiting and age >= limit
    if flagged:
        reason = f"waiting for the WG's decision for {age} days (flagged after {limit})"
    elif waiting:
        reason = f"waiting for {age} days; flagged after {limit}"
    else:
        reason = f"decided ({status}): not waiting"
    return Decision(
        allowed=flagged,
        ruling="R-IDEA-2",
        reason=reason,
        evidence={"status": status, "age_days": age, "limit_days": limit},
    )


@dataclass(frozen=True, kw_only=True)
class Triage:
    """What triage says about one idea (R-IDEA-2)."""

    duplicate: Similar | None
    needs_board: bool
    kind: str
    platform: str
    board: Decision
    reasons: tuple[str, ...] = field(default=())

    @property
    def is_duplicate(self) -> bool:
        """A likely duplicate (score at or above the charter's threshold)."""
        return self.duplicate is not None


def triage(text: str, *, existing: Iterable[tuple[int, str]], charter: Charter) -> Triage:
    """Triage one idea's text against the ``existing`` items (id, text): the most similar item
    when its score reaches ``ideas.duplicate_similarity``, Board or WG, and platform."""
    threshold = charter.ideas.duplicate_similarity
    best = most_similar(text, existing)
    duplicate = best if best is not None and best.score >= threshold else None
    board = classify_board(text, charter=charter)
    platform = classify_platform(text)
    reasons = []
    if duplicate is not None:
        reasons.append(f"resembles idea {duplicate.id} (similarity {duplicate.score:.2f} ≥ {threshold:.2f})")
    reasons.append(f"{board.ruling}: {board.reason}")
    reasons.append(f"platform: {platform}")
    return Triage(
        duplicate=duplicate,
        needs_board=not board.allowed,
        kind=str(board.evidence.get("kind", "idea")),
        platform=platform,
        board=board,
        reasons=tuple(reasons),
    )
