"""`charterflow gateway` (registered on a fresh Typer app, as cli.py will): starts, prints the
form URL, serves /healthz, stops on Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from sqlalchemy import select

from ledger import repo
from ledger.models import AuditEntry, InboxEvent

SCRIPT = (
    "import typer; from charterflow.gateway_cli import app as group; app = typer.Typer(); "
    "app.add_typer(group); app.command('noop')(lambda: None); app()"
)


def test_gateway_command_serves_and_stops(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "CHARTERFLOW_"))}
    env.update(
        CHARTERFLOW_HOME=str(tmp_path),
        CHARTERFLOW_GATEWAY_DISPATCH="false",
        CHARTERFLOW_DISCOURSE_WEBHOOK_SECRET="whsec_cli_invented",
    )
    charterflow = str(Path(sys.executable).with_name("charterflow"))
    subprocess.run([charterflow, "db", "upgrade"], env=env, check=True, capture_output=True, timeout=120)
    process = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, "gateway", "--host", "127.0.0.1", "--port", "0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines = []
        deadline = time.monotonic() + 120  # start-up on a loaded 2-core machine
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            lines.append(line)
            if "Health" in line:
                break
        text = "".join(lines)
        url = next(word for word in text.split() if word.endswith("/healthz"))
        assert "/apply" in text
        health = httpx.get(url, timeout=10)
        assert health.status_code == 200 and health.json()["connectors"]["discourse"] == "configured"
        assert "whsec_cli_invented" not in text + health.text
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=15) == 0


def test_inbox_list_and_retry(tmp_path, ledger):
    """`charterflow inbox list` shows what is not handled; `retry` gives an event a new attempt
    (a new run), refuses a processed or unknown one with one line, and is audited."""
    with ledger.transaction() as session:
        waiting, _ = repo.inbox_put(
            session,
            dedupe_key="discourse:cli:1",
            source="discourse",
            kind="topic_created",
            payload={"data": {}},
            route="unknown",
        )
        done, _ = repo.inbox_put(
            session, dedupe_key="discourse:cli:2", source="discourse", kind="ping", payload={"data": {}}, route="ping"
        )
        repo.inbox_mark_processed(session, done, actor="test", result_ref="pong")
        waiting_id, done_id = waiting.id, done.id
        repo.inbox_claim(session, waiting_id, actor="gateway")  # dispatched once, never handled
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "CHARTERFLOW_"))}
    env.update(CHARTERFLOW_HOME=str(tmp_path), CHARTERFLOW_DATABASE_URL=str(ledger.engine.url))
    charterflow = str(Path(sys.executable).with_name("charterflow"))

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([charterflow, "inbox", *args], env=env, capture_output=True, text=True, timeout=120)

    listed = run("list")
    assert listed.returncode == 0, listed.stderr
    assert f"{waiting_id:>6}" in listed.stdout and "dispatched" in listed.stdout and "1 unprocessed" in listed.stdout
    retried = run("retry", str(waiting_id))
    assert retried.returncode == 0 and "attempt 2" in retried.stdout, retried.stderr
    for bad, why in ((str(done_id), "already processed"), ("999", "does not exist")):
        refused = run("retry", bad)
        assert refused.returncode == 2 and refused.stderr.startswith("error:") and why in refused.stderr
    with ledger.read() as session:
        event = session.get(InboxEvent, waiting_id)
        assert (event.dispatch_attempts, event.dispatched_at, event.dispatch_note) == (2, None, None)
        assert (
            session.scalar(
                select(AuditEntry.action)
                .where(AuditEntry.subject == f"inbox:{waiting_id}")
                .order_by(AuditEntry.seq.desc())
                .limit(1)
            )
            == "inbox.retry"
        )
