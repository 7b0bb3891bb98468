"""What the tests of third-party clients share (tests/connectors/test_third_party_*.py)."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, TypeVar

import httpx

E = TypeVar("E", bound=BaseException)


async def raised(call: Awaitable[Any], kind: type[E]) -> E:
    """The ``kind`` error ``call`` raised; a call that succeeds fails the test."""
    try:
        await call
    except kind as exc:
        return exc
    raise AssertionError("the call succeeded")


def grant_the_bot(box: Any, bits: int) -> None:
    """Give the Discord sandbox's bot role ``bits`` more, as a server admin would (its control
    route): a judge's bot that uploads files needs Attach Files, as on Discord."""
    role = next(r for r in box.sandbox.roles.values() if r.get("bot_role"))
    permissions = int(role["permissions"]) | bits
    httpx.post(
        f"{box.url}/_sandbox/roles", json={"role": role["id"], "permissions": permissions}, timeout=10
    ).raise_for_status()
