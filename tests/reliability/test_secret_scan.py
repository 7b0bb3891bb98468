"""No configured secret (bot tokens, API keys, signing and webhook secrets, the confirmation
secret) appears in anything the suite produced: the logs of both lifecycle runs and of every
subprocess (Prefect servers, runners, task workers), Prefect's stored flow-run logs and artifacts,
the ledger's audit entries, and every payload the platform sandboxes received and keep.

Runs last in the folder (file order), after the other tests added their evidence; run alone it
scans the lifecycle runs' evidence only.
"""

from __future__ import annotations

import json
import time

import httpx
import pytest
from prefect.settings import PREFECT_API_URL

pytestmark = [pytest.mark.reliability, pytest.mark.slow]


def _prefect_records(api: str, kind: str) -> list[dict]:
    records: list[dict] = []
    while True:
        page = httpx.post(f"{api}/{kind}/filter", timeout=60, json={"limit": 200, "offset": len(records)}).json()
        records += page
        if len(page) < 200:
            return records


def test_no_secret_in_logs_artifacts_audit_or_payloads(lifecycle_runs, evidence, prefect_server, request):

    # The suite's bound (10 minutes) is reported in the run's closing summary, not asserted: the
    # shared machine's noise would make a timed assertion flaky.
    request.node.user_properties.append(
        (
            "measure:reliability",
            f"reliability suite: {time.monotonic() - evidence.started:.0f} s "
            "from its first fixture to the secret scan (bound 600 s)",
        )
    )

    api = str(PREFECT_API_URL.value()).rstrip("/")
    logs = _prefect_records(api, "logs")
    artifacts = _prefect_records(api, "artifacts")
    evidence.add_text("Prefect flow-run logs", "\n".join(str(r.get("message")) for r in logs))
    evidence.add_text("Prefect artifacts", json.dumps(artifacts, default=str))

    secrets = {name: value for name, value in evidence.secrets.items() if len(value) >= 8}
    assert len(set(secrets.values())) >= 14, sorted(secrets)  # seven per lifecycle run at least
    assert artifacts and logs, "Prefect stored no artifacts or logs: nothing was scanned there"
    size = sum(len(t) for t in evidence.texts.values())
    request.node.user_properties.append(
        (
            "measure:scan",
            f"scanned {size / 1e6:.1f} MB from {len(evidence.texts)} sources "
            f"({len(logs)} Prefect log records, {len(artifacts)} artifacts) for "
            f"{len(set(secrets.values()))} secret values",
        )
    )
    found = [
        f"{name} in {origin}"
        for origin, text in evidence.texts.items()
        for name, value in secrets.items()
        if value in text
    ]
    assert found == []
