"""The sandboxes' state on disk, so that a sandboxes process `up` restarts serves each platform
as it was: a real platform keeps its users, messages and pending webhooks across its own
restarts, and the ledger holds ids (messages, topics, interaction tokens) that must stay valid.

Each sandbox object keeps its state in plain attributes. :class:`SandboxStore` pickles them
(one file per platform, written to a temporary file and renamed over the old one) before the
answer to every request that may change something is sent, and whenever a sandbox reports a
change of its own (a webhook delivery: ``on_change``). Attributes that cannot be pickled (locks,
threads, signing keys), any that hold one of this run's secrets and those a sandbox names in
``state_from_seed`` (large and never changed) are left out: the restarted process gets the same
secrets from `up` and builds those from its seed.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import tempfile
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

Scope = dict[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]], Awaitable[None]]

# Never kept: the object itself, its seed (holds the secrets), its lock, the store's hook.
SKIP = frozenset({"app", "seed", "_lock", "on_change"})
READ_ONLY = frozenset({"GET", "HEAD", "OPTIONS"})


def secret_forms(values: Iterable[str]) -> list[bytes]:
    """The byte strings whose presence in a pickle means a secret would reach the disk."""
    found: list[bytes] = []
    for value in values:
        if not isinstance(value, str) or len(value) < 8:
            continue
        found.append(value.encode("utf-8"))
        with contextlib.suppress(ValueError):
            found.append(bytes.fromhex(value))  # a hex key may be kept as its bytes
    return found


class SandboxStore:
    """Keeps the state of the sandboxes of one `up` run in ``directory``."""

    def __init__(self, directory: Path, *, secrets: Iterable[str]) -> None:
        self.directory = directory
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.secrets = secret_forms(secrets)
        self.left_out: dict[str, set[str]] = {}

    def path(self, name: str) -> Path:
        return self.directory / f"{name}.pickle"

    def _kept(self, name: str, box: Any) -> dict[str, Any]:
        skip = self.left_out.setdefault(name, set()) | set(getattr(box, "state_from_seed", ()))
        return {k: v for k, v in vars(box).items() if k not in SKIP and k not in skip}

    def _discover(self, name: str, box: Any) -> None:
        """Find (once, or when a new attribute fails) what must be left out, one by one."""
        for attr, value in self._kept(name, box).items():
            try:
                data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception:  # noqa: BLE001 - a lock, a thread, a key object: rebuilt from the seed
                self.left_out[name].add(attr)
                continue
            if any(secret in data for secret in self.secrets):
                self.left_out[name].add(attr)

    def save(self, name: str, box: Any) -> None:
        """Write ``box``'s state (under its lock, so it is consistent)."""
        with getattr(box, "_lock", None) or contextlib.nullcontext():
            if name not in self.left_out:
                self._discover(name, box)
            try:
                data = pickle.dumps(self._kept(name, box), protocol=pickle.HIGHEST_PROTOCOL)
            except Exception:  # noqa: BLE001 - something new that does not pickle: look again
                self._discover(name, box)
                data = pickle.dumps(self._kept(name, box), protocol=pickle.HIGHEST_PROTOCOL)
            if any(secret in data for secret in self.secrets):
                self._discover(name, box)
                data = pickle.dumps(self._kept(name, box), protocol=pickle.HIGHEST_PROTOCOL)
        fd, tmp = tempfile.mkstemp(prefix=f".{name}-", dir=self.directory)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(tmp, self.path(name))
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def restore(self, name: str, box: Any) -> bool:
        """Put the saved state back into ``box`` (built from the same seed); False when there
        is none (a first start)."""
        try:
            data = self.path(name).read_bytes()
        except FileNotFoundError:
            return False
        state = pickle.loads(data)  # noqa: S301 - our own file, in this run's home (0700)
        with getattr(box, "_lock", None) or contextlib.nullcontext():
            for attr, value in state.items():
                setattr(box, attr, value)
        return True

    def watch(self, name: str, box: Any) -> ASGIApp:
        """``box.app`` wrapped so that a request that may change state is saved before its
        answer leaves; ``box.on_change`` (when the sandbox has it) saves too."""
        app = box.app
        if hasattr(box, "on_change"):
            box.on_change = lambda: self.save(name, box)

        async def watched(scope: Scope, receive: Any, send: Any) -> None:
            if scope.get("type") != "http" or scope.get("method") in READ_ONLY:
                await app(scope, receive, send)
                return

            async def send_saved(message: dict) -> None:
                if message.get("type") == "http.response.start":
                    self.save(name, box)
                await send(message)

            await app(scope, receive, send_saved)

        return watched
