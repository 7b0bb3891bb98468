"""Acknowledgement latency of the gateway: 1,000 signed Discourse webhooks, one after another,
to a real uvicorn server in a separate process with the ledger on SQLite.

    .venv/bin/python -m bench.gateway_ack [--count 1000]

Prints p50/p99 (and max) of request-in to response-out as the client sees it over loopback,
and a baseline from the same run: the same number of GETs of the static stylesheet (the HTTP
round trip with no ledger work). Dispatch is off in the server (it runs on its own thread,
outside the acknowledgement path, and would need Prefect). Not part of `make test`.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import uvicorn
from pydantic import SecretStr

from connectors.discourse.inbound import sign_body
from gateway.app import create_app
from gateway.dispatch import StoreOnlyDispatcher
from gateway.settings import GatewaySettings
from ledger.db import Ledger
from ledger.migrate import upgrade

SECRET = "bench-webhook-secret-0123456789"


def serve(port: int, database: str) -> None:
    """The server side (a child process)."""
    ledger = Ledger(database)
    upgrade(ledger)
    settings = GatewaySettings(
        discourse_webhook_secret=SecretStr(SECRET), dispatch=False, discourse_applications_categories="7"
    )
    app = create_app(settings=settings, ledger=ledger, dispatcher=StoreOnlyDispatcher())
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--serve", nargs=2, metavar=("PORT", "DATABASE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(int(args.serve[0]), args.serve[1])
        return

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        database = f"sqlite:///{Path(tmp) / 'ledger.db'}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("CHARTERFLOW_")}
        server = subprocess.Popen([sys.executable, "-m", "bench.gateway_ack", "--serve", str(port), database], env=env)
        base = f"http://127.0.0.1:{port}"
        try:
            with httpx.Client(base_url=base, timeout=10) as client:
                deadline = time.monotonic() + 60
                while True:
                    try:
                        client.get("/static/form.css")
                        break
                    except httpx.HTTPError:
                        if time.monotonic() > deadline:
                            raise SystemExit("the gateway did not start") from None
                        time.sleep(0.2)
                for _ in range(50):  # warm-up
                    client.get("/static/form.css")
                baseline = []
                for _ in range(args.count):
                    started = time.perf_counter()
                    client.get("/static/form.css")
                    baseline.append(time.perf_counter() - started)
                acks = []
                for n in range(1, args.count + 1):
                    body = json.dumps(
                        {
                            "topic": {
                                "id": n,
                                "title": f"Application {n}",
                                "category_id": 7,
                                "created_by": {"username": "bench_user"},
                            }
                        }
                    ).encode()
                    headers = {
                        "Content-Type": "application/json",
                        "X-Discourse-Event": "topic_created",
                        "X-Discourse-Event-Type": "topic",
                        "X-Discourse-Event-Id": str(n),
                        "X-Discourse-Instance": "https://forum.example.org",
                        "X-Discourse-Event-Signature": sign_body(SECRET, body),
                    }
                    started = time.perf_counter()
                    answer = client.post("/hooks/discourse", content=body, headers=headers)
                    acks.append(time.perf_counter() - started)
                    if answer.status_code != 200:
                        raise SystemExit(f"webhook {n} answered {answer.status_code}: {answer.text}")
        finally:
            server.terminate()
            server.wait(timeout=10)

    def line(name: str, values: list[float]) -> str:
        ms = [v * 1000 for v in values]
        return (
            f"{name:<28} n={len(ms):>5}  p50={percentile(ms, 50):6.2f} ms  p99={percentile(ms, 99):6.2f} ms"
            f"  mean={statistics.fmean(ms):6.2f} ms  max={max(ms):7.2f} ms"
        )

    print(f"gateway ack latency, ledger on SQLite, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    print(line("baseline GET /static/form.css", baseline))
    print(line("signed Discourse webhook", acks))
    p99 = percentile([v * 1000 for v in acks], 99)
    print(f"target p99 <= 50 ms: {'met' if p99 <= 50 else 'NOT met'}")


if __name__ == "__main__":
    main()
