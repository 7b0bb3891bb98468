"""Reading a signed JSON body that is valid but unusual, without failing on it.

Python's ``json`` fails on some valid JSON: a document nested deeper than the interpreter's
recursion limit (``RecursionError``), an integer of more than 4,300 digits (``ValueError``), and
it returns strings holding lone surrogates (``"\\ud800"`` is a valid escape) that cannot be
encoded as UTF-8 afterwards (``UnicodeEncodeError`` when stored). :func:`read_json` returns a
*view* of the document that is always safe to keep and to hand on, plus notes saying what was
changed; the raw bytes, kept beside it by the caller, stay the exact record:

- containers nested deeper than :data:`MAX_DEPTH` levels are replaced by :data:`CUT` (parsed
  without recursion, so any depth that fits the body limit is read and checked);
- integers of more than :data:`MAX_INT_DIGITS` digits, and ``NaN`` / ``Infinity`` (which
  Python's parser accepts), are kept as their text;
- lone surrogates in strings and keys become U+FFFD.

Anything that is not JSON at all (or not UTF-8) raises :class:`NotJson`.
"""

from __future__ import annotations

import json
import math
import re
from itertools import accumulate
from typing import Any

__all__ = ["CUT", "MAX_DEPTH", "MAX_INT_DIGITS", "NotJson", "read_json"]

MAX_DEPTH = 64
MAX_INT_DIGITS = 30
CUT = f"<cut: nested deeper than {MAX_DEPTH} levels>"

_STRING = r'"[^"\\]*(?:\\.[^"\\]*)*"'
_STRINGS = re.compile(_STRING, re.S)
_NOT_BRACKETS = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATES = re.compile("[\ud800-\udfff]")
_TOKEN = re.compile(
    r"[ \t\n\r]*(?:(?P<str>" + _STRING + r")|(?P<num>-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?"
    r"(?:[eE][+-]?[0-9]+)?)|(?P<lit>true|false|null|NaN|-?Infinity)|(?P<p>[\[\]{},:]))",
    re.S,
)
_LITERALS = {"true": True, "false": False, "null": None}


class NotJson(ValueError):
    """The body is not JSON (or not UTF-8): it can never be handled."""


def read_json(body: bytes | str) -> tuple[Any, list[str]]:
    """The safe view of the JSON document ``body`` and the notes on what the view changed
    (empty for an ordinary document); :class:`NotJson` when it is not JSON."""
    if isinstance(body, (bytes, bytearray)):
        try:
            text = bytes(body).decode("utf-8")
        except UnicodeDecodeError:
            raise NotJson("the body is not UTF-8") from None
    else:
        text = body
    notes: set[str] = set()
    if _depth(text) <= MAX_DEPTH:
        try:
            value = json.loads(
                text,
                parse_int=lambda s: _int(s, notes),
                parse_float=lambda s: _float(s, notes),
                parse_constant=lambda s: _constant(s, notes),
            )
        except (ValueError, RecursionError) as exc:
            raise NotJson(f"the body is not JSON ({type(exc).__name__})") from None
    else:
        value = _parse_iteratively(text, notes)
        notes.add(f"nested deeper than {MAX_DEPTH} levels: the deeper parts are cut")
    if _SURROGATE_ESCAPE.search(text):
        value = _scrub(value, notes)
    return value, sorted(notes)


