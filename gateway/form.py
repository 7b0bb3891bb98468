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
import logging
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr

from connectors.errors import ConnectorError
from rules.applications import ApplicationForm, check_form

log = logging.getLogger("charterflow.gateway")
CSRF_COOKIE = "cf_csrf"
HONEYPOT = "website"
_SUBMISSION = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
# Letters (any script), digits, dot, dash, underscore: what Discourse and Discord allow.
_USERNAME = re.compile(r"^[\w.\-]+$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
MAX_EMAIL = 254
# The platforms' own username lengths: Discord 2-32 (its username rules); Discourse's site
# setting min_username_length defaults to 3 (its longest, max_username_length, to 20, but sites
# raise it, so the charter's max_handle_chars is the upper bound there).
# https://discord.com/developers/docs/resources/user#usernames-and-nicknames
# https://meta.discourse.org/t/username-length-settings/
USERNAME_LENGTHS = {"discourse_username": (3, None), "discord_username": (2, 32)}


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
LABELS = {
    "discourse_username": "Forum username",
    "discord_username": "Discord username",
    "why": "why you want to join",
    "experience": "experience and skills",
    "nominator": "nominated by",
    "email": "e-mail",
}
# Sending the form with usernames looks them up on the platforms; a person correcting a typo
# may do that a few times per application before the lookups are limited too.
LOOKUPS_PER_APPLICATION = 5


def valid_submission(submission: str) -> bool:
    """A well-formed server-generated submission id."""
    return bool(_SUBMISSION.match(submission or ""))


def _clean(text: str) -> str:
    return _CONTROL.sub("", text.replace("\r\n", "\n")).strip()


def _control_errors(form: Mapping[str, str]) -> dict[str, str]:
    """A field holding NUL or another control character is refused with a message (they are
    taken out of what is shown again, so the person sees exactly what will be sent)."""
    errors = {}
    for name in FIELDS:
        text = form.get(name, "")
        if "\x00" in text:
            errors[name] = (
                "This field contained a NUL character (an invisible byte that usually "
                "comes from copying out of another program); we took it out. Please "
                "check the text and send again."
            )
        elif _CONTROL.search(text):
            errors[name] = (
                "This field contained invisible control characters; we took them out. "
                "Please check the text and send again."
            )
    return errors


def username_length_error(name: str, value: str, *, limits: Limits, too_long: bool = False) -> str | None:
    """The message for a username shorter or longer than its platform allows (``too_long``:
    longer than the charter allows, R-APP-1 as ``rules.applications`` decided), else None."""
    platform = "Forum" if name == "discourse_username" else "Discord"
    shortest, longest = USERNAME_LENGTHS[name]
    longest = min(longest or limits.max_handle_chars, limits.max_handle_chars)
    if len(value) < shortest:
        return (
            f"A {platform} username has at least {shortest} characters; "
            f"{value!r} has {len(value)}. Please check it on your {platform} profile."
        )
    if too_long or len(value) > longest:
        return f"A {platform} username has at most {longest} characters."
    return None


# The form's fields by what ``rules.applications.check_form`` calls them.
_RULE_FIELDS = {
    "discourse_username": "discourse",
    "discord_username": "discord",
    "why": "why",
    "experience": "experience",
    "usernames": "usernames",
}


def validate(form: Mapping[str, str], *, limits: Limits) -> Submission:
    """Check the fields: R-APP-1 as ``rules.applications.check_form`` decides it, then what the
    platforms accept (username lengths and characters) and the e-mail's shape. Every message
    says how to fix it."""
    values = {name: _clean(form.get(name, "")) for name in FIELDS}
    for name in ("discourse_username", "discord_username"):
        values[name] = values[name].removeprefix("@")
    check = check_form(
        ApplicationForm(
            usernames={"discourse": values["discourse_username"], "discord": values["discord_username"]},
            why=values["why"],
            experience=values["experience"],
        ),
        limits=limits,
    )
    problems = {name: check.problem(field) for name, field in _RULE_FIELDS.items()}
    errors: dict[str, str] = {}
    handle_hint = "letters, digits, dots, dashes or underscores, as shown on your profile"
    for name, platform in (("discourse_username", "Forum"), ("discord_username", "Discord")):
        value = values[name]
        if not value:
            continue
        length_error = username_length_error(name, value, limits=limits, too_long=problems[name] is not None)
        if length_error:
            errors[name] = length_error
        elif not _USERNAME.match(value):
            errors[name] = f"Enter your {platform} username: {handle_hint}."
    if problems["usernames"] is not None:
        errors["usernames"] = (
            "Enter your Forum username, your Discord username, or both: we "
            "confirm the application from each account you name."
        )
    for name, label in (("why", "why you want to join"), ("experience", "your experience and skills")):
        problem = problems[name]
        if problem is not None and problem.code == "missing-answers":
            errors[name] = f"Tell us {label}."
        elif problem is not None:
            errors[name] = f"Please shorten this to {problem.limit} characters (it has {problem.length})."
    if len(values["nominator"]) > MAX_EMAIL:
        errors["nominator"] = f"A nominator's name or username has at most {MAX_EMAIL} characters."
    if values["email"]:
        if len(values["email"]) > MAX_EMAIL or not _EMAIL.match(values["email"]):
            errors["email"] = "Enter an e-mail address like name@example.org, or leave it empty."
    # A control character is the first thing to fix in its field.
    return Submission(values=values, errors=errors | _control_errors(form))


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

    def check(self, *, cookie: str | None, submission: str, token: str, now: float | None = None) -> bool:
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

    def wait(self, key: str, *, now: float | None = None) -> float:
        """0 when a hit would be allowed now, else the seconds until it is (records nothing)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            hits = self._hits.get(key)
            while hits and now - hits[0] > self.window:
                hits.popleft()
            if hits and len(hits) >= self.limit:
                return max(0.1, self.window - (now - hits[0]))
            return 0.0

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


_PLATFORM_OF = {"discourse_username": ("discourse", "Forum"), "discord_username": ("discord", "Discord")}


class UsernameLookup:
    """Looks the form's usernames up on their platforms through the connectors' ``Directory``
    (R-APP-4: an unknown account is answered on the form's page, not accepted and dropped
    later). ``directories`` maps ``discourse``/``discord`` to a Directory, or is a callable that
    builds that mapping on first use. A platform that cannot answer (not served, down, rate
    limited) is not held against the applicant: the intake flow checks again."""

    def __init__(self, directories: Mapping[str, Any] | Callable[[], Mapping[str, Any]]) -> None:
        self._source = directories
        self._built: Mapping[str, Any] | None = None if callable(directories) else directories
        self._lock = threading.Lock()

    def _directories(self) -> Mapping[str, Any]:
        with self._lock:
            if self._built is None:
                try:
                    self._built = self._source()  # type: ignore[operator]  # callable when _built is None
                except Exception as exc:  # noqa: BLE001 - no lookup then; the flow checks
                    log.warning("gateway: username lookup unavailable (%s)", type(exc).__name__)
                    self._built = {}
            return self._built

    def errors(self, values: Mapping[str, str]) -> dict[str, str]:
        """A message per username field whose account does not exist on its platform."""
        errors = {}
        for name, (platform, label) in _PLATFORM_OF.items():
            username = values.get(name, "")
            directory = self._directories().get(platform) if username else None
            if directory is None:
                continue
            try:
                directory.find_user(username)
            except ConnectorError as exc:
                if getattr(exc, "status", None) == 404:
                    errors[name] = (
                        f"There is no {label} account called {username!r}. Please "
                        f"copy your username from your {label} profile."
                    )
                else:
                    log.info("gateway: %s lookup failed (%s); the flow checks later", platform, type(exc).__name__)
            except Exception as exc:  # noqa: BLE001 - a lookup never loses an application
                log.info("gateway: %s lookup failed (%s); the flow checks later", platform, type(exc).__name__)
        return errors


def kept_changes(stored: Mapping[str, Any], values: Mapping[str, str]) -> list[str]:
    """The fields a resent submission changed against the stored one (empty: the same)."""
    return [name for name in FIELDS if str(stored.get(name) or "") != (values.get(name) or "")]
