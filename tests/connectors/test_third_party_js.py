"""The sandboxes judged by the most used JavaScript clients of their platforms, which we did not
write: discord.js's REST client (``@discordjs/rest``, its routes from ``discord-api-types``) and
Slack's Node SDK (``@slack/web-api``), pinned in ``tests/js/package.json`` and installed there by
``npm ci``. Node runs the scripts of ``tests/js`` against a sandbox on 127.0.0.1; each prints what
the library returned and threw. Judged: a bot's and an app's usual calls, through the library's
own API, return what the sandbox's state holds and change it; what a sandbox does not emulate
reaches the library as a server error (Discord, 501) or as Slack's ``not_emulated`` error, at
once, never as the platform's "not found" or refusal; the platform's refusals reach it as its
own errors with their codes; the library waits out the rate limits and every message arrives."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

from connectors.discord.sandbox import ATTACH_FILES, DiscordSandbox
from connectors.slack.sandbox import SlackSandbox
from tests.support.clients import grant_the_bot

JS = Path(__file__).resolve().parents[1] / "js"
NODE_AT_LEAST = (18, 17)  # undici 6, under @discordjs/rest 2 (Debian 12's nodejs is 18.19)


def _stale() -> bool:
    """``node_modules`` missing, or older than the lock file (``npm ci`` writes its own copy last)."""
    installed = JS / "node_modules" / ".package-lock.json"
    return not installed.is_file() or installed.stat().st_mtime < (JS / "package-lock.json").stat().st_mtime


@pytest.fixture(scope="session")
def node() -> str:
    """Node's path, with ``tests/js/node_modules`` as the lock file pins it (one ``npm ci`` a
    session: the xdist workers take turns on a file lock)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.fail("Node.js and npm are needed by the JavaScript judges: run scripts/test-deps.sh (as root)")
    version = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30, check=True).stdout
    if tuple(int(part) for part in version.strip().lstrip("v").split(".")[:2]) < NODE_AT_LEAST:
        pytest.fail(f"Node.js {version.strip()} is too old for tests/js (>= 18.17): run scripts/test-deps.sh")
    lock = Path(tempfile.gettempdir()) / f"charterflow-npm-ci-{hashlib.sha256(bytes(JS)).hexdigest()[:12]}.lock"
    with lock.open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        if _stale():
            done = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund"], cwd=JS, capture_output=True, text=True, timeout=240
            )
            if done.returncode != 0:
                pytest.fail(f"npm ci in tests/js failed:\n{(done.stdout + done.stderr)[-3000:]}")
    return node


