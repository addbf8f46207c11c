"""MLflow REST API 2.0: metric history, one run at a time (paged) or many runs sampled for the
UI's charts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from slipway.exceptions import InvalidParameterValue
from slipway.server import protocol as p
from slipway.server.context import ServerContext
from slipway.tracking.store.base import AbstractTrackingStore

HISTORY = frozenset({"run_id", "run_uuid", "metric_key", "page_token", "max_results"})
BULK_INTERVAL = frozenset({"run_ids", "metric_key", "start_step", "end_step", "max_results"})
BULK = frozenset({"run_id", "metric_key", "max_results"})

MAX_BULK_RUNS = 100
MAX_INTERVAL_RESULTS = 2500  # also MLflow's default when max_results is not given
MAX_BULK_RESULTS = 25000


def _bulk_history(
    store: AbstractTrackingStore, run_ids: Sequence[str], key: str, max_results: int
) -> list[dict[str, Any]]:
    """Every run's history of ``key`` (runs by id, points by timestamp, step, value), capped at
    ``max_results`` points in all."""
    out: list[dict[str, Any]] = []
    for run_id in sorted(set(run_ids)):
        points = sorted(
            store.get_metric_history(run_id, key, max_results=max_results),
            key=lambda m: (m.timestamp, m.step, m.value),
        )
        for m in points:
            item = m.to_dict()
            item["run_id"] = run_id
            out.append(item)
        if len(out) >= max_results:
            break
    return out[:max_results]


def routes(ctx: ServerContext) -> list[BaseRoute]:
    store = ctx.store

    async def get_history(request: Request) -> Response:
        f = await p.Fields.read(request, HISTORY)
        run_id = p.run_id_of(f)
        key = f.string("metric_key", required=True)
        max_results = f.integer("max_results")
        if max_results is not None and max_results <= 0:
            raise InvalidParameterValue(
                f"Invalid value {max_results} for parameter 'max_results' supplied. "
                "It must be a positive integer."
            )
        page = await run_in_threadpool(
            store.get_metric_history, run_id, key, max_results, f.string("page_token") or None
        )
        return p.json_response(p.page_json("metrics", [m.to_dict() for m in page], page.token))

    async def get_history_bulk_interval(request: Request) -> Response:
        f = await p.Fields.read(request, BULK_INTERVAL)
        run_ids = f.strings("run_ids", required=True)
        if len(run_ids) > MAX_BULK_RUNS:
            raise InvalidParameterValue(
                f"GetMetricHistoryBulkInterval request must specify at most {MAX_BULK_RUNS} "
                f"run_ids. Received {len(run_ids)} run_ids."
            )
        key = f.string("metric_key", required=True)
        start_step, end_step = f.integer("start_step"), f.integer("end_step")
        max_results = f.integer("max_results", default=MAX_INTERVAL_RESULTS)
        if not 1 <= max_results <= MAX_INTERVAL_RESULTS:
            raise InvalidParameterValue(
                f"max_results must be between 1 and {MAX_INTERVAL_RESULTS}."
            )
        points = await run_in_threadpool(
            store.get_metric_history_bulk_interval,
            run_ids,
            key,
            max_results,
            start_step,
            end_step,
        )
        return p.json_response({"metrics": [m.to_dict() for m in points]} if points else {})

    async def get_history_bulk(request: Request) -> Response:
        f = await p.Fields.read(request, BULK)
        run_ids = f.strings("run_id")
        if not run_ids:
            raise InvalidParameterValue(
                "GetMetricHistoryBulk request must specify at least one run_id."
            )
        if len(run_ids) > MAX_BULK_RUNS:
            raise InvalidParameterValue(
                f"GetMetricHistoryBulk request cannot specify more than {MAX_BULK_RUNS} "
                f"run_ids. Received {len(run_ids)} run_ids."
            )
        key = f.string("metric_key")
        if key is None:
            raise InvalidParameterValue("GetMetricHistoryBulk request must specify a metric_key.")
        max_results = f.integer("max_results", default=MAX_BULK_RESULTS)
        if max_results <= 0:
            raise InvalidParameterValue(
                f"Invalid value {max_results} for parameter 'max_results' supplied. "
                "It must be a positive integer."
            )
        max_results = min(max_results, MAX_BULK_RESULTS)
        points = await run_in_threadpool(_bulk_history, store, run_ids, key, max_results)
        return p.json_response({"metrics": points})

    return [
        Route("/metrics/get-history", get_history, methods=["GET"]),
        Route("/metrics/get-history-bulk-interval", get_history_bulk_interval, methods=["GET"]),
        Route("/metrics/get-history-bulk", get_history_bulk, methods=["GET"]),
    ]
