"""Prometheus metrics of one gateway process (a private registry, text format at /metrics).

Labels are bounded: ``route`` is one of the known paths or ``other`` (a scanner's random paths
must not grow the registry), ``status`` the HTTP status code. No secret or payload is a label.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

KNOWN_PATHS = (
    "/hooks/discourse",
    "/hooks/discord",
    "/hooks/slack",
    "/apply",
    "/healthz",
    "/metrics",
    "/static/form.css",
    "/",
)


class Metrics:
    """The gateway's counters, gauges and histograms."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, *, inbox_counts: Callable[[], dict[str, int]]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "charterflow_gateway_requests",
            "HTTP requests by route and status",
            ["route", "status"],
            registry=self.registry,
        )
        self.ack_seconds = Histogram(
            "charterflow_gateway_ack_seconds",
            "Request in to response out, by route",
            ["route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry,
        )
        self.verification_failures = Counter(
            "charterflow_gateway_verification_failures",
            "Requests refused by signature verification",
            ["platform"],
            registry=self.registry,
        )
        self.stored = Counter(
            "charterflow_gateway_inbox_stored",
            "Events stored in the inbox (new ones)",
            ["source", "route"],
            registry=self.registry,
        )
        self.duplicates = Counter(
            "charterflow_gateway_inbox_duplicates",
            "Redelivered events (dedupe key already stored)",
            ["source"],
            registry=self.registry,
        )
        self.dispatched = Counter(
            "charterflow_gateway_dispatches", "Dispatch attempts by outcome", ["outcome"], registry=self.registry
        )
        self.dispatch_latency = Histogram(
            "charterflow_gateway_dispatch_latency_seconds",
            "Event received to its Prefect run created",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
            registry=self.registry,
        )
        self.form = Counter(
            "charterflow_gateway_form_posts", "POST /apply by outcome", ["outcome"], registry=self.registry
        )
        self.inbox_depth = Gauge(
            "charterflow_gateway_inbox_depth",
            "Inbox events not yet processed, by state",
            ["state"],
            registry=self.registry,
        )
        self._inbox_counts = inbox_counts

    @staticmethod
    def route_label(path: str) -> str:
        """``path`` if it is one of ours, else ``other``."""
        if path in KNOWN_PATHS:
            return path
        # A link page is labelled by its route, never by its token (a secret, and unbounded).
        for prefix in ("/confirm/", "/optin/", "/coc-outcome/"):
            if path.startswith(prefix) and "/" not in path[len(prefix) :]:
                return prefix + "{token}"
        if path.startswith("/apply/status/") and "/" not in path[len("/apply/status/") :]:
            return "/apply/status/{submission}"  # the id is the applicant's capability
        return "other"

    def render(self) -> bytes:
        """The text exposition, with the inbox depth read now (left as is if the ledger is down)."""
        try:
            counts = self._inbox_counts()
        except Exception:  # noqa: BLE001 - /metrics must answer while the ledger is down
            counts = {}
        for state, value in counts.items():
            self.inbox_depth.labels(state=state).set(value)
        return generate_latest(self.registry)
