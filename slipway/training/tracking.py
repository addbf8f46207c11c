"""The job's run, seen from the launcher: created before any worker starts, ended by the
launcher alone.

One run per job holds the launch settings as params, rank 0's metrics, every rank's system
metrics and logs, the checkpoints, the restart count, and, when the job fails, which rank
failed first and how. Workers find it through the environment (see :mod:`.env`); none of them
ever sets its final status, since only the launcher sees the whole job.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slipway.entities import Param, RunStatus, RunTag
from slipway.exceptions import InvalidParameterValue, SlipwayError
from slipway.tracking.client import SlipwayClient, make_metric
from slipway.training.logs import DEFAULT_CAP_BYTES, AttemptLogs, capped_log, log_artifact_name
from slipway.utils import validation as v

__all__ = [
    "ERROR_TAG",
    "FAILED_RANK_TAG",
    "RESTARTS_METRIC",
    "RESTARTS_TAG",
    "JobRun",
    "create_job_run",
    "resolve_experiment_id",
]

RESTARTS_METRIC = "restarts"
RESTARTS_TAG = "slipway.training.restarts"
FAILED_RANK_TAG = "slipway.training.failed_rank"
ERROR_TAG = "slipway.training.error"
CHECKPOINT_TAG = "slipway.training.checkpoint_step"
PARENT_RUN_TAG = "mlflow.parentRunId"
_MAX_ERROR_LENGTH = 4000


def resolve_experiment_id(
    client: SlipwayClient, experiment_name: str | None, fluent_default: bool
) -> str:
    """The experiment for the job: ``experiment_name`` (created when missing), else the
    fluent API's active experiment (``fluent_default``: the same store as the fluent API), else
    ``SLIPWAY_EXPERIMENT_ID`` / ``SLIPWAY_EXPERIMENT_NAME``, else the default one."""
    if experiment_name is None:
        if fluent_default:
            from slipway.tracking import fluent

            return fluent._current_experiment_id()
        if os.environ.get("SLIPWAY_EXPERIMENT_ID"):
            return os.environ["SLIPWAY_EXPERIMENT_ID"]
        experiment_name = os.environ.get("SLIPWAY_EXPERIMENT_NAME") or None
        if experiment_name is None:
            return "0"
    found = client.get_experiment_by_name(experiment_name)
    if found is None:
        try:
            return client.create_experiment(experiment_name)
        except SlipwayError as exc:  # created by another process meanwhile
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            found = client.get_experiment_by_name(experiment_name)
            assert found is not None
    if str(found.lifecycle_stage) != "active":
        raise InvalidParameterValue(
            f"Experiment {experiment_name!r} is deleted: restore it first "
            f"(slipway experiments restore {found.experiment_id}) or pick another name"
        )
    return found.experiment_id


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@dataclass
class JobRun:
    """The run of one training job."""

    client: SlipwayClient
    run_id: str
    artifact_uri: str

    def upload_logs(self, attempts: Sequence[AttemptLogs], cap: int = DEFAULT_CAP_BYTES) -> None:
        """Each rank's stdout and stderr, all attempts in order, as ``logs/rank_<r>.*.txt``."""
        repo = self.client.artifact_repository(self.run_id)
        ranks = sorted({r for a in attempts for r in (*a.stdout, *a.stderr)})
        for rank in ranks:
            for stream in ("stdout", "stderr"):
                parts: list[tuple[str, Path | None]] = []
                for attempt in attempts:
                    files = attempt.stdout if stream == "stdout" else attempt.stderr
                    path = files.get(rank)
                    header = f"===== attempt {attempt.attempt} =====\n" if len(attempts) > 1 else ""
                    parts.append((header, Path(path) if path else None))
                repo.log_bytes(capped_log(parts, cap), log_artifact_name(rank, stream))

    def finish(
        self,
        status: RunStatus,
        restarts: int,
        failed_rank: int | None = None,
        error: str | None = None,
        checkpoint_step: int | None = None,
    ) -> None:
        """Record how the job ended, then end the run with ``status``."""
        tags = {RESTARTS_TAG: str(restarts)}
        if failed_rank is not None:
            tags[FAILED_RANK_TAG] = str(failed_rank)
        if error:
            tags[ERROR_TAG] = (
                error if len(error) <= _MAX_ERROR_LENGTH else error[:_MAX_ERROR_LENGTH]
            )
        if checkpoint_step is not None:
            tags[CHECKPOINT_TAG] = str(checkpoint_step)
        self.client.log_batch(
            self.run_id,
            metrics=[make_metric(RESTARTS_METRIC, restarts)],
            tags=[v.validate_tag(RunTag(key, value)) for key, value in tags.items()],
        )
        self.client.set_terminated(self.run_id, status)


def create_job_run(
    client: SlipwayClient,
    experiment_id: str,
    run_name: str | None,
    params: Mapping[str, Any],
    source_name: str,
    parent_run_id: str | None = None,
) -> JobRun:
    """A new RUNNING run with the launch settings as params."""
    tags = {
        "mlflow.user": _user(),
        "mlflow.source.name": source_name,
        "mlflow.source.type": "LOCAL",
    }
    if parent_run_id:
        tags[PARENT_RUN_TAG] = parent_run_id
    run = client.create_run(
        experiment_id, tags=tags, run_name=run_name, user_id=tags["mlflow.user"]
    )
    run_id = run.info.run_id
    try:
        values = [v.validate_param(Param(k, _param_value(str(x)))) for k, x in params.items()]
        client.log_batch(run_id, params=values)  # one write: the run starts sooner
    except SlipwayError:
        client.set_terminated(run_id, RunStatus.FAILED)
        raise
    return JobRun(client, run_id, run.info.artifact_uri)


def _param_value(text: str) -> str:
    limit = v.MAX_PARAM_VAL_LENGTH
    return text if len(text) <= limit else text[: limit - 3] + "..."
