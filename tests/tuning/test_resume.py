"""A study that was interrupted resumes where it stopped: by Ctrl-C (a callback raising
KeyboardInterrupt stands in for it) and by a coordinator that was killed outright."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from slipway import tuning
from slipway.entities import RunStatus
from slipway.exceptions import InvalidParameterValue, ResourceConflict
from slipway.tracking.client import SlipwayClient
from slipway.tuning.store import get_tuning_store

SPACE = {"x": tuning.uniform(-1.0, 1.0)}


def quick(trial: tuning.Trial) -> float:
    time.sleep(0.002)
    return trial.params["x"] ** 2


def _child_runs(client: SlipwayClient, study: tuning.Study) -> list[str]:
    runs = client.search_runs(
        study.experiment_id, f"tags.mlflow.parentRunId = '{study.run_id}'", max_results=100
    )
    return [r.data.tags["slipway.tuning.trial"] for r in runs]


def test_an_interrupted_study_resumes_and_counts_to_n_trials(tracking_uri: str) -> None:
    ended: list[int] = []

    def stop_after_eight(result: tuning.TrialResult) -> None:
        ended.append(result.number)
        if len(ended) == 8:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        tuning.tune(
            quick,
            SPACE,
            n_trials=20,
            parallelism=2,
            seed=1,
            study_name="resumable",
            tracking_uri=tracking_uri,
            callbacks=[stop_after_eight],
        )
    first = tuning.load_study("resumable", tracking_uri)
    assert 8 <= len(first.trials) <= 10
    assert "RUNNING" not in first.counts()  # a trial running at Ctrl-C was failed and recorded
    interrupted = [t for t in first.trials if t.state == "FAIL"]
    assert all(t.error and t.error.startswith("interrupted") for t in interrupted)
    client = SlipwayClient(tracking_uri)
    assert client.get_run(first.run_id).info.status == RunStatus.KILLED
    for trial in interrupted:
        assert trial.run_id is not None
        assert client.get_run(trial.run_id).info.status == RunStatus.KILLED

    study = tuning.tune(
        quick,
        SPACE,
        n_trials=20,
        parallelism=2,
        seed=1,
        study_name="resumable",
        tracking_uri=tracking_uri,
    )
    counts = study.counts()
    assert counts.get("COMPLETE", 0) + counts.get("PRUNED", 0) + counts.get("FAIL", 0) == 20
    assert [t.number for t in study.trials] == list(range(20))
    assert study.run_id == first.run_id
    assert [t.params for t in study.trials[: len(first.trials)]] == [t.params for t in first.trials]
    numbers = _child_runs(client, study)
    assert sorted(numbers, key=int) == [str(i) for i in range(20)]  # one run per trial
    assert client.get_run(study.run_id).info.status == RunStatus.FINISHED

    # Run again: the study is complete, nothing more runs.
    again = tuning.tune(
        quick, SPACE, n_trials=20, study_name="resumable", tracking_uri=tracking_uri
    )
    assert len(again.trials) == 20
    assert len(_child_runs(client, again)) == 20


def test_a_study_resumes_only_with_the_same_space(tracking_uri: str) -> None:
    tuning.tune(quick, SPACE, n_trials=1, study_name="fixed", tracking_uri=tracking_uri)
    with pytest.raises(InvalidParameterValue, match="another search space"):
        tuning.tune(
            quick,
            {"x": tuning.uniform(-2.0, 2.0)},
            n_trials=2,
            study_name="fixed",
            tracking_uri=tracking_uri,
        )
    with pytest.raises(InvalidParameterValue, match="direction"):
        tuning.tune(
            quick,
            SPACE,
            n_trials=2,
            study_name="fixed",
            direction="maximize",
            tracking_uri=tracking_uri,
        )


SCRIPT = textwrap.dedent(
    """
    import sys, time
    from slipway import tuning

    def slow(trial):
        time.sleep(0.3)
        return trial.params["x"]

    if __name__ == "__main__":
        tuning.tune(slow, {"x": tuning.uniform(0.0, 1.0)}, n_trials=30, parallelism=2,
                    study_name="killed", tracking_uri=sys.argv[1], seed=5)
    """
)


def test_a_killed_coordinator_leaves_trials_that_are_failed_on_resume(
    tracking_uri: str, tmp_path: Path
) -> None:
    script = tmp_path / "study.py"
    script.write_text(SCRIPT)
    process = subprocess.Popen([sys.executable, str(script), tracking_uri])
    store = get_tuning_store(tracking_uri)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(0.2)
        try:
            if tuning.load_study("killed", tracking_uri).counts().get("COMPLETE", 0) >= 3:
                break
        except Exception:  # not created yet
            continue
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
    left = tuning.load_study("killed", tracking_uri)
    running = [t for t in left.trials if t.state == "RUNNING"]
    assert running, "the coordinator was killed while trials ran"
    assert store.get_study("killed").lease_owner is not None  # the dead process's claim

    def fast(trial: tuning.Trial) -> float:
        return float(trial.params["x"])

    study = tuning.tune(
        fast,
        {"x": tuning.uniform(0.0, 1.0)},
        n_trials=12,
        parallelism=2,
        study_name="killed",
        tracking_uri=tracking_uri,
    )
    assert len(study.trials) == 12
    assert "RUNNING" not in study.counts()
    client = SlipwayClient(tracking_uri)
    for trial in running:
        after = study.trials[trial.number]
        assert after.state == "FAIL"
        assert after.error is not None
        assert "interrupted" in after.error
        assert after.run_id is not None
        assert client.get_run(after.run_id).info.status == RunStatus.KILLED
    assert store.get_study("killed").lease_owner is None


def test_a_study_runs_in_one_process_at_a_time(tracking_uri: str) -> None:
    tuning.tune(quick, SPACE, n_trials=1, study_name="claimed", tracking_uri=tracking_uri)
    store = get_tuning_store(tracking_uri)
    store.claim_study("claimed", "another-host:1:abc", 60_000)
    with pytest.raises(ResourceConflict, match="another-host"):
        tuning.tune(quick, SPACE, n_trials=2, study_name="claimed", tracking_uri=tracking_uri)
    assert len(tuning.load_study("claimed", tracking_uri).trials) == 1
