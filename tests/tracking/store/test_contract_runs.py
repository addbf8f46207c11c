"""The run half of the tracking store contract, on every backend of the ``store`` fixture: the
run lifecycle, logging, tags, latest metrics, dataset inputs and metric history."""

from __future__ import annotations

import itertools
import math
import re
import time

import pytest

from slipway.entities import (
    Dataset,
    DatasetInput,
    InputTag,
    LifecycleStage,
    Metric,
    MetricWithRunId,
    Param,
    RunStatus,
    RunTag,
)
from slipway.exceptions import (
    ExperimentNotFound,
    InvalidParameterValue,
    ResourceDoesNotExist,
    RunNotFound,
)
from slipway.tracking.store.base import AbstractTrackingStore

RUN_NAME = "mlflow.runName"
CONTEXT = DatasetInput.CONTEXT_TAG


def _new_run(store: AbstractTrackingStore, **kwargs: object) -> str:
    return store.create_run("0", **kwargs).info.run_id  # type: ignore[arg-type]


def _dataset(name: str = "iris", digest: str = "d1") -> Dataset:
    return Dataset(name=name, digest=digest, source_type="local", source='{"uri": "/data"}')


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


# -- create / get ----------------------------------------------------------------------------


def test_create_run(store: AbstractTrackingStore) -> None:
    eid = store.create_experiment("e")
    run = store.create_run(
        eid, user_id="alice", start_time=1234, tags=[RunTag("k", "v")], run_name="first"
    )
    info = run.info
    assert re.fullmatch(r"[0-9a-f]{32}", info.run_id)
    assert info.run_uuid == info.run_id
    assert info.experiment_id == eid
    assert info.user_id == "alice"
    assert info.start_time == 1234
    assert info.end_time is None
    assert info.status == RunStatus.RUNNING
    assert info.lifecycle_stage == LifecycleStage.ACTIVE
    assert info.run_name == "first"
    location = store.get_experiment(eid).artifact_location.rstrip("/")
    assert info.artifact_uri == f"{location}/{info.run_id}/artifacts"
    assert run.data.tags == {"k": "v", RUN_NAME: "first"}
    assert run.data.params == {}
    assert run.data.metrics == {}
    assert run.inputs.dataset_inputs == []
    assert store.get_run(info.run_id) == run


def test_create_run_defaults(store: AbstractTrackingStore) -> None:
    before = int(time.time() * 1000)
    run = store.create_run("0")
    after = int(time.time() * 1000)
    assert run.info.start_time is not None
    assert before <= run.info.start_time <= after
    assert run.info.run_name  # a generated name
    assert run.data.tags[RUN_NAME] == run.info.run_name
    assert run.info.user_id == ""


def test_run_ids_are_unique(store: AbstractTrackingStore) -> None:
    ids = {_new_run(store) for _ in range(20)}
    assert len(ids) == 20


def test_run_name_from_tag(store: AbstractTrackingStore) -> None:
    run = store.create_run("0", tags=[RunTag(RUN_NAME, "from-tag")])
    assert run.info.run_name == "from-tag"
    same = store.create_run("0", tags=[RunTag(RUN_NAME, "both")], run_name="both")
    assert same.info.run_name == "both"
    assert same.data.tags[RUN_NAME] == "both"


def test_conflicting_run_name_and_tag_rejected(store: AbstractTrackingStore) -> None:
    with pytest.raises(InvalidParameterValue, match="different"):
        store.create_run("0", tags=[RunTag(RUN_NAME, "a")], run_name="b")
    assert store.search_runs(["0"]) == []


def test_run_name_length(store: AbstractTrackingStore) -> None:
    assert store.create_run("0", run_name="n" * 250).info.run_name == "n" * 250
    with pytest.raises(InvalidParameterValue):
        store.create_run("0", run_name="n" * 251)
    assert len(store.search_runs(["0"])) == 1


def test_create_run_in_unknown_experiment(store: AbstractTrackingStore) -> None:
    with pytest.raises(ExperimentNotFound):
        store.create_run("4242")


def test_get_unknown_run(store: AbstractTrackingStore) -> None:
    with pytest.raises(RunNotFound) as info:
        store.get_run("0" * 32)
    assert info.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert info.value.http_status == 404


