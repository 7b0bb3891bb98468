"""Rate-limit efficiency: a bulk role reconcile against sandboxes enforcing the platforms' limits.

    .venv/bin/python -m bench.ratelimit [--discord-changes 2000] [--discourse-changes 300]

Discord: a guild of generated members, half holding ``wg-member``; the reconcile reads the member
list and flips the role of every generated member (``DiscordConnector.apply_role_changes``, the
bulk RoleManager path: each change decided from the listed roles, 4 workers, paced by
``DiscordRateLimits``). The sandbox enforces Discord-shaped limits: per-route buckets (member
roles 10 per 10 s per guild, member list 10 per 10 s) and the global 50 per s, every window
multiplied by ``--discord-scale``.

Discourse: a group holding half of the generated users; the reconcile reads the group and moves
every user in or out through ``DiscourseConnector.grant``/``revoke`` (the RoleManager calls the
flows make: re-read the user, then write), paced by the client's ``RateLimiter``. The sandbox
enforces the admin API limit, 60 requests per 60 s shared by all keys (a sliding window), the
window multiplied by ``--discourse-scale``.

The baseline is the same job, same requests, same concurrency, sent by a naive client: plain
httpx, no limiter, on a 429 it sleeps the ``retry_after`` it was given and sends again.

Figures: efficiency = (least time the limits allow for the requests the job sent) / elapsed,
i.e. achieved rate / allowed rate; 429s received in total and at most in one window of the
bucket; changes not applied. Targets: efficiency >= 0.90, at most one 429 per bucket window,
zero failed changes. Results go to ``bench/results/ratelimit.json``.
"""

from __future__ import annotations

import argparse
import math
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from bench.common import Row, ServedSandbox, table, write_results
from connectors.base import ChangeStatus, Role, UserRef
from connectors.discord.connector import DiscordConnector, RoleRequest
from connectors.discord.sandbox import default_seed
from connectors.discord.settings import DiscordSettings
from connectors.discourse.connector import DiscourseConnector
from connectors.discourse.sandbox import SeedSettings
from connectors.discourse.sandbox import default_seed as discourse_default_seed
from connectors.discourse.settings import DiscourseSettings

ROLE_BUCKET = "member.roles"
LIST_BUCKET = "members.list"
ROLE_ROUTES = (
    "PUT /guilds/{guild_id}/members/{user_id}/roles/{role_id}",
    "DELETE /guilds/{guild_id}/members/{user_id}/roles/{role_id}",
)
LIST_ROUTE = "GET /guilds/{guild_id}/members"
GROUP = "bench-group"
WORKERS = 4
REASON = "R-TERM-2 bulk reconcile (benchmark)"


# ------------------------------------------------------------------------------------------------
# Measuring


def least_time(requests: int, limit: int, window: float) -> float:
    """Least seconds ``requests`` requests take at ``limit`` per ``window`` (fixed or sliding):
    ``ceil(n / limit)`` windows, the first of which starts at once."""
    return max(math.ceil(requests / limit) - 1, 0) * window if requests else 0.0


