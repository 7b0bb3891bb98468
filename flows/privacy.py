"""R-PRIVACY-3: what the orchestration layer (Prefect) holds about a person, and its redaction.

The flows keep personal data out of Prefect by construction: run names and parameters carry
ledger ids (``intake-inbox-42``, ``leave-person-17``), and nothing is logged but ids and
outcomes. Artifacts are views for operators and may show a handle or an eligibility figure;
when a person is erased (``charterflow person erase``, R-PRIVACY-2) every stored record that
still contains one of their strings is rewritten through Prefect's REST API:

- artifacts (every version, and so the latest of each key): ``PATCH /artifacts/{id}`` with the
  redacted ``data`` and ``description`` (Prefect 3 keeps the key's collection in step);
- flow runs: ``PATCH /flow_runs/{id}`` with the redacted ``name`` and ``parameters`` (a run an
  operator started by hand with a handle as a parameter);
- task runs: ``PATCH /task_runs/{id}`` with the redacted ``name``.

Prefect's API cannot change log records or events. Nothing personal is logged, and artifacts are
written by :func:`publish_artifact` so that the event Prefect's server records for a keyed
artifact holds ids only. :func:`find` searches all of these, events included.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any

import httpx

__all__ = ["Redactor", "find", "publish_artifact", "redact"]

PAGE = 200


def publish_artifact(*, key: str | None, kind: str, content: Any, description: str) -> None:
    """Create a ``markdown`` or ``table`` artifact on the current run, keyed unless ``key`` is None.

    Prefect's server copies a keyed artifact's data into an "artifact created" event, and events
    cannot be changed afterwards, so an erasure could not reach it. A keyed artifact is therefore
    created holding its description only (ids), then its content is written with a plain
    ``PATCH /artifacts/{id}``, which emits no event. An artifact without a key has no collection
    and so no event: it is created with its content in one request (the inbox's per-event
    artifacts: one request less per event). ``description`` must carry ids only.
    """
    # lazy: start-up: Prefect, which the CLI's redaction and the kit's CLI users do not load
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import ArtifactCreate
    from prefect.utilities.context import get_task_and_flow_run_ids

    task_run_id, flow_run_id = get_task_and_flow_run_ids()
    data = content if kind == "markdown" else json.dumps(content, default=str)
    placeholder = f"*{description}*" if kind == "markdown" else "[]"
    with get_client(sync_client=True) as client:
        created = client.create_artifact(
            ArtifactCreate(
                key=key,
                type=kind,
                description=description,
                data=placeholder if key else data,
                flow_run_id=flow_run_id,
                task_run_id=task_run_id,
            )
        )
        if key:
            client.request("PATCH", "/artifacts/{id}", path_params={"id": created.id}, json={"data": data})


class Redactor:
    """Replaces each of ``values`` (case-insensitive; with ``whole_words``, not inside a longer
    word) by ``replacement`` in strings and in JSON-like data, also where a value appears
    JSON-escaped (a table artifact's data is a JSON string)."""

    def __init__(self, values: Iterable[str], *, replacement: str, whole_words: bool = True) -> None:
        self.replacement = replacement
        forms: set[str] = set()
        for value in values:
            forms.add(value)
            forms.add(json.dumps(value)[1:-1])  # as it reads inside a JSON string
        # A handle inside another word ("quinn" in "quinnette") is left alone; "intake-quinn" is not.
        edge = r"(?<![A-Za-z0-9]){}(?![A-Za-z0-9])" if whole_words else "{}"
        parts = [edge.format(re.escape(f)) for f in sorted(forms, key=len, reverse=True) if f]
        self.pattern = re.compile("|".join(parts), re.IGNORECASE) if parts else None

    def text(self, value: str) -> str:
        return self.pattern.sub(self.replacement, value) if self.pattern else value

    def data(self, value: Any) -> Any:
        """``value`` with every string inside it redacted (keys included)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.data(v) for v in value]
        if isinstance(value, dict):
            return {self.text(str(k)): self.data(v) for k, v in value.items()}
        return value

    def hits(self, value: Any) -> bool:
        return self.where(value) is not None

    def where(self, value: Any) -> str | None:
        """The text around the first match in ``value``, or None."""
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        match = self.pattern.search(text) if self.pattern else None
        return text[max(0, match.start() - 120) : match.end() + 40] if match else None


def _records(http: httpx.Client, kind: str) -> Iterator[dict[str, Any]]:
    offset = 0
    while True:
        response = http.post(f"{kind}/filter", json={"limit": PAGE, "offset": offset})
        response.raise_for_status()
        page = response.json()
        yield from page
        if len(page) < PAGE:
            return
        offset += PAGE


def _patch(http: httpx.Client, path: str, body: dict[str, Any]) -> None:
    response = http.patch(path, json=body)
    if response.status_code != 404:  # deleted meanwhile: nothing left to redact
        response.raise_for_status()


def redact(http: httpx.Client, values: Iterable[str], *, replacement: str) -> dict[str, int]:
    """Rewrite every Prefect artifact, flow run and task run that contains one of ``values``;
    returns how many of each were changed. ``http``: a client on the Prefect API (its
    ``base_url`` ends with ``/api/``). Safe to run again: a second pass changes nothing."""
    redactor = Redactor(values, replacement=replacement)
    changed = {"artifacts": 0, "flow_runs": 0, "task_runs": 0}
    for kind, fields in (
        ("artifacts", ("data", "description")),
        ("flow_runs", ("name", "parameters")),
        ("task_runs", ("name",)),
    ):
        for record in _records(http, kind):
            before = {f: record.get(f) for f in fields}
            after = redactor.data(before)
            if after != before:
                _patch(http, f"{kind}/{record['id']}", after)
                changed[kind] += 1
    return changed


RECORDS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "flow_runs": lambda r: {k: r.get(k) for k in ("name", "parameters", "state", "tags", "labels")},
    "task_runs": lambda r: {k: r.get(k) for k in ("name", "task_inputs", "state", "tags", "labels")},
    "logs": lambda r: {"name": r.get("name"), "message": r.get("message")},
    "artifacts": lambda r: {k: r.get(k) for k in ("key", "data", "description", "metadata_")},
}
"""What of each kind of Prefect record is searched: everything a person could read there."""


def _events(http: httpx.Client, since: datetime | None) -> Iterator[dict[str, Any]]:
    """Prefect's events (state changes name their runs); Prefect keeps them for a retention
    period and offers no way to change them, so the run names must be right from the start."""
    start = (since or datetime(2000, 1, 1)).isoformat()
    response = http.post("events/filter", json={"filter": {"occurred": {"since": start}}, "limit": 50})
    while True:
        response.raise_for_status()
        page = response.json()
        yield from page.get("events") or []
        if not page.get("next_page"):
            return
        response = http.get(page["next_page"])


def find(
    http: httpx.Client,
    values: Iterable[str],
    *,
    kinds: Iterable[str] = (*RECORDS, "events"),
    since: datetime | None = None,
) -> list[str]:
    """Where ``values`` still appear in Prefect (``<kind> <id>: <fields>``), anywhere in a field,
    whole word or not; ``since``: only records created from then on."""
    redactor = Redactor(values, replacement="", whole_words=False)
    found = []
    for kind in kinds:
        if kind == "events":
            records: Iterable[dict[str, Any]] = _events(http, since)
        else:
            records = (
                r
                for r in _records(http, kind)
                if since is None or datetime.fromisoformat(r.get("created") or r["timestamp"]) >= since
            )
        for record in records:
            context = redactor.where(RECORDS[kind](record) if kind in RECORDS else record)
            if context is not None:
                found.append(f"{kind} {record.get('id')}: …{context}…")
    return found
