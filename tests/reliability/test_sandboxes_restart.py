"""The sandboxes process of `up` restarted (issue 19, the chaos test): a Forum restored from its
saved state sends the webhook of a topic opened as soon as it listens, before the process has
finished preparing (a topic was lost this way: its webhook URL was set only then)."""

from __future__ import annotations

import httpx

from charterflow.inspector.serve import build_sandboxes, restore
from charterflow.sandbox_state import SandboxStore
from charterflow.seed import CATEGORIES, build
from tests.procs import wait_for
from tests.support.net import LoopbackServer, request_of

API_KEY = "forum-api-key-for-the-restart-test-0001"
SECRET = "forum-webhook-secret-for-the-restart-test"


def test_a_restored_forum_sends_the_webhook_of_a_topic_opened_before_it_is_prepared(tmp_path):
    received: list[str] = []

    async def gateway(scope, receive, send):
        headers, _ = await request_of(scope, receive)
        received.append(headers.get("x-discourse-event", ""))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    community = build()
    with LoopbackServer(gateway) as hooks:
        spec = {
            "host": "127.0.0.1",
            "gateway_url": hooks.url,
            "state_dir": str(tmp_path),
            "platforms": {"discourse": {"port": 0, "api_key": API_KEY, "webhook_secret": SECRET}},
        }
        # The state the killed process left behind.
        left = build_sandboxes(spec, community)["discourse"]
        SandboxStore(tmp_path, secrets=[API_KEY, SECRET]).save("discourse", left)

        boxes = build_sandboxes(spec, community)
        store = SandboxStore(tmp_path, secrets=[API_KEY, SECRET])
        assert restore(spec, boxes, store) == {"discourse"}
        forum = boxes["discourse"]
        try:
            with LoopbackServer(store.watch("discourse", forum)) as served:  # listening; `prepare` not run
                author = sorted({i["author"] for i in community.ideas})[0]
                opened = httpx.post(
                    f"{served.url}/posts.json",
                    headers={"Api-Key": API_KEY, "Api-Username": author},
                    json={
                        "title": "Idea: a shared glossary of terms",
                        "raw": "A glossary, kept by the group, of the terms we use.",
                        "category": CATEGORIES["Ideas"],
                    },
                    timeout=10,
                )
                assert opened.status_code == 200, opened.text
                assert wait_for(lambda: "topic_created" in received, 15, step=0.1), forum.state()["webhook_deliveries"]
        finally:
            forum.close()
