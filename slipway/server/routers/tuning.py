"""Tuning: studies and the journals of their Optuna storage.

Mounted under ``/api/2.0/slipway/tuning``, in the style of the rest of Slipway's API: ``GET``
fields come from the query string, ``POST`` sends a JSON object; unknown fields, missing
required fields and wrong types are 400 ``INVALID_PARAMETER_VALUE``; errors are
``{"error_code", "message"}`` with MLflow's codes (an unknown study is 404
``RESOURCE_DOES_NOT_EXIST``, a study run by another process 409 ``RESOURCE_CONFLICT``).

Studies
    ``POST /studies/create`` name*, run_id*, experiment_id*, spec (an object) ->
    ``{"study"}``; ``GET /studies/get`` name* -> ``{"study"}``; ``GET /studies/list`` ->
    ``{"studies"}`` (newest first); ``POST /studies/claim`` name*, owner*, ttl_ms*,
    stale_owner -> ``{"study"}``; ``POST /studies/release`` name*, owner* -> ``{}``.
Journal
    ``GET /journal/read`` name*, log_number_from (default 0) -> ``{"logs"}``, the entries
    from that number on, each a JSON object as text; ``POST /journal/append`` name*, logs*
    (a list of JSON objects as text), log_number_from -> ``{"log_count"}``, the journal's new
    length, and with log_number_from ``"logs"``, the entries from that number on after the
    append (a writer's replay, without a second request).

A study record is ``{name, run_id, experiment_id, spec, created_time, log_count,
lease_owner, lease_expires}`` (the last two only while a process holds the study).
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from slipway.server import protocol as p
from slipway.server.context import ServerContext
from slipway.tuning.store.base import AbstractTuningStore, StudyRecord
from slipway.tuning.store.rest import study_json

PREFIX = "/api/2.0/slipway/tuning"

CREATE = frozenset({"name", "run_id", "experiment_id", "spec"})
BY_NAME = frozenset({"name"})
NOTHING: frozenset[str] = frozenset()
CLAIM = frozenset({"name", "owner", "ttl_ms", "stale_owner"})
RELEASE = frozenset({"name", "owner"})
READ = frozenset({"name", "log_number_from"})
APPEND = frozenset({"name", "logs", "log_number_from"})


def _spec(fields: p.Fields) -> dict[str, object]:
    value = fields.value("spec")
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise p.invalid("spec", value, "an object")
    return value


def study_routes(store: AbstractTuningStore) -> list[BaseRoute]:
    def answer(record: StudyRecord) -> Response:
        return p.json_response({"study": study_json(record)})

    async def create(request: Request) -> Response:
        f = await p.Fields.read(request, CREATE)
        record = await run_in_threadpool(
            store.create_study,
            f.string("name", required=True),
            f.string("run_id", required=True),
            f.string("experiment_id", required=True),
            _spec(f),
        )
        return answer(record)

    async def get(request: Request) -> Response:
        f = await p.Fields.read(request, BY_NAME)
        return answer(await run_in_threadpool(store.get_study, f.string("name", required=True)))

    async def list_studies(request: Request) -> Response:
        await p.Fields.read(request, NOTHING)
        found = await run_in_threadpool(store.list_studies)
        return p.json_response({"studies": [study_json(s) for s in found]})

    async def claim(request: Request) -> Response:
        f = await p.Fields.read(request, CLAIM)
        record = await run_in_threadpool(
            store.claim_study,
            f.string("name", required=True),
            f.string("owner", required=True),
            f.integer("ttl_ms", required=True),
            f.string("stale_owner"),
        )
        return answer(record)

    async def release(request: Request) -> Response:
        f = await p.Fields.read(request, RELEASE)
        name = f.string("name", required=True)
        await run_in_threadpool(store.release_study, name, f.string("owner", required=True))
        return p.empty_response()

    return [
        Route("/studies/create", create, methods=["POST"]),
        Route("/studies/get", get, methods=["GET"]),
        Route("/studies/list", list_studies, methods=["GET"]),
        Route("/studies/claim", claim, methods=["POST"]),
        Route("/studies/release", release, methods=["POST"]),
    ]


def journal_routes(store: AbstractTuningStore) -> list[BaseRoute]:
    async def read(request: Request) -> Response:
        f = await p.Fields.read(request, READ)
        name = f.string("name", required=True)
        start = f.integer("log_number_from", default=0)
        logs = await run_in_threadpool(store.read_journal, name, start)
        return p.json_response({"logs": logs})

    async def append(request: Request) -> Response:
        f = await p.Fields.read(request, APPEND)
        name = f.string("name", required=True)
        count, logs = await run_in_threadpool(
            store.append_journal, name, f.strings("logs"), f.integer("log_number_from")
        )
        out: dict[str, object] = {"log_count": count}
        if f.has("log_number_from"):
            out["logs"] = logs
        return p.json_response(out)

    return [
        Route("/journal/read", read, methods=["GET"]),
        Route("/journal/append", append, methods=["POST"]),
    ]


def routes(ctx: ServerContext) -> list[BaseRoute]:
    """Every route of this module, to mount under :data:`PREFIX`."""
    return [*study_routes(ctx.tuning_store), *journal_routes(ctx.tuning_store)]
