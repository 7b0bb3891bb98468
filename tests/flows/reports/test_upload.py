"""The Discourse upload the report's charts go through: ``DiscourseConnector.upload`` against the
sandbox's ``POST /uploads.json``, answering as the official OpenAPI document says."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import jsonschema
import pytest

from connectors.discourse.connector import DiscourseConnector
from connectors.errors import RetriableError
from flows.reports.charts import render_charts
from rules.reports import Quarter
from tests.support.net import LoopbackServer

SPEC = Path(__file__).resolve().parents[2] / "data" / "discourse-openapi.json"


def test_upload_answers_as_the_spec_says_and_once_per_content():
    facts = {
        "quarter": "2025Q2",
        "months": list(Quarter.parse("2025Q2").months),
        "membership_series": [{"at": "2025-06-01", "active": 3}],
        "moderation": [],
        "ideas_flow": [{"month": m, "in": 1, "out": 0} for m in Quarter.parse("2025Q2").months],
    }
    png = render_charts(facts)["ideas"]
    sandbox = DiscourseConnector.sandbox()
    with LoopbackServer(sandbox.app) as server:
        forum = sandbox.connect(server.url)
        first = forum.upload(filename="ocwg report 2025Q2 ideas.png", content=png)
        again = forum.upload(filename="ocwg report 2025Q2 ideas.png", content=png)
        with pytest.raises(ValueError, match="needs content"):
            forum.upload(filename="empty.png", content=b"")
        missing = httpx.post(
            f"{server.url}/uploads.json",
            data={"upload_type": "composer"},
            files={"other": ("x.txt", b"x")},
            headers={"Api-Key": sandbox.api_key, "Api-Username": "system"},
        )
        state = httpx.get(f"{server.url}/_sandbox/state", timeout=10).json()
        forum.close()
    spec = json.loads(SPEC.read_text())
    schema = spec["paths"]["/uploads.json"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    jsonschema.validate(first, schema)
    assert first["id"] == again["id"] and len(state["uploads"]) == 1
    assert first["original_filename"] == "ocwg-report-2025Q2-ideas.png"
    assert first["filesize"] == len(png) and first["width"] == 700 and first["height"] == 320
    assert first["short_url"].startswith("upload://") and first["short_url"].endswith(".png")
    assert missing.status_code == 422 and "file" in missing.json()["errors"][0]


def test_upload_failures_name_the_file_and_a_retry_sends_it_once():
    sandbox = DiscourseConnector.sandbox()
    png = b"\x89PNG\r\n\x1a\n" + b"0" * 40
    with LoopbackServer(sandbox.app) as server:
        forum = sandbox.connect(server.url, max_retries=0)
        httpx.post(
            f"{server.url}/_sandbox/faults", json={"error_rate": 1.0, "error_status": 503}, timeout=10
        ).raise_for_status()
        with pytest.raises(RetriableError, match="uploads.json"):
            forum.upload(filename="chart.png", content=png)
        httpx.post(f"{server.url}/_sandbox/faults", json={}, timeout=10).raise_for_status()
        first = forum.upload(filename="chart.png", content=png)
        assert forum.upload(filename="chart.png", content=png)["id"] == first["id"]
        forum.close()
