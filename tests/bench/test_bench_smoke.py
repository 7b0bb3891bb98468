"""The benchmark scripts run end to end in a tiny configuration (the shape of what they write,
never their timings), and the library changes the benchmarks led to."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench import flow_runs, idle, ratelimit, scale
from bench.common import ServedSandbox
from bench.intake import (
    GatewaySender,
    _dispatch_metrics,
    bucket_percentile,
    cpu_seconds,
    gateway_ack_buckets,
    main,
    prefect_busy,
    snowflake_time,
)
from connectors.discord.interactions import InteractionVerifier
from connectors.errors import InvalidSignature
from connectors.sandboxkit import read_body
from tests.support.net import LoopbackServer


def _load(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())  # strict JSON: a figure not measured is null, not NaN
    assert data["machine"]["cpus"] >= 1
    for row in data["table"]:
        assert set(row) == {"figure", "value", "target", "met", "baseline"}
    return data


def test_ratelimit_bench_in_a_tiny_configuration(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ratelimit.json"
    ratelimit.main(
        [
            "--discord-changes",
            "40",
            "--discourse-changes",
            "10",
            "--discord-scale",
            "0.005",
            "--discourse-scale",
            "0.01",
            "--out",
            str(out),
        ]
    )
    data = _load(out)
    for client in ("ours", "naive"):
        for platform, planned in (("discord", 40), ("discourse", 10)):
            figures = data[client][platform]
            assert figures["changes_planned"] == planned
            assert figures["changes_applied"] == planned
            assert figures["failed_changes"] == 0 and figures["duplicate_changes"] == 0
            assert figures["efficiency"] >= 0  # 0 when every request fits in the first window
            assert figures["429_total"] >= figures["429_max_per_window"] >= 0
    assert data["ours"]["discord"]["requests"]["role_changes"] == 40  # one request per change
    assert data["ours"]["discourse"]["requests"]["group_changes"] == 10
    printed = capsys.readouterr().out
    assert "efficiency" in printed and "baseline" in printed


def test_flow_runs_bench_in_a_tiny_configuration(prefect_server) -> None:
    seconds = flow_runs.measure(1)
    assert {kind: len(runs) for kind, runs in seconds.items()} == {"default": 1, "off": 1}
    assert all(s > 0 for runs in seconds.values() for s in runs)
    [row] = flow_runs.rows(seconds)
    assert row.value.endswith(" s") and "Prefect's default heartbeats" in row.baseline


def test_scale_bench_in_a_tiny_configuration(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    scale.main(["--size", "0.0005", "--skip-postgres", "--out", str(out)])
    data = _load(out)
    cases = data["cases"]
    assert set(cases) == {"eligibility", "tally", "roster_plan", "audit_verify_sqlite"}
    assert data["skipped"] == {"audit_verify_postgresql": "--skip-postgres"}
    for case in cases.values():
        for size in ("full", "tenth"):
            assert case[size]["seconds"] >= 0 and case[size]["peak_mib"] > 0
    assert cases["audit_verify_sqlite"]["full"]["detail"] == {"entries": 500}
    assert cases["eligibility"]["full"]["detail"]["decisions"] == 25
    assert cases["roster_plan"]["full"]["detail"]["allowed"] is True


def test_intake_reads_snowflake_times_and_the_gateways_dispatch_counters() -> None:
    # Discord's documented example: 175928847299117063 was made at 2016-04-30 11:18:25.796 UTC.
    assert abs(snowflake_time("175928847299117063") - 1462015105.796) < 1e-6
    text = "\n".join(
        [
            "# HELP charterflow_gateway_dispatches_total Dispatch attempts by outcome",
            'charterflow_gateway_dispatches_total{outcome="started"} 12.0',
            'charterflow_gateway_dispatches_created{outcome="started"} 1.7e9',
            'charterflow_gateway_dispatch_latency_seconds_bucket{le="0.1"} 3.0',
            "charterflow_gateway_dispatch_latency_seconds_sum 0.5",
        ]
    )
    assert _dispatch_metrics(text) == {
        'charterflow_gateway_dispatches_total{outcome="started"}': 12.0,
        "charterflow_gateway_dispatch_latency_seconds_sum": 0.5,
    }


def test_intake_sends_what_the_sandbox_signed_from_its_own_thread_and_hands_the_answer_back() -> None:
    # A stand-in for the gateway: verifies as the gateway does and defers each command.
    received: list[str] = []

    async def gateway(scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = await read_body(receive)
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        try:
            event = verifier.verify(headers=headers, body=body)
            status, answer = 200, {"type": 1} if event.kind == "ping" else {"type": 5}
        except InvalidSignature as exc:
            status, answer = exc.status, {"error": str(exc)}
        received.append(scope["path"])
        start = {"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]}
        await send(start)
        await send({"type": "http.response.body", "body": json.dumps(answer).encode()})

    with ServedSandbox("discord", bench_deliver=True) as discord, LoopbackServer(gateway) as server:
        verifier = InteractionVerifier(public_key=discord.info["env"]["CHARTERFLOW_DISCORD_PUBLIC_KEY"])
        sender = GatewaySender(server.url + "/hooks/discord")
        ask = {"kind": "idea", "user": "cleo_marsh", "options": {"text": "a reading group"}}
        ready = discord.http.post("/_bench/prepare", json=ask).json()
        status, raw, elapsed = sender.post(ready["body"].encode(), ready["headers"])
        assert (status, json.loads(raw)) == (200, {"type": 5}) and 0 < elapsed < 10
        connection = sender._local.conn
        # Signed by the sandbox, so a body changed on the way is refused; same kept-alive connection.
        status, raw, _ = sender.post(ready["body"].replace("reading", "writing").encode(), ready["headers"])
        assert status == 401 and sender._local.conn is connection and received == ["/hooks/discord"] * 2
        # The answer goes back to the sandbox, which applies it once, as Discord does.
        answer = {"token": ready["token"], "answer": {"type": 5}}
        before = discord.state()["messages"]
        assert discord.http.post("/_bench/answer", json=answer).json() == {"error": None}
        assert discord.http.post("/_bench/answer", json=answer).json() == {
            "error": "Interaction has already been acknowledged."
        }
        after = discord.state()["messages"]  # the "thinking…" message, once
        assert len(after) == len(before) + 1 and after[-1]["content"] == ""


def test_intake_reads_the_gateways_own_ack_histogram_for_the_discord_hook() -> None:
    text = "\n".join(
        [
            'charterflow_gateway_ack_seconds_bucket{le="0.005",route="/hooks/discord"} 50.0',
            'charterflow_gateway_ack_seconds_bucket{le="0.025",route="/hooks/discord"} 98.0',
            'charterflow_gateway_ack_seconds_bucket{le="0.05",route="/hooks/discord"} 99.0',
            'charterflow_gateway_ack_seconds_bucket{le="+Inf",route="/hooks/discord"} 100.0',
            'charterflow_gateway_ack_seconds_bucket{le="0.005",route="/healthz"} 7.0',
            'charterflow_gateway_ack_seconds_count{route="/hooks/discord"} 100.0',
        ]
    )
    buckets = gateway_ack_buckets(text)
    assert buckets == {0.005: 50.0, 0.025: 98.0, 0.05: 99.0, float("inf"): 100.0}
    assert bucket_percentile(buckets, 50) == 0.005 and bucket_percentile(buckets, 99) == 0.05
    assert bucket_percentile(buckets, 99.5) == float("inf") and bucket_percentile({}, 99) is None


def test_intake_counts_the_requests_prefect_answered_503_by_the_write_that_failed(tmp_path: Path) -> None:
    log = tmp_path / "prefect-server.log"
    busy = "\n".join(
        [
            "02:13:45.150 | ERROR   | prefect.server - Encountered retryable exception in request:",
            "Traceback (most recent call last):",
            "sqlalchemy.exc.OperationalError: (sqlite3.OperationalError) database is locked",
            "[SQL: INSERT INTO task_run (flow_run_id, task_key, dynamic_key) "
            "VALUES (:flow_run_id, :task_key, :dynamic_key)]",
            "[parameters: {'flow_run_id': None, 'task_key': 'inbox-dispatch-0', 'dynamic_key': 'inbox-1-1'}]",
        ]
    )
    other = busy.replace(
        "INSERT INTO task_run (flow_run_id, task_key, dynamic_key) VALUES (:flow_run_id, :task_key, :dynamic_key)",
        "UPDATE concurrency_limit_v2 SET active_slots=(active_slots + :slots)",
    )
    log.write_text(
        "\n".join(
            [
                "Configure Prefect to communicate with the server",
                busy,
                busy,
                other,
                "02:13:46.000 | INFO    | prefect.server - all good",
            ]
        )
    )
    assert prefect_busy(log) == {"INSERT task_run": 2, "UPDATE concurrency_limit_v2": 1}
    assert prefect_busy(tmp_path / "missing.log") == {}
    with pytest.raises(SystemExit):  # --env takes NAME=VALUE
        main(["--env", "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE"])


def test_intake_counts_the_cpu_of_the_processes_of_one_up_by_part(tmp_path: Path) -> None:
    home = tmp_path / "home"
    spin = (
        "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass\n"
        "print('spun', flush=True)\ntime.sleep(60)"
    )
    # One process of this `up` (a gateway, by its command line) and one of another `up`.
    started = [
        subprocess.Popen(
            [sys.executable, "-c", spin, "gateway"], stdout=subprocess.PIPE, env={"CHARTERFLOW_HOME": str(where)}
        )
        for where in (home, tmp_path / "other")
    ]
    try:
        for process in started:
            assert process.stdout is not None and process.stdout.readline() == b"spun\n"
        used = cpu_seconds(home, None)
    finally:
        for process in started:
            process.kill()
            process.wait()
    assert set(used) == {"gateway"}
    assert 0.25 <= used["gateway"] < 0.55  # the one process that spun 0.3 s, not both


def test_intake_counts_the_flow_run_processes_the_workers_started_and_reaped_apart(tmp_path: Path) -> None:
    home = tmp_path / "home"
    spin = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass\n"
    # A workers process (by its command line) whose child, a flow run's process, spun and ended.
    workers = (
        f"import subprocess, sys, time\nsubprocess.run([sys.executable, '-c', {spin!r}], check=True)\n"
        "print('reaped', flush=True)\ntime.sleep(60)"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", workers, "charterflow.workers both"],
        stdout=subprocess.PIPE,
        env={"CHARTERFLOW_HOME": str(home)},
    )
    try:
        assert process.stdout is not None and process.stdout.readline() == b"reaped\n"
        used = cpu_seconds(home, None)
    finally:
        process.kill()
        process.wait()
    assert set(used) == {"workers", "flow-runs"}
    assert 0.25 <= used["flow-runs"] < 0.55 and used["workers"] < 0.25  # the child's, not the parent's


def test_idle_bench_table_compares_the_inline_runs_with_a_process_per_run() -> None:
    variants = {
        label: {"cpu_s_per_minute": {"workers": w, "flow-runs": f}, "total": w + f, "runs": runs, "seconds": 240.0}
        for (label, _), w, f, runs in zip(
            idle.VARIANTS, (1.5, 0.6), (0.0, 4.2), ({"commons-poll": 4}, {"commons-poll": 4}), strict=True
        )
    }
    rows = {row.figure: row for row in idle.rows({"variants": variants})}
    total = rows["idle stack: CPU s per minute"]
    assert (total.value, total.baseline) == ("1.50 s", "a process per run: 4.80 s")
    assert rows["  of it: flow run processes"].baseline == "4.20 s"
    assert rows["flow runs ended, a process per run"].value == "commons-poll 4"
