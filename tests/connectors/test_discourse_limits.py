"""Rate limits and injected faults, against the Discourse sandbox over real HTTP."""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise

import httpx
import pytest

from connectors.base import ChangeStatus, Role
from connectors.discourse.client import discourse_retry_after
from connectors.discourse.sandbox import DiscourseSandbox
from connectors.errors import RetriableError
from connectors.http import RetryPolicy

FAST = RetryPolicy(max_retries=4, base_delay=0.02, max_delay=0.2)
LIMIT, WINDOW = 60, 1.0  # Discourse's 60 per minute, scaled so the test runs in seconds


def assert_at_most_one_429_per_window(events, window):
    times = sorted(e["at"] for e in events)
    gaps = [b - a for a, b in pairwise(times)]
    assert all(g >= window * 0.95 for g in gaps), f"two 429s within one window: {times}"


def test_burst_of_200_calls_waits_only_as_long_as_the_admin_limit_requires(serve, report):
    box = serve(DiscourseSandbox(settings={"admin_api_limit": LIMIT, "admin_api_window": WINDOW}))
    connector = box.connect()
    calls, threads = 200, 4
    names = ["cleo_marsh", "dario_fenwick", "esme_voss", "felix_oakes"]
    failures: list[BaseException] = []

    def call(i: int) -> None:
        try:
            connector.find_user(names[i % len(names)])
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            failures.append(exc)

    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(call, range(calls)))
    elapsed = time.monotonic() - start
    minimum = ((calls - 1) // LIMIT) * WINDOW  # the last request cannot start earlier than this
    state = box.state()
    limited = state["rate_limited"]
    report(
        "rate_limit_burst",
        f"discourse admin limit {LIMIT}/{WINDOW:g}s: {calls} calls on {threads} threads in {elapsed:.3f}s; "
        f"minimum the limit allows {minimum:.3f}s; ratio {elapsed / minimum:.3f} (bound 1.15); "
        f"429s received {len(limited)}; requests served {state['requests']['GET /u/{username}.json']}",
    )
    assert failures == []
    assert state["requests"]["GET /u/{username}.json"] == calls + len(limited)
    assert_at_most_one_429_per_window(limited, WINDOW)
    assert elapsed <= 1.15 * minimum


def test_a_client_unaware_of_the_limit_gets_one_429_per_window_and_honours_it(serve, report):
    box = serve(DiscourseSandbox(settings={"admin_api_limit": LIMIT, "admin_api_window": WINDOW}))
    connector = box.connect(admin_rate_limit=1_000_000)  # the client does not know the real limit
    start = time.monotonic()
    for _ in range(130):
        connector.find_user("cleo_marsh")
    elapsed = time.monotonic() - start
    limited = box.state()["rate_limited"]
    report("rate_limit_unaware", f"130 calls, client limiter off: {len(limited)} 429s, {elapsed:.3f}s")
    assert 1 <= len(limited) <= 2
    assert_at_most_one_429_per_window(limited, WINDOW)
    assert all(e["kind"] == "admin_api" for e in limited)


def test_429_storm_on_a_write_is_waited_out_and_the_write_lands_once(serve):
    box = serve(DiscourseSandbox())
    c = box.connect()
    cleo = c.find_user("cleo_marsh")
    box.faults(storm={"count": 1, "retry_after": 1})
    start = time.monotonic()
    assert c.grant(cleo, Role.group("board"), reason="storm").status is ChangeStatus.APPLIED
    assert time.monotonic() - start >= 1.0
    assert [r["action"] for r in box.state()["role_changes"]] == ["group_add:board"]


def test_plain_text_per_ip_429_is_honoured_through_retry_after(serve):
    box = serve(DiscourseSandbox(settings={"ip_limit": 5, "ip_window": 1.0}))
    c = box.connect()
    for _ in range(8):
        c.find_user("cleo_marsh")
    limited = box.state()["rate_limited"]
    assert [e["kind"] for e in limited] == ["ip"]
    raw = httpx.Response(429, text="Slow down ... Error code: ip_10_secs_limit.", headers={"Retry-After": "4"})
    assert discourse_retry_after(raw) == 4.0
    body = httpx.Response(429, json={"errors": ["x"], "error_type": "rate_limit", "extras": {"wait_seconds": 9}})
    assert discourse_retry_after(body) == 9.0
    assert discourse_retry_after(httpx.Response(429, text="nothing useful")) is None


def test_5xx_at_20_percent_and_dropped_connections_never_apply_a_write_twice(serve, report):
    box = serve(DiscourseSandbox(settings={"admin_api_limit": 100_000}))
    c = box.connect(retry=FAST)
    users = [c.find_user(n) for n in ("cleo_marsh", "dario_fenwick", "esme_voss", "felix_oakes")]
    box.faults(error_rate=0.2, error_status=503, drop_rate=0.15, drop_phase="after", seed=20261124)
    outcomes: Counter[str] = Counter()
    refs = []
    for round_ in range(3):
        for user in users:
            for role in (Role.moderator(), Role.group("board")):
                try:
                    c.grant(user, role, reason=f"fault round {round_}")
                    c.revoke(user, role, reason=f"fault round {round_}")
                    outcomes["ok"] += 1
                except RetriableError as exc:
                    assert "gave up" in str(exc) or "may or may not" in str(exc)
                    outcomes["gave_up"] += 1
        try:
            refs.append(
                c.post(
                    channel="Working Group",
                    title=f"Fault round {round_} agenda",
                    text=f"Agenda items for fault round {round_}.",
                    key=f"round-{round_}",
                )
            )
            refs.append(c.reply(thread_id=refs[-1].thread_id, text=f"Reply for fault round {round_}."))
        except RetriableError:
            outcomes["gave_up"] += 1
    box.faults()
    state = box.state()
    assert state["responses"]  # the sandbox really injected faults:
    injected = sum(int(v.get("503", 0)) for v in state["responses"].values())
    assert injected > 0
    report(
        "faults",
        f"5xx 20% + drops 15%: {dict(outcomes)}; injected 503s {injected}; "
        f"role changes applied {len(state['role_changes'])}; posts {len(refs)}",
    )
    assert outcomes["ok"] >= 20
    # No write applied twice: role changes alternate grant/revoke per user and role.
    last: dict[tuple[str, str], str] = {}
    for change in state["role_changes"]:
        kind = (
            change["action"]
            .replace("grant_", "")
            .replace("revoke_", "")
            .replace("group_add:", "group:")
            .replace("group_remove:", "group:")
        )
        verb = "grant" if change["action"].startswith(("grant", "group_add")) else "revoke"
        key = (change["username"], kind)
        assert last.get(key) != verb, f"{verb} {kind} applied twice for {change['username']}"
        last[key] = verb
    topics = [t for t in state["topics"] if t["title"].startswith("Fault round")]
    assert len({t["external_id"] for t in topics}) == len(topics)
    assert all(len(t["post_ids"]) <= 2 for t in topics)
    assert {r.id for r in refs} <= {str(p["id"]) for p in state["posts"]}


def test_drops_before_the_write_are_retried_until_it_lands(serve):
    box = serve(DiscourseSandbox(settings={"admin_api_limit": 100_000}))
    c = box.connect(retry=FAST)
    cleo = c.find_user("cleo_marsh")
    box.faults(drop_rate=0.5, drop_phase="before", seed=3)
    assert c.grant(cleo, Role.moderator(), reason="drops").done
    box.faults()
    assert [r["action"] for r in box.state()["role_changes"]] == ["grant_moderation"]


def test_a_permanent_outage_fails_after_the_bounded_retries_with_a_clear_error(serve):
    box = serve(DiscourseSandbox())
    c = box.connect(max_retries=2)
    box.faults(error_rate=1.0, error_status=502)
    with pytest.raises(RetriableError) as err:
        c.find_user("cleo_marsh")
    assert "HTTP 502" in str(err.value) and "gave up after 3 attempts" in str(err.value)
    total = sum(sum(v.values()) for v in box.state()["responses"].values())
    assert total == 3


def test_latency_beyond_the_timeout_is_a_retriable_timeout(serve):
    box = serve(DiscourseSandbox())
    c = box.connect(timeout=0.2, max_retries=1)
    box.faults(latency=0.5)
    started = time.monotonic()
    with pytest.raises(RetriableError, match="timed out"):
        c.find_user("cleo_marsh")
    assert time.monotonic() - started < 3
    box.faults()


def test_concurrent_grants_from_two_threads_apply_once(serve):
    box = serve(DiscourseSandbox(settings={"admin_api_limit": 100_000}))
    c = box.connect()
    dario = c.find_user("dario_fenwick")
    barrier = threading.Barrier(2)
    results = []

    def run():
        barrier.wait()
        try:
            results.append(c.grant(dario, Role.group("board"), reason="race").status)
        except Exception as exc:  # noqa: BLE001 - the outcome is the result
            results.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    adds = [r for r in box.state()["role_changes"] if r["action"] == "group_add:board"]
    assert len(adds) == 1
    assert sorted(r.value for r in results) == ["applied", "unchanged"]