# -- update / delete / restore -------------------------------------------------------------


def test_update_run_info(store: AbstractTrackingStore) -> None:
    run_id = _new_run(store, run_name="before")
    info = store.update_run_info(run_id, RunStatus.FINISHED, end_time=5000, run_name="after")
    assert info.status == RunStatus.FINISHED
    assert info.end_time == 5000
    assert info.run_name == "after"
    fetched = store.get_run(run_id)
    assert fetched.info == info
    assert fetched.data.tags[RUN_NAME] == "after"


def test_update_run_info_partial(store: AbstractTrackingStore) -> None:
    run_id = _new_run(store, run_name="keep")
    store.update_run_info(run_id, RunStatus.FAILED)
    info = store.get_run(run_id).info
    assert (info.status, info.end_time, info.run_name) == (RunStatus.FAILED, None, "keep")
    store.update_run_info(run_id, end_time=99)
    info = store.get_run(run_id).info
    assert (info.status, info.end_time, info.run_name) == (RunStatus.FAILED, 99, "keep")


def test_update_run_status_spellings(store: AbstractTrackingStore) -> None:
    run_id = _new_run(store)
    for given, expected in (("FINISHED", "FINISHED"), ("killed", "KILLED"), (4, "FAILED")):
        info = store.update_run_info(run_id, given)  # type: ignore[arg-type]
        assert info.status == RunStatus(expected), given
        assert store.get_run(run_id).info.status == RunStatus(expected), given


def test_update_run_invalid_status(store: AbstractTrackingStore) -> None:
    run_id = _new_run(store)
    with pytest.raises(InvalidParameterValue):
        store.update_run_info(run_id, "DONE")  # type: ignore[arg-type]
    assert store.get_run(run_id).info.status == RunStatus.RUNNING


def test_delete_and_restore_run(store: AbstractTrackingStore) -> None:
    run_id = _new_run(store)
    store.delete_run(run_id)
    assert store.get_run(run_id).info.lifecycle_stage == LifecycleStage.DELETED
    with pytest.raises(InvalidParameterValue):
        store.update_run_info(run_id, RunStatus.FINISHED)
    store.restore_run(run_id)
    assert store.get_run(run_id).info.lifecycle_stage == LifecycleStage.ACTIVE
    store.update_run_info(run_id, RunStatus.FINISHED)
    assert store.get_run(run_id).info.status == RunStatus.FINISHED


def test_restore_run_of_deleted_experiment_rejected(store: AbstractTrackingStore) -> None:
    eid = store.create_experiment("e")
    run_id = store.create_run(eid).info.run_id
    store.delete_experiment(eid)
    with pytest.raises(InvalidParameterValue):
        store.restore_run(run_id)
    assert store.get_run(run_id).info.lifecycle_stage == LifecycleStage.DELETED


def test_delete_restore_unknown_run(store: AbstractTrackingStore) -> None:
    with pytest.raises(RunNotFound):
        store.delete_run("f" * 32)
    with pytest.raises(RunNotFound):
        store.restore_run("f" * 32)


# -- log_batch, params, tags ---------------------------------------------------------------


def test_log_batch(store: AbstractTrackingStore) -> None:
    run_id = _new_run(store)
    store.log_batch(
        run_id,
        metrics=[Metric("loss", 0.5, 10, 0), Metric("loss", 0.25, 20, 1), Metric("acc", 0.9, 5, 0)],
        params=[Param("lr", "0.1"), Param("model", "cnn")],
        tags=[RunTag("team", "vision")],
    )
    data = store.get_run(run_id).data
    assert data.metrics == {"loss": 0.25, "acc": 0.9}
    assert {(m.key, m.value, m.timestamp, m.step) for m in data.metric_records} == {
        ("loss", 0.25, 20, 1),
        ("acc", 0.9, 5, 0),
    }
    assert data.params == {"lr": "0.1", "model": "cnn"}
    assert data.tags["team"] == "vision"


def test_single_logging_calls(store: AbstractTrackingStore) -> None:
    run_id = _new_run(store)
    store.log_metric(run_id, Metric("m", 1.5, 1, 2))
    store.log_param(run_id, Param("p", "v"))
    store.set_tag(run_id, RunTag("t", "w"))
    data = store.get_run(run_id).data
    assert data.metric_records == [Metric("m", 1.5, 1, 2)]
    assert data.params == {"p": "v"}
    assert data.tags["t"] == "w"


