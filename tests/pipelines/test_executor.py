"""The local executor end to end: tracking of steps, artifacts between steps, loops, budgets,
cancelling, logs, and the bad inputs a user will find (a step that exits, is killed, returns
the wrong type, never writes its output, floods its log; bad parameters; resuming what cannot
be resumed)."""

from __future__ import annotations

import itertools
import os
import signal
import threading
import time
from pathlib import Path
from typing import NamedTuple

import pytest

import slipway
from slipway.entities.pipelines import PipelineRunStatus, StepStatus
from slipway.exceptions import InvalidParameterValue, InvalidState, ResourceDoesNotExist
from slipway.pipelines import (
    Dataset,
    Input,
    Metrics,
    Model,
    Output,
    cancel,
    collected,
    component,
    parallel_for,
    pipeline,
    resume,
    run,
)
from slipway.pipelines.store import get_pipeline_store
from slipway.tracking import uri as uris


@component
def make_data(rows: int, data: Output[Dataset]) -> int:
    with open(data.path, "w") as fh:
        fh.write("\n".join(str(i) for i in range(rows)))
    data.metadata["rows"] = rows
    return rows


@component
def train(data: Input[Dataset], lr: float, model: Output[Model], metrics: Output[Metrics]) -> float:
    rows = len(Path(data.path).read_text().splitlines())
    slipway.log_metric("loss", 1.0 / (1 + lr * rows), step=0)
    slipway.log_metric("loss", 0.5 / (1 + lr * rows), step=1)
    with open(model.path, "w") as fh:
        fh.write(f"lr={lr}")
    metrics.log_metric("accuracy", lr)
    return lr * rows


@component
def best_of(models: Input[list[Model]], scores: list, best: Output[Model]) -> NamedTuple(
    "Best", [("score", float), ("index", int)]
):
    index = max(range(len(scores)), key=lambda i: scores[i])
    with open(best.path, "w") as fh:
        fh.write(Path(models[index].path).read_text())
    return (float(scores[index]), index)


@pipeline(name="fit-many")
def fit_many(rows: int = 10, lrs: list = [0.1, 0.5, 0.2]) -> None:  # noqa: B006
    data = make_data(rows=rows)
    with parallel_for(lrs, parallelism=2) as lr:
        t = train(data=data.outputs["data"], lr=lr)
    best_of(models=collected(t.outputs["model"]), scores=collected(t.output))


def test_steps_are_child_runs_with_params_metrics_and_artifacts(tracking_dir: Path) -> None:
    result = run(fit_many, {"rows": 4})
    assert result.succeeded, result.run.message
    assert [s.task_id for s in result.steps] == [
        "make_data",
        "train[0]",
        "train[1]",
        "train[2]",
        "best_of",
    ]
    client = slipway.SlipwayClient()
    parent = client.get_run(result.run_id)
    assert parent.data.params == {"rows": "4", "lrs": "[0.1, 0.5, 0.2]"}
    assert parent.info.status == "FINISHED"
    best = result.step("best_of")
    assert best.outputs["parameters"] == {"score": 2.0, "index": 1}
    assert Path(_path(best.outputs["artifacts"]["best"]["uri"])).read_text() == "lr=0.5"
    step = result.step("train[1]")
    child = client.get_run(step.run_id or "")
    assert child.data.tags["mlflow.parentRunId"] == result.run_id
    assert child.data.tags["slipway.pipeline.run_id"] == result.run_id
    assert child.data.tags["slipway.pipeline.step"] == "train[1]"
    assert child.data.params == {"lr": "0.5"}
    assert child.data.metrics["loss"] == pytest.approx(0.5 / 3)
    assert [m.value for m in client.get_metric_history(child.info.run_id, "loss")] == [
        pytest.approx(1 / 3),
        pytest.approx(0.5 / 3),
    ]
    assert child.data.metrics["accuracy"] == 0.5
    names = {a.path for a in client.list_artifacts(child.info.run_id, "outputs")}
    assert names == {"outputs/model", "outputs/metrics"}
    refs = step.outputs["artifacts"]
    assert refs["model"]["producer"] == "train[1]"
    assert refs["model"]["digest"].startswith("sha256:")
    assert refs["metrics"]["metadata"] == {"accuracy": 0.5}
    data_ref = result.step("make_data").outputs["artifacts"]["data"]
    assert data_ref["metadata"] == {"rows": 4}
    assert [d.dataset.name for d in child.inputs.dataset_inputs] == ["make_data.data"]


