"""The model server's Prometheus metrics, and their text for ``GET /metrics``.

Every metric carries the served name (``model``) and the registry version (``version``, empty
for a model outside the registry):

* ``slipway_serving_requests_total`` (``protocol``, ``status``) and
  ``slipway_serving_request_duration_seconds`` (``protocol``): each answered request;
* ``slipway_serving_batch_rows`` and ``slipway_serving_batch_requests``: for each ``predict``
  call, how many rows and requests it merged;
* ``slipway_serving_errors_total`` (``kind``): failures by kind (``model``: the model raised,
  ``timeout``, ``shadow``, ``shadow_dropped``, ...);
* ``slipway_serving_model_loaded``: 1 while a version is loaded;
* ``slipway_serving_reloads_total`` (``result``: ``ok`` or ``failed``): hot reloads.

With several worker processes, each writes its values to files in the folder named by
``PROMETHEUS_MULTIPROC_DIR`` (the runner sets it before the workers start) and :func:`render`
adds them up, so any worker answers for all of them.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_MODEL = ("model", "version")
_LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384)

REQUESTS = Counter(
    "slipway_serving_requests",
    "Requests answered, by model, version, protocol and HTTP status.",
    [*_MODEL, "protocol", "status"],
)
LATENCY = Histogram(
    "slipway_serving_request_duration_seconds",
    "Time from a request's arrival to its answer, by model, version and protocol.",
    [*_MODEL, "protocol"],
    buckets=_LATENCY_BUCKETS,
)
BATCH_ROWS = Histogram(
    "slipway_serving_batch_rows",
    "Rows in each predict call (several requests merged by batching).",
    list(_MODEL),
    buckets=_SIZE_BUCKETS,
)
BATCH_REQUESTS = Histogram(
    "slipway_serving_batch_requests",
    "Requests merged into each predict call.",
    list(_MODEL),
    buckets=_SIZE_BUCKETS,
)
ERRORS = Counter(
    "slipway_serving_errors",
    "Failures, by model, version and kind.",
    [*_MODEL, "kind"],
)
LOADED = Gauge(
    "slipway_serving_model_loaded",
    "1 while the model version is loaded and serving.",
    list(_MODEL),
    multiprocess_mode="livemax",
)
RELOADS = Counter(
    "slipway_serving_reloads",
    "Hot reloads of a model, by the version loaded and the result.",
    [*_MODEL, "result"],
)


def observe_request(model: str, version: str, protocol: str, status: int, seconds: float) -> None:
    """Count one answered request and time it."""
    REQUESTS.labels(model, version, protocol, str(status)).inc()
    LATENCY.labels(model, version, protocol).observe(seconds)


def observe_batch(model: str, version: str, rows: int, requests: int) -> None:
    """Record one predict call that merged ``requests`` requests holding ``rows`` rows."""
    BATCH_ROWS.labels(model, version).observe(rows)
    BATCH_REQUESTS.labels(model, version).observe(requests)


def observe_error(model: str, version: str, kind: str) -> None:
    """Count one failure of ``kind``."""
    ERRORS.labels(model, version, kind).inc()


def set_loaded(model: str, version: str, loaded: bool) -> None:
    """Mark a model version loaded (1) or unloaded (0)."""
    LOADED.labels(model, version).set(1 if loaded else 0)


def observe_reload(model: str, version: str, ok: bool) -> None:
    """Count one hot reload, to ``version``, that succeeded or failed."""
    RELOADS.labels(model, version, "ok" if ok else "failed").inc()


def mark_process_dead() -> None:
    """Drop this process's live gauges (loaded models) from the totals of a multi-worker
    server: called by a worker that stops."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


def render() -> tuple[bytes, str]:
    """``(body, content type)`` of the Prometheus text exposition, summed over every worker
    process when the server runs several."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


__all__ = [
    "MULTIPROC_ENV",
    "mark_process_dead",
    "observe_batch",
    "observe_error",
    "observe_reload",
    "observe_request",
    "render",
    "set_loaded",
]
