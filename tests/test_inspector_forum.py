"""The sandbox inspector's Forum page, served by a real uvicorn in front of a real Forum sandbox
seeded with the demo community: a person flags a post from the page as on the Forum, the Forum
sends the post's review (the Reviewable webhook charterflow takes as a report, R-SAFE-1), and
the page shows who flagged it. A flag the Forum refuses is said, a flag type it lacks is 400."""

from __future__ import annotations

import json
import queue
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from charterflow.inspector.app import create_app
from charterflow.inspector.serve import Running
from charterflow.seed import build
from connectors.discourse.sandbox import DiscourseSandbox
from tests.support.net import LoopbackServer, request_of

API_KEY = "inspector-forum-key-invented-0009"
RUDE = "And the ones who answered me are fools."


@pytest.fixture
def inspector() -> Iterator[tuple[str, Any, str, queue.Queue[tuple[dict[str, str], bytes]]]]:
    community = build()
    seed = community.discourse_seed()
    seed["api_keys"] = [{"key": API_KEY}]
    received: queue.Queue[tuple[dict[str, str], bytes]] = queue.Queue()

    async def receiver(scope: dict[str, Any], receive: Any, send: Any) -> None:
        received.put(await request_of(scope, receive))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    with LoopbackServer(receiver) as gateway:
        sandbox = DiscourseSandbox(seed=seed, webhook_url=f"{gateway.url}/hooks/discourse")
        with LoopbackServer(sandbox.app) as forum:
            running = Running(
                urls={"discourse": forum.url},
                gateway_url=gateway.url,
                community=community,
                ready=True,
                discourse_api_key=API_KEY,
            )
            with LoopbackServer(create_app(running=running)) as server:
                yield server.url, sandbox, forum.url, received


def _flag(url: str, post_id: int, user: str, kind: str, message: str = "") -> httpx.Response:
    port = httpx.URL(url).port
    form = {"user": user, "post_id": str(post_id), "flag_type": kind, "message": message}
    headers = {"Origin": f"http://127.0.0.1:{port}"}
    return httpx.post(f"{url}/act/forum/flag", data=form, headers=headers, timeout=30, follow_redirects=False)


def test_a_post_flagged_from_the_forum_page_reaches_the_gateway_as_its_review(inspector: Any) -> None:
    url, sandbox, forum, received = inspector
    author, flagger = [u["username"] for u in sandbox.users.values() if u["id"] > 0][:2]
    public = next(c for c in sandbox.categories.values() if not c["read_restricted"])
    posted = httpx.post(
        f"{forum}/posts.json",
        headers={"Api-Key": API_KEY, "Api-Username": author},
        json={"title": "Everyone here is wrong about it", "raw": RUDE, "category": public["id"]},
        timeout=30,
    )
    assert posted.status_code == 200, posted.text
    post = sandbox.posts[posted.json()["id"]]
    page = httpx.get(f"{url}/forum", params={"topic": post["topic_id"], "as": flagger}, timeout=30).text
    assert 'action="/act/forum/flag"' in page and f"Flag as {flagger}" in page

    done = _flag(url, post["id"], flagger, "notify_moderators", message="It names a person who asked not to be.")
    assert done.status_code == 303 and "flagged the post" in httpx.URL(done.headers["location"]).params["note"]
    while True:  # the Forum's review of the post, as the gateway receives it
        headers, body = received.get(timeout=10)
        if headers.get("x-discourse-event") == "reviewable_created":
            break
    review = json.loads(body)["reviewable"]
    (score,) = review["reviewable_scores"]
    assert (review["target_id"], review["target_created_by"]["username"]) == (post["id"], author)
    assert (score["user"]["username"], score["score_type"]["type"]) == (flagger, "notify_moderators")
    assert score["reviewable_conversation"]["conversation_posts"][0]["excerpt"].startswith("It names a person")
    page = httpx.get(f"{url}/forum", params={"topic": post["topic_id"], "as": flagger}, timeout=30).text
    assert f"flagged by {flagger}" in page

    again = _flag(url, post["id"], flagger, "notify_moderators")
    assert "The Forum refused the flag (HTTP 403)" in httpx.URL(again.headers["location"]).params["note"]
    assert len(sandbox.flags) == 1
    wrong = _flag(url, post["id"], flagger, "like")
    assert wrong.status_code == 400 and "flag_type must be one of" in wrong.text and len(sandbox.flags) == 1
