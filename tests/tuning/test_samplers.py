"""Each sampler proposes parameters inside the space; a grid search covers its grid once."""

from __future__ import annotations

import itertools

import pytest

from slipway import tuning
from slipway.exceptions import InvalidParameterValue

SPACE = {
    "lr": tuning.loguniform(1e-4, 1e-1),
    "units": tuning.randint(8, 64, step=8),
    "dropout": tuning.uniform(0.0, 0.5),
    "act": tuning.categorical(["relu", "tanh"]),
}


def score(trial: tuning.Trial) -> float:
    p = trial.params
    return p["lr"] * p["units"] + p["dropout"] + (p["act"] == "relu")


def _inside(params: dict[str, object]) -> bool:
    lr, units, dropout = params["lr"], params["units"], params["dropout"]
    assert isinstance(lr, float)
    assert isinstance(units, int)
    assert isinstance(dropout, float)
    return (
        1e-4 <= lr <= 1e-1
        and units in range(8, 65, 8)
        and 0.0 <= dropout <= 0.5
        and params["act"] in ("relu", "tanh")
    )


@pytest.mark.parametrize("sampler", ["random", "tpe", "multivariate-tpe", "cmaes"])
def test_samplers_stay_inside_the_space(tracking_uri: str, sampler: str) -> None:
    study = tuning.tune(
        score,
        SPACE,
        n_trials=6,
        parallelism=2,
        sampler=sampler,
        seed=11,
        pruner="none",
        tracking_uri=tracking_uri,
    )
    assert study.counts() == {"COMPLETE": 6}
    assert all(_inside(t.params) for t in study.trials)
    assert len({tuple(sorted(t.params.items())) for t in study.trials}) == 6


def test_a_seed_repeats_a_search(tracking_uri: str) -> None:
    runs = [
        tuning.tune(
            score,
            SPACE,
            n_trials=4,
            sampler="random",
            seed=5,
            pruner="none",
            tracking_uri=tracking_uri,
        )
        for _ in range(2)
    ]
    assert [t.params for t in runs[0].trials] == [t.params for t in runs[1].trials]


def test_grid_covers_the_grid_exactly(tracking_uri: str) -> None:
    space = {
        "units": tuning.randint(1, 3),
        "act": tuning.categorical(["relu", "tanh"]),
        "rate": tuning.uniform(0.0, 0.2, step=0.1),
    }
    study = tuning.tune(
        lambda t: float(t.params["units"]),
        space,
        sampler="grid",
        parallelism=2,
        tracking_uri=tracking_uri,
        pruner="none",
    )
    seen = sorted((t.params["units"], t.params["act"], t.params["rate"]) for t in study.trials)
    expected = sorted(itertools.product([1, 2, 3], ["relu", "tanh"], [0.0, 0.1, 0.2]))
    assert seen == expected  # all 18 points, none twice, and no more trials
    assert study.stop_reason == "n_trials"


def test_grid_needs_a_finite_space() -> None:
    with pytest.raises(InvalidParameterValue, match=r"grid search needs a finite space.*'lr'"):
        tuning.tune(score, SPACE, sampler="grid", n_trials=2)


def test_unknown_sampler_and_pruner_are_refused() -> None:
    with pytest.raises(InvalidParameterValue, match="Unknown sampler 'annealing'"):
        tuning.tune(score, SPACE, sampler="annealing")
    with pytest.raises(InvalidParameterValue, match="Unknown pruner 'asha'"):
        tuning.tune(score, SPACE, pruner="asha")
    with pytest.raises(InvalidParameterValue, match="no setting 'n_warmup'"):
        tuning.tune(score, SPACE, pruner_settings={"n_warmup": 3})


def test_hyperband_prunes_across_trials(tracking_uri: str) -> None:
    def curve(trial: tuning.Trial) -> float:
        x = trial.params["x"]
        for step in range(9):
            trial.report(x * (step + 1), step)
            if trial.should_prune():
                raise tuning.TrialPruned()
        return x * 9

    study = tuning.tune(
        curve,
        {"x": tuning.uniform(0.0, 1.0)},
        n_trials=12,
        sampler="random",
        seed=2,
        pruner="hyperband",
        pruner_settings={"min_resource": 1, "max_resource": 9},
        direction="maximize",
        tracking_uri=tracking_uri,
    )
    assert study.counts().get("PRUNED", 0) >= 1