def test_empty_batch_checks_the_run(store: AbstractTrackingStore) -> None:
    store.log_batch(_new_run(store))
    with pytest.raises(RunNotFound):
        store.log_batch("a" * 32)


def test_log_batch_is_atomic(store: AbstractTrackingStore) -> None:
    run_id = _new_run(store)
    store.log_param(run_id, Param("lr", "0.1"))
    with pytest.raises(InvalidParameterValue):
        store.log_batch(
            run_id,
            metrics=[Metric("loss", 1.0, 1, 0)],
            params=[Param("new", "x"), Param("lr", "0.2")],
            tags=[RunTag("t", "v")],
        )
    data = store.get_run(run_id).data
    assert data.params == {"lr": "0.1"}
    assert "t" not in data.tags
    assert data.metrics == {}
    assert store.get_metric_history(run_id, "loss") == []


def test_params_are_immutable(store: AbstractTrackingStore) -> None:
    run_id = _new_run(store)
    store.log_param(run_id, Param("lr", "0.1"))
    store.log_param(run_id, Param("lr", "0.1"))  # the same value again is fine
    store.log_batch(run_id, params=[Param("lr", "0.1"), Param("other", "x")])
    with pytest.raises(InvalidParameterValue) as info:
        store.log_param(run_id, Param("lr", "0.2"))
    assert "lr" in info.value.message
    assert info.value.error_code == "INVALID_PARAMETER_VALUE"
    assert store.get_run(run_id).data.params == {"lr": "0.1", "other": "x"}


def test_params_are_per_run(store: AbstractTrackingStore) -> None:
    a, b = _new_run(store), _new_run(store)
    store.log_param(a, Param("lr", "0.1"))
    store.log_param(b, Param("lr", "0.2"))
    assert store.get_run(a).data.params == {"lr": "0.1"}
    assert store.get_run(b).data.params == {"lr": "0.2"}


def test_empty_param_value(store: AbstractTrackingStore) -> None:
    run_id = _new_run(store)
    store.log_param(run_id, Param("empty", ""))
    assert store.get_run(run_id).data.params == {"empty": ""}


def test_tags_overwrite_and_delete(store: AbstractTrackingStore) -> None:
    run_id = _new_run(store, run_name="r")
    store.set_tag(run_id, RunTag("t", "1"))
    store.set_tag(run_id, RunTag("t", "2"))
    assert store.get_run(run_id).data.tags == {"t": "2", RUN_NAME: "r"}
    store.delete_tag(run_id, "t")
    assert store.get_run(run_id).data.tags == {RUN_NAME: "r"}
    with pytest.raises(ResourceDoesNotExist):
        store.delete_tag(run_id, "t")
    store.set_tag(run_id, RunTag("t", "3"))
    assert store.get_run(run_id).data.tags["t"] == "3"


def test_last_tag_value_in_a_batch_wins(store: AbstractTrackingStore) -> None:
    run_id = _new_run(store)
    store.log_batch(run_id, tags=[RunTag("t", "a"), RunTag("t", "b"), RunTag("t", "c")])
    assert store.get_run(run_id).data.tags["t"] == "c"


def test_run_name_tag_renames_the_run(store: AbstractTrackingStore) -> None:
    run_id = _new_run(store, run_name="old")
    store.set_tag(run_id, RunTag(RUN_NAME, "renamed"))
    run = store.get_run(run_id)
    assert run.info.run_name == "renamed"
    assert run.data.tags[RUN_NAME] == "renamed"
    store.log_batch(run_id, tags=[RunTag(RUN_NAME, "x"), RunTag(RUN_NAME, "final")])
    run = store.get_run(run_id)
    assert (run.info.run_name, run.data.tags[RUN_NAME]) == ("final", "final")
    assert [r.info.run_name for r in store.search_runs(["0"], "run_name = 'final'")] == ["final"]


def test_update_run_name_sets_tag(store: AbstractTrackingStore) -> None:
    run_id = _new_run(store, run_name="old")
    store.update_run_info(run_id, run_name="new")
    assert store.get_run(run_id).data.tags[RUN_NAME] == "new"
    found = store.search_runs(["0"], f"tags.{RUN_NAME} = 'new'")
    assert [r.info.run_id for r in found] == [run_id]


