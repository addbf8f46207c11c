"""A model registered by a pipeline step has lineage back through the step and the pipeline
run to the dataset the step read."""

from __future__ import annotations

from pathlib import Path

import slipway
from slipway.pipelines import Dataset, Input, Output, component, pipeline, run
from slipway.registry.store import clear_registry_store_cache


@component
def make_table(data: Output[Dataset]) -> None:
    Path(data.path).write_text("x,y\n1,2\n2,4\n3,6\n")


@component
def fit_and_register(data: Input[Dataset], name: str) -> str:
    from sklearn.linear_model import LinearRegression

    import slipway

    rows = [line.split(",") for line in Path(data.path).read_text().splitlines()[1:]]
    model = LinearRegression().fit([[float(x)] for x, _ in rows], [float(y) for _, y in rows])
    info = slipway.sklearn.log_model(model, "model", registered_model_name=name)
    return str(info.registered_model_version)


@pipeline(name="train-and-register")
def train_and_register() -> None:
    table = make_table()
    fit_and_register(data=table.outputs["data"], name="from-pipeline")


def test_version_lineage_reaches_the_step_pipeline_run_and_dataset(tracking_dir: Path) -> None:
    result = run(train_and_register)
    assert result.succeeded, result.run.message
    step = result.step("fit_and_register")
    assert step.outputs["parameters"]["Output"] == "1"
    try:
        graph = slipway.lineage("models:/from-pipeline/1")
    finally:
        clear_registry_store_cache()
    kinds = {node.kind: node for node in graph.nodes}
    assert kinds["run"].node_id == f"run:{step.run_id}"
    assert kinds["pipeline_run"].node_id == f"pipeline_run:{result.run_id}"
    assert kinds["pipeline_step"].label == "fit_and_register"
    dataset = kinds["dataset"]
    digest = result.step("make_table").outputs["artifacts"]["data"]["digest"]
    assert dataset.label.startswith("make_table.data")
    assert digest.removeprefix("sha256:").startswith(dataset.attributes["digest"])
