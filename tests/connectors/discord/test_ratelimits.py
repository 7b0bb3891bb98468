"""Discord rate limits against the sandbox's Discord-shaped limits, scaled in time.

The scale test lists 20,000 members and applies 500 role changes. Its limits are the sandbox's
defaults (members list 10 per 10 s, member roles 10 per 10 s, global 50 per s) multiplied by a
time factor, so the minimum the limits allow (about 500 s unscaled: 50 windows of the role bucket)
is about 8 seconds: large next to the per-request overhead, so the 1.15 ratio measures waiting, not
the machine. The changes are decided page by page while the list is still being read.
"""

from __future__ import annotations

import gc
import math
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from connectors.base import ChangeStatus, Role
from connectors.discord.connector import RoleRequest
from connectors.discord.sandbox import DEFAULT_BUCKETS, DiscordSandbox, default_seed

SCALE = 0.016  # 1 s of Discord time = 16 ms here: the minimum (about 8 s) dwarfs a noisy machine's per-window delay


def _phase_minimum(
    counts: Counter[str], buckets: dict[str, tuple[int, float]], *, global_limit: int, global_window: float
) -> float:
    """Least time ``counts`` requests per bucket can take: n requests at ``limit`` per ``window``
    need ceil(n / limit) windows, the first of which starts at once."""
    per_bucket = [(math.ceil(n / buckets[b][0]) - 1) * buckets[b][1] for b, n in counts.items() if n]
    total = sum(counts.values())
    per_bucket.append((math.ceil(total / global_limit) - 1) * global_window)
    return max(per_bucket) * SCALE


def test_20000_members_and_500_role_changes_within_the_limits(serve: Any, report: Any) -> None:
    seed = default_seed()
    seed["generated_members"] = 20_000
    seed["generated_member_roles"] = {"wg-member": 250}
    box = serve(DiscordSandbox(seed=seed, time_scale=SCALE))
    c = box.connect()
    wg = Role.group("wg-member")
    c.guild_roles()  # resolve role names before the clock starts (one request, not rate-bound)

    members: list[Any] = []
    observed: dict[str, frozenset[str]] = {}
    listed = [0.0]

    def plan() -> Any:
        """Read the member list and decide page by page (the changes start while pages load)."""
        generated = 0
        for member in c.iter_members():
            members.append(member)
            observed[member.user.id] = member.roles
            if member.user.username.startswith("member_"):
                if generated < 250:
                    yield RoleRequest(action="revoke", user=member.user, role=wg, reason="R-TERM-2 lapsed")
                elif generated < 500:
                    yield RoleRequest(action="grant", user=member.user, role=wg, reason="R-MEM-1 approved")
                generated += 1
        listed[0] = time.monotonic()

    # What earlier tests left on the heap (hypothesis keeps a lot) makes every garbage collection
    # during the 20,000-member parse slow; freeze it so the measurement is of this test alone.
    gc.collect()
    gc.freeze()
    try:
        started = time.monotonic()
        results = c.apply_role_changes(plan(), observed=observed, workers=8)
        finished = time.monotonic()
    finally:
        gc.unfreeze()

    assert len(members) == 20_007
    assert all(r.status is ChangeStatus.APPLIED for r in results) and len(results) == 500
    state = box.state()
    assert len(state["role_changes"]) == 500
    list_requests = state["requests"]["GET /guilds/{guild_id}/members"]
    role_requests = (
        state["requests"]["PUT /guilds/{guild_id}/members/{user_id}/roles/{role_id}"]
        + state["requests"]["DELETE /guilds/{guild_id}/members/{user_id}/roles/{role_id}"]
    )
    limited = state["rate_limited"]
    by_kind = Counter(e["kind"] for e in limited)
    assert by_kind["global"] == 0, limited
    # At most one 429 per bucket window (one is expected: the first PUT, before the client
    # learns that PUT and DELETE share the DELETE's bucket).
    windows = {"members.list": math.ceil(list_requests / 10), "member.roles": math.ceil(role_requests / 10)}
    per_bucket = Counter(e["bucket"] for e in limited)
    assert all(per_bucket[b] <= windows.get(b, 1) for b in per_bucket), per_bucket

    # Listing and applying overlap, so the least time is that of the busiest bucket (or the
    # global limit over all requests).
    minimum = _phase_minimum(
        Counter({"members.list": list_requests, "member.roles": role_requests}),
        DEFAULT_BUCKETS,
        global_limit=50,
        global_window=1.0,
    )
    elapsed = finished - started
    ratio = elapsed / minimum
    listed_at = listed[0] - started
    report(
        "discord_scale",
        (
            f"discord scale: {len(members)} members in {list_requests} pages (listed after {listed_at:.3f} s), "
            f"{role_requests} role-change requests; elapsed {elapsed:.3f} s, minimum the limits "
            f"allow {minimum:.3f} s, ratio {ratio:.3f}; 429s: {dict(by_kind) or 0}; time scale {SCALE}"
        ),
    )
    assert elapsed >= minimum * 0.98, "faster than the limits allow: the sandbox is not enforcing them"
    assert ratio <= 1.15


def test_the_global_limit_paces_requests_across_buckets(serve: Any, report: Any) -> None:
    scale = 0.1
    box = serve(DiscordSandbox(time_scale=scale, settings={"buckets": {"member.get": (10_000, 1.0)}}))
    c = box.connect()
    cleo = c.find_user("cleo_marsh")
    started = time.monotonic()

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda _: c.get_member(cleo.id), range(300)))
    elapsed = time.monotonic() - started
    limited = box.state()["rate_limited"]
    minimum = (math.ceil(301 / 50) - 1) * 1.0 * scale
    report(
        "discord_global",
        f"discord global limit: 300 reads in {elapsed:.3f} s (minimum {minimum:.3f} s), 429s: {len(limited)}",
    )
    assert limited == []
    assert elapsed >= minimum * 0.95


@pytest.mark.parametrize("scope", ["user", "shared", "global"])
def test_a_429_storm_is_waited_out_by_its_retry_after(discord: Any, scope: str) -> None:
    c = discord.connect()
    discord.faults(storm={"count": 2, "retry_after": 0.2, "scope": scope})
    started = time.monotonic()
    assert c.find_user("cleo_marsh").username == "cleo_marsh"
    elapsed = time.monotonic() - started
    limited = discord.state()["rate_limited"]
    assert [e["scope"] for e in limited] == [scope, scope]
    assert elapsed >= 0.4  # two waits of retry_after (a float), not Retry-After's whole second
    assert elapsed < 1.5
    stats = c.client.limits.snapshot()["stats"]
    assert stats[{"user": "429_bucket", "shared": "429_shared", "global": "429_global"}[scope]] == 2


def test_routes_sharing_a_bucket_are_learned_as_one(discord: Any) -> None:
    c = discord.connect()
    esme = c.find_user("esme_voss")
    c.grant(esme, Role.group("wg-member"), reason="test")
    c.revoke(esme, Role.group("wg-member"), reason="test")
    buckets = c.client.limits.snapshot()["buckets"]
    shared = [b for b in buckets.values() if len(b["routes"]) == 2]
    assert shared and {r.split()[0] for r in shared[0]["routes"]} == {"PUT", "DELETE"}
    assert shared[0]["limit"] == 10
