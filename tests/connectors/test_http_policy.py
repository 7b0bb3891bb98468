"""The shared HTTP policy, with an injected clock (unit level; the Discourse tests use real HTTP)."""

from __future__ import annotations

import random

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.errors import RetriableError
from connectors.http import HttpPolicy, RateLimiter, Redactor, RetryPolicy, WriteOutcome


class FakeClock:
    """Time that only moves when someone sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(seconds, 0)


def policy_with(handler, *, clock: FakeClock, limit: int | None = None, window: float = 60.0, **kw):
    policy = HttpPolicy(
        platform="test",
        clock=clock,
        rng=random.Random(7),
        limiter=RateLimiter(limit=limit, window=window, clock=clock),
        retry=RetryPolicy(max_retries=3, max_rate_limit_retries=3, base_delay=0.5, max_delay=4.0),
        **kw,
    )
    client = httpx.Client(base_url="http://svc.invalid", transport=httpx.MockTransport(handler))
    return policy, client


def scripted(*responses):
    calls: list[httpx.Request] = []
    queue = list(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        item = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(item, Exception):
            raise item
        return item

    return handler, calls


def test_limiter_paces_a_burst_to_exactly_the_window():
    clock = FakeClock()
    limiter = RateLimiter(limit=3, window=10.0, clock=clock)
    start = clock.now
    stamps = []
    for _ in range(7):
        slot = limiter.acquire()
        stamps.append(clock.now - start)
        limiter.release(slot)
    assert stamps == [0, 0, 0, 10, 10, 10, 20]


def test_limiter_pause_holds_everyone():
    clock = FakeClock()
    limiter = RateLimiter(limit=None, window=1.0, clock=clock)
    limiter.pause(2.5)
    limiter.release(limiter.acquire())
    assert clock.sleeps == [2.5]


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
def test_client_errors_are_never_retried(status):
    clock = FakeClock()
    handler, calls = scripted(httpx.Response(status, json={"errors": ["no"]}))
    policy, client = policy_with(handler, clock=clock)
    response = policy.send(client, client.build_request("GET", "/x"), idempotent=True)
    assert response.status_code == status and len(calls) == 1 and clock.sleeps == []


def test_reads_retry_5xx_with_bounded_jittered_backoff():
    clock = FakeClock()
    handler, calls = scripted(httpx.Response(503), httpx.Response(502), httpx.Response(200, json={}))
    policy, client = policy_with(handler, clock=clock)
    assert policy.send(client, client.build_request("GET", "/x"), idempotent=True).status_code == 200
    assert len(calls) == 3
    assert 0.25 <= clock.sleeps[0] <= 0.5 and 0.5 <= clock.sleeps[1] <= 1.0


def test_reads_give_up_after_max_retries_with_a_clear_error():
    clock = FakeClock()
    handler, calls = scripted(httpx.Response(500))
    policy, client = policy_with(handler, clock=clock)
    with pytest.raises(RetriableError) as err:
        policy.send(client, client.build_request("GET", "/x"), idempotent=True)
    assert len(calls) == 4 and "gave up after 4 attempts" in str(err.value) and err.value.status == 500


def test_timeouts_and_dropped_connections_are_retried_for_reads():
    clock = FakeClock()
    handler, calls = scripted(httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("dropped"), httpx.Response(200))
    policy, client = policy_with(handler, clock=clock)
    assert policy.send(client, client.build_request("GET", "/x"), idempotent=True).status_code == 200
    assert len(calls) == 3


def test_writes_are_not_retried_blindly_when_the_outcome_is_unknown():
    clock = FakeClock()
    handler, calls = scripted(httpx.RemoteProtocolError("dropped"))
    policy, client = policy_with(handler, clock=clock)
    with pytest.raises(RetriableError) as err:
        policy.send(client, client.build_request("PUT", "/x"), idempotent=False)
    assert err.value.ambiguous and len(calls) == 1


def test_a_write_that_never_connected_is_retried():
    clock = FakeClock()
    handler, calls = scripted(httpx.ConnectError("refused"), httpx.Response(200))
    policy, client = policy_with(handler, clock=clock)
    assert policy.send(client, client.build_request("PUT", "/x"), idempotent=False).status_code == 200
    assert len(calls) == 2


def test_429_honours_retry_after_for_reads_and_writes():
    clock = FakeClock()
    handler, calls = scripted(httpx.Response(429, headers={"Retry-After": "7"}), httpx.Response(200))
    policy, client = policy_with(handler, clock=clock)
    assert policy.send(client, client.build_request("POST", "/x"), idempotent=False).status_code == 200
    assert clock.sleeps == [7.0] and len(calls) == 2


def test_429_without_a_hint_waits_the_default_and_gives_up_when_asked_too_long():
    clock = FakeClock()
    handler, _ = scripted(httpx.Response(429), httpx.Response(200))
    policy, client = policy_with(handler, clock=clock, default_retry_after=10.0)
    policy.send(client, client.build_request("GET", "/x"), idempotent=True)
    assert clock.sleeps == [10.0]
    handler, _ = scripted(httpx.Response(429, headers={"Retry-After": "3600"}))
    policy, client = policy_with(handler, clock=FakeClock())
    with pytest.raises(RetriableError) as err:
        policy.send(client, client.build_request("GET", "/x"), idempotent=True)
    assert err.value.retry_after == 3600 and err.value.status == 429


def test_ensure_never_repeats_an_applied_write():
    clock = FakeClock()
    policy, _ = policy_with(lambda r: httpx.Response(200), clock=clock)
    state = {"done": False, "writes": 0}

    def write():
        state["writes"] += 1
        state["done"] = True  # applied ...
        raise RetriableError("dropped", platform="test", ambiguous=True)  # ... but the answer was lost

    outcome, _ = policy.ensure(is_done=lambda: state["done"], write=write, what="grant")
    assert outcome is WriteOutcome.APPLIED and state["writes"] == 1
    outcome, _ = policy.ensure(is_done=lambda: state["done"], write=write, what="grant")
    assert outcome is WriteOutcome.UNCHANGED and state["writes"] == 1


def test_ensure_is_bounded():
    clock = FakeClock()
    policy, _ = policy_with(lambda r: httpx.Response(200), clock=clock)
    writes = []

    def write():
        writes.append(1)
        raise RetriableError("503", platform="test", status=503, ambiguous=True)

    with pytest.raises(RetriableError):
        policy.ensure(is_done=lambda: False, write=write, what="grant")
    assert len(writes) == 4


def test_redactor_masks_every_secret():
    redact = Redactor(secrets=["s3cr3t-key", None, "ab"])
    assert redact("key=s3cr3t-key; again s3cr3t-key") == "key=***; again ***"
    assert redact("ab stays") == "ab stays"
    assert "s3cr3t" not in repr(redact)


def test_redactor_masks_a_token_known_only_by_where_it_is():
    redact = Redactor(patterns=[r"(/webhooks/\d+/)[^/?\s]+"])
    assert (
        redact("PATCH /api/v10/webhooks/42/itok_Ab-9/messages/@original answered HTTP 503")
        == "PATCH /api/v10/webhooks/42/***/messages/@original answered HTTP 503"
    )


@settings(max_examples=200, deadline=None)
@given(n=st.integers(min_value=0, max_value=20), seed=st.integers(min_value=0, max_value=2**32))
def test_backoff_is_bounded_and_jittered(n, seed):
    policy = RetryPolicy(base_delay=0.25, max_delay=8.0)
    delay = policy.backoff(n, random.Random(seed))
    ceiling = min(8.0, 0.25 * 2**n)
    assert ceiling / 2 <= delay <= ceiling
