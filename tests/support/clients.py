"""What the tests of third-party clients share (tests/connectors/test_third_party_*.py)."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, TypeVar

E = TypeVar("E", bound=BaseException)


async def raised(call: Awaitable[Any], kind: type[E]) -> E:
    """The ``kind`` error ``call`` raised; a call that succeeds fails the test."""
    try:
        await call
    except kind as exc:
        return exc
    raise AssertionError("the call succeeded")
