"""Functions run in child processes by the concurrency tests (spawned: importable by name)."""

from __future__ import annotations

from typing import Any

from ledger import Ledger, audit
from ledger.repo import inbox_put


def append_entries(url: str, tag: str, count: int, barrier: Any, results: Any) -> None:
    """Append ``count`` audit entries, each in its own transaction, after all workers start."""
    try:
        lg = Ledger(url, lock_timeout=60)
        barrier.wait(timeout=60)
        for i in range(count):
            lg.run(
                lambda s, i=i: audit.append(
                    s, actor="operator", action="test.concurrent", subject=f"test:{tag}-{i}", payload={"i": i}
                )
            )
        lg.dispose()
        results.put("ok")
    except BaseException as exc:  # noqa: BLE001 - reported to the parent instead of dying silently
        results.put(f"{type(exc).__name__}: {exc}")


def put_inbox(url: str, key: str, barrier: Any, results: Any) -> None:
    """Insert the same inbox key as the other workers, at the same moment."""
    try:
        lg = Ledger(url, lock_timeout=60)
        barrier.wait(timeout=60)
        event, created = lg.run(
            lambda s: inbox_put(s, dedupe_key=key, source="discord", kind="interaction", payload={"n": 1})
        )
        lg.dispose()
        results.put((event.id, created))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent instead of dying silently
        results.put(f"{type(exc).__name__}: {exc}")
