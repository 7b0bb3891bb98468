"""Injected faults (5xx, dropped connections, latency) never duplicate a role change or a message."""

from __future__ import annotations

from collections import Counter
from itertools import pairwise
from typing import Any

import pytest

from connectors.base import Role
from connectors.discord.sandbox import DiscordSandbox
from connectors.errors import ConnectorError
from connectors.http import RetryPolicy

FAST_RETRY = RetryPolicy(max_retries=6, base_delay=0.01, max_delay=0.05)


@pytest.mark.parametrize(
    "faults",
    [
        {"error_rate": 0.3, "error_status": 502, "seed": 11},
        {"drop_rate": 0.3, "drop_phase": "after", "seed": 12},
        {"drop_rate": 0.3, "drop_phase": "before", "seed": 13},
        {"latency": 0.02, "error_rate": 0.2, "seed": 14},
    ],
    ids=["5xx", "dropped-after", "dropped-before", "latency+5xx"],
)
def test_faults_never_duplicate_role_changes_or_messages(serve: Any, faults: dict[str, Any]) -> None:
    discord = serve(DiscordSandbox(time_scale=0.01))  # Discord-shaped limits, 100 times faster
    c = discord.connect(retry=FAST_RETRY)
    users = {name: c.find_user(name) for name in ("bram_tolliver", "esme_voss", "felix_oakes")}
    discord.faults(**faults)
    wg = Role.group("wg-member")
    outcomes: Counter[str] = Counter()
    for round_ in range(3):
        for user in users.values():
            for action in ("grant", "revoke"):
                try:
                    change = getattr(c, action)(user, wg, reason=f"fault test {round_}")
                    outcomes[change.status.value] += 1
                except ConnectorError as exc:  # a clear error after the bounded retries is allowed
                    outcomes["error"] += 1
                    assert "discord" in str(exc).lower()
        try:
            c.send_text(channel="wg-private", text=f"Round {round_} report.", key=f"round-{round_}")
        except ConnectorError:
            outcomes["error"] += 1
    discord.faults()
    state = discord.state()
    # Every applied change happened exactly once on the platform, in alternating order.
    per_user: dict[str, list[str]] = {}
    for change in state["role_changes"]:
        per_user.setdefault(change["username"], []).append(change["action"])
    for actions in per_user.values():
        assert all(a != b for a, b in pairwise(actions)), actions
    assert outcomes["applied"] == len(state["role_changes"])
    contents = Counter(m["content"] for m in state["messages"])
    assert all(n == 1 for n in contents.values()), contents
    assert outcomes["applied"] >= 6, outcomes
    stats = c.client.policy.stats
    assert stats["5xx"] + stats["transport_errors"] > 0, "the faults were not exercised"
