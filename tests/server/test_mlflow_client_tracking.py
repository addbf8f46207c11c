"""The official MLflow client (``MlflowClient`` and the fluent ``mlflow.*`` API), unchanged,
against the live Slipway server: what MLflow users run must work as it does on MLflow's."""

from __future__ import annotations

import math
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

# MLflow's dataset code calls pandas in ways newer pandas deprecates.
pytestmark = pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning")

import mlflow  # noqa: E402  (a dev dependency: these tests must run, never skip)
from mlflow.entities import Metric, Param, RunTag, ViewType  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402


def unique(prefix: str = "client") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def error_code(exc: pytest.ExceptionInfo[MlflowException]) -> str:
    return str(exc.value.error_code)


def test_experiment_lifecycle(mlflow_client: Any) -> None:
    client = mlflow_client
    name = unique("lifecycle")
    experiment_id = client.create_experiment(name, tags={"team": "vision", "empty": ""})
    exp = client.get_experiment(experiment_id)
    assert exp.name == name
    assert exp.lifecycle_stage == "active"
    assert exp.tags == {"team": "vision", "empty": ""}
    assert exp.creation_time > 0
    assert client.get_experiment_by_name(name).experiment_id == experiment_id
    assert client.get_experiment_by_name(unique("missing")) is None

    new_name = unique("renamed")
    client.rename_experiment(experiment_id, new_name)
    assert client.get_experiment(experiment_id).name == new_name
    assert client.get_experiment_by_name(name) is None

    client.set_experiment_tag(experiment_id, "stage", "dev")
    client.set_experiment_tag(experiment_id, "stage", "prod")
    client.delete_experiment_tag(experiment_id, "team")
    assert client.get_experiment(experiment_id).tags == {"empty": "", "stage": "prod"}

    client.delete_experiment(experiment_id)
    assert client.get_experiment(experiment_id).lifecycle_stage == "deleted"
    deleted = client.search_experiments(
        view_type=ViewType.DELETED_ONLY, filter_string=f"name = '{new_name}'"
    )
    assert [e.experiment_id for e in deleted] == [experiment_id]
    client.restore_experiment(experiment_id)
    assert client.get_experiment(experiment_id).lifecycle_stage == "active"


def test_search_experiments_filter_order_and_pages(mlflow_client: Any) -> None:
    prefix = unique("sx")
    ids = [
        mlflow_client.create_experiment(f"{prefix}-{i}", tags={"parity": str(i % 2)})
        for i in range(5)
    ]
    found = mlflow_client.search_experiments(
        filter_string=f"name LIKE '{prefix}-%'", order_by=["name DESC"]
    )
    assert [e.experiment_id for e in found] == ids[::-1]
    odd = mlflow_client.search_experiments(
        filter_string=f"name LIKE '{prefix}%' AND tags.parity = '1'", order_by=["name"]
    )
    assert [e.experiment_id for e in odd] == [ids[1], ids[3]]
    page = mlflow_client.search_experiments(
        filter_string=f"name LIKE '{prefix}%'", order_by=["name"], max_results=2
    )
    assert [e.experiment_id for e in page] == ids[:2]
    assert page.token
    rest = mlflow_client.search_experiments(
        filter_string=f"name LIKE '{prefix}%'",
        order_by=["name"],
        max_results=10,
        page_token=page.token,
    )
    assert [e.experiment_id for e in rest] == ids[2:]
    assert rest.token is None
    # A client built with no URI reads MLFLOW_TRACKING_URI, as users run it.
    default_client = mlflow.MlflowClient()
    assert "0" in {e.experiment_id for e in default_client.search_experiments(max_results=50000)}


def test_experiment_errors_carry_mlflow_codes(mlflow_client: Any) -> None:
    name = unique("dup")
    experiment_id = mlflow_client.create_experiment(name)
    with pytest.raises(MlflowException) as exc:
        mlflow_client.create_experiment(name)
    assert error_code(exc) == "RESOURCE_ALREADY_EXISTS"
    with pytest.raises(MlflowException) as exc:
        mlflow_client.get_experiment("987654321")
    assert error_code(exc) == "RESOURCE_DOES_NOT_EXIST"
    with pytest.raises(MlflowException) as exc:
        mlflow_client.restore_experiment(experiment_id)
    assert error_code(exc) == "INVALID_PARAMETER_VALUE"
    with pytest.raises(MlflowException) as exc:
        mlflow_client.delete_experiment_tag(experiment_id, "never-set")
    assert error_code(exc) == "RESOURCE_DOES_NOT_EXIST"
    with pytest.raises(MlflowException) as exc:
        mlflow_client.search_experiments(filter_string="name ~ 'x'")
    assert error_code(exc) == "INVALID_PARAMETER_VALUE"