def max_in_window(times: Sequence[float], window: float) -> int:
    """The most events within any ``window`` seconds (a sliding window over sorted times)."""
    ordered = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(ordered):
        while t - ordered[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def per_fixed_window(events: Sequence[dict[str, Any]], window: float) -> int:
    """The most 429s in one window of a fixed-window bucket: a 429's window ends at
    ``at + retry_after``; 429s whose window ends agree within half a window share it."""
    ends = sorted(e["at"] + e["retry_after"] for e in events)
    best, count, current = 0, 0, None
    for end in ends:
        if current is None or end - current > window / 2:
            current, count = end, 0
        count += 1
        best = max(best, count)
    return best


def pace_figures(
    run: dict[str, Any], changes: int, done: Counter[Any], *, minimum: float, sent: int, limit: int, window: float
) -> dict[str, Any]:
    """The figures both platforms' runs open with: the changes made (once each?), the time taken
    against the least the limit allows, and the rate of ``sent`` requests against ``limit/window``."""
    elapsed = run["elapsed"]
    return {
        "changes_planned": changes,
        "changes_applied": len(done),
        "failed_changes": changes - len(done),
        "duplicate_changes": sum(n - 1 for n in done.values() if n > 1),
        "errors": run["errors"],
        "elapsed_s": round(elapsed, 3),
        "least_time_s": round(minimum, 3),
        "efficiency": round(minimum / elapsed, 4) if elapsed else None,
        "achieved_rate_per_s": round(sent / elapsed, 2) if elapsed else None,
        "allowed_rate_per_s": round(limit / window, 2),
    }


# ------------------------------------------------------------------------------------------------
# Discord


def discord_seed(changes: int) -> dict[str, Any]:
    seed = default_seed()
    seed["generated_members"] = changes
    seed["generated_member_roles"] = {"wg-member": changes // 2}
    return seed


def discord_ours(box: ServedSandbox) -> dict[str, Any]:
    """The reconcile through ``DiscordConnector`` (list members, decide per page, apply)."""
    values = {k.removeprefix("CHARTERFLOW_DISCORD_").lower(): v for k, v in box.info["env"].items()}
    settings = DiscordSettings(_env_file=None, timeout=30.0, **values)
    wg = Role.group("wg-member")
    failed: list[str] = []
    with DiscordConnector(settings=settings) as c:
        wg_id = c.role_id(wg)  # resolved before the clock starts (one request, not rate-bound)
        observed: dict[str, frozenset[str]] = {}

        def plan() -> Iterator[RoleRequest]:
            for member in c.iter_members():
                observed[member.user.id] = member.roles
                if member.user.username.startswith("member_"):
                    action = "revoke" if wg_id in member.roles else "grant"
                    yield RoleRequest(action=action, user=member.user, role=wg, reason=REASON)

        started = time.monotonic()
        try:
            results = c.apply_role_changes(plan(), observed=observed, workers=WORKERS)
        except Exception as exc:  # noqa: BLE001 - a failure is a figure here, counted below
            results = []
            failed.append(f"{type(exc).__name__}: {exc}")
        elapsed = time.monotonic() - started
        client_stats = {**c.client.policy.stats, **c.client.limits.snapshot()["stats"]}
    applied = sum(1 for r in results if r.status is ChangeStatus.APPLIED)
    return {"elapsed": elapsed, "applied": applied, "errors": failed, "client": client_stats}


def discord_naive(box: ServedSandbox) -> dict[str, Any]:
    """The same requests from plain httpx: no limiter; a 429 is slept off (its ``retry_after``)."""
    env = box.info["env"]
    guild = env["CHARTERFLOW_DISCORD_GUILD_ID"]
    wg_id = env["CHARTERFLOW_DISCORD_WG_MEMBER_ROLE_ID"]
    headers = {
        "Authorization": f"Bot {env['CHARTERFLOW_DISCORD_TOKEN']}",
        "User-Agent": "DiscordBot (https://example.org/naive, 0.1)",
        "X-Audit-Log-Reason": "naive",
    }
    errors: list[str] = []
    lock = threading.Lock()
    with httpx.Client(
        base_url=env["CHARTERFLOW_DISCORD_API_URL"],
        headers=headers,
        timeout=30,
        limits=httpx.Limits(max_connections=WORKERS + 2),
    ) as http:

        def send(method: str, path: str, **kw: Any) -> httpx.Response:
            while True:
                answer = http.request(method, path, **kw)
                if answer.status_code != 429:
                    return answer
                time.sleep(float(answer.json().get("retry_after", 1.0)))

        started = time.monotonic()
        members: list[dict[str, Any]] = []
        after = "0"
        while True:
            page = send("GET", f"/guilds/{guild}/members", params={"limit": 1000, "after": after}).json()
            members += page
            if len(page) < 1000:
                break
            after = str(max(int(m["user"]["id"]) for m in page))

        def change(member: dict[str, Any]) -> bool:
            method = "DELETE" if wg_id in member["roles"] else "PUT"
            answer = send(method, f"/guilds/{guild}/members/{member['user']['id']}/roles/{wg_id}")
            if answer.status_code != 204:
                with lock:
                    errors.append(f"{method} {member['user']['username']}: HTTP {answer.status_code}")
            return answer.status_code == 204

        todo = [m for m in members if m["user"]["username"].startswith("member_")]
        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            applied = sum(pool.map(change, todo))
        elapsed = time.monotonic() - started
    return {"elapsed": elapsed, "applied": applied, "errors": errors[:5]}


def discord_figures(box: ServedSandbox, run: dict[str, Any], changes: int) -> dict[str, Any]:
    state = box.state()
    limits = state["limits"]
    role_limit, role_window = limits["buckets"][ROLE_BUCKET]
    list_limit, list_window = limits["buckets"][LIST_BUCKET]
    global_limit, global_window = limits["global"]
    ok = lambda route: sum(n for s, n in state["responses"].get(route, {}).items() if s != "429")  # noqa: E731 - a one-line helper
    role_requests = sum(ok(r) for r in ROLE_ROUTES)
    list_requests = ok(LIST_ROUTE)
    total = sum(sum(n for s, n in by.items() if s != "429") for by in state["responses"].values())
    minimum = max(
        least_time(role_requests, role_limit, role_window),
        least_time(list_requests, list_limit, list_window),
        least_time(total, global_limit, global_window),
    )
    limited = state["rate_limited"]
    by_bucket: dict[str, list[dict[str, Any]]] = {}
    for e in limited:
        by_bucket.setdefault("global" if e["scope"] == "global" else e["bucket"], []).append(e)
    worst = {
        b: (
            max_in_window([e["at"] for e in es], global_window)
            if b == "global"
            else per_fixed_window(es, limits["buckets"][b][1])
        )
        for b, es in by_bucket.items()
    }
    done = Counter((c["action"], c["username"]) for c in state["role_changes"] if c["username"].startswith("member_"))
    return {
        **pace_figures(run, changes, done, minimum=minimum, sent=role_requests, limit=role_limit, window=role_window),
        "requests": {"role_changes": role_requests, "member_list": list_requests, "total": total},
        "bucket": {
            ROLE_BUCKET: [role_limit, role_window],
            LIST_BUCKET: [list_limit, list_window],
            "global": [global_limit, global_window],
        },
        "windows_used": math.ceil(role_requests / role_limit),
        "429_total": len(limited),
        "429_by_bucket": {b: len(es) for b, es in by_bucket.items()},
        "429_max_per_window": max(worst.values(), default=0),
        "429_max_per_window_by_bucket": worst,
        **({"client": run["client"]} if "client" in run else {}),
    }


# ------------------------------------------------------------------------------------------------
# Discourse


def discourse_seed(changes: int) -> dict[str, Any]:
    seed = discourse_default_seed()
    names = [f"bench_user_{n:04d}" for n in range(changes)]
    seed["users"] += [{"id": 10_000 + n, "username": name, "trust_level": 1} for n, name in enumerate(names)]
    seed["groups"].append({"name": GROUP, "full_name": "Benchmark group", "members": names[: changes // 2]})
    seed["api_keys"] = [{"key": secrets.token_hex(32), "description": "benchmark"}]  # kept across resets
    return seed


def _discourse_users(changes: int) -> list[tuple[int, str]]:
    return [(10_000 + n, f"bench_user_{n:04d}") for n in range(changes)]


def discourse_ours(box: ServedSandbox, changes: int) -> dict[str, Any]:
    """The reconcile through ``DiscourseConnector``: read the group, then grant/revoke each user."""
    values = {k.removeprefix("CHARTERFLOW_DISCOURSE_").lower(): v for k, v in box.info["env"].items()}
    settings = DiscourseSettings(_env_file=None, timeout=30.0, **values)
    role = Role.group(GROUP)
    errors: list[str] = []
    applied = 0
    with DiscourseConnector(settings=settings) as c:
        started = time.monotonic()
        holders = {u.id for u in c.list_holders(role)}
        for uid, name in _discourse_users(changes):
            user = UserRef(platform="discourse", id=str(uid), username=name)
            try:
                change = (
                    c.revoke(user, role, reason=REASON) if str(uid) in holders else c.grant(user, role, reason=REASON)
                )
                applied += change.status is ChangeStatus.APPLIED
            except Exception as exc:  # noqa: BLE001 - a failure is a figure here
                errors.append(f"{name}: {type(exc).__name__}: {exc}")
        elapsed = time.monotonic() - started
        stats = dict(c.client.policy.stats)
    return {"elapsed": elapsed, "applied": applied, "errors": errors[:5], "client": stats}


def discourse_naive(box: ServedSandbox, changes: int) -> dict[str, Any]:
    """The same requests from plain httpx; a 429 is slept off (``Retry-After``)."""
    env = box.info["env"]
    headers = {
        "Api-Key": env["CHARTERFLOW_DISCOURSE_API_KEY"],
        "Api-Username": env["CHARTERFLOW_DISCOURSE_API_USERNAME"],
        "Accept": "application/json",
    }
    errors: list[str] = []
    applied = 0
    with httpx.Client(base_url=env["CHARTERFLOW_DISCOURSE_URL"], headers=headers, timeout=30) as http:

        def send(method: str, path: str, **kw: Any) -> httpx.Response:
            while True:
                answer = http.request(method, path, **kw)
                if answer.status_code != 429:
                    return answer
                time.sleep(float(answer.headers.get("Retry-After", "10")))

        started = time.monotonic()
        group_id = send("GET", f"/groups/{GROUP}.json").json()["group"]["id"]
        holders: set[int] = set()
        offset = 0
        while True:
            data = send("GET", f"/groups/{GROUP}/members.json", params={"limit": 1000, "offset": offset}).json()
            holders |= {m["id"] for m in data["members"]}
            offset += len(data["members"])
            if not data["members"] or offset >= data["meta"]["total"]:
                break
        for uid, name in _discourse_users(changes):
            send("GET", f"/admin/users/{uid}.json")
            method = "DELETE" if uid in holders else "PUT"
            answer = send(method, f"/groups/{group_id}/members.json", json={"usernames": name})
            if answer.status_code == 200:
                applied += 1
            else:
                errors.append(f"{method} {name}: HTTP {answer.status_code}")
        elapsed = time.monotonic() - started
    return {"elapsed": elapsed, "applied": applied, "errors": errors[:5]}


def discourse_figures(box: ServedSandbox, run: dict[str, Any], changes: int) -> dict[str, Any]:
    state = box.state()
    limit, window = state["settings"]["admin_api_limit"], state["settings"]["admin_api_window"]
    total = sum(sum(n for s, n in by.items() if s != "429") for by in state["responses"].values())
    writes = sum(
        n
        for route, by in state["responses"].items()
        if route.endswith(" /groups/{id}/members.json")
        for s, n in by.items()
        if s != "429"
    )
    minimum = least_time(total, limit, window)
    limited = [e for e in state["rate_limited"] if e["kind"] == "admin_api"]
    done = Counter(
        (c.get("action"), c.get("username"))
        for c in state["role_changes"]
        if str(c.get("username", "")).startswith("bench_user_")
    )
    return {
        **pace_figures(run, changes, done, minimum=minimum, sent=total, limit=limit, window=window),
        "requests": {"group_changes": writes, "total": total},
        "bucket": {"admin_api": [limit, window]},
        "windows_used": math.ceil(total / limit),
        "429_total": len(limited),
        "429_by_bucket": {"admin_api": len(limited)} if limited else {},
        "429_max_per_window": max_in_window([e["at"] for e in limited], window),
        **({"client": run["client"]} if "client" in run else {}),
    }


# ------------------------------------------------------------------------------------------------
# The run


def _both(jobs: dict[str, Callable[[], dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Run the Discord and Discourse jobs at the same time (they share no limit)."""
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        futures = {name: pool.submit(job) for name, job in jobs.items()}
        return {name: f.result() for name, f in futures.items()}


def run(
    *, discord_changes: int, discourse_changes: int, discord_scale: float, discourse_scale: float
) -> dict[str, Any]:
    discourse_window = SeedSettings().admin_api_window * discourse_scale
    results: dict[str, Any] = {
        "config": {
            "discord_changes": discord_changes,
            "discourse_changes": discourse_changes,
            "discord_time_scale": discord_scale,
            "discourse_time_scale": discourse_scale,
            "workers": WORKERS,
        }
    }
    with (
        ServedSandbox("discord", seed=discord_seed(discord_changes), time_scale=discord_scale) as discord,
        ServedSandbox(
            "discourse", seed=discourse_seed(discourse_changes), settings={"admin_api_window": discourse_window}
        ) as discourse,
    ):
        for client, jobs in (
            (
                "ours",
                {
                    "discord": lambda: discord_ours(discord),
                    "discourse": lambda: discourse_ours(discourse, discourse_changes),
                },
            ),
            (
                "naive",
                {
                    "discord": lambda: discord_naive(discord),
                    "discourse": lambda: discourse_naive(discourse, discourse_changes),
                },
            ),
        ):
            discord.http.post("/_sandbox/reset").raise_for_status()
            discourse.http.post("/_sandbox/reset").raise_for_status()
            runs = _both(jobs)
            results[client] = {
                "discord": discord_figures(discord, runs["discord"], discord_changes),
                "discourse": discourse_figures(discourse, runs["discourse"], discourse_changes),
            }
    return results


def rows(results: dict[str, Any]) -> list[Row]:
    out: list[Row] = []
    for platform in ("discord", "discourse"):
        ours, naive = results["ours"][platform], results["naive"][platform]
        n = ours["changes_planned"]
        out += [
            Row(
                f"{platform}: {n} changes, elapsed",
                f"{ours['elapsed_s']:.2f} s",
                f"least the limits allow {ours['least_time_s']:.2f} s",
                None,
                f"{naive['elapsed_s']:.2f} s",
            ),
            Row(
                f"{platform}: efficiency (achieved/allowed)",
                f"{ours['efficiency']:.3f}",
                ">= 0.90",
                ours["efficiency"] >= 0.90,
                f"{naive['efficiency']:.3f}",
            ),
            Row(
                f"{platform}: achieved / allowed rate",
                f"{ours['achieved_rate_per_s']:.1f} / {ours['allowed_rate_per_s']:.1f} per s",
                "",
                None,
                f"{naive['achieved_rate_per_s']:.1f} per s",
            ),
            Row(f"{platform}: 429s (total)", str(ours["429_total"]), "", None, str(naive["429_total"])),
            Row(
                f"{platform}: 429s at most in one bucket window",
                str(ours["429_max_per_window"]),
                "<= 1",
                ours["429_max_per_window"] <= 1,
                str(naive["429_max_per_window"]),
            ),
            Row(
                f"{platform}: failed changes",
                str(ours["failed_changes"]),
                "0",
                ours["failed_changes"] == 0 and ours["duplicate_changes"] == 0,
                str(naive["failed_changes"]),
            ),
        ]
    return out


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--discord-changes", type=int, default=2000)
    parser.add_argument("--discourse-changes", type=int, default=300)
    parser.add_argument(
        "--discord-scale",
        type=float,
        default=0.015,
        help="multiplies every Discord window (0.015: member roles 10 per 0.15 s)",
    )
    parser.add_argument(
        "--discourse-scale", type=float, default=0.05, help="multiplies the Discourse admin window (0.05: 60 per 3 s)"
    )
    parser.add_argument("--out", type=Path, default=None, help="the JSON file (default bench/results/ratelimit.json)")
    args = parser.parse_args(argv)
    results = run(
        discord_changes=args.discord_changes,
        discourse_changes=args.discourse_changes,
        discord_scale=args.discord_scale,
        discourse_scale=args.discourse_scale,
    )
    results["table"] = [r.as_dict() for r in rows(results)]
    path = write_results("ratelimit", results, out=args.out)
    print(
        table(
            f"rate-limit efficiency (Discord windows x{args.discord_scale:g}, Discourse x{args.discourse_scale:g};"
            f" baseline: naive httpx client)",
            rows(results),
        )
    )
    print(f"results: {path}")
    return results


if __name__ == "__main__":
    main()
