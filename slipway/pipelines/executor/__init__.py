"""Running pipelines: ``run``, ``resume`` and ``cancel``.

``run`` checks the parameters and the graph against the machine (or the Ray cluster) before
anything starts, records the pipeline run (a tracking run plus its pipeline record), executes
it with the local executor (each step a process of this machine) or the Ray executor (each step
a Ray task, see :mod:`slipway.pipelines.executor.ray`) and returns a :class:`PipelineResult`.
``resume`` runs a failed or cancelled run again under the same id: steps that succeeded keep
their outputs (unless ``from_step`` names them or something upstream of them), the rest run
with the pipeline's code as it is now.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from slipway.entities import Param, RunTag
from slipway.entities.enums import RunStatus
from slipway.entities.pipelines import PipelineRun, PipelineRunStatus, PipelineStep, StepStatus
from slipway.exceptions import InvalidParameterValue, InvalidState, ResourceDoesNotExist
from slipway.pipelines import types as ty
from slipway.pipelines.dsl import Pipeline
from slipway.pipelines.executor.launcher import LocalLauncher, make_launcher
from slipway.pipelines.executor.local import Execution
from slipway.pipelines.executor.records import (
    PARAM_VALUE_MAX,
    PIPELINE_NAME_TAG,
    Recorder,
    experiment_for,
    now_ms,
    text_value,
)
from slipway.pipelines.executor.runtime import Runtime, split_task_id
from slipway.pipelines.executor.step import warm_up
from slipway.pipelines.graph import PipelineGraph
from slipway.pipelines.store import get_pipeline_store
from slipway.tracking import uri as uris
from slipway.utils.user import current_user

_KEPT = (StepStatus.SUCCEEDED, StepStatus.CACHED)

UpdateCallback = Callable[[PipelineRun, list[PipelineStep]], None]

_RUN_STATUS = {
    PipelineRunStatus.SUCCEEDED: RunStatus.FINISHED,
    PipelineRunStatus.FAILED: RunStatus.FAILED,
    PipelineRunStatus.CANCELLED: RunStatus.KILLED,
}


@dataclass
class PipelineResult:
    """How a pipeline run ended: its record, its steps and the pipeline's return values."""

    run: PipelineRun
    steps: list[PipelineStep]
    outputs: dict[str, Any] = field(default_factory=dict)

    @property
    def run_id(self) -> str:
        return self.run.run_id

    @property
    def status(self) -> PipelineRunStatus:
        return self.run.status

    @property
    def succeeded(self) -> bool:
        return self.run.status == PipelineRunStatus.SUCCEEDED

    def step(self, task_id: str) -> PipelineStep:
        for step in self.steps:
            if step.task_id == task_id:
                return step
        raise ResourceDoesNotExist(f"Pipeline run {self.run_id} has no step {task_id!r}")

    def __repr__(self) -> str:
        return f"<PipelineResult {self.run.pipeline_name} {self.run_id} {self.status}>"


def bind_parameters(graph: PipelineGraph, given: Mapping[str, Any] | None) -> dict[str, Any]:
    """The pipeline's parameter values: ``given`` checked against their types, defaults for
    the rest; INVALID_PARAMETER_VALUE for an unknown, missing or mistyped parameter."""
    given = dict(given or {})
    unknown = sorted(k for k in given if k not in graph.parameters)
    if unknown:
        known = ", ".join(graph.parameters) or "none"
        raise InvalidParameterValue(
            f"pipeline {graph.name} has no parameter {unknown[0]!r} (parameters: {known})"
        )
    values: dict[str, Any] = {}
    for name, spec in graph.parameters.items():
        assert spec.param is not None
        if name in given:
            values[name] = ty.check_value(given[name], spec.param, f"parameter {name}")
        elif spec.has_default:
            values[name] = spec.default
        else:
            raise InvalidParameterValue(f"pipeline {graph.name}: parameter {name!r} is required")
    return values


