"""The fluent API end to end: the README flow, run lifecycle, nesting, tags and artifacts."""

from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pandas as pd
import pytest
import yaml

import slipway
from slipway import RunStatus, SlipwayClient
from slipway.exceptions import ExperimentNotFound, InvalidParameterValue, SlipwayError
from slipway.tracking import fluent


def _iris_frame(shift: float = 0.0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "sepal_length": [5.1 + shift, 4.9, 6.3, 5.8],
            "sepal_width": [3.5, 3.0, 3.3, 2.7],
            "species": ["setosa", "setosa", "virginica", "virginica"],
        }
    )


# -- the README flow ---------------------------------------------------------------------------


def test_readme_flow(tracking_dir: Path, tmp_path: Path) -> None:
    experiment = slipway.set_experiment("iris")
    assert experiment.name == "iris"
    notes = tmp_path / "notes.txt"
    notes.write_text("first try\n")
    train = _iris_frame()

    with slipway.start_run(run_name="baseline") as run:
        assert slipway.active_run() is not None
        assert slipway.active_run().info.run_id == run.info.run_id
        slipway.log_params({"lr": 0.1, "epochs": 20})
        for step in range(1000):
            slipway.log_metric("loss", 1.0 / (step + 1), step=step)
        slipway.log_artifact(notes)
        slipway.log_input(train, name="iris-train", context="training")
    assert slipway.active_run() is None
    assert slipway.last_active_run_id() == run.info.run_id

    # Two more runs: one that the filter excludes, one that matches with a lower loss.
    with slipway.start_run(run_name="too-slow"):
        slipway.log_params({"lr": 0.1})
        slipway.log_metric("loss", 0.5)
    with slipway.start_run(run_name="better") as better:
        slipway.log_params({"lr": 0.1})
        slipway.log_metric("loss", 0.0001)
    with slipway.start_run(run_name="other-lr"):
        slipway.log_params({"lr": 0.01})
        slipway.log_metric("loss", 0.0001)

    client = SlipwayClient()
    stored = client.get_run(run.info.run_id)
    assert stored.info.status == RunStatus.FINISHED
    assert stored.info.end_time is not None
    assert stored.info.end_time >= stored.info.start_time
    assert stored.info.run_name == "baseline"
    assert stored.info.experiment_id == experiment.experiment_id
    assert stored.data.params == {"lr": "0.1", "epochs": "20"}
    assert stored.data.metrics["loss"] == pytest.approx(0.001)
    history = client.get_metric_history(run.info.run_id, "loss")
    assert [m.step for m in history] == list(range(1000))
    assert history[0].value == 1.0
    assert [f.path for f in client.list_artifacts(run.info.run_id)] == ["notes.txt"]

    (dataset_input,) = stored.inputs.dataset_inputs
    assert dataset_input.dataset.name == "iris-train"
    assert dataset_input.context == "training"
    digest = dataset_input.dataset.digest
    assert digest

    found = slipway.search_runs(
        ["iris"], "metrics.loss < 0.01 and params.lr = '0.1'", order_by=["metrics.loss ASC"]
    )
    assert [r.info.run_id for r in found] == [better.info.run_id, run.info.run_id]

    frame = slipway.search_runs(
        ["iris"],
        "metrics.loss < 0.01 and params.lr = '0.1'",
        order_by=["metrics.loss ASC"],
        output_format="pandas",
    )
    assert isinstance(frame, pd.DataFrame)
    assert {"run_id", "status", "metrics.loss", "params.lr", "tags.mlflow.runName"} <= set(
        frame.columns
    )
    assert frame["run_id"].tolist() == [better.info.run_id, run.info.run_id]
    assert frame["params.lr"].tolist() == ["0.1", "0.1"]
    assert frame["metrics.loss"].tolist() == pytest.approx([0.0001, 0.001])
    assert frame["status"].tolist() == ["FINISHED", "FINISHED"]

    # The digest comes from the content: same data, same digest; changed data, another one.
    with slipway.start_run() as same_run:
        slipway.log_input(_iris_frame(), name="iris-train")
    with slipway.start_run() as changed_run:
        slipway.log_input(_iris_frame(shift=0.1), name="iris-train")
    same = client.get_run(same_run.info.run_id).inputs.dataset_inputs[0].dataset
    changed = client.get_run(changed_run.info.run_id).inputs.dataset_inputs[0].dataset
    assert same.digest == digest
    assert changed.digest != digest


