"""MLflow's limits and validation rules, as every tracking store enforces them (SQLite and
PostgreSQL): key and value lengths, batch sizes, key names, unknown and deleted runs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from slipway.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunStatus, RunTag
from slipway.exceptions import InvalidParameterValue, RunNotFound
from slipway.tracking.store.sql import SqlTrackingStore

RUN_NAME = "mlflow.runName"


def _run(store: SqlTrackingStore) -> str:
    return store.create_run("0", run_name="limits").info.run_id


def _log_one(store: SqlTrackingStore, run_id: str, kind: str, key: str, value: str = "v") -> None:
    if kind == "metric":
        store.log_metric(run_id, Metric(key, 1.0, 0, 0))
    elif kind == "param":
        store.log_param(run_id, Param(key, value))
    else:
        store.set_tag(run_id, RunTag(key, value))


def _keys(store: SqlTrackingStore, run_id: str, kind: str) -> set[str]:
    data = store.get_run(run_id).data
    if kind == "metric":
        return set(data.metrics)
    if kind == "param":
        return set(data.params)
    return set(data.tags) - {RUN_NAME}


KINDS = ["metric", "param", "tag"]

# -- key and value lengths -------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_key_length(store: SqlTrackingStore, kind: str) -> None:
    run_id = _run(store)
    _log_one(store, run_id, kind, "k" * 250)
    with pytest.raises(InvalidParameterValue) as info:
        _log_one(store, run_id, kind, "j" * 251)
    assert info.value.error_code == "INVALID_PARAMETER_VALUE"
    assert "250" in info.value.message
    assert _keys(store, run_id, kind) == {"k" * 250}


@pytest.mark.parametrize(("kind", "limit"), [("param", 6000), ("tag", 8000)])
def test_value_length(store: SqlTrackingStore, kind: str, limit: int) -> None:
    run_id = _run(store)
    _log_one(store, run_id, kind, "ok", "v" * limit)
    with pytest.raises(InvalidParameterValue) as info:
        _log_one(store, run_id, kind, "too-long", "v" * (limit + 1))
    assert str(limit) in info.value.message
    data = store.get_run(run_id).data
    values = data.params if kind == "param" else data.tags
    assert values["ok"] == "v" * limit
    assert "too-long" not in values


def test_long_values_in_create_run(store: SqlTrackingStore) -> None:
    run = store.create_run("0", tags=[RunTag("t", "v" * 8000)])
    assert run.data.tags["t"] == "v" * 8000
    with pytest.raises(InvalidParameterValue):
        store.create_run("0", tags=[RunTag("t", "v" * 8001)])
    assert len(store.search_runs(["0"])) == 1


def test_non_ascii_values_within_limits(store: SqlTrackingStore) -> None:
    run_id = _run(store)
    store.log_param(run_id, Param("p", "é" * 6000))
    store.set_tag(run_id, RunTag("t", "日" * 8000))
    data = store.get_run(run_id).data
    assert data.params["p"] == "é" * 6000
    assert data.tags["t"] == "日" * 8000


# -- batch sizes -----------------------------------------------------------------------------


def test_full_batch_accepted(store: SqlTrackingStore) -> None:
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


@pytest.mark.parametrize(
    ("batch", "what"),
    [
        pytest.param(
            {"metrics": [Metric("m", 1.0, i, i) for i in range(1001)]}, "metrics", id="1001-metrics"
        ),
        pytest.param(
            {"params": [Param(f"p{i}", "v") for i in range(101)]}, "params", id="101-params"
        ),
        pytest.param({"tags": [RunTag(f"t{i}", "v") for i in range(101)]}, "tags", id="101-tags"),
    ],
)
def test_oversized_batch_rejected(
    store: SqlTrackingStore, batch: dict[str, list[Any]], what: str
) -> None:
    run_id = _run(store)
    with pytest.raises(InvalidParameterValue) as info:
        store.log_batch(run_id, **batch)
    assert what in info.value.message
    data = store.get_run(run_id).data
    assert (data.metrics, data.params, set(data.tags)) == ({}, {}, {RUN_NAME})


@pytest.mark.parametrize("value", ["same", "different"])
def test_duplicate_param_keys_in_one_batch_rejected(store: SqlTrackingStore, value: str) -> None:
    run_id = _run(store)
    with pytest.raises(InvalidParameterValue) as info:
        store.log_batch(run_id, params=[Param("lr", "same"), Param("lr", value)])
    assert "lr" in info.value.message
    assert store.get_run(run_id).data.params == {}


def test_same_param_value_again_accepted(store: SqlTrackingStore) -> None:
    run_id = _run(store)
    store.log_batch(run_id, params=[Param("lr", "0.1")])
    store.log_batch(run_id, params=[Param("lr", "0.1")])
    store.log_param(run_id, Param("lr", "0.1"))
    assert store.get_run(run_id).data.params == {"lr": "0.1"}
    with pytest.raises(InvalidParameterValue):
        store.log_param(run_id, Param("lr", "0.10"))


def test_many_datasets(store: SqlTrackingStore) -> None:
    run_id = _run(store)
    items = [DatasetInput(Dataset(f"d{i}", f"{i:x}", "local", "{}")) for i in range(50)]
    store.log_inputs(run_id, items)
    assert len(store.get_run(run_id).inputs.dataset_inputs) == 50


# -- dataset field limits --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "limit"), [("name", 500), ("digest", 36), ("input-tag-value", 500)]
)
def test_dataset_limits(store: SqlTrackingStore, field: str, limit: int) -> None:
    run_id = _run(store)

    def item(size: int) -> DatasetInput:
        name = "n" * size if field == "name" else "n"
        digest = "d" * size if field == "digest" else "d"
        tags = (InputTag("mlflow.data.context", "c" * size),) if field == "input-tag-value" else ()
        return DatasetInput(Dataset(name, digest, "local", "{}"), tags)

    store.log_inputs(run_id, [item(limit)])
    with pytest.raises(InvalidParameterValue):
        store.log_inputs(run_id, [item(limit + 1)])
    assert len(store.get_run(run_id).inputs.dataset_inputs) == 1


def test_dataset_needs_name_and_digest(store: SqlTrackingStore) -> None:
    run_id = _run(store)
    for name, digest in (("", "d"), ("n", "")):
        with pytest.raises(InvalidParameterValue):
            store.log_inputs(run_id, [DatasetInput(Dataset(name, digest, "local", "{}"))])
    assert store.get_run(run_id).inputs.dataset_inputs == []


# -- unknown and deleted runs ----------------------------------------------------------------

UNKNOWN = "0123456789abcdef0123456789abcdef"

CALLS: list[tuple[str, Callable[[SqlTrackingStore, str], object]]] = [
    ("get_run", lambda s, r: s.get_run(r)),
    ("log_batch", lambda s, r: s.log_batch(r, metrics=[Metric("m", 1.0, 0, 0)])),
    ("log_metric", lambda s, r: s.log_metric(r, Metric("m", 1.0, 0, 0))),
    ("log_param", lambda s, r: s.log_param(r, Param("p", "v"))),
    ("set_tag", lambda s, r: s.set_tag(r, RunTag("t", "v"))),
    ("delete_tag", lambda s, r: s.delete_tag(r, "t")),
    ("update_run_info", lambda s, r: s.update_run_info(r, RunStatus.FINISHED)),
    ("delete_run", lambda s, r: s.delete_run(r)),
    ("restore_run", lambda s, r: s.restore_run(r)),
    ("get_metric_history", lambda s, r: s.get_metric_history(r, "m")),
    ("log_inputs", lambda s, r: s.log_inputs(r, [DatasetInput(Dataset("n", "d", "x", "{}"))])),
]


@pytest.mark.parametrize("call", [c for _, c in CALLS], ids=[n for n, _ in CALLS])
def test_unknown_run(
    store: SqlTrackingStore, call: Callable[[SqlTrackingStore, str], object]
) -> None:
    with pytest.raises(RunNotFound) as info:
        call(store, UNKNOWN)
    err = info.value
    assert err.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert err.http_status == 404
    assert UNKNOWN in err.message
    assert err.to_dict()["error_code"] == "RESOURCE_DOES_NOT_EXIST"


WRITES = [
    c for c in CALLS if c[0] not in ("get_run", "get_metric_history", "delete_run", "restore_run")
]


@pytest.mark.parametrize("call", [c for _, c in WRITES], ids=[n for n, _ in WRITES])
def test_writing_to_deleted_run_rejected(
    store: SqlTrackingStore, call: Callable[[SqlTrackingStore, str], object]
) -> None:
    run_id = _run(store)
    store.set_tag(run_id, RunTag("t", "before"))
    store.delete_run(run_id)
    with pytest.raises(InvalidParameterValue) as info:
        call(store, run_id)
    assert info.value.error_code == "INVALID_PARAMETER_VALUE"
    run = store.get_run(run_id)
    assert run.data.tags["t"] == "before"
    assert run.data.metrics == {}
    assert run.data.params == {}
    assert run.info.status == RunStatus.RUNNING


def test_reading_deleted_run_allowed(store: SqlTrackingStore) -> None:
    run_id = _run(store)
    store.log_metric(run_id, Metric("m", 2.0, 0, 0))
    store.delete_run(run_id)
    assert store.get_run(run_id).data.metrics == {"m": 2.0}
    assert [m.value for m in store.get_metric_history(run_id, "m")] == [2.0]


# -- key names -------------------------------------------------------------------------------

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


@pytest.mark.parametrize("key", BAD_KEYS, ids=[repr(k) for k in BAD_KEYS])
def test_invalid_key_rejected(store: SqlTrackingStore, key: str) -> None:
    run_id = _run(store)
    for kind in KINDS:
        with pytest.raises(InvalidParameterValue) as info:
            _log_one(store, run_id, kind, key)
        assert info.value.error_code == "INVALID_PARAMETER_VALUE", kind
        assert _keys(store, run_id, kind) == set(), kind


@pytest.mark.parametrize("kind", KINDS)
def test_valid_keys_accepted(store: SqlTrackingStore, kind: str) -> None:
    run_id = _run(store)
    for key in GOOD_KEYS:
        _log_one(store, run_id, kind, key)
    assert _keys(store, run_id, kind) == set(GOOD_KEYS)


@pytest.mark.parametrize(
    "metric",
    [
        Metric("m", "1.0", 0, 0),  # type: ignore[arg-type]
        Metric("m", True, 0, 0),  # type: ignore[arg-type]
        Metric("m", None, 0, 0),  # type: ignore[arg-type]
        Metric("m", 1.0, -1, 0),
        Metric("m", 1.0, 1.5, 0),  # type: ignore[arg-type]
        Metric("m", 1.0, 0, 1.5),  # type: ignore[arg-type]
        Metric("m", 1.0, 0, True),  # type: ignore[arg-type]
    ],
    ids=[
        "string-value",
        "bool-value",
        "none-value",
        "negative-timestamp",
        "float-timestamp",
        "float-step",
        "bool-step",
    ],
)
def test_invalid_metric_rejected(store: SqlTrackingStore, metric: Metric) -> None:
    run_id = _run(store)
    with pytest.raises(InvalidParameterValue):
        store.log_metric(run_id, metric)
    assert store.get_metric_history(run_id, "m") == []


@pytest.mark.parametrize(
    "call",
    [
        lambda s, r: s.log_param(r, Param("p", 1)),
        lambda s, r: s.set_tag(r, RunTag("t", None)),
        lambda s, r: s.log_param(r, Param(7, "v")),
    ],
    ids=["int-param-value", "none-tag-value", "int-key"],
)
def test_non_string_values_rejected(
    store: SqlTrackingStore, call: Callable[[SqlTrackingStore, str], object]
) -> None:
    run_id = _run(store)
    with pytest.raises(InvalidParameterValue):
        call(store, run_id)
    data = store.get_run(run_id).data
    assert (data.params, set(data.tags)) == ({}, {RUN_NAME})
