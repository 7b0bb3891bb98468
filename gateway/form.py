"""The public application form (R-APP-1): its fields, validation, CSRF tokens and rate limit.

CSRF: a signed double-submit token. ``GET /apply`` sets a random ``cf_csrf`` cookie
(HttpOnly, SameSite=Strict) and puts ``HMAC(secret, cookie | submission id | issued-at)`` in a
hidden field; ``POST /apply`` needs both to match and the token to be younger than
``form_token_max_age``. The submission id is server-generated; it is the inbox dedupe key, so a
double click or a reload of the POST stores one application.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from pydantic import SecretStr

CSRF_COOKIE = "cf_csrf"
HONEYPOT = "website"
_SUBMISSION = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
# Letters (any script), digits, dot, dash, underscore: what Discourse and Discord allow.
_USERNAME = re.compile(r"^[\w.\-]{2,}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
MAX_EMAIL = 254


@dataclass(frozen=True, kw_only=True)
class Limits:
    """Field length limits from the charter file (``[application]``)."""

    max_handle_chars: int
    max_answer_chars: int
    confirm_within_days: int


@dataclass(kw_only=True)
class Submission:
    """What the person typed (kept on errors) and the errors by field name."""

    values: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """No errors."""
        return not self.errors


FIELDS = ("discourse_username", "discord_username", "why", "experience", "nominator", "email")


def _clean(text: str) -> str:
    return _CONTROL.sub("", text.replace("\r\n", "\n")).strip()


def validate(form: Mapping[str, str], *, limits: Limits) -> Submission:
    """Check the fields of R-APP-1; every message says how to fix it."""
    values = {name: _clean(form.get(name, "")) for name in FIELDS}
    for name in ("discourse_username", "discord_username"):
        values[name] = values[name].removeprefix("@")
    errors: dict[str, str] = {}
    handle_hint = "letters, digits, dots, dashes or underscores, as shown on your profile"
    for name, platform in (("discourse_username", "Forum"), ("discord_username", "Discord")):
        value = values[name]
        if not value:
            continue
        if len(value) > limits.max_handle_chars:
            errors[name] = f"A {platform} username has at most {limits.max_handle_chars} characters."
        elif not _USERNAME.match(value):
            errors[name] = f"Enter your {platform} username: {handle_hint}."
    if not values["discourse_username"] and not values["discord_username"]:
        errors["usernames"] = ("Enter your Forum username, your Discord username, or both: we "
                               "confirm the application from each account you name.")
    for name, label in (("why", "why you want to join"), ("experience", "your experience and skills")):
        if not values[name]:
            errors[name] = f"Tell us {label}."
        elif len(values[name]) > limits.max_answer_chars:
            errors[name] = (f"Please shorten this to {limits.max_answer_chars} characters "
                            f"(it has {len(values[name])}).")
    if len(values["nominator"]) > MAX_EMAIL:
        errors["nominator"] = f"A nominator's name or username has at most {MAX_EMAIL} characters."
    if values["email"]:
        if len(values["email"]) > MAX_EMAIL or not _EMAIL.match(values["email"]):
            errors["email"] = "Enter an e-mail address like name@example.org, or leave it empty."
    return Submission(values=values, errors=errors)


class CsrfTokens:
    """Signs and checks the form's tokens (see the module docstring)."""

    def __init__(self, *, secret: SecretStr | None, max_age: float) -> None:
        # Unset: a per-process secret (forms then do not survive a restart: the person is asked
        # to submit again, with what they typed kept).
        self._key = (secret.get_secret_value() if secret else secrets.token_hex(32)).encode()
        self.max_age = max_age

    def __repr__(self) -> str:
        return "CsrfTokens(secret=SecretStr('**********'))"

    @staticmethod
    def new_cookie() -> str:
        """A fresh random cookie value."""
        return secrets.token_urlsafe(32)

    @staticmethod
    def new_submission() -> str:
        """A fresh server-generated submission id."""
        return secrets.token_urlsafe(18)

    def _mac(self, cookie: str, submission: str, issued: int) -> str:
        message = f"{cookie}|{submission}|{issued}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def issue(self, cookie: str, submission: str, *, now: float | None = None) -> str:
        """The hidden field's token: ``<issued>.<mac>``."""
        issued = int(time.time() if now is None else now)
        return f"{issued}.{self._mac(cookie, submission, issued)}"

    def check(self, *, cookie: str | None, submission: str, token: str,
              now: float | None = None) -> bool:
        """True when ``token`` was issued for this cookie and submission, and is not expired."""
        if not cookie or not _SUBMISSION.match(submission or "") or len(token) > 100:
            return False
        issued_text, _, mac = token.partition(".")
        if not issued_text.isdigit() or len(issued_text) > 12:
            return False
        issued = int(issued_text)
        age = (time.time() if now is None else now) - issued
        if age < -60 or age > self.max_age:
            return False
        return hmac.compare_digest(mac.encode(), self._mac(cookie, submission, issued).encode())


class RateLimiter:
    """At most ``limit`` hits per key within ``window`` seconds (sliding, in memory)."""

    def __init__(self, *, limit: int, window: float, max_keys: int = 100_000) -> None:
        self.limit, self.window, self.max_keys = limit, window, max_keys
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def hit(self, key: str, *, now: float | None = None) -> float:
        """Record a hit; 0 when allowed, else the seconds until the next one is."""
        now = time.monotonic() if now is None else now
        with self._lock:
            if len(self._hits) >= self.max_keys:
                # Bounded memory under a flood of addresses: forget the idle ones.
                for stale in [k for k, q in self._hits.items() if not q or now - q[-1] > self.window]:
                    del self._hits[stale]
            hits = self._hits.setdefault(key, deque())
            while hits and now - hits[0] > self.window:
                hits.popleft()
            if len(hits) >= self.limit:
                return max(0.1, self.window - (now - hits[0]))
            hits.append(now)
            return 0.0