def test_delete_tag_unknown_run(store: AbstractTrackingStore) -> None:
    with pytest.raises(RunNotFound):
        store.delete_tag("b" * 32, "t")


# -- metrics ---------------------------------------------------------------------------------


def test_metrics_are_append_only(store: AbstractTrackingStore) -> None:
    run_id = _new_run(store)
    points = [Metric("m", 1.0, 100, 0), Metric("m", 1.0, 100, 0), Metric("m", 2.0, 100, 0)]
    store.log_batch(run_id, metrics=points[:2])
    store.log_metric(run_id, points[2])
    history = store.get_metric_history(run_id, "m")
    assert sorted(m.value for m in history) == [1.0, 1.0, 2.0]
    assert all(isinstance(m, Metric) and m.key == "m" for m in history)


SPECIAL_VALUES = [math.nan, math.inf, -math.inf, 0.0, -0.0, 1e-300, 1.7976931348623157e308, -42.5]


def _comparable(value: float) -> float | str:
    return "nan" if math.isnan(value) else value


def test_special_metric_values_round_trip(store: AbstractTrackingStore) -> None:
    run_id = _new_run(store)
    store.log_batch(
        run_id, metrics=[Metric(f"m{i}", v, 7, 3) for i, v in enumerate(SPECIAL_VALUES)]
    )
    want = {f"m{i}": _comparable(v) for i, v in enumerate(SPECIAL_VALUES)}
    latest = store.get_run(run_id).data.metric_records
    assert {m.key: _comparable(m.value) for m in latest} == want
    assert {(m.timestamp, m.step) for m in latest} == {(7, 3)}
    history = {
        key: [_comparable(m.value) for m in store.get_metric_history(run_id, key)] for key in want
    }
    assert history == {key: [value] for key, value in want.items()}


def test_integer_metric_value_accepted(store: AbstractTrackingStore) -> None:
    run_id = _new_run(store)
    store.log_metric(run_id, Metric("m", 3, 1, 0))  # type: ignore[arg-type]
    assert store.get_run(run_id).data.metrics == {"m": 3.0}


def test_large_steps_and_timestamps(store: AbstractTrackingStore) -> None:
    run_id = _new_run(store)
    big = 2**62
    store.log_metric(run_id, Metric("m", 1.0, big, big))
    store.log_metric(run_id, Metric("m", 2.0, 0, -5))
    assert store.get_run(run_id).data.metric_records == [Metric("m", 1.0, big, big)]
    assert [m.step for m in store.get_metric_history(run_id, "m")] == [-5, big]


# name: (points as (value, timestamp, step), the expected latest point); the latest point is
# the greatest (step, timestamp, value).
LATEST_CASES: dict[str, tuple[list[tuple[float, int, int]], tuple[float, int, int]]] = {
    "higher-step-wins-over-timestamp": ([(1.0, 10, 0), (2.0, 5, 1)], (2.0, 5, 1)),
    "older-step-logged-later": ([(2.0, 5, 1), (1.0, 10, 0)], (2.0, 5, 1)),
    "same-step-later-timestamp": ([(1.0, 10, 3), (2.0, 20, 3)], (2.0, 20, 3)),
    "same-step-earlier-timestamp-later": ([(2.0, 20, 3), (1.0, 10, 3)], (2.0, 20, 3)),
    "greatest-value": ([(1.0, 10, 3), (5.0, 10, 3), (3.0, 10, 3)], (5.0, 10, 3)),
    "greatest-negative-value": ([(-1.0, 10, 3), (-5.0, 10, 3)], (-1.0, 10, 3)),
    "inf-greatest": ([(9.0, 10, 3), (math.inf, 10, 3)], (math.inf, 10, 3)),
    "minus-inf-least": ([(-math.inf, 10, 3), (-9.0, 10, 3)], (-9.0, 10, 3)),
    "nan-latest-by-timestamp": ([(1.0, 10, 3), (math.nan, 11, 3)], (math.nan, 11, 3)),
    "nan-then-higher-step": ([(math.nan, 10, 3), (0.5, 10, 4)], (0.5, 10, 4)),
    "negative-steps": ([(1.0, 10, -1), (2.0, 0, -2)], (1.0, 10, -1)),
}


