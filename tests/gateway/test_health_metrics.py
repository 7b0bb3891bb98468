"""/healthz and /metrics; secrets never appear in answers or logs."""

from __future__ import annotations

import logging

from starlette.testclient import TestClient

from gateway.app import create_app
from gateway.dispatch import PrefectDispatcher
from tests.support.gateway import DISCOURSE_SECRET, SLACK_SECRET, discourse_request, gateway_settings
from tests.support.net import free_port


def test_healthz_reports_prefect_unreachable_and_metrics_count(ledger, caplog):
    caplog.set_level(logging.DEBUG)
    api = f"http://127.0.0.1:{free_port()}/api"  # nothing listens there
    dispatcher = PrefectDispatcher(ledger=ledger, api_url=api, drain_interval=60)
    app = create_app(settings=gateway_settings(dispatch=True), ledger=ledger, dispatcher=dispatcher)
    with TestClient(app) as client:
        headers, body = discourse_request(1)
        assert client.post("/hooks/discourse", content=body, headers=headers).status_code == 200
        bad = {**headers, "X-Discourse-Event-Signature": "sha256=" + "1" * 64}
        assert client.post("/hooks/discourse", content=body, headers=bad).status_code == 401
        health = client.get("/healthz")
        assert health.status_code == 503
        report = health.json()
        assert report["status"] == "degraded" and report["prefect"]["prefect_reachable"] is False
        assert report["ledger"]["reachable"] is True and report["inbox"]["undispatched"] == 1
        text = client.get("/metrics").text
    assert 'charterflow_gateway_requests_total{route="/hooks/discourse",status="200"} 1.0' in text
    assert 'charterflow_gateway_verification_failures_total{platform="discourse"} 1.0' in text
    assert 'charterflow_gateway_inbox_depth{state="undispatched"} 1.0' in text
    assert "charterflow_gateway_dispatch_latency_seconds_bucket" in text
    everything = text + health.text + caplog.text + repr(app.state.settings)
    assert DISCOURSE_SECRET not in everything and SLACK_SECRET not in everything
