"""Which stack a `charterflow` command acts on.

While `charterflow up` runs, it keeps two files under ``CHARTERFLOW_HOME``: ``up.json`` (its pid
and the URLs it serves: readable by anyone who may read the folder) and ``up-env.json`` (mode
0600: the ``CHARTERFLOW_*`` settings and ``PREFECT_API_URL`` its processes were given, among
them the sandboxes' URLs and per-run secrets). A command that acts on the platforms or the
ledger (:data:`STACK_COMMANDS`) started with the same ``CHARTERFLOW_HOME`` takes those settings
over its own, so it reads and changes what the running stack does, and says so in one line on
stderr. ``CHARTERFLOW_USE_UP=0`` turns this off: the command uses its own settings only.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, MutableMapping
from pathlib import Path

STATE_FILE = "up.json"
ENV_FILE = "up-env.json"
USE_UP = "CHARTERFLOW_USE_UP"
# The top-level commands that act on the platforms, the ledger or Prefect.
STACK_COMMANDS = frozenset(
    {
        "roles",
        "moderation",
        "ideas",
        "budget",
        "reports",
        "roster",
        "person",
        "audit",
        "db",
        "inbox",
        "doctor",
        "discord",
        "platforms",
        "demo",
    }
)
LABELS = {"discord": "Discord", "discourse": "Forum (Discourse)", "slack": "Slack"}
# Never taken from the stack: where to look (already the same) and the switch itself.
_NOT_SHARED = frozenset({"CHARTERFLOW_HOME", USE_UP})


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists (ours or not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running(home: Path) -> dict | None:
    """The ``up.json`` of a stack running under ``home``; None when none runs (or it died)."""
    try:
        state = json.loads((home / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(state, dict) or not isinstance(state.get("pid"), int):
        return None
    return state if process_alive(state["pid"]) else None


def shared_env(env: Mapping[str, str]) -> dict[str, str]:
    """What of a process environment the CLI takes over: ``CHARTERFLOW_*`` and ``PREFECT_API_URL``."""
    return {
        k: v
        for k, v in env.items()
        if (k.startswith("CHARTERFLOW_") and k not in _NOT_SHARED) or k == "PREFECT_API_URL"
    }


def write_private(path: Path, text: str) -> None:
    # Written to a 0600 temporary file, then renamed: never readable by others, never half-written.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def record(home: Path, state: Mapping, env: Mapping[str, str]) -> None:
    """Write ``up.json`` (``state``) and ``up-env.json`` (the shared part of ``env``)."""
    home.mkdir(parents=True, exist_ok=True)
    write_private(home / ENV_FILE, json.dumps(shared_env(env)))
    (home / STATE_FILE).write_text(json.dumps(dict(state)))


def forget(home: Path, pid: int) -> None:
    """Remove both files if they are still those of the stack ``pid``."""
    try:
        if json.loads((home / STATE_FILE).read_text()).get("pid") != pid:
            return
    except (OSError, ValueError, AttributeError):
        return
    for name in (STATE_FILE, ENV_FILE):
        (home / name).unlink(missing_ok=True)


def describe(state: Mapping) -> str:
    """One line: which stack, where its platforms are, how to choose another."""
    where = [f"{LABELS.get(p, p)} sandbox {url}" for p, url in sorted((state.get("sandboxes") or {}).items())]
    where += [f"{LABELS.get(p, p)} real" for p in state.get("real") or []]
    parts = ", ".join(where) or "no platform"
    if state.get("api_url"):
        parts += f"; Prefect {state['api_url']}"
    if state.get("ledger"):
        parts += f"; ledger {state['ledger']}"
    return (
        f"using the stack of `charterflow up` ({STATE_FILE}, pid {state['pid']}): {parts}; "
        f"set {USE_UP}=0 to use your own settings"
    )


def use_running(home: Path, *, enabled: bool = True, environ: MutableMapping[str, str] | None = None) -> str | None:
    """Take over the settings of the stack running under ``home`` into ``environ`` (default:
    this process's). Returns the line to show, or None (none runs, or not ``enabled``:
    ``CHARTERFLOW_USE_UP=0``)."""
    environ = os.environ if environ is None else environ
    if not enabled:
        return None
    state = running(home)
    if state is None:
        return None
    try:
        env = json.loads((home / ENV_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return (
            f"warning: `charterflow up` runs (pid {state['pid']}) but {home / ENV_FILE} cannot "
            "be read; using your own settings"
        )
    taken = shared_env({str(k): str(v) for k, v in env.items()})
    # The stack's settings replace this shell's: a variable the stack did not have (another
    # CHARTERFLOW_DATABASE_URL, say) would point the command elsewhere.
    for key in [k for k in shared_env(environ) if k not in taken]:
        del environ[key]
    environ.update(taken)
    return describe(state)
