"""Input errors of the rules layer. rules imports nothing of ours, so these are ValueErrors;
the shell (charterflow/) reports them as one-line messages (exit 2) or as ``ConfigError``."""

from __future__ import annotations

from pydantic import ValidationError
from pydantic_core import ErrorDetails


class CharterFileError(ValueError):
    """The charter file is unreadable or invalid; the message names the file and the field."""


class CaseError(ValueError):
    """A what-if case is malformed; the message names the field and what is wrong."""


def describe_validation_error(exc: ValidationError, *, limit: int = 3) -> str:
    """One line from a pydantic error: ``field.path: what is wrong`` for each of the first
    ``limit`` problems, joined by ``; ``."""
    errors = exc.errors(include_url=False)
    parts = [_describe(error) for error in errors[:limit]]
    if len(errors) > limit:
        parts.append(f"and {len(errors) - limit} more")
    return "; ".join(parts)


def _describe(error: ErrorDetails) -> str:
    loc = ".".join(str(part) for part in error["loc"] if not str(part).startswith("function-"))
    kind, msg = error["type"], error["msg"]
    if kind == "missing":
        msg = "required field is missing"
    elif kind == "extra_forbidden":
        msg = "unknown field"
    elif kind in {"timezone_aware", "datetime_from_date_parsing", "datetime_parsing", "datetime_type"}:
        msg = f"not an ISO 8601 date-time with a zone ({msg})"
    msg = msg.removeprefix("Value error, ")
    return f"{loc}: {msg}" if loc else msg
