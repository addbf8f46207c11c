"""A tuning study as a pipeline step: the study's run is a child of the step's run, its
trials children of the study's, so the whole search sits under the pipeline run."""

from __future__ import annotations

from pathlib import Path

import pytest

import slipway
from slipway.pipelines import component, pipeline, run


@component
def search(trials: int) -> dict:
    from slipway import tuning

    def objective(trial: tuning.Trial) -> float:
        return -((trial.params["x"] - 0.25) ** 2)

    study = tuning.tune(
        objective,
        space={"x": tuning.uniform(0.0, 1.0)},
        n_trials=trials,
        sampler="random",
        seed=3,
        pruner="none",
        direction="maximize",
        study_name="in-a-pipeline",
    )
    return {"best": study.best_params, "study_run": study.run_id}


@pipeline(name="tune-in-pipeline")
def tune_in_pipeline() -> None:
    search(trials=4)


@pytest.mark.slow
def test_a_study_step_is_tracked_under_the_pipeline_run(tracking_dir: Path) -> None:
    result = run(tune_in_pipeline, cache=False)
    assert result.succeeded, result.run.message
    step = result.step("search")
    out = step.outputs["parameters"]["Output"]
    assert 0.0 <= out["best"]["x"] <= 1.0
    client = slipway.SlipwayClient()
    study_run = client.get_run(out["study_run"])
    assert study_run.data.tags["mlflow.parentRunId"] == step.run_id
    trials = client.search_runs(
        [study_run.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{study_run.info.run_id}'",
    )
    assert len(trials) == 4