def _depth(text: str) -> int:
    """The deepest bracket nesting outside strings (an estimate on broken JSON; 0 when there
    are too few brackets to nest deeper than MAX_DEPTH)."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:  # the usual body: no scan needed
        return 0
    brackets = _NOT_BRACKETS.sub("", _STRINGS.sub('""', text))
    if not brackets:
        return 0
    return max(accumulate(_STEP[c] for c in brackets))


def _int(text: str, notes: set[str]) -> Any:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        notes.add(f"integers of more than {MAX_INT_DIGITS} digits are kept as text")
        return text
    return int(text)


def _float(text: str, notes: set[str]) -> Any:
    value = float(text)
    if math.isfinite(value):
        return value
    notes.add("numbers too large for a float are kept as text")
    return text


def _constant(text: str, notes: set[str]) -> str:
    notes.add("NaN and Infinity are kept as text")
    return text


def _scrub(value: Any, notes: set[str]) -> Any:
    """``value`` with lone surrogates replaced (its depth is at most MAX_DEPTH + 1)."""
    if isinstance(value, str):
        fixed = _SURROGATES.sub("\ufffd", value)
        if fixed != value:
            notes.add("lone surrogates are replaced by U+FFFD")
        return fixed
    if isinstance(value, list):
        return [_scrub(v, notes) for v in value]
    if isinstance(value, dict):
        return {_scrub(k, notes): _scrub(v, notes) for k, v in value.items()}
    return value


def _scalar(match: re.Match[str], notes: set[str]) -> Any:
    kind, token = match.lastgroup, match.group(match.lastgroup or "")
    if kind == "str":
        return json.loads(token)  # checks the escapes and control characters
    if kind == "lit":
        return _LITERALS[token] if token in _LITERALS else _constant(token, notes)
    if any(c in token for c in ".eE"):
        return _float(token, notes)
    return _int(token, notes)


def _parse_iteratively(text: str, notes: set[str]) -> Any:
    """Parse without recursion (any depth), keeping containers up to MAX_DEPTH levels."""
    return _Parser(notes).parse(text)


class _Parser:
    """A state machine over ``_TOKEN``: each state (what may come next) has one step method
    that takes a token and returns the next state; any other token is not JSON."""

    def __init__(self, notes: set[str]) -> None:
        self.notes = notes
        self.stack: list[list[Any]] = []  # [container or None, pending key, opening bracket]
        self.result: Any = None
        self.steps = {
            "value": self._value,
            "value-or-close": self._value,
            "key": self._key,
            "key-or-close": self._key,
            "colon": self._colon,
            "next": self._next,
        }

    def parse(self, text: str) -> Any:
        expect, pos = "value", 0
        while True:
            match = _TOKEN.match(text, pos)
            if match is None:
                if expect == "end" and not text[pos:].strip(" \t\n\r"):
                    return self.result
                raise NotJson(f"the body is not JSON (at character {pos})")
            pos = match.end()
            try:
                step = self.steps.get(expect)
                if step is None:  # "end": nothing may follow the document
                    raise ValueError(match.group(0))
                expect = step(match, expect)
            except (ValueError, IndexError):
                raise NotJson(f"the body is not JSON (at character {match.start()})") from None

    def put(self, value: Any) -> str:
        if not self.stack:
            self.result = value
            return "end"
        container, key, _ = self.stack[-1]
        if isinstance(container, list):
            container.append(value)
        elif isinstance(container, dict):
            container[key] = value
        return "next"

    def _value(self, match: re.Match[str], expect: str) -> str:
        token, kind = match.group(match.lastgroup or ""), match.lastgroup
        if kind != "p":
            return self.put(_scalar(match, self.notes))
        if token == "]" and expect == "value-or-close":
            return self._close("]")
        if token not in "[{":
            raise ValueError(token)
        depth = len(self.stack) + 1
        shell: list[Any] | dict[str, Any] | None
        shell = ([] if token == "[" else {}) if depth <= MAX_DEPTH else None
        if depth == MAX_DEPTH + 1:
            self.put(CUT)
        self.stack.append([shell, None, token])
        return "value-or-close" if token == "[" else "key-or-close"

    def _key(self, match: re.Match[str], expect: str) -> str:
        token, kind = match.group(match.lastgroup or ""), match.lastgroup
        if token == "}" and kind == "p" and expect == "key-or-close":
            return self._close("}")
        if kind != "str":
            raise ValueError(token)
        self.stack[-1][1] = json.loads(token)
        return "colon"

    def _colon(self, match: re.Match[str], expect: str) -> str:
        if match.lastgroup != "p" or match.group("p") != ":":
            raise ValueError(match.group(0))
        return "value"

    def _next(self, match: re.Match[str], expect: str) -> str:
        token = match.group("p") if match.lastgroup == "p" else None
        if token == ",":
            return "key" if self.stack[-1][2] == "{" else "value"
        if token not in ("]", "}"):
            raise ValueError(match.group(0))
        return self._close(token)

    def _close(self, token: str) -> str:
        shell, _, opener = self.stack.pop()
        if (opener, token) not in (("[", "]"), ("{", "}")):
            raise ValueError(token)
        if shell is not None:
            return self.put(shell)
        return "end" if not self.stack else "next"
