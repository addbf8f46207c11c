"""Trials that fail never crash the study: NaN, exceptions, bad return values, a process that
dies, a trial that runs too long; ``max_failed_trials`` stops the study."""

from __future__ import annotations

import math
import os
import signal
import time

import pytest

from slipway import tuning
from slipway.entities import RunStatus
from slipway.tracking.client import SlipwayClient

SPACE = {"k": tuning.randint(0, 5)}


def mixed(trial: tuning.Trial) -> float:
    k = trial.params["k"]
    if trial.number % 4 == 0:
        return math.nan
    if trial.number % 4 == 1:
        raise ValueError(f"bad k {k}")
    return float(k)


def test_nan_and_exceptions_fail_their_trial_and_the_study_goes_on(tracking_uri: str) -> None:
    study = tuning.tune(
        mixed,
        SPACE,
        n_trials=8,
        parallelism=2,
        sampler="random",
        seed=1,
        tracking_uri=tracking_uri,
    )
    assert len(study.trials) == 8
    client = SlipwayClient(tracking_uri)
    for trial in study.trials:
        run = client.get_run(trial.run_id or "")
        if trial.number % 4 == 0:
            assert trial.state == "FAIL"
            assert trial.error == "objective returned nan"
        elif trial.number % 4 == 1:
            assert trial.state == "FAIL"
            assert trial.error == f"ValueError: bad k {trial.params['k']}"
        else:
            assert trial.state == "COMPLETE"
            assert run.info.status == RunStatus.FINISHED
            continue
        assert run.info.status == RunStatus.FAILED
        assert run.data.tags["slipway.tuning.state"] == "FAIL"
        assert run.data.tags["slipway.tuning.error"] == trial.error
        assert "objective" not in run.data.metrics
    assert study.best_trial is not None
    assert client.get_run(study.run_id).info.status == RunStatus.FINISHED


def test_max_failed_trials_stops_the_study(tracking_uri: str) -> None:
    def always_fails(trial: tuning.Trial) -> float:
        raise RuntimeError("broken")

    study = tuning.tune(
        always_fails, SPACE, n_trials=50, max_failed_trials=3, tracking_uri=tracking_uri
    )
    assert study.stop_reason == "max_failed_trials"
    assert study.counts() == {"FAIL": 3}
    assert study.best_trial is None
    assert study.best_value is None
    assert study.best_params == {}
    run = SlipwayClient(tracking_uri).get_run(study.run_id)
    assert run.info.status == RunStatus.FAILED
    assert run.data.tags["slipway.tuning.stop_reason"] == "max_failed_trials"


def test_what_is_not_a_number_fails_the_trial(tracking_uri: str) -> None:
    def odd(trial: tuning.Trial) -> object:
        return ["a list"] if trial.number == 0 else None

    study = tuning.tune(odd, SPACE, n_trials=2, tracking_uri=tracking_uri)
    assert [t.error for t in study.trials] == [
        "objective returned ['a list'], not a number",
        "objective returned None, not a number",
    ]


def test_a_dying_process_and_a_slow_trial_fail_alone(tracking_uri: str) -> None:
    def unruly(trial: tuning.Trial) -> float:
        if trial.number == 0:
            os.kill(os.getpid(), signal.SIGKILL)
        if trial.number == 1:
            time.sleep(30)
        return 1.0

    started = time.monotonic()
    study = tuning.tune(
        unruly, SPACE, n_trials=3, parallelism=3, trial_timeout=1.0, tracking_uri=tracking_uri
    )
    assert time.monotonic() - started < 20
    assert study.trials[0].state == "FAIL"
    assert study.trials[0].error == "the trial's process was killed by signal 9"
    assert study.trials[1].state == "FAIL"
    assert study.trials[1].error == "timed out after 1 s"
    assert study.trials[2].state == "COMPLETE"


def test_pruned_by_optunas_own_exception(tracking_uri: str) -> None:
    import optuna

    def prunes(trial: tuning.Trial) -> float:
        trial.report(1.0, 0)
        raise optuna.TrialPruned()

    study = tuning.tune(prunes, SPACE, n_trials=1, tracking_uri=tracking_uri)
    assert study.trials[0].state == "PRUNED"
    assert study.trials[0].value == 1.0


def test_report_checks_its_arguments(tracking_uri: str) -> None:
    def reports_twice(trial: tuning.Trial) -> float:
        trial.report(0.5, 0)
        trial.report(0.6, 0)
        return 1.0

    study = tuning.tune(reports_twice, SPACE, n_trials=1, tracking_uri=tracking_uri)
    assert study.trials[0].error == (
        "InvalidParameterValue: trial.report: step 0 was already reported in trial 0"
    )


@pytest.mark.parametrize("launcher", ["subprocess"])
def test_trials_run_without_a_fork_server(
    tracking_uri: str, launcher: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLIPWAY_TRIAL_LAUNCHER", launcher)
    study = tuning.tune(
        mixed, SPACE, n_trials=3, sampler="random", seed=1, tracking_uri=tracking_uri
    )
    assert [t.state for t in study.trials] == ["FAIL", "FAIL", "COMPLETE"]
