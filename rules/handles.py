"""How people's handles are compared when they were typed (a nominator on an application,
R-ELIG-2; the reported person on the web form, R-SAFE-1): without blanks around them or the
leading ``@`` people write on Discord and the Forum, case-insensitive."""

from __future__ import annotations

__all__ = ["handle_key", "same_handle"]


def handle_key(text: str) -> str:
    """A handle as compared."""
    return text.strip().removeprefix("@").strip().casefold()


def same_handle(a: str | None, b: str | None) -> bool:
    """Whether two names given for one platform are the same handle; a missing one is none."""
    return bool(a and b) and handle_key(str(a)) == handle_key(str(b))
