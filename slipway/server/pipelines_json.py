"""Pipeline records in requests and answers of ``/api/2.0/slipway/pipelines``.

Both directions use :mod:`slipway.pipelines.store.wire` (field names as in the records, None
left out, enums by value), the module the REST client sends and reads with. This module adds
the server's side: reading a record out of a request's fields with their types checked, so a
wrong type is a 400 ``INVALID_PARAMETER_VALUE`` naming the field rather than an error deep in
the store.
"""

from __future__ import annotations

from typing import Any

from slipway.entities.pipelines import (
    CacheEntry,
    PipelineRun,
    PipelineRunStatus,
    PipelineStep,
    Schedule,
    StepStatus,
)
from slipway.pipelines.store.wire import (
    CACHE_ENTRY_FIELDS,
    PIPELINE_RUN_FIELDS,
    SCHEDULE_FIELDS,
    STEP_FIELDS,
    record_json,
)
from slipway.server import protocol as p
from slipway.server.routers.slipway_api import enum_of


def json_object(fields: p.Fields, name: str) -> dict[str, Any] | None:
    """A field holding a JSON object (parameters, a graph, inputs); None when absent."""
    value = fields.value(name)
    if value is None:
        return None
    if fields.from_query or not isinstance(value, dict):
        raise p.invalid(name, value, "an object")
    return value


def optional_boolean(fields: p.Fields, name: str) -> bool | None:
    return fields.boolean(name) if fields.has(name) else None


def run_status_of(fields: p.Fields, required: bool = False) -> PipelineRunStatus | None:
    """The status field; text naming no status is passed on for the store to refuse."""
    return enum_of(fields, "status", PipelineRunStatus, required=required)


def pipeline_run_from(f: p.Fields) -> PipelineRun:
    """Fields are read in the record's order, so the first missing one is the one named."""
    run_id = f.string("run_id", required=True)
    experiment_id = f.string("experiment_id", required=True)
    pipeline_name = f.string("pipeline_name", required=True)
    status = run_status_of(f, required=True)
    assert status is not None
    return PipelineRun(
        run_id=run_id,
        experiment_id=experiment_id,
        pipeline_name=pipeline_name,
        status=status,
        start_time=f.integer("start_time", required=True),
        end_time=f.integer("end_time"),
        parameters=json_object(f, "parameters") or {},
        graph=json_object(f, "graph") or {},
        source=f.string("source"),
        attempt=f.integer("attempt", default=1),
        schedule_id=f.string("schedule_id"),
        user_id=f.string("user_id"),
        message=f.string("message"),
    )


def step_from(f: p.Fields) -> PipelineStep:
    pipeline_run_id = f.string("pipeline_run_id", required=True)
    task_id = f.string("task_id", required=True)
    task_name = f.string("task_name", required=True)
    component = f.string("component", required=True)
    status = enum_of(f, "status", StepStatus, required=True)
    assert status is not None
    return PipelineStep(
        pipeline_run_id=pipeline_run_id,
        task_id=task_id,
        task_name=task_name,
        component=component,
        status=status,
        attempt=f.integer("attempt", default=0),
        run_id=f.string("run_id"),
        cache_key=f.string("cache_key"),
        cached_from=f.string("cached_from"),
        start_time=f.integer("start_time"),
        end_time=f.integer("end_time"),
        inputs=json_object(f, "inputs") or {},
        outputs=json_object(f, "outputs") or {},
        message=f.string("message"),
        details=json_object(f, "details") or {},
    )


def cache_entry_from(f: p.Fields) -> CacheEntry:
    key = f.string("key", required=True)
    component = f.string("component", required=True)
    outputs = json_object(f, "outputs")
    if outputs is None:
        raise p.missing("outputs")
    return CacheEntry(
        key=key,
        component=component,
        outputs=outputs,
        run_id=f.string("run_id", required=True),
        pipeline_run_id=f.string("pipeline_run_id", required=True),
        task_id=f.string("task_id", required=True),
        created_time=f.integer("created_time", required=True),
    )


def schedule_from(f: p.Fields) -> Schedule:
    return Schedule(
        schedule_id=f.string("schedule_id", required=True),
        name=f.string("name", required=True),
        source=f.string("source", required=True),
        cron=f.string("cron", required=True),
        parameters=json_object(f, "parameters") or {},
        experiment_id=f.string("experiment_id"),
        paused=f.boolean("paused"),
        created_time=f.integer("created_time", default=0),
        next_run_time=f.integer("next_run_time"),
        last_run_time=f.integer("last_run_time"),
        last_run_id=f.string("last_run_id"),
        user_id=f.string("user_id"),
    )


__all__ = [
    "CACHE_ENTRY_FIELDS",
    "PIPELINE_RUN_FIELDS",
    "SCHEDULE_FIELDS",
    "STEP_FIELDS",
    "cache_entry_from",
    "json_object",
    "optional_boolean",
    "pipeline_run_from",
    "record_json",
    "run_status_of",
    "schedule_from",
    "step_from",
]
