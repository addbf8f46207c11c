"""Pipeline runs on every backend: create, get, update, cancel, search."""

from __future__ import annotations

import dataclasses

import pytest

from slipway.entities.pipelines import PipelineRun, PipelineRunStatus
from slipway.exceptions import (
    InvalidParameterValue,
    ResourceAlreadyExists,
    ResourceDoesNotExist,
)
from slipway.pipelines.store.base import AbstractPipelineStore
from slipway.tracking.store.base import AbstractTrackingStore

from .conftest import MakeRun

S = PipelineRunStatus

NESTED = {
    "text": "héllo wörld ✓ 日本語",
    "float": 0.1 + 0.2,
    "tiny": 5e-324,
    "big": 1.7976931348623157e308,
    "int": 2**62,
    "negative": -3,
    "null": None,
    "flag": False,
    "list": [1, "two", None, [3.5, {"deep": ["x"]}]],
    "empty": {},
    "empty_list": [],
}


def test_create_and_get_round_trip(
    pipeline_store: AbstractPipelineStore, tracking_store: AbstractTrackingStore
) -> None:
    run_id = tracking_store.create_run("0").info.run_id
    graph = {"tasks": {"a": {"component": "prep", "deps": []}}, "meta": NESTED}
    run = PipelineRun(
        run_id=run_id,
        experiment_id="0",
        pipeline_name="training",
        status=S.QUEUED,
        start_time=1_700_000_000_123,
        parameters={"lr": 0.01, "layers": [64, 32], "name": "ünï", "opt": None},
        graph=graph,
        source="pipelines/train.py:pipeline",
        attempt=1,
        schedule_id="sched-1",
        user_id="alice",
    )
    created = pipeline_store.create_pipeline_run(run)
    assert created == run
    got = pipeline_store.get_pipeline_run(run_id)
    assert got == run
    assert got.status is S.QUEUED
    assert got.graph["meta"] == NESTED
    assert got.end_time is None
    assert got.message is None


def test_defaults_round_trip(make_run: MakeRun, pipeline_store: AbstractPipelineStore) -> None:
    run = make_run()
    got = pipeline_store.get_pipeline_run(run.run_id)
    assert (got.parameters, got.graph, got.source, got.schedule_id) == ({}, {}, None, None)
    assert got.attempt == 1


def test_create_twice_and_unknown_tracking_run(
    make_run: MakeRun, pipeline_store: AbstractPipelineStore
) -> None:
    run = make_run()
    with pytest.raises(ResourceAlreadyExists, match=run.run_id):
        pipeline_store.create_pipeline_run(run)
    missing = dataclasses.replace(run, run_id="f" * 32)
    with pytest.raises(ResourceDoesNotExist, match="f" * 32):
        pipeline_store.create_pipeline_run(missing)
    with pytest.raises(ResourceDoesNotExist):
        pipeline_store.get_pipeline_run("0" * 32)


def test_create_refuses_bad_values(
    make_run: MakeRun, pipeline_store: AbstractPipelineStore, tracking_store: AbstractTrackingStore
) -> None:
    run_id = tracking_store.create_run("0").info.run_id
    good = PipelineRun(run_id, "0", "p", S.RUNNING, 1)
    bad_values: list[dict[str, object]] = [
        {"status": "SLEEPING"},
        {"pipeline_name": ""},
        {"pipeline_name": "x" * 300},
        {"attempt": 0},
        {"start_time": -1},
        {"parameters": {"nan": float("nan")}},
    ]
    for change in bad_values:
        with pytest.raises(InvalidParameterValue):
            pipeline_store.create_pipeline_run(dataclasses.replace(good, **change))  # type: ignore[arg-type]
    with pytest.raises(ResourceDoesNotExist):
        pipeline_store.get_pipeline_run(run_id)  # nothing was written
    assert pipeline_store.create_pipeline_run(good) == good


def test_update_fields(make_run: MakeRun, pipeline_store: AbstractPipelineStore) -> None:
    run = make_run(parameters={"a": 1})
    updated = pipeline_store.update_pipeline_run(
        run.run_id,
        status=S.FAILED,
        end_time=5_000,
        message="step 'train' failed",
        graph={"tasks": ["x"]},
        parameters={"a": 2, "b": [None]},
    )
    assert updated.status is S.FAILED
    assert (updated.end_time, updated.message) == (5_000, "step 'train' failed")
    assert updated.graph == {"tasks": ["x"]}
    assert updated.parameters == {"a": 2, "b": [None]}
    assert pipeline_store.get_pipeline_run(run.run_id) == updated

    # None leaves fields alone; clear_end resets end_time and message, for a resume.
    same = pipeline_store.update_pipeline_run(run.run_id)
    assert same == updated
    resumed = pipeline_store.update_pipeline_run(
        run.run_id, status=S.RUNNING, attempt=2, clear_end=True
    )
    assert resumed.status is S.RUNNING
    assert (resumed.end_time, resumed.message, resumed.attempt) == (None, None, 2)
    assert resumed.graph == {"tasks": ["x"]}


