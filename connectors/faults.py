"""The fault settings every sandbox accepts at ``POST /_sandbox/faults`` (DESIGN convention 7).

``error_rate`` / ``error_status``: answer that share of requests with a 5xx; ``drop_rate`` /
``drop_phase``: close that share of connections before or after the request was applied;
``latency``: seconds added to each answer; ``seed``: makes the random draws repeatable;
``storm``: a 429 storm, whose shape each sandbox parses itself (its platform's rate-limit scopes).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

COMMON = frozenset({"error_rate", "error_status", "latency", "drop_rate", "drop_phase", "storm",
                    "seed"})


def check_faults(data: Mapping[str, Any], *, extra: Iterable[str] = ()) -> dict[str, Any]:
    """Validate the common fault settings; ``ValueError`` names the bad one. ``storm`` and the
    ``extra`` keys are left for the sandbox to parse; any other key is refused."""
    unknown = set(data) - COMMON - set(extra)
    if unknown:
        raise ValueError(f"unknown fault settings: {', '.join(sorted(unknown))}")
    out: dict[str, Any] = {}
    for name in ("error_rate", "drop_rate"):
        if name in data:
            value = float(data[name])
            if not 0 <= value <= 1:
                raise ValueError(f"{name} must be between 0 and 1")
            out[name] = value
    if "error_status" in data:
        status = int(data["error_status"])
        if not 500 <= status <= 599:
            raise ValueError("error_status must be a 5xx status")
        out["error_status"] = status
    if "latency" in data:
        latency = float(data["latency"])
        if not 0 <= latency <= 30:
            raise ValueError("latency must be between 0 and 30 seconds")
        out["latency"] = latency
    if "drop_phase" in data:
        if data["drop_phase"] not in ("before", "after"):
            raise ValueError("drop_phase must be 'before' or 'after'")
        out["drop_phase"] = data["drop_phase"]
    if "seed" in data:
        out["seed"] = int(data["seed"])
    return out


def storm_settings(data: Mapping[str, Any], *, shape: str) -> Mapping[str, Any] | None:
    """The ``storm`` object if given (``shape`` describes it for the error message)."""
    if "storm" not in data:
        return None
    storm = data["storm"]
    if not isinstance(storm, Mapping):
        raise ValueError(f"storm must be an object {shape}")
    return storm
