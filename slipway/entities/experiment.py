"""Experiments: named groups of runs with an artifact location and tags."""

from __future__ import annotations

from dataclasses import dataclass, field

from slipway.entities.enums import LifecycleStage
from slipway.entities.metric import ExperimentTag


@dataclass(slots=True)
class Experiment:
    """An experiment. The "Default" experiment always exists and has id ``"0"``."""

    experiment_id: str
    name: str
    artifact_location: str
    lifecycle_stage: LifecycleStage = LifecycleStage.ACTIVE
    creation_time: int | None = None
    last_update_time: int | None = None
    tags: dict[str, str] = field(default_factory=dict)

    DEFAULT_EXPERIMENT_ID = "0"
    DEFAULT_EXPERIMENT_NAME = "Default"

    def to_dict(self) -> dict[str, object]:
        return {
            "experiment_id": self.experiment_id,
            "name": self.name,
            "artifact_location": self.artifact_location,
            "lifecycle_stage": str(self.lifecycle_stage),
            "creation_time": self.creation_time,
            "last_update_time": self.last_update_time,
            "tags": [ExperimentTag(k, v).to_dict() for k, v in self.tags.items()],
        }
