"""``SlipwayClient``: experiments, runs, logging, metric history, search and artifacts, on
SQLite and PostgreSQL tracking URIs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest
import yaml

import slipway
from slipway import Metric, Param, RunStatus, RunTag, SlipwayClient, ViewType
from slipway.entities import LifecycleStage
from slipway.exceptions import (
    ExperimentNotFound,
    InvalidParameterValue,
    ResourceAlreadyExists,
    ResourceDoesNotExist,
    RunNotFound,
)
from slipway.tracking import uri as uris
from slipway.tracking.store.sql import SqlTrackingStore

# The client runs on every store backend, the REST store over a live server included.
STORE_BACKENDS = ["sqlite", "postgresql", "rest"]


@pytest.fixture
def client(
    store: SqlTrackingStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[SlipwayClient]:
    """A client on a fresh database of each backend (conftest's ``store`` fixture provides the
    database), with artifacts under ``tmp_path``."""
    monkeypatch.setenv("SLIPWAY_ARTIFACT_ROOT", str(tmp_path / "client-artifacts"))
    c = SlipwayClient(store.db_uri)
    yield c
    if c._async is not None:
        c._async.close()
    uris.clear_store_cache()


def _run(client: SlipwayClient, **kwargs: Any) -> str:
    return client.create_run("0", **kwargs).info.run_id


# -- experiments ---------------------------------------------------------------------------


def test_experiment_lifecycle(client: SlipwayClient) -> None:
    exp_id = client.create_experiment("exp", tags={"team": "vision", "n": 1})
    exp = client.get_experiment(exp_id)
    assert exp.name == "exp"
    assert exp.tags == {"team": "vision", "n": "1"}
    assert exp.lifecycle_stage == LifecycleStage.ACTIVE
    assert exp.artifact_location.endswith(f"/{exp_id}")
    assert client.get_experiment_by_name("exp") == exp
    assert client.get_experiment_by_name("missing") is None

    client.rename_experiment(exp_id, "renamed")
    assert client.get_experiment(exp_id).name == "renamed"
    assert client.get_experiment_by_name("exp") is None

    client.set_experiment_tag(exp_id, "stage", "prod")
    client.delete_experiment_tag(exp_id, "team")
    assert client.get_experiment(exp_id).tags == {"n": "1", "stage": "prod"}

    client.delete_experiment(exp_id)
    assert client.get_experiment(exp_id).lifecycle_stage == LifecycleStage.DELETED
    client.restore_experiment(exp_id)
    assert client.get_experiment(exp_id).lifecycle_stage == LifecycleStage.ACTIVE


def test_experiment_with_its_own_artifact_location(client: SlipwayClient, tmp_path: Path) -> None:
    exp_id = client.create_experiment("located", artifact_location=str(tmp_path / "elsewhere"))
    assert client.get_experiment(exp_id).artifact_location == str(tmp_path / "elsewhere")
    run = client.create_run(exp_id)
    assert run.info.artifact_uri.startswith(str(tmp_path / "elsewhere"))


def test_duplicate_experiment_name(client: SlipwayClient) -> None:
    client.create_experiment("twice")
    with pytest.raises(ResourceAlreadyExists) as info:
        client.create_experiment("twice")
    assert info.value.http_status == 400
    assert "twice" in info.value.message


def test_search_experiments(client: SlipwayClient) -> None:
    ids = [client.create_experiment(f"e{i}") for i in range(5)]
    client.delete_experiment(ids[0])
    active = client.search_experiments()
    assert {e.name for e in active} == {"Default", "e1", "e2", "e3", "e4"}
    deleted = client.search_experiments(view_type=ViewType.DELETED_ONLY)
    assert [e.name for e in deleted] == ["e0"]
    assert len(client.search_experiments(view_type="ALL")) == 6
    named = client.search_experiments(filter_string="name LIKE 'e%'", order_by=["name DESC"])
    assert [e.name for e in named] == ["e4", "e3", "e2", "e1"]
    first = client.search_experiments(max_results=2, order_by=["name ASC"])
    assert first.token
    second = client.search_experiments(max_results=2, order_by=["name ASC"], page_token=first.token)
    assert [e.name for e in first + second] == ["Default", "e1", "e2", "e3"]


# -- runs ----------------------------------------------------------------------------------


def test_run_lifecycle(client: SlipwayClient) -> None:
    run = client.create_run(
        "0", start_time=1000, tags={"k": "v"}, run_name="named", user_id="alice"
    )
    rid = run.info.run_id
    assert run.info.status == RunStatus.RUNNING
    assert run.info.start_time == 1000
    assert run.info.user_id == "alice"
    assert run.info.run_name == "named"
    assert run.data.tags["k"] == "v"
    assert run.data.tags["mlflow.runName"] == "named"

    info = client.update_run(rid, "SCHEDULED", "renamed")
    assert info.status == RunStatus.SCHEDULED
    assert client.get_run(rid).data.tags["mlflow.runName"] == "renamed"

    info = client.set_terminated(rid, "FAILED", end_time=5000)
    assert info.status == RunStatus.FAILED
    assert info.end_time == 5000
    assert client.set_terminated(rid).status == RunStatus.FINISHED

    client.delete_run(rid)
    assert client.get_run(rid).info.lifecycle_stage == LifecycleStage.DELETED
    assert client.search_runs("0") == []
    assert len(client.search_runs("0", run_view_type=ViewType.DELETED_ONLY)) == 1
    client.restore_run(rid)
    assert [r.info.run_id for r in client.search_runs(["0"])] == [rid]


def test_logging_and_history(client: SlipwayClient) -> None:
    rid = _run(client)
    client.log_metric(rid, "loss", 0.5, timestamp=10, step=0)
    client.log_metric(rid, "loss", 0.25, timestamp=20, step=1)
    client.log_param(rid, "lr", 0.1)
    client.set_tag(rid, "stage", "dev")
    client.set_tag(rid, "gone", "x")
    client.delete_tag(rid, "gone")
    client.log_batch(
        rid,
        metrics=[Metric("acc", float(i) / 10, 30 + i, i) for i in range(5)],
        params=[Param("epochs", "5")],
        tags=[RunTag("batch", "yes")],
    )
    run = client.get_run(rid)
    assert run.data.metrics == {"loss": 0.25, "acc": 0.4}
    assert run.data.params == {"lr": "0.1", "epochs": "5"}
    assert run.data.tags["stage"] == "dev"
    assert run.data.tags["batch"] == "yes"
    assert "gone" not in run.data.tags
    history = client.get_metric_history(rid, "loss")
    assert [(m.value, m.timestamp, m.step) for m in history] == [(0.5, 10, 0), (0.25, 20, 1)]
    assert client.get_metric_history(rid, "never-logged") == []
    with pytest.raises(ResourceDoesNotExist):
        client.delete_tag(rid, "not-there")


def test_latest_metric_is_by_step_then_timestamp(client: SlipwayClient) -> None:
    rid = _run(client)
    client.log_metric(rid, "m", 3.0, timestamp=100, step=5)
    client.log_metric(rid, "m", 1.0, timestamp=200, step=1)  # later but a lower step
    assert client.get_run(rid).data.metrics["m"] == 3.0
    client.log_metric(rid, "m", 4.0, timestamp=300, step=5)
    assert client.get_run(rid).data.metrics["m"] == 4.0


def test_metric_history_bulk_interval(client: SlipwayClient) -> None:
    a, b = _run(client), _run(client)
    for rid in (a, b):
        client.log_batch(rid, metrics=[Metric("m", float(i), 1, i) for i in range(100)])
    points = client.get_metric_history_bulk_interval([a, b], "m", max_results=10)
    for rid in (a, b):
        steps = [p.step for p in points if p.run_id == rid]
        assert len(steps) == 10
        assert steps[0] == 0
        assert steps[-1] == 99
    window = client.get_metric_history_bulk_interval(
        [a], "m", max_results=100, start_step=10, end_step=19
    )
    assert [p.step for p in window] == list(range(10, 20))


def test_search_runs(client: SlipwayClient) -> None:
    exp = client.create_experiment("search")
    ids = []
    for i in range(6):
        rid = client.create_run(exp, run_name=f"r{i}").info.run_id
        client.log_metric(rid, "score", float(i))
        client.log_param(rid, "kind", "even" if i % 2 == 0 else "odd")
        ids.append(rid)
    found = client.search_runs(exp, "params.kind = 'even'", order_by=["metrics.score DESC"])
    assert [r.info.run_id for r in found] == [ids[4], ids[2], ids[0]]
    page1 = client.search_runs([exp], order_by=["metrics.score ASC"], max_results=4)
    assert page1.token
    page2 = client.search_runs(
        [exp], order_by=["metrics.score ASC"], max_results=4, page_token=page1.token
    )
    assert page2.token is None
    assert [r.info.run_id for r in page1 + page2] == ids
    assert client.search_runs([exp], "attributes.run_name = 'r3'")[0].info.run_id == ids[3]
    assert client.search_runs([]) == []


def test_unknown_ids(client: SlipwayClient) -> None:
    with pytest.raises(RunNotFound) as info:
        client.get_run("deadbeef" * 4)
    assert info.value.http_status == 404
    with pytest.raises(ExperimentNotFound) as exp_info:
        client.get_experiment("424242")
    assert exp_info.value.http_status == 404
    with pytest.raises(ExperimentNotFound):
        client.create_run("424242")


# -- artifacts -----------------------------------------------------------------------------


def test_artifacts(client: SlipwayClient, tmp_path: Path) -> None:
    rid = _run(client)
    local = tmp_path / "model.txt"
    local.write_text("weights")
    tree = tmp_path / "tree"
    (tree / "inner").mkdir(parents=True)
    (tree / "inner" / "x.csv").write_text("a,b\n1,2\n")
    fig, ax = plt.subplots()
    ax.bar(["a", "b"], [1, 2])

    client.log_artifact(rid, local)
    client.log_artifact(rid, local, "models")
    client.log_artifacts(rid, tree, "data")
    client.log_text(rid, "ünïcode ✓", "text/notes.md")
    client.log_dict(rid, {"a": [1, 2]}, "cfg/params.json")
    client.log_dict(rid, {"a": [1, 2]}, "cfg/params.yaml")
    client.log_figure(rid, fig, "fig.png")
    plt.close(fig)

    assert [f.path for f in client.list_artifacts(rid)] == [
        "cfg",
        "data",
        "fig.png",
        "model.txt",
        "models",
        "text",
    ]
    listed = {f.path: f for f in client.list_artifacts(rid, "cfg")}
    assert set(listed) == {"cfg/params.json", "cfg/params.yaml"}
    assert not listed["cfg/params.json"].is_dir
    assert [f.path for f in client.list_artifacts(rid, "data/inner")] == ["data/inner/x.csv"]
    assert client.list_artifacts(rid, "nothing-here") == []

    out = client.download_artifacts(rid, dst_path=tmp_path / "all")
    assert (out / "model.txt").read_text() == "weights"
    assert (out / "models" / "model.txt").read_text() == "weights"
    assert (out / "data" / "inner" / "x.csv").read_text() == "a,b\n1,2\n"
    assert (out / "text" / "notes.md").read_text(encoding="utf-8") == "ünïcode ✓"
    assert json.loads((out / "cfg" / "params.json").read_text()) == {"a": [1, 2]}
    assert yaml.safe_load((out / "cfg" / "params.yaml").read_text()) == {"a": [1, 2]}
    assert (out / "fig.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ResourceDoesNotExist):
        client.download_artifacts(rid, "missing.txt", tmp_path / "none")


def test_artifact_refusals(client: SlipwayClient, tmp_path: Path) -> None:
    rid = _run(client)
    with pytest.raises(InvalidParameterValue, match="no such file"):
        client.log_artifact(rid, tmp_path / "missing.bin")
    with pytest.raises(InvalidParameterValue, match="no such folder"):
        client.log_artifacts(rid, tmp_path / "missing-dir")
    with pytest.raises(InvalidParameterValue, match="matplotlib or plotly"):
        client.log_figure(rid, "not a figure", "f.png")
    with pytest.raises(InvalidParameterValue):
        client.log_text(rid, "x", "../escape.txt")
    with pytest.raises(RunNotFound):
        client.log_text("deadbeef" * 4, "x", "a.txt")


# -- the client and the fluent API share the tracking URI -----------------------------------


def test_default_client_uses_the_fluent_tracking_uri(tracking_dir: Path) -> None:
    client = SlipwayClient()
    assert client.tracking_uri == str(tracking_dir)
    with slipway.start_run() as run:
        slipway.log_metric("m", 1.0)
    assert client.get_run(run.info.run_id).data.metrics == {"m": 1.0}
    assert (tracking_dir / "slipway.db").is_file()