def test_latest_metric(store: AbstractTrackingStore) -> None:
    """Every case twice, each in a run of its own: all points in one batch, and one by one."""
    got: dict[tuple[str, str], tuple[float | str, int, int, int]] = {}
    want: dict[tuple[str, str], tuple[float | str, int, int, int]] = {}
    for name, (points, (value, timestamp, step)) in LATEST_CASES.items():
        metrics = [Metric("m", v, ts, st) for v, ts, st in points]
        batched, one_by_one = _new_run(store), _new_run(store)
        store.log_batch(batched, metrics=metrics)
        for metric in metrics:
            store.log_metric(one_by_one, metric)
        for mode, run_id in (("one-batch", batched), ("one-by-one", one_by_one)):
            (latest,) = store.get_run(run_id).data.metric_records
            history = store.get_metric_history(run_id, "m")
            got[name, mode] = (
                _comparable(latest.value),
                latest.timestamp,
                latest.step,
                len(history),
            )
            want[name, mode] = (_comparable(value), timestamp, step, len(points))
    assert got == want


def test_latest_metric_with_nan_tie_does_not_depend_on_batching(
    store: AbstractTrackingStore,
) -> None:
    results = {}
    for order, points in (
        ("finite-first", [(-3.0, 10, 0), (math.nan, 10, 0)]),
        ("nan-first", [(math.nan, 10, 0), (-3.0, 10, 0)]),
    ):
        metrics = [Metric("m", v, ts, step) for v, ts, step in points]
        batched = _new_run(store)
        store.log_batch(batched, metrics=metrics)
        one_by_one = _new_run(store)
        for m in metrics:
            store.log_metric(one_by_one, m)
        results[order] = (
            _comparable(store.get_run(batched).data.metrics["m"]),
            _comparable(store.get_run(one_by_one).data.metrics["m"]),
        )
    assert {order: a == b for order, (a, b) in results.items()} == {
        "finite-first": True,
        "nan-first": True,
    }, results


def test_latest_metric_per_key_and_run(store: AbstractTrackingStore) -> None:
    a, b = _new_run(store), _new_run(store)
    store.log_batch(a, metrics=[Metric("x", 1.0, 1, 0), Metric("y", 2.0, 1, 0)])
    store.log_batch(b, metrics=[Metric("x", 3.0, 1, 5)])
    store.log_batch(a, metrics=[Metric("x", 4.0, 1, 1)])
    assert store.get_run(a).data.metrics == {"x": 4.0, "y": 2.0}
    assert store.get_run(b).data.metrics == {"x": 3.0}


# -- dataset inputs --------------------------------------------------------------------------


def test_log_inputs(store: AbstractTrackingStore) -> None:
    run_id = _new_run(store)
    train = DatasetInput(_dataset("iris", "d1"), (InputTag(CONTEXT, "training"),))
    evals = DatasetInput(
        Dataset("iris-eval", "d2", "s3", '{"uri": "s3://b/k"}', schema='{"a": 1}', profile="{}"),
        (InputTag(CONTEXT, "eval"), InputTag("extra", "1")),
    )
    store.log_inputs(run_id, [train, evals])
    inputs = {d.dataset.name: d for d in store.get_run(run_id).inputs.dataset_inputs}
    assert set(inputs) == {"iris", "iris-eval"}
    assert inputs["iris"].dataset == train.dataset
    assert inputs["iris"].context == "training"
    assert inputs["iris-eval"].dataset == evals.dataset
    assert inputs["iris-eval"].context == "eval"
    assert {(t.key, t.value) for t in inputs["iris-eval"].tags} == {
        (CONTEXT, "eval"),
        ("extra", "1"),
    }


def test_log_inputs_again_does_not_duplicate(store: AbstractTrackingStore) -> None:
    run_id = _new_run(store)
    item = DatasetInput(_dataset(), (InputTag(CONTEXT, "training"),))
    store.log_inputs(run_id, [item])
    store.log_inputs(run_id, [item])
    (only,) = store.get_run(run_id).inputs.dataset_inputs
    assert only.context == "training"


