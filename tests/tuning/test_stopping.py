"""When a study stops: after ``timeout`` (running trials finish, no new one starts), and once
a trial reaches the ``goal``."""

from __future__ import annotations

import time

from slipway import tuning


def slow(trial: tuning.Trial) -> float:
    time.sleep(0.15)
    return trial.params["x"]


def test_timeout_starts_no_new_trial(tracking_uri: str) -> None:
    started = time.monotonic()
    study = tuning.tune(slow, {"x": tuning.uniform(0, 1)}, timeout=0.6, tracking_uri=tracking_uri)
    assert study.stop_reason == "timeout"
    assert 1 <= len(study.trials) < 30
    assert study.counts() == {"COMPLETE": len(study.trials)}  # none cut short
    assert time.monotonic() - started < 20


def test_goal_stops_the_study(tracking_uri: str) -> None:
    # the grid's order for seed 0 is 9, 5, 1: the first trial reaches the goal
    study = tuning.tune(
        lambda trial: float(trial.params["k"]),
        {"k": tuning.categorical([1, 5, 9])},
        sampler="grid",
        seed=0,
        direction="maximize",
        goal=5.0,
        tracking_uri=tracking_uri,
    )
    assert study.stop_reason == "goal"
    assert [t.params for t in study.trials] == [{"k": 9}]
    without = tuning.tune(
        lambda trial: float(trial.params["k"]),
        {"k": tuning.categorical([1, 5, 9])},
        sampler="grid",
        seed=0,
        direction="maximize",
        tracking_uri=tracking_uri,
    )
    assert [t.params["k"] for t in without.trials] == [9, 5, 1]
