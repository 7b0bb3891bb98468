"""``forked``: run a function in a short-lived forked child and get its result, so what the
function imports never stays in a long-lived process (`up`, the gateway)."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any


def forked(fn: Callable[..., Any], *args: Any) -> Future:
    """``fn(*args)`` run in a forked child; its result (pickled) as a future. Fork only from a
    process with no other threads yet, or whose threads hold no lock the child needs."""
    executor = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("fork"))
    future = executor.submit(fn, *args)
    executor.shutdown(wait=False)
    return future
