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

SCRIPT = ("import typer; from charterflow.gateway_cli import register; app = typer.Typer(); "
          "register(app); app.command('noop')(lambda: None); app()")


def test_gateway_command_serves_and_stops(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "CHARTERFLOW_"))}
    env.update(CHARTERFLOW_HOME=str(tmp_path), CHARTERFLOW_GATEWAY_DISPATCH="false",
               CHARTERFLOW_DISCOURSE_WEBHOOK_SECRET="whsec_cli_invented")
    charterflow = str(Path(sys.executable).with_name("charterflow"))
    subprocess.run([charterflow, "db", "upgrade"], env=env, check=True, capture_output=True, timeout=120)
    process = subprocess.Popen([sys.executable, "-c", SCRIPT, "gateway", "--host", "127.0.0.1", "--port", "0"],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        deadline = time.monotonic() + 60
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
