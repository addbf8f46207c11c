"""Pipelines: runs, steps, the step cache, artifact links and schedules.

Mounted under ``/api/2.0/slipway/pipelines``, in the style of the rest of Slipway's API:
``GET`` fields come from the query string, ``POST`` sends a JSON object
(``Content-Type: application/json``); unknown fields, missing required fields and wrong types
are 400 ``INVALID_PARAMETER_VALUE``; errors are ``{"error_code", "message"}`` with MLflow's
codes (an unknown run, step or schedule is 404 ``RESOURCE_DOES_NOT_EXIST``).

Fields marked ``*`` are required; the answer follows the arrow. Records (``pipeline_run``,
``step``, ``entry``, ``link``, ``schedule``) are objects keyed by the fields of
:mod:`slipway.entities.pipelines`, None left out (see :mod:`slipway.pipelines.store.wire`).

Pipeline runs
    ``POST /runs/create`` run_id*, experiment_id*, pipeline_name*, status*, start_time*,
    end_time, parameters (an object), graph (an object), source, attempt, schedule_id,
    user_id, message -> ``{"pipeline_run"}``; ``GET /runs/get`` run_id* ->
    ``{"pipeline_run"}``; ``POST /runs/update`` run_id*, status, end_time, message, graph,
    parameters, attempt, clear_end -> ``{"pipeline_run"}``; ``POST /runs/cancel`` run_id*
    -> ``{"pipeline_run"}``; ``GET /runs/search`` pipeline_name, status, experiment_id,
    schedule_id, max_results (default 100, at most 1000), page_token ->
    ``{"pipeline_runs", "next_page_token"}`` (newest first).
Steps
    ``POST /steps/upsert`` pipeline_run_id*, task_id*, task_name*, component*, status*,
    attempt, run_id, cache_key, cached_from, start_time, end_time, inputs, outputs, details
    (objects), message -> ``{"step"}``; ``GET /steps/get`` pipeline_run_id*, task_id* ->
    ``{"step"}``; ``GET /steps/list`` pipeline_run_id* -> ``{"steps"}`` (in the order they
    were first recorded).
Cache
    ``GET /cache/get`` key*, max_age_ms -> ``{"entry"}``, or ``{}`` when there is none;
    ``POST /cache/put`` key*, component*, outputs*, run_id*, pipeline_run_id*, task_id*,
    created_time* -> ``{}``; ``POST /cache/delete`` component -> ``{"deleted": n}``.
Artifact links
    ``GET /artifacts/links`` pipeline_run_id, uri, digest (at least one) -> ``{"links"}``.
Schedules
    ``POST /schedules/create`` schedule_id*, name*, source*, cron*, parameters, experiment_id,
    paused, created_time, next_run_time, last_run_time, last_run_id, user_id ->
    ``{"schedule"}``; ``GET /schedules/get`` schedule_id* (an id or a name) ->
    ``{"schedule"}``; ``GET /schedules/list`` -> ``{"schedules"}`` (by name);
    ``POST /schedules/update`` schedule_id*, paused, next_run_time, last_run_time,
    last_run_id -> ``{"schedule"}``; ``POST /schedules/claim`` schedule_id*, due_time*,
    next_run_time* -> ``{"claimed": true|false}``; ``POST /schedules/delete`` schedule_id*
    -> ``{}``.

A run's ``status`` is ``QUEUED``, ``RUNNING``, ``SUCCEEDED``, ``FAILED``, ``CANCELLING`` or
``CANCELLED``; a step's is ``QUEUED``, ``RUNNING``, ``RETRYING``, ``SUCCEEDED``, ``CACHED``,
``FAILED``, ``SKIPPED`` or ``CANCELLED`` (either in any case). Text that names no status is
refused by the store, with the same message on every backend.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from slipway.pipelines.store.base import SEARCH_PIPELINE_RUNS_DEFAULT, AbstractPipelineStore
from slipway.server import pipelines_json as j
from slipway.server import protocol as p
from slipway.server.context import ServerContext

PREFIX = "/api/2.0/slipway/pipelines"

BY_RUN = frozenset({"run_id"})
UPDATE_RUN = frozenset(
    {"run_id", "status", "end_time", "message", "graph", "parameters", "attempt", "clear_end"}
)
SEARCH_RUNS = frozenset(
    {"pipeline_name", "status", "experiment_id", "schedule_id", "max_results", "page_token"}
)
BY_STEP = frozenset({"pipeline_run_id", "task_id"})
BY_PIPELINE_RUN = frozenset({"pipeline_run_id"})
GET_CACHE = frozenset({"key", "max_age_ms"})
DELETE_CACHE = frozenset({"component"})
LINKS = frozenset({"pipeline_run_id", "uri", "digest"})
BY_SCHEDULE = frozenset({"schedule_id"})
NOTHING: frozenset[str] = frozenset()
UPDATE_SCHEDULE = frozenset(
    {"schedule_id", "paused", "next_run_time", "last_run_time", "last_run_id"}
)
CLAIM = frozenset({"schedule_id", "due_time", "next_run_time"})


def run_routes(store: AbstractPipelineStore) -> list[BaseRoute]:
    def answer(run: object) -> Response:
        return p.json_response({"pipeline_run": j.record_json(run)})

    async def create(request: Request) -> Response:
        f = await p.Fields.read(request, j.PIPELINE_RUN_FIELDS)
        return answer(await run_in_threadpool(store.create_pipeline_run, j.pipeline_run_from(f)))

    async def get(request: Request) -> Response:
        f = await p.Fields.read(request, BY_RUN)
        run_id = f.string("run_id", required=True)
        return answer(await run_in_threadpool(store.get_pipeline_run, run_id))

    async def update(request: Request) -> Response:
        f = await p.Fields.read(request, UPDATE_RUN)
        run_id = f.string("run_id", required=True)
        changes = {
            "status": j.run_status_of(f),
            "end_time": f.integer("end_time"),
            "message": f.string("message"),
            "graph": j.json_object(f, "graph"),
            "parameters": j.json_object(f, "parameters"),
            "attempt": f.integer("attempt"),
            "clear_end": f.boolean("clear_end"),
        }
        return answer(await run_in_threadpool(store.update_pipeline_run, run_id, **changes))

    async def cancel(request: Request) -> Response:
        f = await p.Fields.read(request, BY_RUN)
        run_id = f.string("run_id", required=True)
        return answer(await run_in_threadpool(store.request_cancel, run_id))

    async def search(request: Request) -> Response:
        f = await p.Fields.read(request, SEARCH_RUNS)
        found = await run_in_threadpool(
            store.search_pipeline_runs,
            f.string("pipeline_name"),
            j.run_status_of(f),
            f.string("experiment_id"),
            f.string("schedule_id"),
            f.integer("max_results", default=SEARCH_PIPELINE_RUNS_DEFAULT),
            f.string("page_token") or None,
        )
        runs = [j.record_json(r) for r in found]
        return p.json_response(p.page_json("pipeline_runs", runs, found.token))

    return [
        Route("/runs/create", create, methods=["POST"]),
        Route("/runs/get", get, methods=["GET"]),
        Route("/runs/update", update, methods=["POST"]),
        Route("/runs/cancel", cancel, methods=["POST"]),
        Route("/runs/search", search, methods=["GET"]),
    ]


def step_routes(store: AbstractPipelineStore) -> list[BaseRoute]:
    async def upsert(request: Request) -> Response:
        f = await p.Fields.read(request, j.STEP_FIELDS)
        step = await run_in_threadpool(store.upsert_step, j.step_from(f))
        return p.json_response({"step": j.record_json(step)})

    async def get(request: Request) -> Response:
        f = await p.Fields.read(request, BY_STEP)
        run_id = f.string("pipeline_run_id", required=True)
        task_id = f.string("task_id", required=True)
        step = await run_in_threadpool(store.get_step, run_id, task_id)
        return p.json_response({"step": j.record_json(step)})

    async def list_steps(request: Request) -> Response:
        f = await p.Fields.read(request, BY_PIPELINE_RUN)
        run_id = f.string("pipeline_run_id", required=True)
        steps = await run_in_threadpool(store.list_steps, run_id)
        return p.json_response({"steps": [j.record_json(s) for s in steps]})

    return [
        Route("/steps/upsert", upsert, methods=["POST"]),
        Route("/steps/get", get, methods=["GET"]),
        Route("/steps/list", list_steps, methods=["GET"]),
    ]


def cache_and_link_routes(store: AbstractPipelineStore) -> list[BaseRoute]:
    async def get(request: Request) -> Response:
        f = await p.Fields.read(request, GET_CACHE)
        key = f.string("key", required=True)
        entry = await run_in_threadpool(store.get_cache_entry, key, f.integer("max_age_ms"))
        return p.json_response({} if entry is None else {"entry": j.record_json(entry)})

    async def put(request: Request) -> Response:
        f = await p.Fields.read(request, j.CACHE_ENTRY_FIELDS)
        await run_in_threadpool(store.put_cache_entry, j.cache_entry_from(f))
        return p.empty_response()

    async def delete(request: Request) -> Response:
        f = await p.Fields.read(request, DELETE_CACHE)
        deleted = await run_in_threadpool(store.delete_cache_entries, f.string("component"))
        return p.json_response({"deleted": deleted})

    async def links(request: Request) -> Response:
        f = await p.Fields.read(request, LINKS)
        found = await run_in_threadpool(
            store.list_artifact_links,
            f.string("pipeline_run_id"),
            f.string("uri"),
            f.string("digest"),
        )
        return p.json_response({"links": [j.record_json(x) for x in found]})

    return [
        Route("/cache/get", get, methods=["GET"]),
        Route("/cache/put", put, methods=["POST"]),
        Route("/cache/delete", delete, methods=["POST"]),
        Route("/artifacts/links", links, methods=["GET"]),
    ]


def schedule_routes(store: AbstractPipelineStore) -> list[BaseRoute]:
    def answer(schedule: object) -> Response:
        return p.json_response({"schedule": j.record_json(schedule)})

    async def create(request: Request) -> Response:
        f = await p.Fields.read(request, j.SCHEDULE_FIELDS)
        return answer(await run_in_threadpool(store.create_schedule, j.schedule_from(f)))

    async def get(request: Request) -> Response:
        f = await p.Fields.read(request, BY_SCHEDULE)
        schedule_id = f.string("schedule_id", required=True)
        return answer(await run_in_threadpool(store.get_schedule, schedule_id))

    async def list_schedules(request: Request) -> Response:
        await p.Fields.read(request, NOTHING)
        found = await run_in_threadpool(store.list_schedules)
        return p.json_response({"schedules": [j.record_json(s) for s in found]})

    async def update(request: Request) -> Response:
        f = await p.Fields.read(request, UPDATE_SCHEDULE)
        schedule_id = f.string("schedule_id", required=True)
        changes = {
            "paused": j.optional_boolean(f, "paused"),
            "next_run_time": f.integer("next_run_time"),
            "last_run_time": f.integer("last_run_time"),
            "last_run_id": f.string("last_run_id"),
        }
        return answer(await run_in_threadpool(store.update_schedule, schedule_id, **changes))

    async def claim(request: Request) -> Response:
        f = await p.Fields.read(request, CLAIM)
        schedule_id = f.string("schedule_id", required=True)
        due = f.integer("due_time", required=True)
        following = f.integer("next_run_time", required=True)
        claimed = await run_in_threadpool(store.claim_schedule_run, schedule_id, due, following)
        return p.json_response({"claimed": claimed})

    async def delete(request: Request) -> Response:
        f = await p.Fields.read(request, BY_SCHEDULE)
        schedule_id = f.string("schedule_id", required=True)
        await run_in_threadpool(store.delete_schedule, schedule_id)
        return p.empty_response()

    return [
        Route("/schedules/create", create, methods=["POST"]),
        Route("/schedules/get", get, methods=["GET"]),
        Route("/schedules/list", list_schedules, methods=["GET"]),
        Route("/schedules/update", update, methods=["POST"]),
        Route("/schedules/claim", claim, methods=["POST"]),
        Route("/schedules/delete", delete, methods=["POST"]),
    ]


def routes(ctx: ServerContext) -> list[BaseRoute]:
    """Every route of this module, to mount under :data:`PREFIX`."""
    store = ctx.pipeline_store
    return [
        *run_routes(store),
        *step_routes(store),
        *cache_and_link_routes(store),
        *schedule_routes(store),
    ]
