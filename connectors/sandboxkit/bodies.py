"""Request bodies as pydantic models: a sandbox declares a body's fields and limits once
(``Field(max_length=...)``, validators) and maps the problems to its platform's error shape in
one place, instead of one ``if`` per field."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

__all__ = ["check_body"]

M = TypeVar("M", bound=BaseModel)

# Pydantic's error types in the platforms' words (Discord's 50035 messages); a validator's own
# ValueError keeps its message.
_WORDS = {
    "string_too_long": "Must be {max_length} or fewer in length.",
    "too_long": "Must be {max_length} or fewer in length.",
    "string_too_short": "Must be {min_length} or more in length.",
    "too_short": "Must be {min_length} or more in length.",
    "literal_error": "Value must be one of ({expected}).",
    "value_error": "{error}",
}


def check_body(model: type[M], data: Any, **context: Any) -> tuple[M | None, dict[str, str]]:
    """``data`` validated as ``model`` (``context`` reaches its validators), or ``None`` and the
    problems by dotted field path (``prompts.0.options.1.title``; ``body`` for the whole)."""
    try:
        return model.model_validate(data, context=context), {}
    except ValidationError as exc:
        return None, {
            ".".join(map(str, e["loc"])) or "body": _WORDS.get(e["type"], e["msg"]).format(**e.get("ctx", {}))
            for e in exc.errors()
        }
