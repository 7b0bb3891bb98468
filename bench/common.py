"""What the benchmark scripts share: percentiles, the results file, the table, and sandboxes
served by uvicorn in a child process (so the server's CPU is not the client's).

    .venv/bin/python -m bench.common serve KIND OPTIONS_JSON

is the child side: it builds the sandbox (``discord``/``discourse``/``slack``) with the options,
serves it on a free 127.0.0.1 port and prints one JSON line (``url`` and ``client_info``).
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from connectors.sandboxkit import read_body

RESULTS = Path(__file__).resolve().parent / "results"


def percentile(values: Sequence[float], p: float) -> float:
    """The nearest-rank ``p``-th percentile (``nan`` for no values)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def median(values: Sequence[float]) -> float:
    """The median (``nan`` for no values)."""
    return statistics.median(values) if values else math.nan


def machine() -> dict[str, Any]:
    """Where the figures were measured."""
    return {
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def write_results(name: str, data: dict[str, Any], *, out: Path | None = None) -> Path:
    """``bench/results/<name>.json`` (or ``out``), with the machine added."""
    path = out or RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_plain({"bench": name, "machine": machine(), **data}), indent=2, default=str) + "\n")
    return path


def _plain(value: Any) -> Any:
    """``value`` with NaN (a figure that could not be measured) as null: strict JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


@dataclass
class Row:
    """One line of a table: a figure, its target (with whether it is met) and its baseline."""

    figure: str
    value: str
    target: str = ""
    met: bool | None = None
    baseline: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "figure": self.figure,
            "value": self.value,
            "target": self.target,
            "met": self.met,
            "baseline": self.baseline,
        }


def table(title: str, rows: Sequence[Row]) -> str:
    """A plain-text table: figure | value | target | met | baseline (same run)."""
    head = ("figure", "value", "target", "met", "baseline (same run)")
    cells = [
        (r.figure, r.value, r.target, "" if r.met is None else ("yes" if r.met else "NO"), r.baseline) for r in rows
    ]
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(head)]
    line = "  ".join("-" * w for w in widths)
    out = [title, line, "  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)).rstrip(), line]
    out += ["  ".join(c.ljust(w) for c, w in zip(cell, widths, strict=True)).rstrip() for cell in cells]
    out.append(line)
    return "\n".join(out)


def clean_env() -> dict[str, str]:
    """The environment for children: no CHARTERFLOW_* settings and no proxies (loopback only)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("CHARTERFLOW_") and k.lower() not in ("http_proxy", "https_proxy", "all_proxy")
    }
    env["NO_PROXY"] = "127.0.0.1,localhost"
    return env


