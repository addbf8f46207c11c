"""Validation of names, values and batch sizes, with MLflow's limits as the minimum accepted.

Every check raises :class:`~slipway.exceptions.InvalidParameterValue` with a message that says
which value was wrong and why, so that the SDK, the stores and the server fail the same way.
"""

from __future__ import annotations

import math
import numbers
import posixpath
import re
from collections.abc import Sequence

from slipway.entities import Metric, Param, RunTag
from slipway.exceptions import InvalidParameterValue

MAX_ENTITY_KEY_LENGTH = 250
MAX_PARAM_VAL_LENGTH = 6000
MAX_TAG_VAL_LENGTH = 8000
MAX_EXPERIMENT_NAME_LENGTH = 500
MAX_EXPERIMENT_TAG_VAL_LENGTH = 5000
MAX_RUN_NAME_LENGTH = 250
MAX_METRICS_PER_BATCH = 1000
MAX_PARAMS_PER_BATCH = 100
MAX_TAGS_PER_BATCH = 100
MAX_DATASETS_PER_BATCH = 1000
MAX_DATASET_NAME_LENGTH = 500
MAX_DATASET_DIGEST_LENGTH = 36
MAX_DATASET_SOURCE_LENGTH = 65535
MAX_DATASET_SCHEMA_LENGTH = 1048575
MAX_DATASET_PROFILE_LENGTH = 16777215
MAX_INPUT_TAG_KEY_LENGTH = 255
MAX_INPUT_TAG_VALUE_LENGTH = 500
MAX_SEARCH_RESULTS = 50000
MAX_HISTORY_BULK_RUNS = 100
MAX_HISTORY_INTERVAL_RESULTS = 2500

_INT64_MAX = 2**63 - 1
_KEY_RE = re.compile(r"^[/\w.\- ]*$")
_RUN_ID_RE = re.compile(r"^[a-zA-Z0-9][\w\-]{0,255}$")
_EXPERIMENT_ID_RE = re.compile(r"^[a-zA-Z0-9][\w\-]{0,63}$")


def validate_key(key: object, kind: str) -> str:
    """See :func:`_validate_key`; a key seen valid before is accepted from a cache, since
    training loops log the same few keys over and over."""
    if type(key) is str and (key, kind) in _VALID_KEYS:
        return key
    _validate_key(key, kind)
    assert isinstance(key, str)
    if len(_VALID_KEYS) < _VALID_KEYS_MAX:
        _VALID_KEYS.add((key, kind))
    return key


_VALID_KEYS: set[tuple[str, str]] = set()
_VALID_KEYS_MAX = 100_000


def _validate_key(key: object, kind: str) -> str:
    """A metric, param or tag key: a non-empty string of word characters, ``/ . - `` and spaces,
    at most 250 characters, that does not climb out of a path (keys become file names in some
    stores)."""
    if not isinstance(key, str):
        raise InvalidParameterValue(f"{kind} key must be a string, got {type(key).__name__}")
    if not key:
        raise InvalidParameterValue(f"{kind} key must not be empty")
    if len(key) > MAX_ENTITY_KEY_LENGTH:
        raise InvalidParameterValue(
            f"{kind} key '{key[:40]}...' is {len(key)} characters long; "
            f"the limit is {MAX_ENTITY_KEY_LENGTH}"
        )
    if not _KEY_RE.match(key):
        raise InvalidParameterValue(
            f"Invalid {kind.lower()} name: {key!r}. Names may only contain alphanumerics, "
            "underscores (_), dashes (-), periods (.), spaces ( ), and slashes (/)."
        )
    if key == "." or key.startswith(("..", "/")) or posixpath.normpath(key) != key:
        raise InvalidParameterValue(
            f"Invalid {kind.lower()} name: {key!r}. Names may be treated as files in certain "
            "cases, and must not resolve to other names when treated as such."
        )
    return key


def validate_metric(metric: Metric) -> Metric:
    validate_key(metric.key, "Metric")
    value_type = type(metric.value)
    if (
        (value_type is float or value_type is int)
        and type(metric.timestamp) is int
        and type(metric.step) is int
        and 0 <= metric.timestamp <= _INT64_MAX
        and -_INT64_MAX - 1 <= metric.step <= _INT64_MAX
    ):
        return metric  # the common case, without the slower checks below
    # Typed fields, but values arrive from user code at run time: check them as objects.
    value: object = metric.value
    timestamp: object = metric.timestamp
    step: object = metric.step
    if isinstance(value, bool) or not isinstance(value, numbers.Number):
        raise InvalidParameterValue(
            f"Got invalid value {value!r} for metric '{metric.key}' (timestamp={metric.timestamp})."
            " Please specify value as a valid double (64-bit floating point)"
        )
    if (
        isinstance(timestamp, bool)
        or not isinstance(timestamp, numbers.Integral)
        or not 0 <= int(timestamp) <= _INT64_MAX
    ):
        raise InvalidParameterValue(
            f"Got invalid timestamp {timestamp!r} for metric '{metric.key}' "
            f"(value={value}). Timestamp must be a non-negative long (64-bit integer)"
        )
    if (
        isinstance(step, bool)
        or not isinstance(step, numbers.Integral)
        or not -_INT64_MAX - 1 <= int(step) <= _INT64_MAX
    ):
        raise InvalidParameterValue(
            f"Got invalid step {step!r} for metric '{metric.key}' (value={value}). "
            "Step must be a valid long (64-bit integer)."
        )
    return metric


