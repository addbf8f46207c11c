"""What the executor writes: the pipeline's run, each step attempt's child run, step states,
logs and cache entries.

The tracking store holds runs (so every step shows up beside other runs, with its params,
metrics and artifacts); the pipeline store holds the pipeline run, step states and the cache.
Both are the stores of one tracking URI, so a pipeline run against ``slipway server`` records
everything there.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from typing import Any

from slipway.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunTag
from slipway.entities.enums import RunStatus
from slipway.entities.pipelines import PipelineStep, StepStatus
from slipway.entities.registry import PIPELINE_RUN_TAG, PIPELINE_STEP_TAG
from slipway.exceptions import InvalidParameterValue
from slipway.pipelines.store.base import AbstractPipelineStore
from slipway.tracking.fluent import PARENT_RUN_TAG
from slipway.tracking.store.base import AbstractTrackingStore

RUN_NAME_TAG = "mlflow.runName"
PIPELINE_NAME_TAG = "slipway.pipeline.name"
COMPONENT_TAG = "slipway.pipeline.component"
ATTEMPT_TAG = "slipway.pipeline.attempt"
CACHED_FROM_TAG = "slipway.pipeline.cached_from"
OUTPUT_TAG_PREFIX = "slipway.pipeline.output."
PARAM_VALUE_MAX = 6000
TAG_VALUE_MAX = 5000
LOG_LIMIT_BYTES = 5 * 1024 * 1024


def now_ms() -> int:
    return int(time.time() * 1000)


def text_value(value: Any, limit: int) -> str:
    """A parameter value as the text a run records (JSON for lists and dicts)."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def experiment_for(
    tracking: AbstractTrackingStore, name: str | None, experiment_id: str | None
) -> str:
    """The experiment a pipeline run goes to: by id, by name (created when missing), else the
    default experiment."""
    if experiment_id is not None:
        return tracking.get_experiment(experiment_id).experiment_id
    if name is None:
        name = os.environ.get("SLIPWAY_EXPERIMENT_NAME")
    if name is None:
        return "0"
    found = tracking.get_experiment_by_name(name)
    if found is None:
        try:
            return tracking.create_experiment(name)
        except Exception:  # created by another process meanwhile
            found = tracking.get_experiment_by_name(name)
            if found is None:
                raise
    if found.lifecycle_stage != "active":
        raise InvalidParameterValue(f"experiment {name!r} is deleted; restore it or pick another")
    return found.experiment_id


