"""The parts of `up`'s healing that need no whole stack: the supervisor restarting a real child
process with backoff and stopping on a crash loop, the status file and `charterflow status`,
the sandboxes' state kept across a process restart, and the Forum sandbox's webhook retries.
(The whole stack under SIGKILLs: tests/reliability/test_chaos.py.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from charterflow.sandbox_state import SandboxStore
from charterflow.status import render, running_status, write_status
from charterflow.up import CRASH_LOOP_EXITS, PUMP_START_SECONDS, Child, ChildSpec, Supervisor, _starting
from charterflow.workers import READY_FILE_ENV
from connectors.discord.sandbox import DiscordSandbox, default_seed
from connectors.discourse.sandbox import DiscourseSandbox
from tests.procs import wait_for
from tests.support.net import LoopbackServer

CHARTERFLOW = str(Path(sys.executable).with_name("charterflow"))


def _supervisor(tmp_path: Path, said: list[str]) -> Supervisor:
    (tmp_path / "logs").mkdir()
    return Supervisor(home=tmp_path, logs=tmp_path / "logs", say=said.append)


def test_a_child_that_exits_is_restarted_and_the_others_keep_running(tmp_path):
    said: list[str] = []
    sup = _supervisor(tmp_path, said)
    healed = []
    sleeper = sup.start(
        ChildSpec(name="sleeper", argv=[sys.executable, "-c", "import time; time.sleep(60)"], env=dict(os.environ))
    )
    victim = sup.start(
        ChildSpec(
            name="victim",
            argv=[sys.executable, "-c", "import time; time.sleep(60)"],
            env=dict(os.environ),
            after_restart=healed.append,
        )
    )
    try:
        first = victim.process.pid
        os.kill(first, 9)
        assert wait_for(lambda: sup.check() is None and victim.restarts == 1, 10, step=0.1)
        assert victim.process.pid != first and victim.process.poll() is None
        assert sleeper.restarts == 0 and sleeper.process.poll() is None
        assert said[0].startswith("victim stopped unexpectedly: exit -9 (SIGKILL); restarting it in 0.5 s")
        assert said[1].startswith("victim restarted (pid ")
        assert len(healed) == 1  # the exit's time, for re-dispatching what was in flight
        status = json.loads((tmp_path / "status.json").read_text())
        rows = {c["name"]: c for c in status["children"]}
        assert rows["victim"]["restarts"] == 1 and rows["victim"]["last_exit"] == -9
        assert rows["victim"]["pid"] == victim.process.pid and rows["victim"]["state"] == "running"
        assert rows["sleeper"]["restarts"] == 0 and rows["sleeper"]["last_exit"] is None
    finally:
        sup.stop()
    assert sleeper.process.poll() is not None and victim.process.poll() is not None


def test_stuck_children_are_all_stopped_before_meanwhile_runs_and_started_after(tmp_path):
    """The stall watch's restart: the stuck pumps stopped (SIGSTOPped ones too), then the
    waiting events released while no pump runs, then new pumps (a new pump that claimed an event
    before its release would run it as a second attempt)."""
    said: list[str] = []
    sup = _supervisor(tmp_path, said)
    argv = [sys.executable, "-c", "import time; time.sleep(60)"]
    pumps = [sup.start(ChildSpec(name=n, argv=argv, env=dict(os.environ))) for n in ("workers", "inbox-2")]
    old = [c.process for c in pumps]
    seen: list[list[int | None]] = []
    try:
        os.kill(old[0].pid, 19)  # SIGSTOP: alive, working nothing
        sup.restart(pumps, "stalled", meanwhile=lambda: seen.append([p.poll() for p in old]))
        assert len(seen) == 1 and None not in seen[0], "meanwhile ran while a stuck pump was alive"
        assert all(c.process not in old and c.process.poll() is None and c.restarts == 1 for c in pumps)
        assert said == ["restarting workers: stalled", "restarting inbox-2: stalled"]
    finally:
        sup.stop()


def test_a_restarted_pump_is_given_the_stall_window_once_it_serves(tmp_path):
    stall, ready = 10, tmp_path / "workers.ready"
    pump = Child(spec=ChildSpec(name="workers", argv=[], env={READY_FILE_ENV: str(ready)}), log=tmp_path / "w.log")
    pump.spawned = time.monotonic() - 5
    assert _starting(pump, stall)  # within the window of its start
    pump.spawned = time.monotonic() - 60
    assert _starting(pump, stall)  # importing for a minute: not serving yet, not stuck
    pump.spawned = time.monotonic() - stall - PUMP_START_SECONDS - 1
    assert not _starting(pump, stall)  # never came to serve: stuck starting
    ready.write_text("1")
    assert _starting(pump, stall)  # serves since a moment
    os.utime(ready, (time.time() - stall - 1,) * 2)
    assert not _starting(pump, stall)  # served the whole window
    bare = Child(spec=ChildSpec(name="inbox-2", argv=[], env={}), log=tmp_path / "p.log")
    bare.spawned = time.monotonic() - stall - 1
    assert not _starting(bare, stall)  # no ready file to look at: its start's window only


def test_a_crash_loop_is_reported_with_the_childs_name_and_log(tmp_path):
    said: list[str] = []
    sup = _supervisor(tmp_path, said)
    crasher = sup.start(
        ChildSpec(
            name="crasher",
            env=dict(os.environ),
            argv=[sys.executable, "-c", "import sys; print('bad config'); sys.exit(3)"],
        )
    )
    try:
        looping = None
        deadline = time.monotonic() + 60
        while looping is None and time.monotonic() < deadline:
            looping = sup.check()
            time.sleep(0.05)
        assert looping is crasher
        assert crasher.restarts == CRASH_LOOP_EXITS - 1 and crasher.state == "stopped"
        # backoff doubles: 0.5, 1, 2, 4 s between the exits
        assert [line.split("restarting it in ")[1].split(" s")[0] for line in said if "restarting" in line] == [
            "0.5",
            "1",
            "2",
            "4",
        ]
        assert "bad config" in crasher.log.read_text()
    finally:
        sup.stop()


def test_status_says_when_up_is_not_running_and_shows_each_child(tmp_path):
    env = {**os.environ, "CHARTERFLOW_HOME": str(tmp_path)}
    result = subprocess.run([CHARTERFLOW, "status"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "charterflow up is not running" in result.stdout
    status = {
        "pid": os.getpid(),
        "started_at": "2026-12-05T01:00:00+00:00",
        "children": [
            {
                "name": "gateway",
                "state": "running",
                "pid": 4242,
                "restarts": 2,
                "last_exit": -9,
                "last_exit_at": "2026-12-05T01:02:00+00:00",
                "log": "/logs/gateway.log",
            }
        ],
    }
    write_status(tmp_path, status)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".status-")], "no temporary file left"
    result = subprocess.run([CHARTERFLOW, "status"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    line = next(x for x in result.stdout.splitlines() if "gateway" in x)
    assert line.split()[:5] == ["gateway", "running", "4242", "2", "-9"] and "/logs/gateway.log" in line
    # A status left by an `up` that is gone is not a running `up`.
    write_status(tmp_path, {**status, "pid": 2**22 + 12345})
    assert running_status(tmp_path) is None
    assert "restarts" in render(status)


def test_a_restarted_sandbox_serves_its_state_again_and_keeps_no_secret_on_disk(tmp_path):
    secrets = {"token": "sbx.token-kept-out-of-the-file-0001", "key": "ab" * 32}
    seed_box = DiscordSandbox(seed={**_discord_seed(), "token": secrets["token"], "private_key": secrets["key"]})
    store = SandboxStore(tmp_path, secrets=secrets.values())
    with LoopbackServer(store.watch("discord", seed_box)) as server:
        connector = seed_box.connect(server.url)
        try:
            sent = connector.post(
                channel=_first_text_channel(seed_box), title="Restart test", text="Kept across a restart"
            )
        finally:
            connector.close()
    data = store.path("discord").read_bytes()
    assert secrets["token"].encode() not in data and bytes.fromhex(secrets["key"]) not in data
    restarted = DiscordSandbox(seed={**_discord_seed(), "token": secrets["token"], "private_key": secrets["key"]})
    assert sent.id not in restarted.messages
    assert SandboxStore(tmp_path, secrets=secrets.values()).restore("discord", restarted)
    assert "Kept across a restart" in restarted.messages[sent.id]["content"]
    assert restarted.token == secrets["token"]  # rebuilt from the seed, not read from disk


def _discord_seed() -> dict:
    return default_seed()


def _first_text_channel(box: DiscordSandbox) -> str:
    return next(c["name"] for c in box.channels.values() if c.get("type") == 0)


def test_the_forum_sandbox_sends_a_webhook_again_until_it_is_taken(tmp_path):
    answers = [503, 200]
    received: list[tuple[str, bytes]] = []

    async def hook(scope, receive, send):
        if scope["type"] != "http":
            return
        body, more = b"", True
        while more:
            message = await receive()
            body, more = body + message.get("body", b""), message.get("more_body", False)
        status = answers.pop(0) if answers else 200
        received.append((dict(scope["headers"]).get(b"x-discourse-event-id", b"").decode(), body))
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    with LoopbackServer(hook) as receiver:
        box = DiscourseSandbox(
            webhook_url=f"{receiver.url}/hooks",
            webhook_secret="hook-secret-for-tests",
            settings={"webhook_retry_delays": [0.3, 0.6]},
        )
        try:
            with LoopbackServer(box.app) as forum:
                httpx.post(f"{forum.url}/_sandbox/webhooks/ping").raise_for_status()
                assert wait_for(lambda: not box.state()["webhook_pending"], 15, step=0.1)
        finally:
            box.close()
    deliveries = box.state()["webhook_deliveries"]
    assert [(d["attempt"], d["status"]) for d in deliveries] == [(1, 503), (2, 200)]
    assert deliveries[0]["retry_in"] == 0.3
    # Discourse's retry is a new emit job: a new WebHookEvent, so a new X-Discourse-Event-Id over
    # the same body (app/jobs/regular/emit_web_hook_event.rb, retry_web_hook).
    assert received[0][1] == received[1][1], "the same event is sent again"
    assert int(received[1][0]) > int(received[0][0]), "under a new event id, as Discourse does"