def test_create_run_with_all_arguments(mlflow_client: Any) -> None:
    experiment_id = mlflow_client.create_experiment(unique("runs"))
    start = 1_700_000_000_000
    run = mlflow_client.create_run(
        experiment_id, start_time=start, tags={"a": "1", "empty": ""}, run_name="named"
    )
    assert run.info.run_name == "named"
    assert run.info.start_time == start
    assert run.info.status == "RUNNING"
    assert run.info.experiment_id == experiment_id
    assert run.info.end_time is None
    assert run.data.tags["a"] == "1"
    assert run.data.tags["empty"] == ""
    assert run.data.tags["mlflow.runName"] == "named"
    fetched = mlflow_client.get_run(run.info.run_id)
    assert fetched.info.run_id == run.info.run_id
    assert fetched.data.tags == run.data.tags

    mlflow_client.update_run(run.info.run_id, name="renamed")
    assert mlflow_client.get_run(run.info.run_id).info.run_name == "renamed"
    mlflow_client.set_terminated(run.info.run_id, status="KILLED", end_time=start + 5)
    info = mlflow_client.get_run(run.info.run_id).info
    assert (info.status, info.end_time) == ("KILLED", start + 5)

    mlflow_client.delete_run(run.info.run_id)
    assert mlflow_client.get_run(run.info.run_id).info.lifecycle_stage == "deleted"
    with pytest.raises(MlflowException) as exc:
        mlflow_client.log_param(run.info.run_id, "p", "v")
    assert error_code(exc) == "INVALID_PARAMETER_VALUE"
    mlflow_client.restore_run(run.info.run_id)
    assert mlflow_client.get_run(run.info.run_id).info.lifecycle_stage == "active"


def test_fluent_api(mlflow_client: Any) -> None:
    name = unique("fluent")
    experiment = mlflow.set_experiment(name)
    assert mlflow_client.get_experiment_by_name(name).experiment_id == experiment.experiment_id
    with mlflow.start_run(run_name="outer") as run:
        mlflow.log_param("lr", 0.01)
        mlflow.log_params({"layers": 3, "blank": ""})
        mlflow.log_metric("loss", 0.5, step=1)
        mlflow.log_metric("loss", 0.25, step=2)
        mlflow.log_metrics({"acc": 0.9, "nan": float("nan")}, step=2)
        mlflow.set_tag("stage", "test")
        mlflow.set_tags({"empty": "", "other": 1})
        with mlflow.start_run(run_name="inner", nested=True) as child:
            mlflow.log_metric("inner", 1.0)
    run_id, child_id = run.info.run_id, child.info.run_id
    got = mlflow_client.get_run(run_id)
    assert got.info.status == "FINISHED"
    assert got.info.end_time is not None
    assert got.info.experiment_id == experiment.experiment_id
    assert got.data.params == {"lr": "0.01", "layers": "3", "blank": ""}
    assert got.data.metrics["loss"] == 0.25
    assert got.data.metrics["acc"] == 0.9
    assert math.isnan(got.data.metrics["nan"])
    assert got.data.tags["stage"] == "test"
    assert got.data.tags["empty"] == ""
    assert got.data.tags["other"] == "1"
    assert "mlflow.user" in got.data.tags
    assert "mlflow.source.name" in got.data.tags
    child_run = mlflow_client.get_run(child_id)
    assert child_run.data.tags["mlflow.parentRunId"] == run_id
    assert child_run.info.run_name == "inner"
    history = mlflow_client.get_metric_history(run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(1, 0.5), (2, 0.25)]

    failed = mlflow.start_run(experiment_id=experiment.experiment_id)
    mlflow.end_run(status="FAILED")
    assert mlflow_client.get_run(failed.info.run_id).info.status == "FAILED"


