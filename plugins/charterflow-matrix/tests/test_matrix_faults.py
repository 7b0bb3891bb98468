"""Faults from the proxy in front of the real Synapse (5xx, dropped connections, 429 storms) and
Synapse's own rate limit: the connector retries and never duplicates a write, because every
message carries a key-derived transaction id that Synapse deduplicates."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from charterflow_matrix.client import q
from charterflow_matrix.connector import MatrixConnector
from connectors.base import ChangeStatus, Role
from connectors.errors import RetriableError
from connectors.http import RetryPolicy

FAST = RetryPolicy(max_retries=4, base_delay=0.05, max_delay=0.2)
SEND = "PUT /_matrix/client/v3/rooms/{room}/send/m.room.message/{txn}"


def messages_with(community: Any, room: str, body_part: str) -> list[dict[str, Any]]:
    creds = community.credentials
    with httpx.Client(
        base_url=creds.base_url, timeout=30, trust_env=False, headers={"Authorization": f"Bearer {creds.bot_token}"}
    ) as client:
        chunk = client.get(
            f"/_synapse/admin/v1/rooms/{q(room)}/messages",
            params={"dir": "b", "limit": 500, "filter": '{"types":["m.room.message"]}'},
        ).json()["chunk"]
    return [e for e in chunk if body_part in e["content"].get("body", "")]


@pytest.fixture
def fast(community: Any) -> Any:
    connector = community.connect(community.url, retry=FAST)
    yield connector
    connector.close()
    community.proxy.set_faults({})


@pytest.mark.parametrize(
    "fault",
    [
        {"drop_rate": 1, "drop_phase": "after"},  # Synapse stored it; the answer was lost
        {"drop_rate": 1, "drop_phase": "before"},
        {"error_rate": 1, "error_status": 502},
    ],
)
def test_a_lost_send_is_retried_and_lands_once(community: Any, fast: Any, fault: dict[str, Any]) -> None:
    text = f"once only ({fault})"
    community.proxy.set_faults({**fault, "methods": ["PUT"], "times": 2, "seed": 1})
    ref = fast.post(channel="general", title="Fault check", text=text, key=f"fault:{fault}")
    sends = {
        k: v
        for k, v in community.proxy.requests.items()
        if k.startswith("PUT ") and "/send/" in k and k.rsplit("/", 1)[1].startswith("cf-")
    }
    assert max(sends.values()) >= 3  # the write was sent three times…
    found = messages_with(community, community.room("general"), text)
    assert [e["event_id"] for e in found] == [ref.id]  # …and is in the room once
    if fault.get("drop_phase") == "after":
        assert community.proxy.forwarded[next(k for k, v in sends.items() if v >= 3)] >= 3


def test_a_429_storm_is_waited_out(community: Any, fast: Any) -> None:
    community.proxy.set_faults({"storm": {"count": 3, "retry_after_ms": 50}})
    ref = fast.post(channel="general", title="Storm", text="after the storm", key="storm-1")
    assert fast.client.policy.stats["429"] == 3 and ref.id.startswith("$")


def test_reads_are_retried_after_5xx_and_give_up_as_retriable(community: Any, fast: Any) -> None:
    community.proxy.set_faults({"error_rate": 1, "methods": ["GET"], "times": 2})
    assert fast.find_user("avery_quill").username == "avery_quill"
    community.proxy.set_faults({"error_rate": 1, "error_status": 503, "methods": ["GET"]})
    with pytest.raises(RetriableError) as gave_up:
        fast.find_user("avery_quill")
    assert gave_up.value.status == 503


def test_a_role_change_whose_answer_was_lost_is_not_reported_twice(community: Any, fast: Any) -> None:
    user = fast.find_user("avery_quill")
    community.proxy.set_faults({"drop_rate": 1, "drop_phase": "after", "methods": ["PUT"], "times": 1})
    change = fast.grant(user, Role.admin(), reason="R-ADMIN-1: fault check")
    assert change.status is ChangeStatus.APPLIED
    assert fast.grant(user, Role.admin(), reason="again").status is ChangeStatus.UNCHANGED
    fast.revoke(user, Role.admin(), reason="cleanup")


def test_synapses_own_rate_limit_gives_real_429s_that_are_retried(community: Any) -> None:
    """A member (not exempt like the bot) sends faster than rc_message allows: Synapse answers
    429 M_LIMIT_EXCEEDED with retry_after_ms; every message still lands exactly once."""
    token = community.users.login("wren_halloway")  # the admin's "login as" tokens are not limited
    member = MatrixConnector(
        settings=community.settings(community.url, access_token=SecretStr(token), rate_limit=1000),
        # Threads contend for one bucket: each may meet many 429s in a row.
        retry=RetryPolicy(max_retries=4, base_delay=0.05, max_delay=0.2, max_rate_limit_retries=60),
    )
    try:
        with ThreadPoolExecutor(3) as pool:
            refs = list(
                pool.map(
                    lambda n: member.post(
                        channel="general", title="burst", text=f"burst message {n}", key=f"burst-{n}"
                    ),
                    range(20),
                )
            )
        assert member.client.policy.stats["429"] > 0
        found = messages_with(community, community.room("general"), "burst message ")
        assert sorted(e["event_id"] for e in found) == sorted(r.id for r in refs) and len(set(refs)) == 20
    finally:
        member.close()