def test_update_errors(make_run: MakeRun, pipeline_store: AbstractPipelineStore) -> None:
    run = make_run()
    with pytest.raises(ResourceDoesNotExist):
        pipeline_store.update_pipeline_run("0" * 32, status=S.FAILED)
    with pytest.raises(ResourceDoesNotExist):
        pipeline_store.update_pipeline_run("0" * 32)
    with pytest.raises(InvalidParameterValue, match="BOGUS"):
        pipeline_store.update_pipeline_run(run.run_id, status="BOGUS")  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterValue, match="attempt"):
        pipeline_store.update_pipeline_run(run.run_id, attempt=0)
    assert pipeline_store.get_pipeline_run(run.run_id) == run


def test_cancel_semantics(make_run: MakeRun, pipeline_store: AbstractPipelineStore) -> None:
    queued, running = make_run(status=S.QUEUED), make_run(status=S.RUNNING)
    for run in (queued, running):
        assert pipeline_store.request_cancel(run.run_id).status is S.CANCELLING
        # Asking again changes nothing.
        assert pipeline_store.request_cancel(run.run_id).status is S.CANCELLING

    # A cancel request survives the executor's non-terminal updates...
    kept = pipeline_store.update_pipeline_run(running.run_id, status=S.RUNNING, attempt=3)
    assert kept.status is S.CANCELLING
    assert kept.attempt == 3
    # ...and gives way to a terminal status.
    done = pipeline_store.update_pipeline_run(running.run_id, status=S.CANCELLED, end_time=9)
    assert done.status is S.CANCELLED
    assert pipeline_store.update_pipeline_run(queued.run_id, status=S.FAILED).status is S.FAILED

    # Finished runs are returned unchanged.
    for status in (S.SUCCEEDED, S.FAILED, S.CANCELLED):
        finished = make_run(status=status, end_time=7)
        assert pipeline_store.request_cancel(finished.run_id) == finished

    # A cancelled run can be resumed: only CANCELLING sticks.
    assert pipeline_store.update_pipeline_run(running.run_id, status=S.RUNNING).status is S.RUNNING
    with pytest.raises(ResourceDoesNotExist):
        pipeline_store.request_cancel("0" * 32)


def test_search_filters_and_order(make_run: MakeRun, pipeline_store: AbstractPipelineStore) -> None:
    a = make_run(pipeline_name="etl", start_time=100, status=S.SUCCEEDED)
    b = make_run(pipeline_name="train", start_time=300, status=S.RUNNING, schedule_id="nightly")
    c = make_run(pipeline_name="train", start_time=200, status=S.FAILED, schedule_id="nightly")
    d = make_run(pipeline_name="train", start_time=300, status=S.RUNNING)

    def ids(found: list[PipelineRun]) -> list[str]:
        return [r.run_id for r in found]

    tie = sorted([b.run_id, d.run_id], reverse=True)
    assert ids(pipeline_store.search_pipeline_runs()) == [*tie, c.run_id, a.run_id]
    assert ids(pipeline_store.search_pipeline_runs(pipeline_name="etl")) == [a.run_id]
    assert ids(pipeline_store.search_pipeline_runs(pipeline_name="train", status=S.RUNNING)) == tie
    assert ids(pipeline_store.search_pipeline_runs(status=S.FAILED)) == [c.run_id]
    assert ids(pipeline_store.search_pipeline_runs(schedule_id="nightly")) == [b.run_id, c.run_id]
    assert ids(pipeline_store.search_pipeline_runs(experiment_id="0")) == ids(
        pipeline_store.search_pipeline_runs()
    )
    assert pipeline_store.search_pipeline_runs(experiment_id="42") == []
    assert pipeline_store.search_pipeline_runs(pipeline_name="nope") == []
    assert pipeline_store.search_pipeline_runs(status=S.QUEUED).token is None


def test_search_pages(make_run: MakeRun, pipeline_store: AbstractPipelineStore) -> None:
    made = [make_run(start_time=1_000 + i) for i in range(7)]
    expected = [r.run_id for r in reversed(made)]
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        page = pipeline_store.search_pipeline_runs(max_results=3, page_token=token)
        seen += [r.run_id for r in page]
        pages += 1
        token = page.token
        if token is None:
            break
    assert seen == expected
    assert pages == 3
    exact = pipeline_store.search_pipeline_runs(max_results=7)
    assert len(exact) == 7
    assert exact.token is None


def test_search_refuses_bad_arguments(
    make_run: MakeRun, pipeline_store: AbstractPipelineStore
) -> None:
    make_run()
    for bad in (0, -1, 1001):
        with pytest.raises(InvalidParameterValue, match="max_results"):
            pipeline_store.search_pipeline_runs(max_results=bad)
    assert len(pipeline_store.search_pipeline_runs(max_results=1000)) == 1
    with pytest.raises(InvalidParameterValue, match="WAITING"):
        pipeline_store.search_pipeline_runs(status="WAITING")  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterValue, match="page token"):
        pipeline_store.search_pipeline_runs(page_token="not-a-token")
