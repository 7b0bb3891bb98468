"""Community guides as text (R-GUIDE): front matter, matching for ``/help``, and how a guide
fits a platform (whole, split in parts, or a summary linking to the whole guide).

A guide is a Markdown file kept with the charter (``guides/`` beside the charter file):

    ---
    title: How to ask a good question on the Forum
    platforms: discourse, discord
    audience: everyone
    keywords: question, help, forum          (optional)
    ---
    The text...

Pure functions only: the caller reads the files and passes their text. A guide whose front
matter is broken raises :class:`GuideError` naming the file and the line, and is not published.
A platform is named as its connector is (``discourse``, ``matrix``): a malformed name is such an
error; a well-formed one with no connector installed is kept, so the shipped guides may name a
plugin's platform; the caller skips it at publish (:func:`without_connector`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from rules.decision import Decision

__all__ = [
    "AUDIENCES",
    "FIELDS",
    "Guide",
    "GuideError",
    "Pieces",
    "check_guides",
    "fit_guide",
    "match_guides",
    "parse_guide",
    "split_text",
    "without_connector",
]

RULING = "R-GUIDE"
FIELDS = ("title", "platforms", "audience", "keywords")
REQUIRED = ("title", "platforms", "audience")
AUDIENCES = ("everyone", "newcomers", "members", "moderators")
MAX_TITLE = 100  # a Discord scheduled event's name and a thread name hold 100 characters
MAX_BODY = 60_000
_SLUG = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
# A connector's entry-point name (``charterflow.connectors``): lower case, then letters, digits, - _.
_PLATFORM = re.compile(r"[a-z][a-z0-9_-]{0,31}")
_WORD = re.compile(r"[a-z0-9]+")
# Words that say nothing about a topic ("how do I ask a question" matches on "ask", "question").
_STOP = frozenset(
    "a an and are as at be can do does for from get how i in is it me my of on or "
    "the to what when where which who why with you your".split()
)


class GuideError(ValueError):
    """A guide that cannot be published: ``name`` (its file), ``line`` (1-based, 0 when the
    problem is the whole file) and what is wrong."""

    def __init__(self, name: str, line: int, problem: str) -> None:
        super().__init__(f"{name}:{line}: {problem}" if line else f"{name}: {problem}")
        self.name, self.line, self.problem = name, line, problem


@dataclass(frozen=True, kw_only=True)
class Guide:
    """A checked guide. ``slug`` is its file name without ``.md`` (the guide's stable id);
    ``digest`` changes whenever what is published changes (title or text)."""

    slug: str
    title: str
    platforms: tuple[str, ...]
    audience: str
    body: str
    keywords: tuple[str, ...] = ()
    digest: str = field(default="", compare=False)

    def for_platform(self, platform: str) -> bool:
        """True when the guide is meant for ``platform``."""
        return platform in self.platforms


def _digest(title: str, body: str) -> str:
    return hashlib.sha256(f"{title}\n\n{body}".encode()).hexdigest()[:16]


def _list(value: str) -> tuple[str, ...]:
    text = value.strip().removeprefix("[").removesuffix("]")
    return tuple(dict.fromkeys(p.strip().strip("\"'").lower() for p in text.split(",") if p.strip()))


def _slug_of(name: str) -> str:
    slug = name.rsplit("/", 1)[-1].removesuffix(".md")
    if not _SLUG.fullmatch(slug):
        raise GuideError(name, 0, "the file name must be lower-case letters, digits and dashes")
    return slug


def _front_matter_end(name: str, lines: Sequence[str]) -> int:
    """The index of the line ``---`` that closes the front matter."""
    if not lines or lines[0].strip() != "---":
        raise GuideError(name, 1, "a guide starts with front matter: a line '---'")
    end = next((i for i in range(1, len(lines)) if lines[i].strip() == "---"), None)
    if end is None:
        raise GuideError(name, len(lines), "the front matter is not closed by a line '---'")
    return end


def _fields(name: str, lines: Sequence[str], end: int) -> dict[str, tuple[int, str]]:
    """Field → (line number, raw value) of the front matter; every required field present."""
    fields: dict[str, tuple[int, str]] = {}
    for i in range(1, end):
        raw, number = lines[i], i + 1
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        key, sep, value = raw.partition(":")
        key = key.strip().lower()
        if not sep or not key:
            raise GuideError(name, number, f"expected 'field: value', found {raw.strip()[:60]!r}")
        if key not in FIELDS:
            raise GuideError(name, number, f"unknown field {key!r} (fields: {', '.join(FIELDS)})")
        if key in fields:
            raise GuideError(name, number, f"{key!r} is given twice (first on line {fields[key][0]})")
        fields[key] = (number, value.strip())
    for key in REQUIRED:
        if key not in fields:
            raise GuideError(name, end + 1, f"the front matter has no {key!r}")
    return fields


def _title(name: str, field: tuple[int, str]) -> str:
    line, value = field
    title = re.sub(r"\s+", " ", value.strip("\"'")).strip()
    if not title:
        raise GuideError(name, line, "the title is empty")
    if len(title) > MAX_TITLE:
        raise GuideError(name, line, f"the title has {len(title)} characters (at most {MAX_TITLE})")
    return title


def _platforms(name: str, field: tuple[int, str]) -> tuple[str, ...]:
    line, value = field
    platforms = _list(value)
    if not platforms:
        raise GuideError(name, line, "no platform named")
    if bad := [p for p in platforms if not _PLATFORM.fullmatch(p)]:
        raise GuideError(
            name, line, f"malformed platform name {bad[0][:40]!r} (a connector's name: letters, digits, - or _)"
        )
    return platforms


def _audience(name: str, field: tuple[int, str]) -> str:
    line, value = field
    audience = value.strip("\"'").lower()
    if audience not in AUDIENCES:
        raise GuideError(name, line, f"unknown audience {audience!r} (one of {', '.join(AUDIENCES)})")
    return audience


def _body(name: str, lines: Sequence[str], end: int) -> str:
    body = "\n".join(lines[end + 1 :]).strip()
    if not body:
        raise GuideError(name, end + 2, "the guide has no text after its front matter")
    if len(body) > MAX_BODY:
        raise GuideError(name, end + 2, f"the text has {len(body)} characters (at most {MAX_BODY})")
    return body


def parse_guide(name: str, text: str) -> Guide:
    """The guide in ``text`` (file ``name``, e.g. ``asking-questions.md``); :class:`GuideError`
    with the line of the first problem: no front matter, an unknown or repeated field, a missing
    required field, an empty title, a malformed platform name, an unknown audience (R-GUIDE)."""
    slug = _slug_of(name)
    lines = text.splitlines()
    end = _front_matter_end(name, lines)
    fields = _fields(name, lines, end)
    title = _title(name, fields["title"])
    platforms = _platforms(name, fields["platforms"])
    audience = _audience(name, fields["audience"])
    keywords = _list(fields["keywords"][1]) if "keywords" in fields else ()
    body = _body(name, lines, end)
    return Guide(
        slug=slug,
        title=title,
        platforms=platforms,
        audience=audience,
        body=body,
        keywords=keywords,
        digest=_digest(title, body),
    )


def check_guides(files: Mapping[str, str]) -> tuple[list[Guide], list[GuideError]]:
    """Every guide of ``files`` (name → text), sorted by name, and the broken ones' errors:
    a broken guide never stops the others (R-GUIDE)."""
    guides, errors = [], []
    for name in sorted(files):
        try:
            guides.append(parse_guide(name, files[name]))
        except GuideError as exc:
            errors.append(exc)
    return guides, errors


def without_connector(guides: Iterable[Guide], installed: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """The platforms the guides name that no installed connector serves, each with its guides'
    slugs, in the order first named: skipped at publish and shown by ``guides status`` (R-GUIDE)."""
    have = set(installed)
    missing: dict[str, list[str]] = {}
    for guide in guides:
        for platform in guide.platforms:
            if platform not in have:
                missing.setdefault(platform, []).append(guide.slug)
    return {platform: tuple(slugs) for platform, slugs in missing.items()}


def _words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in _STOP and len(w) > 1]


def _stem(word: str) -> str:
    # "questions" finds "question", "reporting" finds "report": a light stemmer is enough here.
    for end in ("ing", "es", "s", "ed"):
        if word.endswith(end) and len(word) - len(end) >= 4:
            return word[: -len(end)]
    return word


def match_guides(query: str, guides: Sequence[Guide], *, platform: str | None = None, limit: int = 3) -> list[Guide]:
    """The guides that best answer ``/help <query>`` (R-GUIDE), best first: a word of the
    query in the title counts 3, in the keywords 2, in the text 1. An empty query lists the
    guides meant for everyone and newcomers first. ``platform`` keeps only its guides."""
    pool = [g for g in guides if platform is None or g.for_platform(platform)]
    wanted = {_stem(w) for w in _words(query)}
    if not wanted:
        order = {a: i for i, a in enumerate(("newcomers", "everyone"))}
        return sorted(pool, key=lambda g: (order.get(g.audience, 9), g.title))[:limit]
    scored = []
    for guide in pool:
        title = {_stem(w) for w in _words(guide.title)}
        keys = {_stem(w) for k in guide.keywords for w in _words(k)}
        body = {_stem(w) for w in _words(guide.body)}
        score = sum(3 * (w in title) + 2 * (w in keys) + (w in body) for w in wanted)
        if score:
            scored.append((-score, guide.title, guide))
    return [g for _, _, g in sorted(scored, key=lambda t: (t[0], t[1]))][:limit]


def split_text(text: str, limit: int) -> list[str]:
    """``text`` in parts of at most ``limit`` characters, cut between paragraphs, else lines,
    else words; nothing is dropped (only whitespace at the cuts)."""
    if limit < 20:
        raise ValueError("a part holds at least 20 characters")
    parts: list[str] = []
    rest = text.strip()
    while len(rest) > limit:
        window = rest[: limit + 1]
        cut = max(window.rfind("\n\n"), 0)
        if cut < limit // 3:
            cut = window.rfind("\n")
        if cut < limit // 3:
            cut = window.rfind(" ")
        if cut < limit // 3:
            cut = limit
        parts.append(rest[:cut].rstrip())
        rest = rest[cut:].strip()
    if rest:
        parts.append(rest)
    return parts


@dataclass(frozen=True, kw_only=True)
class Pieces:
    """What is posted for one guide on one platform: ``mode`` ``whole`` (one piece), ``split``
    (several, each marked "part i of n") or ``linked`` (a summary and the whole guide's link),
    with the decision that says why (R-GUIDE: never cut silently)."""

    mode: str
    pieces: tuple[str, ...]
    decision: Decision


def fit_guide(
    guide: Guide, *, limit: int, max_pieces: int, link: str | None = None, title_in_text: bool = False
) -> Pieces:
    """How ``guide`` fits a platform whose message holds ``limit`` characters and that takes at
    most ``max_pieces`` messages per guide: whole when it fits; else split in marked parts;
    when there would be too many parts and ``link`` (the whole guide elsewhere) is known, its
    first paragraph and the link. Never cut: without a link a long guide is split whatever the
    count. ``title_in_text``: the platform shows no title, so the first piece starts with it."""
    head = f"**{guide.title}**\n\n" if title_in_text else ""
    text = head + guide.body
    evidence = {"characters": len(text), "limit": limit, "max_pieces": max_pieces}
    if len(text) <= limit:
        return Pieces(
            mode="whole",
            pieces=(text,),
            decision=Decision(allowed=True, ruling=RULING, reason="The guide fits in one message.", evidence=evidence),
        )
    marker_room = len("\n\n(part 99 of 99)")
    parts = split_text(text, limit - marker_room)
    if len(parts) > max_pieces and link:
        tail = f"\n\nThis guide is too long to post here in full. Read the whole guide: {link}"
        # The summary holds the platform's limit whatever the link's length (R-GUIDE: never cut).
        intro = split_text(head + guide.body.split("\n\n", 1)[0], max(20, limit - len(tail)))[0]
        summary = f"{intro}{tail}"
        return Pieces(
            mode="linked",
            pieces=(summary,),
            decision=Decision(
                allowed=True,
                ruling=RULING,
                reason=(f"The guide needs {len(parts)} messages here (at most {max_pieces}): a summary links to it."),
                evidence={**evidence, "parts_needed": len(parts), "link": link},
            ),
        )
    n = len(parts)
    pieces = tuple(f"{p}\n\n(part {i} of {n})" for i, p in enumerate(parts, start=1))
    return Pieces(
        mode="split",
        pieces=pieces,
        decision=Decision(
            allowed=True, ruling=RULING, reason=f"The guide is posted in {n} parts.", evidence={**evidence, "parts": n}
        ),
    )
