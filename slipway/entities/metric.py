"""Metrics, params and tags: the key/value records of runs and experiments."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Metric:
    """One point of a metric series. Metrics are append-only; NaN and infinities are allowed.

    Args:
        key: metric name.
        value: the value (a float; NaN and +/-inf accepted).
        timestamp: milliseconds since the epoch.
        step: the training step (0 when not given).
    """

    key: str
    value: float
    timestamp: int
    step: int = 0

    def to_dict(self) -> dict[str, object]:
        return {
            "key": self.key,
            "value": _json_float(self.value),
            "timestamp": self.timestamp,
            "step": self.step,
        }


@dataclass(frozen=True, slots=True)
class MetricWithRunId:
    """A metric point labelled with its run, as the bulk history queries return them."""

    run_id: str
    key: str
    value: float
    timestamp: int
    step: int

    def to_dict(self) -> dict[str, object]:
        return {
            "key": self.key,
            "value": _json_float(self.value),
            "timestamp": self.timestamp,
            "step": self.step,
            "run_id": self.run_id,
        }


@dataclass(frozen=True, slots=True)
class Param:
    """A run parameter. Immutable once logged: the same value again is accepted."""

    key: str
    value: str

    def to_dict(self) -> dict[str, str]:
        return {"key": self.key, "value": self.value}


@dataclass(frozen=True, slots=True)
class RunTag:
    """A run tag; tags can be overwritten and deleted."""

    key: str
    value: str

    def to_dict(self) -> dict[str, str]:
        return {"key": self.key, "value": self.value}


@dataclass(frozen=True, slots=True)
class ExperimentTag:
    key: str
    value: str

    def to_dict(self) -> dict[str, str]:
        return {"key": self.key, "value": self.value}


def _json_float(value: float) -> float | str:
    """JSON has no NaN or infinity; MLflow's wire format spells them as strings."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value