class ServedSandbox:
    """A sandbox served by uvicorn in a child process: ``url``, ``info`` (its ``client_info``),
    ``state()``, ``faults(...)``; ``close()`` stops it."""

    def __init__(self, kind: str, **options: Any) -> None:
        self.kind = kind
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.common", "serve", kind, json.dumps(options)],
            stdout=subprocess.PIPE,
            env=clean_env(),
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            self.process.wait(timeout=10)
            raise SystemExit(f"the {kind} sandbox did not start (exit {self.process.returncode})")
        ready = json.loads(line)
        self.url: str = ready["url"]
        self.info: dict[str, Any] = ready["client_info"]
        self.http = httpx.Client(base_url=self.url, timeout=60)

    def state(self) -> dict[str, Any]:
        """``GET /_sandbox/state``."""
        return self.http.get("/_sandbox/state").json()

    def faults(self, **faults: Any) -> None:
        """``POST /_sandbox/faults``."""
        self.http.post("/_sandbox/faults", json=faults).raise_for_status()

    def close(self) -> None:
        """Stop the child."""
        self.http.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def __enter__(self) -> ServedSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Deliverer:
    """The Discord sandbox plus ``POST /_bench/deliver`` {url, kind, user, options}: build and sign
    an interaction as the sandbox does, POST it to ``url`` over one kept-alive connection (as
    Discord's edge would; the sandbox's own delivery opens a new client each time, whose set-up
    would be timed too), apply the answer like Discord, and say how long the answer took. Or, so
    that the timed request leaves this process's event loop (which also answers the workers' API
    calls) out of the figure, ``POST /_bench/prepare`` and ``POST /_bench/answer`` around a send
    made elsewhere."""

    def __init__(self, box: Any) -> None:
        self.box = box
        self.client: httpx.AsyncClient | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope.get("path") if scope.get("type") == "http" else None
        if path not in {"/_bench/deliver", "/_bench/prepare", "/_bench/answer"}:
            await self.box.app(scope, receive, send)
            return

        ask = json.loads(await read_body(receive))
        if path == "/_bench/prepare":
            out = json.dumps(self.prepare(ask))
        elif path == "/_bench/answer":
            with self.box._lock:
                out = json.dumps(
                    {"error": self.box._apply_callback(self.box.interactions[ask["token"]], ask["answer"])}
                )
        else:
            out = await self.deliver(ask)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": out.encode()})

    def prepare(self, ask: dict[str, Any]) -> dict[str, Any]:
        """``POST /_bench/prepare``: an interaction built and signed for another process to send
        (``bench.intake.GatewaySender``) and answer through ``POST /_bench/answer`` {token, answer}."""
        box = self.box
        with box._lock:
            interaction = box._interaction_payload(
                ask["kind"], box._user_by_name(ask["user"]), {"options": ask.get("options")}
            )
        raw = json.dumps(interaction, separators=(",", ":"))
        return {
            "interaction_id": interaction["id"],
            "token": interaction["token"],
            "body": raw,
            "headers": {**box.sign(raw.encode()), "Content-Type": "application/json"},
        }

    async def deliver(self, ask: dict[str, Any]) -> str:
        """``POST /_bench/deliver``: build, sign, send and time it here, in the sandbox's loop."""
        box = self.box
        user = box._user_by_name(ask["user"])
        with box._lock:
            interaction = box._interaction_payload(ask["kind"], user, {"options": ask.get("options")})
        raw = json.dumps(interaction, separators=(",", ":")).encode()
        headers = {**box.sign(raw), "Content-Type": "application/json"}
        if self.client is None:
            self.client = httpx.AsyncClient(timeout=10)
        started = time.perf_counter()
        error = None
        try:
            response = await self.client.post(ask["url"], content=raw, headers=headers)
            elapsed = time.perf_counter() - started
            status, answer = response.status_code, response.json()
            with box._lock:
                error = box._apply_callback(box.interactions[interaction["token"]], answer)
        except (httpx.HTTPError, ValueError) as exc:
            elapsed, status, answer, error = time.perf_counter() - started, 0, None, type(exc).__name__
        return json.dumps(
            {
                "interaction_id": interaction["id"],
                "status": status,
                "response": answer,
                "elapsed": elapsed,
                "error": error,
                "failed": error is not None or status != 200,
            }
        )


def _serve(kind: str, options: dict[str, Any]) -> None:
    if kind == "discord":
        # lazy: start-up: only the sandbox this process serves (the three take seconds to load)
        from connectors.discord.sandbox import DiscordSandbox as Box
    elif kind == "discourse":
        # lazy: start-up: only the sandbox this process serves (the three take seconds to load)
        from connectors.discourse.sandbox import DiscourseSandbox as Box  # type: ignore[assignment]  # one name, three classes
    elif kind == "slack":
        # lazy: start-up: only the sandbox this process serves (the three take seconds to load)
        from connectors.slack.sandbox import SlackSandbox as Box  # type: ignore[assignment]  # one name, three classes
    else:
        raise SystemExit(f"unknown sandbox kind {kind!r}")
    deliver = bool(options.pop("bench_deliver", False))
    box = Box(**options)
    app = _Deliverer(box) if deliver else box.app
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets whose proto is TCP, and
    # without it every response may wait for a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)  # connections made before uvicorn starts wait in the backlog
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    logging.getLogger("uvicorn.error").setLevel(logging.CRITICAL)
    server = uvicorn.Server(uvicorn.Config(app, log_level="critical", access_log=False, lifespan="off"))
    print(json.dumps({"url": url, "client_info": box.client_info(url)}), flush=True)
    server.run(sockets=[sock])


def wait_until(check: Any, *, timeout: float, interval: float = 0.05) -> bool:
    """Poll ``check()`` until it is true or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return bool(check())


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "serve":
        _serve(sys.argv[2], json.loads(sys.argv[3]))
    else:
        raise SystemExit("usage: python -m bench.common serve KIND OPTIONS_JSON")
