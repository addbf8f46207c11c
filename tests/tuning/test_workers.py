"""Trials run in long-lived workers: one worker runs many trials in turn (its module globals
persist, as with Optuna's threads, while the environment and working folder are put back
before each trial), a trial that takes its worker down fails alone and a new worker takes
over; the coordinator's journal writes, held between dispatches, read back the same."""

from __future__ import annotations

import os

import optuna
import pytest

import slipway
from slipway import tuning
from slipway.exceptions import InvalidParameterValue
from slipway.tracking.client import SlipwayClient
from slipway.tuning.journal import StoreJournalBackend, open_storage
from slipway.tuning.store import get_tuning_store

SEEN: list[int] = []


def remembers(trial: tuning.Trial) -> float:
    SEEN.append(trial.number)
    slipway.log_params(
        {
            "pid": os.getpid(),
            "seen": len(SEEN),
            "leaked": os.environ.get("LEFT_BY_A_TRIAL", "no"),
            "cwd": os.getcwd(),
        },
        synchronous=True,  # logged before the crash below
    )
    os.environ["LEFT_BY_A_TRIAL"] = "yes"
    os.chdir("/")
    if trial.number == 2:
        os._exit(3)
    return float(trial.number)


def test_a_worker_runs_trials_in_turn_and_a_crash_replaces_it(tracking_uri: str) -> None:
    study = tuning.tune(
        remembers, {"k": tuning.randint(0, 3)}, n_trials=4, tracking_uri=tracking_uri
    )
    assert [t.state for t in study.trials] == ["COMPLETE", "COMPLETE", "FAIL", "COMPLETE"]
    assert study.trials[2].error == "the trial's process exited with code 3 without a result"
    client = SlipwayClient(tracking_uri)
    params = [client.get_run(t.run_id or "").data.params for t in study.trials]
    assert params[0]["pid"] == params[1]["pid"] == params[2]["pid"] != params[3]["pid"]
    assert [p["seen"] for p in params] == ["1", "2", "3", "1"]
    assert {p["leaked"] for p in params} == {"no"}
    assert {p["cwd"] for p in params} == {os.getcwd()}
    assert SEEN == []  # trials ran elsewhere


def test_held_journal_writes_read_back_in_one_order(tracking_uri: str) -> None:
    """The coordinator holds its writes (a tell, the next asks) while a worker reports; after
    the flush a fresh reader, the holder and the worker see the same study."""
    store = get_tuning_store(tracking_uri)
    client = SlipwayClient(tracking_uri)
    run = client.create_run("0")
    store.create_study("held", run.info.run_id, "0", {})
    backend = StoreJournalBackend(store, "held", min_read_interval=60.0)
    study = optuna.create_study(study_name="held", storage=optuna.storages.JournalStorage(backend))
    dist: dict[str, optuna.distributions.BaseDistribution] = {
        "x": optuna.distributions.FloatDistribution(0.0, 1.0)
    }
    first = study.ask(dist)
    worker = optuna.load_study(study_name="held", storage=open_storage(store, "held"))

    backend.hold()
    worker_trial = optuna.trial.Trial(worker, first._trial_id)
    worker_trial.report(0.5, 0)  # written by the "worker" while the coordinator holds
    second = study.ask(dist)  # held
    study.tell(second, 2.0)  # held
    assert backend.holding > 0
    assert (
        len(optuna.load_study(study_name="held", storage=open_storage(store, "held")).trials) == 1
    )
    backend.refresh()
    assert study.trials[0].intermediate_values == {0: 0.5}  # others' writes still come in
    backend.flush()
    assert backend.holding == 0
    study.tell(first, 1.0)  # held again, and written at release
    backend.release()

    def view(trials: list[optuna.trial.FrozenTrial]) -> list[tuple[object, ...]]:
        return [(t.number, t.state, t.value, t.params, t.intermediate_values) for t in trials]

    fresh = optuna.load_study(study_name="held", storage=open_storage(store, "held"))
    backend.refresh()
    assert view(fresh.trials) == view(study.trials) == view(worker.trials)
    assert [t.value for t in fresh.trials] == [1.0, 2.0]
    assert fresh.trials[0].intermediate_values == {0: 0.5}


def test_where_trials_run_and_what_they_hold_are_checked(tracking_uri: str) -> None:
    with pytest.raises(InvalidParameterValue, match="on must be one of local, ray"):
        tuning.tune(
            remembers,
            {"k": tuning.randint(0, 3)},
            n_trials=1,
            on="gpu-farm",
            tracking_uri=tracking_uri,
        )
    with pytest.raises(InvalidParameterValue, match=r"trial_resources\.cpu: must be a non-neg"):
        tuning.tune(
            remembers,
            {"k": tuning.randint(0, 3)},
            n_trials=1,
            trial_resources={"cpu": -1},
            tracking_uri=tracking_uri,
        )
    assert get_tuning_store(tracking_uri).list_studies() == []