def test_artifact_links_name_producer_and_consumers(tracking_dir: Path) -> None:
    result = run(fit_many, {"rows": 3, "lrs": [1.0]})
    assert result.succeeded
    data_uri = result.step("make_data").outputs["artifacts"]["data"]["uri"]
    links = get_pipeline_store().list_artifact_links(uri=data_uri)
    assert {(link.task_id, link.direction) for link in links} == {
        ("make_data", "output"),
        ("train[0]", "input"),
    }


def _path(uri: str) -> str:
    return uri[len("file://") :] if uri.startswith("file://") else uri


@component
def sleeper(seconds: float, name: str) -> str:
    started = time.time()
    time.sleep(seconds)
    return f"{name}:{started}:{time.time()}"


@pipeline(name="pair")
def pair(seconds: float = 0.5) -> None:
    sleeper(seconds=seconds, name="a")
    sleeper(seconds=seconds, name="b")


def _spans(result: slipway.pipelines.PipelineResult) -> list[tuple[float, float]]:
    spans = []
    for step in result.steps:
        _, start, end = step.outputs["parameters"]["Output"].split(":")
        spans.append((float(start), float(end)))
    return sorted(spans)


def test_independent_steps_run_side_by_side_and_max_parallel_serialises(
    tracking_dir: Path,
) -> None:
    together = _spans(run(pair, cache=False))
    assert together[1][0] < together[0][1], "the two steps did not overlap"
    one_at_a_time = _spans(run(pair, cache=False, max_parallel=1))
    assert one_at_a_time[1][0] >= one_at_a_time[0][1]


@pipeline(name="loop-one-at-a-time")
def loop_serial() -> None:
    with parallel_for(["a", "b", "c"], parallelism=1) as name:
        sleeper(seconds=0.2, name=name)


def test_loop_parallelism_limits_iterations_in_flight(tracking_dir: Path) -> None:
    spans = _spans(run(loop_serial))
    for before, after in itertools.pairwise(spans):
        assert after[0] >= before[1]


def test_a_task_larger_than_the_machine_is_refused_before_anything_runs(
    tracking_dir: Path,
) -> None:
    @component(cpu=10_000)
    def huge() -> None:
        pass

    @pipeline(name="too-big")
    def too_big() -> None:
        huge()

    with pytest.raises(InvalidParameterValue, match="asks for 10000 CPUs"):
        run(too_big)
    assert get_pipeline_store().search_pipeline_runs() == []


def test_parameters_are_checked(tracking_dir: Path) -> None:
    with pytest.raises(InvalidParameterValue, match=r"no parameter 'rowz'.*rows, lrs"):
        run(fit_many, {"rowz": 3})
    with pytest.raises(InvalidParameterValue, match="parameter rows: expected int, got str"):
        run(fit_many, {"rows": "many"})


@component
def misbehave(how: str, out: Output[Model]) -> int:
    import sys

    if how == "exit":
        sys.exit(3)
    if how == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if how == "type":
        return "seven"  # type: ignore[return-value]
    if how == "flood":
        chunk = "x" * 1023 + "\n"
        for _ in range(8 * 1024):  # 8 MiB
            sys.stdout.write(chunk)
        print("the end")
    if how != "no-output":
        with open(out.path, "w") as fh:
            fh.write("ok")
    return 7