def run(
    pipeline: Pipeline,
    parameters: Mapping[str, Any] | None = None,
    *,
    experiment_name: str | None = None,
    experiment_id: str | None = None,
    run_name: str | None = None,
    cache: bool = True,
    tracking_uri: str | None = None,
    max_parallel: int | None = None,
    source: str | None = None,
    schedule_id: str | None = None,
    on_update: UpdateCallback | None = None,
    executor: str = "local",
    ray_address: str | None = None,
    working_dir: str | os.PathLike[str] | None = None,
) -> PipelineResult:
    """Run ``pipeline`` with ``parameters`` and wait for it to end.

    Every step runs in its own process: on this machine (``executor="local"``), or as a Ray
    task on a node of the cluster at ``ray_address`` (``executor="ray"``; None starts a local
    Ray instance, ``"auto"`` joins the one running here). The pipeline run is a tracking run
    in ``experiment_name`` (or ``experiment_id``, else the default experiment) and each step
    attempt a child run. ``cache=False`` runs every step even where the cache holds its
    outputs. Ctrl-C cancels the running steps and returns a CANCELLED result. On Ray,
    ``working_dir`` is a folder of this machine shipped to the nodes (zipped once into Ray's
    object store, at most 256 MiB, without ``.git``, virtual environments, caches and
    ``.slipway``): each step runs in its node's copy, first on ``sys.path``.
    """
    if not isinstance(pipeline, Pipeline):
        raise InvalidParameterValue(f"run() takes a @pipeline, got {pipeline!r}")
    launcher = make_launcher(executor, ray_address, working_dir)
    if isinstance(launcher, LocalLauncher):
        warm_up()  # the fork server boots while the run is being recorded
    graph = pipeline.graph
    values = bind_parameters(graph, parameters)
    budget = launcher.budget(max_parallel)
    launcher.check(graph)
    uri = tracking_uri or uris.get_tracking_uri()
    tracking = uris.get_store(uri)
    store = get_pipeline_store(uri)
    exp_id = experiment_for(tracking, experiment_name, experiment_id)
    created = tracking.create_run(
        exp_id,
        start_time=now_ms(),
        tags=[RunTag(PIPELINE_NAME_TAG, graph.name)],
        run_name=run_name or graph.name,
    )
    run_id = created.info.run_id
    params = [Param(k, text_value(v, PARAM_VALUE_MAX)) for k, v in values.items()]
    if params:
        tracking.log_batch(run_id, params=params[:100])
    record = store.create_pipeline_run(
        PipelineRun(
            run_id=run_id,
            experiment_id=exp_id,
            pipeline_name=graph.name,
            status=PipelineRunStatus.RUNNING,
            start_time=created.info.start_time or now_ms(),
            parameters=values,
            graph=graph.to_dict(),
            source=source,
            schedule_id=schedule_id,
            user_id=current_user(),
        )
    )
    execution = Execution(
        run=record,
        graph=graph,
        runtime=Runtime(graph, values),
        recorder=Recorder(tracking, store, run_id, exp_id),
        tracking_uri=uri,
        budget=budget,
        cache=cache,
        on_update=on_update,
        launcher=launcher,
    )
    return _execute(execution)