def coerce_metric_value(key: str, value: object) -> float:
    """The float value of a metric, refusing bools, strings and other non-numbers."""
    if type(value) is float:
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidParameterValue(
            f"Got invalid value {value!r} for metric '{key}'. "
            "Please specify value as a valid double (64-bit floating point)"
        )
    try:
        result = float(value)
    except OverflowError:
        raise InvalidParameterValue(
            f"Got invalid value for metric '{key}': it is too large for a double "
            "(64-bit floating point)"
        ) from None
    if math.isnan(result):
        return math.nan
    return result


def validate_param(param: Param) -> Param:
    validate_key(param.key, "Param")
    if not isinstance(param.value, str):
        raise InvalidParameterValue(f"Param value for '{param.key}' must be a string")
    if len(param.value) > MAX_PARAM_VAL_LENGTH:
        raise InvalidParameterValue(
            f"Param value '{param.value[:40]}...' had length {len(param.value)}, which exceeded "
            f"length limit of {MAX_PARAM_VAL_LENGTH} (param '{param.key}')"
        )
    return param


def validate_tag(tag: RunTag) -> RunTag:
    validate_key(tag.key, "Tag")
    if not isinstance(tag.value, str):
        raise InvalidParameterValue(f"Tag value for '{tag.key}' must be a string")
    if len(tag.value) > MAX_TAG_VAL_LENGTH:
        raise InvalidParameterValue(
            f"Tag value '{tag.value[:40]}...' had length {len(tag.value)}, which exceeded "
            f"length limit of {MAX_TAG_VAL_LENGTH} (tag '{tag.key}')"
        )
    return tag


def validate_experiment_tag_value(key: str, value: object) -> str:
    validate_key(key, "Tag")
    if not isinstance(value, str):
        raise InvalidParameterValue(f"Tag value for '{key}' must be a string")
    if len(value) > MAX_EXPERIMENT_TAG_VAL_LENGTH:
        raise InvalidParameterValue(
            f"Experiment tag value for '{key}' had length {len(value)}, which exceeded "
            f"length limit of {MAX_EXPERIMENT_TAG_VAL_LENGTH}"
        )
    return value


def validate_batch(
    metrics: Sequence[Metric], params: Sequence[Param], tags: Sequence[RunTag]
) -> None:
    """Sizes (1000 metrics, 100 params, 100 tags), each entry, and no param key twice."""
    for what, items, limit in (
        ("metrics", metrics, MAX_METRICS_PER_BATCH),
        ("params", params, MAX_PARAMS_PER_BATCH),
        ("tags", tags, MAX_TAGS_PER_BATCH),
    ):
        if len(items) > limit:
            raise InvalidParameterValue(
                f"A batch logging request can contain at most {limit} {what}. "
                f"Got {len(items)} {what}. Please split up {what} across multiple requests "
                "and try again."
            )
    for m in metrics:
        validate_metric(m)
    seen: dict[str, str] = {}
    for p in params:
        validate_param(p)
        if p.key in seen:
            raise InvalidParameterValue(
                f"Duplicate parameter keys have been submitted: ['{p.key}']. Please ensure the "
                "request contains only one param value per param key."
            )
        seen[p.key] = p.value
    for t in tags:
        validate_tag(t)


def validate_experiment_name(name: object) -> str:
    if not isinstance(name, str):
        raise InvalidParameterValue(f"Invalid experiment name: {name!r}. Expects a string.")
    if not name.strip():
        raise InvalidParameterValue("Invalid experiment name: ''. Must not be empty")
    if len(name) > MAX_EXPERIMENT_NAME_LENGTH:
        raise InvalidParameterValue(
            f"Experiment name is {len(name)} characters long; the limit is "
            f"{MAX_EXPERIMENT_NAME_LENGTH}"
        )
    return name


def validate_run_id(run_id: object) -> str:
    if not isinstance(run_id, str) or not _RUN_ID_RE.match(run_id):
        raise InvalidParameterValue(f"Invalid run ID: {run_id!r}")
    return run_id


def validate_experiment_id(experiment_id: object) -> str:
    if isinstance(experiment_id, int) and not isinstance(experiment_id, bool):
        experiment_id = str(experiment_id)
    if not isinstance(experiment_id, str) or not _EXPERIMENT_ID_RE.match(experiment_id):
        raise InvalidParameterValue(f"Invalid experiment ID: {experiment_id!r}")
    return experiment_id


def validate_max_results(max_results: object, limit: int, what: str = "max_results") -> int:
    if isinstance(max_results, bool) or not isinstance(max_results, int):
        raise InvalidParameterValue(f"Invalid value {max_results!r} for parameter '{what}'")
    if max_results < 1 or max_results > limit:
        raise InvalidParameterValue(
            f"Invalid value {max_results} for parameter '{what}' supplied. It must be at "
            f"least 1 and at most {limit}."
        )
    return max_results
