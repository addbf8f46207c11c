"""Runs: one execution of training code, with its info, data and inputs."""

from __future__ import annotations

from dataclasses import dataclass, field

from slipway.entities.dataset import DatasetInput
from slipway.entities.enums import LifecycleStage, RunStatus
from slipway.entities.metric import Metric, Param, RunTag


@dataclass(slots=True)
class RunInfo:
    run_id: str
    experiment_id: str
    run_name: str
    user_id: str
    status: RunStatus
    start_time: int | None
    end_time: int | None
    artifact_uri: str
    lifecycle_stage: LifecycleStage = LifecycleStage.ACTIVE

    @property
    def run_uuid(self) -> str:
        """MLflow's deprecated name for ``run_id``."""
        return self.run_id

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "run_id": self.run_id,
            "run_uuid": self.run_id,
            "run_name": self.run_name,
            "experiment_id": self.experiment_id,
            "user_id": self.user_id,
            "status": str(self.status),
            "start_time": self.start_time,
            "artifact_uri": self.artifact_uri,
            "lifecycle_stage": str(self.lifecycle_stage),
        }
        if self.end_time is not None:
            out["end_time"] = self.end_time
        return out


@dataclass(slots=True)
class RunData:
    """Latest metric values, params and tags of a run.

    ``metrics``, ``params`` and ``tags`` are plain dicts for convenience; ``metric_records`` keeps
    the latest :class:`Metric` per key with its step and timestamp.
    """

    metric_records: list[Metric] = field(default_factory=list)
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def metrics(self) -> dict[str, float]:
        return {m.key: m.value for m in self.metric_records}

    def to_dict(self) -> dict[str, object]:
        return {
            "metrics": [m.to_dict() for m in self.metric_records],
            "params": [Param(k, v).to_dict() for k, v in self.params.items()],
            "tags": [RunTag(k, v).to_dict() for k, v in self.tags.items()],
        }


@dataclass(slots=True)
class RunInputs:
    dataset_inputs: list[DatasetInput] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {"dataset_inputs": [d.to_dict() for d in self.dataset_inputs]}


@dataclass(slots=True)
class Run:
    info: RunInfo
    data: RunData = field(default_factory=RunData)
    inputs: RunInputs = field(default_factory=RunInputs)

    def to_dict(self) -> dict[str, object]:
        return {
            "info": self.info.to_dict(),
            "data": self.data.to_dict(),
            "inputs": self.inputs.to_dict(),
        }
