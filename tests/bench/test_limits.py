"""Library changes the benchmarks led to: interaction follow-ups are rate limited per
interaction (sandbox and client), idle Discord buckets are forgotten, and the audit verify's
fast path hashes exactly what ``entry_hash`` hashes."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

import httpx

from connectors.discord.ratelimit import DiscordRateLimits
from connectors.discord.sandbox import DiscordSandbox
from ledger import audit
from tests.support.net import LoopbackServer

TRICKY = ["plain", 'quote " and backslash \\', "naïve — ünïcode ✓", "tab\tnewline\n", "\u2028 \x00 \x1f"]


def test_the_fast_path_hashes_exactly_what_entry_hash_hashes() -> None:
    for i, text in enumerate(TRICKY):
        payload = {"note": text, "n": i, "nested": {"z": [1, None, True], "a": text}}
        at = audit.format_time(datetime(2026, 1, 2, 3, 4, 5, 600000 + i, tzinfo=UTC))
        fields: dict[str, Any] = {
            "prev_hash": audit.GENESIS,
            "seq": i + 1,
            "at": at,
            "actor": "flow:bench",
            "action": "bench.checked",
            "subject": f"person:{i}",
        }
        expected = audit.entry_hash(payload=payload, **fields)
        assert audit._hash_of_text(payload_json=audit.canonical_json(payload), **fields) == expected


def _chain(n: int) -> list[dict[str, Any]]:
    records, prev = [], audit.GENESIS
    for seq in range(1, n + 1):
        payload = {"text": TRICKY[seq % len(TRICKY)], "seq": seq}
        at = audit.format_time(datetime(2026, 1, 1, tzinfo=UTC))
        digest = audit.entry_hash(
            prev_hash=prev, seq=seq, at=at, actor="operator", action="bench.step", subject="person:1", payload=payload
        )
        records.append(
            {
                "seq": seq,
                "at": at,
                "actor": "operator",
                "action": "bench.step",
                "subject": "person:1",
                "_payload_json": audit.canonical_json(payload),
                "prev_hash": prev,
                "hash": digest,
            }
        )
        prev = digest
    return records


def test_verify_still_names_what_was_wrong_with_an_entry() -> None:
    records = _chain(6)
    assert audit.verify_chain(records).ok
    spaced = [dict(r) for r in records]
    spaced[2]["_payload_json"] = json.dumps(json.loads(spaced[2]["_payload_json"]))  # same data, spaces
    result = audit.verify_chain(spaced)
    assert (result.ok, result.bad_seq, result.reason) == (
        False,
        3,
        "payload is not stored in canonical form: it was edited",
    )
    edited = [dict(r) for r in records]
    edited[3]["_payload_json"] = audit.canonical_json({"text": "changed", "seq": 4})
    result = audit.verify_chain(edited)
    assert (result.ok, result.bad_seq) == (False, 4) and "hash does not match" in result.reason
    broken = [dict(r) for r in records]
    broken[4]["_payload_json"] = "{not json"
    assert audit.verify_chain(broken).reason == "payload is not valid JSON: it was edited"


def test_follow_ups_are_limited_per_interaction() -> None:
    # time_scale 5: a 5-per-10-s window, so the requests below always fall in one window.
    box = DiscordSandbox(time_scale=5)
    with LoopbackServer(box.app) as server:
        c = box.connect(server.url)
        tokens = []
        for n in range(4):
            outcome = box.command(
                server.url, user="cleo_marsh", name="idea", options={"text": f"An idea about reading group {n}"}
            )
            assert outcome["response"]["type"] == 5
            tokens.append(next(t for t, r in box.interactions.items() if r["id"] == outcome["interaction_id"]))
        for token in tokens:  # 12 follow-ups: more than one window of one shared bucket holds
            for k in range(3):
                c.followup(token, f"follow-up {k}")
        assert box.state()["rate_limited"] == []
        buckets = [
            b
            for b in c.client.limits.snapshot()["buckets"].values()
            if "POST /webhooks/{application_id}/{interaction_token}" in b["routes"]
        ]
        assert len(buckets) == 4 and all(b["limit"] == 5 for b in buckets)
        assert not any(token in json.dumps(c.client.limits.snapshot()) for token in tokens)
        # The sandbox still holds each interaction to its own 5 per window.
        url = f"{server.url}/api/v10/webhooks/{box.seed.application_id}/{tokens[0]}"
        agent = {"User-Agent": "DiscordBot (https://example.invalid, 1.0)"}
        statuses = [httpx.post(url, json={"content": f"extra {k}"}, headers=agent).status_code for k in range(3)]
        assert statuses == [200, 200, 429]
        assert (
            httpx.post(
                f"{server.url}/api/v10/webhooks/{box.seed.application_id}/{tokens[1]}",
                json={"content": "another interaction"},
                headers=agent,
            ).status_code
            == 200
        )
        c.close()


def _answer(limits: DiscordRateLimits, route: tuple[str, str, str], reset_after: float) -> None:
    request = httpx.Request(route[0], "https://discord.invalid/api/v10/x")
    headers = {
        "X-RateLimit-Bucket": "webhookbucket",
        "X-RateLimit-Limit": "5",
        "X-RateLimit-Remaining": "4",
        "X-RateLimit-Reset-After": str(reset_after),
        "X-RateLimit-Reset": "1900000000.000",
    }
    with limits.route(route):
        slot = limits.acquire()
        limits.observe(httpx.Response(200, headers=headers, request=request))
        limits.release(slot)


def test_idle_buckets_are_forgotten_and_learned_again() -> None:
    limits = DiscordRateLimits()
    template = "/webhooks/{application_id}/{interaction_token}"
    for n in range(3):
        _answer(limits, ("POST", template, f"interaction{n}"), reset_after=0.0)
    _answer(limits, ("POST", template, "busy"), reset_after=math.inf)  # its window never passes
    assert len(limits.snapshot()["buckets"]) == 4
    limits._prune(now=limits._clock.monotonic() + 1)
    assert list(limits.snapshot()["buckets"]) == ["webhookbucket:busy"]
    _answer(limits, ("POST", template, "interaction0"), reset_after=1.0)  # learned again
    assert len(limits.snapshot()["buckets"]) == 2
