"""A study end to end on every backend: trials in parallel processes, each a child run of the
study's run, pruned by the median pruner across processes, its intermediate values the metric
history of its run."""

from __future__ import annotations

import time

import pytest

import slipway
from slipway import tuning
from slipway.entities import RunStatus
from slipway.tracking.client import SlipwayClient

ALL_BACKENDS = ["sqlite", "postgresql", "rest"]


def bad_trials_fall_behind(trial: tuning.Trial) -> float:
    """Trials with a small ``x`` report small values from the first step on, so the median
    pruner stops them once a few trials have completed."""
    x = trial.params["x"]
    slipway.log_metric("x_seen", x)
    for step in range(4):
        time.sleep(0.003)
        trial.report(x + step * 0.01, step)
        if trial.should_prune():
            raise tuning.TrialPruned()
    return x + 0.05


@pytest.mark.parametrize("tracking_uri", ALL_BACKENDS, indirect=True)
def test_parallel_study_with_pruning_records_every_trial_as_a_child_run(
    tracking_uri: str,
) -> None:
    study = tuning.tune(
        bad_trials_fall_behind,
        {"x": tuning.uniform(0.0, 1.0), "depth": tuning.randint(2, 4)},
        n_trials=20,
        parallelism=2,
        sampler="random",
        seed=3,
        pruner="median",
        pruner_settings={"n_startup_trials": 4},
        direction="maximize",
        metric="score",
        study_name="pruning",
        tracking_uri=tracking_uri,
    )

    counts = study.counts()
    assert sum(counts.values()) == 20
    assert set(counts) <= {"COMPLETE", "PRUNED"}
    assert counts.get("PRUNED", 0) >= 1
    assert [t.number for t in study.trials] == list(range(20))
    best = study.best_trial
    assert best is not None
    assert best.value == max(t.value for t in study.trials if t.state == "COMPLETE")
    assert study.best_params == best.params
    assert study.stop_reason == "n_trials"

    client = SlipwayClient(tracking_uri)
    parent = client.get_run(study.run_id)
    assert parent.info.status == RunStatus.FINISHED
    assert parent.data.tags["slipway.tuning.study"] == "pruning"
    assert parent.data.tags["slipway.tuning.best_trial"] == str(best.number)
    assert parent.data.metrics["best_score"] == pytest.approx(best.value)
    progress = client.get_metric_history(study.run_id, "best_score")  # the best so far
    assert [m.value for m in progress] == sorted(m.value for m in progress)
    assert [m.step for m in progress] == sorted({m.step for m in progress})
    assert progress[-1].value == pytest.approx(best.value)
    assert parent.data.params["sampler"] == "random"

    runs = client.search_runs(
        study.experiment_id, f"tags.mlflow.parentRunId = '{study.run_id}'", max_results=100
    )
    assert len(runs) == 20
    by_number = {int(r.data.tags["slipway.tuning.trial"]): r for r in runs}
    assert sorted(by_number) == list(range(20))
    for trial in study.trials:
        run = by_number[trial.number]
        assert trial.run_id == run.info.run_id
        assert run.data.tags["slipway.tuning.study"] == "pruning"
        assert run.data.tags["slipway.tuning.state"] == trial.state
        assert run.info.status == RunStatus.FINISHED  # pruned trials too: see the docs
        assert run.data.params == {"x": str(trial.params["x"]), "depth": str(trial.params["depth"])}
        assert run.data.metrics["x_seen"] == pytest.approx(trial.params["x"])
        history = client.get_metric_history(run.info.run_id, "score")
        reported = sorted(trial.intermediate_values)
        if trial.state == "COMPLETE":
            # every reported value, then the final value as the last point
            assert [m.step for m in history] == [*reported, reported[-1] + 1]
            assert history[-1].value == pytest.approx(trial.value)
            assert run.data.metrics["score"] == pytest.approx(trial.value)
        else:
            assert [m.step for m in history] == reported
            assert trial.value == pytest.approx(trial.intermediate_values[reported[-1]])
    # pruning compared across processes: a pruned trial's values were below completed ones
    pruned = [t for t in study.trials if t.state == "PRUNED"]
    assert max(t.params["x"] for t in pruned) < best.params["x"]


def test_a_study_is_read_back_by_name(tracking_uri: str) -> None:
    first = tuning.tune(
        lambda trial: trial.params["k"] * 2.0,
        {"k": tuning.categorical([1, 2, 3])},
        n_trials=3,
        sampler="grid",
        study_name="readback",
        tracking_uri=tracking_uri,
        pruner="none",
    )
    again = tuning.load_study("readback", tracking_uri)
    assert again.trials == first.trials
    assert again.best_value == 2.0
    assert again.best_params == {"k": 1}
    assert again.run_id == first.run_id
