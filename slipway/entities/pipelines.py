"""Pipeline runs, step executions, cache entries, artifact links and schedules: plain records.

A pipeline run *is* a tracking run (``run_id`` is the id of the run that the pipeline run's
metrics and tags live on); each step execution is a child run of it. These records hold what
the tracking run cannot: the graph that was run, each step's state, inputs and outputs, the
cache and the schedules. Parameter values and artifact references are JSON values.

An artifact reference (in a step's ``inputs``/``outputs`` and in the cache) is a dict::

    {"uri": "<artifact URI>", "digest": "sha256:<hex>", "type": "Dataset",
     "metadata": {...}, "producer": "<task id>"}
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class PipelineRunStatus(enum.StrEnum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLING = "CANCELLING"
    """Cancel was asked for; the executor stops its running steps and then marks CANCELLED."""
    CANCELLED = "CANCELLED"

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL_RUN


_TERMINAL_RUN = frozenset(
    {PipelineRunStatus.SUCCEEDED, PipelineRunStatus.FAILED, PipelineRunStatus.CANCELLED}
)


class StepStatus(enum.StrEnum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    RETRYING = "RETRYING"
    """An attempt failed and the next one waits for its backoff."""
    SUCCEEDED = "SUCCEEDED"
    CACHED = "CACHED"
    """Outputs were reused from the cache (or, on resume, from the run's earlier attempt)."""
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"
    """Its condition was false, or an upstream step was skipped or failed."""
    CANCELLED = "CANCELLED"

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL_STEP

    @property
    def done_ok(self) -> bool:
        """Finished with outputs that downstream steps can use."""
        return self in (StepStatus.SUCCEEDED, StepStatus.CACHED)


_TERMINAL_STEP = frozenset(
    {
        StepStatus.SUCCEEDED,
        StepStatus.CACHED,
        StepStatus.FAILED,
        StepStatus.SKIPPED,
        StepStatus.CANCELLED,
    }
)


@dataclass(slots=True)
class PipelineRun:
    """One execution of a pipeline (resumes included: ``attempt`` counts them, from 1)."""

    run_id: str
    experiment_id: str
    pipeline_name: str
    status: PipelineRunStatus
    start_time: int
    end_time: int | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    graph: dict[str, Any] = field(default_factory=dict)
    """The validated graph that ran (``PipelineGraph.to_dict()``), for the UI and resume."""
    source: str | None = None
    """The pipeline file (``path/to/file.py``, or ``path:function``) it was loaded from."""
    attempt: int = 1
    schedule_id: str | None = None
    user_id: str | None = None
    message: str | None = None
    """Why it failed or was cancelled, in one line."""


@dataclass(slots=True)
class PipelineStep:
    """The state of one task instance of a pipeline run.

    ``task_id`` is unique within the run: the task's name, with one ``[i]`` per enclosing
    parallel_for iteration (``train[2]``, ``inner[0][1]``); ``task_name`` is the graph's task.
    """

    pipeline_run_id: str
    task_id: str
    task_name: str
    component: str
    status: StepStatus
    attempt: int = 0
    """The number of the latest attempt (1-based; 0 before the first starts)."""
    run_id: str | None = None
    """The tracking run of the latest attempt (a child of the pipeline run)."""
    cache_key: str | None = None
    cached_from: str | None = None
    """The step run whose outputs a CACHED step reused."""
    start_time: int | None = None
    end_time: int | None = None
    inputs: dict[str, Any] = field(default_factory=dict)
    """``{"parameters": {name: value}, "artifacts": {name: ref or [refs]}}``."""
    outputs: dict[str, Any] = field(default_factory=dict)
    """``{"parameters": {name: value}, "artifacts": {name: ref}}``."""
    message: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    """Where and how it ran: ``{"pid": ..., "host": ..., "node_id": ..., "attempts": [...]}``."""


@dataclass(slots=True)
class CacheEntry:
    """Outputs of a successful step, keyed by its cache key (see the executor's cache module)."""

    key: str
    component: str
    outputs: dict[str, Any]
    run_id: str
    """The step run that produced the outputs."""
    pipeline_run_id: str
    task_id: str
    created_time: int


@dataclass(slots=True)
class ArtifactLink:
    """One artifact produced (``direction="output"``) or consumed (``"input"``) by a step."""

    pipeline_run_id: str
    task_id: str
    direction: str
    name: str
    uri: str
    digest: str | None
    run_id: str | None = None


@dataclass(slots=True)
class Schedule:
    """A pipeline started on a cron expression (UTC) by ``slipway server`` or
    ``slipway scheduler``."""

    schedule_id: str
    name: str
    source: str
    """The pipeline file (``path.py`` or ``path.py:function``)."""
    cron: str
    parameters: dict[str, Any] = field(default_factory=dict)
    experiment_id: str | None = None
    paused: bool = False
    created_time: int = 0
    next_run_time: int | None = None
    last_run_time: int | None = None
    last_run_id: str | None = None
    user_id: str | None = None


__all__ = [
    "ArtifactLink",
    "CacheEntry",
    "PipelineRun",
    "PipelineRunStatus",
    "PipelineStep",
    "Schedule",
    "StepStatus",
]
