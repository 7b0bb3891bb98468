"""Play the full lifecycle once and keep what the checks compare (``Played``); run as
``python -m tests.reliability.play OUT.json [--faults]`` it plays in its own process (the suite
plays the clean baseline that way, beside the faulted run, to halve the wall time)."""

from __future__ import annotations

import dataclasses
import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from flows.serving import without_flow_heartbeats
from ledger import audit
from ledger.models import AuditEntry
from tests.reliability.scenario import Lifecycle, Run
from tests.reliability.world import LogCapture, duplicates, ledger_snapshot, sandbox_snapshot, side_effects, stack


@dataclass
class Played:
    """One played lifecycle: the run, its final ledger and platform states, and what the secret
    scan reads (logs, audit entries, sandbox states) with the secrets configured."""

    run: Run
    ledger: dict[str, list[str]]
    platforms: dict[str, Any]
    effects: dict[str, int]
    duplicates: list[str]
    audit_ok: bool
    secrets: dict[str, str]
    texts: dict[str, str]

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), default=str)

    @classmethod
    def from_json(cls, text: str) -> Played:
        data = json.loads(text)
        return cls(**{**data, "run": Run(**data["run"])})


def play(tmp: Path, *, faults: bool) -> Played:
    capture = LogCapture()
    with capture.installed(), stack(tmp) as s:
        run = Lifecycle(s, faults=faults).play()
        states = s.states()
        with s.world.ledger.read() as session:
            audit_ok = audit.verify(session).ok
            audit_texts = "\n".join(
                f"{e.action} {e.subject} {e.payload_json}" for e in session.scalars(select(AuditEntry))
            )
        snapshot = ledger_snapshot(s.world.ledger)
        secrets = dict(s.secrets)
    return Played(
        run=run,
        ledger=snapshot,
        platforms=sandbox_snapshot(states),
        effects=side_effects(states),
        duplicates=duplicates(states),
        audit_ok=audit_ok,
        secrets=secrets,
        texts={
            "logs": "\n".join(capture.lines),
            "audit entries": audit_texts,
            "sandbox states": json.dumps(states, default=str),
        },
    )


def main() -> None:
    out = Path(sys.argv[1])
    with without_flow_heartbeats():  # as the suite's own process plays (tests/support/prefect.py)
        played = play(Path(tempfile.mkdtemp(prefix="reliability-play-")), faults="--faults" in sys.argv)
    out.write_text(played.to_json())


if __name__ == "__main__":
    main()
