"""MLflow REST JSON to Slipway entities, and entities to request fields.

The server speaks proto3 JSON: int64 fields may arrive as numbers or as strings, doubles as
numbers or as ``"NaN"``/``"Infinity"``/``"-Infinity"``, enums by name (or number), and empty
or default fields may be left out. Every parser here accepts all of those forms. An answer that
does not have the expected shape raises :class:`~slipway.exceptions.SlipwayError`
(``INTERNAL_ERROR``) naming what was wrong, never a bare ``KeyError``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from slipway.entities import (
    Dataset,
    DatasetInput,
    Experiment,
    ExperimentTag,
    InputTag,
    LifecycleStage,
    Metric,
    MetricWithRunId,
    Param,
    Run,
    RunData,
    RunInfo,
    RunInputs,
    RunStatus,
    RunTag,
)
from slipway.exceptions import SlipwayError

T = TypeVar("T")


class MalformedResponse(SlipwayError):
    """The server's answer is JSON but not the shape the API promises."""


def parse(build: Callable[[Any], T], payload: Any, what: str) -> T:
    """``build(payload)``, with any shape error turned into :class:`MalformedResponse`."""
    try:
        return build(payload)
    except SlipwayError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise MalformedResponse(
            f"Unexpected {what} in the tracking server's answer "
            f"({exc.__class__.__name__}: {exc}): {str(payload)[:300]}"
        ) from None


# -- scalars --------------------------------------------------------------------------------


def to_float(value: Any) -> float:
    if isinstance(value, str):
        return float(value)  # also reads "NaN", "Infinity" and "-Infinity"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {value!r}")
    return float(value)


def to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise TypeError(f"expected an integer, got {value!r}")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        return int(value.strip())
    raise TypeError(f"expected an integer, got {value!r}")


def opt_int(value: Any) -> int | None:
    return None if value is None or value == "" else to_int(value)


def json_float(value: float) -> float | str:
    """A double as proto3 JSON spells it: NaN and infinities as strings."""
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _key_values(items: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        out[str(item["key"])] = "" if item.get("value") is None else str(item["value"])
    return out


# -- JSON to entities -------------------------------------------------------------------------


def experiment(d: dict[str, Any]) -> Experiment:
    return Experiment(
        experiment_id=str(d["experiment_id"]),
        name=str(d["name"]),
        artifact_location=str(d.get("artifact_location") or ""),
        lifecycle_stage=LifecycleStage(d.get("lifecycle_stage") or "active"),
        creation_time=opt_int(d.get("creation_time")),
        last_update_time=opt_int(d.get("last_update_time")),
        tags=_key_values(d.get("tags")),
    )


def run_info(d: dict[str, Any]) -> RunInfo:
    run_id = d.get("run_id") or d["run_uuid"]
    return RunInfo(
        run_id=str(run_id),
        experiment_id=str(d["experiment_id"]),
        run_name=str(d.get("run_name") or ""),
        user_id=str(d.get("user_id") or ""),
        status=RunStatus.parse(d.get("status", "RUNNING")),
        start_time=opt_int(d.get("start_time")),
        end_time=opt_int(d.get("end_time")),
        artifact_uri=str(d.get("artifact_uri") or ""),
        lifecycle_stage=LifecycleStage(d.get("lifecycle_stage") or "active"),
    )


def metric(d: dict[str, Any]) -> Metric:
    return Metric(
        key=str(d["key"]),
        value=to_float(d["value"]),
        timestamp=to_int(d.get("timestamp", 0)),
        step=to_int(d.get("step", 0)),
    )


def metric_with_run_id(d: dict[str, Any]) -> MetricWithRunId:
    return MetricWithRunId(
        run_id=str(d["run_id"]),
        key=str(d["key"]),
        value=to_float(d["value"]),
        timestamp=to_int(d.get("timestamp", 0)),
        step=to_int(d.get("step", 0)),
    )


def dataset_input(d: dict[str, Any]) -> DatasetInput:
    ds = d["dataset"]
    return DatasetInput(
        dataset=Dataset(
            name=str(ds["name"]),
            digest=str(ds["digest"]),
            source_type=str(ds.get("source_type") or ""),
            source=str(ds.get("source") or ""),
            schema=ds.get("schema"),
            profile=ds.get("profile"),
        ),
        tags=tuple(InputTag(str(t["key"]), str(t.get("value", ""))) for t in d.get("tags") or []),
    )


def run(d: dict[str, Any]) -> Run:
    data = d.get("data") or {}
    inputs = d.get("inputs") or {}
    return Run(
        info=run_info(d["info"]),
        data=RunData(
            metric_records=[metric(m) for m in data.get("metrics") or []],
            params=_key_values(data.get("params")),
            tags=_key_values(data.get("tags")),
        ),
        inputs=RunInputs(
            dataset_inputs=[dataset_input(x) for x in inputs.get("dataset_inputs") or []]
        ),
    )


# -- entities to request fields -----------------------------------------------------------------


def metric_fields(m: Metric) -> dict[str, Any]:
    return {
        "key": m.key,
        "value": json_float(m.value),
        "timestamp": int(m.timestamp),
        "step": int(m.step),
    }


def key_value_fields(items: Iterable[Param | RunTag | ExperimentTag]) -> list[dict[str, str]]:
    return [{"key": item.key, "value": item.value} for item in items]


def dataset_input_fields(items: Sequence[DatasetInput]) -> list[dict[str, Any]]:
    return [item.to_dict() for item in items]


__all__ = [
    "MalformedResponse",
    "dataset_input",
    "dataset_input_fields",
    "experiment",
    "json_float",
    "key_value_fields",
    "metric",
    "metric_fields",
    "metric_with_run_id",
    "parse",
    "run",
    "run_info",
    "to_float",
    "to_int",
]
