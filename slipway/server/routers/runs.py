"""MLflow REST API 2.0: runs and everything logged to them (metrics, params, tags, inputs,
the logged-model history tag), and run search."""

from __future__ import annotations

import json
import threading
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from slipway.entities import Experiment, Metric, Param, RunStatus, RunTag, ViewType
from slipway.exceptions import InvalidParameterValue
from slipway.server import protocol as p
from slipway.server.context import ServerContext
from slipway.tracking.store.base import SEARCH_MAX_RESULTS_DEFAULT, AbstractTrackingStore

CREATE = frozenset({"experiment_id", "user_id", "run_name", "start_time", "tags"})
GET = frozenset({"run_id", "run_uuid"})
UPDATE = frozenset({"run_id", "run_uuid", "status", "end_time", "run_name"})
BY_ID = frozenset({"run_id"})
SEARCH = frozenset(
    {"experiment_ids", "filter", "run_view_type", "max_results", "order_by", "page_token"}
)
LOG_METRIC = frozenset({"run_id", "run_uuid"} | p.METRIC_FIELDS)
LOG_PARAM = frozenset({"run_id", "run_uuid", "key", "value"})
LOG_BATCH = frozenset({"run_id", "metrics", "params", "tags"})
SET_TAG = frozenset({"run_id", "run_uuid", "key", "value"})
DELETE_TAG = frozenset({"run_id", "key"})
LOG_INPUTS = frozenset({"run_id", "datasets", "models"})
MODEL_INPUT = frozenset({"model_id"})
LOG_MODEL = frozenset({"run_id", "model_json"})

LOGGED_MODELS_TAG = "mlflow.log-model.history"
_MODEL_REQUIRED = ("artifact_path", "flavors", "utc_time_created", "run_id")
_MODEL_KEPT = ("run_id", "utc_time_created", "artifact_path", "model_uuid")


def model_history_entry(model_json: str) -> dict[str, Any]:
    """The summary of an MLmodel (sent as JSON) that the history tag keeps: where and when it
    was logged and its flavors, without each flavor's bulky ``config``."""
    try:
        model = json.loads(model_json)
    except ValueError:
        model = None
    if not isinstance(model, dict):
        raise InvalidParameterValue(
            f"Malformed model info. \n {model_json} \n is not a valid JSON."
        )
    absent = sorted(set(_MODEL_REQUIRED) - set(model))
    if absent:
        raise InvalidParameterValue(f"Model json is missing mandatory fields: {absent}")
    entry = {k: model[k] for k in _MODEL_KEPT if k in model}
    flavors = model["flavors"]
    if not isinstance(flavors, dict):
        raise InvalidParameterValue("Model json field 'flavors' must be an object")
    entry["flavors"] = {
        name: {k: v for k, v in conf.items() if k != "config"} if isinstance(conf, dict) else conf
        for name, conf in flavors.items()
    }
    return entry


def _append_model(
    store: AbstractTrackingStore, lock: threading.Lock, run_id: str, entry: dict[str, Any]
) -> None:
    with lock:  # read-modify-write of one tag: serialise it within this server
        run = store.get_run(run_id)
        previous = run.data.tags.get(LOGGED_MODELS_TAG)
        history: Any = []
        if previous:
            try:
                history = json.loads(previous)
            except ValueError:
                history = None
        if not isinstance(history, list):
            raise InvalidParameterValue(
                f"The run's '{LOGGED_MODELS_TAG}' tag does not hold a JSON list; cannot append"
            )
        history.append(entry)
        store.set_tag(run_id, RunTag(LOGGED_MODELS_TAG, json.dumps(history)))


