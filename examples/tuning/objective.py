"""Tune a small model's hyperparameters with slipway.tuning.

    python examples/tuning/objective.py

Each trial trains for a few epochs, reports its validation score after each, and is pruned
when it falls behind the median of earlier trials at the same epoch. Every trial is a child
run of the study's run; run the script again to resume the study (it stops at 20 trials in
all).
"""

from __future__ import annotations

import math
import random

import slipway
from slipway import tuning


def objective(trial: tuning.Trial) -> float:
    lr = trial.params["lr"]
    depth = trial.params["depth"]
    rng = random.Random(trial.number)
    score = 0.0
    for epoch in range(8):
        # A made-up learning curve: best near lr=0.01 and depth=5.
        target = 1.0 - abs(math.log10(lr) + 2) / 4 - abs(depth - 5) / 10
        score += (target - score) * 0.5 + rng.uniform(-0.01, 0.01)
        trial.report(score, epoch)
        if trial.should_prune():
            raise tuning.TrialPruned()
    slipway.log_metric("epochs", epoch + 1)
    return score


if __name__ == "__main__":
    study = tuning.tune(
        objective,
        space={"lr": tuning.loguniform(1e-4, 1e-1), "depth": tuning.randint(2, 8)},
        n_trials=20,
        parallelism=2,
        sampler="tpe",
        seed=42,
        pruner="median",
        direction="maximize",
        metric="accuracy",
        study_name="example-objective",
    )
    print(study)
    print("best:", study.best_params, study.best_value)