def test_search_runs_defaults_to_the_active_experiment(tracking_dir: Path) -> None:
    slipway.set_experiment("first")
    with slipway.start_run() as a:
        pass
    slipway.set_experiment("second")
    with slipway.start_run() as b:
        pass
    assert [r.info.run_id for r in slipway.search_runs()] == [b.info.run_id]
    by_id = slipway.search_runs([slipway.set_experiment("first").experiment_id])
    assert [r.info.run_id for r in by_id] == [a.info.run_id]
    both = {r.info.run_id for r in slipway.search_runs(["first", "second"])}
    assert both == {a.info.run_id, b.info.run_id}


def test_search_runs_pandas_while_a_run_is_active(tracking_dir: Path) -> None:
    with slipway.start_run() as run:
        slipway.log_metric("acc", 0.5)
        frame = slipway.search_runs(output_format="pandas")
    assert frame["run_id"].tolist() == [run.info.run_id]
    assert frame["status"].tolist() == ["RUNNING"]
    assert pd.isna(frame["end_time"].iloc[0])
    assert frame["metrics.acc"].tolist() == [0.5]


def test_search_runs_max_results_pages_through(tracking_dir: Path) -> None:
    for i in range(5):
        with slipway.start_run():
            slipway.log_metric("i", i)
    runs = slipway.search_runs(order_by=["metrics.i DESC"], max_results=3)
    assert [r.data.metrics["i"] for r in runs] == [4.0, 3.0, 2.0]


# -- run lifecycle -------------------------------------------------------------------------


def test_run_ends_finished(tracking_dir: Path) -> None:
    with slipway.start_run() as run:
        assert run.info.status == RunStatus.RUNNING
    info = SlipwayClient().get_run(run.info.run_id).info
    assert info.status == RunStatus.FINISHED
    assert info.end_time is not None


def test_exception_inside_run_marks_it_failed_and_propagates(tracking_dir: Path) -> None:
    def train() -> None:
        with slipway.start_run():
            slipway.log_metric("before", 1.0)
            _ = 1 / 0

    with pytest.raises(ZeroDivisionError):
        train()
    assert slipway.active_run() is None
    run_id = slipway.last_active_run_id()
    assert run_id is not None
    stored = SlipwayClient().get_run(run_id)
    assert stored.info.status == RunStatus.FAILED
    assert stored.info.end_time is not None
    assert stored.data.metrics == {"before": 1.0}  # what was logged before still got written


def test_keyboard_interrupt_marks_run_killed(tracking_dir: Path) -> None:
    with pytest.raises(KeyboardInterrupt), slipway.start_run() as run:
        raise KeyboardInterrupt
    assert SlipwayClient().get_run(run.info.run_id).info.status == RunStatus.KILLED


def test_start_run_without_context_manager_and_end_run(tracking_dir: Path) -> None:
    run = slipway.start_run(run_name="manual")
    assert slipway.active_run() is run
    slipway.log_metric("m", 2.0)
    slipway.end_run()
    assert slipway.active_run() is None
    info = SlipwayClient().get_run(run.info.run_id).info
    assert info.status == RunStatus.FINISHED
    assert info.run_name == "manual"


@pytest.mark.parametrize("status", ["KILLED", "failed", RunStatus.FAILED])
def test_end_run_with_a_status(tracking_dir: Path, status: str | RunStatus) -> None:
    run = slipway.start_run()
    slipway.end_run(status)
    expected = RunStatus.parse(status)
    assert SlipwayClient().get_run(run.info.run_id).info.status == expected


def test_end_run_without_active_run_is_a_no_op(tracking_dir: Path) -> None:
    slipway.end_run()
    assert slipway.active_run() is None


def test_second_run_without_nested_raises(tracking_dir: Path) -> None:
    with slipway.start_run() as outer:
        with pytest.raises(InvalidParameterValue) as info:
            slipway.start_run()
        assert info.value.error_code == "INVALID_PARAMETER_VALUE"
        assert outer.info.run_id in info.value.message
        assert "nested=True" in info.value.message
        # The first run is still the active one.
        assert slipway.active_run().info.run_id == outer.info.run_id
    assert SlipwayClient().get_run(outer.info.run_id).info.status == RunStatus.FINISHED


