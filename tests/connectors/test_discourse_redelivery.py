"""The Forum's failed webhook deliveries, as Discourse keeps them, and the connector's
``redeliver_failed`` (``connectors.base.Redelivery``). Discourse sends a webhook once: again only
with ``retry_web_hook_events`` on (off by default), under a new event id, and never a delivery
that got no answer (app/jobs/regular/emit_web_hook_event.rb); an admin's Redeliver sends the
stored body and headers again. Everything runs over HTTP on 127.0.0.1; nothing is patched."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from connectors.base import Redelivery
from connectors.discourse.sandbox import DiscourseSandbox, default_seed
from tests.procs import wait_for
from tests.support.net import LoopbackServer, free_port

AN_HOUR_AGO = datetime.now(UTC) - timedelta(hours=1)


class Receiver:
    """A gateway stand-in: each POST kept (event id, body), answered with the next of
    ``statuses`` (200 once they run out)."""

    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses)
        self.got: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()
        self.app = Starlette(routes=[Route("/hooks/discourse", self._take, methods=["POST"])])

    async def _take(self, request: Request) -> Response:
        body = await request.body()
        with self.lock:
            self.got.append((request.headers["x-discourse-event-id"], body))
            return Response(status_code=self.statuses.pop(0) if self.statuses else 200)


def _sandbox(serve: Any, port: int, **settings: Any) -> Any:
    seed = default_seed()
    seed["webhook"] = {"url": f"http://127.0.0.1:{port}/hooks/discourse", "events": ["topic_created", "ping"]}
    seed["settings"] = {"admin_api_limit": 1000, **settings}
    return serve(DiscourseSandbox(seed=seed))


def _open_topic(box: Any, title: str) -> None:
    category = next(c["id"] for c in box.state()["categories"] if c["name"] == "General")
    made = httpx.post(
        f"{box.url}/posts.json",
        timeout=10,
        headers={"Api-Key": box.sandbox.api_key, "Api-Username": "cleo_marsh"},
        json={"title": title, "raw": f"{title}: I would like to help run the community spaces.", "category": category},
    )
    assert made.status_code == 200, made.text


def _events(box: Any, **params: Any) -> list[dict[str, Any]]:
    listed = httpx.get(
        f"{box.url}/admin/api/web_hook_events/1.json",
        timeout=10,
        headers={"Api-Key": box.sandbox.api_key, "Api-Username": "system"},
        params=params,
    )
    assert listed.status_code == 200, listed.text
    return listed.json()["web_hook_events"]


def _settled(box: Any, deliveries: int) -> bool:
    state = box.state()
    return len(state["webhook_deliveries"]) >= deliveries and not state["webhook_pending"]


def test_a_delivery_the_gateway_never_answered_is_not_sent_again_until_asked(serve):
    port = free_port()  # nothing listens yet: the gateway is down
    box = _sandbox(serve, port)
    _open_topic(box, "Application from someone while the gateway was down")
    assert wait_for(lambda: _settled(box, 1), 15, step=0.1)
    [failed] = _events(box)
    assert failed["status"] == -1 and box.state()["webhook_deliveries"][0]["gave_up"]  # no retry
    connector = box.connect()
    assert isinstance(connector, Redelivery)

    receiver = Receiver()
    with LoopbackServer(receiver.app, port=port):
        assert connector.redeliver_failed(since=AN_HOUR_AGO) == [str(failed["id"])]
        assert wait_for(lambda: len(receiver.got) == 1, 15, step=0.1)
        # The stored delivery again: its first event id and body, so the gateway takes it once.
        assert receiver.got[0] == (str(failed["id"]), failed["payload"].encode())
        assert wait_for(lambda: _events(box)[0]["status"] == 200, 15, step=0.1)
        assert connector.redeliver_failed(since=AN_HOUR_AGO) == []  # delivered: not asked again
    assert len(receiver.got) == 1


def test_only_transient_failures_not_delivered_since_are_asked_for(serve):
    port = free_port()
    # Each failed delivery is tried once more (a new event id, the same body): 503 for the first
    # topic, then its retry delivered; 401 (a bad signature) for the second, twice; 502 for the
    # third, twice.
    receiver = Receiver(503, 200, 401, 401, 502, 502)
    with LoopbackServer(receiver.app, port=port):
        box = _sandbox(serve, port, webhook_retry_delays=[0.1])
        _open_topic(box, "First application, delivered on its retry")
        assert wait_for(lambda: _settled(box, 2), 15, step=0.1)
        _open_topic(box, "Second application, refused as forged")
        assert wait_for(lambda: _settled(box, 4), 15, step=0.1)
        _open_topic(box, "Third application, failed on both tries")
        assert wait_for(lambda: _settled(box, 6), 15, step=0.1)
        events = _events(box)
        assert [e["status"] for e in events] == [502, 502, 401, 401, 200, 503]
        connector = box.connect()
        assert connector.redeliver_failed(since=datetime.now(UTC) + timedelta(minutes=1)) == []  # none that recent
        # The third topic's newest failed delivery only; not the first's (delivered on its
        # retry), nor the second's 401 (it would fail again), nor the delivered ones.
        assert connector.redeliver_failed(since=AN_HOUR_AGO) == [str(events[0]["id"])]
        assert wait_for(lambda: len(receiver.got) == 7, 15, step=0.1)
        assert receiver.got[-1] == (str(events[0]["id"]), events[0]["payload"].encode())


def test_the_event_log_is_an_admin_route_of_the_one_webhook(serve):
    box = _sandbox(serve, free_port())
    as_member = httpx.get(
        f"{box.url}/admin/api/web_hook_events/1.json",
        timeout=10,
        headers={"Api-Key": box.sandbox.api_key, "Api-Username": "cleo_marsh"},
    )
    assert as_member.status_code == 404  # an admin route answers others as "not found"
    system = {"Api-Key": box.sandbox.api_key, "Api-Username": "system"}
    assert httpx.get(f"{box.url}/admin/api/web_hook_events/7.json", headers=system, timeout=10).status_code == 404
    missing = httpx.post(f"{box.url}/admin/api/web_hooks/1/events/999999/redeliver", headers=system, timeout=10)
    assert missing.status_code == 404
    assert _events(box) == [] and _events(box, offset=50) == []
