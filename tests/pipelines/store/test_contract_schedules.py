"""Schedules on every backend: create, get by id or name, list, update, claim, delete."""

from __future__ import annotations

import dataclasses
import threading

import pytest

from slipway.entities.pipelines import Schedule
from slipway.exceptions import (
    InvalidParameterValue,
    ResourceAlreadyExists,
    ResourceDoesNotExist,
)
from slipway.pipelines.store.base import AbstractPipelineStore

DUE = 1_700_000_000_000
MINUTE = 60_000


def schedule(schedule_id: str, name: str, **fields: object) -> Schedule:
    values: dict[str, object] = {
        "schedule_id": schedule_id,
        "name": name,
        "source": "pipelines/train.py:nightly",
        "cron": "0 3 * * *",
        "parameters": {"epochs": 3, "tags": ["a", None], "ratio": 0.75, "name": "ß"},
        "experiment_id": "0",
        "created_time": 5,
        "next_run_time": DUE,
        "user_id": "alice",
    }
    values.update(fields)
    return Schedule(**values)  # type: ignore[arg-type]


def test_create_get_list(pipeline_store: AbstractPipelineStore) -> None:
    nightly = pipeline_store.create_schedule(schedule("s1", "nightly"))
    assert nightly == schedule("s1", "nightly")
    assert pipeline_store.get_schedule("s1") == nightly
    assert pipeline_store.get_schedule("nightly") == nightly  # by name
    hourly = pipeline_store.create_schedule(schedule("s2", "hourly", paused=True))
    assert hourly.paused is True
    assert [s.name for s in pipeline_store.list_schedules()] == ["hourly", "nightly"]

    # created_time 0 means "now"; optional fields stay unset.
    bare = pipeline_store.create_schedule(
        Schedule(schedule_id="s3", name="adhoc", source="p.py", cron="* * * * *")
    )
    assert bare.created_time > 1_600_000_000_000
    assert (bare.next_run_time, bare.last_run_time, bare.last_run_id) == (None, None, None)
    assert (bare.parameters, bare.experiment_id, bare.paused) == ({}, None, False)


def test_duplicates_and_unknown(pipeline_store: AbstractPipelineStore) -> None:
    pipeline_store.create_schedule(schedule("s1", "nightly"))
    with pytest.raises(ResourceAlreadyExists, match="'s1'"):
        pipeline_store.create_schedule(schedule("s1", "other"))
    with pytest.raises(ResourceAlreadyExists, match="named 'nightly'"):
        pipeline_store.create_schedule(schedule("s9", "nightly"))
    assert [s.schedule_id for s in pipeline_store.list_schedules()] == ["s1"]
    with pytest.raises(ResourceDoesNotExist, match="'nope'"):
        pipeline_store.get_schedule("nope")
    with pytest.raises(ResourceDoesNotExist):
        pipeline_store.update_schedule("nope", paused=True)
    with pytest.raises(ResourceDoesNotExist):
        pipeline_store.claim_schedule_run("nope", DUE, DUE + MINUTE)
    with pytest.raises(ResourceDoesNotExist):
        pipeline_store.delete_schedule("nope")


def test_bad_schedules(pipeline_store: AbstractPipelineStore) -> None:
    good = schedule("s1", "nightly")
    for change in (
        {"schedule_id": ""},
        {"name": ""},
        {"name": "n" * 300},
        {"cron": ""},
        {"source": ""},
        {"parameters": {"x": float("-inf")}},
        {"next_run_time": -1},
    ):
        with pytest.raises(InvalidParameterValue):
            pipeline_store.create_schedule(dataclasses.replace(good, **change))  # type: ignore[arg-type]
    assert pipeline_store.list_schedules() == []


def test_update(pipeline_store: AbstractPipelineStore) -> None:
    pipeline_store.create_schedule(schedule("s1", "nightly"))
    paused = pipeline_store.update_schedule("s1", paused=True)
    assert paused.paused is True
    ran = pipeline_store.update_schedule(
        "s1", next_run_time=DUE + MINUTE, last_run_time=DUE, last_run_id="r" * 32
    )
    assert (ran.paused, ran.next_run_time, ran.last_run_time, ran.last_run_id) == (
        True,
        DUE + MINUTE,
        DUE,
        "r" * 32,
    )
    assert pipeline_store.update_schedule("s1") == ran  # nothing given, nothing changed
    assert pipeline_store.update_schedule("s1", paused=False).paused is False
    assert pipeline_store.get_schedule("s1").next_run_time == DUE + MINUTE


def test_claim_is_compare_and_set(pipeline_store: AbstractPipelineStore) -> None:
    pipeline_store.create_schedule(schedule("s1", "nightly"))
    assert pipeline_store.claim_schedule_run("s1", DUE, DUE + MINUTE) is True
    assert pipeline_store.get_schedule("s1").next_run_time == DUE + MINUTE
    # The same due time again: someone claimed it already.
    assert pipeline_store.claim_schedule_run("s1", DUE, DUE + 2 * MINUTE) is False
    assert pipeline_store.get_schedule("s1").next_run_time == DUE + MINUTE
    # A wrong due time changes nothing.
    assert pipeline_store.claim_schedule_run("s1", DUE + 5, DUE + 2 * MINUTE) is False

    # Paused schedules cannot be claimed, even when due.
    pipeline_store.update_schedule("s1", paused=True)
    assert pipeline_store.claim_schedule_run("s1", DUE + MINUTE, DUE + 2 * MINUTE) is False
    assert pipeline_store.get_schedule("s1").next_run_time == DUE + MINUTE
    pipeline_store.update_schedule("s1", paused=False)
    assert pipeline_store.claim_schedule_run("s1", DUE + MINUTE, DUE + 2 * MINUTE) is True

    # A schedule with no next run time is never due.
    pipeline_store.create_schedule(schedule("s2", "unset", next_run_time=None))
    assert pipeline_store.claim_schedule_run("s2", DUE, DUE + MINUTE) is False


def _race(store: AbstractPipelineStore, due: int, claimers: int) -> list[bool]:
    """What ``claimers`` threads, let go at once, get from claiming ``due``."""
    barrier = threading.Barrier(claimers)
    results: list[bool] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def claim() -> None:
        try:
            barrier.wait(timeout=30)
            won = store.claim_schedule_run("s1", due, due + MINUTE)
            with lock:
                results.append(won)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=claim) for _ in range(claimers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    return results


def test_racing_claims_have_one_winner(pipeline_store: AbstractPipelineStore) -> None:
    pipeline_store.create_schedule(schedule("s1", "nightly"))
    for round_ in range(3):
        due = DUE + round_ * MINUTE
        assert sorted(_race(pipeline_store, due, 6)) == [False] * 5 + [True]
        assert pipeline_store.get_schedule("s1").next_run_time == due + MINUTE


def test_delete(pipeline_store: AbstractPipelineStore) -> None:
    pipeline_store.create_schedule(schedule("s1", "nightly"))
    pipeline_store.create_schedule(schedule("s2", "hourly"))
    pipeline_store.delete_schedule("s1")
    with pytest.raises(ResourceDoesNotExist):
        pipeline_store.get_schedule("s1")
    with pytest.raises(ResourceDoesNotExist):
        pipeline_store.delete_schedule("s1")
    assert [s.schedule_id for s in pipeline_store.list_schedules()] == ["s2"]
    # The name is free again.
    assert pipeline_store.create_schedule(schedule("s3", "nightly")).schedule_id == "s3"
