"""Pipeline records as JSON objects, the same way in both directions of the REST API.

A record is sent as an object keyed by its field names (``PipelineRun`` -> ``{"run_id", ...}``);
a field that is None is left out, an enum is sent by value, dicts travel as JSON objects. The
client sends records in request bodies with :func:`record_json` and reads answers with the
``*_of`` functions; the server reads request fields with the same names (the ``*_FIELDS`` sets)
and answers with :func:`record_json`, so the two cannot drift apart. This module is shared by
:mod:`slipway.pipelines.store.rest` and the server (which may import it, while nothing may
import the server).
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any, TypeVar

from slipway.entities.pipelines import (
    ArtifactLink,
    CacheEntry,
    PipelineRun,
    PipelineRunStatus,
    PipelineStep,
    Schedule,
    StepStatus,
)

R = TypeVar("R")


def _names(kind: type[Any]) -> frozenset[str]:
    return frozenset(f.name for f in dataclasses.fields(kind))


PIPELINE_RUN_FIELDS = _names(PipelineRun)
STEP_FIELDS = _names(PipelineStep)
CACHE_ENTRY_FIELDS = _names(CacheEntry)
LINK_FIELDS = _names(ArtifactLink)
SCHEDULE_FIELDS = _names(Schedule)


def record_json(record: Any) -> dict[str, Any]:
    """A pipeline record (any of :mod:`slipway.entities.pipelines`' dataclasses) as JSON."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(record):
        value = getattr(record, f.name)
        if value is None:
            continue
        out[f.name] = value.value if isinstance(value, enum.Enum) else value
    return out


def _object(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TypeError(f"expected an object, got {type(value).__name__}")
    return value


def _build(kind: type[R], d: dict[str, Any], objects: tuple[str, ...]) -> R:
    """``kind(**d)`` with the known fields of ``d`` (unknown ones are ignored: a newer server
    may send more); ``objects`` are dict fields, ``{}`` when missing."""
    names = _names(kind)
    values = {k: v for k, v in d.items() if k in names}
    for name in objects:
        values[name] = _object(values.get(name))
    return kind(**values)


def pipeline_run_of(d: dict[str, Any]) -> PipelineRun:
    run = _build(PipelineRun, d, ("parameters", "graph"))
    run.status = PipelineRunStatus(run.status)
    return run


def step_of(d: dict[str, Any]) -> PipelineStep:
    step = _build(PipelineStep, d, ("inputs", "outputs", "details"))
    step.status = StepStatus(step.status)
    return step


def cache_entry_of(d: dict[str, Any]) -> CacheEntry:
    return _build(CacheEntry, d, ("outputs",))


def link_of(d: dict[str, Any]) -> ArtifactLink:
    return _build(ArtifactLink, {"digest": None, **d}, ())


def schedule_of(d: dict[str, Any]) -> Schedule:
    return _build(Schedule, d, ("parameters",))


__all__ = [
    "CACHE_ENTRY_FIELDS",
    "LINK_FIELDS",
    "PIPELINE_RUN_FIELDS",
    "SCHEDULE_FIELDS",
    "STEP_FIELDS",
    "cache_entry_of",
    "link_of",
    "pipeline_run_of",
    "record_json",
    "schedule_of",
    "step_of",
]
