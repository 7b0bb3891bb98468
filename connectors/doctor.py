"""What every connector's ``doctor`` module returns: one :class:`Check` per thing it verified.

``connectors/<platform>/doctor.py`` exposes ``check(settings, ...) -> list[Check]``: read-only
calls against the platform (never a write), each answer turned into ``ok`` or a failure that
says what to fix. A check never carries a secret: details name settings, never their values.
``charterflow doctor`` prints them one per line and exits non-zero if any failed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Check", "all_ok", "failed", "passed", "reaches"]


@dataclass(frozen=True, kw_only=True)
class Check:
    """The result of one check on one platform.

    ``name`` is short (``token``, ``role wg-member``); ``detail`` says what was found;
    ``fix`` (failures only) says what to change, naming the setting or the platform's page.
    """

    platform: str
    name: str
    ok: bool
    detail: str
    fix: str = ""

    def line(self) -> str:
        """``ok    discord  token: bot charterflow (1100…)`` or ``FAIL  … — fix: …``."""
        text = f"{'ok  ' if self.ok else 'FAIL'}  {self.platform:<9} {self.name}: {self.detail}"
        return text if self.ok or not self.fix else f"{text} — fix: {self.fix}"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


def passed(platform: str, name: str, detail: str) -> Check:
    """A check that passed."""
    return Check(platform=platform, name=name, ok=True, detail=detail)


def failed(platform: str, name: str, detail: str, fix: str) -> Check:
    """A check that failed, with what to do about it."""
    return Check(platform=platform, name=name, ok=False, detail=detail, fix=fix)


def all_ok(checks: Iterable[Check]) -> bool:
    """True when no check failed."""
    return all(c.ok for c in checks)


def reaches(found: str, url: str | None, route: str) -> bool:
    """Whether a platform sends to the gateway: ``found`` (the URL it delivers to) is ``url`` (the
    gateway's public URL and route) when that is known, else any URL ending in ``route``."""
    found = found.rstrip("/")
    return found == url.rstrip("/") if url else found.endswith(route)