def routes(ctx: ServerContext) -> list[BaseRoute]:
    store = ctx.store
    model_lock = threading.Lock()

    async def create(request: Request) -> Response:
        f = await p.Fields.read(request, CREATE)
        # MLflow's clients always name the experiment; a bare request gets "Default".
        experiment_id = f.string("experiment_id") or Experiment.DEFAULT_EXPERIMENT_ID
        user_id = f.string("user_id") or None
        run_name = f.string("run_name") or None
        start_time = f.integer("start_time")
        tags = p.tags_of(f)
        run = await run_in_threadpool(
            store.create_run, experiment_id, user_id, start_time, tags, run_name
        )
        return p.json_response({"run": p.run_json(run)})

    async def get(request: Request) -> Response:
        f = await p.Fields.read(request, GET)
        run = await run_in_threadpool(store.get_run, p.run_id_of(f))
        return p.json_response({"run": p.run_json(run)})

    async def update(request: Request) -> Response:
        f = await p.Fields.read(request, UPDATE)
        run_id = p.run_id_of(f)
        raw_status = f.value("status")
        status = RunStatus.parse(raw_status) if raw_status is not None else None
        end_time = f.integer("end_time")
        run_name = f.string("run_name")
        info = await run_in_threadpool(store.update_run_info, run_id, status, end_time, run_name)
        return p.json_response({"run_info": p.run_info_json(info)})

    async def delete(request: Request) -> Response:
        f = await p.Fields.read(request, BY_ID)
        await run_in_threadpool(store.delete_run, f.string("run_id", required=True))
        return p.empty_response()

    async def restore(request: Request) -> Response:
        f = await p.Fields.read(request, BY_ID)
        await run_in_threadpool(store.restore_run, f.string("run_id", required=True))
        return p.empty_response()

    async def search(request: Request) -> Response:
        f = await p.Fields.read(request, SEARCH)
        raw_view = f.value("run_view_type")
        page = await run_in_threadpool(
            store.search_runs,
            f.strings("experiment_ids"),
            f.string("filter") or None,
            ViewType.parse(raw_view),
            f.integer("max_results", default=SEARCH_MAX_RESULTS_DEFAULT),
            f.strings("order_by"),
            f.string("page_token") or None,
        )
        return p.json_response(p.page_json("runs", [p.run_json(r) for r in page], page.token))

    async def log_metric(request: Request) -> Response:
        f = await p.Fields.read(request, LOG_METRIC)
        run_id = p.run_id_of(f)
        metric = Metric(
            f.string("key", required=True),
            f.number("value", required=True),
            f.integer("timestamp", required=True),
            f.integer("step", default=0),
        )
        await run_in_threadpool(store.log_metric, run_id, metric)
        return p.empty_response()

    async def log_param(request: Request) -> Response:
        f = await p.Fields.read(request, LOG_PARAM)
        run_id = p.run_id_of(f)
        param = Param(f.string("key", required=True), f.string("value", default=""))
        await run_in_threadpool(store.log_param, run_id, param)
        return p.empty_response()

    async def log_batch(request: Request) -> Response:
        f = await p.Fields.read(request, LOG_BATCH)
        run_id = f.string("run_id", required=True)
        metrics, params, tags = p.metrics_of(f), p.params_of(f), p.tags_of(f)
        # Each kind's own limit (1000 / 100 / 100) is the store's; MLflow's server also caps
        # the total at 1000, which Slipway does not: its limits are MLflow's as a minimum.
        await run_in_threadpool(store.log_batch, run_id, metrics, params, tags)
        return p.empty_response()

    async def set_tag(request: Request) -> Response:
        f = await p.Fields.read(request, SET_TAG)
        run_id = p.run_id_of(f)
        tag = RunTag(f.string("key", required=True), f.string("value", default=""))
        await run_in_threadpool(store.set_tag, run_id, tag)
        return p.empty_response()

    async def delete_tag(request: Request) -> Response:
        f = await p.Fields.read(request, DELETE_TAG)
        run_id = f.string("run_id", required=True)
        key = f.string("key", required=True)
        await run_in_threadpool(store.delete_tag, run_id, key)
        return p.empty_response()

    async def log_inputs(request: Request) -> Response:
        f = await p.Fields.read(request, LOG_INPUTS)
        run_id = f.string("run_id", required=True)
        datasets = p.dataset_inputs_of(f)
        # Model inputs (MLflow 3 logged models) are read for their shape and not kept: this
        # server has no logged models for them to point at.
        for i, obj in enumerate(f.objects("models")):
            p.sub_fields(obj, MODEL_INPUT, f"models[{i}]").string("model_id")
        if datasets:
            await run_in_threadpool(store.log_inputs, run_id, datasets)
        else:
            await run_in_threadpool(store.log_batch, run_id)  # the run must exist and be active
        return p.empty_response()

    async def log_model(request: Request) -> Response:
        f = await p.Fields.read(request, LOG_MODEL)
        run_id = f.string("run_id", required=True)
        entry = model_history_entry(f.string("model_json", required=True))
        await run_in_threadpool(_append_model, store, model_lock, run_id, entry)
        return p.empty_response()

    return [
        Route("/runs/create", create, methods=["POST"]),
        Route("/runs/get", get, methods=["GET"]),
        Route("/runs/update", update, methods=["POST"]),
        Route("/runs/delete", delete, methods=["POST"]),
        Route("/runs/restore", restore, methods=["POST"]),
        Route("/runs/search", search, methods=["POST", "GET"]),
        Route("/runs/log-metric", log_metric, methods=["POST"]),
        Route("/runs/log-parameter", log_param, methods=["POST"]),
        Route("/runs/log-batch", log_batch, methods=["POST"]),
        Route("/runs/set-tag", set_tag, methods=["POST"]),
        Route("/runs/delete-tag", delete_tag, methods=["POST"]),
        Route("/runs/log-inputs", log_inputs, methods=["POST"]),
        Route("/runs/log-model", log_model, methods=["POST"]),
    ]