def test_same_dataset_shared_by_runs(store: AbstractTrackingStore) -> None:
    a, b = _new_run(store), _new_run(store)
    store.log_inputs(a, [DatasetInput(_dataset(), (InputTag(CONTEXT, "training"),))])
    store.log_inputs(b, [DatasetInput(_dataset(), (InputTag(CONTEXT, "eval"),))])
    (in_a,) = store.get_run(a).inputs.dataset_inputs
    (in_b,) = store.get_run(b).inputs.dataset_inputs
    assert in_a.dataset == in_b.dataset == _dataset()
    assert (in_a.context, in_b.context) == ("training", "eval")
    found = store.search_runs(["0"], "datasets.context = 'eval'")
    assert [r.info.run_id for r in found] == [b]


def test_dataset_without_context(store: AbstractTrackingStore) -> None:
    run_id = _new_run(store)
    store.log_inputs(run_id, [DatasetInput(_dataset())])
    (only,) = store.get_run(run_id).inputs.dataset_inputs
    assert only.context is None
    assert only.tags == ()


def test_log_inputs_to_deleted_or_unknown_run(store: AbstractTrackingStore) -> None:
    run_id = _new_run(store)
    store.delete_run(run_id)
    item = DatasetInput(_dataset())
    with pytest.raises(InvalidParameterValue):
        store.log_inputs(run_id, [item])
    with pytest.raises(RunNotFound):
        store.log_inputs("c" * 32, [item])
    assert store.get_run(run_id).inputs.dataset_inputs == []


# -- metric history --------------------------------------------------------------------------


def test_metric_history_order(store: AbstractTrackingStore) -> None:
    run_id = _new_run(store)
    points = [
        Metric("m", 3.0, 30, 2),
        Metric("m", 1.0, 50, 0),
        Metric("m", 2.0, 10, 1),
        Metric("m", 0.5, 40, 0),
        Metric("other", 9.0, 1, 0),
    ]
    store.log_batch(run_id, metrics=points)
    history = store.get_metric_history(run_id, "m")
    assert [(m.step, m.timestamp, m.value) for m in history] == [
        (0, 40, 0.5),
        (0, 50, 1.0),
        (1, 10, 2.0),
        (2, 30, 3.0),
    ]
    assert history.token is None
    assert store.get_metric_history(run_id, "missing") == []


def test_metric_history_paging(store: AbstractTrackingStore) -> None:
    run_id = _new_run(store)
    store.log_batch(run_id, metrics=[Metric("m", float(i), 1000 + i, i) for i in range(10)])
    seen: list[int] = []
    token = None
    pages = 0
    while True:
        page = store.get_metric_history(run_id, "m", max_results=3, page_token=token)
        assert len(page) <= 3
        seen += [m.step for m in page]
        pages += 1
        token = page.token
        if token is None:
            break
    assert seen == list(range(10))
    assert pages == 4
    exact = store.get_metric_history(run_id, "m", max_results=10)
    assert len(exact) == 10
    assert exact.token is None


def test_metric_history_errors(store: AbstractTrackingStore) -> None:
    with pytest.raises(RunNotFound):
        store.get_metric_history("d" * 32, "m")
    run_id = _new_run(store)
    with pytest.raises(InvalidParameterValue):
        store.get_metric_history(run_id, "m", page_token="&&& not a token")
    with pytest.raises(InvalidParameterValue):
        store.get_metric_history(run_id, "m", max_results=0)


N_POINTS = 5000