def resume(
    run_id: str,
    pipeline: Pipeline | None = None,
    *,
    from_step: str | None = None,
    cache: bool = True,
    tracking_uri: str | None = None,
    max_parallel: int | None = None,
    on_update: UpdateCallback | None = None,
    executor: str = "local",
    ray_address: str | None = None,
    working_dir: str | os.PathLike[str] | None = None,
) -> PipelineResult:
    """Run a failed or cancelled pipeline run again under the same id.

    Steps that succeeded keep their outputs; the failed ones and everything downstream run
    again, with ``pipeline`` (by default loaded again from the run's source file, so fixes to
    the code take effect). ``from_step`` (a task name) also re-runs that task and what follows
    it, even if they succeeded; it may resume a run that succeeded. ``executor`` and
    ``ray_address`` and ``working_dir`` are as for :func:`run` (a run may resume on another
    executor).
    """
    launcher = make_launcher(executor, ray_address, working_dir)
    if isinstance(launcher, LocalLauncher):
        warm_up()
    uri = tracking_uri or uris.get_tracking_uri()
    store = get_pipeline_store(uri)
    tracking = uris.get_store(uri)
    previous = store.get_pipeline_run(run_id)
    if previous.status in (
        PipelineRunStatus.RUNNING,
        PipelineRunStatus.QUEUED,
        PipelineRunStatus.CANCELLING,
    ):
        raise InvalidState(
            f"pipeline run {run_id} is {previous.status.value.lower()}; cancel it or wait for "
            "it to end before resuming"
        )
    if previous.status == PipelineRunStatus.SUCCEEDED and from_step is None:
        raise InvalidState(
            f"pipeline run {run_id} succeeded: nothing to resume (to run steps again, give "
            "--from STEP)"
        )
    if pipeline is None:
        if not previous.source:
            raise InvalidParameterValue(
                f"pipeline run {run_id} does not say which file it came from; pass the pipeline"
            )
        from slipway.pipelines.loader import load_pipeline

        pipeline = load_pipeline(previous.source)
    graph = pipeline.graph
    if graph.name != previous.pipeline_name:
        raise InvalidParameterValue(
            f"pipeline run {run_id} ran pipeline {previous.pipeline_name!r}, not {graph.name!r}"
        )
    values = bind_parameters(graph, previous.parameters)
    budget = launcher.budget(max_parallel)
    launcher.check(graph)
    rerun: set[str] = set()
    if from_step is not None:
        name, _ = split_task_id(from_step)
        if name not in graph.tasks:
            raise InvalidParameterValue(
                f"pipeline {graph.name} has no task {from_step!r} (tasks: {', '.join(graph.tasks)})"
            )
        rerun = graph.downstream({name})
    steps = store.list_steps(run_id)
    unfinished = {
        s.task_name
        for s in steps
        if s.task_name in graph.tasks and s.status not in _KEPT and s.status != StepStatus.SKIPPED
    }
    rerun |= graph.downstream(unfinished)  # what failed, and what ran after it (exit tasks)
    reuse = {
        step.task_id: step
        for step in steps
        if step.status in _KEPT and step.task_name in graph.tasks and step.task_name not in rerun
    }
    record = store.update_pipeline_run(
        run_id,
        status=PipelineRunStatus.RUNNING,
        attempt=previous.attempt + 1,
        graph=graph.to_dict(),
        clear_end=True,
    )
    tracking.update_run_info(run_id, run_status=RunStatus.RUNNING)
    execution = Execution(
        run=record,
        graph=graph,
        runtime=Runtime(graph, values),
        recorder=Recorder(tracking, store, run_id, previous.experiment_id),
        tracking_uri=uri,
        budget=budget,
        cache=cache,
        reuse=reuse,
        on_update=on_update,
        launcher=launcher,
    )
    return _execute(execution)


def cancel(run_id: str, tracking_uri: str | None = None) -> PipelineRun:
    """Ask the executor of a running pipeline run to stop it (it marks the run CANCELLED once
    its steps are stopped). A run that has ended is returned as it is."""
    return get_pipeline_store(tracking_uri).request_cancel(run_id)


def _execute(execution: Execution) -> PipelineResult:
    run_id = execution.run.run_id
    store = execution.recorder.store
    tracking = execution.recorder.tracking
    error: BaseException | None = None
    try:
        execution.execute()
    except BaseException as exc:  # recorded as a failed run, then raised again
        error = exc
    steps = sorted(
        store.list_steps(run_id),
        key=lambda s: (execution.runtime.order.get(s.task_name, 1 << 30), s.task_id),
    )
    if error is not None:
        status, message = PipelineRunStatus.FAILED, f"{type(error).__name__}: {error}"
    elif execution.cancelled:
        status, message = PipelineRunStatus.CANCELLED, "cancelled"
    else:
        failed = [s for s in steps if s.status == StepStatus.FAILED]
        if failed:
            status = PipelineRunStatus.FAILED
            message = f"step {failed[0].task_id} failed: {failed[0].message}"
            if len(failed) > 1:
                message += f" (and {len(failed) - 1} more)"
        else:
            status, message = PipelineRunStatus.SUCCEEDED, None
    end = now_ms()
    record = store.update_pipeline_run(run_id, status=status, end_time=end, message=message)
    tracking.update_run_info(run_id, run_status=_RUN_STATUS[status], end_time=end)
    if error is not None:
        raise error
    return PipelineResult(record, steps, execution.runtime.pipeline_outputs())


__all__ = ["PipelineResult", "bind_parameters", "cancel", "resume", "run"]
