"""``GET /healthz`` (ledger and Prefect reachable, inbox counts, connectors; 200 or 503) and
``GET /metrics`` (Prometheus text)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from gateway.metrics import Metrics
from gateway.state import GatewayDep, GatewayState, MetricsDep, json_response

router = APIRouter()
PLATFORMS = ("discourse", "discord", "slack")


def health(gateway: GatewayState) -> tuple[bool, dict[str, Any]]:
    """Whether the gateway can do its work, and the report saying why (never raises)."""
    report: dict[str, Any] = {}
    ok = True
    try:
        report["inbox"] = gateway.inbox_counts()
        report["ledger"] = {"reachable": True}
    except Exception as exc:  # noqa: BLE001 - reported, never raised
        ok = False
        report["ledger"] = {"reachable": False, "error": type(exc).__name__}
    prefect = gateway.dispatcher.status()
    report["prefect"] = prefect
    if prefect.get("prefect_reachable") is False:
        ok = False
    verifiers = gateway.verifiers
    report["connectors"] = {
        name: ("configured" if verifiers.get(name) else f"not configured: {verifiers.problems.get(name, '?')}")
        for name in PLATFORMS
    }
    report["status"] = "ok" if ok else "degraded"
    return ok, report


@router.get("/healthz")
async def healthz(gateway: GatewayDep) -> Response:
    ok, report = await run_in_threadpool(health, gateway)
    return json_response(200 if ok else 503, report)


@router.get("/metrics")
async def metrics_endpoint(metrics: MetricsDep) -> Response:
    body = await run_in_threadpool(metrics.render)
    return Response(body, media_type=Metrics.content_type, headers={"Cache-Control": "no-store"})
