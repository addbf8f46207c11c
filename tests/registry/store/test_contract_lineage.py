"""Lineage graphs on every registry backend: version -> run -> datasets -> pipeline step ->
deployments, and the reverse from a dataset."""

from __future__ import annotations

import pytest

from slipway.entities import Dataset, DatasetInput, InputTag
from slipway.entities.registry import PIPELINE_RUN_TAG, PIPELINE_STEP_TAG, LineageGraph
from slipway.exceptions import ResourceDoesNotExist
from slipway.registry.store.base import AbstractRegistryStore
from slipway.tracking.store.base import AbstractTrackingStore

from ..conftest import make_run_with_dataset


def _edges(graph: LineageGraph) -> set[tuple[str, str, str]]:
    return {(e.source, e.target, e.relation) for e in graph.edges}


def test_version_lineage(
    registry_store: AbstractRegistryStore, tracking_store: AbstractTrackingStore
) -> None:
    parent = tracking_store.create_run("0", run_name="pipeline")
    tags = {
        PIPELINE_RUN_TAG: "pr-1",
        PIPELINE_STEP_TAG: "train",
        "mlflow.parentRunId": parent.info.run_id,
    }
    run = make_run_with_dataset(tracking_store, "iris-train", "d1", "train", tags)
    tracking_store.log_inputs(
        run.info.run_id,
        [
            DatasetInput(
                Dataset("iris-eval", "d2", "local", "{}"),
                (InputTag(DatasetInput.CONTEXT_TAG, "eval"),),
            )
        ],
    )
    registry_store.create_registered_model("iris")
    registry_store.create_model_version(
        "iris", f"runs:/{run.info.run_id}/model", run_id=run.info.run_id
    )
    registry_store.set_registered_model_alias("iris", "champion", "1")
    deployment = registry_store.record_deployment("iris", "1", "http://serve:8080")

    graph = registry_store.get_model_version_lineage("iris", "1")

    rid = run.info.run_id
    assert graph.root == "model_version:iris/1"
    version = graph.node("model_version:iris/1")
    assert version is not None
    assert version.kind == "model_version"
    assert version.attributes["aliases"] == ["champion"]
    run_node = graph.node(f"run:{rid}")
    assert run_node is not None
    assert run_node.label == "run-iris-train"
    assert run_node.attributes["experiment_id"] == "0"
    assert run_node.attributes["status"] == "RUNNING"
    train = graph.node("dataset:iris-train@d1")
    assert train is not None
    assert train.attributes["context"] == "train"
    assert train.attributes["digest"] == "d1"
    pipeline = graph.node("pipeline_run:pr-1")
    assert pipeline is not None
    assert pipeline.attributes["parent_run_id"] == parent.info.run_id
    assert {n.kind for n in graph.nodes} == {
        "model_version",
        "run",
        "dataset",
        "pipeline_run",
        "pipeline_step",
        "deployment",
    }
    assert _edges(graph) == {
        ("dataset:iris-train@d1", f"run:{rid}", "input_to"),
        ("dataset:iris-eval@d2", f"run:{rid}", "input_to"),
        (f"run:{rid}", "pipeline_step:pr-1/train", "step_of"),
        ("pipeline_step:pr-1/train", "pipeline_run:pr-1", "step_of"),
        (f"run:{rid}", "model_version:iris/1", "produced"),
        ("model_version:iris/1", f"deployment:{deployment.deployment_id}", "deployed_as"),
    }


def test_version_without_a_run(registry_store: AbstractRegistryStore) -> None:
    registry_store.create_registered_model("iris")
    registry_store.create_model_version("iris", "s3://bucket/model")
    registry_store.create_model_version("iris", "s3://bucket/model", run_id="f" * 32)
    alone = registry_store.get_model_version_lineage("iris", "1")
    assert [n.node_id for n in alone.nodes] == ["model_version:iris/1"]
    assert alone.edges == []
    missing = registry_store.get_model_version_lineage("iris", "2")
    run_node = missing.node(f"run:{'f' * 32}")
    assert run_node is not None
    assert run_node.attributes == {"missing": True}
    with pytest.raises(ResourceDoesNotExist):
        registry_store.get_model_version_lineage("iris", "3")
    with pytest.raises(ResourceDoesNotExist):
        registry_store.get_model_version_lineage("nope", "1")


def test_dataset_lineage(
    registry_store: AbstractRegistryStore, tracking_store: AbstractTrackingStore
) -> None:
    first = make_run_with_dataset(tracking_store, "data", "v1")
    second = make_run_with_dataset(tracking_store, "data", "v1", context="eval")
    newer = make_run_with_dataset(tracking_store, "data", "v2")
    make_run_with_dataset(tracking_store, "other", "v1")
    deleted = make_run_with_dataset(tracking_store, "data", "v1")
    tracking_store.delete_run(deleted.info.run_id)
    registry_store.create_registered_model("m")
    for run in (first, newer):
        registry_store.create_model_version(
            "m", f"runs:/{run.info.run_id}/model", run_id=run.info.run_id
        )
    deployment = registry_store.record_deployment("m", "2", "http://serve")

    exact = registry_store.get_dataset_lineage("data", "v1")
    assert exact.root == "dataset:data@v1"
    root = exact.node(exact.root)
    assert root is not None
    assert root.attributes["digest"] == "v1"
    assert {n.node_id for n in exact.of_kind("run")} == {
        f"run:{first.info.run_id}",
        f"run:{second.info.run_id}",
    }
    assert [n.node_id for n in exact.of_kind("model_version")] == ["model_version:m/1"]
    assert (f"run:{first.info.run_id}", "model_version:m/1", "produced") in _edges(exact)

    every = registry_store.get_dataset_lineage("data")
    assert every.root == "dataset:data"
    every_root = every.node("dataset:data")
    assert every_root is not None
    assert every_root.attributes["digests"] == ["v1", "v2"]
    assert len(every.of_kind("run")) == 3
    assert {n.node_id for n in every.of_kind("model_version")} == {
        "model_version:m/1",
        "model_version:m/2",
    }
    assert (
        "model_version:m/2",
        f"deployment:{deployment.deployment_id}",
        "deployed_as",
    ) in _edges(every)

    nothing = registry_store.get_dataset_lineage("unknown")
    assert [n.node_id for n in nothing.nodes] == ["dataset:unknown"]
    assert nothing.edges == []
