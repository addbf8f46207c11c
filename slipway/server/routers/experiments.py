"""MLflow REST API 2.0: experiments, their tags, and the dataset summaries the UI lists.

Every route reads its fields with :class:`~slipway.server.protocol.Fields`, calls the store in
the thread pool (store calls block) and answers MLflow's JSON.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from slipway.entities import ExperimentTag, ViewType
from slipway.exceptions import InvalidParameterValue, ResourceDoesNotExist
from slipway.server import protocol as p
from slipway.server.context import ServerContext
from slipway.tracking.store.base import SEARCH_MAX_RESULTS_DEFAULT, AbstractTrackingStore

CREATE = frozenset({"name", "artifact_location", "tags"})
BY_ID = frozenset({"experiment_id"})
BY_NAME = frozenset({"experiment_name"})
SEARCH = frozenset({"max_results", "page_token", "filter", "order_by", "view_type"})
UPDATE = frozenset({"experiment_id", "new_name"})
SET_TAG = frozenset({"experiment_id", "key", "value"})
DELETE_TAG = frozenset({"experiment_id", "key"})
SEARCH_DATASETS = frozenset({"experiment_ids"})

MAX_DATASET_EXPERIMENTS = 20
MAX_DATASET_SUMMARIES = 1000
_RUN_PAGE = 1000


def dataset_summaries(
    store: AbstractTrackingStore, experiment_ids: Sequence[str]
) -> list[dict[str, str]]:
    """The distinct (experiment, dataset name, digest, context) of the runs of the experiments,
    deleted runs included, at most 1000; read from the runs' inputs."""
    seen: dict[tuple[str, str, str, str | None], None] = {}
    for experiment_id in dict.fromkeys(experiment_ids):
        token: str | None = None
        while True:
            page = store.search_runs(
                [experiment_id], run_view_type=ViewType.ALL, max_results=_RUN_PAGE, page_token=token
            )
            for run in page:
                for item in run.inputs.dataset_inputs:
                    ds = item.dataset
                    seen[(run.info.experiment_id, ds.name, ds.digest, item.context)] = None
                    if len(seen) >= MAX_DATASET_SUMMARIES:
                        return _summaries(seen)
            token = page.token
            if not token:
                break
    return _summaries(seen)


def _summaries(seen: dict[tuple[str, str, str, str | None], None]) -> list[dict[str, str]]:
    out = []
    for experiment_id, name, digest, context in seen:
        item = {"experiment_id": experiment_id, "name": name, "digest": digest}
        if context is not None:
            item["context"] = context
        out.append(item)
    return out


def routes(ctx: ServerContext) -> list[BaseRoute]:
    store = ctx.store

    async def create(request: Request) -> Response:
        f = await p.Fields.read(request, CREATE)
        name = f.string("name", required=True)
        location = f.string("artifact_location") or None
        tags = [ExperimentTag(k, v) for k, v in p.key_values(f, "tags")]
        experiment_id = await run_in_threadpool(store.create_experiment, name, location, tags)
        return p.json_response({"experiment_id": experiment_id})

    async def get(request: Request) -> Response:
        f = await p.Fields.read(request, BY_ID)
        experiment_id = f.string("experiment_id", required=True)
        exp = await run_in_threadpool(store.get_experiment, experiment_id)
        return p.json_response({"experiment": p.experiment_json(exp)})

    async def get_by_name(request: Request) -> Response:
        f = await p.Fields.read(request, BY_NAME)
        name = f.string("experiment_name", required=True)
        exp = await run_in_threadpool(store.get_experiment_by_name, name)
        if exp is None:
            # The MLflow client turns exactly this error code into None.
            raise ResourceDoesNotExist(f"Could not find experiment with name '{name}'")
        return p.json_response({"experiment": p.experiment_json(exp)})

    async def search(request: Request) -> Response:
        f = await p.Fields.read(request, SEARCH)
        view_type = ViewType.parse(f.value("view_type"))
        max_results = f.integer("max_results", default=SEARCH_MAX_RESULTS_DEFAULT)
        page = await run_in_threadpool(
            store.search_experiments,
            view_type,
            max_results,
            f.string("filter") or None,
            f.strings("order_by"),
            f.string("page_token") or None,
        )
        items = [p.experiment_json(e) for e in page]
        return p.json_response(p.page_json("experiments", items, page.token))

    async def update(request: Request) -> Response:
        f = await p.Fields.read(request, UPDATE)
        experiment_id = f.string("experiment_id", required=True)
        new_name = f.string("new_name", required=True)
        await run_in_threadpool(store.rename_experiment, experiment_id, new_name)
        return p.empty_response()

    async def delete(request: Request) -> Response:
        f = await p.Fields.read(request, BY_ID)
        await run_in_threadpool(store.delete_experiment, f.string("experiment_id", required=True))
        return p.empty_response()

    async def restore(request: Request) -> Response:
        f = await p.Fields.read(request, BY_ID)
        await run_in_threadpool(store.restore_experiment, f.string("experiment_id", required=True))
        return p.empty_response()

    async def set_tag(request: Request) -> Response:
        f = await p.Fields.read(request, SET_TAG)
        experiment_id = f.string("experiment_id", required=True)
        tag = ExperimentTag(f.string("key", required=True), f.string("value", default=""))
        await run_in_threadpool(store.set_experiment_tag, experiment_id, tag)
        return p.empty_response()

    async def delete_tag(request: Request) -> Response:
        f = await p.Fields.read(request, DELETE_TAG)
        experiment_id = f.string("experiment_id", required=True)
        key = f.string("key", required=True)
        await run_in_threadpool(store.delete_experiment_tag, experiment_id, key)
        return p.empty_response()

    async def search_datasets(request: Request) -> Response:
        f = await p.Fields.read(request, SEARCH_DATASETS)
        experiment_ids = f.strings("experiment_ids")
        if not experiment_ids:
            raise InvalidParameterValue(
                "SearchDatasets request must specify at least one experiment_id."
            )
        if len(experiment_ids) > MAX_DATASET_EXPERIMENTS:
            raise InvalidParameterValue(
                f"SearchDatasets request cannot specify more than {MAX_DATASET_EXPERIMENTS} "
                f"experiment_ids. Received {len(experiment_ids)} experiment_ids."
            )
        found = await run_in_threadpool(dataset_summaries, store, experiment_ids)
        return p.json_response({"dataset_summaries": found} if found else {})

    return [
        Route("/experiments/create", create, methods=["POST"]),
        Route("/experiments/get", get, methods=["GET"]),
        Route("/experiments/get-by-name", get_by_name, methods=["GET"]),
        Route("/experiments/search", search, methods=["GET", "POST"]),
        Route("/experiments/update", update, methods=["POST"]),
        Route("/experiments/delete", delete, methods=["POST"]),
        Route("/experiments/restore", restore, methods=["POST"]),
        Route("/experiments/set-experiment-tag", set_tag, methods=["POST"]),
        Route("/experiments/delete-experiment-tag", delete_tag, methods=["POST"]),
        Route("/experiments/search-datasets", search_datasets, methods=["POST"]),
    ]
