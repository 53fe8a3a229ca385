"""Prometheus metrics and access logs, as one ASGI middleware around the app.

Metrics (``GET /metrics``, Prometheus text format, :mod:`prometheus_client`):

* ``graphrec_http_requests_total{method, route, status}``: requests answered;
* ``graphrec_http_request_duration_seconds{method, route, status}``: latency histogram (from the first
  byte of the request to the last byte of the response);
* ``graphrec_served_model_info{kind, version}``: 1 for each model version a worker serves;
* ``graphrec_store_revision``: the store's revision, read when scraped.

``route`` is the route's template (``/v1/users/{user_id}/recommendations``), never the raw path,
so user ids do not explode the label space; unknown paths count as ``unmatched``.

With several workers (``graphrec serve --workers N``) each worker is its own process: the server
sets ``PROMETHEUS_MULTIPROC_DIR`` and every worker writes its samples there, so any worker's
``/metrics`` answers for all of them (prometheus_client's multiprocess mode).

Access log: one record per request on the ``graphrec.access`` logger (method, route, path,
status, duration in ms, request id, client address, the token's name), a JSON object per line with
``--log-format json``. Neither the ``Authorization`` header nor the query string is logged.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

if TYPE_CHECKING:  # pragma: no cover
    from graphrec.store.store import GraphStore

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

access_log = logging.getLogger("graphrec.access")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: latency buckets (seconds): fine below 50 ms, where the service's targets are
BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

REQUESTS = Counter("graphrec_http_requests_total", "HTTP requests answered", ["method", "route", "status"])
LATENCY = Histogram("graphrec_http_request_duration_seconds", "HTTP request latency", ["method", "route", "status"], buckets=BUCKETS)
MODEL_INFO = Gauge("graphrec_served_model_info", "1 for each model version a worker serves", ["kind", "version"],
                   multiprocess_mode="liveall")


class StoreRevisionCollector:
    """``graphrec_store_revision``, read from the store when scraped (NaN when unreachable)."""

    def __init__(self, store: "GraphStore") -> None:
        self.store = store

    def collect(self) -> Any:
        family = GaugeMetricFamily("graphrec_store_revision", "The store's revision (bumped by every write)")
        try:
            family.add_metric([], float(self.store.revision()))
        except Exception:  # noqa: BLE001 - a scrape must not fail because the store is down
            family.add_metric([], float("nan"))
        yield family


def registry_for(store: "GraphStore") -> CollectorRegistry:
    """The registry ``/metrics`` renders: this process's metrics, or every worker's in
    multiprocess mode, plus the store revision."""
    registry = CollectorRegistry()
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)
    else:
        for collector in (REQUESTS, LATENCY, MODEL_INFO):
            registry.register(collector)
    registry.register(StoreRevisionCollector(store))
    return registry


def worker_exit() -> None:
    """In multiprocess mode, drop this worker's live gauges (its served model versions)."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(os.getpid())


def render(registry: CollectorRegistry) -> bytes:
    """The Prometheus text format of ``registry``."""
    return generate_latest(registry)


_served_models: dict[str, str] = {}
_served_lock = threading.Lock()


def set_served_models(versions: dict[str, str | None]) -> None:
    """Publish which model versions this worker serves (``graphrec_served_model_info``): 1 for
    the served one, 0 for the one it replaced (multiprocess mode cannot remove a sample)."""
    with _served_lock:
        for kind, version in versions.items():
            old = _served_models.get(kind)
            if old == version:
                continue
            if old is not None:
                MODEL_INFO.labels(kind, old).set(0)
                del _served_models[kind]
            if version is not None:
                MODEL_INFO.labels(kind, version).set(1)
                _served_models[kind] = version


def mark_dead(pid: int) -> None:
    """In multiprocess mode, drop the live gauges of a worker that died without cleaning up."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


class Instrumented:
    """ASGI middleware: request id (``X-Request-ID``, the client's when it sends a sane one),
    metrics and the access log for every HTTP request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        request_id = _incoming_request_id(scope) or uuid.uuid4().hex[:16]
        scope["graphrec.request_id"] = request_id
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode("ascii")))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - start
            route_obj = scope.get("route")
            route = getattr(route_obj, "path", None) or "unmatched"
            method = scope.get("method", "-")
            REQUESTS.labels(method, route, str(status)).inc()
            LATENCY.labels(method, route, str(status)).observe(elapsed)
            if access_log.isEnabledFor(logging.INFO):
                client = scope.get("client") or ("-", 0)
                access_log.info("%s %s %d %.1f ms", method, scope.get("path", "-"), status, elapsed * 1000,
                                extra={"fields": {"method": method, "route": route, "path": scope.get("path"), "status": status,
                                                  "duration_ms": round(elapsed * 1000, 3), "request_id": request_id,
                                                  "client": f"{client[0]}:{client[1]}",
                                                  "token": getattr(scope.get("graphrec.token"), "name", None)}})


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"x-request-id":
            text = value.decode("latin-1")
            if 0 < len(text) <= 64 and all(c.isalnum() or c in "-_." for c in text):
                return text
            return None
    return None
