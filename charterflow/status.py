"""The status file of a running `charterflow up` and `charterflow status`, which prints it.

`up` writes ``<CHARTERFLOW_HOME>/status.json`` each time a child changes state: written to a
temporary file beside it and renamed over it, so a reader never sees half a file. Each child has
its ``state`` (``starting``, ``running``, ``restarting``, ``stopped``), ``pid``, ``restarts``,
``last_exit`` (the exit code; negative: the signal) and ``last_exit_at``, and its log file.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from charterflow.settings import get_settings
from charterflow.stack import process_alive

STATUS_FILE = "status.json"
STATES = ("starting", "running", "restarting", "stopped")


def write_status(home: Path, status: dict[str, Any]) -> None:
    """Replace ``home/status.json`` with ``status`` atomically (temporary file, then rename)."""
    fd, tmp = tempfile.mkstemp(prefix=".status-", suffix=".json", dir=home)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(status, out, indent=1)
        os.replace(tmp, home / STATUS_FILE)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def read_status(home: Path) -> dict[str, Any] | None:
    """The status `up` last wrote, or None when there is none (or it is not readable)."""
    try:
        status = json.loads((home / STATUS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return status if isinstance(status, dict) else None


def running_status(home: Path) -> dict[str, Any] | None:
    """The status of the `up` running for ``home``; None when no `up` runs there."""
    status = read_status(home)
    pid = (status or {}).get("pid")
    if status is None or not (isinstance(pid, int) and pid > 0 and process_alive(pid)):
        return None
    return status


def _ago(stamp: str | None, now: datetime) -> str:
    if not stamp:
        return "-"
    try:
        seconds = (now - datetime.fromisoformat(stamp)).total_seconds()
    except ValueError:
        return stamp
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


def render(status: dict[str, Any], *, now: datetime | None = None) -> str:
    """The table `charterflow status` prints: one line per child."""
    now = now or datetime.now(UTC)
    head = ("child", "state", "pid", "restarts", "last exit", "when", "log")
    rows = [head]
    for child in status.get("children", []):
        code = child.get("last_exit")
        rows.append(
            (
                str(child.get("name", "?")),
                str(child.get("state", "?")),
                str(child.get("pid") or "-"),
                str(child.get("restarts", 0)),
                "-" if code is None else str(code),
                _ago(child.get("last_exit_at"), now),
                str(child.get("log", "")),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(head) - 1)]
    lines = [f"charterflow up (pid {status.get('pid')}) since {status.get('started_at', '?')}"]
    for row in rows:
        lines.append("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1])
    return "\n".join(line.rstrip() for line in lines)


def status_command(*, as_json: bool = False) -> int:
    """`charterflow status`: 0 and the table while `up` runs for this home, else 1 and a line."""
    home = get_settings().home.resolve()
    status = running_status(home)
    if status is None:
        print(f"charterflow up is not running (home {home})")
        return 1
    print(json.dumps(status, indent=1) if as_json else render(status))
    return 0
