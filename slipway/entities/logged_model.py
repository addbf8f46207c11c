"""Logged models: a model saved during (or outside) a run, with its own id, artifacts, params,
tags and metrics, as MLflow 3 records them.

A logged model is created ``PENDING``, its files are uploaded to its ``artifact_location``,
and it is finalized ``READY`` (or ``FAILED``). Runs point at the models they produced
(outputs) and used (inputs).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field

from slipway.entities.enums import LifecycleStage


class LoggedModelStatus(enum.StrEnum):
    """The state of a logged model. Stored and shown by name; on the wire MLflow spells these
    ``LOGGED_MODEL_PENDING`` / ``LOGGED_MODEL_READY`` / ``LOGGED_MODEL_UPLOAD_FAILED`` (numbers
    1, 2 and 3)."""

    PENDING = "PENDING"
    READY = "READY"
    FAILED = "FAILED"

    @property
    def wire_name(self) -> str:
        """The name of the status in MLflow's protocol enum."""
        return _WIRE_NAMES[self]

    @property
    def number(self) -> int:
        """The number of the status in MLflow's protocol enum."""
        return _NUMBERS[self]

    @property
    def is_finalized(self) -> bool:
        return self is not LoggedModelStatus.PENDING

    @classmethod
    def parse(cls, value: object) -> LoggedModelStatus:
        """Accept a status, its name (any case), its wire name or its wire number."""
        from slipway.exceptions import InvalidParameterValue

        if isinstance(value, LoggedModelStatus):
            return value
        if isinstance(value, str):
            text = value.strip().upper()
            if text.isdigit():
                value = int(text)
            else:
                for status in cls:
                    if text in (status.value, status.wire_name):
                        return status
        if isinstance(value, int) and not isinstance(value, bool):
            for status in cls:
                if status.number == value:
                    return status
        raise InvalidParameterValue(
            f"Invalid logged model status {value!r}: expected one of "
            f"{', '.join(s.wire_name for s in cls)} (or {', '.join(cls.__members__)})"
        )


_WIRE_NAMES = {
    LoggedModelStatus.PENDING: "LOGGED_MODEL_PENDING",
    LoggedModelStatus.READY: "LOGGED_MODEL_READY",
    LoggedModelStatus.FAILED: "LOGGED_MODEL_UPLOAD_FAILED",
}
_NUMBERS = {
    LoggedModelStatus.PENDING: 1,
    LoggedModelStatus.READY: 2,
    LoggedModelStatus.FAILED: 3,
}


@dataclass(frozen=True, slots=True)
class LoggedModelTag:
    """A tag of a logged model; tags can be overwritten and deleted."""

    key: str
    value: str

    def to_dict(self) -> dict[str, str]:
        return {"key": self.key, "value": self.value}


@dataclass(frozen=True, slots=True)
class LoggedModelParameter:
    """A parameter of a logged model; like a run's, it cannot change once set."""

    key: str
    value: str

    def to_dict(self) -> dict[str, str]:
        return {"key": self.key, "value": self.value}


@dataclass(frozen=True, slots=True)
class LoggedModelMetric:
    """One metric point recorded for a logged model (by a run, possibly on a dataset).

    Args:
        model_id: the model the point belongs to.
        key: metric name.
        value: the value (NaN and +/-inf allowed).
        timestamp: milliseconds since the epoch.
        step: the training step.
        run_id: the run that logged the point, if any.
        dataset_name: the dataset the metric was computed on, if any.
        dataset_digest: that dataset's digest, if any.
    """

    model_id: str
    key: str
    value: float
    timestamp: int
    step: int = 0
    run_id: str | None = None
    dataset_name: str | None = None
    dataset_digest: str | None = None

    def to_dict(self) -> dict[str, object]:
        """MLflow's ``Metric`` message, with the model, run and dataset it belongs to."""
        out: dict[str, object] = {
            "key": self.key,
            "value": _json_float(self.value),
            "timestamp": self.timestamp,
            "step": self.step,
        }
        if self.dataset_name:
            out["dataset_name"] = self.dataset_name
        if self.dataset_digest:
            out["dataset_digest"] = self.dataset_digest
        out["model_id"] = self.model_id
        if self.run_id:
            out["run_id"] = self.run_id
        return out


@dataclass(frozen=True, slots=True)
class LoggedModelOutput:
    """A model a run produced, at a step."""

    model_id: str
    step: int = 0

    def to_dict(self) -> dict[str, object]:
        return {"model_id": self.model_id, "step": self.step}


@dataclass(frozen=True, slots=True)
class LoggedModelInput:
    """A model a run used."""

    model_id: str

    def to_dict(self) -> dict[str, str]:
        return {"model_id": self.model_id}


@dataclass(slots=True)
class LoggedModel:
    """A logged model.

    Args:
        model_id: ``m-`` followed by 32 hex digits.
        experiment_id: the experiment the model belongs to.
        name: a readable name ("model"); not unique.
        artifact_location: where its files live:
            ``<experiment artifact location>/models/<model_id>/artifacts``.
        creation_timestamp: milliseconds since the epoch.
        last_updated_timestamp: milliseconds since the epoch.
        status: PENDING until finalized READY or FAILED.
        model_type: a free-form type ("agent", ...), if given.
        source_run_id: the run that produced it, if any.
        status_message: why it failed, if given.
        tags, params: string key/value pairs.
        metrics: every metric point recorded for the model.
        lifecycle_stage: ``deleted`` once deleted (deleted models are hidden from searches).
    """

    model_id: str
    experiment_id: str
    name: str
    artifact_location: str
    creation_timestamp: int
    last_updated_timestamp: int
    status: LoggedModelStatus = LoggedModelStatus.PENDING
    model_type: str | None = None
    source_run_id: str | None = None
    status_message: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    metrics: list[LoggedModelMetric] = field(default_factory=list)
    lifecycle_stage: LifecycleStage = LifecycleStage.ACTIVE

    @property
    def model_uri(self) -> str:
        """The URI that loads the model: ``models:/<model_id>``."""
        return f"models:/{self.model_id}"

    def to_dict(self) -> dict[str, object]:
        """MLflow's ``LoggedModel`` message: ``info`` and ``data``, unset fields left out."""
        info: dict[str, object] = {
            "model_id": self.model_id,
            "experiment_id": self.experiment_id,
            "name": self.name,
            "creation_timestamp_ms": self.creation_timestamp,
            "last_updated_timestamp_ms": self.last_updated_timestamp,
            "artifact_uri": self.artifact_location,
            "status": self.status.wire_name,
        }
        if self.model_type:
            info["model_type"] = self.model_type
        if self.source_run_id:
            info["source_run_id"] = self.source_run_id
        if self.status_message:
            info["status_message"] = self.status_message
        if self.tags:
            info["tags"] = [LoggedModelTag(k, v).to_dict() for k, v in self.tags.items()]
        data: dict[str, object] = {}
        if self.params:
            data["params"] = [LoggedModelParameter(k, v).to_dict() for k, v in self.params.items()]
        if self.metrics:
            data["metrics"] = [m.to_dict() for m in self.metrics]
        return {"info": info, "data": data}


def _json_float(value: float) -> float | str:
    """JSON has no NaN or infinity; MLflow's wire format spells them as strings."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value
