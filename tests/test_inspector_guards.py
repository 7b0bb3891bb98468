"""The sandbox inspector's guards (issue 19), served by a real uvicorn on 127.0.0.1 in front of
a real Discord sandbox: it answers only to its bound address, localhost and the names the
operator lists (a DNS-rebinding page cannot act as a seeded person), never redirects outside
its own origin, and answers a malformed number with 400."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from charterflow.inspector.app import allowed_host, create_app
from charterflow.inspector.serve import Running
from charterflow.seed import build
from connectors.discord.connector import DiscordConnector
from tests.support.membership import discord_seed
from tests.support.net import LoopbackServer


@pytest.fixture
def inspector() -> Iterator[tuple[str, int, Running]]:
    sandbox = DiscordConnector.sandbox(seed=discord_seed())
    with LoopbackServer(sandbox.app) as discord:
        running = Running(
            urls={"discord": discord.url, "discourse": "http://127.0.0.1:9"},
            gateway_url="http://127.0.0.1:9",
            community=build(),
            ready=True,
        )
        server = LoopbackServer(create_app(running=running))  # bound first: its port is known
        server.app = create_app(running=running, port=server.port, allowed_hosts=["inspector.wg.example"])
        server.server.config.app = server.app
        with server:
            yield server.url, server.port, running


def post(
    url: str,
    path: str,
    *,
    host: str,
    origin: str | None,
    referer: str | None = None,
    data: dict[str, str] | None = None,
) -> httpx.Response:
    headers = {"Host": host}
    if origin:
        headers["Origin"] = origin
    if referer:
        headers["Referer"] = referer
    return httpx.post(f"{url}{path}", headers=headers, data=data or {}, timeout=30, follow_redirects=False)


def test_a_foreign_host_with_a_matching_origin_is_refused(inspector):
    url, port, _ = inspector
    press = {"user": "avery_quill", "channel_id": "1", "message_id": "1", "custom_id": "cfb:1:1"}
    evil = f"evil.example:{port}"
    refused = post(url, "/act/discord/press", host=evil, origin=f"http://{evil}", data=press)
    assert refused.status_code == 403 and "ALLOWED_HOSTS" in refused.text
    assert httpx.get(f"{url}/", headers={"Host": evil}, timeout=30).status_code == 403
    # The bound address, localhost and a listed name are served.
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"inspector.wg.example:{port}"):
        answer = post(url, "/act/discord/press", host=host, origin=f"http://{host}", data=press)
        assert answer.status_code == 303, (host, answer.text)


def test_the_redirect_after_an_action_stays_on_the_inspector(inspector):
    url, port, _ = inspector
    own = f"127.0.0.1:{port}"
    press = {"user": "avery_quill", "channel_id": "1", "message_id": "1", "custom_id": "cfb:1:1"}
    for referer in (
        f"http://{own}//evil.example/x",
        f"http://{own}/\\evil.example",
        f"http://{own}/discord?channel=5&next=//evil.example&note=old",
    ):
        answer = post(url, "/act/discord/press", host=own, origin=None, referer=referer, data=press)
        assert answer.status_code == 303
        target = answer.headers["location"]
        assert target.startswith(("/?", "/discord?")) and "evil" not in target, target
        resolved = httpx.URL(f"http://{own}/").join(target)
        assert resolved.host == "127.0.0.1" and resolved.port == port
    kept = post(
        url, "/act/discord/press", host=own, origin=None, referer=f"http://{own}/discord?channel=5", data=press
    ).headers["location"]
    assert kept.startswith("/discord?channel=5&note=")


def test_bad_numbers_are_400(inspector):
    url, port, _ = inspector
    own = f"127.0.0.1:{port}"
    vote = {"user": "avery_quill", "post_id": "abc", "poll_name": "poll", "option_id": "x"}
    answer = post(url, "/act/forum/vote", host=own, origin=f"http://{own}", data=vote)
    assert answer.status_code == 400 and "post_id" in answer.text
    assert httpx.get(f"{url}/forum?topic=abc", headers={"Host": own}, timeout=30).status_code == 400


@pytest.mark.parametrize(
    "host, ok",
    [
        ("127.0.0.1:8090", True),
        ("localhost:8090", True),
        ("LOCALHOST:8090", True),
        ("127.0.0.1:8091", False),
        ("evil.example:8090", False),
        ("127.0.0.1.evil.example:8090", False),
        ("named.example:8090", True),
        ("named.example:1", False),
        ("exact.example:9999", True),
        ("exact.example:8090", False),
        ("", False),
        ("127.0.0.1:80x", False),
        ("[::1]:8090", True),
    ],
)
def test_allowed_host(host, ok):
    assert allowed_host(host, port=8090, names=("named.example", "exact.example:9999")) is ok


def test_the_discord_page_marks_the_private_channels(inspector):
    # wg-private and moderators deny @everyone View Channel (the sandbox's default overwrites).
    url, port, _ = inspector
    page = httpx.get(f"{url}/discord", headers={"Host": f"127.0.0.1:{port}"}, timeout=30).text
    links = {m.group(1): m.group(2) for m in re.finditer(r'># ([a-z-]+)( <span class="tag">private</span>)?</a>', page)}
    assert links == {
        "general": None,
        "wg-private": ' <span class="tag">private</span>',
        "announcements": None,
        "moderators": ' <span class="tag">private</span>',
    }