def test_bulk_interval(store: AbstractTrackingStore) -> None:
    """Two runs of ``N_POINTS`` steps of ``loss`` (value = step, the second offset by 1000):
    sampling over all steps, then over a step range."""
    long_runs = []
    for offset in (0, 1000):
        run_id = _new_run(store)
        for start in range(0, N_POINTS, 1000):
            store.log_batch(
                run_id,
                metrics=[
                    Metric("loss", float(s + offset), 10 * s, s) for s in range(start, start + 1000)
                ],
            )
        long_runs.append(run_id)

    points = store.get_metric_history_bulk_interval(long_runs, "loss", max_results=100)
    assert all(isinstance(p, MetricWithRunId) and p.key == "loss" for p in points)
    assert len(points) == 200
    for run_id, offset in zip(long_runs, (0, 1000), strict=True):
        mine = [p for p in points if p.run_id == run_id]
        steps = [p.step for p in mine]
        assert len(steps) == 100
        assert (steps[0], steps[-1]) == (0, N_POINTS - 1)  # first and last always included
        assert steps == sorted(set(steps))
        gaps = {b - a for a, b in itertools.pairwise(steps)}
        assert min(gaps) >= 40
        assert max(gaps) <= 60  # spread evenly: about 5000 / 99 apart
        assert all(p.value == p.step + offset and p.timestamp == 10 * p.step for p in mine)

    first = long_runs[:1]
    points = store.get_metric_history_bulk_interval(
        first, "loss", max_results=2500, start_step=100, end_step=199
    )
    assert [p.step for p in points] == list(range(100, 200))
    sampled = store.get_metric_history_bulk_interval(
        first, "loss", max_results=10, start_step=1000, end_step=3000
    )
    steps = [p.step for p in sampled]
    assert len(steps) == 10
    assert (steps[0], steps[-1]) == (1000, 3000)
    assert steps == sorted(set(steps))
    one = store.get_metric_history_bulk_interval(
        first, "loss", max_results=5, start_step=42, end_step=42
    )
    assert [(p.step, p.value) for p in one] == [(42, 42.0)]
    assert (
        store.get_metric_history_bulk_interval(
            first, "loss", max_results=5, start_step=N_POINTS, end_step=N_POINTS + 10
        )
        == []
    )


def test_bulk_interval_few_points(store: AbstractTrackingStore) -> None:
    run_id = _new_run(store)
    store.log_batch(run_id, metrics=[Metric("m", float(s), s, s) for s in (0, 5, 7)])
    points = store.get_metric_history_bulk_interval([run_id], "m", max_results=2500)
    assert [(p.run_id, p.step) for p in points] == [(run_id, 0), (run_id, 5), (run_id, 7)]
    assert store.get_metric_history_bulk_interval([run_id], "nothing", max_results=10) == []


def test_bulk_interval_nan_and_inf(store: AbstractTrackingStore) -> None:
    run_id = _new_run(store)
    store.log_batch(run_id, metrics=[Metric("m", math.nan, 1, 0), Metric("m", math.inf, 2, 1)])
    values = [p.value for p in store.get_metric_history_bulk_interval([run_id], "m", 10)]
    assert math.isnan(values[0])
    assert values[1] == math.inf


# name: (number of run ids, keyword arguments, text the message must contain)
BAD_BULK_REQUESTS: dict[str, tuple[int, dict[str, int], str]] = {
    "no-runs": (0, {"max_results": 10}, "run"),
    "101-runs": (101, {"max_results": 10}, "100"),
    "max-results-0": (1, {"max_results": 0}, "max_results"),
    "max-results-2501": (1, {"max_results": 2501}, "max_results"),
    "only-start": (1, {"max_results": 10, "start_step": 5}, "step"),
    "only-end": (1, {"max_results": 10, "end_step": 5}, "step"),
    "start-after-end": (1, {"max_results": 10, "start_step": 9, "end_step": 5}, "step"),
}


def test_bulk_interval_invalid_requests(store: AbstractTrackingStore) -> None:
    outcome = {}
    for name, (n_runs, kwargs, fragment) in BAD_BULK_REQUESTS.items():
        run_ids = [f"{i:032x}" for i in range(n_runs)]
        try:
            store.get_metric_history_bulk_interval(run_ids, "loss", **kwargs)  # type: ignore[arg-type]
        except InvalidParameterValue as exc:
            outcome[name] = (exc.error_code, fragment in exc.message)
        else:
            outcome[name] = ("accepted", False)
    assert outcome == dict.fromkeys(BAD_BULK_REQUESTS, ("INVALID_PARAMETER_VALUE", True))


def test_bulk_interval_accepts_100_runs(store: AbstractTrackingStore) -> None:
    run_id = _new_run(store)
    store.log_metric(run_id, Metric("loss", 1.0, 1, 0))
    run_ids = [run_id] + [f"{i:032x}" for i in range(99)]
    points = store.get_metric_history_bulk_interval(run_ids, "loss", max_results=2500)
    assert [(p.run_id, p.value) for p in points] == [(run_id, 1.0)]
