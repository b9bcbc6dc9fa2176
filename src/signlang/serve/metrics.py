"""Prometheus metrics of the HTTP service, kept in a registry private to one app.

Each app gets its own :class:`prometheus_client.CollectorRegistry`, so several apps in one
process (tests, benchmarks) never share or clash over counters. Recording is done by a pure
ASGI middleware (cheaper than Starlette's ``BaseHTTPMiddleware``) that labels requests by their
route *template* (``/predict``), never by the raw path, to keep the label set bounded.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

STAGES = ("decode", "landmarks", "features", "model", "total")
# Latency buckets in seconds: sub-millisecond landmark requests up to multi-second videos.
_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class ServiceMetrics:
    """Counters and histograms of one app, registered in their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "signlang_requests_total", "HTTP requests by route and status code.", ("route", "method", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "signlang_request_seconds", "Wall time of HTTP requests by route.", ("route",),
            buckets=_BUCKETS, registry=self.registry,
        )
        self.stage = Histogram(
            "signlang_stage_seconds", "Predictor time per stage (decode, landmarks, features, model, total).",
            ("stage",), buckets=_BUCKETS, registry=self.registry,
        )
        self.in_flight = Gauge("signlang_predictions_in_flight", "Batches (and videos) being classified now.",
                               registry=self.registry)
        self.rejected = Counter(
            "signlang_rejected_total", "Requests refused by load shedding (503) or rate limiting (429), by reason.",
            ("reason",), registry=self.registry,
        )
        self.queue_length = Gauge("signlang_queue_clips", "Landmark clips waiting in the batching queue.",
                                  registry=self.registry)
        self.queue_wait = Histogram("signlang_queue_wait_seconds", "Time a landmark request waited before its batch ran.",
                                    buckets=_BUCKETS, registry=self.registry)
        self.batch_size = Histogram("signlang_batch_size", "Clips per model call (dynamic batching).",
                                    buckets=_BATCH_BUCKETS, registry=self.registry)
        self.model_info = Gauge("signlang_model_info", "The model being served (value 1; labels say which).",
                                ("model_id", "model_version", "backend"), registry=self.registry)
        self.reloads = Counter("signlang_model_reloads_total", "Model reloads by outcome.", ("outcome",),
                               registry=self.registry)
        self.worker = Gauge("signlang_worker_info", "The worker process answering (value 1; several with --workers N).",
                            ("pid",), registry=self.registry)
        self.worker.labels(str(os.getpid())).set(1)  # tells the workers' scrapes apart (their start times may tie)
        for reason in ("queue_full", "deadline", "video_queue_full", "video_deadline", "rate_limit"):
            self.rejected.labels(reason)  # exported as 0 from the start, so rates and dashboards have a series
        for outcome in ("ok", "refused"):
            self.reloads.labels(outcome)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)

    def set_model(self, model_id: str, model_version: str, backend: str) -> None:
        """Label ``signlang_model_info`` with the model served now (the previous one is dropped)."""
        self.model_info.clear()
        self.model_info.labels(model_id, model_version, backend).set(1)

    def observe_timings(self, timings_ms: Mapping[str, float]) -> None:
        """Record a prediction's per-stage timings (milliseconds)."""
        for stage in STAGES:
            if stage in timings_ms:
                self.stage.labels(stage).observe(float(timings_ms[stage]) / 1000.0)

    def render(self) -> tuple[bytes, str]:
        """The Prometheus text exposition and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """ASGI middleware counting every HTTP request by route template, method and status."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = {"code": 500}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = _route_template(scope)
            self.metrics.requests.labels(route, scope.get("method", ""), str(status["code"])).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - start)


def _route_template(scope: Mapping[str, Any]) -> str:
    """The matched route's path template, or ``unmatched`` (bounded label values).

    FastAPI's own routes put themselves in ``scope["route"]``; Starlette's plain routes (``/docs``,
    ``/openapi.json``, ``/redoc``) and requests answered before routing (the page under API keys)
    do not, so those are matched here against the app's routes by path.
    """
    route = scope.get("route")
    path = getattr(route, "path", None)
    if path:
        return str(path)
    from starlette.routing import Match

    app = scope.get("app")
    for candidate in getattr(app, "routes", ()):
        matches = getattr(candidate, "matches", None)
        if matches is not None and "path" in scope and matches(dict(scope))[0] in (Match.FULL, Match.PARTIAL):
            return str(getattr(candidate, "path", "unmatched") or "unmatched")
    return "unmatched"