def _one(how: str) -> slipway.pipelines.PipelineResult:
    @pipeline(name=f"misbehave-{how}")
    def single() -> None:
        misbehave(how=how)

    return run(single, cache=False)


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("exit", "exited with code 3"),
        ("kill", "killed by signal 9"),
        ("type", "returned str"),
        ("no-output", "output artifact 'out' was not written"),
    ],
)
def test_a_misbehaving_step_fails_with_a_clear_message(
    how: str, message: str, tracking_dir: Path
) -> None:
    result = _one(how)
    assert result.status == PipelineRunStatus.FAILED
    step = result.step("misbehave")
    assert step.status == StepStatus.FAILED
    assert step.message
    assert message in step.message
    assert result.run.message
    assert message in result.run.message
    assert slipway.SlipwayClient().get_run(step.run_id or "").info.status == "FAILED"


def test_megabytes_of_logs_are_kept_capped(tracking_dir: Path, tmp_path: Path) -> None:
    result = _one("flood")
    assert result.succeeded
    step = result.step("misbehave")
    client = slipway.SlipwayClient()
    local = client.download_artifacts(step.run_id or "", "logs/stdout.txt", str(tmp_path))
    data = Path(local).read_bytes()
    assert len(data) <= 5 * 1024 * 1024 + 200
    assert b"bytes left out" in data
    assert data.rstrip().endswith(b"the end")


@component
def wait_long(seconds: float) -> None:
    time.sleep(seconds)


@pipeline(name="long")
def long_pipeline() -> None:
    first = wait_long(seconds=60)
    wait_long(seconds=0).after(first)


def test_cancel_from_another_caller_stops_the_running_step(tracking_dir: Path) -> None:
    store = get_pipeline_store()
    holder: dict[str, slipway.pipelines.PipelineResult] = {}
    thread = threading.Thread(target=lambda: holder.setdefault("r", run(long_pipeline)))
    started = time.monotonic()
    thread.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        runs = store.search_pipeline_runs()
        if runs and any(s.status == StepStatus.RUNNING for s in store.list_steps(runs[0].run_id)):
            break
        time.sleep(0.05)
    else:
        pytest.fail("the step never started")
    run_id = runs[0].run_id
    assert cancel(run_id).status == PipelineRunStatus.CANCELLING
    thread.join(30)
    assert not thread.is_alive()
    assert time.monotonic() - started < 30
    result = holder["r"]
    assert result.status == PipelineRunStatus.CANCELLED
    assert [s.status for s in result.steps] == [StepStatus.CANCELLED, StepStatus.CANCELLED]
    pid = result.step("wait_long").details["pid"]
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert slipway.SlipwayClient().get_run(run_id).info.status == "KILLED"
    assert cancel(run_id).status == PipelineRunStatus.CANCELLED  # ended: unchanged


def test_resume_refuses_what_cannot_be_resumed(tracking_dir: Path) -> None:
    with pytest.raises(ResourceDoesNotExist):
        resume("0" * 32, pair)
    done = run(pair, {"seconds": 0.0})
    with pytest.raises(InvalidState, match="succeeded: nothing to resume"):
        resume(done.run_id, pair)
    again = resume(done.run_id, pair, from_step="sleeper-2", cache=False)
    assert again.succeeded
    assert again.step("sleeper").run_id == done.step("sleeper").run_id
    assert again.step("sleeper-2").run_id != done.step("sleeper-2").run_id
    with pytest.raises(InvalidParameterValue, match="no task 'nope'"):
        resume(done.run_id, pair, from_step="nope")


def test_runs_go_to_the_named_experiment(tracking_dir: Path) -> None:
    result = run(pair, {"seconds": 0.0}, experiment_name="pipelines")
    experiment = uris.get_store().get_experiment_by_name("pipelines")
    assert experiment is not None
    assert result.run.experiment_id == experiment.experiment_id
    for step in result.steps:
        child = slipway.SlipwayClient().get_run(step.run_id or "")
        assert child.info.experiment_id == experiment.experiment_id