def test_values_empty_strings_and_special_floats(mlflow_client: Any) -> None:
    experiment_id = mlflow_client.create_experiment(unique("values"))
    run_id = mlflow_client.create_run(experiment_id).info.run_id
    mlflow_client.log_param(run_id, "empty", "")
    mlflow_client.set_tag(run_id, "empty", "")
    for key, value in [("nan", math.nan), ("inf", math.inf), ("ninf", -math.inf), ("z", 0)]:
        mlflow_client.log_metric(run_id, key, value, timestamp=1, step=3)
    data = mlflow_client.get_run(run_id).data
    assert data.params == {"empty": ""}
    assert data.tags["empty"] == ""
    assert math.isnan(data.metrics["nan"])
    assert data.metrics["inf"] == math.inf
    assert data.metrics["ninf"] == -math.inf
    assert data.metrics["z"] == 0
    history = mlflow_client.get_metric_history(run_id, "ninf")
    assert [(m.value, m.step, m.timestamp) for m in history] == [(-math.inf, 3, 1)]
    mlflow_client.delete_tag(run_id, "empty")
    assert "empty" not in mlflow_client.get_run(run_id).data.tags


def test_server_side_validation_errors(mlflow_client: Any) -> None:
    experiment_id = mlflow_client.create_experiment(unique("errors"))
    run_id = mlflow_client.create_run(experiment_id).info.run_id
    mlflow_client.log_param(run_id, "p", "1")
    mlflow_client.log_param(run_id, "p", "1")  # the same value again is fine
    with pytest.raises(MlflowException) as exc:
        mlflow_client.log_param(run_id, "p", "2")
    assert error_code(exc) == "INVALID_PARAMETER_VALUE"
    assert "Changing param values is not allowed" in exc.value.message
    with pytest.raises(MlflowException) as exc:
        mlflow_client.get_run(uuid.uuid4().hex)
    assert error_code(exc) == "RESOURCE_DOES_NOT_EXIST"
    with pytest.raises(MlflowException) as exc:
        mlflow_client.delete_tag(run_id, "never-set")
    assert error_code(exc) == "RESOURCE_DOES_NOT_EXIST"
    with pytest.raises(MlflowException) as exc:
        mlflow_client.create_run("987654321")
    assert error_code(exc) == "RESOURCE_DOES_NOT_EXIST"
    with pytest.raises(MlflowException) as exc:
        mlflow_client.search_runs([experiment_id], filter_string="metrics.loss <")
    assert error_code(exc) == "INVALID_PARAMETER_VALUE"
    with pytest.raises(MlflowException) as exc:
        mlflow_client.search_runs([experiment_id], max_results=50001)
    assert error_code(exc) == "INVALID_PARAMETER_VALUE"
    assert mlflow_client.get_run(run_id).data.params == {"p": "1"}


def test_log_batch_at_and_over_the_limits(mlflow_client: Any) -> None:
    experiment_id = mlflow_client.create_experiment(unique("batch"))
    run_id = mlflow_client.create_run(experiment_id).info.run_id
    now = int(time.time() * 1000)
    mlflow_client.log_batch(run_id, metrics=[Metric("m", float(i), now, i) for i in range(1000)])
    mlflow_client.log_batch(
        run_id,
        metrics=[Metric("m2", float(i), now, i) for i in range(800)],
        params=[Param(f"p{i}", str(i)) for i in range(100)],
        tags=[RunTag(f"t{i}", "") for i in range(100)],
    )
    data = mlflow_client.get_run(run_id).data
    assert data.metrics == {"m": 999.0, "m2": 799.0}
    assert len(data.params) == 100
    assert all(data.tags[f"t{i}"] == "" for i in range(100))
    # Over the limits, the client splits the batch into requests the server accepts.
    other = mlflow_client.create_run(experiment_id).info.run_id
    mlflow_client.log_batch(
        other,
        metrics=[Metric("m", float(i), now, i) for i in range(2500)],
        params=[Param(f"p{i}", "v") for i in range(250)],
        tags=[RunTag(f"t{i}", "v") for i in range(250)],
    )
    data = mlflow_client.get_run(other).data
    assert len(data.params) == 250
    assert len([k for k in data.tags if k.startswith("t")]) == 250
    assert len(mlflow_client.get_metric_history(other, "m")) == 2500
    with pytest.raises(MlflowException) as exc:
        mlflow_client.log_batch(other, params=[Param("p0", "changed")])
    assert error_code(exc) == "INVALID_PARAMETER_VALUE"