def test_nested_runs_get_the_parent_tag(tracking_dir: Path) -> None:
    with slipway.start_run() as parent:
        with slipway.start_run(nested=True) as child:
            assert slipway.active_run().info.run_id == child.info.run_id
            with slipway.start_run(nested=True) as grandchild:
                pass
            assert slipway.active_run().info.run_id == child.info.run_id
        assert slipway.active_run().info.run_id == parent.info.run_id
    client = SlipwayClient()
    assert client.get_run(child.info.run_id).data.tags["mlflow.parentRunId"] == (parent.info.run_id)
    assert client.get_run(grandchild.info.run_id).data.tags["mlflow.parentRunId"] == (
        child.info.run_id
    )
    assert "mlflow.parentRunId" not in client.get_run(parent.info.run_id).data.tags
    children = slipway.search_runs(
        filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    assert [r.info.run_id for r in children] == [child.info.run_id]
    for r in (parent, child, grandchild):
        assert client.get_run(r.info.run_id).info.status == RunStatus.FINISHED


def test_failing_child_does_not_fail_the_parent(tracking_dir: Path) -> None:
    with slipway.start_run() as parent:
        with pytest.raises(RuntimeError), slipway.start_run(nested=True) as child:
            raise RuntimeError("child broke")
        assert slipway.active_run().info.run_id == parent.info.run_id
    client = SlipwayClient()
    assert client.get_run(child.info.run_id).info.status == RunStatus.FAILED
    assert client.get_run(parent.info.run_id).info.status == RunStatus.FINISHED


def test_resume_a_run_by_id(tracking_dir: Path) -> None:
    with slipway.start_run(run_name="first-part") as run:
        slipway.log_param("lr", "0.1")
        slipway.log_metric("loss", 1.0, step=0)
    run_id = run.info.run_id
    with slipway.start_run(run_id=run_id) as resumed:
        assert resumed.info.run_id == run_id
        assert resumed.info.status == RunStatus.RUNNING
        assert resumed.data.params == {"lr": "0.1"}
        slipway.log_metric("loss", 0.5, step=1)
    stored = SlipwayClient().get_run(run_id)
    assert stored.info.status == RunStatus.FINISHED
    assert stored.info.run_name == "first-part"
    assert [m.value for m in SlipwayClient().get_metric_history(run_id, "loss")] == [1.0, 0.5]
    assert len(slipway.search_runs()) == 1


def test_resume_through_the_environment(
    tracking_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with slipway.start_run() as run:
        pass
    monkeypatch.setenv("SLIPWAY_RUN_ID", run.info.run_id)
    with slipway.start_run() as resumed:
        assert resumed.info.run_id == run.info.run_id


def test_resume_a_deleted_run_is_refused(tracking_dir: Path) -> None:
    with slipway.start_run() as run:
        pass
    SlipwayClient().delete_run(run.info.run_id)
    with pytest.raises(InvalidParameterValue, match="deleted"):
        slipway.start_run(run_id=run.info.run_id)
    assert slipway.active_run() is None


def test_logging_without_a_run_starts_one(tracking_dir: Path) -> None:
    assert slipway.active_run() is None
    slipway.log_metric("auto", 1.0)
    run = slipway.active_run()
    assert run is not None
    slipway.end_run()
    assert SlipwayClient().get_run(run.info.run_id).data.metrics == {"auto": 1.0}


def test_run_tags_description_and_default_tags(tracking_dir: Path) -> None:
    with slipway.start_run(tags={"team": "vision", "priority": 1}, description="a note") as run:
        slipway.set_tag("stage", "dev")
        slipway.set_tags({"a": 1, "b": "two"})
        slipway.set_tag("to-delete", "x")
        slipway.delete_tag("to-delete")
    tags = SlipwayClient().get_run(run.info.run_id).data.tags
    assert tags["team"] == "vision"
    assert tags["priority"] == "1"
    assert tags["mlflow.note.content"] == "a note"
    assert tags["stage"] == "dev"
    assert tags["a"] == "1"
    assert tags["b"] == "two"
    assert "to-delete" not in tags
    assert tags["mlflow.source.type"] == "LOCAL"
    assert tags["mlflow.user"]
    assert tags["mlflow.source.name"]
    assert tags["mlflow.runName"] == run.info.run_name


def test_generated_run_name(tracking_dir: Path) -> None:
    with slipway.start_run() as run:
        pass
    assert run.info.run_name
    assert SlipwayClient().get_run(run.info.run_id).info.run_name == run.info.run_name


def test_metrics_params_and_special_values(tracking_dir: Path) -> None:
    with slipway.start_run() as run:
        assert slipway.log_param("returned", 3) == 3
        slipway.log_metrics({"a": 1, "b": 2.5}, step=7)
        slipway.log_metric("nan", float("nan"))
        slipway.log_metric("inf", float("inf"))
        slipway.log_metric("neg", -math.inf)
        slipway.log_metric("ts", 1.0, timestamp=1234)
    client = SlipwayClient()
    data = client.get_run(run.info.run_id).data
    assert data.params["returned"] == "3"
    assert data.metrics["a"] == 1.0
    assert data.metrics["b"] == 2.5
    assert math.isnan(data.metrics["nan"])
    assert data.metrics["inf"] == math.inf
    assert data.metrics["neg"] == -math.inf
    records = {m.key: m for m in data.metric_records}
    assert records["a"].step == 7
    assert records["nan"].step == 0
    assert records["ts"].timestamp == 1234


# -- experiments ---------------------------------------------------------------------------


def test_set_experiment_creates_once_and_by_id(tracking_dir: Path) -> None:
    first = slipway.set_experiment("exp")
    again = slipway.set_experiment("exp")
    assert again.experiment_id == first.experiment_id
    by_id = slipway.set_experiment(experiment_id=first.experiment_id)
    assert by_id.name == "exp"
    with slipway.start_run() as run:
        pass
    assert run.info.experiment_id == first.experiment_id


def test_runs_default_to_the_default_experiment(tracking_dir: Path) -> None:
    with slipway.start_run() as run:
        pass
    assert run.info.experiment_id == "0"


def test_start_run_in_an_explicit_experiment(tracking_dir: Path) -> None:
    exp_id = SlipwayClient().create_experiment("explicit")
    slipway.set_experiment("active-one")
    with slipway.start_run(experiment_id=exp_id) as run:
        pass
    assert run.info.experiment_id == exp_id


def test_experiment_from_the_environment(
    tracking_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fluent, "_experiment_id", None)
    monkeypatch.setenv("SLIPWAY_EXPERIMENT_NAME", "from-env")
    with slipway.start_run() as run:
        pass
    assert SlipwayClient().get_experiment(run.info.experiment_id).name == "from-env"
    monkeypatch.setattr(fluent, "_experiment_id", None)
    monkeypatch.delenv("SLIPWAY_EXPERIMENT_NAME")
    other = SlipwayClient().create_experiment("by-id-env")
    monkeypatch.setenv("SLIPWAY_EXPERIMENT_ID", other)
    with slipway.start_run() as run2:
        pass
    assert run2.info.experiment_id == other


def test_set_experiment_needs_exactly_one_argument(tracking_dir: Path) -> None:
    with pytest.raises(InvalidParameterValue, match="exactly one"):
        slipway.set_experiment()
    with pytest.raises(InvalidParameterValue, match="exactly one"):
        slipway.set_experiment("a", "1")


def test_search_in_unknown_experiment(tracking_dir: Path) -> None:
    with pytest.raises(ExperimentNotFound, match="nope"):
        slipway.search_runs(["nope"])


def test_switching_tracking_uri_forgets_the_active_experiment(
    tracking_dir: Path, tmp_path: Path
) -> None:
    slipway.set_experiment("only-here")
    slipway.set_tracking_uri(tmp_path / "another")
    with slipway.start_run() as run:
        pass
    assert run.info.experiment_id == "0"
    assert slipway.get_tracking_uri() == str(tmp_path / "another")


# -- artifacts -----------------------------------------------------------------------------


def test_log_text_dict_and_figure(tracking_dir: Path, tmp_path: Path) -> None:
    fig, ax = plt.subplots()
    ax.plot([0, 1, 2], [2, 1, 0])
    config = {"model": "svc", "c": 1.5, "layers": [4, 8]}
    with slipway.start_run() as run:
        slipway.log_text("hello\nworld\n", "notes/readme.txt")
        slipway.log_dict(config, "config.json")
        slipway.log_dict(config, "config.yaml")
        slipway.log_dict(config, "conf/config.yml")
        slipway.log_figure(fig, "plots/curve.png")
        slipway.log_figure(fig, "plots/curve.svg")
    plt.close(fig)

    client = SlipwayClient()
    rid = run.info.run_id
    top = client.list_artifacts(rid)
    assert [(f.path, f.is_dir) for f in top] == [
        ("conf", True),
        ("config.json", False),
        ("config.yaml", False),
        ("notes", True),
        ("plots", True),
    ]
    assert [f.path for f in client.list_artifacts(rid, "plots")] == [
        "plots/curve.png",
        "plots/curve.svg",
    ]
    assert all(f.file_size for f in client.list_artifacts(rid, "plots"))

    out = client.download_artifacts(rid, "", tmp_path / "dl")
    assert (out / "notes" / "readme.txt").read_text() == "hello\nworld\n"
    assert json.loads((out / "config.json").read_text()) == config
    assert yaml.safe_load((out / "config.yaml").read_text()) == config
    assert yaml.safe_load((out / "conf" / "config.yml").read_text()) == config
    assert (out / "plots" / "curve.png").read_bytes().startswith(b"\x89PNG")
    assert b"<svg" in (out / "plots" / "curve.svg").read_bytes()

    single = client.download_artifacts(rid, "config.json", tmp_path / "one")
    assert single == tmp_path / "one" / "config.json"
    assert json.loads(single.read_text()) == config


def test_log_artifact_into_a_folder_and_log_artifacts(tracking_dir: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("a")
    (src / "sub" / "b.txt").write_text("b")
    with slipway.start_run() as run:
        slipway.log_artifact(src / "a.txt", "single")
        slipway.log_artifacts(src, "tree")
    client = SlipwayClient()
    assert [f.path for f in client.list_artifacts(run.info.run_id, "single")] == ["single/a.txt"]
    assert [f.path for f in client.list_artifacts(run.info.run_id, "tree")] == [
        "tree/a.txt",
        "tree/sub",
    ]
    out = client.download_artifacts(run.info.run_id, "tree/sub/b.txt", tmp_path / "dl")
    assert out.read_text() == "b"


def test_get_artifact_uri(tracking_dir: Path) -> None:
    with slipway.start_run() as run:
        uri = slipway.get_artifact_uri()
        assert uri == run.info.artifact_uri
        assert run.info.run_id in uri
        assert uri.endswith("artifacts")
        assert slipway.get_artifact_uri("plots/a.png") == uri.rstrip("/") + "/plots/a.png"
        with pytest.raises(SlipwayError) as info:
            slipway.get_artifact_uri("../escape")
        assert info.value.error_code == "INVALID_PARAMETER_VALUE"
    # Artifacts of a folder store live under the tracking folder.
    assert os.fspath(tracking_dir) in uri


def test_log_artifact_of_a_missing_file(tracking_dir: Path) -> None:
    with slipway.start_run(), pytest.raises(InvalidParameterValue, match="no such file"):
        slipway.log_artifact("does-not-exist.txt")


def test_logging_a_param_raises_no_deprecation_warning(tracking_dir: Path) -> None:
    """The store once used Result.tuples(), which SQLAlchemy 2.1 deprecates."""
    with slipway.start_run() as run, warnings.catch_warnings():
        warnings.simplefilter("error")
        slipway.log_param("lr", "0.1", synchronous=True)
    assert SlipwayClient().get_run(run.info.run_id).data.params == {"lr": "0.1"}


# -- library bugs ------------------------------------------------------------------------------


@pytest.mark.parametrize("what", ["params", "tags"])
def test_synchronous_logging_splits_params_and_tags_too(tracking_dir: Path, what: str) -> None:
    slipway.set_async_logging(False)
    values = {f"k{i}": i for i in range(150)}
    with slipway.start_run() as run:
        if what == "params":
            slipway.log_params(values)
        else:
            slipway.set_tags(values)
    data = SlipwayClient().get_run(run.info.run_id).data
    stored = data.params if what == "params" else data.tags
    assert {f"k{i}" for i in range(150)} <= set(stored)


def test_async_error_fails_only_the_run_it_belongs_to(tracking_dir: Path) -> None:
    parent = slipway.start_run()
    slipway.log_param("a", "1")
    slipway.log_param("a", "2")  # the parent's mistake, found by the writer later
    child = slipway.start_run(nested=True)
    slipway.log_metric("m", 1.0)
    slipway.end_run()  # ends the child, which did nothing wrong
    client = SlipwayClient()
    assert client.get_run(child.info.run_id).info.status == RunStatus.FINISHED
    with pytest.raises(InvalidParameterValue, match="Changing param values"):
        slipway.end_run()
    assert client.get_run(parent.info.run_id).info.status == RunStatus.FAILED
