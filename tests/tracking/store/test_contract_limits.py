"""MLflow's limits and validation rules, as every tracking store enforces them: key and value
lengths, batch sizes, key names, unknown and deleted runs.

Each test checks a whole table of cases against one store and compares the outcome per case
with what is expected, so that a failure names every case that went wrong."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from slipway.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunStatus, RunTag
from slipway.exceptions import InvalidParameterValue, RunNotFound, SlipwayError
from slipway.tracking.store.base import AbstractTrackingStore

RUN_NAME = "mlflow.runName"
KINDS = ["metric", "param", "tag"]
Call = Callable[[AbstractTrackingStore, str], object]


def _run(store: AbstractTrackingStore) -> str:
    return store.create_run("0", run_name="limits").info.run_id


def _log_one(
    store: AbstractTrackingStore, run_id: str, kind: str, key: Any, value: Any = "v"
) -> None:
    if kind == "metric":
        store.log_metric(run_id, Metric(key, 1.0, 0, 0))
    elif kind == "param":
        store.log_param(run_id, Param(key, value))
    else:
        store.set_tag(run_id, RunTag(key, value))


def _keys(store: AbstractTrackingStore, run_id: str, kind: str) -> set[str]:
    data = store.get_run(run_id).data
    if kind == "metric":
        return set(data.metrics)
    if kind == "param":
        return set(data.params)
    return set(data.tags) - {RUN_NAME}


def _outcome(call: Callable[[], object]) -> str:
    """``"ok"``, or the error code of the Slipway error the call raised."""
    try:
        call()
    except SlipwayError as exc:
        return exc.error_code
    return "ok"


# -- key and value lengths -------------------------------------------------------------------


def test_key_length(store: AbstractTrackingStore) -> None:
    run_id = _run(store)
    outcome = {}
    for kind in KINDS:
        outcome[kind, 250] = _outcome(lambda kind=kind: _log_one(store, run_id, kind, "k" * 250))
        outcome[kind, 251] = _outcome(lambda kind=kind: _log_one(store, run_id, kind, "j" * 251))
    assert outcome == {
        **{(kind, 250): "ok" for kind in KINDS},
        **{(kind, 251): "INVALID_PARAMETER_VALUE" for kind in KINDS},
    }
    assert {kind: _keys(store, run_id, kind) for kind in KINDS} == {
        kind: {"k" * 250} for kind in KINDS
    }


def test_key_length_message(store: AbstractTrackingStore) -> None:
    with pytest.raises(InvalidParameterValue) as info:
        store.log_param(_run(store), Param("j" * 251, "v"))
    assert "250" in info.value.message


@pytest.mark.parametrize(("kind", "limit"), [("param", 6000), ("tag", 8000)])
def test_value_length(store: AbstractTrackingStore, kind: str, limit: int) -> None:
    run_id = _run(store)
    _log_one(store, run_id, kind, "ok", "v" * limit)
    with pytest.raises(InvalidParameterValue) as info:
        _log_one(store, run_id, kind, "too-long", "v" * (limit + 1))
    assert str(limit) in info.value.message
    data = store.get_run(run_id).data
    values = data.params if kind == "param" else data.tags
    assert values["ok"] == "v" * limit
    assert "too-long" not in values


def test_long_values_in_create_run(store: AbstractTrackingStore) -> None:
    run = store.create_run("0", tags=[RunTag("t", "v" * 8000)])
    assert run.data.tags["t"] == "v" * 8000
    with pytest.raises(InvalidParameterValue):
        store.create_run("0", tags=[RunTag("t", "v" * 8001)])
    assert len(store.search_runs(["0"])) == 1


def test_non_ascii_values_within_limits(store: AbstractTrackingStore) -> None:
    run_id = _run(store)
    store.log_param(run_id, Param("p", "é" * 6000))
    store.set_tag(run_id, RunTag("t", "日" * 8000))
    data = store.get_run(run_id).data
    assert data.params["p"] == "é" * 6000
    assert data.tags["t"] == "日" * 8000


# -- batch sizes -----------------------------------------------------------------------------


def test_full_batch_accepted(store: AbstractTrackingStore) -> None:
    run_id = _run(store)
    store.log_batch(
        run_id,
        metrics=[Metric(f"m{i % 10}", float(i), i, i) for i in range(1000)],
        params=[Param(f"p{i}", str(i)) for i in range(100)],
        tags=[RunTag(f"t{i}", str(i)) for i in range(100)],
    )
    data = store.get_run(run_id).data
    assert len(data.params) == 100
    assert len(data.tags) == 101  # and mlflow.runName
    assert data.metrics == {f"m{k}": float(990 + k) for k in range(10)}
    assert sum(len(store.get_metric_history(run_id, f"m{k}")) for k in range(10)) == 1000


OVERSIZED: dict[str, dict[str, list[Any]]] = {
    "1001-metrics": {"metrics": [Metric("m", 1.0, i, i) for i in range(1001)]},
    "101-params": {"params": [Param(f"p{i}", "v") for i in range(101)]},
    "101-tags": {"tags": [RunTag(f"t{i}", "v") for i in range(101)]},
}


def test_oversized_batch_rejected(store: AbstractTrackingStore) -> None:
    run_id = _run(store)
    outcome = {}
    for name, batch in OVERSIZED.items():
        try:
            store.log_batch(run_id, **batch)
        except InvalidParameterValue as exc:
            what = name.split("-")[1]
            outcome[name] = "rejected" if what in exc.message else exc.message
        else:
            outcome[name] = "accepted"
    assert outcome == dict.fromkeys(OVERSIZED, "rejected")
    data = store.get_run(run_id).data
    assert (data.metrics, data.params, set(data.tags)) == ({}, {}, {RUN_NAME})


def test_duplicate_param_keys_in_one_batch_rejected(store: AbstractTrackingStore) -> None:
    run_id = _run(store)
    for second in ("same", "different"):
        with pytest.raises(InvalidParameterValue) as info:
            store.log_batch(run_id, params=[Param("lr", "same"), Param("lr", second)])
        assert "lr" in info.value.message
    assert store.get_run(run_id).data.params == {}


def test_same_param_value_again_accepted(store: AbstractTrackingStore) -> None:
    run_id = _run(store)
    store.log_batch(run_id, params=[Param("lr", "0.1")])
    store.log_batch(run_id, params=[Param("lr", "0.1")])
    store.log_param(run_id, Param("lr", "0.1"))
    assert store.get_run(run_id).data.params == {"lr": "0.1"}
    with pytest.raises(InvalidParameterValue):
        store.log_param(run_id, Param("lr", "0.10"))


def test_many_datasets(store: AbstractTrackingStore) -> None:
    run_id = _run(store)
    items = [DatasetInput(Dataset(f"d{i}", f"{i:x}", "local", "{}")) for i in range(50)]
    store.log_inputs(run_id, items)
    assert len(store.get_run(run_id).inputs.dataset_inputs) == 50


# -- dataset field limits --------------------------------------------------------------------

DATASET_LIMITS = {"name": 500, "digest": 36, "input-tag-value": 500}


def _dataset_item(field: str, size: int) -> DatasetInput:
    name = "n" * size if field == "name" else f"n-{field}"
    digest = "d" * size if field == "digest" else "d"
    tags = (InputTag("mlflow.data.context", "c" * size),) if field == "input-tag-value" else ()
    return DatasetInput(Dataset(name, digest, "local", "{}"), tags)


def test_dataset_limits(store: AbstractTrackingStore) -> None:
    run_id = _run(store)
    outcome = {}
    for field, limit in DATASET_LIMITS.items():
        for size in (limit, limit + 1):
            item = _dataset_item(field, size)
            outcome[field, size] = _outcome(lambda item=item: store.log_inputs(run_id, [item]))
    assert outcome == {
        **dict.fromkeys(DATASET_LIMITS.items(), "ok"),
        **{(f, limit + 1): "INVALID_PARAMETER_VALUE" for f, limit in DATASET_LIMITS.items()},
    }
    assert len(store.get_run(run_id).inputs.dataset_inputs) == len(DATASET_LIMITS)


def test_dataset_needs_name_and_digest(store: AbstractTrackingStore) -> None:
    run_id = _run(store)
    for name, digest in (("", "d"), ("n", "")):
        with pytest.raises(InvalidParameterValue):
            store.log_inputs(run_id, [DatasetInput(Dataset(name, digest, "local", "{}"))])
    assert store.get_run(run_id).inputs.dataset_inputs == []


# -- unknown and deleted runs ----------------------------------------------------------------

UNKNOWN = "0123456789abcdef0123456789abcdef"

CALLS: dict[str, Call] = {
    "get_run": lambda s, r: s.get_run(r),
    "log_batch": lambda s, r: s.log_batch(r, metrics=[Metric("m", 1.0, 0, 0)]),
    "empty log_batch": lambda s, r: s.log_batch(r),
    "log_metric": lambda s, r: s.log_metric(r, Metric("m", 1.0, 0, 0)),
    "log_param": lambda s, r: s.log_param(r, Param("p", "v")),
    "set_tag": lambda s, r: s.set_tag(r, RunTag("t", "v")),
    "delete_tag": lambda s, r: s.delete_tag(r, "t"),
    "update_run_info": lambda s, r: s.update_run_info(r, RunStatus.FINISHED),
    "delete_run": lambda s, r: s.delete_run(r),
    "restore_run": lambda s, r: s.restore_run(r),
    "get_metric_history": lambda s, r: s.get_metric_history(r, "m"),
    "log_inputs": lambda s, r: s.log_inputs(r, [DatasetInput(Dataset("n", "d", "x", "{}"))]),
}


def test_unknown_run(store: AbstractTrackingStore) -> None:
    outcome: dict[str, object] = {}
    for name, call in CALLS.items():
        try:
            call(store, UNKNOWN)
        except RunNotFound as exc:
            outcome[name] = (exc.error_code, exc.http_status, UNKNOWN in exc.message)
        except SlipwayError as exc:
            outcome[name] = type(exc).__name__
        else:
            outcome[name] = "no error"
    assert outcome == dict.fromkeys(CALLS, ("RESOURCE_DOES_NOT_EXIST", 404, True))


def test_unknown_run_error_body(store: AbstractTrackingStore) -> None:
    with pytest.raises(RunNotFound) as info:
        store.get_run(UNKNOWN)
    body = info.value.to_dict()
    assert body["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert UNKNOWN in body["message"]


WRITES = [
    name
    for name in CALLS
    if name not in ("get_run", "get_metric_history", "delete_run", "restore_run")
]


def test_writing_to_deleted_run_rejected(store: AbstractTrackingStore) -> None:
    run_id = _run(store)
    store.set_tag(run_id, RunTag("t", "before"))
    store.delete_run(run_id)
    outcome = {name: _outcome(lambda name=name: CALLS[name](store, run_id)) for name in WRITES}
    assert outcome == dict.fromkeys(WRITES, "INVALID_PARAMETER_VALUE")
    run = store.get_run(run_id)
    assert run.data.tags["t"] == "before"
    assert run.data.metrics == {}
    assert run.data.params == {}
    assert run.inputs.dataset_inputs == []
    assert run.info.status == RunStatus.RUNNING


def test_reading_deleted_run_allowed(store: AbstractTrackingStore) -> None:
    run_id = _run(store)
    store.log_metric(run_id, Metric("m", 2.0, 0, 0))
    store.delete_run(run_id)
    assert store.get_run(run_id).data.metrics == {"m": 2.0}
    assert [m.value for m in store.get_metric_history(run_id, "m")] == [2.0]


# -- key names and values --------------------------------------------------------------------

BAD_KEYS = [
    "../x",
    "a//b",
    "/abs",
    "a/../b",
    "a/./b",
    "a/",
    ".",
    "..",
    "",
    "a\nb",
    "a$b",
    "a\\b",
    "a:b",
    "a*b",
]
GOOD_KEYS = ["a/b", "a.b-c d_e", ".hidden", "x..y", "UPPER", "1", "a/b/c.d"]


def test_invalid_keys_rejected(store: AbstractTrackingStore) -> None:
    run_id = _run(store)
    outcome = {
        (key, kind): _outcome(lambda key=key, kind=kind: _log_one(store, run_id, kind, key))
        for key in BAD_KEYS
        for kind in KINDS
    }
    assert outcome == {(key, kind): "INVALID_PARAMETER_VALUE" for key in BAD_KEYS for kind in KINDS}
    assert {kind: _keys(store, run_id, kind) for kind in KINDS} == {kind: set() for kind in KINDS}


def test_valid_keys_accepted(store: AbstractTrackingStore) -> None:
    run_id = _run(store)
    for kind in KINDS:
        for key in GOOD_KEYS:
            _log_one(store, run_id, kind, key)
    assert {kind: _keys(store, run_id, kind) for kind in KINDS} == {
        kind: set(GOOD_KEYS) for kind in KINDS
    }


BAD_METRICS: dict[str, Metric] = {
    "string-value": Metric("m", "1.0", 0, 0),  # type: ignore[arg-type]
    "bool-value": Metric("m", True, 0, 0),  # type: ignore[arg-type]
    "none-value": Metric("m", None, 0, 0),  # type: ignore[arg-type]
    "negative-timestamp": Metric("m", 1.0, -1, 0),
    "float-timestamp": Metric("m", 1.0, 1.5, 0),  # type: ignore[arg-type]
    "float-step": Metric("m", 1.0, 0, 1.5),  # type: ignore[arg-type]
    "bool-step": Metric("m", 1.0, 0, True),  # type: ignore[arg-type]
}


def test_invalid_metrics_rejected(store: AbstractTrackingStore) -> None:
    run_id = _run(store)
    outcome = {
        name: _outcome(lambda m=m: store.log_metric(run_id, m)) for name, m in BAD_METRICS.items()
    }
    assert outcome == dict.fromkeys(BAD_METRICS, "INVALID_PARAMETER_VALUE")
    assert store.get_metric_history(run_id, "m") == []


NON_STRINGS: dict[str, Call] = {
    "int-param-value": lambda s, r: s.log_param(r, Param("p", 1)),  # type: ignore[arg-type]
    "none-tag-value": lambda s, r: s.set_tag(r, RunTag("t", None)),  # type: ignore[arg-type]
    "int-param-key": lambda s, r: s.log_param(r, Param(7, "v")),  # type: ignore[arg-type]
    "none-tag-key": lambda s, r: s.set_tag(r, RunTag(None, "v")),  # type: ignore[arg-type]
}


def test_non_string_values_rejected(store: AbstractTrackingStore) -> None:
    run_id = _run(store)
    outcome = {name: _outcome(lambda c=c: c(store, run_id)) for name, c in NON_STRINGS.items()}
    assert outcome == dict.fromkeys(NON_STRINGS, "INVALID_PARAMETER_VALUE")
    data = store.get_run(run_id).data
    assert (data.params, set(data.tags)) == ({}, {RUN_NAME})