@pytest.mark.slow
def test_search_runs_filters_order_and_2500_runs_paged(mlflow_client: Any) -> None:
    client = mlflow_client
    experiment_id = client.create_experiment(unique("many"))
    total = 2500
    start = 1_600_000_000_000

    def make(i: int) -> str:
        run = client.create_run(
            experiment_id, start_time=start + i, tags={"group": str(i % 5)}, run_name=f"r{i:04d}"
        )
        if i % 50 == 0:  # a score and a param on every 50th run, in one request
            client.log_batch(
                run.info.run_id,
                metrics=[Metric("score", float(i), start, 0)],
                params=[Param("index", str(i))],
            )
        return str(run.info.run_id)

    with ThreadPoolExecutor(max_workers=4) as pool:
        ids = list(pool.map(make, range(total)))

    seen: list[str] = []
    token = None
    while True:
        page = client.search_runs(
            [experiment_id],
            order_by=["attributes.start_time ASC"],
            max_results=1000,
            page_token=token,
        )
        seen.extend(r.info.run_id for r in page)
        token = page.token
        if not token:
            break
    assert len(seen) == total
    assert seen == ids  # every run exactly once, in start-time order
    everything = client.search_runs([experiment_id], max_results=50000)
    assert {r.info.run_id for r in everything} == set(ids)

    scored = client.search_runs(
        [experiment_id], filter_string="metrics.score >= 0", order_by=["metrics.score DESC"]
    )
    assert [r.data.metrics["score"] for r in scored] == [float(i) for i in range(2450, -1, -50)]
    top = client.search_runs(
        [experiment_id],
        filter_string="metrics.score >= 2000 and tags.group = '0'",
        order_by=["attributes.start_time DESC"],
    )
    assert [r.info.run_name for r in top] == [
        "r2450",
        "r2400",
        "r2350",
        "r2300",
        "r2250",
        "r2200",
        "r2150",
        "r2100",
        "r2050",
        "r2000",
    ]
    named = client.search_runs(
        [experiment_id], filter_string="attributes.run_name LIKE 'r000%'", order_by=["run_name"]
    )
    assert [r.info.run_name for r in named] == [f"r{i:04d}" for i in range(10)]
    by_param = client.search_runs([experiment_id], filter_string="params.index = '1250'")
    assert [r.info.run_id for r in by_param] == [ids[1250]]
    fluent = mlflow.search_runs(
        [experiment_id], filter_string="tags.group = '3'", output_format="list"
    )
    assert len(fluent) == total // 5


def test_log_input_dataset(mlflow_client: Any) -> None:
    import pandas as pd

    experiment_id = mlflow_client.create_experiment(unique("inputs"))
    df = pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": ["a", "b", "c"]})
    dataset = mlflow.data.from_pandas(df, name="toy")
    with mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.log_input(dataset, context="train", tags={"split": "a"})
    inputs = mlflow_client.get_run(run.info.run_id).inputs.dataset_inputs
    assert len(inputs) == 1
    got = inputs[0]
    assert got.dataset.name == "toy"
    assert got.dataset.digest == dataset.digest
    assert got.dataset.source_type == dataset.source._get_source_type()
    assert got.dataset.schema
    tags = {t.key: t.value for t in got.tags}
    assert tags["mlflow.data.context"] == "train"
    assert tags["split"] == "a"
    assert mlflow.data.get_source(got).to_dict() == dataset.source.to_dict()


def test_get_metric_history_and_bulk_interval(mlflow_client: Any) -> None:
    experiment_id = mlflow_client.create_experiment(unique("history"))
    run_id = mlflow_client.create_run(experiment_id).info.run_id
    metrics = [Metric("loss", 1.0 / (s + 1), 1000 + s, s) for s in range(300)]
    mlflow_client.log_batch(run_id, metrics=metrics)
    history = mlflow_client.get_metric_history(run_id, "loss")
    assert [(m.step, m.value, m.timestamp) for m in history] == [
        (m.step, m.value, m.timestamp) for m in metrics
    ]
    assert mlflow_client.get_metric_history(run_id, "absent") == []
    with pytest.raises(MlflowException) as exc:
        mlflow_client.get_metric_history(uuid.uuid4().hex, "loss")
    assert error_code(exc) == "RESOURCE_DOES_NOT_EXIST"


def test_recorded_model_history(mlflow_client: Any) -> None:
    import json

    from mlflow.models import Model

    experiment_id = mlflow_client.create_experiment(unique("models"))
    run_id = mlflow_client.create_run(experiment_id).info.run_id
    for path in ("model", "again"):
        model = Model(artifact_path=path, run_id=run_id)
        model.add_flavor("python_function", loader_module="my.loader", config={"k": "v"})
        mlflow_client._record_logged_model(run_id, model)
    history = json.loads(mlflow_client.get_run(run_id).data.tags["mlflow.log-model.history"])
    assert [h["artifact_path"] for h in history] == ["model", "again"]
    assert history[0]["flavors"]["python_function"]["loader_module"] == "my.loader"
    assert "config" not in history[0]["flavors"]["python_function"]
    assert history[0]["run_id"] == run_id