class Recorder:
    """Writes one pipeline run's records."""

    def __init__(
        self,
        tracking: AbstractTrackingStore,
        store: AbstractPipelineStore,
        pipeline_run_id: str,
        experiment_id: str,
    ) -> None:
        self.tracking = tracking
        self.store = store
        self.pipeline_run_id = pipeline_run_id
        self.experiment_id = experiment_id

    def step_run(
        self,
        step_id: str,
        component: str,
        attempt: int,
        parameters: Mapping[str, Any],
        extra_tags: Mapping[str, str] | None = None,
    ) -> tuple[str, str]:
        """Create the child run of one step attempt, with its parameters; ``(run_id,
        artifact_uri)``."""
        tags = [
            RunTag(PARENT_RUN_TAG, self.pipeline_run_id),
            RunTag(PIPELINE_RUN_TAG, self.pipeline_run_id),
            RunTag(PIPELINE_STEP_TAG, step_id),
            RunTag(COMPONENT_TAG, component),
            RunTag(ATTEMPT_TAG, str(attempt)),
            *(RunTag(k, v) for k, v in (extra_tags or {}).items()),
        ]
        run = self.tracking.create_run(
            self.experiment_id, start_time=now_ms(), tags=tags, run_name=step_id
        )
        params = [Param(k, text_value(v, PARAM_VALUE_MAX)) for k, v in parameters.items()]
        if params:
            self.tracking.log_batch(run.info.run_id, params=params[:100])
            for start in range(100, len(params), 100):
                self.tracking.log_batch(run.info.run_id, params=params[start : start + 100])
        return run.info.run_id, run.info.artifact_uri

    def log_dataset_inputs(self, run_id: str, artifacts: Mapping[str, Any]) -> None:
        """Input artifacts of type Dataset, as the run's dataset inputs (name, digest), so the
        registry's lineage reaches them from a model version."""
        found = []
        for name, value in artifacts.items():
            for ref in value if isinstance(value, list) else [value]:
                if not isinstance(ref, dict) or ref.get("type") != "Dataset":
                    continue
                digest = str(ref.get("digest") or "").removeprefix("sha256:")[:32]
                dataset = Dataset(
                    name=f"{ref.get('producer') or 'input'}.{name}",
                    digest=digest,
                    source_type="pipeline",
                    source=json.dumps({"uri": ref.get("uri")}),
                )
                found.append(DatasetInput(dataset, (InputTag(DatasetInput.CONTEXT_TAG, name),)))
        if found:
            self.tracking.log_inputs(run_id, found)

    def finish_step_run(
        self, run_id: str, ok: bool, outputs: Mapping[str, Any] | None = None
    ) -> None:
        """Record output parameters (numbers as metrics too) and end the run."""
        if outputs:
            tags, metrics = [], []
            for key, value in (outputs.get("parameters") or {}).items():
                tags.append(RunTag(OUTPUT_TAG_PREFIX + key, text_value(value, TAG_VALUE_MAX)))
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    metrics.append(Metric(f"output.{key}", float(value), now_ms(), 0))
            if tags or metrics:
                self.tracking.log_batch(run_id, metrics=metrics[:1000], tags=tags[:100])
        self.tracking.update_run_info(
            run_id, run_status=RunStatus.FINISHED if ok else RunStatus.FAILED, end_time=now_ms()
        )

    def kill_step_run(self, run_id: str) -> None:
        self.tracking.update_run_info(run_id, run_status=RunStatus.KILLED, end_time=now_ms())

    def save(self, step: PipelineStep) -> PipelineStep:
        return self.store.upsert_step(step)

    def upload_logs(self, artifact_uri: str, paths: Mapping[str, str | None]) -> None:
        """Keep a step's stdout/stderr as ``logs/<name>.txt`` artifacts of its run."""
        upload_logs(artifact_uri, paths)


def upload_logs(artifact_uri: str, paths: Mapping[str, str | None]) -> None:
    """Store the log files at ``paths`` (by name: ``stdout``, ``stderr``) as ``logs/<name>.txt``
    artifacts under ``artifact_uri`` (a log larger than :data:`LOG_LIMIT_BYTES` keeps its head
    and tail); empty or missing logs are left out. Ray nodes call it for the steps they ran."""
    from slipway.artifacts import get_artifact_repository

    repo = None
    for name, path in paths.items():
        if not path or not os.path.exists(path) or os.path.getsize(path) == 0:
            continue
        repo = repo or get_artifact_repository(artifact_uri)
        target = os.path.join(os.path.dirname(path), "upload", f"{name}.txt")
        os.makedirs(os.path.dirname(target), exist_ok=True)
        _capped_copy(path, target, LOG_LIMIT_BYTES)
        repo.log_artifact(target, "logs")


def _capped_copy(source: str, target: str, limit: int) -> None:
    """Copy ``source`` to ``target``; beyond ``limit`` bytes keep the first and last halves
    with a line saying how much was left out."""
    size = os.path.getsize(source)
    if size <= limit:
        try:
            os.link(source, target)
        except OSError:  # another file system, or one without hard links
            _copy(source, target)
        return
    half = limit // 2
    with open(source, "rb") as src, open(target, "wb") as dst:
        dst.write(src.read(half))
        dst.write(f"\n... [{size - 2 * half} bytes left out] ...\n".encode())
        src.seek(size - half)
        dst.write(src.read(half))


def _copy(source: str, target: str) -> None:
    import shutil

    shutil.copyfile(source, target)


def step_record(
    pipeline_run_id: str, task_id: str, task_name: str, component: str, status: StepStatus
) -> PipelineStep:
    return PipelineStep(pipeline_run_id, task_id, task_name, component, status)


__all__ = ["Recorder", "experiment_for", "now_ms", "step_record", "text_value", "upload_logs"]