def _judge(node: str, script: str, scenario: str, env: dict[str, str], timeout: float = 60) -> dict[str, Any]:
    """What ``node tests/js/<script> <scenario>`` saw; its own failure fails the test with its stack."""
    try:
        done = subprocess.run(
            [node, script, scenario], cwd=JS, env={**os.environ, **env}, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired as exc:  # a library retrying an answer it takes for a passing failure
        pytest.fail(f"node {script} {scenario} still running after {timeout} s: {exc.stderr!r}"[-3000:])
    assert done.returncode == 0, done.stderr[-3000:]
    seen: dict[str, Any] = json.loads(done.stdout)
    assert seen.pop("ok") is True, seen
    return seen


def _messages(state: dict[str, Any], prefix: str) -> list[str]:
    return [m["content"] for m in state["messages"] if m["content"].startswith(prefix)]


# ---- discord.js: @discordjs/rest ----------------------------------------------------------------


@pytest.fixture
def discord_env() -> Any:
    """``discord_env(box)``: what discord.mjs reads, for the sandbox ``box``."""

    def env(box: Any) -> dict[str, str]:
        sb = box.sandbox
        return {
            "DISCORD_API": f"{box.url}/api",  # the library appends /v10
            "DISCORD_TOKEN": sb.token,
            "DISCORD_GUILD_ID": sb.seed.guild_id,
            "DISCORD_CHANNEL_ID": sb.channel_id("wg-private"),
            "DISCORD_MEMBER_ID": sb._user_by_name("cleo_marsh")["id"],
            "DISCORD_ROLE_ID": sb._role_id("moderator"),
            "DISCORD_HIGH_ROLE_ID": sb._role_id("owners"),
        }

    return env


def test_discordjs_rest_runs_a_bots_calls(serve: Any, node: str, discord_env: Any) -> None:
    box = serve(DiscordSandbox())
    sb = box.sandbox
    grant_the_bot(box, ATTACH_FILES)  # the script uploads a file: a bot needs Attach Files, as on Discord
    seen = _judge(node, "discord.mjs", "calls", discord_env(box))
    state = box.state()
    # "@me" reaches the sandbox percent-encoded ("%40me"), as discord-api-types' Routes send it.
    assert seen["me"]["id"] == sb.bot_id and seen["me"]["bot"] is True
    assert seen["application"]["id"] == sb.seed.application_id
    assert seen["application"]["verify_key"] == state["guild"]["public_key"]
    assert (seen["guild"]["id"], seen["guild"]["name"]) == (sb.seed.guild_id, state["guild"]["name"])
    assert [(r["id"], r["name"]) for r in seen["roles"]] == [(r["id"], r["name"]) for r in state["roles"]]
    assert {c["id"] for c in seen["channels"]} == {c["id"] for c in state["channels"] if c["type"] == 0}
    person = next(m for m in state["members"] if m["username"] == "cleo_marsh")
    assert seen["member"]["user"]["username"] == "cleo_marsh" and seen["member"]["joined_at"] == person["joined_at"]
    assert sb._role_id("moderator") in seen["granted"]["roles"] and "moderator" not in person["roles"]
    # The reasons arrive URL-encoded (X-Audit-Log-Reason) and are kept decoded, as Discord shows them.
    reasons = {e["reason"] for e in state["audit_log"]}
    assert {"Appointed by the WG: café", "Term ended", "Planned"} <= reasons
    assert reasons >= {e["reason"] for e in seen["audit"]["audit_log_entries"]} >= {"Appointed by the WG: café"}
    assert {e["id"] for e in seen["audit"]["audit_log_entries"]} == {e["id"] for e in state["audit_log"]}

    stored = {m["id"]: m for m in state["messages"]}
    edited = stored[seen["sent"]["id"]]
    assert seen["edited"]["content"] == edited["content"] == "Hello, edited" and edited["edited"]
    buttons = [(b["custom_id"], b["label"]) for row in seen["sent"]["components"] for b in row["components"]]
    assert buttons == [("agree", "Agree"), ("later", "Later")]
    assert [b["custom_id"] for row in edited["components"] for b in row["components"]] == ["agree", "later"]
    # The file went as multipart/form-data (payload_json + files[0]).
    (attachment,) = seen["file"]["attachments"]
    assert (attachment["filename"], attachment["size"]) == ("minutes.txt", len(b"The minutes."))
    # discord.js declares a text file application/octet-stream (its type sniffer knows no text);
    # Discord shows the file's own type.
    assert attachment["content_type"] == "text/plain; charset=utf-8"
    assert seen["file"]["content"] == "Minutes attached" and seen["file"]["id"] not in stored
    assert [m["id"] for m in seen["history"]] == [seen["file"]["id"], seen["sent"]["id"]]

    assert seen["dmChannel"]["type"] == 1 and seen["dmChannel"]["recipients"][0]["id"] == person["id"]
    assert stored[seen["dm"]["id"]]["channel_id"] == seen["dmChannel"]["id"]
    threads = {c["id"]: c for c in state["channels"] if c["thread"]}
    assert seen["thread"]["id"] == seen["sent"]["id"]  # a thread from a message has the message's id
    assert set(threads) == {seen["thread"]["id"], seen["ownThread"]["id"]}
    assert {sb.bot_id, person["id"]} <= set(threads[seen["thread"]["id"]]["members"])
    assert threads[seen["ownThread"]["id"]]["members"] == [sb.bot_id]  # joined as @me (already in)
    assert [e["id"] for e in state["events"]] == [seen["event"]["id"]]
    assert seen["event"]["entity_metadata"] == {"location": "Online"}
    assert seen["event"]["scheduled_start_time"].startswith("2099-01-10T18:00:00")
    assert state["commands"] == {sb.seed.guild_id: ["idea"]}
    assert [c["id"] for c in seen["listed"]] == [c["id"] for c in seen["commands"]]
    assert state["responses"]["PUT /channels/{channel_id}/thread-members/@me"] == {"204": 1}


def test_discordjs_rest_sees_unemulated_calls_as_server_errors_and_refusals_as_discords(
    serve: Any, node: str, discord_env: Any
) -> None:
    box = serve(DiscordSandbox())
    seen = _judge(node, "discord.mjs", "refusals", discord_env(box))
    for what in ("pins", "editMember"):
        assert seen[what]["error"] == {"kind": "HTTPError", "status": 501, "message": "Not Implemented"}, what
    # HTTPError drops the body; the library's response events keep it: each attempt said why.
    bodies = [(e["method"], json.loads(e["body"])) for e in seen["serverErrors"]]
    assert {m for m, _ in bodies} == {"GET", "PATCH"}
    assert all(b["code"] == 0 and b["message"].startswith("not emulated by the sandbox: ") for _, b in bodies)
    # @discordjs/rest retries a 5xx 3 times (its `retries`), at once, then throws: 4 requests each.
    state = box.state()
    assert state["requests"]["GET /channels/{channel_id}/messages/pins"] == 4
    assert [n for key, n in state["requests"].items() if key.startswith("PATCH ")] == [4]
    assert len(bodies) == 8
    # Discord's refusals: DiscordAPIError with Discord's status and code (a user that does not
    # exist at all is 10013, not the 10007 of a user who is not a member).
    for what, status, code in (("unknownUser", 404, 10013), ("emptyMessage", 400, 50006), ("aboveTheBot", 403, 50013)):
        error = seen[what]["error"]
        assert (error["kind"], error["status"], error["code"]) == ("DiscordAPIError", status, code), what
    assert "owners" not in next(m["roles"] for m in state["members"] if m["username"] == "cleo_marsh")
    assert state["messages"] == []


def test_discordjs_rest_waits_out_a_message_bucket_and_every_message_arrives(
    serve: Any, node: str, discord_env: Any
) -> None:
    # Another process of the bot (the script's plain fetch) has spent the channel's message bucket
    # (5 per 5 s, a quarter here): the library's first send meets a 429, then it keeps to the
    # bucket the headers tell, 8 sends at once.
    box = serve(DiscordSandbox(time_scale=0.25))
    seen = _judge(node, "discord.mjs", "burst", discord_env(box))
    assert seen["others"] == [200] * 5
    assert [s.get("error") for s in seen["sent"]] == [None] * 8
    assert [s["result"]["content"] for s in seen["sent"]] == [f"Burst {n}" for n in range(8)]
    state = box.state()
    assert _messages(state, "Burst") == [f"Burst {n}" for n in range(8)]  # all, in order
    # One 429 only: after it the library waited, for the 429 and for the bucket's next reset.
    (limited,) = state["rate_limited"]
    assert (limited["bucket"], limited["scope"]) == ("message.create", "user")
    assert any(r["retryAfter"] >= limited["retry_after"] * 1000 for r in seen["rateLimited"])
    window = state["limits"]["buckets"]["message.create"][1]
    assert seen["seconds"] >= limited["retry_after"] + window * 0.9


# ---- Slack: @slack/web-api ----------------------------------------------------------------------

BOARD, WREN, TOBIN = "C0BOARD01", "U0WREN001", "U0TOBI002"


def _slack_env(box: Any) -> dict[str, str]:
    return {
        "SLACK_API_URL": box.sandbox.client_info(box.url)["base_url"],
        "SLACK_TOKEN": box.sandbox.bot_token,
        "SLACK_CHANNEL": BOARD,
        "SLACK_USER": WREN,
        "SLACK_EMAIL": "tobin.ashgrove@example.org",
    }


@pytest.fixture
def slack(serve: Any) -> Any:
    return serve(SlackSandbox())


def test_slack_web_api_runs_an_apps_calls(slack: Any, node: str) -> None:
    seen = _judge(node, "slack.mjs", "calls", _slack_env(slack))
    state = slack.state()
    assert (seen["auth"]["user_id"], seen["auth"]["team_id"]) == (state["bot_user_id"], state["team"]["id"])
    (stored,) = state["messages"][BOARD]  # the other one was deleted
    assert seen["posted"]["ts"] == seen["updated"]["ts"] == stored["ts"]
    assert [b["type"] for b in seen["posted"]["message"]["blocks"]] == ["section", "actions"]
    assert (stored["text"], stored["blocks"]) == ("Proposal 7: approved", [])
    assert stored["edited"]["user"] == seen["auth"]["user_id"]
    assert seen["deleted"]["ts"] != stored["ts"] and seen["deleted"]["ok"] is True
    board = next(c for c in state["channels"] if c["id"] == BOARD)
    assert (seen["info"]["channel"]["name"], seen["info"]["channel"]["is_private"]) == (board["name"], True)
    assert seen["members"]["members"] == board["members"]
    # client.paginate followed the cursor, one channel a page, to the end.
    assert [len(page) for page in seen["pages"]] == [1] * len(state["channels"])
    assert sorted(c for page in seen["pages"] for c in page) == sorted(c["id"] for c in state["channels"])
    assert seen["user"]["user"]["name"] == next(u["name"] for u in state["users"] if u["id"] == WREN)
    assert sorted(u["id"] for u in seen["users"]) == sorted(u["id"] for u in state["users"])
    assert seen["byEmail"]["user"]["id"] == TOBIN
    assert slack.sandbox.requests["users.list"] == len(state["users"]) // 2 + len(state["users"]) % 2


def test_slack_web_api_sees_unemulated_methods_as_not_emulated_and_refusals_as_slacks(slack: Any, node: str) -> None:
    seen = _judge(node, "slack.mjs", "refusals", _slack_env(slack), timeout=20)
    for method, what in (("reactions.add", "reaction"), ("pins.list", "pins")):
        error = seen[what]["error"]
        assert (error["code"], error["error"]) == ("slack_webapi_platform_error", "not_emulated"), what
        assert error["detail"] == f"not emulated by the sandbox: POST /api/{method}"
    # At once: the library retries any answer but HTTP 200 and 429, for up to ~30 minutes.
    assert slack.sandbox.requests["reactions.add"] == slack.sandbox.requests["pins.list"] == 1
    for what, code in (("noChannel", "channel_not_found"), ("noUser", "users_not_found"), ("noText", "no_text")):
        assert (seen[what]["error"]["code"], seen[what]["error"]["error"]) == ("slack_webapi_platform_error", code)
    assert slack.state()["messages"] == {}


def test_slack_web_api_waits_out_the_channels_rate_limit(slack: Any, node: str) -> None:
    # Real time: chat.postMessage allows a burst of 3, then about one a second per channel, and
    # the library sleeps Slack's Retry-After before it sends again.
    seen = _judge(node, "slack.mjs", "ratelimit", _slack_env(slack))
    assert [s.get("error") for s in seen["sent"]] == [None] * 5
    state = slack.state()
    assert [m["text"] for m in state["messages"][BOARD]] == [f"Burst {n}" for n in range(5)]
    assert [s["result"]["ts"] for s in seen["sent"]] == [m["ts"] for m in state["messages"][BOARD]]
    assert [r["kind"] for r in state["rate_limited"]] == ["channel"]
    assert seen["rateLimited"] == [{"seconds": 1, "method": "chat.postMessage"}]
    assert seen["seconds"] >= 1
    assert slack.sandbox.requests["chat.postMessage"] == 6
